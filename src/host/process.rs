//! Finding a control-plane process through /proc: by `comm` (the kernel truncates it to 15
//! bytes; for a shebang script it is the script's name) or by the base name of argv[0] (or of
//! argv[1] when argv[0] is an interpreter), skipping zombies and ourselves. Also reads flags such
//! as `--secure-port` from its command line.

use std::fs;
use std::path::Path;

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
