//! The `apiserver_cert` module: recover an interrupted swap, decide (pure, [`super::decide`]),
//! issue ([`super::issue`]), swap through the journal ([`super::swap`]), verify what is on disk,
//! and report. Refusals happen before anything is written.

use super::decide::{decide, CertFacts, Regenerate};
use super::issue::{issue, IssueRequest};
use super::material::{
    chains_to, iso_time, key_matches, load_cert, load_key, name_text, serial_hex, KeyEncoding,
    KeySpec,
};
use super::san::{missing_sans, sans_of, to_strings, San};
use super::swap;
use crate::diff::FileDiff;
use crate::error::{Error, Result};
use crate::fsio;
use crate::options::Options;
use crate::protocol::ModuleOutput;
use openssl::x509::X509Ref;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

pub const MODULE: &str = "apiserver_cert";

/// The module's options.
#[derive(Debug, Clone)]
pub struct ApiserverCert {
    pub cert_path: PathBuf,
    pub key_path: PathBuf,
    pub ca_cert_path: PathBuf,
    pub ca_key_path: PathBuf,
    pub required_sans: Vec<San>,
    pub regenerate: Regenerate,
    pub backup: bool,
    pub validity_days: u32,
}

impl ApiserverCert {
    pub fn from_options(mut o: Options) -> Result<Self> {
        o.declare(&[
            "cert_path",
            "key_path",
            "ca_cert_path",
            "ca_key_path",
            "sans",
            "regenerate",
            "backup",
            "validity_days",
        ])?;
        let cert_path =
            PathBuf::from(o.string_or("cert_path", "/etc/kubernetes/ssl/apiserver.crt")?);
        let key_path = PathBuf::from(o.string_or("key_path", "/etc/kubernetes/ssl/apiserver.key")?);
        let ca_cert_path =
            PathBuf::from(o.string_or("ca_cert_path", "/etc/kubernetes/ssl/ca.crt")?);
        let ca_key_path = PathBuf::from(o.string_or("ca_key_path", "/etc/kubernetes/ssl/ca.key")?);
        let sans = o.string_list("sans")?;
        if sans.is_empty() {
            return Err(Error::option(
                "sans",
                "is required: list the DNS names and IP addresses the apiserver certificate must cover (e.g. the VIP)",
            ));
        }
        let required_sans = San::parse_list("sans", &sans)?;
        let regenerate = o.choice_or("regenerate", &Regenerate::CHOICES, "missing_sans")?;
        let regenerate = Regenerate::parse(&regenerate)
            .ok_or_else(|| Error::option("regenerate", "unknown value"))?;
        let backup = o.bool_or("backup", true)?;
        let validity_days = o.int_or("validity_days", 365, 1, 3650)? as u32;
        o.finish()?;
        Ok(ApiserverCert {
            cert_path,
            key_path,
            ca_cert_path,
            ca_key_path,
            required_sans,
            regenerate,
            backup,
            validity_days,
        })
    }

    /// Run the module.
    pub fn run(&self, check_mode: bool) -> Result<ModuleOutput> {
        // 1. An interrupted swap of an earlier run comes first.
        let pending = swap::inspect(&self.cert_path)?;
        let (recovered, cert_file, key_file) = match &pending {
            None => (
                self.sweep_leftovers(check_mode)?,
                self.cert_path.clone(),
                self.key_path.clone(),
            ),
            Some(p) if check_mode => {
                let (c, k) = p.effective_pair();
                (Some(p.describe(false)), c, k)
            }
            Some(p) => (
                Some(swap::recover(p)?)
                    .map(|r| match self.sweep_leftovers(false) {
                        Ok(Some(swept)) => Ok(format!("{r}; {swept}")),
                        Ok(None) => Ok(r),
                        Err(e) => Err(e),
                    })
                    .transpose()?,
                self.cert_path.clone(),
                self.key_path.clone(),
            ),
        };

        // 2. Facts, and refusals that need no CA key.
        let ca_cert = load_cert(&self.ca_cert_path)?;
        let cert = load_cert(&cert_file)?;
        let key_bytes = fsio::read(&key_file)?;
        let key = super::material::parse_key(&key_file, &key_bytes)?;
        if !chains_to(&cert, &ca_cert) {
            return Err(Error::Refused(format!(
                "{} was not issued by the CA in {} (its issuer is {}, the CA is {}); nothing was changed. Fix: point ca_cert_path/ca_key_path at the CA that signed it, or restore the cluster's own apiserver certificate",
                self.cert_path.display(),
                self.ca_cert_path.display(),
                name_text(cert.issuer_name()),
                name_text(ca_cert.subject_name())
            )));
        }
        let sans_before = sans_of(&cert);
        let facts = CertFacts {
            sans: sans_before.clone(),
            key_matches: key_matches(&cert, &key),
        };
        let decision = decide(&facts, &self.required_sans, self.regenerate);
        if let Some(why) = &decision.refused {
            return Err(Error::Refused(format!(
                "{} needs a new certificate ({why}) but regenerate is `never`; nothing was changed. Fix: use regenerate: missing_sans, or install a certificate covering: {}",
                self.cert_path.display(),
                to_strings(&self.required_sans).join(", ")
            )));
        }

        let mut out = ModuleOutput::new(false, "");
        out.set("sans_before", to_strings(&sans_before));
        out.set("missing_sans", to_strings(&decision.missing));
        out.set("reasons", decision.reasons.clone());
        out.set(
            "recovered",
            recovered.clone().map(Value::String).unwrap_or(Value::Null),
        );
        if !decision.reissue() {
            out.changed = recovered.is_some();
            out.msg = match &recovered {
                Some(r) => format!("{r}; the certificate covers every required SAN"),
                None => format!(
                    "{} already covers every required SAN",
                    self.cert_path.display()
                ),
            };
            out.set("sans_after", to_strings(&sans_before));
            out.set("not_after", iso_time(cert.not_after())?);
            out.set("serial", serial_hex(&cert));
            return Ok(out);
        }

        // 3. Issuing needs the CA key, and it must be the CA's.
        let ca_key = match load_ca_key(&self.ca_key_path)? {
            Some(k) => k,
            None => {
                return Err(Error::Refused(format!(
                    "{} does not exist: the cluster uses an external CA (kubespray's kube_external_ca_mode), so kubeha cannot issue the apiserver certificate; nothing was changed. Fix: have your CA issue {} with the SANs {} (plus the current ones: {}), install it with its key at {}, then rerun (use regenerate: never to only verify it)",
                    self.ca_key_path.display(),
                    self.cert_path.display(),
                    to_strings(&decision.missing).join(", "),
                    to_strings(&sans_before).join(", "),
                    self.key_path.display()
                )))
            }
        };
        let ca_public = ca_cert
            .public_key()
            .map_err(|_| Error::content(&self.ca_cert_path, "has an unreadable public key"))?;
        if !ca_public.public_eq(&ca_key) {
            return Err(Error::Refused(format!(
                "{} is not the key of the CA certificate {}; nothing was changed. Fix: point ca_key_path at the key of that CA (kubespray: /etc/kubernetes/ssl/ca.key)",
                self.ca_key_path.display(),
                self.ca_cert_path.display()
            )));
        }
        let public = cert
            .public_key()
            .map_err(|_| Error::content(&cert_file, "has an unreadable public key"))?;
        let key_spec = KeySpec::of(&public, &cert_file)?;
        let sans_after = decision.sans_after.clone();
        out.set("sans_after", to_strings(&sans_after));
        out.changed = true;
        out.diffs.push(FileDiff::new(
            &self.cert_path.display().to_string(),
            describe_cert(&cert, &sans_before),
            format!(
                "subject: {}\nSANs:\n{}key: new {}\n",
                name_text(cert.subject_name()),
                san_lines(&sans_after),
                key_spec.describe()
            ),
        ));
        if check_mode {
            out.msg = format!(
                "would issue a new {} certificate ({}) and replace {} and {}",
                key_spec.describe(),
                decision.reasons.join("; "),
                self.cert_path.display(),
                self.key_path.display()
            );
            out.set("not_after", Value::Null);
            out.set("serial", Value::Null);
            return Ok(out);
        }

        // 4. Issue, check in memory, swap, check on disk.
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        let request = IssueRequest {
            subject: cert.subject_name(),
            sans: &sans_after,
            key_spec,
            key_encoding: KeyEncoding::of_pem(&key_bytes),
            validity_days: self.validity_days,
            now_unix: now,
        };
        let issued = issue(&request, &ca_cert, &ca_key)?;
        self.verify_pair(
            &issued.cert,
            &issued.key_pem,
            &ca_cert,
            "the newly issued pair",
        )?;
        let previous = swap::copy_previous(&self.cert_path, &self.key_path, self.backup)?;
        swap::swap_pair(
            &self.cert_path,
            &self.key_path,
            &issued.cert_pem,
            &issued.key_pem,
            &previous,
        )?;
        let on_disk = load_cert(&self.cert_path)?;
        let on_disk_key = fsio::read(&self.key_path)?;
        self.verify_pair(&on_disk, &on_disk_key, &ca_cert, "the installed pair")?;

        out.msg = format!(
            "issued a new {} certificate for {} ({})",
            key_spec.describe(),
            self.cert_path.display(),
            decision.reasons.join("; ")
        );
        if let Some(r) = recovered {
            out.msg = format!("{r}; {}", out.msg);
        }
        out.set("not_after", iso_time(on_disk.not_after())?);
        out.set("serial", serial_hex(&on_disk));
        if self.backup {
            out.set("backup_file", previous.cert.display().to_string());
            out.set("backup_key_file", previous.key.display().to_string());
        }
        Ok(out)
    }

    /// Remove (or, in check mode, name) the hidden files a run killed before its swap journal was
    /// complete left beside the pair; they may hold copies of the private key.
    fn sweep_leftovers(&self, check_mode: bool) -> Result<Option<String>> {
        let found = swap::leftovers(&self.cert_path, &self.key_path);
        if found.is_empty() {
            return Ok(None);
        }
        let names: Vec<String> = found.iter().map(|p| p.display().to_string()).collect();
        if check_mode {
            return Ok(Some(format!(
                "would remove {} leftover file(s) of an interrupted run: {}",
                found.len(),
                names.join(", ")
            )));
        }
        swap::remove_leftovers(&found)?;
        Ok(Some(format!(
            "removed {} leftover file(s) of an interrupted run: {}",
            found.len(),
            names.join(", ")
        )))
    }

    fn verify_pair(&self, cert: &X509Ref, key_pem: &[u8], ca: &X509Ref, what: &str) -> Result<()> {
        let key = super::material::parse_key(&self.key_path, key_pem)?;
        let mut problems = Vec::new();
        if !key_matches(cert, &key) {
            problems.push("key and certificate do not match".to_string());
        }
        if !chains_to(cert, ca) {
            problems.push("certificate does not chain to the CA".to_string());
        }
        let missing = missing_sans(&sans_of(cert), &self.required_sans);
        if !missing.is_empty() {
            problems.push(format!("SANs missing: {}", to_strings(&missing).join(", ")));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(Error::Refused(format!(
                "{what} failed verification ({}); please report this",
                problems.join("; ")
            )))
        }
    }
}

fn load_ca_key(path: &Path) -> Result<Option<openssl::pkey::PKey<openssl::pkey::Private>>> {
    match std::fs::metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        _ => load_key(path).map(Some),
    }
}

fn san_lines(sans: &[San]) -> String {
    sans.iter().map(|s| format!("  - {s}\n")).collect()
}

fn describe_cert(cert: &X509Ref, sans: &[San]) -> String {
    format!(
        "subject: {}\nSANs:\n{}serial: {}\n",
        name_text(cert.subject_name()),
        san_lines(sans),
        serial_hex(cert)
    )
}
