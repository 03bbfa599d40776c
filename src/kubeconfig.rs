//! Kubeconfig files: parse, resolve which cluster and user a client would use, rewrite a
//! cluster's `server:` as a targeted text edit, and render a diff-safe copy of the text.
//!
//! Key material never leaves this module by accident: embedded client certificates, keys and
//! tokens are held in [`Secret`], whose `Debug` prints `<redacted>`, and the public facts
//! ([`Cluster`], [`User::auth_kind`]) carry no key bytes.
//!
//! API:
//! - [`Kubeconfig::load`]`(path)`, [`Kubeconfig::parse`]`(text, origin)`;
//! - [`Kubeconfig::clusters`], [`Kubeconfig::cluster`]`(name)`, [`Kubeconfig::current_cluster`],
//!   [`Kubeconfig::resolve_cluster`]`(Option<name>)` (the named cluster or the current context's);
//! - [`Kubeconfig::current_user`] and [`Kubeconfig::client_credentials`] (client cert and key PEM
//!   from `*-data` or from files relative to the kubeconfig, for mTLS only), [`Kubeconfig::token`];
//! - [`Kubeconfig::ca_pem`]`(cluster)` (the CA from `certificate-authority-data` or its file);
//! - [`Kubeconfig::with_server`]`(cluster, server)`: the text with that server (pure, `Ok(None)`
//!   when already set), edited on the text parsed once;
//! - [`redacted`]`(text)`: the text with every `*-data`, `token` and `password` value replaced by
//!   `<redacted>`, for diffs.

use crate::endpoint::ServerUrl;
use crate::error::{Error, Result};
use crate::yamledit::{self, Seg, YamlText};
use serde::Deserialize;
use serde_yaml_ng::Value;
use std::fmt;
use std::path::{Path, PathBuf};

/// Bytes that must never be printed: `Debug` shows only their length.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

impl Secret {
    pub fn new(bytes: Vec<u8>) -> Self {
        Secret(bytes)
    }
    /// The secret bytes, for handing to TLS. Never log them.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<redacted {} bytes>", self.0.len())
    }
}

/// Where a cluster's CA certificate comes from.
#[derive(Clone, PartialEq, Eq)]
pub enum CaSource {
    /// `certificate-authority-data` (decoded PEM).
    Data(Vec<u8>),
    /// `certificate-authority` (a path, relative to the kubeconfig's directory when relative).
    File(PathBuf),
    None,
}

impl fmt::Debug for CaSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CaSource::Data(d) => write!(f, "Data({} bytes)", d.len()),
            CaSource::File(p) => write!(f, "File({})", p.display()),
            CaSource::None => f.write_str("None"),
        }
    }
}

impl CaSource {
    /// `"data"`, `"file"` or `"none"` for reports.
    pub fn kind(&self) -> &'static str {
        match self {
            CaSource::Data(_) => "data",
            CaSource::File(_) => "file",
            CaSource::None => "none",
        }
    }
}

/// One entry of `clusters:`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cluster {
    pub name: String,
    /// Position in `clusters:` (text order).
    pub index: usize,
    pub server: String,
    pub ca: CaSource,
    pub tls_server_name: Option<String>,
}

/// One entry of `contexts:`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Context {
    pub name: String,
    pub cluster: String,
    pub user: String,
}

/// A credential held inline or in a file.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Credential {
    Data(Secret),
    File(PathBuf),
}

/// How a user authenticates, without the material itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthKind {
    ClientCertData,
    ClientCertFile,
    Token,
    TokenFile,
    BasicAuth,
    Exec,
    AuthProvider,
    None,
}

impl AuthKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            AuthKind::ClientCertData => "client_certificate_data",
            AuthKind::ClientCertFile => "client_certificate_file",
            AuthKind::Token => "token",
            AuthKind::TokenFile => "token_file",
            AuthKind::BasicAuth => "basic_auth",
            AuthKind::Exec => "exec",
            AuthKind::AuthProvider => "auth_provider",
            AuthKind::None => "none",
        }
    }
}

/// One entry of `users:`. Its `Debug` shows no key material.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub name: String,
    cert: Option<Credential>,
    key: Option<Credential>,
    token: Option<Secret>,
    token_file: Option<PathBuf>,
    basic: bool,
    exec: bool,
    auth_provider: bool,
}

impl User {
    pub fn auth_kind(&self) -> AuthKind {
        match (&self.cert, &self.token, &self.token_file) {
            (Some(Credential::Data(_)), _, _) => AuthKind::ClientCertData,
            (Some(Credential::File(_)), _, _) => AuthKind::ClientCertFile,
            (None, Some(_), _) => AuthKind::Token,
            (None, None, Some(_)) => AuthKind::TokenFile,
            _ if self.exec => AuthKind::Exec,
            _ if self.auth_provider => AuthKind::AuthProvider,
            _ if self.basic => AuthKind::BasicAuth,
            _ => AuthKind::None,
        }
    }

    /// The client certificate file, when the cert is a path (kubelet.conf).
    pub fn client_certificate_path(&self) -> Option<&Path> {
        match &self.cert {
            Some(Credential::File(p)) => Some(p),
            _ => None,
        }
    }
}

/// A client certificate and its key, PEM, for mutual TLS only.
#[derive(Debug, Clone)]
pub struct ClientCredentials {
    pub cert_pem: Secret,
    pub key_pem: Secret,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawConfig {
    clusters: Option<Vec<RawNamed<RawCluster>>>,
    contexts: Option<Vec<RawNamed<RawContext>>>,
    users: Option<Vec<RawNamed<RawUser>>>,
    #[serde(rename = "current-context")]
    current_context: Option<String>,
}

#[derive(Deserialize)]
struct RawNamed<T> {
    #[serde(default)]
    name: Option<String>,
    #[serde(alias = "cluster", alias = "context", alias = "user")]
    body: Option<T>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawCluster {
    server: Option<String>,
    #[serde(rename = "certificate-authority")]
    ca_file: Option<String>,
    #[serde(rename = "certificate-authority-data")]
    ca_data: Option<String>,
    #[serde(rename = "tls-server-name")]
    tls_server_name: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawContext {
    cluster: Option<String>,
    user: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawUser {
    #[serde(rename = "client-certificate")]
    cert_file: Option<String>,
    #[serde(rename = "client-certificate-data")]
    cert_data: Option<String>,
    #[serde(rename = "client-key")]
    key_file: Option<String>,
    #[serde(rename = "client-key-data")]
    key_data: Option<String>,
    token: Option<String>,
    #[serde(rename = "tokenFile")]
    token_file: Option<String>,
    username: Option<String>,
    exec: Option<Value>,
    #[serde(rename = "auth-provider")]
    auth_provider: Option<Value>,
}

/// A parsed kubeconfig: its text parsed once, and the clusters, contexts and users read from it.
#[derive(Debug, Clone)]
pub struct Kubeconfig {
    yaml: YamlText,
    /// The document holding the config (the first one that is not empty).
    doc: usize,
    origin: PathBuf,
    clusters: Vec<Cluster>,
    contexts: Vec<Context>,
    users: Vec<User>,
    current_context: Option<String>,
}

fn decode_base64(data: &str, origin: &Path, field: &str, owner: &str) -> Result<Vec<u8>> {
    let compact: String = data.chars().filter(|c| !c.is_whitespace()).collect();
    openssl::base64::decode_block(&compact).map_err(|_| {
        Error::content(
            origin,
            format!("`{field}` of {owner:?} is not valid base64; re-embed it with `kubectl config set-cluster/set-credentials --embed-certs`"),
        )
    })
}

impl Kubeconfig {
    /// The text with the server of cluster `cluster` (or of the current context's cluster) set
    /// to `server`, every other byte kept. Pure: `Ok(None)` when it already is `server`.
    pub fn with_server(&self, cluster: Option<&str>, server: &ServerUrl) -> Result<Option<String>> {
        let target = self.resolve_cluster(cluster)?;
        let server = server.as_given();
        if target.server == server {
            return Ok(None);
        }
        let path = [
            Seg::key("clusters"),
            Seg::Item(target.index),
            Seg::key("cluster"),
            Seg::key("server"),
        ];
        Ok(yamledit::set_scalar(&self.yaml, self.doc, &path, server)?.map(YamlText::into_text))
    }

    /// Read and parse a kubeconfig file.
    pub fn load(path: &Path) -> Result<Kubeconfig> {
        let text = crate::fsio::read_text(path)?;
        Kubeconfig::parse(&text, path)
    }

    /// Parse kubeconfig text; `origin` names the file in errors and anchors relative paths.
    pub fn parse(text: &str, origin: &Path) -> Result<Kubeconfig> {
        Kubeconfig::from_yaml(YamlText::parse(text, origin)?)
    }

    /// Read the config from the first non-empty document of `yaml`.
    pub fn from_yaml(yaml: YamlText) -> Result<Kubeconfig> {
        let origin = yaml.origin().to_path_buf();
        let origin = origin.as_path();
        let doc_index = yaml
            .docs()
            .iter()
            .position(|(_, v)| !v.is_null())
            .unwrap_or(0);
        let doc = yaml
            .docs()
            .get(doc_index)
            .map(|(_, v)| v.clone())
            .unwrap_or(Value::Null);
        let raw: RawConfig = if doc.is_null() {
            RawConfig::default()
        } else {
            serde_yaml_ng::from_value(doc).map_err(|e| {
                Error::content(
                    origin,
                    format!(
                        "is not a kubeconfig ({}); point the module at a file written by kubeadm or kubectl",
                        yamledit::describe_error(&e)
                    ),
                )
            })?
        };
        let dir = origin.parent().map(Path::to_path_buf).unwrap_or_default();
        let resolve = |p: &str| -> PathBuf {
            let p = PathBuf::from(p);
            if p.is_absolute() {
                p
            } else {
                dir.join(p)
            }
        };
        let mut clusters = Vec::new();
        for (index, named) in raw.clusters.unwrap_or_default().into_iter().enumerate() {
            let name = named.name.unwrap_or_default();
            let body = named.body.unwrap_or_default();
            let ca = match (body.ca_data, body.ca_file) {
                (Some(d), _) if !d.trim().is_empty() => CaSource::Data(decode_base64(
                    &d,
                    origin,
                    "certificate-authority-data",
                    &name,
                )?),
                (_, Some(f)) if !f.trim().is_empty() => CaSource::File(resolve(&f)),
                _ => CaSource::None,
            };
            clusters.push(Cluster {
                name,
                index,
                server: body.server.unwrap_or_default(),
                ca,
                tls_server_name: body.tls_server_name,
            });
        }
        let contexts = raw
            .contexts
            .unwrap_or_default()
            .into_iter()
            .map(|named| {
                let body = named.body.unwrap_or_default();
                Context {
                    name: named.name.unwrap_or_default(),
                    cluster: body.cluster.unwrap_or_default(),
                    user: body.user.unwrap_or_default(),
                }
            })
            .collect();
        let mut users = Vec::new();
        for named in raw.users.unwrap_or_default() {
            let name = named.name.unwrap_or_default();
            let body = named.body.unwrap_or_default();
            let cred = |data: Option<String>,
                        file: Option<String>,
                        field: &str|
             -> Result<Option<Credential>> {
                Ok(match (data, file) {
                    (Some(d), _) if !d.trim().is_empty() => Some(Credential::Data(Secret(
                        decode_base64(&d, origin, field, &name)?,
                    ))),
                    (_, Some(f)) if !f.trim().is_empty() => Some(Credential::File(resolve(&f))),
                    _ => None,
                })
            };
            let cert = cred(body.cert_data, body.cert_file, "client-certificate-data")?;
            let key = cred(body.key_data, body.key_file, "client-key-data")?;
            users.push(User {
                cert,
                key,
                token: body
                    .token
                    .filter(|t| !t.is_empty())
                    .map(|t| Secret(t.into_bytes())),
                token_file: body
                    .token_file
                    .filter(|t| !t.is_empty())
                    .map(|t| resolve(&t)),
                basic: body.username.is_some(),
                exec: body.exec.is_some(),
                auth_provider: body.auth_provider.is_some(),
                name,
            });
        }
        Ok(Kubeconfig {
            origin: origin.to_path_buf(),
            yaml,
            doc: doc_index,
            clusters,
            contexts,
            users,
            current_context: raw.current_context.filter(|c| !c.is_empty()),
        })
    }

    pub fn origin(&self) -> &Path {
        &self.origin
    }

    pub fn clusters(&self) -> &[Cluster] {
        &self.clusters
    }

    pub fn contexts(&self) -> &[Context] {
        &self.contexts
    }

    pub fn current_context(&self) -> Option<&str> {
        self.current_context.as_deref()
    }

    fn cluster_names(&self) -> String {
        self.clusters
            .iter()
            .map(|c| format!("{:?}", c.name))
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn no_clusters(&self) -> Error {
        Error::content(
            &self.origin,
            "has no clusters; point the module at a kubeconfig that defines one (for example /etc/kubernetes/admin.conf)",
        )
    }

    /// The cluster named `name`.
    pub fn cluster(&self, name: &str) -> Result<&Cluster> {
        if self.clusters.is_empty() {
            return Err(self.no_clusters());
        }
        let found: Vec<&Cluster> = self.clusters.iter().filter(|c| c.name == name).collect();
        match found.as_slice() {
            [one] => Ok(one),
            [] => Err(Error::content(
                &self.origin,
                format!("has no cluster named {name:?}; its clusters are {}: set `cluster` to one of them", self.cluster_names()),
            )),
            _ => Err(Error::content(
                &self.origin,
                format!("defines the cluster {name:?} {} times; remove the duplicates", found.len()),
            )),
        }
    }

    /// The context named by `current-context`, if set.
    fn current(&self) -> Result<Option<&Context>> {
        let Some(name) = &self.current_context else {
            return Ok(None);
        };
        self.contexts
            .iter()
            .find(|c| &c.name == name)
            .map(Some)
            .ok_or_else(|| {
                Error::content(
                    &self.origin,
                    format!("current-context {name:?} names no context in the file; fix current-context or name the cluster with the `cluster` option"),
                )
            })
    }

    /// The cluster the current context uses; with no current-context, the only cluster.
    pub fn current_cluster(&self) -> Result<&Cluster> {
        if self.clusters.is_empty() {
            return Err(self.no_clusters());
        }
        match self.current()? {
            Some(ctx) => self.clusters.iter().find(|c| c.name == ctx.cluster).ok_or_else(|| {
                Error::content(
                    &self.origin,
                    format!(
                        "context {:?} points to cluster {:?}, which the file does not define (its clusters are {}); fix the context or name the cluster with the `cluster` option",
                        ctx.name, ctx.cluster, self.cluster_names()
                    ),
                )
            }),
            None if self.clusters.len() == 1 => Ok(&self.clusters[0]),
            None => Err(Error::content(
                &self.origin,
                format!(
                    "has {} clusters ({}) and no current-context; name the cluster with the `cluster` option",
                    self.clusters.len(),
                    self.cluster_names()
                ),
            )),
        }
    }

    /// `cluster(name)` when a name is given, else `current_cluster()`.
    pub fn resolve_cluster(&self, name: Option<&str>) -> Result<&Cluster> {
        match name {
            Some(n) => self.cluster(n),
            None => self.current_cluster(),
        }
    }

    /// The user of the current context (with no current-context: the only user, if exactly one).
    pub fn current_user(&self) -> Result<Option<&User>> {
        let name = match self.current()? {
            Some(ctx) => ctx.user.clone(),
            None if self.users.len() == 1 => self.users[0].name.clone(),
            None => return Ok(None),
        };
        Ok(self.users.iter().find(|u| u.name == name))
    }

    fn read_credential(&self, cred: &Credential, what: &str) -> Result<Secret> {
        match cred {
            Credential::Data(s) => Ok(s.clone()),
            Credential::File(p) => crate::fsio::read(p).map(Secret).map_err(|e| {
                Error::content(
                    &self.origin,
                    format!("the {what} file of the current user cannot be read: {e}"),
                )
            }),
        }
    }

    /// The current user's client certificate and key (PEM), for mutual TLS.
    pub fn client_credentials(&self) -> Result<ClientCredentials> {
        let user = self.current_user()?.ok_or_else(|| {
            Error::content(&self.origin, "has no user for the current context; use a kubeconfig with a client certificate such as /etc/kubernetes/admin.conf")
        })?;
        match (&user.cert, &user.key) {
            (Some(c), Some(k)) => Ok(ClientCredentials {
                cert_pem: self.read_credential(c, "client certificate")?,
                key_pem: self.read_credential(k, "client key")?,
            }),
            _ => Err(Error::content(
                &self.origin,
                format!("user {:?} has no client certificate and key (it authenticates with {}); use a kubeconfig with a client certificate such as /etc/kubernetes/admin.conf", user.name, user.auth_kind().as_str()),
            )),
        }
    }

    /// The current user's bearer token (inline or from `tokenFile`), if it has one.
    pub fn token(&self) -> Result<Option<Secret>> {
        let Some(user) = self.current_user()? else {
            return Ok(None);
        };
        if let Some(t) = &user.token {
            return Ok(Some(t.clone()));
        }
        match &user.token_file {
            Some(p) => {
                let text = crate::fsio::read_text(p)?;
                Ok(Some(Secret(text.trim().as_bytes().to_vec())))
            }
            None => Ok(None),
        }
    }

    /// The CA certificate (PEM) of a cluster.
    pub fn ca_pem(&self, cluster: &Cluster) -> Result<Vec<u8>> {
        match &cluster.ca {
            CaSource::Data(d) => Ok(d.clone()),
            CaSource::File(p) => crate::fsio::read(p),
            CaSource::None => Err(Error::content(
                &self.origin,
                format!("cluster {:?} has no certificate-authority(-data); TLS must be verified, so add the cluster CA", cluster.name),
            )),
        }
    }
}

const SECRET_KEYS: [&str; 6] = [
    "client-certificate-data",
    "client-key-data",
    "certificate-authority-data",
    "token",
    "password",
    "id-token",
];

/// `text` with the values of `*-data`, `token`, `password` and `id-token` keys replaced by
/// `<redacted>` (continuation lines of such a value dropped), for diffs and messages.
pub fn redacted(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut skipping_deeper_than: Option<usize> = None;
    for line in text.split_inclusive('\n') {
        let body = line.trim_end_matches(['\n', '\r']);
        let indent = body.len() - body.trim_start().len();
        if let Some(col) = skipping_deeper_than {
            if !body.trim().is_empty() && indent > col {
                continue;
            }
            skipping_deeper_than = None;
        }
        let rest = body.trim_start();
        let (key_col, key_part) = match rest.strip_prefix("- ") {
            Some(r) => (
                indent + 2 + (r.len() - r.trim_start().len()),
                r.trim_start(),
            ),
            None => (indent, rest),
        };
        let hit = SECRET_KEYS.iter().find(|k| {
            key_part
                .strip_prefix(**k)
                .and_then(|r| r.trim_start().strip_prefix(':'))
                .is_some_and(|r| r.is_empty() || r.starts_with(' '))
        });
        match hit {
            Some(k) => {
                let prefix_len = body.len() - key_part.len() + k.len();
                out.push_str(&body[..prefix_len]);
                out.push_str(": <redacted>");
                out.push_str(&line[body.len()..]);
                skipping_deeper_than = Some(key_col);
            }
            None => out.push_str(line),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `kubeconfig_server` does: the URL checked once, the text parsed once, then the edit.
    fn rewrite_server(
        text: &str,
        origin: &Path,
        cluster: Option<&str>,
        server: &str,
    ) -> Result<Option<String>> {
        let server = ServerUrl::parse(server, "server")?;
        Kubeconfig::parse(text, origin)?.with_server(cluster, &server)
    }

    const TWO: &str = "apiVersion: v1\nclusters:\n- cluster:\n    certificate-authority-data: QUJD\n    server: https://10.0.0.11:6443\n  name: kubernetes\n- cluster:\n    server: https://127.0.0.1:6443\n  name: local\ncontexts:\n- context:\n    cluster: kubernetes\n    user: admin\n  name: admin@kubernetes\ncurrent-context: admin@kubernetes\nkind: Config\nusers:\n- name: admin\n  user:\n    client-certificate-data: Q0VSVA==\n    client-key-data: S0VZ\n";

    #[test]
    fn current_cluster_and_user_resolve() {
        let k = Kubeconfig::parse(TWO, Path::new("/etc/kubernetes/admin.conf")).unwrap();
        assert_eq!(
            k.current_cluster().unwrap().server,
            "https://10.0.0.11:6443"
        );
        assert_eq!(k.cluster("local").unwrap().index, 1);
        let creds = k.client_credentials().unwrap();
        assert_eq!(creds.cert_pem.expose(), b"CERT");
        assert_eq!(creds.key_pem.expose(), b"KEY");
        let dbg = format!("{k:?} {creds:?}");
        assert!(
            !dbg.contains("KEY\"") && !dbg.contains("75, 69, 89"),
            "{dbg}"
        );
        assert_eq!(
            k.current_user().unwrap().unwrap().auth_kind(),
            AuthKind::ClientCertData
        );
    }

    #[test]
    fn server_rewritten_for_current_or_named_cluster() {
        let p = Path::new("admin.conf");
        let out = rewrite_server(TWO, p, None, "https://10.0.0.10:6443")
            .unwrap()
            .unwrap();
        assert_eq!(
            out,
            TWO.replace("https://10.0.0.11:6443", "https://10.0.0.10:6443")
        );
        let out = rewrite_server(TWO, p, Some("local"), "https://10.0.0.10:6443")
            .unwrap()
            .unwrap();
        assert_eq!(
            out,
            TWO.replace("https://127.0.0.1:6443", "https://10.0.0.10:6443")
        );
        assert!(rewrite_server(TWO, p, None, "https://10.0.0.11:6443")
            .unwrap()
            .is_none());
    }

    /// Parse once: the file once and the edit's result once (its re-parse check), where the
    /// text-passing version parsed it 12 times (six `parse_documents` calls of two parses each).
    #[test]
    fn a_server_edit_parses_the_file_once_and_the_result_once() {
        let before = yamledit::documents_parses();
        let out = rewrite_server(TWO, Path::new("admin.conf"), None, "https://10.0.0.10:6443");
        assert!(out.unwrap().is_some());
        assert_eq!(yamledit::documents_parses() - before, 2);
    }

    #[test]
    fn errors_name_the_fix() {
        let p = Path::new("/x/kubelet.conf");
        let no_ctx = TWO.replace("current-context: admin@kubernetes\n", "");
        let e = rewrite_server(&no_ctx, p, None, "https://a:6443")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("name the cluster with the `cluster` option"),
            "{e}"
        );
        let e = rewrite_server(TWO, p, Some("nope"), "https://a:6443")
            .unwrap_err()
            .to_string();
        assert!(e.contains("no cluster named \"nope\""), "{e}");
        let e = rewrite_server(
            "apiVersion: v1\nkind: Config\nclusters: []\n",
            p,
            None,
            "https://a:6443",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("has no clusters"), "{e}");
        let bad = TWO.replace("    cluster: kubernetes\n", "    cluster: gone\n");
        let e = rewrite_server(&bad, p, None, "https://a:6443")
            .unwrap_err()
            .to_string();
        assert!(e.contains("\"gone\""), "{e}");
        let e = rewrite_server(TWO, p, None, "http://a:6443")
            .unwrap_err()
            .to_string();
        assert!(e.contains("not an https URL"), "{e}");
    }

    #[test]
    fn redaction_hides_every_secret_value() {
        let r = redacted(TWO);
        assert!(
            !r.contains("Q0VSVA==") && !r.contains("S0VZ") && !r.contains("QUJD"),
            "{r}"
        );
        assert!(r.contains("    client-key-data: <redacted>\n"), "{r}");
        assert!(r.contains("server: https://10.0.0.11:6443"));
        assert_eq!(
            redacted("- token: abc\n  x: 1\n"),
            "- token: <redacted>\n  x: 1\n"
        );
    }
}
