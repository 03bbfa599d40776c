//! Updating one key of a ConfigMap safely: GET, apply a pure text edit, PUT with the object's
//! `metadata.resourceVersion`; on 409 Conflict (someone changed it in between) read it again and
//! re-apply the edit, a bounded number of times. Check mode stops after the GET.

use super::client::{get_json, put_json, Put, Transport};
use crate::error::{Error, Result};
use serde_json::Value;
use std::time::Duration;

/// How many times an update is attempted before giving up on conflicts.
pub const MAX_ATTEMPTS: u32 = 5;

/// What an edit makes of a key's text: the new text (`None`: already right) and the edited
/// field's value before and after, for the report.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyChange {
    pub new_text: Option<String>,
    pub field_before: Value,
    pub field_after: Value,
}

/// The result of one ConfigMap update.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub namespace: String,
    pub name: String,
    pub key: String,
    pub changed: bool,
    pub text_before: String,
    pub text_after: String,
    pub field_before: Value,
    pub field_after: Value,
    pub resource_version_before: String,
    pub resource_version_after: String,
    /// PUTs sent (0 in check mode or without change); more than 1 means conflicts were retried.
    pub attempts: u32,
    /// The object as first read, before any change (for `backup_dir`).
    pub original: Value,
}

pub fn path_of(namespace: &str, name: &str) -> String {
    format!("/api/v1/namespaces/{namespace}/configmaps/{name}")
}

/// GET a ConfigMap.
pub fn get(t: &dyn Transport, namespace: &str, name: &str) -> Result<Value> {
    get_json(t, &path_of(namespace, name))
}

fn resource_version(object: &Value) -> String {
    object["metadata"]["resourceVersion"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

/// Called with the object as first read, before the first PUT (e.g. to save it for a rollback).
pub type BeforeWrite<'a> = &'a dyn Fn(&Value) -> Result<()>;

/// Update `data[key]` of ConfigMap `namespace/name` with `edit`, retrying on conflicts.
pub fn update_key(
    t: &dyn Transport,
    namespace: &str,
    name: &str,
    key: &str,
    check_mode: bool,
    edit: &dyn Fn(&str) -> Result<KeyChange>,
    before_write: BeforeWrite<'_>,
) -> Result<Outcome> {
    let mut attempts = 0;
    let mut first: Option<(Value, String, String)> = None;
    loop {
        let mut object = get(t, namespace, name)?;
        let text = object["data"][key].as_str().map(str::to_string).ok_or_else(|| {
            Error::remote(
                t.server(),
                format!("ConfigMap {namespace}/{name} has no data key {key:?}; is this a kubeadm cluster?"),
            )
        })?;
        let rv = resource_version(&object);
        let (original, text_before, rv_before) = first
            .get_or_insert_with(|| (object.clone(), text.clone(), rv.clone()))
            .clone();
        let change = edit(&text)?;
        let Some(new_text) = change.new_text.clone() else {
            return Ok(Outcome {
                namespace: namespace.into(),
                name: name.into(),
                key: key.into(),
                // Changed by us on an earlier attempt? Only when a PUT went through, which returns.
                changed: false,
                text_before,
                text_after: text,
                field_before: change.field_before,
                field_after: change.field_after,
                resource_version_before: rv_before,
                resource_version_after: rv,
                attempts,
                original,
            });
        };
        if check_mode {
            return Ok(Outcome {
                namespace: namespace.into(),
                name: name.into(),
                key: key.into(),
                changed: true,
                text_before,
                text_after: new_text,
                field_before: change.field_before,
                field_after: change.field_after,
                resource_version_before: rv_before.clone(),
                resource_version_after: rv_before,
                attempts,
                original,
            });
        }
        if attempts >= MAX_ATTEMPTS {
            return Err(Error::remote(
                t.server(),
                format!("ConfigMap {namespace}/{name} changed under every one of {MAX_ATTEMPTS} attempts to update it (409 Conflict); something else keeps writing it, stop that writer and rerun"),
            ));
        }
        if attempts == 0 {
            before_write(&original)?;
        }
        object["data"][key] = Value::String(new_text.clone());
        attempts += 1;
        let what = format!("ConfigMap {namespace}/{name}");
        match put_json(t, &path_of(namespace, name), &what, &object)? {
            Put::Stored(stored) => {
                return Ok(Outcome {
                    namespace: namespace.into(),
                    name: name.into(),
                    key: key.into(),
                    changed: true,
                    text_before,
                    text_after: new_text,
                    field_before: change.field_before,
                    field_after: change.field_after,
                    resource_version_before: rv_before,
                    resource_version_after: resource_version(&stored),
                    attempts,
                    original,
                })
            }
            Put::Conflict => std::thread::sleep(Duration::from_millis(100 * u64::from(attempts))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::http::{Request, Response};
    use serde_json::json;
    use std::cell::RefCell;

    /// An in-memory API server with one ConfigMap; `conflicts` PUTs fail with 409 after a
    /// concurrent writer bumped the object.
    struct Fake {
        object: RefCell<Value>,
        conflicts: RefCell<u32>,
        puts: RefCell<Vec<Value>>,
    }

    impl Fake {
        fn new(text: &str, conflicts: u32) -> Fake {
            Fake {
                object: RefCell::new(json!({
                    "kind": "ConfigMap",
                    "metadata": {"name": "kube-proxy", "namespace": "kube-system", "resourceVersion": "10"},
                    "data": {"kubeconfig.conf": text, "config.conf": "x: 1\n"}
                })),
                conflicts: RefCell::new(conflicts),
                puts: RefCell::new(Vec::new()),
            }
        }
    }

    fn reply(status: u16, body: &Value) -> Response {
        Response {
            status,
            headers: vec![],
            body: serde_json::to_vec(body).unwrap(),
        }
    }

    impl Transport for Fake {
        fn send(&self, req: &Request<'_>) -> std::result::Result<Response, String> {
            let mut obj = self.object.borrow_mut();
            match req.method {
                "GET" => Ok(reply(200, &obj)),
                "PUT" => {
                    let sent: Value = serde_json::from_slice(req.body.unwrap()).unwrap();
                    self.puts.borrow_mut().push(sent.clone());
                    let rv: u64 = obj["metadata"]["resourceVersion"]
                        .as_str()
                        .unwrap()
                        .parse()
                        .unwrap();
                    if *self.conflicts.borrow() > 0 {
                        *self.conflicts.borrow_mut() -= 1;
                        // someone else writes another key in between
                        obj["data"]["config.conf"] = json!(format!("x: {}\n", rv + 1));
                        obj["metadata"]["resourceVersion"] = json!((rv + 1).to_string());
                    }
                    if sent["metadata"]["resourceVersion"] != obj["metadata"]["resourceVersion"] {
                        return Ok(reply(409, &json!({"kind": "Status", "reason": "Conflict"})));
                    }
                    let mut stored = sent;
                    stored["metadata"]["resourceVersion"] = json!((rv + 100).to_string());
                    *obj = stored.clone();
                    Ok(reply(200, &stored))
                }
                _ => Ok(reply(405, &json!({}))),
            }
        }
        fn server(&self) -> String {
            "https://fake:6443".into()
        }
    }

    fn set_server(text: &str) -> Result<KeyChange> {
        let after = "server: https://vip:6443\n";
        Ok(KeyChange {
            new_text: (text != after).then(|| after.to_string()),
            field_before: json!(text.trim()),
            field_after: json!(after.trim()),
        })
    }

    #[test]
    fn a_conflict_is_reread_and_reapplied_keeping_the_other_writers_change() {
        let fake = Fake::new("server: https://m1:6443\n", 2);
        let out = update_key(
            &fake,
            "kube-system",
            "kube-proxy",
            "kubeconfig.conf",
            false,
            &set_server,
            &|_| Ok(()),
        )
        .unwrap();
        assert!(out.changed);
        assert_eq!(out.attempts, 3);
        assert_eq!(out.resource_version_before, "10");
        let obj = fake.object.borrow();
        assert_eq!(obj["data"]["kubeconfig.conf"], "server: https://vip:6443\n");
        assert_eq!(
            obj["data"]["config.conf"], "x: 12\n",
            "the concurrent write was lost"
        );
        assert_eq!(
            out.resource_version_after,
            obj["metadata"]["resourceVersion"].as_str().unwrap()
        );
        // every PUT carried the resourceVersion it had read
        let puts = fake.puts.borrow();
        assert_eq!(puts[0]["metadata"]["resourceVersion"], "10");
        assert_eq!(puts[2]["metadata"]["resourceVersion"], "12");
    }

    #[test]
    fn endless_conflicts_fail_after_the_bound() {
        let fake = Fake::new("server: https://m1:6443\n", 100);
        let err = update_key(
            &fake,
            "kube-system",
            "kube-proxy",
            "kubeconfig.conf",
            false,
            &set_server,
            &|_| Ok(()),
        )
        .unwrap_err();
        assert!(err.to_string().contains("409 Conflict"), "{err}");
        assert_eq!(fake.puts.borrow().len(), MAX_ATTEMPTS as usize);
    }

    #[test]
    fn check_mode_and_no_change_send_no_put() {
        let fake = Fake::new("server: https://m1:6443\n", 0);
        let out = update_key(
            &fake,
            "kube-system",
            "kube-proxy",
            "kubeconfig.conf",
            true,
            &set_server,
            &|_| Ok(()),
        )
        .unwrap();
        assert!(out.changed);
        assert_eq!(out.text_after, "server: https://vip:6443\n");
        let fake2 = Fake::new("server: https://vip:6443\n", 0);
        let out2 = update_key(
            &fake2,
            "kube-system",
            "kube-proxy",
            "kubeconfig.conf",
            false,
            &set_server,
            &|_| Ok(()),
        )
        .unwrap();
        assert!(!out2.changed);
        assert!(fake.puts.borrow().is_empty() && fake2.puts.borrow().is_empty());
    }

    #[test]
    fn a_missing_key_is_named() {
        let fake = Fake::new("x", 0);
        let err = update_key(
            &fake,
            "kube-system",
            "kube-proxy",
            "nope",
            false,
            &set_server,
            &|_| Ok(()),
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("kube-system/kube-proxy has no data key \"nope\""),
            "{err}"
        );
    }
}
