//! Issuing an apiserver serving certificate the way kubeadm does (field guide, section 2): the old
//! subject, the given SANs, a new key of the old algorithm and size, signed by the cluster CA with
//! SHA-256, a random serial, KeyUsage digitalSignature+keyEncipherment (critical), ExtKeyUsage
//! serverAuth, basicConstraints CA:FALSE (critical), authority key id = the CA's subject key id.

use super::material::{KeyEncoding, KeySpec};
use super::san::San;
use crate::error::{Error, Result};
use openssl::asn1::{Asn1Integer, Asn1Time};
use openssl::bn::{BigNum, MsbOption};
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, PKeyRef, Private};
use openssl::rsa::Rsa;
use openssl::x509::extension::{
    AuthorityKeyIdentifier, BasicConstraints, ExtendedKeyUsage, KeyUsage, SubjectAlternativeName,
};
use openssl::x509::{X509NameRef, X509Ref, X509};

/// How far back `notBefore` goes, so hosts with a slightly slow clock accept the cert at once.
pub const BACKDATE_SECONDS: i64 = 3600;

/// What a new certificate is made of.
pub struct IssueRequest<'a> {
    pub subject: &'a X509NameRef,
    pub sans: &'a [San],
    pub key_spec: KeySpec,
    pub key_encoding: KeyEncoding,
    pub validity_days: u32,
    pub now_unix: i64,
}

/// A freshly issued pair, PEM-encoded. `Debug` is not derived: the key must never be printed.
pub struct IssuedPair {
    pub cert_pem: Vec<u8>,
    pub key_pem: Vec<u8>,
    pub cert: X509,
}

fn ssl_err(what: &str) -> impl Fn(openssl::error::ErrorStack) -> Error + '_ {
    move |e| Error::Refused(format!("cannot {what}: {e}"))
}

/// Generate a new private key of the given algorithm and size.
pub fn new_key(spec: KeySpec) -> Result<PKey<Private>> {
    match spec {
        KeySpec::Rsa(bits) => {
            let rsa = Rsa::generate(bits).map_err(ssl_err("generate an RSA key"))?;
            PKey::from_rsa(rsa).map_err(ssl_err("wrap the RSA key"))
        }
        KeySpec::Ec(nid) => {
            let group = EcGroup::from_curve_name(nid).map_err(ssl_err("load the EC curve"))?;
            let ec = EcKey::generate(&group).map_err(ssl_err("generate an EC key"))?;
            PKey::from_ec_key(ec).map_err(ssl_err("wrap the EC key"))
        }
    }
}

fn key_pem(key: &PKeyRef<Private>, spec: KeySpec, encoding: KeyEncoding) -> Result<Vec<u8>> {
    match (encoding, spec) {
        (KeyEncoding::Pkcs8, _) => key
            .private_key_to_pem_pkcs8()
            .map_err(ssl_err("encode the key")),
        (KeyEncoding::Traditional, KeySpec::Rsa(_)) => key
            .rsa()
            .and_then(|r| r.private_key_to_pem())
            .map_err(ssl_err("encode the RSA key")),
        (KeyEncoding::Traditional, KeySpec::Ec(_)) => key
            .ec_key()
            .and_then(|k| k.private_key_to_pem())
            .map_err(ssl_err("encode the EC key")),
    }
}

/// Issue a serving certificate signed by `ca_cert`/`ca_key`. `notAfter` is clamped to the CA's.
pub fn issue(
    req: &IssueRequest<'_>,
    ca_cert: &X509Ref,
    ca_key: &PKeyRef<Private>,
) -> Result<IssuedPair> {
    let key = new_key(req.key_spec)?;
    let mut builder = X509::builder().map_err(ssl_err("start a certificate"))?;
    builder.set_version(2).map_err(ssl_err("set the version"))?;
    // 127 random bits with the top bit clear: positive, never zero in practice, fits in 16 bytes.
    let mut serial = BigNum::new().map_err(ssl_err("make a serial"))?;
    serial
        .rand(127, MsbOption::ONE, false)
        .map_err(ssl_err("draw a random serial"))?;
    let serial = Asn1Integer::from_bn(&serial).map_err(ssl_err("encode the serial"))?;
    builder
        .set_serial_number(&serial)
        .map_err(ssl_err("set the serial"))?;
    builder
        .set_subject_name(req.subject)
        .map_err(ssl_err("set the subject"))?;
    builder
        .set_issuer_name(ca_cert.subject_name())
        .map_err(ssl_err("set the issuer"))?;
    builder
        .set_pubkey(&key)
        .map_err(ssl_err("set the public key"))?;

    let not_before =
        Asn1Time::from_unix(req.now_unix - BACKDATE_SECONDS).map_err(ssl_err("build notBefore"))?;
    let wanted_end = req.now_unix + i64::from(req.validity_days) * 86_400;
    let ca_end = super::material::unix_time(ca_cert.not_after())?;
    if ca_end <= req.now_unix {
        return Err(Error::Refused(format!(
            "the cluster CA expired at {}; renew the CA before reissuing the apiserver certificate",
            super::material::iso_time(ca_cert.not_after())?
        )));
    }
    let not_after =
        Asn1Time::from_unix(wanted_end.min(ca_end)).map_err(ssl_err("build notAfter"))?;
    builder
        .set_not_before(&not_before)
        .map_err(ssl_err("set notBefore"))?;
    builder
        .set_not_after(&not_after)
        .map_err(ssl_err("set notAfter"))?;

    let basic = BasicConstraints::new()
        .critical()
        .build()
        .map_err(ssl_err("build basicConstraints"))?;
    builder
        .append_extension(basic)
        .map_err(ssl_err("add basicConstraints"))?;
    let usage = KeyUsage::new()
        .critical()
        .digital_signature()
        .key_encipherment()
        .build()
        .map_err(ssl_err("build keyUsage"))?;
    builder
        .append_extension(usage)
        .map_err(ssl_err("add keyUsage"))?;
    let eku = ExtendedKeyUsage::new()
        .server_auth()
        .build()
        .map_err(ssl_err("build extKeyUsage"))?;
    builder
        .append_extension(eku)
        .map_err(ssl_err("add extKeyUsage"))?;
    let aki = AuthorityKeyIdentifier::new()
        .keyid(false)
        .build(&builder.x509v3_context(Some(ca_cert), None))
        .map_err(ssl_err("build authorityKeyIdentifier"))?;
    builder
        .append_extension(aki)
        .map_err(ssl_err("add authorityKeyIdentifier"))?;
    if !req.sans.is_empty() {
        let mut san = SubjectAlternativeName::new();
        for name in req.sans {
            match name {
                San::Dns(d) => san.dns(d),
                San::Ip(ip) => san.ip(&ip.to_string()),
            };
        }
        let san = san
            .build(&builder.x509v3_context(Some(ca_cert), None))
            .map_err(ssl_err("build subjectAltName"))?;
        builder
            .append_extension(san)
            .map_err(ssl_err("add subjectAltName"))?;
    }
    builder
        .sign(ca_key, MessageDigest::sha256())
        .map_err(ssl_err("sign the certificate with the CA key"))?;
    let cert = builder.build();
    let cert_pem = cert.to_pem().map_err(ssl_err("encode the certificate"))?;
    let key_pem = key_pem(&key, req.key_spec, req.key_encoding)?;
    Ok(IssuedPair {
        cert_pem,
        key_pem,
        cert,
    })
}
