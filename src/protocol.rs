//! Ansible's binary-module protocol: read the one JSON object Ansible writes to the file named by
//! argv[1] (or, when argv[1] is `-`, from standard input: the collection's action plugin passes the
//! arguments that way so that no arguments file is left on the host), split the user's options from the `_ansible_*` keys, and print exactly one JSON object
//! on stdout. [`run`] is the single place where an [`Error`] (or a panic) becomes
//! `{"failed": true, "msg": ...}`: Ansible ignores the exit code when stdout is valid JSON.
//!
//! Every module has one shape, the [`Module`] trait, driven by [`execute`]: options parsed against
//! the module's declared [`ModuleSpec`], a `plan` that only reads the host and gives the reason for
//! each change, an `apply` that carries the plan out (and writes nothing in check mode), and a
//! `report` that builds the one result object. A module binary is one line: [`main`].

use crate::diff::FileDiff;
use crate::error::{Error, Result};
use crate::options::{ModuleSpec, Options};
use serde_json::{Map, Value};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// What Ansible asked for, besides the module's own options.
#[derive(Debug, Clone, Default)]
pub struct Invocation {
    /// `_ansible_check_mode`: predict, never write.
    pub check_mode: bool,
    /// `_ansible_diff`: include `diff` in the result.
    pub diff: bool,
}

/// The parsed arguments file: Ansible's flags plus the user's options, not yet checked against
/// the module's spec.
#[derive(Debug)]
pub struct ModuleArgs {
    pub invocation: Invocation,
    pub options: Map<String, Value>,
}

impl ModuleArgs {
    /// Parse the JSON object of an arguments file. Unknown `_ansible_*` keys are ignored: Ansible
    /// adds new ones between releases.
    pub fn from_json(source: &Path, text: &str) -> Result<Self> {
        let value: Value = serde_json::from_str(text).map_err(|e| Error::Arguments {
            path: source.to_path_buf(),
            reason: format!("not valid JSON ({e}); Ansible writes one JSON object here"),
        })?;
        let Value::Object(all) = value else {
            return Err(Error::Arguments {
                path: source.to_path_buf(),
                reason: "expected one JSON object of options".into(),
            });
        };
        let mut invocation = Invocation::default();
        let mut user = Map::new();
        for (key, value) in all {
            match key.as_str() {
                "_ansible_check_mode" => invocation.check_mode = truthy(&value),
                "_ansible_diff" => invocation.diff = truthy(&value),
                k if k.starts_with("_ansible_") => {}
                _ => {
                    user.insert(key, value);
                }
            }
        }
        Ok(ModuleArgs {
            invocation,
            options: user,
        })
    }

    /// Read and parse the arguments file Ansible names in argv[1].
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::Arguments {
            path: path.to_path_buf(),
            reason: format!("cannot read it ({e}); run this module through Ansible, which passes the path of a JSON arguments file as the only argument"),
        })?;
        Self::from_json(path, &text)
    }

    /// Read and parse the arguments from standard input (argv[1] is `-`).
    pub fn from_stdin() -> Result<Self> {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin().lock(), &mut text).map_err(|e| {
            Error::Arguments {
                path: PathBuf::from("(standard input)"),
                reason: format!(
                    "cannot read it ({e}); the action plugin writes one JSON object there"
                ),
            }
        })?;
        Self::from_json(Path::new("(standard input)"), &text)
    }
}

fn truthy(value: &Value) -> bool {
    match value {
        Value::Bool(b) => *b,
        Value::String(s) => matches!(s.to_ascii_lowercase().as_str(), "true" | "yes" | "1" | "on"),
        Value::Number(n) => n.as_u64() == Some(1),
        _ => false,
    }
}

/// A module's result before it is printed.
#[derive(Debug, Default)]
pub struct ModuleOutput {
    pub changed: bool,
    pub msg: String,
    /// One entry per changed file or object; printed only under `--diff`.
    pub diffs: Vec<FileDiff>,
    pub warnings: Vec<String>,
    /// Module-specific return values (`backup_file`, `sans_after`, ...).
    pub fields: Map<String, Value>,
}

impl ModuleOutput {
    pub fn new(changed: bool, msg: impl Into<String>) -> Self {
        ModuleOutput {
            changed,
            msg: msg.into(),
            ..Default::default()
        }
    }

    pub fn field(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.fields.insert(key.to_string(), value.into());
        self
    }

    pub fn set(&mut self, key: &str, value: impl Into<Value>) {
        self.fields.insert(key.to_string(), value.into());
    }

    /// The JSON object Ansible reads.
    pub fn to_json(&self, invocation: &Invocation) -> Value {
        let mut out = Map::new();
        out.insert("changed".into(), Value::Bool(self.changed));
        out.insert("msg".into(), Value::String(self.msg.clone()));
        for (k, v) in &self.fields {
            out.insert(k.clone(), v.clone());
        }
        if invocation.diff && !self.diffs.is_empty() {
            let list: Vec<Value> = self.diffs.iter().map(FileDiff::to_json).collect();
            out.insert("diff".into(), Value::Array(list));
        }
        if !self.warnings.is_empty() {
            out.insert(
                "warnings".into(),
                Value::Array(self.warnings.iter().cloned().map(Value::String).collect()),
            );
        }
        Value::Object(out)
    }
}

/// One Ansible module. [`execute`] runs the steps in order; only `apply` may change the host, and
/// not in check mode, where it predicts what it would do so that `report` still shows the change
/// and its diff.
pub trait Module: Sized {
    /// The module's name and options: the single declaration parsing and the docs come from.
    const SPEC: &'static ModuleSpec;
    /// What the module found and would change, with the reason for each change.
    type Plan;
    /// What carrying the plan out did (or, in check mode, would do).
    type Applied;

    /// Build the module from options already parsed against [`Module::SPEC`]: checks that need
    /// more than one option, or a value's own syntax (URLs, SANs), happen here.
    fn from_options(options: &Options) -> Result<Self>;
    /// Look at the host (files, processes, the API) and decide; nothing is written.
    fn plan(&self) -> Result<Self::Plan>;
    /// Carry the plan out; in check mode write nothing.
    fn apply(&self, plan: &Self::Plan, check_mode: bool) -> Result<Self::Applied>;
    /// The result Ansible reads.
    fn report(&self, plan: Self::Plan, applied: Self::Applied, check_mode: bool) -> ModuleOutput;
}

/// Parse the options against the module's spec, then plan, apply and report.
pub fn execute<M: Module>(args: ModuleArgs) -> Result<ModuleOutput> {
    let options = Options::parse(M::SPEC, args.options)?;
    let module = M::from_options(&options)?;
    let check_mode = args.invocation.check_mode;
    let plan = module.plan()?;
    let applied = module.apply(&plan, check_mode)?;
    Ok(module.report(plan, applied, check_mode))
}

/// The whole binary of a module: `fn main() -> ExitCode { kubeha::protocol::main::<M>() }`.
pub fn main<M: Module>() -> ExitCode {
    run(M::SPEC.name, std::env::args_os(), execute::<M>)
}

/// The failure object for an error: the one place errors become Ansible failures.
pub fn failure_json(error: &Error) -> Value {
    let mut out = Map::new();
    out.insert("failed".into(), Value::Bool(true));
    out.insert("changed".into(), Value::Bool(false));
    out.insert("msg".into(), Value::String(error.to_string()));
    Value::Object(out)
}

/// Run a module: parse argv[1] (a file, or `-` for standard input), call `body`, print one JSON object. Returns the exit code (0 on
/// success, 1 on failure); Ansible reads only stdout.
pub fn run<F>(module: &'static str, argv: impl IntoIterator<Item = OsString>, body: F) -> ExitCode
where
    F: FnOnce(ModuleArgs) -> Result<ModuleOutput>,
{
    // A panic must still produce valid JSON, or Ansible reports an unreadable module result.
    std::panic::set_hook(Box::new(|info| {
        let msg = format!("internal error (please report it): {info}");
        let out = serde_json::json!({"failed": true, "changed": false, "msg": msg});
        println!("{out}");
    }));
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let args_path: PathBuf = match argv.into_iter().nth(1) {
            Some(p) => PathBuf::from(p),
            None => {
                return Err(Error::Arguments {
                    path: PathBuf::from("(none)"),
                    reason: format!("{module} is an Ansible module: pass the path of a JSON arguments file (or `-` to read it from standard input) as the only argument"),
                })
            }
        };
        let args = if args_path.as_os_str() == "-" {
            ModuleArgs::from_stdin()?
        } else {
            ModuleArgs::from_file(&args_path)?
        };
        let invocation = args.invocation.clone();
        body(args).map(|output| (invocation, output))
    }));
    match outcome {
        Ok(Ok((invocation, output))) => {
            println!("{}", output.to_json(&invocation));
            ExitCode::SUCCESS
        }
        Ok(Err(error)) => {
            println!("{}", failure_json(&error));
            ExitCode::FAILURE
        }
        // The panic hook already printed the failure object.
        Err(_) => ExitCode::FAILURE,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ansible_keys_are_split_and_unknown_ones_ignored() {
        let text = r#"{"path": "/x", "_ansible_check_mode": true, "_ansible_diff": true,
                       "_ansible_brand_new_key": {"a": 1}, "_ansible_verbosity": 3}"#;
        let args = ModuleArgs::from_json(Path::new("args"), text).unwrap();
        assert!(args.invocation.check_mode);
        assert!(args.invocation.diff);
        assert_eq!(args.options.keys().collect::<Vec<_>>(), vec!["path"]);
    }

    #[test]
    fn non_object_arguments_are_refused() {
        let err = ModuleArgs::from_json(Path::new("/tmp/args"), "[1,2]").unwrap_err();
        assert!(err.to_string().contains("/tmp/args"), "{err}");
        let err = ModuleArgs::from_json(Path::new("/tmp/args"), "{oops").unwrap_err();
        assert!(err.to_string().contains("not valid JSON"), "{err}");
    }

    #[test]
    fn diff_is_printed_only_when_asked() {
        let mut out = ModuleOutput::new(true, "changed");
        out.diffs.push(FileDiff::new("/f", "a\n", "b\n"));
        let quiet = out.to_json(&Invocation::default());
        assert!(quiet.get("diff").is_none());
        let loud = out.to_json(&Invocation {
            diff: true,
            ..Default::default()
        });
        assert_eq!(loud["diff"][0]["after"], "b\n");
    }
}
