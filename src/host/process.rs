//! Finding a control-plane process through /proc: by `comm` (the kernel truncates it to 15
//! bytes; for a shebang script it is the script's name) or by the base name of argv[0] (or of
//! argv[1] when argv[0] is an interpreter), skipping zombies and ourselves. Also reads flags such
//! as `--secure-port` from its command line, and when a process started (to tell whether it runs
//! with a file as it was before the file's last change).

use std::fs;
use std::path::Path;
use std::time::{Duration, SystemTime};

/// A running process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Process {
    pub pid: i32,
    pub comm: String,
    pub argv: Vec<String>,
}

impl Process {
    /// The value of `--flag=value` or `--flag value` on the command line.
    pub fn flag(&self, flag: &str) -> Option<String> {
        let long = format!("--{flag}");
        let with_eq = format!("{long}=");
        let mut args = self.argv.iter();
        while let Some(a) = args.next() {
            if let Some(v) = a.strip_prefix(&with_eq) {
                return Some(v.to_string());
            }
            if *a == long {
                return args.next().cloned();
            }
        }
        None
    }
}

fn base(arg: &str) -> &str {
    arg.rsplit('/').next().unwrap_or(arg)
}

/// Whether a process is the component `name`.
pub fn is_component(comm: &str, argv: &[String], name: &str) -> bool {
    let truncated: String = name.chars().take(15).collect();
    let arg_named = |i: usize| argv.get(i).map(|a| base(a) == name).unwrap_or(false);
    if arg_named(0) {
        return true;
    }
    comm == truncated && (name.len() <= 15 || arg_named(1))
}

fn read_process(dir: &Path, pid: i32) -> Option<Process> {
    let stat = fs::read_to_string(dir.join("stat")).ok()?;
    // state is the first field after the ")" that closes comm
    let state = stat.rsplit_once(')')?.1.trim_start().chars().next()?;
    if state == 'Z' || state == 'X' {
        return None;
    }
    let comm = fs::read_to_string(dir.join("comm"))
        .ok()?
        .trim_end()
        .to_string();
    let raw = fs::read(dir.join("cmdline")).ok()?;
    let argv = raw
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    Some(Process { pid, comm, argv })
}

/// Every live process of component `name`, lowest pid first.
pub fn find(name: &str) -> Vec<Process> {
    let me = std::process::id() as i32;
    let mut out = Vec::new();
    let Ok(entries) = fs::read_dir("/proc") else {
        return out;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        if pid == me {
            continue;
        }
        if let Some(p) = read_process(&entry.path(), pid) {
            if is_component(&p.comm, &p.argv, name) {
                out.push(p);
            }
        }
    }
    out.sort_by_key(|p| p.pid);
    out
}

/// Whether a pid is still a live (non-zombie) process.
pub fn alive(pid: i32) -> bool {
    read_process(Path::new(&format!("/proc/{pid}")), pid).is_some()
}

/// The kernel's clock tick (`sysconf(_SC_CLK_TCK)`), the unit of a process's start time in
/// /proc/<pid>/stat. 100 on every Linux architecture kubeha supports; read, not assumed.
fn clock_tick() -> Duration {
    let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .filter(|hz| *hz > 0)
        .unwrap_or(100);
    Duration::from_secs_f64(1.0 / hz as f64)
}

/// The wall-clock instant the machine booted, to the nanosecond: now minus CLOCK_BOOTTIME.
/// (/proc/stat's `btime` is whole seconds: a process restarted right after a write could then
/// look older than the write.)
fn boot_instant() -> Option<SystemTime> {
    let up = nix::time::clock_gettime(nix::time::ClockId::CLOCK_BOOTTIME).ok()?;
    let up = Duration::new(up.tv_sec().try_into().ok()?, up.tv_nsec().try_into().ok()?);
    SystemTime::now().checked_sub(up)
}

/// `starttime` (field 22 of /proc/<pid>/stat: clock ticks after boot, rounded down) of a stat line.
fn start_ticks(stat: &str) -> Option<u64> {
    // fields after the ")" that closes comm start at field 3 (state)
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(19)?
        .parse()
        .ok()
}

/// When process `pid` started, as a wall-clock instant (rounded down to the clock tick).
pub fn started(pid: i32) -> Option<SystemTime> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let ticks = start_ticks(&stat)?;
    Some(boot_instant()? + clock_tick() * u32::try_from(ticks).ok()?)
}

/// Whether a process of component `name` runs since before `instant` (say, a file's last change):
/// it still works with what it read before. One clock tick of slack for the rounding of the start
/// time; a restart follows a write by far more. False when no such process runs.
pub fn running_since_before(name: &str, instant: SystemTime) -> bool {
    let tick = clock_tick();
    find(name)
        .iter()
        .filter_map(|p| started(p.pid))
        .min()
        .is_some_and(|start| start + tick < instant)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn names_match_by_argv0_or_comm_with_the_script_in_argv1() {
        assert!(is_component(
            "kube-apiserver",
            &v(&["kube-apiserver", "--x"]),
            "kube-apiserver"
        ));
        assert!(is_component(
            "python3",
            &v(&["/usr/local/bin/kube-scheduler"]),
            "kube-scheduler"
        ));
        assert!(is_component(
            "kube-controller",
            &v(&[
                "/usr/bin/python3",
                "/usr/local/bin/kube-controller-manager",
                "--secure-port=10257"
            ]),
            "kube-controller-manager"
        ));
        // comm truncated, but the process is something else
        assert!(!is_component(
            "kube-controller",
            &v(&["/usr/bin/kube-controller-foo"]),
            "kube-controller-manager"
        ));
        assert!(!is_component(
            "bash",
            &v(&["bash", "-c", "kube-apiserver"]),
            "kube-apiserver"
        ));
        assert!(is_component(
            "kube-scheduler",
            &v(&["/usr/bin/python3", "/x/kube-scheduler"]),
            "kube-scheduler"
        ));
    }

    #[test]
    fn start_ticks_is_field_22_even_with_spaces_and_parens_in_comm() {
        let stat = "4242 (kube (x) y) S 1 4242 4242 0 -1 4194560 100 0 0 0 5 3 0 0 20 0 1 0 987654 12345 678";
        assert_eq!(start_ticks(stat), Some(987654));
        assert_eq!(start_ticks("1 (short) S 1"), None);
    }

    #[test]
    fn this_process_started_in_the_past_and_is_not_found_as_a_component() {
        let me = std::process::id() as i32;
        let start = started(me).expect("our own start time");
        assert!(start <= SystemTime::now());
        // not older than a day: the boot instant and the tick are right
        assert!(
            SystemTime::now().duration_since(start).unwrap_or_default()
                < Duration::from_secs(86_400)
        );
        assert!(!running_since_before(
            "kubeha-no-such-component",
            SystemTime::now()
        ));
    }

    #[test]
    fn flags_in_both_spellings() {
        let p = Process {
            pid: 1,
            comm: "kube-apiserver".into(),
            argv: v(&[
                "kube-apiserver",
                "--secure-port=7443",
                "--advertise-address",
                "10.0.0.1",
            ]),
        };
        assert_eq!(p.flag("secure-port").as_deref(), Some("7443"));
        assert_eq!(p.flag("advertise-address").as_deref(), Some("10.0.0.1"));
        assert_eq!(p.flag("tls-cert-file"), None);
    }
}
