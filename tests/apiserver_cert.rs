//! Integration tests of `apiserver_cert`: the binary runs exactly as Ansible runs it (argv[1] = a
//! JSON arguments file) on a kubeadm-like PKI made here with the openssl crate.

mod common;

use openssl::asn1::Asn1Time;
use openssl::bn::BigNum;
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{Id, PKey, Private};
use openssl::rsa::Rsa;
use openssl::x509::extension::{
    AuthorityKeyIdentifier, BasicConstraints, ExtendedKeyUsage, KeyUsage, SubjectAlternativeName,
};
use openssl::x509::{X509NameBuilder, X509};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_apiserver_cert");

#[derive(Clone, Copy)]
enum Alg {
    Rsa2048,
    EcP256,
}

fn new_key(alg: Alg) -> PKey<Private> {
    match alg {
        Alg::Rsa2048 => PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap(),
        Alg::EcP256 => {
            let g = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
            PKey::from_ec_key(EcKey::generate(&g).unwrap()).unwrap()
        }
    }
}

fn key_pem(key: &PKey<Private>) -> Vec<u8> {
    match key.id() {
        Id::RSA => key.rsa().unwrap().private_key_to_pem().unwrap(),
        _ => key.ec_key().unwrap().private_key_to_pem().unwrap(),
    }
}

fn make_leaf(ca: &X509, ca_key: &PKey<Private>, alg: Alg, sans: &[&str]) -> (X509, PKey<Private>) {
    let key = new_key(alg);
    let mut name = X509NameBuilder::new().unwrap();
    name.append_entry_by_text("CN", "kube-apiserver").unwrap();
    let name = name.build();
    let mut b = X509::builder().unwrap();
    b.set_version(2).unwrap();
    b.set_serial_number(&BigNum::from_u32(4242).unwrap().to_asn1_integer().unwrap())
        .unwrap();
    b.set_subject_name(&name).unwrap();
    b.set_issuer_name(ca.subject_name()).unwrap();
    b.set_pubkey(&key).unwrap();
    b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
        .unwrap();
    b.set_not_after(&Asn1Time::days_from_now(365).unwrap())
        .unwrap();
    b.append_extension(BasicConstraints::new().critical().build().unwrap())
        .unwrap();
    b.append_extension(
        KeyUsage::new()
            .critical()
            .digital_signature()
            .key_encipherment()
            .build()
            .unwrap(),
    )
    .unwrap();
    b.append_extension(ExtendedKeyUsage::new().server_auth().build().unwrap())
        .unwrap();
    let aki = AuthorityKeyIdentifier::new()
        .keyid(true)
        .build(&b.x509v3_context(Some(ca), None))
        .unwrap();
    b.append_extension(aki).unwrap();
    let mut san = SubjectAlternativeName::new();
    for s in sans {
        if s.parse::<std::net::IpAddr>().is_ok() {
            san.ip(s);
        } else {
            san.dns(s);
        }
    }
    let san = san.build(&b.x509v3_context(Some(ca), None)).unwrap();
    b.append_extension(san).unwrap();
    b.sign(ca_key, MessageDigest::sha256()).unwrap();
    (b.build(), key)
}

const OLD_SANS: [&str; 7] = [
    "master1",
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
    "10.233.0.1",
    "172.30.0.11",
];

/// A kubespray-like `/etc/kubernetes/ssl` in a temp dir.
struct Pki {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    ca: X509,
    ca_key: PKey<Private>,
}

impl Pki {
    fn new(alg: Alg) -> Pki {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("ssl");
        fs::create_dir(&dir).unwrap();
        let (ca, ca_key) = common::self_signed_ca("kubernetes");
        let (crt, key) = make_leaf(&ca, &ca_key, alg, &OLD_SANS);
        write(&dir.join("ca.crt"), &ca.to_pem().unwrap(), 0o644);
        write(&dir.join("ca.key"), &key_pem(&ca_key), 0o600);
        write(&dir.join("apiserver.crt"), &crt.to_pem().unwrap(), 0o644);
        write(&dir.join("apiserver.key"), &key_pem(&key), 0o600);
        Pki {
            _tmp: tmp,
            dir,
            ca,
            ca_key,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn args(&self, extra: Value) -> Value {
        let mut args = json!({
            "cert_path": self.path("apiserver.crt"),
            "key_path": self.path("apiserver.key"),
            "ca_cert_path": self.path("ca.crt"),
            "ca_key_path": self.path("ca.key"),
            "sans": ["172.30.0.10", "lb.kubeha.local", "KUBERNETES"],
            "_ansible_check_mode": false,
            "_ansible_diff": true,
            "_ansible_some_future_key": {"x": 1},
        });
        for (k, v) in extra.as_object().unwrap() {
            args[k] = v.clone();
        }
        args
    }

    fn snapshot(&self) -> BTreeMap<String, (Vec<u8>, u32)> {
        fs::read_dir(&self.dir)
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let meta = e.metadata().unwrap();
                (
                    e.file_name().to_string_lossy().into_owned(),
                    (
                        fs::read(e.path()).unwrap(),
                        meta.permissions().mode() & 0o7777,
                    ),
                )
            })
            .collect()
    }

    fn cert(&self) -> X509 {
        X509::from_pem(&fs::read(self.path("apiserver.crt")).unwrap()).unwrap()
    }

    fn key(&self) -> PKey<Private> {
        PKey::private_key_from_pem(&fs::read(self.path("apiserver.key")).unwrap()).unwrap()
    }
}

fn write(path: &Path, bytes: &[u8], mode: u32) {
    fs::write(path, bytes).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

/// Run the module like Ansible: one JSON args file as argv[1]; stdout must be one JSON object.
fn run(args: &Value) -> Value {
    // common::run_module_raw records every output for the suite-wide secret scan.
    let out = common::run_module_raw("apiserver_cert", &args.to_string());
    assert!(
        !out.stdout.contains("PRIVATE KEY"),
        "key material in output: {}",
        out.stdout
    );
    assert!(std::path::Path::new(BIN).exists());
    out.json
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

fn openssl_text(cert: &X509) -> String {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("c.pem");
    fs::write(&p, cert.to_pem().unwrap()).unwrap();
    let out = Command::new("openssl")
        .args(["x509", "-noout", "-text", "-in"])
        .arg(&p)
        .output()
        .expect("the openssl CLI (make deps installs it)");
    String::from_utf8(out.stdout).unwrap()
}

fn full_cycle(alg: Alg, expect_key_type: Id, expect_bits: u32) {
    let pki = Pki::new(alg);
    let original = pki.snapshot();
    let old_cert = pki.cert();

    // Check mode: predicts the change, writes nothing.
    let check = run(&pki.args(json!({"_ansible_check_mode": true})));
    assert_eq!(check["changed"], true, "{check}");
    assert_eq!(
        strings(&check["missing_sans"]),
        vec!["172.30.0.10", "lb.kubeha.local"]
    );
    let mut expected_after: Vec<String> = OLD_SANS.iter().map(|s| s.to_string()).collect();
    expected_after.extend(["172.30.0.10".to_string(), "lb.kubeha.local".to_string()]);
    assert_eq!(strings(&check["sans_after"]), expected_after);
    assert_eq!(pki.snapshot(), original, "check mode wrote something");

    // Real run.
    let real = run(&pki.args(json!({})));
    assert_eq!(real["changed"], true, "{real}");
    assert!(real.get("failed").is_none(), "{real}");
    assert_eq!(strings(&real["sans_after"]), expected_after);
    assert_eq!(strings(&real["sans_before"]), OLD_SANS.to_vec());
    let cert = pki.cert();
    let key = pki.key();
    assert!(
        cert.public_key().unwrap().public_eq(&key),
        "new pair does not match"
    );
    assert!(
        cert.verify(&pki.ca.public_key().unwrap()).unwrap(),
        "not signed by the CA"
    );
    assert_eq!(
        cert.subject_name().to_der().unwrap(),
        old_cert.subject_name().to_der().unwrap()
    );
    assert_eq!(key.id(), expect_key_type);
    assert_eq!(key.bits(), expect_bits);
    assert!(
        !old_cert.public_key().unwrap().public_eq(&key),
        "the key was not renewed"
    );
    assert_eq!(
        cert.authority_key_id().unwrap().as_slice(),
        pki.ca.subject_key_id().unwrap().as_slice()
    );
    assert_ne!(
        cert.serial_number().to_bn().unwrap(),
        old_cert.serial_number().to_bn().unwrap()
    );
    let text = openssl_text(&cert);
    assert!(text.contains("TLS Web Server Authentication"), "{text}");
    assert!(text.contains("CA:FALSE"), "{text}");
    assert!(
        text.contains("Digital Signature, Key Encipherment"),
        "{text}"
    );
    assert!(text.contains("X509v3 Key Usage: critical"), "{text}");
    assert!(
        text.contains("X509v3 Basic Constraints: critical"),
        "{text}"
    );
    assert!(text.contains("sha256WithRSAEncryption"), "{text}");
    assert!(
        text.contains("IP Address:172.30.0.10") && text.contains("DNS:lb.kubeha.local"),
        "{text}"
    );
    let mode = |name: &str| fs::metadata(pki.path(name)).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode("apiserver.key"), 0o600);
    assert_eq!(mode("apiserver.crt"), 0o644);
    // Backups hold the old pair, with the old modes; nothing else appeared.
    let backup = PathBuf::from(real["backup_file"].as_str().unwrap());
    let backup_key = PathBuf::from(real["backup_key_file"].as_str().unwrap());
    assert_eq!(fs::read(&backup).unwrap(), original["apiserver.crt"].0);
    assert_eq!(fs::read(&backup_key).unwrap(), original["apiserver.key"].0);
    assert_eq!(
        fs::metadata(&backup_key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let after = pki.snapshot();
    assert_eq!(after.len(), original.len() + 2, "{:?}", after.keys());
    assert_eq!(after["ca.crt"], original["ca.crt"]);
    assert_eq!(after["ca.key"], original["ca.key"]);
    assert!(real["not_after"].as_str().unwrap().ends_with('Z'));
    assert!(real["recovered"].is_null());
    assert!(real["diff"][0]["after"]
        .as_str()
        .unwrap()
        .contains("lb.kubeha.local"));

    // Second run: nothing to do, nothing touched.
    let again = run(&pki.args(json!({})));
    assert_eq!(again["changed"], false, "{again}");
    assert_eq!(pki.snapshot(), after);
}

#[test]
fn rsa_2048_cert_gets_missing_sans_and_keeps_everything_else() {
    full_cycle(Alg::Rsa2048, Id::RSA, 2048);
}

#[test]
fn ecdsa_p256_cert_keeps_its_key_type() {
    full_cycle(Alg::EcP256, Id::EC, 256);
}

#[test]
fn regenerate_always_and_no_backup_leave_no_extra_files() {
    let pki = Pki::new(Alg::Rsa2048);
    let original = pki.snapshot();
    let out =
        run(&pki.args(json!({"regenerate": "always", "backup": false, "sans": ["10.233.0.1"]})));
    assert_eq!(out["changed"], true, "{out}");
    assert_eq!(strings(&out["sans_after"]), OLD_SANS.to_vec());
    assert!(out.get("backup_file").is_none());
    let after = pki.snapshot();
    assert_eq!(after.len(), original.len(), "{:?}", after.keys());
    assert_ne!(after["apiserver.key"], original["apiserver.key"]);
}

fn assert_refused(pki: &Pki, args: Value, expect: &[&str]) {
    let before = pki.snapshot();
    for check_mode in [true, false] {
        let mut args = args.clone();
        args["_ansible_check_mode"] = json!(check_mode);
        let out = run(&args);
        assert_eq!(out["failed"], true, "{out}");
        assert_eq!(out["changed"], false, "{out}");
        let msg = out["msg"].as_str().unwrap();
        for e in expect {
            assert!(msg.contains(e), "{msg:?} lacks {e:?}");
        }
        assert_eq!(pki.snapshot(), before, "a refused run changed files");
    }
}

#[test]
fn missing_ca_key_is_refused_as_external_ca() {
    let pki = Pki::new(Alg::Rsa2048);
    fs::remove_file(pki.path("ca.key")).unwrap();
    assert_refused(
        &pki,
        pki.args(json!({})),
        &["ca.key", "external CA", "nothing was changed"],
    );
}

#[test]
fn cert_from_another_ca_is_refused() {
    let pki = Pki::new(Alg::Rsa2048);
    let (other, other_key) = common::self_signed_ca("kubernetes");
    let (crt, key) = make_leaf(&other, &other_key, Alg::Rsa2048, &OLD_SANS);
    write(&pki.path("apiserver.crt"), &crt.to_pem().unwrap(), 0o644);
    write(&pki.path("apiserver.key"), &key_pem(&key), 0o600);
    assert_refused(
        &pki,
        pki.args(json!({})),
        &["was not issued by the CA", "apiserver.crt"],
    );
}

#[test]
fn ca_key_not_matching_ca_cert_is_refused() {
    let pki = Pki::new(Alg::Rsa2048);
    write(&pki.path("ca.key"), &key_pem(&new_key(Alg::Rsa2048)), 0o600);
    assert_refused(
        &pki,
        pki.args(json!({})),
        &["is not the key of the CA certificate", "ca.key"],
    );
}

#[test]
fn regenerate_never_with_missing_sans_fails_with_the_list() {
    let pki = Pki::new(Alg::Rsa2048);
    assert_refused(
        &pki,
        pki.args(json!({"regenerate": "never"})),
        &["172.30.0.10", "lb.kubeha.local", "never"],
    );
}

#[test]
fn bad_options_are_refused_naming_the_option() {
    let pki = Pki::new(Alg::Rsa2048);
    assert_refused(
        &pki,
        pki.args(json!({"sans": ["172.30.0.10:6443"]})),
        &["option `sans`", "172.30.0.10:6443"],
    );
    assert_refused(
        &pki,
        pki.args(json!({"sans": []})),
        &["option `sans`", "required"],
    );
    assert_refused(
        &pki,
        pki.args(json!({"regenerate": "sometimes"})),
        &["option `regenerate`"],
    );
    assert_refused(
        &pki,
        pki.args(json!({"validity_days": 0})),
        &["option `validity_days`"],
    );
    assert_refused(
        &pki,
        pki.args(json!({"cert_file": "/x"})),
        &["cert_file", "supported options"],
    );
    assert_refused(
        &pki,
        pki.args(json!({"backup": "perhaps"})),
        &["option `backup`"],
    );
    let missing = pki.path("nope.crt");
    assert_refused(&pki, pki.args(json!({"cert_path": missing})), &["nope.crt"]);
}

/// Build the state a run killed between the key rename and the cert rename leaves behind.
fn interrupted_swap(pki: &Pki, corrupt_staged_cert: bool) -> (PKey<Private>, Vec<u8>) {
    let mut all: Vec<&str> = OLD_SANS.to_vec();
    all.push("172.30.0.10");
    all.push("lb.kubeha.local");
    let (new_crt, new_key) = make_leaf(&pki.ca, &pki.ca_key, Alg::Rsa2048, &all);
    let old_key = fs::read(pki.path("apiserver.key")).unwrap();
    let old_crt = fs::read(pki.path("apiserver.crt")).unwrap();
    write(
        &pki.path("apiserver.key.1.2026-01-01@00:00:00~"),
        &old_key,
        0o600,
    );
    write(
        &pki.path("apiserver.crt.1.2026-01-01@00:00:00~"),
        &old_crt,
        0o644,
    );
    let staged_cert = pki.path(".apiserver.crt.kubeha-1.tmp");
    let staged_key = pki.path(".apiserver.key.kubeha-1.tmp");
    let crt_bytes = if corrupt_staged_cert {
        make_leaf(&pki.ca, &pki.ca_key, Alg::Rsa2048, &all)
            .0
            .to_pem()
            .unwrap()
    } else {
        new_crt.to_pem().unwrap()
    };
    write(&staged_cert, &crt_bytes, 0o644);
    write(&staged_key, &key_pem(&new_key), 0o600);
    let journal = json!({
        "version": 1,
        "cert_path": pki.path("apiserver.crt"),
        "key_path": pki.path("apiserver.key"),
        "staged_cert": staged_cert,
        "staged_key": staged_key,
        "previous_cert": pki.path("apiserver.crt.1.2026-01-01@00:00:00~"),
        "previous_key": pki.path("apiserver.key.1.2026-01-01@00:00:00~"),
        "previous_are_temporary": false,
    });
    write(
        &pki.path(".apiserver.kubeha-swap.json"),
        &serde_json::to_vec(&journal).unwrap(),
        0o600,
    );
    // The kill happened right after the key rename.
    fs::rename(&staged_key, pki.path("apiserver.key")).unwrap();
    (new_key, old_crt)
}

#[test]
fn a_swap_killed_between_key_and_cert_rolls_forward() {
    let pki = Pki::new(Alg::Rsa2048);
    let (new_key, _) = interrupted_swap(&pki, false);
    assert!(
        !pki.cert().public_key().unwrap().public_eq(&pki.key()),
        "precondition: mismatched"
    );
    let before = pki.snapshot();

    // Check mode reports the pending recovery and writes nothing.
    let check = run(&pki.args(json!({"_ansible_check_mode": true})));
    assert_eq!(check["changed"], true, "{check}");
    assert!(
        check["recovered"]
            .as_str()
            .unwrap()
            .contains("would roll forward"),
        "{check}"
    );
    assert_eq!(check["missing_sans"], json!([]), "{check}");
    assert_eq!(pki.snapshot(), before);

    let out = run(&pki.args(json!({})));
    assert_eq!(out["changed"], true, "{out}");
    assert!(
        out["recovered"]
            .as_str()
            .unwrap()
            .contains("rolled forward"),
        "{out}"
    );
    assert!(pki.cert().public_key().unwrap().public_eq(&pki.key()));
    assert!(pki.key().public_eq(&new_key));
    assert!(!pki.path(".apiserver.kubeha-swap.json").exists());
    assert!(!pki.path(".apiserver.crt.kubeha-1.tmp").exists());
    let again = run(&pki.args(json!({})));
    assert_eq!(again["changed"], false, "{again}");
}

#[test]
fn a_swap_with_an_unusable_staged_cert_rolls_back_then_reissues() {
    let pki = Pki::new(Alg::Rsa2048);
    let (_, old_crt) = interrupted_swap(&pki, true);
    let out = run(&pki.args(json!({})));
    assert_eq!(out["changed"], true, "{out}");
    assert!(
        out["recovered"].as_str().unwrap().contains("rolled back"),
        "{out}"
    );
    // After the rollback the old cert lacked the SANs, so a new pair was issued and it matches.
    assert_ne!(fs::read(pki.path("apiserver.crt")).unwrap(), old_crt);
    assert!(pki.cert().public_key().unwrap().public_eq(&pki.key()));
    assert!(!pki.path(".apiserver.kubeha-swap.json").exists());
}
