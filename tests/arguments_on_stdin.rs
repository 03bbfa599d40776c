//! The action plugin runs a cached module binary as `BINARY -` with the arguments on standard
//! input (no arguments file on the host). The result must be the one the arguments file gives,
//! byte for byte, for a change, a check-mode prediction and a failure, and on every module.

mod common;

use common::*;
use serde_json::{json, Map, Value};
use std::io::Write;
use std::process::{Command, Stdio};

fn on_stdin(name: &str, args_text: &str) -> (String, bool) {
    let mut child = Command::new(bin_path(name))
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {name}: {e}"));
    child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(args_text.as_bytes())
        .expect("write the arguments");
    let out = child.wait_with_output().expect("wait for the module");
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        out.status.success(),
    )
}

fn args(options: Value, mode: Mode) -> String {
    let Value::Object(mut map) = options else {
        panic!("options must be an object")
    };
    add_ansible_keys(&mut map, mode);
    Value::Object(map).to_string()
}

#[test]
fn a_change_and_its_prediction_are_the_same_on_stdin_as_from_a_file() {
    for mode in [Mode::CHECK_DIFF, Mode::DIFF] {
        let by_file = Fixture::kubespray(Layout::Pinned);
        let by_stdin = Fixture::kubespray(Layout::Pinned);
        let rel = "etc/kubernetes/admin.conf";
        let options = |fx: &Fixture| json!({"path": fx.path(rel), "server": format!("https://{VIP}:6443"), "backup": false});
        let expected = run_module("kubeconfig_server", options(&by_file), mode).ok();
        let (stdout, ok) = on_stdin("kubeconfig_server", &args(options(&by_stdin), mode));
        assert!(ok, "{stdout}");
        // the paths differ (two fixtures): compare with the fixture root replaced
        let strip = |s: &str, fx: &Fixture| s.replace(&fx.tmp.path().display().to_string(), "ROOT");
        assert_eq!(
            strip(stdout.trim(), &by_stdin),
            strip(expected.stdout.trim(), &by_file)
        );
        // the fixtures' keys differ, so compare what the module changes, not the whole file
        let server_line = format!("    server: https://{VIP}:6443\n");
        let moved = |fx: &Fixture| fx.read(rel).contains(&server_line);
        assert_eq!(
            moved(&by_stdin),
            moved(&by_file),
            "both ways in wrote the same change"
        );
        assert_eq!(
            moved(&by_stdin),
            !mode.check,
            "check mode writes nothing, a real run moves the server"
        );
        assert!(expected.changed());
    }
}

#[test]
fn every_module_reads_its_arguments_from_stdin_and_fails_the_same_way() {
    for name in MODULES {
        // no options at all: each module names its first required option (or runs and fails the
        // same way); the point is that the two ways in give one answer
        let text = args(json!({}), Mode::CHECK);
        let by_file = run_module_raw(name, &text);
        let (stdout, _) = on_stdin(name, &text);
        assert_eq!(stdout, by_file.stdout, "{name}");
        let parsed: Map<String, Value> =
            serde_json::from_str(stdout.trim()).expect("one JSON object");
        assert!(parsed.contains_key("msg"), "{name}: {stdout}");
    }
}

#[test]
fn malformed_arguments_on_stdin_are_named_as_standard_input() {
    let (stdout, ok) = on_stdin("kubeconfig_server", "{oops");
    assert!(!ok);
    let parsed: Value = serde_json::from_str(stdout.trim()).expect("one JSON object");
    assert_eq!(parsed["failed"], json!(true));
    let msg = parsed["msg"].as_str().unwrap_or_default();
    assert!(
        msg.contains("standard input") && msg.contains("not valid JSON"),
        "{msg}"
    );
}
