//! `kubeha.control_plane.apiserver_cert`: make the apiserver serving certificate cover the
//! endpoint. Plan: look for an interrupted swap of an earlier run and leftovers (read-only), then
//! decide on the pair that will be in place ([`crate::pki::decide`], pure), with every refusal
//! (wrong CA, `regenerate: never`, external CA) before anything is written. Apply: recover the
//! interrupted swap first, then issue ([`crate::pki::issue`]), swap through the journal
//! ([`crate::pki::swap`]) and verify what is on disk. Docs: the sidecar `apiserver_cert.yml`.

use crate::diff::FileDiff;
use crate::error::{Error, Result};
use crate::file_change;
use crate::fsio;
use crate::options::{Default, Kind, ModuleSpec, OptionSpec, Options};
use crate::pki::decide::{decide, CertFacts, Decision, Regenerate};
use crate::pki::issue::{issue, IssueRequest};
use crate::pki::material::{
    self, chains_to, iso_time, key_matches, load_cert, load_key, name_text, serial_hex,
    KeyEncoding, KeySpec,
};
use crate::pki::san::{missing_sans, sans_of, to_strings, San};
use crate::pki::swap::{self, Pending, Previous};
use crate::protocol::{Module, ModuleOutput};
use openssl::pkey::{PKey, Private};
use openssl::x509::{X509Ref, X509};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

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
    pub original_dir: Option<PathBuf>,
}

/// What is on disk and what must happen to it.
pub struct Plan {
    /// The journal of a swap an earlier run did not finish: recovered before anything else.
    pending: Option<Pending>,
    /// Hidden files a run killed before its journal was complete left (no journal then).
    leftovers: Vec<PathBuf>,
    /// The decision on the pair in place once recovery ran; `None` when deciding on it failed
    /// and recovery must run first, as it does without a plan (apply decides again then).
    decided: Option<Decided>,
}

/// The facts of the pair the decision was made on, and the decision.
#[derive(Clone)]
pub struct Decided {
    ca_cert: X509,
    cert: X509,
    key_bytes: Vec<u8>,
    sans_before: Vec<San>,
    not_after: String,
    decision: Decision,
    /// The CA key and the new key's spec, when a new certificate is issued.
    issuing: Option<(PKey<Private>, KeySpec)>,
}

/// What apply did (in check mode: would do).
pub struct Applied {
    recovered: Option<String>,
    decided: Decided,
    installed: Option<Installed>,
}

/// The new certificate as read back from disk, and the copies of the old pair.
pub struct Installed {
    not_after: String,
    serial: String,
    previous: Previous,
}

impl Module for ApiserverCert {
    const SPEC: &'static ModuleSpec = &ModuleSpec {
        name: "apiserver_cert",
        options: &[
            OptionSpec::new("cert_path", Kind::Path, "The serving certificate.")
                .default(Default::Str("/etc/kubernetes/ssl/apiserver.crt")),
            OptionSpec::new(
                "key_path",
                Kind::Path,
                "Its private key (mode kept, normally 0600).",
            )
            .default(Default::Str("/etc/kubernetes/ssl/apiserver.key")),
            OptionSpec::new("ca_cert_path", Kind::Path, "The cluster CA certificate.")
                .default(Default::Str("/etc/kubernetes/ssl/ca.crt")),
            OptionSpec::new(
                "ca_key_path",
                Kind::Path,
                "The cluster CA key. Missing means an external CA; then the module refuses to issue.",
            )
            .default(Default::Str("/etc/kubernetes/ssl/ca.key")),
            OptionSpec::new(
                "sans",
                Kind::StrList,
                "DNS names and IP addresses the certificate must cover (for example the VIP and its DNS name).",
            )
            .required(),
            OptionSpec::new("regenerate", Kind::Str, REGENERATE_DOC)
                .choices(&Regenerate::CHOICES)
                .default(Default::Str("missing_sans")),
            OptionSpec::new("backup", Kind::Bool, BACKUP_DOC).default(Default::Bool(true)),
            OptionSpec::new(
                "validity_days",
                Kind::Int { min: 1, max: 3650 },
                "Validity of a new certificate in days (1-3650).",
            )
            .default(Default::Int(365)),
            file_change::ORIGINAL_DIR_OPTION,
        ],
    };
    type Plan = Plan;
    type Applied = Applied;

    fn from_options(o: &Options) -> Result<Self> {
        let regenerate = o.string("regenerate")?;
        Ok(ApiserverCert {
            cert_path: o.path("cert_path")?,
            key_path: o.path("key_path")?,
            ca_cert_path: o.path("ca_cert_path")?,
            ca_key_path: o.path("ca_key_path")?,
            required_sans: San::parse_list("sans", &o.list("sans")?)?,
            regenerate: Regenerate::parse(&regenerate)
                .ok_or_else(|| Error::option("regenerate", "unknown value"))?,
            backup: o.bool("backup")?,
            validity_days: o.int("validity_days")? as u32,
            original_dir: o.opt_path("original_dir")?,
        })
    }

    fn plan(&self) -> Result<Plan> {
        let pending = swap::inspect(&self.cert_path)?;
        let (leftovers, decided) = match &pending {
            None => {
                let leftovers = swap::leftovers(&self.cert_path, &self.key_path);
                // Leftovers may hold copies of the private key: they go before any refusal.
                let decided = match self.decide(&self.cert_path, &self.key_path) {
                    Ok(d) => Some(d),
                    Err(_) if !leftovers.is_empty() => None,
                    Err(e) => return Err(e),
                };
                (leftovers, decided)
            }
            Some(p) => {
                let (cert, key) = p.effective_pair();
                (Vec::new(), self.decide(&cert, &key).ok())
            }
        };
        Ok(Plan {
            pending,
            leftovers,
            decided,
        })
    }

    fn apply(&self, plan: &Plan, check_mode: bool) -> Result<Applied> {
        // 1. An interrupted swap of an earlier run comes first.
        let recovered = match (&plan.pending, check_mode) {
            (None, _) => self.sweep_leftovers(&plan.leftovers, check_mode)?,
            (Some(p), true) => Some(p.describe(false)),
            (Some(p), false) => {
                let r = swap::recover(p)?;
                let left = swap::leftovers(&self.cert_path, &self.key_path);
                Some(match self.sweep_leftovers(&left, false)? {
                    Some(swept) => format!("{r}; {swept}"),
                    None => r,
                })
            }
        };
        // 2. The decision, on the pair now in place (as predicted in check mode).
        let decided = match (&plan.decided, &plan.pending) {
            (Some(d), _) if check_mode || recovered.is_none() => d.clone(),
            (_, Some(p)) if check_mode => {
                let (cert, key) = p.effective_pair();
                self.decide(&cert, &key)?
            }
            _ => self.decide(&self.cert_path, &self.key_path)?,
        };
        let installed = match (&decided.issuing, check_mode) {
            (Some((ca_key, key_spec)), false) => Some(self.install(&decided, ca_key, *key_spec)?),
            _ => None,
        };
        Ok(Applied {
            recovered,
            decided,
            installed,
        })
    }

    fn report(&self, _plan: Plan, applied: Applied, _check_mode: bool) -> ModuleOutput {
        let Applied {
            recovered,
            decided: d,
            installed,
        } = applied;
        let mut out = ModuleOutput::new(false, "");
        out.set("sans_before", to_strings(&d.sans_before));
        out.set("missing_sans", to_strings(&d.decision.missing));
        out.set("reasons", d.decision.reasons.clone());
        out.set(
            "recovered",
            recovered.clone().map(Value::String).unwrap_or(Value::Null),
        );
        let Some((_, key_spec)) = &d.issuing else {
            out.changed = recovered.is_some();
            out.msg = match &recovered {
                Some(r) => format!("{r}; the certificate covers every required SAN"),
                None => format!(
                    "{} already covers every required SAN",
                    self.cert_path.display()
                ),
            };
            out.set("sans_after", to_strings(&d.sans_before));
            out.set("not_after", d.not_after.clone());
            out.set("serial", serial_hex(&d.cert));
            return out;
        };
        out.set("sans_after", to_strings(&d.decision.sans_after));
        out.changed = true;
        out.diffs.push(FileDiff::new(
            &self.cert_path.display().to_string(),
            describe_cert(&d.cert, &d.sans_before),
            format!(
                "subject: {}\nSANs:\n{}key: new {}\n",
                name_text(d.cert.subject_name()),
                san_lines(&d.decision.sans_after),
                key_spec.describe()
            ),
        ));
        let Some(installed) = installed else {
            out.msg = format!(
                "would issue a new {} certificate ({}) and replace {} and {}",
                key_spec.describe(),
                d.decision.reasons.join("; "),
                self.cert_path.display(),
                self.key_path.display()
            );
            out.set("not_after", Value::Null);
            out.set("serial", Value::Null);
            return out;
        };
        out.msg = format!(
            "issued a new {} certificate for {} ({})",
            key_spec.describe(),
            self.cert_path.display(),
            d.decision.reasons.join("; ")
        );
        if let Some(r) = recovered {
            out.msg = format!("{r}; {}", out.msg);
        }
        out.set("not_after", installed.not_after);
        out.set("serial", installed.serial);
        if self.backup {
            let previous = &installed.previous;
            out.set("backup_file", previous.cert.display().to_string());
            out.set("backup_key_file", previous.key.display().to_string());
        }
        out
    }
}

const REGENERATE_DOC: &str = "C(missing_sans) issues only when a SAN is missing or the key does not match the cert, C(always) always issues, C(never) only verifies and fails when SANs are missing.";
const BACKUP_DOC: &str = "Keep the old pair as Ansible-style backups (C(<file>.<pid>.<date>~)) beside it. Without it the journal uses hidden copies that are removed at the end.";

impl ApiserverCert {
    /// Facts of the pair at `cert_file`/`key_file`, the decision, and every refusal that needs
    /// no write: not issued by the CA, `regenerate: never`, no CA key (external CA), a CA key
    /// that is not the CA certificate's. Read-only.
    fn decide(&self, cert_file: &Path, key_file: &Path) -> Result<Decided> {
        let ca_cert = load_cert(&self.ca_cert_path)?;
        let cert = load_cert(cert_file)?;
        let key_bytes = fsio::read(key_file)?;
        let key = material::parse_key(key_file, &key_bytes)?;
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
        let issuing = if decision.reissue() {
            Some(self.issuing_material(&ca_cert, &cert, cert_file, &decision, &sans_before)?)
        } else {
            None
        };
        Ok(Decided {
            not_after: iso_time(cert.not_after())?,
            ca_cert,
            cert,
            key_bytes,
            sans_before,
            decision,
            issuing,
        })
    }

    /// Issuing needs the CA key, and it must be the CA's.
    fn issuing_material(
        &self,
        ca_cert: &X509,
        cert: &X509,
        cert_file: &Path,
        decision: &Decision,
        sans_before: &[San],
    ) -> Result<(PKey<Private>, KeySpec)> {
        let ca_key = match load_ca_key(&self.ca_key_path)? {
            Some(k) => k,
            None => {
                return Err(Error::Refused(format!(
                    "{} does not exist: the cluster uses an external CA (kubespray's kube_external_ca_mode), so kubeha cannot issue the apiserver certificate; nothing was changed. Fix: have your CA issue {} with the SANs {} (plus the current ones: {}), install it with its key at {}, then rerun (use regenerate: never to only verify it)",
                    self.ca_key_path.display(),
                    self.cert_path.display(),
                    to_strings(&decision.missing).join(", "),
                    to_strings(sans_before).join(", "),
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
            .map_err(|_| Error::content(cert_file, "has an unreadable public key"))?;
        Ok((ca_key, KeySpec::of(&public, cert_file)?))
    }

    /// Issue, check in memory, swap, check on disk.
    fn install(&self, d: &Decided, ca_key: &PKey<Private>, key_spec: KeySpec) -> Result<Installed> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        let request = IssueRequest {
            subject: d.cert.subject_name(),
            sans: &d.decision.sans_after,
            key_spec,
            key_encoding: KeyEncoding::of_pem(&d.key_bytes),
            validity_days: self.validity_days,
            now_unix: now,
        };
        let issued = issue(&request, &d.ca_cert, ca_key)?;
        self.verify_pair(
            &issued.cert,
            &issued.key_pem,
            &d.ca_cert,
            "the newly issued pair",
        )?;
        if let Some(dir) = &self.original_dir {
            file_change::keep_original(dir, &self.cert_path)?;
            file_change::keep_original(dir, &self.key_path)?;
        }
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
        self.verify_pair(&on_disk, &on_disk_key, &d.ca_cert, "the installed pair")?;
        Ok(Installed {
            not_after: iso_time(on_disk.not_after())?,
            serial: serial_hex(&on_disk),
            previous,
        })
    }

    /// Remove (or, in check mode, name) the hidden files a run killed before its swap journal was
    /// complete left beside the pair; they may hold copies of the private key.
    fn sweep_leftovers(&self, found: &[PathBuf], check_mode: bool) -> Result<Option<String>> {
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
        swap::remove_leftovers(found)?;
        Ok(Some(format!(
            "removed {} leftover file(s) of an interrupted run: {}",
            found.len(),
            names.join(", ")
        )))
    }

    fn verify_pair(&self, cert: &X509Ref, key_pem: &[u8], ca: &X509Ref, what: &str) -> Result<()> {
        let key = material::parse_key(&self.key_path, key_pem)?;
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
