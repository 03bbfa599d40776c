//! `kubeha.control_plane.kubeconfig_server`: set the `server:` of one cluster of a kubeconfig (the
//! named one, or the current context's), changing no other byte. The diff never shows key
//! material. With `kubeconfigs` one call does this for several files (every file of a host in one
//! remote command): all of them are read and planned before any is written, so a bad file leaves
//! every file as it was. Given the `component` that reads a file, the result's `restart` names the
//! components to restart: their file changed now, or they run since before its last change (a
//! run interrupted between the write and the restart). Docs: the sidecar `kubeconfig_server.yml`.

use crate::endpoint::ServerUrl;
use crate::error::{Error, Result};
use crate::file_change::{self, Target};
use crate::host::process;
use crate::kubeconfig::{self, Kubeconfig};
use crate::options::{Kind, ModuleSpec, OptionSpec, Options};
use crate::protocol::{Module, ModuleOutput};
use serde_json::{json, Map, Value};
use std::path::PathBuf;

const PATH_DOC: &str = "The kubeconfig file. Symlinks are followed.";
const SERVER_DOC: &str = "The new server, an C(https://host:port) URL (IPv6 in brackets).";
const CLUSTER_DOC: &str = "Name of the cluster entry to change. Required when the file has several clusters and no current-context.";
const COMPONENT_DOC: &str = "The component that reads this file (its process name, one of C(kubelet), C(kube-controller-manager), C(kube-scheduler)). It is then listed in the result's C(restart) when the file changes, or when the component has been running since before the file's last change (an earlier run was interrupted between the write and the restart).";

/// The options of one item of `kubeconfigs`: the same as the single-file options.
static ITEM: ModuleSpec = ModuleSpec {
    name: "kubeconfig_server.kubeconfigs",
    options: &[
        OptionSpec::new("path", Kind::Path, PATH_DOC).required(),
        OptionSpec::new("server", Kind::Str, SERVER_DOC).required(),
        OptionSpec::new("cluster", Kind::Str, CLUSTER_DOC),
        OptionSpec::new("component", Kind::Str, COMPONENT_DOC),
    ],
};

/// One file to point at a server.
#[derive(Debug, Clone)]
struct Entry {
    path: PathBuf,
    server: ServerUrl,
    cluster: Option<String>,
    component: Option<String>,
}

impl Entry {
    fn from_options(o: &Options) -> Result<Entry> {
        Ok(Entry {
            path: o.path("path")?,
            server: ServerUrl::parse(&o.string("server")?, "server")?,
            cluster: o.opt_string("cluster")?,
            component: o.opt_string("component")?,
        })
    }
}

pub struct KubeconfigServer {
    entries: Vec<Entry>,
    /// `kubeconfigs` was used: the result lists every file under `results`.
    many: bool,
    backup: bool,
    original_dir: Option<PathBuf>,
}

/// The file as read, the cluster chosen, and the new text when the server changes.
pub struct FilePlan {
    target: Target,
    cluster: String,
    server_before: String,
    new_text: Option<String>,
    reasons: Vec<String>,
    /// The entry's component runs since before the file's last change.
    stale: bool,
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
            OptionSpec::new("component", Kind::Str, COMPONENT_DOC),
            OptionSpec::new(
                "kubeconfigs",
                Kind::DictList(&ITEM),
                "Several files at once, each with its own O(path), O(server), O(cluster) and O(component); instead of those four.",
            ),
            file_change::BACKUP_OPTION,
            file_change::ORIGINAL_DIR_OPTION,
        ],
    };
    type Plan = Plan;
    type Applied = Vec<Option<PathBuf>>;

    fn from_options(o: &Options) -> Result<Self> {
        let items = o.dicts("kubeconfigs")?;
        // The single-file options the user gave, read once for both checks below.
        let mut single = Vec::new();
        for name in ["path", "server", "cluster", "component"] {
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
            original_dir: o.opt_path("original_dir")?,
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
            match file_change::apply(
                &file.target,
                text,
                check_mode,
                self.backup,
                self.original_dir.as_deref(),
            ) {
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
        let restart = restarts(&self.entries, &plan);
        let mut outs: Vec<ModuleOutput> = plan
            .0
            .into_iter()
            .zip(&self.entries)
            .zip(backups.into_iter().chain(std::iter::repeat(None)))
            .map(|((file, entry), backup)| report_file(entry, file, backup, check_mode))
            .collect();
        if !self.many {
            if let Some(mut out) = outs.pop() {
                out.set("restart", json!(restart));
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
        out.set("restart", json!(restart));
        out
    }
}

/// The components to restart, each once, in the order given: the file it reads changes (or would,
/// in check mode), or it runs since before the file's last change.
fn restarts(entries: &[Entry], plan: &Plan) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for (entry, file) in entries.iter().zip(&plan.0) {
        if let Some(component) = &entry.component {
            if (file.new_text.is_some() || file.stale) && !out.contains(component) {
                out.push(component.clone());
            }
        }
    }
    out
}

/// Whether `component` runs since before the last change of the file at `real_path`.
fn runs_with_older_copy(component: &str, real_path: &std::path::Path) -> Result<bool> {
    let modified = std::fs::metadata(real_path)
        .and_then(|m| m.modified())
        .map_err(|e| Error::io(real_path, "read the modification time of", e))?;
    Ok(process::running_since_before(component, modified))
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
    let stale = match &entry.component {
        Some(component) => runs_with_older_copy(component, &target.real_path)?,
        None => false,
    };
    Ok(FilePlan {
        target,
        cluster,
        server_before,
        new_text,
        reasons,
        stale,
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
    if let Some(component) = &entry.component {
        out.set("component", component.clone());
        out.set("stale", plan.stale);
    }
    let Some(new_text) = &plan.new_text else {
        out.msg = format!(
            "cluster {:?} in {path} already uses {}",
            plan.cluster,
            entry.server.as_given()
        );
        if let (Some(component), true) = (&entry.component, plan.stale) {
            out.msg.push_str(&format!(
                "; {component} runs since before its last change: restart it"
            ));
        }
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
