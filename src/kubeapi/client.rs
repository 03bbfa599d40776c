//! The Kubernetes API as kubeha talks to it: a [`Transport`] sends one request (the real one,
//! [`ApiServer`], over mutual TLS verified against the cluster CA; tests substitute a fake), and
//! [`ApiServer::from_kubeconfig`] builds the real one from a kubeconfig's current cluster and user.

use crate::endpoint::ServerUrl;
use crate::error::{Error, Result};
use crate::kubeconfig::Kubeconfig;
use crate::net::http::{self, Request, Response};
use crate::net::tls::{ca_certs_from_pem, ClientIdentity, TlsConfig, Trust};
use std::path::Path;
use std::time::Duration;

/// Sends one HTTP request to the API server.
pub trait Transport {
    fn send(&self, req: &Request<'_>) -> std::result::Result<Response, String>;
    /// The server, for messages (`https://host:port`).
    fn server(&self) -> String;
}

/// A real API server over verified TLS.
#[derive(Clone)]
pub struct ApiServer {
    pub host: String,
    pub port: u16,
    /// Path prefix of the server URL (`""` normally).
    pub prefix: String,
    pub tls: TlsConfig,
    pub timeout: Duration,
}

impl ApiServer {
    /// The current cluster and user of `kubeconfig`: server (or `api_server` instead), CA, client
    /// certificate. A kubeconfig without a client certificate is refused: kubeha needs one.
    pub fn from_kubeconfig(
        kubeconfig: &Path,
        api_server: Option<&str>,
        timeout: Duration,
    ) -> Result<ApiServer> {
        let config = Kubeconfig::load(kubeconfig)?;
        let cluster = config.current_cluster()?;
        let ca_pem = config.ca_pem(cluster)?;
        let cas = ca_certs_from_pem(&ca_pem, &kubeconfig.display().to_string())?;
        let creds = config.client_credentials()?;
        let identity = ClientIdentity::from_pem(
            creds.cert_pem.expose(),
            creds.key_pem.expose(),
            &kubeconfig.display().to_string(),
        )?;
        let (server_text, what) = match api_server {
            Some(s) => (s.to_string(), "api_server"),
            None => (cluster.server.clone(), "server"),
        };
        let url = ServerUrl::parse(&server_text, what).map_err(|e| match api_server {
            Some(_) => e,
            None => Error::content(kubeconfig, format!("the current cluster's server: {e}")),
        })?;
        Ok(ApiServer {
            host: url.host.to_url_host(),
            port: url.port,
            prefix: url.path.trim_end_matches('/').to_string(),
            tls: TlsConfig {
                trust: Trust::Ca(cas),
                identity: Some(identity),
                server_name: cluster.tls_server_name.clone(),
            },
            timeout,
        })
    }
}

impl Transport for ApiServer {
    fn send(&self, req: &Request<'_>) -> std::result::Result<Response, String> {
        let path = format!("{}{}", self.prefix, req.path);
        let req = Request {
            path: &path,
            ..req.clone()
        };
        http::https(&self.host, self.port, &self.tls, &req, self.timeout)
    }

    fn server(&self) -> String {
        format!("https://{}:{}{}", self.host, self.port, self.prefix)
    }
}

/// GET `path` and parse the JSON answer; anything but 200 is an error naming the path.
pub fn get_json(t: &dyn Transport, path: &str) -> Result<serde_json::Value> {
    let resp = t
        .send(&Request::get(path))
        .map_err(|e| Error::remote(t.server(), format!("GET {path}: {e}")))?;
    if resp.status != 200 {
        return Err(status_error(&t.server(), &format!("GET {path}"), &resp));
    }
    serde_json::from_slice(&resp.body).map_err(|e| {
        Error::remote(
            t.server(),
            format!("GET {path}: the answer is not JSON: {e}"),
        )
    })
}

/// What a PUT carrying the object's `metadata.resourceVersion` did.
pub enum Put {
    Stored(serde_json::Value),
    /// 409: the object changed since it was read; read it again and re-apply the edit.
    Conflict,
}

/// PUT `object` (named `what` in errors) to `path`: the stored object, or [`Put::Conflict`].
pub fn put_json(
    t: &dyn Transport,
    path: &str,
    what: &str,
    object: &serde_json::Value,
) -> Result<Put> {
    let body = serde_json::to_vec(object)
        .map_err(|e| Error::Refused(format!("cannot encode {what}: {e}")))?;
    let req = Request {
        method: "PUT",
        path,
        content_type: Some("application/json"),
        body: Some(&body),
    };
    let resp = t
        .send(&req)
        .map_err(|e| Error::remote(t.server(), format!("PUT {path}: {e}")))?;
    match resp.status {
        200 | 201 => serde_json::from_slice(&resp.body)
            .map(Put::Stored)
            .map_err(|e| {
                Error::remote(
                    t.server(),
                    format!("PUT {path}: the answer is not JSON: {e}"),
                )
            }),
        409 => Ok(Put::Conflict),
        _ => Err(status_error(&t.server(), &format!("PUT {path}"), &resp)),
    }
}

/// Turn a non-2xx answer into an error that says what to do.
pub fn status_error(server: &str, what: &str, resp: &Response) -> Error {
    let hint = match resp.status {
        401 => " (the client certificate was not accepted: use a kubeconfig whose user is a cluster admin, e.g. /etc/kubernetes/admin.conf)",
        403 => " (the user lacks permission: use /etc/kubernetes/admin.conf or grant get/update on configmaps)",
        404 => " (not found: is this a kubeadm/kubespray cluster?)",
        _ => "",
    };
    Error::remote(
        server,
        format!("{what}: HTTP {}{hint}: {}", resp.status, resp.snippet()),
    )
}
