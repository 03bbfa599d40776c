//! `original_dir`, the option the three file-writing modules (`kubeadm_config`,
//! `kubeconfig_server`, `apiserver_cert`) share: the store of originals the role's rollback
//! restores. Each module keeps a file's original before its first change, never in check mode,
//! never overwritten by a later change, with the file's mode, in 0700 directories, and never shows
//! a key's content.

mod common;

use common::*;
use serde_json::json;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

/// Where the store keeps `file` (an absolute path).
fn kept(store: &Path, file: &Path) -> PathBuf {
    store.join(file.strip_prefix("/").unwrap())
}

#[test]
fn each_writing_module_keeps_the_original_once() {
    let fx = Fixture::kubespray(Layout::Pinned);
    let store = fx.root().join("var/lib/kubeha/original");
    let kubeadm = fx.path("etc/kubernetes/kubeadm-config.yaml");
    let admin = fx.path("etc/kubernetes/admin.conf");
    let cert = fx.path("etc/kubernetes/ssl/apiserver.crt");
    let key = fx.path("etc/kubernetes/ssl/apiserver.key");
    fs::set_permissions(&kubeadm, fs::Permissions::from_mode(0o640)).unwrap();
    let (kubeadm0, admin0) = (fs::read(&kubeadm).unwrap(), fs::read(&admin).unwrap());
    let (cert0, key0) = (fs::read(&cert).unwrap(), fs::read(&key).unwrap());

    let kubeadm_opts = |endpoint: &str| {
        json!({"path": kubeadm, "control_plane_endpoint": endpoint, "cert_sans": [VIP],
               "original_dir": store, "backup": false})
    };
    let admin_opts = |server: &str| json!({"path": admin, "server": server, "original_dir": store, "backup": false});
    let cert_opts = |san: &str| {
        json!({"cert_path": cert, "key_path": key,
               "ca_cert_path": fx.path("etc/kubernetes/ssl/ca.crt"),
               "ca_key_path": fx.path("etc/kubernetes/ssl/ca.key"),
               "sans": [san], "original_dir": store, "backup": false})
    };

    // The three modules' calls that move the files to the endpoint `host`.
    let calls = |host: &str| {
        [
            ("kubeadm_config", kubeadm_opts(&format!("{host}:6443"))),
            (
                "kubeconfig_server",
                admin_opts(&format!("https://{host}:6443")),
            ),
            ("apiserver_cert", cert_opts(host)),
        ]
    };

    // Check mode predicts the changes and keeps nothing: the store is not even created.
    for (m, o) in calls(VIP) {
        let r = run_module(m, o, Mode::CHECK).ok();
        assert!(r.changed(), "{m}: {}", r.stdout);
    }
    assert!(!store.exists(), "check mode created {}", store.display());

    // The real changes keep each original, byte for byte and with its mode.
    for (m, o) in calls(VIP) {
        let r = run_module(m, o, Mode::NORMAL).ok();
        assert!(r.changed(), "{m}: {}", r.stdout);
        assert_no_secrets(&r.stdout, &fx.secrets, m);
        assert!(
            !r.stdout.contains(&String::from_utf8_lossy(&key0)[40..120]),
            "{m} showed the key"
        );
    }
    assert_ne!(fs::read(&kubeadm).unwrap(), kubeadm0);
    assert_ne!(fs::read(&cert).unwrap(), cert0);
    for (file, before, file_mode) in [
        (&kubeadm, &kubeadm0, 0o640),
        (&admin, &admin0, 0o600),
        (&cert, &cert0, mode(&cert)),
        (&key, &key0, 0o600),
    ] {
        let original = kept(&store, file);
        assert_eq!(
            &fs::read(&original).unwrap(),
            before,
            "{}",
            original.display()
        );
        assert_eq!(mode(&original), file_mode, "{}", original.display());
    }
    // Every directory the store created is private (the originals include the key).
    let mut dir = kept(&store, &key).parent().unwrap().to_path_buf();
    while dir.starts_with(&store) {
        assert_eq!(mode(&dir), 0o700, "{}", dir.display());
        dir.pop();
    }

    // A later change of the same files keeps the first originals.
    for (m, o) in calls("lb.kubeha.test") {
        let r = run_module(m, o, Mode::NORMAL).ok();
        assert!(r.changed(), "{m}: {}", r.stdout);
    }
    for (file, before) in [
        (&kubeadm, &kubeadm0),
        (&admin, &admin0),
        (&cert, &cert0),
        (&key, &key0),
    ] {
        assert_eq!(&fs::read(kept(&store, file)).unwrap(), before);
    }
}

#[test]
fn a_store_that_cannot_be_written_fails_before_the_file_changes() {
    let fx = Fixture::kubespray(Layout::Pinned);
    let admin = fx.path("etc/kubernetes/admin.conf");
    let before = fs::read(&admin).unwrap();
    // A regular file where the store's directory must be.
    let blocker = fx.root().join("var-lib-kubeha");
    fs::write(&blocker, b"not a directory").unwrap();
    let r = run_module(
        "kubeconfig_server",
        json!({"path": admin, "server": format!("https://{VIP}:6443"),
               "original_dir": blocker.join("original")}),
        Mode::NORMAL,
    );
    assert!(r.failed(), "{}", r.stdout);
    assert!(
        r.fail_msg().contains("var-lib-kubeha"),
        "the message names the store: {}",
        r.fail_msg()
    );
    assert_eq!(fs::read(&admin).unwrap(), before, "the file changed");
}
