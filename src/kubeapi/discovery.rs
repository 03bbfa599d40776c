//! The discovery `kubeadm join --token ... --discovery-token-ca-cert-hash sha256:...` performs,
//! run against the endpoint: an anonymous GET of `kube-public/cluster-info` (as a joining node,
//! without credentials), the detached JWS `jws-kubeconfig-<token id>` checked against its
//! kubeconfig with the bootstrap token's secret (HS256, what kube-controller-manager's bootstrap
//! signer writes), and the CA the kubeconfig carries checked against the cluster CA's public-key
//! pin. Where kubeadm's first fetch skips TLS verification (it has no CA yet), this one verifies
//! against the cluster CA: it is stricter, never weaker.
//!
//! The pure parts ([`ca_cert_hash`], [`verify_detached_jws`], [`signing_tokens`], [`judge`]) are
//! unit-tested; [`discover`] does the two reads. Token secrets are never put in any output.

use super::client::{get_json, Transport};
use crate::endpoint::{Endpoint, ServerUrl};
use crate::error::{Error, Result};
use crate::kubeapi::node::parse_rfc3339;
use crate::kubeconfig::{Kubeconfig, Secret};
use crate::net::http::Request;
use openssl::hash::MessageDigest;
use openssl::pkey::PKey;
use openssl::sign::Signer;
use openssl::x509::X509;
use serde_json::Value;
use std::path::Path;
use std::time::SystemTime;

pub const CLUSTER_INFO: &str = "/api/v1/namespaces/kube-public/configmaps/cluster-info";
const SECRETS: &str = "/api/v1/namespaces/kube-system/secrets";
const JWS_PREFIX: &str = "jws-kubeconfig-";
const TOKEN_TYPE: &str = "bootstrap.kubernetes.io/token";

/// kubeadm's `--discovery-token-ca-cert-hash`: `sha256:` and the hex SHA-256 of the CA
/// certificate's DER SubjectPublicKeyInfo.
pub fn ca_cert_hash(ca: &X509) -> Result<String> {
    let spki = ca
        .public_key()
        .and_then(|k| k.public_key_to_der())
        .map_err(|e| Error::Refused(format!("cannot read the CA's public key: {e}")))?;
    let digest = openssl::sha::sha256(&spki);
    Ok(format!(
        "sha256:{}",
        digest
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    ))
}

fn b64url_decode(text: &str) -> Option<Vec<u8>> {
    let mut std: String = text.replace('-', "+").replace('_', "/");
    while std.len() % 4 != 0 {
        std.push('=');
    }
    openssl::base64::decode_block(&std).ok()
}

fn b64url_encode(data: &[u8]) -> String {
    openssl::base64::encode_block(data)
        .trim_end_matches('=')
        .replace('+', "-")
        .replace('/', "_")
}

/// Check a detached JWS (`header..signature`, RFC 7515 appendix F) over `content`, signed HS256
/// with the token's secret and naming the token as `kid`, as k8s.io/cluster-bootstrap's
/// `DetachedTokenIsValid` does.
pub fn verify_detached_jws(
    jws: &str,
    content: &str,
    token_id: &str,
    token_secret: &[u8],
) -> std::result::Result<(), String> {
    let mut parts = jws.split('.');
    let (Some(header_b64), Some(""), Some(signature_b64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("not a detached JWS (header..signature)".into());
    };
    let header: Value = b64url_decode(header_b64)
        .and_then(|h| serde_json::from_slice(&h).ok())
        .ok_or("its header is not base64url JSON")?;
    if header["alg"] != "HS256" {
        return Err(format!("its algorithm is {}, not HS256", header["alg"]));
    }
    if header["kid"] != token_id {
        return Err(format!("it names token {}, not {token_id}", header["kid"]));
    }
    let signature = b64url_decode(signature_b64).ok_or("its signature is not base64url")?;
    let input = format!("{header_b64}.{}", b64url_encode(content.as_bytes()));
    let key = PKey::hmac(token_secret).map_err(|e| e.to_string())?;
    let mut signer = Signer::new(MessageDigest::sha256(), &key).map_err(|e| e.to_string())?;
    let expected = signer
        .sign_oneshot_to_vec(input.as_bytes())
        .map_err(|e| e.to_string())?;
    if expected.len() == signature.len() && openssl::memcmp::eq(&expected, &signature) {
        Ok(())
    } else {
        Err("the signature does not match the kubeconfig it is for".into())
    }
}

/// A bootstrap token usable for signing: its id, and its secret (never printed).
pub struct SigningToken {
    pub id: String,
    pub secret: Secret,
}

fn decoded(data: &Value, key: &str) -> Option<String> {
    let text = data[key].as_str()?;
    openssl::base64::decode_block(text)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
}

/// The valid, unexpired bootstrap tokens with `usage-bootstrap-signing: "true"` among `secrets`,
/// as the bootstrap signer selects them (k8s.io/cluster-bootstrap token/util).
pub fn signing_tokens(secrets: &[Value], now: SystemTime) -> Vec<SigningToken> {
    let valid = |s: &str, len: usize| {
        s.len() == len
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    };
    let mut out = Vec::new();
    for secret in secrets.iter().filter(|s| s["type"] == TOKEN_TYPE) {
        let data = &secret["data"];
        let (Some(id), Some(token_secret)) =
            (decoded(data, "token-id"), decoded(data, "token-secret"))
        else {
            continue;
        };
        if !valid(&id, 6)
            || !valid(&token_secret, 16)
            || secret["metadata"]["name"] != format!("bootstrap-token-{id}").as_str()
            || decoded(data, "usage-bootstrap-signing").as_deref() != Some("true")
        {
            continue;
        }
        if let Some(expiration) = decoded(data, "expiration") {
            match parse_rfc3339(&expiration) {
                Some(when) if when > now => {}
                _ => continue,
            }
        }
        out.push(SigningToken {
            id,
            secret: Secret::new(token_secret.into_bytes()),
        });
    }
    out.sort_by(|a, b| a.id.cmp(&b.id));
    out
}

/// What a joining node would learn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Discovered {
    /// The server cluster-info names: where the node's kubelet will go.
    pub server: String,
    /// The public-key pin of the CA cluster-info carries.
    pub ca_cert_hash: String,
    /// The tokens whose signature was checked.
    pub signed_with: Vec<String>,
}

/// Judge cluster-info as `kubeadm join` would with each signing token: its server must be
/// `endpoint`, its CA must be the cluster CA (by pin), and every signing token must have a valid
/// signature over its kubeconfig (a signature made before the kubeconfig changed fails).
pub fn judge(
    cluster_info: &Value,
    tokens: &[SigningToken],
    endpoint: &Endpoint,
    ca: &X509,
) -> std::result::Result<Discovered, String> {
    let content = cluster_info["data"]["kubeconfig"]
        .as_str()
        .ok_or("kube-public/cluster-info has no kubeconfig key")?;
    let config = Kubeconfig::parse(content, Path::new("kube-public/cluster-info kubeconfig"))
        .map_err(|e| e.to_string())?;
    let cluster = config
        .clusters()
        .first()
        .ok_or("the cluster-info kubeconfig has no cluster")?;
    let url = ServerUrl::parse(&cluster.server, "server").map_err(|e| e.to_string())?;
    if url.host != *endpoint.host() || url.port != endpoint.port() {
        return Err(format!(
            "cluster-info names {} where the endpoint {} belongs: a node joining now would use it",
            cluster.server, endpoint
        ));
    }
    let ca_pem = config.ca_pem(cluster).map_err(|e| e.to_string())?;
    let carried =
        X509::from_pem(&ca_pem).map_err(|e| format!("its CA is not a PEM certificate: {e}"))?;
    let want = ca_cert_hash(ca).map_err(|e| e.to_string())?;
    let got = ca_cert_hash(&carried).map_err(|e| e.to_string())?;
    if got != want {
        return Err(format!(
            "the CA cluster-info carries ({got}) is not the cluster CA ({want}): kubeadm join --discovery-token-ca-cert-hash {want} would refuse it"
        ));
    }
    let mut signed_with = Vec::new();
    for token in tokens {
        let key = format!("{JWS_PREFIX}{}", token.id);
        let Some(jws) = cluster_info["data"][&key].as_str() else {
            return Err(format!(
                "cluster-info has no signature {key} for bootstrap token {}: kubeadm join --token {}.… would fail (is the bootstrap signer of kube-controller-manager running?)",
                token.id, token.id
            ));
        };
        verify_detached_jws(jws, content, &token.id, token.secret.expose()).map_err(|e| {
            format!(
                "cluster-info's signature {key}: {e}; it was not renewed after the kubeconfig changed, and kubeadm join --token {}.… would refuse cluster-info (is the bootstrap signer of kube-controller-manager running?)",
                token.id
            )
        })?;
        signed_with.push(token.id.clone());
    }
    Ok(Discovered {
        server: cluster.server.clone(),
        ca_cert_hash: want,
        signed_with,
    })
}

/// The two reads: cluster-info anonymously through `anonymous` (TLS verified, no client
/// certificate), the bootstrap tokens with `admin`.
pub fn discover(
    anonymous: &dyn Transport,
    admin: &dyn Transport,
    endpoint: &Endpoint,
    ca: &X509,
) -> std::result::Result<Discovered, String> {
    let resp = anonymous
        .send(&Request::get(CLUSTER_INFO))
        .map_err(|e| format!("anonymous GET {CLUSTER_INFO} through {endpoint}: {e}"))?;
    if resp.status != 200 {
        return Err(format!(
            "anonymous GET {CLUSTER_INFO} through {endpoint}: HTTP {} (joining nodes read it without credentials; kubeadm grants system:anonymous get on it: Role kube-public/kubeadm:bootstrap-signer-clusterinfo): {}",
            resp.status,
            resp.snippet()
        ));
    }
    let cluster_info: Value = serde_json::from_slice(&resp.body)
        .map_err(|e| format!("GET {CLUSTER_INFO}: the answer is not JSON: {e}"))?;
    let secrets = get_json(admin, SECRETS).map_err(|e| e.to_string())?;
    let items = secrets["items"].as_array().cloned().unwrap_or_default();
    let tokens = signing_tokens(&items, SystemTime::now());
    judge(&cluster_info, &tokens, endpoint, ca)
}

/// For callers that want an [`Error`]: a failed discovery as a remote error of the endpoint.
pub fn error(endpoint: &Endpoint, reason: String) -> Error {
    Error::remote(endpoint.to_string(), format!("join discovery: {reason}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// kubeadm's own documentation example token and a signature made the way the bootstrap
    /// signer makes it (cross-checked below against an independent HMAC computation).
    fn sign(content: &str, id: &str, secret: &str) -> String {
        let header = b64url_encode(format!("{{\"alg\":\"HS256\",\"kid\":\"{id}\"}}").as_bytes());
        let input = format!("{header}.{}", b64url_encode(content.as_bytes()));
        let key = PKey::hmac(secret.as_bytes()).unwrap();
        let mut s = Signer::new(MessageDigest::sha256(), &key).unwrap();
        format!(
            "{header}..{}",
            b64url_encode(&s.sign_oneshot_to_vec(input.as_bytes()).unwrap())
        )
    }

    #[test]
    fn a_detached_jws_verifies_only_for_its_content_and_token() {
        let jws = sign("kubeconfig text", "abcdef", "0123456789abcdef");
        assert_eq!(
            verify_detached_jws(&jws, "kubeconfig text", "abcdef", b"0123456789abcdef"),
            Ok(())
        );
        let stale = verify_detached_jws(
            &jws,
            "kubeconfig text, changed",
            "abcdef",
            b"0123456789abcdef",
        );
        assert!(stale.unwrap_err().contains("does not match"));
        assert!(
            verify_detached_jws(&jws, "kubeconfig text", "abcdef", b"wrongwrongwrong0").is_err()
        );
        assert!(
            verify_detached_jws(&jws, "kubeconfig text", "zzzzzz", b"0123456789abcdef")
                .unwrap_err()
                .contains("names token")
        );
        assert!(verify_detached_jws("a.b.c", "x", "abcdef", b"s")
            .unwrap_err()
            .contains("detached"));
    }

    #[test]
    fn the_signature_matches_an_independent_hmac() {
        // The detached JWS of "kc" for token abcdef.0123456789abcdef, computed with Python's
        // hmac/hashlib exactly as the test bed's bootstrap signer does (controllers.detached_jws).
        let python =
            "eyJhbGciOiJIUzI1NiIsImtpZCI6ImFiY2RlZiJ9..SIaXbsCM1k9dj_Q8wOsONMyLXPRwg8b4RjEcS4swOig";
        assert_eq!(sign("kc", "abcdef", "0123456789abcdef"), python);
        assert_eq!(
            verify_detached_jws(python, "kc", "abcdef", b"0123456789abcdef"),
            Ok(())
        );
    }

    fn secret(id: &str, token_secret: &str, signing: &str, expiration: Option<&str>) -> Value {
        let b = |s: &str| openssl::base64::encode_block(s.as_bytes());
        let mut data = json!({"token-id": b(id), "token-secret": b(token_secret), "usage-bootstrap-signing": b(signing)});
        if let Some(e) = expiration {
            data["expiration"] = json!(b(e));
        }
        json!({"type": TOKEN_TYPE, "metadata": {"name": format!("bootstrap-token-{id}")}, "data": data})
    }

    #[test]
    fn signing_tokens_are_selected_as_the_signer_selects_them() {
        let now = parse_rfc3339("2026-12-05T00:00:00Z").unwrap();
        let secrets = vec![
            secret("abcdef", "0123456789abcdef", "true", None),
            secret("ghijkl", "0123456789abcdef", "false", None),
            secret(
                "mnopqr",
                "0123456789abcdef",
                "true",
                Some("2026-12-04T00:00:00Z"),
            ),
            secret(
                "stuvwx",
                "0123456789abcdef",
                "true",
                Some("2026-12-06T00:00:00Z"),
            ),
            secret("BADID0", "0123456789abcdef", "true", None),
            json!({"type": "Opaque", "metadata": {"name": "x"}, "data": {}}),
        ];
        let ids: Vec<String> = signing_tokens(&secrets, now)
            .into_iter()
            .map(|t| t.id)
            .collect();
        assert_eq!(ids, ["abcdef", "stuvwx"]);
    }
}
