//! Verified TLS connections. Two trust policies, both with peer verification on:
//! - [`Trust::Ca`]: the server's chain must lead to the given CA certificates (and only those: the
//!   system store is not loaded) and name the host we dialled (DNS name or IP address);
//! - [`Trust::SelfSignedLocalhost`]: for kube-controller-manager / kube-scheduler, which serve a
//!   self-signed in-memory certificate when they have no `--tls-cert-file`. A verify callback
//!   accepts exactly the presented self-issued certificate when its own signature checks out and it
//!   is currently valid; the host check (`localhost` / `127.0.0.1`) still applies. Every other
//!   verification error is still fatal.

use crate::error::{Error, Result};
use openssl::asn1::Asn1Time;
use openssl::pkey::{PKey, Private};
use openssl::ssl::{Ssl, SslContext, SslMethod, SslStream, SslVerifyMode, SslVersion};
use openssl::x509::store::X509StoreBuilder;
use openssl::x509::{X509Ref, X509StoreContextRef, X509};
use std::net::{IpAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

/// OpenSSL's X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT and X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN.
const ERR_DEPTH_ZERO_SELF_SIGNED: i32 = 18;
const ERR_SELF_SIGNED_IN_CHAIN: i32 = 19;

/// Which server certificates are trusted.
#[derive(Clone)]
pub enum Trust {
    Ca(Vec<X509>),
    SelfSignedLocalhost,
}

/// A client certificate and key for mutual TLS. No `Debug`: the key must never be printed.
#[derive(Clone)]
pub struct ClientIdentity {
    pub cert: X509,
    pub chain: Vec<X509>,
    pub key: PKey<Private>,
}

impl ClientIdentity {
    /// From PEM bytes of the certificate (chain) and the key; `source` names where they came from.
    pub fn from_pem(cert_pem: &[u8], key_pem: &[u8], source: &str) -> Result<Self> {
        let mut certs = X509::stack_from_pem(cert_pem).map_err(|_| {
            Error::Refused(format!("{source}: the client certificate is not valid PEM"))
        })?;
        if certs.is_empty() {
            return Err(Error::Refused(format!(
                "{source}: no client certificate found"
            )));
        }
        let cert = certs.remove(0);
        let key = PKey::private_key_from_pem(key_pem).map_err(|_| {
            Error::Refused(format!(
                "{source}: the client key is not an unencrypted PEM private key (its content is not shown)"
            ))
        })?;
        let matches = cert
            .public_key()
            .map(|p| p.public_eq(&key))
            .unwrap_or(false);
        if !matches {
            return Err(Error::Refused(format!(
                "{source}: the client key does not belong to the client certificate"
            )));
        }
        Ok(ClientIdentity {
            cert,
            chain: certs,
            key,
        })
    }
}

/// Parse PEM CA certificates (one or more).
pub fn ca_certs_from_pem(pem: &[u8], source: &str) -> Result<Vec<X509>> {
    match X509::stack_from_pem(pem) {
        Ok(list) if !list.is_empty() => Ok(list),
        _ => Err(Error::Refused(format!(
            "{source}: no PEM CA certificate found"
        ))),
    }
}

/// The CA certificates of a PEM file (the cluster CA), the file named in every error.
pub fn ca_certs_from_file(path: &std::path::Path) -> Result<Vec<X509>> {
    let pem = crate::fsio::read(path)?;
    ca_certs_from_pem(&pem, &path.display().to_string())
}

/// Everything needed to open a connection.
#[derive(Clone)]
pub struct TlsConfig {
    pub trust: Trust,
    pub identity: Option<ClientIdentity>,
    /// Verify the server for this name instead of the dialled host (kubeconfig `tls-server-name`).
    pub server_name: Option<String>,
}

impl TlsConfig {
    /// Trust exactly these CA certificates, no client certificate.
    pub fn with_ca(cas: Vec<X509>) -> Self {
        TlsConfig {
            trust: Trust::Ca(cas),
            identity: None,
            server_name: None,
        }
    }
}

fn self_issued_and_current(cert: &X509Ref) -> bool {
    let same_name = match (cert.subject_name().to_der(), cert.issuer_name().to_der()) {
        (Ok(s), Ok(i)) => s == i,
        _ => false,
    };
    let signed_by_itself = cert
        .public_key()
        .and_then(|k| cert.verify(&k))
        .unwrap_or(false);
    let now = match Asn1Time::days_from_now(0) {
        Ok(t) => t,
        Err(_) => return false,
    };
    let current = cert.not_before() <= now && now <= cert.not_after();
    same_name && signed_by_itself && current
}

fn accept_self_signed(preverified: bool, ctx: &mut X509StoreContextRef) -> bool {
    if preverified {
        return true;
    }
    let code = ctx.error().as_raw();
    if code != ERR_DEPTH_ZERO_SELF_SIGNED && code != ERR_SELF_SIGNED_IN_CHAIN {
        return false;
    }
    ctx.current_cert()
        .map(self_issued_and_current)
        .unwrap_or(false)
}

fn context(config: &TlsConfig) -> std::result::Result<SslContext, openssl::error::ErrorStack> {
    let mut builder = SslContext::builder(SslMethod::tls_client())?;
    builder.set_min_proto_version(Some(SslVersion::TLS1_2))?;
    match &config.trust {
        Trust::Ca(cas) => {
            let mut store = X509StoreBuilder::new()?;
            for ca in cas {
                store.add_cert(ca.clone())?;
            }
            builder.set_cert_store(store.build());
            builder.set_verify(SslVerifyMode::PEER);
        }
        Trust::SelfSignedLocalhost => {
            builder.set_cert_store(X509StoreBuilder::new()?.build());
            builder.set_verify_callback(SslVerifyMode::PEER, accept_self_signed);
        }
    }
    if let Some(id) = &config.identity {
        builder.set_certificate(&id.cert)?;
        for extra in &id.chain {
            builder.add_extra_chain_cert(extra.clone())?;
        }
        builder.set_private_key(&id.key)?;
        builder.check_private_key()?;
    }
    Ok(builder.build())
}

/// Upper-case colon-separated SHA-256 of a DER certificate, as `openssl x509 -fingerprint -sha256`
/// prints it.
pub fn fingerprint_sha256(der: &[u8]) -> String {
    openssl::sha::sha256(der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Strip the brackets of an IPv6 literal.
pub fn bare_host(host: &str) -> &str {
    host.strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host)
}

/// Open a TCP connection within the deadline (trying each resolved address).
pub fn tcp_connect(
    host: &str,
    port: u16,
    deadline: Instant,
) -> std::result::Result<TcpStream, String> {
    let bare = bare_host(host);
    let addrs: Vec<_> = (bare, port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {bare}: {e}"))?
        .collect();
    let mut last = format!("{bare} resolves to no address");
    for addr in addrs {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err("timed out connecting".into());
        }
        match TcpStream::connect_timeout(&addr, left) {
            Ok(s) => {
                let left = deadline
                    .saturating_duration_since(Instant::now())
                    .max(Duration::from_millis(1));
                s.set_read_timeout(Some(left)).map_err(|e| e.to_string())?;
                s.set_write_timeout(Some(left)).map_err(|e| e.to_string())?;
                let _ = s.set_nodelay(true);
                return Ok(s);
            }
            Err(e) => last = format!("cannot connect to {addr}: {e}"),
        }
    }
    Err(last)
}

/// Connect and handshake, verifying the server for `host` (DNS name or IP address).
pub fn connect(
    host: &str,
    port: u16,
    config: &TlsConfig,
    deadline: Instant,
) -> std::result::Result<SslStream<TcpStream>, String> {
    handshake(host, port, config, deadline, true)
}

fn handshake(
    host: &str,
    port: u16,
    config: &TlsConfig,
    deadline: Instant,
    check_name: bool,
) -> std::result::Result<SslStream<TcpStream>, String> {
    let ctx = context(config).map_err(|e| format!("cannot set up TLS: {e}"))?;
    let mut ssl = Ssl::new(&ctx).map_err(|e| format!("cannot set up TLS: {e}"))?;
    let bare = bare_host(config.server_name.as_deref().unwrap_or(host));
    match bare.parse::<IpAddr>() {
        Ok(ip) if check_name => ssl
            .param_mut()
            .set_ip(ip)
            .map_err(|e| format!("cannot set the expected IP: {e}"))?,
        Ok(_) => {}
        Err(_) => {
            ssl.set_hostname(bare)
                .map_err(|e| format!("cannot set SNI: {e}"))?;
            if check_name {
                ssl.param_mut()
                    .set_host(bare)
                    .map_err(|e| format!("cannot set the expected host name: {e}"))?;
            }
        }
    }
    let tcp = tcp_connect(host, port, deadline)?;
    ssl.connect(tcp).map_err(|e| describe_handshake_error(&e))
}

/// The leaf certificate a server presents, its chain verified against the configured CA but not
/// its name: for telling apart the backends behind a load balancer whose name the certificates do
/// not carry yet, where the identity is the exact certificate (its fingerprint), which is stricter
/// than a name.
pub fn presented_certificate(
    host: &str,
    port: u16,
    config: &TlsConfig,
    deadline: Instant,
) -> std::result::Result<X509, String> {
    leaf_certificate(handshake(host, port, config, deadline, false)?)
}

/// The leaf certificate the server presents, verified as [`connect`] verifies it.
pub fn served_certificate(
    host: &str,
    port: u16,
    config: &TlsConfig,
    deadline: Instant,
) -> std::result::Result<X509, String> {
    leaf_certificate(connect(host, port, config, deadline)?)
}

/// The peer's certificate of a finished handshake; the connection is closed.
fn leaf_certificate(mut stream: SslStream<TcpStream>) -> std::result::Result<X509, String> {
    let cert = stream.ssl().peer_certificate();
    let _ = stream.shutdown();
    cert.ok_or_else(|| "the server presented no certificate".to_string())
}

fn describe_handshake_error(e: &openssl::ssl::HandshakeError<TcpStream>) -> String {
    match e {
        openssl::ssl::HandshakeError::Failure(mid) => {
            let verify = mid.ssl().verify_result();
            if verify.as_raw() != 0 {
                format!("TLS verification failed: {}", verify.error_string())
            } else {
                format!("TLS handshake failed: {}", mid.error())
            }
        }
        openssl::ssl::HandshakeError::SetupFailure(s) => format!("TLS setup failed: {s}"),
        openssl::ssl::HandshakeError::WouldBlock(_) => "TLS handshake timed out".into(),
    }
}
