//! Loading certificates and keys from disk and the checks on them: does a key belong to a
//! certificate, does a certificate chain to the CA, what key algorithm does it use. Errors name the
//! file; key bytes never appear in a message.

use crate::error::{Error, Result};
use crate::fsio;
use openssl::nid::Nid;
use openssl::pkey::{Id, PKey, PKeyRef, Private, Public};
use openssl::x509::{X509Ref, X509VerifyResult, X509};
use std::path::Path;

/// Parse the first PEM certificate of a file.
pub fn load_cert(path: &Path) -> Result<X509> {
    let bytes = fsio::read(path)?;
    X509::from_pem(&bytes).map_err(|_| {
        Error::content(
            path,
            "is not a PEM certificate (expected -----BEGIN CERTIFICATE-----)",
        )
    })
}

/// Parse a PEM private key (PKCS#1, SEC1 or PKCS#8, unencrypted).
pub fn load_key(path: &Path) -> Result<PKey<Private>> {
    let bytes = fsio::read(path)?;
    parse_key(path, &bytes)
}

pub fn parse_key(path: &Path, bytes: &[u8]) -> Result<PKey<Private>> {
    PKey::private_key_from_pem(bytes).map_err(|_| {
        Error::content(
            path,
            "is not an unencrypted PEM private key (RSA, EC or PKCS#8); its content is not shown",
        )
    })
}

/// The key's PEM flavour, so a new key is written the way the old one was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyEncoding {
    /// `BEGIN RSA PRIVATE KEY` / `BEGIN EC PRIVATE KEY` (what kubeadm writes).
    Traditional,
    /// `BEGIN PRIVATE KEY`.
    Pkcs8,
}

impl KeyEncoding {
    pub fn of_pem(bytes: &[u8]) -> Self {
        if bytes
            .windows(b"BEGIN PRIVATE KEY".len())
            .any(|w| w == b"BEGIN PRIVATE KEY")
        {
            KeyEncoding::Pkcs8
        } else {
            KeyEncoding::Traditional
        }
    }
}

/// Key algorithm and size, as kubeadm's `encryptionAlgorithm` knows them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeySpec {
    Rsa(u32),
    Ec(Nid),
}

impl KeySpec {
    pub fn of(key: &PKeyRef<Public>, path: &Path) -> Result<KeySpec> {
        match key.id() {
            Id::RSA => Ok(KeySpec::Rsa(key.bits())),
            Id::EC => {
                let ec = key
                    .ec_key()
                    .map_err(|_| Error::content(path, "has an unreadable EC public key"))?;
                ec.group().curve_name().map(KeySpec::Ec).ok_or_else(|| {
                    Error::content(path, "uses an EC key on an unnamed curve; kubeadm uses P-256")
                })
            }
            other => Err(Error::content(
                path,
                format!("uses key type {other:?}; only RSA and ECDSA keys (what kubeadm makes) can be reissued"),
            )),
        }
    }

    pub fn describe(&self) -> String {
        match self {
            KeySpec::Rsa(bits) => format!("RSA-{bits}"),
            KeySpec::Ec(nid) => format!("ECDSA-{}", nid.short_name().unwrap_or("unknown-curve")),
        }
    }
}

/// Whether the private key belongs to the certificate.
pub fn key_matches(cert: &X509Ref, key: &PKeyRef<Private>) -> bool {
    cert.public_key()
        .map(|public| public.public_eq(key))
        .unwrap_or(false)
}

/// Whether `cert` was issued and signed by `ca` (names, key identifiers and signature).
pub fn chains_to(cert: &X509Ref, ca: &X509Ref) -> bool {
    if ca.issued(cert) != X509VerifyResult::OK {
        return false;
    }
    match ca.public_key() {
        Ok(ca_key) => cert.verify(&ca_key).unwrap_or(false),
        Err(_) => false,
    }
}

/// Seconds since the Unix epoch of an ASN.1 time.
pub fn unix_time(time: &openssl::asn1::Asn1TimeRef) -> Result<i64> {
    let epoch = openssl::asn1::Asn1Time::from_unix(0)
        .map_err(|e| Error::Refused(format!("cannot build a time: {e}")))?;
    let diff = epoch
        .diff(time)
        .map_err(|e| Error::Refused(format!("cannot compare certificate times: {e}")))?;
    Ok(i64::from(diff.days) * 86_400 + i64::from(diff.secs))
}

/// `YYYY-MM-DDTHH:MM:SSZ` of an ASN.1 time.
pub fn iso_time(time: &openssl::asn1::Asn1TimeRef) -> Result<String> {
    let secs = unix_time(time)?;
    Ok(fsio::format_utc(secs.max(0) as u64).replacen('@', "T", 1) + "Z")
}

/// Serial number in colon-free upper-case hex, as `openssl x509 -serial` prints it.
pub fn serial_hex(cert: &X509Ref) -> String {
    cert.serial_number()
        .to_bn()
        .and_then(|bn| bn.to_hex_str().map(|s| s.to_string()))
        .unwrap_or_default()
}

/// An X.509 name as `CN=kube-apiserver, O=...` (`(empty)` when it has no entries).
pub fn name_text(name: &openssl::x509::X509NameRef) -> String {
    let parts: Vec<String> = name
        .entries()
        .map(|e| {
            let field = e.object().nid().short_name().unwrap_or("?");
            let value = e.data().to_string().unwrap_or_else(|_| "?".into());
            format!("{field}={value}")
        })
        .collect();
    if parts.is_empty() {
        "(empty)".into()
    } else {
        parts.join(", ")
    }
}
