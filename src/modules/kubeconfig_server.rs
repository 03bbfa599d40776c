//! `kubeha.control_plane.kubeconfig_server`: set the `server:` of one cluster of a kubeconfig (the
//! named one, or the current context's), changing no other byte. The diff never shows key
//! material. With `kubeconfigs` one call does this for several files (every file of a host in one
//! remote command): all of them are read and planned before any is written, so a bad file leaves
//! every file as it was. Docs: the sidecar `kubeconfig_server.yml`.

use crate::endpoint::ServerUrl;
use crate::error::{Error, Result};
use crate::file_change::{self, Target};
use crate::kubeconfig::{self, Kubeconfig};
use crate::options::{Kind, ModuleSpec, OptionSpec, Options};
use crate::protocol::{Module, ModuleOutput};
use serde_json::{json, Map, Value};
use std::path::PathBuf;

const PATH_DOC: &str = "The kubeconfig file. Symlinks are followed.";
const SERVER_DOC: &str = "The new server, an C(https://host:port) URL (IPv6 in brackets).";
const CLUSTER_DOC: &str = "Name of the cluster entry to change. Required when the file has several clusters and no current-context.";

/// The options of one item of `kubeconfigs`: the same as the single-file options.
static ITEM: ModuleSpec = ModuleSpec {
    name: "kubeconfig_server.kubeconfigs",
    options: &[
        OptionSpec::new("path", Kind::Path, PATH_DOC).required(),
        OptionSpec::new("server", Kind::Str, SERVER_DOC).required(),
        OptionSpec::new("cluster", Kind::Str, CLUSTER_DOC),
    ],
};

/// One file to point at a server.
#[derive(Debug, Clone)]
struct Entry {
    path: PathBuf,
    server: ServerUrl,
    cluster: Option<String>,
}

impl Entry {
    fn from_options(o: &Options) -> Result<Entry> {
        Ok(Entry {
            path: o.path("path")?,
            server: ServerUrl::parse(&o.string("server")?, "server")?,
            cluster: o.opt_string("cluster")?,
        })
    }
}

pub struct KubeconfigServer {
    entries: Vec<Entry>,
    /// `kubeconfigs` was used: the result lists every file under `results`.
    many: bool,
    backup: bool,
}

/// The file as read, the cluster chosen, and the new text when the server changes.
pub struct FilePlan {
    target: Target,
    cluster: String,
    server_before: String,
    new_text: Option<String>,
    reasons: Vec<String>,
}

/// Every file's plan, in the order given.
pub struct Plan(Vec<FilePlan>);

impl Module for KubeconfigServer {
    const SPEC: &'static ModuleSpec = &ModuleSpec {
        name: "kubeconfig_server",
        options: &[
            OptionSpec::new("path", Kind::Path, PATH_DOC),
            OptionSpec::new("server", Kind::Str, SERVER_DOC),
            OptionSpec::new("cluster", Kind::Str, CLUSTER_DOC),
            OptionSpec::new(
                "kubeconfigs",
                Kind::DictList(&ITEM),
                "Several files at once, each with its own O(path), O(server) and O(cluster); instead of those three.",
            ),
            file_change::BACKUP_OPTION,
        ],
    };
    type Plan = Plan;
    type Applied = Vec<Option<PathBuf>>;

    fn from_options(o: &Options) -> Result<Self> {
        let items = o.dicts("kubeconfigs")?;
        // The single-file options the user gave, read once for both checks below.
        let mut single = Vec::new();
        for name in ["path", "server", "cluster"] {
            if o.opt_string(name)?.is_some() {
                single.push(name);
            }
        }
        let entries = match (items.is_empty(), single.is_empty()) {
            (false, false) => {
                return Err(Error::option(
                    "kubeconfigs",
                    format!(
                        "is mutually exclusive with {}: give each file's path and server inside kubeconfigs, or one file with path and server",
                        single.join(", ")
                    ),
                ))
            }
            (false, true) => items
                .iter()
                .map(Entry::from_options)
                .collect::<Result<Vec<_>>>()?,
            (true, _) => {
                for name in ["path", "server"] {
                    if !single.contains(&name) {
                        return Err(Error::option(
                            name,
                            "is required (or give the files as a kubeconfigs list)",
                        ));
                    }
                }
                vec![Entry::from_options(o)?]
            }
        };
        Ok(KubeconfigServer {
            many: !items.is_empty(),
            entries,
            backup: o.bool("backup")?,
        })
    }

    /// Every file is planned, so that one failure lists every file that cannot be changed.
    fn plan(&self) -> Result<Plan> {
        let mut plans = Vec::new();
        let mut errors: Vec<Error> = Vec::new();
        for entry in &self.entries {
            match plan_file(entry) {
                Ok(p) => plans.push(p),
                Err(e) => errors.push(e),
            }
        }
        match errors.len() {
            0 => Ok(Plan(plans)),
            1 => Err(errors.remove(0)),
            _ => Err(Error::Refused(
                errors
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; "),
            )),
        }
    }

    /// The backup file of each file, when one was written. Files are written in the order given;
    /// a failure names the files already written (each has its backup).
    fn apply(&self, plan: &Plan, check_mode: bool) -> Result<Vec<Option<PathBuf>>> {
        let mut backups = Vec::new();
        let mut written: Vec<String> = Vec::new();
        for file in &plan.0 {
            let Some(text) = &file.new_text else {
                backups.push(None);
                continue;
            };
            match file_change::apply(&file.target, text, check_mode, self.backup) {
                Ok(backup) => {
                    written.push(file.target.path.display().to_string());
                    backups.push(backup);
                }
                Err(e) if written.is_empty() => return Err(e),
                Err(e) => {
                    return Err(Error::Refused(format!(
                        "{e}; already updated in this call: {} (each with its backup when backup is on); fix the cause and run the task again",
                        written.join(", ")
                    )))
                }
            }
        }
        Ok(backups)
    }

    fn report(&self, plan: Plan, backups: Vec<Option<PathBuf>>, check_mode: bool) -> ModuleOutput {
        let mut outs: Vec<ModuleOutput> = plan
            .0
            .into_iter()
            .zip(&self.entries)
            .zip(backups.into_iter().chain(std::iter::repeat(None)))
            .map(|((file, entry), backup)| report_file(entry, file, backup, check_mode))
            .collect();
        if !self.many {
            if let Some(out) = outs.pop() {
                return out;
            }
        }
        let changed: Vec<&str> = outs
            .iter()
            .filter(|o| o.changed)
            .filter_map(|o| o.fields.get("path").and_then(Value::as_str))
            .collect();
        let msg = if changed.is_empty() {
            format!("all {} kubeconfigs already use their server", outs.len())
        } else {
            format!(
                "{} {} of {}: {}",
                if check_mode {
                    "would update"
                } else {
                    "updated"
                },
                changed.len(),
                outs.len(),
                changed.join(", ")
            )
        };
        let mut out = ModuleOutput::new(!changed.is_empty(), msg);
        let mut results = Vec::new();
        for file in outs {
            let mut fields: Map<String, Value> = file.fields;
            fields.insert("changed".into(), json!(file.changed));
            fields.insert("msg".into(), json!(file.msg));
            results.push(Value::Object(fields));
            out.diffs.extend(file.diffs);
        }
        out.set("results", Value::Array(results));
        out
    }
}

fn plan_file(entry: &Entry) -> Result<FilePlan> {
    let target = file_change::read_target(&entry.path)?;
    let config = Kubeconfig::parse(&target.text, &entry.path)?;
    let chosen = config.resolve_cluster(entry.cluster.as_deref())?;
    let (cluster, server_before) = (chosen.name.clone(), chosen.server.clone());
    let new_text = config.with_server(entry.cluster.as_deref(), &entry.server)?;
    let reasons = match new_text {
        Some(_) => vec![format!(
            "cluster {cluster:?} uses {server_before}, wanted {}",
            entry.server.as_given()
        )],
        None => Vec::new(),
    };
    Ok(FilePlan {
        target,
        cluster,
        server_before,
        new_text,
        reasons,
    })
}

fn report_file(
    entry: &Entry,
    plan: FilePlan,
    backup_file: Option<PathBuf>,
    check_mode: bool,
) -> ModuleOutput {
    let path = entry.path.display().to_string();
    let mut out = ModuleOutput::new(plan.new_text.is_some(), "");
    out.set("path", path.clone());
    out.set("cluster", plan.cluster.clone());
    out.set("server_before", plan.server_before.clone());
    out.set("server_after", entry.server.as_given());
    out.set("reasons", json!(plan.reasons));
    let Some(new_text) = &plan.new_text else {
        out.msg = format!(
            "cluster {:?} in {path} already uses {}",
            plan.cluster,
            entry.server.as_given()
        );
        return out;
    };
    file_change::report_change(
        &mut out,
        &path,
        check_mode,
        &plan.reasons,
        backup_file,
        kubeconfig::redacted(&plan.target.text),
        kubeconfig::redacted(new_text),
    );
    out
}
