//! The few systemd operations `component_restart` needs for kubelet, through `systemctl`.

use crate::error::{Error, Result};
use std::process::Command;

fn systemctl(args: &[&str]) -> Result<String> {
    let out = Command::new("systemctl").args(args).output().map_err(|e| {
        Error::Refused(format!(
            "cannot run `systemctl {}`: {e}; kubelet is managed by systemd on kubespray hosts",
            args.join(" ")
        ))
    })?;
    if !out.status.success() {
        return Err(Error::Refused(format!(
            "`systemctl {}` failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// The unit's main pid (0 when not running).
pub fn main_pid(unit: &str) -> Result<i32> {
    let text = systemctl(&["show", "-p", "MainPID", "--value", unit])?;
    text.parse::<i32>()
        .map_err(|_| Error::Refused(format!("systemctl reported MainPID {text:?} for {unit}")))
}

/// `ActiveState/SubState` of the unit, for messages.
pub fn state(unit: &str) -> String {
    systemctl(&[
        "show",
        "-p",
        "ActiveState",
        "-p",
        "SubState",
        "--value",
        unit,
    ])
    .map(|s| s.replace('\n', "/"))
    .unwrap_or_else(|e| {
        let text = e.to_string();
        format!("unknown ({})", text.lines().next().unwrap_or(""))
    })
}

pub fn restart(unit: &str) -> Result<()> {
    systemctl(&["restart", unit]).map(|_| ())
}
