//! The real-world corpus (`tests/fixtures/realworld/`, copied from the team's shared corpus with its
//! SOURCES.md: kubespray and kind renders, kubeadm's own examples, kubectl-written kubeconfigs,
//! files nobody on kubeha wrote) run through the built `kubeadm_config` and `kubeconfig_server`
//! binaries as Ansible runs them, each file handled as SOURCES.md's expected column says:
//! - an edit: the module changes exactly the intended fields (re-parsed, every other value equal,
//!   every comment kept), and a second run changes nothing;
//! - a refusal: `failed`, the message names the file, and the file is byte for byte as it was.

mod common;

use common::*;
use serde_json::json;
use serde_yaml_ng::Value as Yaml;
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

const ENDPOINT: &str = "lb.kubeha.test:8443";
const SANS: [&str; 2] = ["lb.kubeha.test", "10.0.0.100"];
const SERVER: &str = "https://lb.kubeha.test:8443";

fn corpus(kind: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/realworld")
        .join(kind)
}

/// SOURCES.md's table rows of one section: file name -> last column.
fn expected_column(section: &str) -> BTreeMap<String, String> {
    let text = fs::read_to_string(corpus("SOURCES.md")).expect("SOURCES.md");
    let body = text
        .split("\n## ")
        .find(|s| s.starts_with(section))
        .unwrap_or_else(|| panic!("SOURCES.md has no section {section:?}"));
    body.lines()
        .filter(|l| l.starts_with("| ") && !l.starts_with("| file") && !l.starts_with("|---"))
        .filter_map(|l| {
            let cells: Vec<&str> = l.trim_matches('|').split(" | ").map(str::trim).collect();
            Some((cells.first()?.to_string(), cells.last()?.to_string()))
        })
        .collect()
}

fn files(kind: &str) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(corpus(kind))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn documents(text: &str) -> Vec<Yaml> {
    serde_yaml_ng::Deserializer::from_str(text)
        .map(|d| serde::Deserialize::deserialize(d).expect("a YAML document"))
        .collect()
}

/// A scratch copy of one corpus file (the modules write beside it: backups, temporary files).
fn scratch(kind: &str, name: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    fs::copy(corpus(kind).join(name), &path).unwrap();
    (dir, path)
}

/// Every `# comment` of `before` is still in `after`.
fn assert_comments_kept(before: &str, after: &str, name: &str) {
    for line in before.lines() {
        if let Some(at) = line
            .find(" #")
            .or_else(|| line.trim_start().starts_with('#').then_some(0))
        {
            let comment = line[at..].trim();
            assert!(after.contains(comment), "{name}: comment {comment:?} lost");
        }
    }
}

/// An edited file is edited once: the same options again change nothing.
fn assert_second_run_unchanged(module: &str, options: serde_json::Value, name: &str) {
    let again = run_module(module, options, Mode::NORMAL).ok();
    assert!(
        !again.changed(),
        "{name}: second run changed: {}",
        again.stdout
    );
}

fn assert_refused(
    module: &str,
    options: serde_json::Value,
    path: &Path,
    original: &[u8],
    name: &str,
) {
    let out = run_module(module, options, Mode::NORMAL);
    let msg = out.fail_msg();
    assert!(
        msg.contains(&path.display().to_string()),
        "{name}: message does not name the file: {msg}"
    );
    assert_eq!(
        fs::read(path).unwrap(),
        original,
        "{name}: changed although refused"
    );
}

#[test]
fn every_kubeadm_config_of_the_corpus_is_handled_as_expected() {
    let expected = expected_column("kubeadm configs");
    let names: Vec<String> = files("kubeadm");
    assert_eq!(
        names,
        expected.keys().cloned().collect::<Vec<_>>(),
        "corpus files vs SOURCES.md rows"
    );
    let (mut edited, mut refused) = (0, 0);
    for name in &names {
        let (_dir, path) = scratch("kubeadm", name);
        let original = fs::read(&path).unwrap();
        let options = json!({"path": path, "control_plane_endpoint": ENDPOINT, "cert_sans": SANS});
        let verdict = &expected[name];
        if verdict.starts_with("refuse") {
            assert_refused("kubeadm_config", options, &path, &original, name);
            refused += 1;
            continue;
        }
        assert_eq!(verdict, "edit", "{name}: unknown expectation {verdict:?}");
        let out = run_module("kubeadm_config", options.clone(), Mode::NORMAL).ok();
        assert!(out.changed(), "{name}: {}", out.stdout);
        let before = String::from_utf8(original).unwrap();
        let after = fs::read_to_string(&path).unwrap();
        let (docs_before, docs_after) = (documents(&before), documents(&after));
        assert_eq!(docs_before.len(), docs_after.len(), "{name}: documents");
        let mut clusters = 0;
        for (b, a) in docs_before.iter().zip(&docs_after) {
            let mut expect = b.clone();
            if b.get("kind").and_then(Yaml::as_str) == Some("ClusterConfiguration") {
                clusters += 1;
                assert_eq!(a["controlPlaneEndpoint"].as_str(), Some(ENDPOINT), "{name}");
                let sans_after: Vec<&str> = a["apiServer"]["certSANs"]
                    .as_sequence()
                    .unwrap_or_else(|| panic!("{name}: no apiServer.certSANs after the edit"))
                    .iter()
                    .filter_map(Yaml::as_str)
                    .collect();
                let sans_before: Vec<&str> = b
                    .get("apiServer")
                    .and_then(|s| s.get("certSANs"))
                    .and_then(Yaml::as_sequence)
                    .map(|s| s.iter().filter_map(Yaml::as_str).collect())
                    .unwrap_or_default();
                assert_eq!(
                    &sans_after[..sans_before.len()],
                    &sans_before[..],
                    "{name}: existing SANs kept in order"
                );
                for san in SANS {
                    assert!(
                        sans_after.contains(&san),
                        "{name}: {san} missing from {sans_after:?}"
                    );
                }
                // Everything else as it was.
                let map = expect.as_mapping_mut().unwrap();
                map.insert("controlPlaneEndpoint".into(), ENDPOINT.into());
                let api = map
                    .entry("apiServer".into())
                    .or_insert(Yaml::Mapping(Default::default()));
                if !api.is_mapping() {
                    *api = Yaml::Mapping(Default::default());
                }
                api.as_mapping_mut()
                    .unwrap()
                    .insert("certSANs".into(), a["apiServer"]["certSANs"].clone());
            }
            assert_eq!(
                &expect, a,
                "{name}: a value other than controlPlaneEndpoint and certSANs changed"
            );
        }
        assert_eq!(clusters, 1, "{name}: one ClusterConfiguration");
        assert_comments_kept(&before, &after, name);
        assert_second_run_unchanged("kubeadm_config", options, name);
        edited += 1;
    }
    assert_eq!(
        (edited, refused),
        (15, 3),
        "kubeadm configs edited, refused"
    );
}

enum Kubeconfig {
    Edit,
    Refuse,
    /// No usable current context: refused without `cluster`, edited with it.
    RefuseUnlessCluster,
}

/// SOURCES.md's notes column for the kubeconfigs, as expectations.
fn kubeconfig_expectation(name: &str, notes: &str) -> Kubeconfig {
    if notes.contains("refuse unless `cluster` given") {
        Kubeconfig::RefuseUnlessCluster
    } else if notes.contains("refuse") || name == "kind-test-merge-expected-1.yaml" {
        // merge-expected-1's note is "same": the placeholder data of the row above
        Kubeconfig::Refuse
    } else {
        Kubeconfig::Edit
    }
}

/// The file names of a SOURCES.md cell: `a-1.yaml, -2.yaml` names `a-1.yaml` and `a-2.yaml`.
fn row_files(cell: &str) -> Vec<String> {
    let mut parts = cell.split(", ");
    let first = parts.next().unwrap_or_default().to_string();
    let stem = first.rfind('-').map_or("", |i| &first[..i]).to_string();
    let mut out = vec![first.clone()];
    out.extend(parts.map(|p| {
        if p.starts_with('-') {
            format!("{stem}{p}")
        } else {
            p.to_string()
        }
    }));
    out
}

/// The cluster the current context uses.
fn current_cluster(doc: &Yaml) -> Option<String> {
    let current = doc.get("current-context")?.as_str()?;
    doc.get("contexts")?
        .as_sequence()?
        .iter()
        .find(|c| c.get("name").and_then(Yaml::as_str) == Some(current))?
        .get("context")?
        .get("cluster")?
        .as_str()
        .map(String::from)
}

fn check_kubeconfig_edit(path: &Path, options: serde_json::Value, cluster: &str, name: &str) {
    let before = fs::read_to_string(path).unwrap();
    let out = run_module("kubeconfig_server", options.clone(), Mode::NORMAL).ok();
    assert!(out.changed(), "{name}: {}", out.stdout);
    let after = fs::read_to_string(path).unwrap();
    let mut expect = documents(&before).remove(0);
    let parsed_after = documents(&after).remove(0);
    let mut hits = 0;
    for entry in expect["clusters"].as_sequence_mut().unwrap() {
        if entry.get("name").and_then(Yaml::as_str) == Some(cluster) {
            entry["cluster"]
                .as_mapping_mut()
                .unwrap()
                .insert("server".into(), SERVER.into());
            hits += 1;
        }
    }
    assert_eq!(hits, 1, "{name}: cluster {cluster}");
    assert_eq!(
        expect, parsed_after,
        "{name}: more than the server of {cluster} changed"
    );
    let (removed, added) = line_changes(&before, &after);
    assert_eq!(
        (removed.len(), added.len()),
        (1, 1),
        "{name}: one line changed: {removed:?} -> {added:?}"
    );
    assert!(added[0].contains(SERVER), "{name}: {added:?}");
    assert_comments_kept(&before, &after, name);
    assert_second_run_unchanged("kubeconfig_server", options, name);
}

#[test]
fn every_kubeconfig_of_the_corpus_is_handled_as_expected() {
    let notes = expected_column("kubeconfigs");
    let names = files("kubeconfig");
    for name in &names {
        let row = notes
            .iter()
            .find(|(files, _)| row_files(files).iter().any(|f| f == name))
            .unwrap_or_else(|| panic!("{name}: no row in SOURCES.md"));
        let (_dir, path) = scratch("kubeconfig", name);
        let original = fs::read(&path).unwrap();
        let plain = json!({"path": path, "server": SERVER});
        match kubeconfig_expectation(name, row.1) {
            Kubeconfig::Refuse => {
                assert_refused("kubeconfig_server", plain, &path, &original, name)
            }
            Kubeconfig::Edit => {
                let doc = documents(&String::from_utf8(original).unwrap()).remove(0);
                let cluster = current_cluster(&doc).unwrap_or_else(|| {
                    // a single cluster and no context to name it (webhook configs)
                    doc["clusters"][0]["name"].as_str().unwrap().to_string()
                });
                check_kubeconfig_edit(&path, plain, &cluster, name);
            }
            Kubeconfig::RefuseUnlessCluster => {
                assert_refused("kubeconfig_server", plain, &path, &original, name);
                let doc = documents(&String::from_utf8(original).unwrap()).remove(0);
                let cluster = doc["clusters"][0]["name"].as_str().unwrap().to_string();
                let named = json!({"path": path, "server": SERVER, "cluster": cluster});
                check_kubeconfig_edit(&path, named, &cluster, name);
            }
        }
    }
    assert_eq!(names.len(), 21, "corpus size");
}
