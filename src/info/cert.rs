//! Facts about the apiserver serving certificate for `control_plane_info`: where it is
//! (`<dir>/ssl` as kubespray, or `<dir>/pki` as kubeadm), its SANs, validity, whether it chains to
//! the cluster CA and matches its key. Reuses [`crate::pki::material`] and [`crate::pki::san`];
//! the key is loaded only to compare public halves and never reported.

use crate::pki::material;
use crate::pki::san::{sans_of, San};
use serde_json::{json, Map, Value};
use std::path::{Path, PathBuf};

/// `<kube_config_dir>/ssl` when it exists (kubespray), else `<kube_config_dir>/pki` (kubeadm).
pub fn certificates_dir(kube_config_dir: &Path) -> PathBuf {
    let ssl = kube_config_dir.join("ssl");
    if ssl.is_dir() {
        ssl
    } else {
        kube_config_dir.join("pki")
    }
}

/// The apiserver certificate's facts as a JSON object.
pub fn apiserver_fact(dir: &Path, warnings: &mut Vec<String>) -> Value {
    let cert_path = dir.join("apiserver.crt");
    let key_path = dir.join("apiserver.key");
    let ca_path = dir.join("ca.crt");
    let mut m = Map::new();
    m.insert("path".into(), json!(cert_path.display().to_string()));
    if !cert_path.exists() {
        m.insert("present".into(), json!(false));
        return Value::Object(m);
    }
    m.insert("present".into(), json!(true));
    let cert = match material::load_cert(&cert_path) {
        Ok(c) => c,
        Err(e) => {
            warnings.push(e.to_string());
            m.insert("error".into(), json!(e.to_string()));
            return Value::Object(m);
        }
    };
    m.insert(
        "subject".into(),
        json!(material::name_text(cert.subject_name())),
    );
    let sans = sans_of(&cert);
    let dns: Vec<String> = sans
        .iter()
        .filter_map(|s| match s {
            San::Dns(d) => Some(d.clone()),
            _ => None,
        })
        .collect();
    let ips: Vec<String> = sans
        .iter()
        .filter_map(|s| match s {
            San::Ip(i) => Some(i.to_string()),
            _ => None,
        })
        .collect();
    m.insert("dns_sans".into(), json!(dns));
    m.insert("ip_sans".into(), json!(ips));
    m.insert(
        "not_before".into(),
        json!(material::iso_time(cert.not_before()).ok()),
    );
    m.insert(
        "not_after".into(),
        json!(material::iso_time(cert.not_after()).ok()),
    );
    m.insert("serial".into(), json!(material::serial_hex(&cert)));
    let chains = match material::load_cert(&ca_path) {
        Ok(ca) => json!(material::chains_to(&cert, &ca)),
        Err(e) => {
            warnings.push(e.to_string());
            Value::Null
        }
    };
    m.insert("ca_path".into(), json!(ca_path.display().to_string()));
    m.insert("chains_to_ca".into(), chains);
    m.insert("key_path".into(), json!(key_path.display().to_string()));
    let matches = if key_path.exists() {
        match material::load_key(&key_path) {
            Ok(key) => json!(material::key_matches(&cert, &key)),
            Err(e) => {
                warnings.push(e.to_string());
                Value::Null
            }
        }
    } else {
        warnings.push(format!("{} is missing", key_path.display()));
        Value::Null
    };
    m.insert("matches_key".into(), matches);
    Value::Object(m)
}
