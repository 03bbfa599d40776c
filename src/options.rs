//! The option spec: each module declares its options once ([`ModuleSpec`]: name, type,
//! required or default, choices, description), and that one table drives parsing here and is
//! checked field by field against the module's sidecar documentation (`tests/module_docs.rs`), as
//! ripgrep derives its help from one list of flag declarations.
//!
//! Binary modules get no argument-spec validation from Ansible, so [`Options::parse`] does what
//! Ansible does for Python modules, in Ansible's order: unknown options first (each named, with the
//! closest supported name when one is near: `sever` -> `server`), then per option in spec order the
//! type, the choices, and whether a required option is there. Values templated by Jinja arrive as
//! strings, so booleans and integers also accept their string forms, as Ansible's own type
//! conversion does; anything else of the wrong type fails naming the option. Defaults come from the
//! spec, so a module never repeats them.

use crate::error::{Error, Result};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// The type of an option, as Ansible's argument spec names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Str,
    Path,
    Bool,
    /// An integer within `min..=max`.
    Int {
        min: i64,
        max: i64,
    },
    /// `type: list, elements: str`; a comma-separated string is accepted, as Ansible does.
    StrList,
    /// `type: list, elements: int`, each item within `min..=max`; numeric strings and a
    /// comma-separated string are accepted, as for [`Kind::Int`] and [`Kind::StrList`].
    IntList {
        min: i64,
        max: i64,
    },
    /// `type: list, elements: dict` whose items have their own options (the sidecar's
    /// `options:` under the option), parsed with the same rules.
    DictList(&'static ModuleSpec),
}

impl Kind {
    /// The `type:` of the sidecar documentation.
    pub fn ansible_type(self) -> &'static str {
        match self {
            Kind::Str => "str",
            Kind::Path => "path",
            Kind::Bool => "bool",
            Kind::Int { .. } => "int",
            Kind::StrList | Kind::IntList { .. } | Kind::DictList(_) => "list",
        }
    }

    /// The `elements:` of a list option.
    pub fn elements(self) -> Option<&'static str> {
        match self {
            Kind::StrList => Some("str"),
            Kind::IntList { .. } => Some("int"),
            Kind::DictList(_) => Some("dict"),
            _ => None,
        }
    }
}

/// An option's default, when it has one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Default {
    None,
    Str(&'static str),
    Bool(bool),
    Int(i64),
    EmptyList,
}

impl Default {
    /// The default as JSON (what the sidecar's `default:` must be), `None` without one.
    pub fn to_json(self) -> Option<Value> {
        match self {
            Default::None => None,
            Default::Str(s) => Some(Value::String(s.to_string())),
            Default::Bool(b) => Some(Value::Bool(b)),
            Default::Int(i) => Some(Value::from(i)),
            Default::EmptyList => Some(Value::Array(Vec::new())),
        }
    }
}

/// One option of a module.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OptionSpec {
    pub name: &'static str,
    pub kind: Kind,
    pub required: bool,
    pub default: Default,
    /// Allowed values of a string option; empty when any value is allowed.
    pub choices: &'static [&'static str],
    /// The first line of the option's documentation.
    pub description: &'static str,
}

impl OptionSpec {
    pub const fn new(name: &'static str, kind: Kind, description: &'static str) -> Self {
        OptionSpec {
            name,
            kind,
            required: false,
            default: Default::None,
            choices: &[],
            description,
        }
    }

    pub const fn required(mut self) -> Self {
        self.required = true;
        self
    }

    pub const fn default(mut self, default: Default) -> Self {
        self.default = default;
        self
    }

    pub const fn choices(mut self, choices: &'static [&'static str]) -> Self {
        self.choices = choices;
        self
    }
}

/// A module's name and its options: the single declaration of what it accepts. The items of a
/// [`Kind::DictList`] option have one too, named after the option.
#[derive(Debug, PartialEq, Eq)]
pub struct ModuleSpec {
    pub name: &'static str,
    pub options: &'static [OptionSpec],
}

impl ModuleSpec {
    pub fn option(&self, name: &str) -> Option<&'static OptionSpec> {
        self.options.iter().find(|o| o.name == name)
    }

    fn names(&self) -> Vec<&'static str> {
        self.options.iter().map(|o| o.name).collect()
    }
}

/// A parsed value, of its option's kind.
#[derive(Debug, Clone, PartialEq)]
enum Parsed {
    Str(String),
    Bool(bool),
    Int(i64),
    List(Vec<String>),
    Ints(Vec<i64>),
    Dicts(Vec<Options>),
}

impl Parsed {
    /// A list option (of strings or of dicts) given with no item.
    fn is_empty_list(&self) -> bool {
        match self {
            Parsed::List(l) => l.is_empty(),
            Parsed::Ints(l) => l.is_empty(),
            Parsed::Dicts(l) => l.is_empty(),
            Parsed::Str(_) | Parsed::Bool(_) | Parsed::Int(_) => false,
        }
    }
}

/// A module's options, parsed against its spec, defaults filled in.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    spec: &'static ModuleSpec,
    values: BTreeMap<&'static str, Parsed>,
}

impl Options {
    /// Parse the user's options (the `_ansible_*` keys already removed) against `spec`.
    pub fn parse(spec: &'static ModuleSpec, mut raw: Map<String, Value>) -> Result<Self> {
        let supported = spec.names();
        let mut unknown: Vec<&str> = raw
            .keys()
            .map(String::as_str)
            .filter(|k| !supported.contains(k))
            .collect();
        if !unknown.is_empty() {
            unknown.sort_unstable();
            let named: Vec<String> = unknown
                .iter()
                .map(|k| match closest(k, &supported) {
                    Some(near) => format!("`{k}` (did you mean `{near}`?)"),
                    None => format!("`{k}`"),
                })
                .collect();
            let mut all = supported.clone();
            all.sort_unstable();
            return Err(Error::UnknownOptions {
                module: spec.name.to_string(),
                unknown: named.join(", "),
                supported: all.join(", "),
            });
        }
        let mut values = BTreeMap::new();
        for option in spec.options {
            // `null` counts as not given: that is how Ansible passes `None`.
            let given = match raw.remove(option.name) {
                Some(Value::Null) | None => None,
                Some(v) => Some(v),
            };
            if let Some(value) = parse_value(option, given)? {
                values.insert(option.name, value);
            }
        }
        Ok(Options { spec, values })
    }

    /// The parsed value of `name`, checked against the spec: asking for an undeclared option, or
    /// as the wrong kind, is a module bug reported as such rather than a panic.
    fn get(&self, name: &'static str, kinds: &[&str]) -> Result<Option<&Parsed>> {
        let declared = self
            .spec
            .option(name)
            .filter(|o| kinds.contains(&o.kind.ansible_type()));
        if declared.is_none() {
            return Err(Error::option(
                name,
                format!(
                    "internal error (please report it): module {} reads an option its spec does not declare as {}",
                    self.spec.name,
                    kinds.join(" or ")
                ),
            ));
        }
        Ok(self.values.get(name))
    }

    /// A string or path option, when given or defaulted.
    pub fn opt_string(&self, name: &'static str) -> Result<Option<String>> {
        match self.get(name, &["str", "path"])? {
            Some(Parsed::Str(s)) => Ok(Some(s.clone())),
            _ => Ok(None),
        }
    }

    /// A string option that is required or has a default.
    pub fn string(&self, name: &'static str) -> Result<String> {
        self.opt_string(name)?
            .ok_or_else(|| Error::option(name, "is required"))
    }

    pub fn opt_path(&self, name: &'static str) -> Result<Option<PathBuf>> {
        Ok(self.opt_string(name)?.map(PathBuf::from))
    }

    /// A path option that is required or has a default.
    pub fn path(&self, name: &'static str) -> Result<PathBuf> {
        Ok(PathBuf::from(self.string(name)?))
    }

    pub fn bool(&self, name: &'static str) -> Result<bool> {
        match self.get(name, &["bool"])? {
            Some(Parsed::Bool(b)) => Ok(*b),
            _ => Err(Error::option(name, "is required")),
        }
    }

    pub fn int(&self, name: &'static str) -> Result<i64> {
        self.opt_int(name)?
            .ok_or_else(|| Error::option(name, "is required"))
    }

    /// An integer option, when given or defaulted.
    pub fn opt_int(&self, name: &'static str) -> Result<Option<i64>> {
        match self.get(name, &["int"])? {
            Some(Parsed::Int(i)) => Ok(Some(*i)),
            _ => Ok(None),
        }
    }

    /// A list of integers, each within the option's range; empty when not given.
    pub fn ints(&self, name: &'static str) -> Result<Vec<i64>> {
        match self.get(name, &["list"])? {
            Some(Parsed::Ints(l)) => Ok(l.clone()),
            _ => Ok(Vec::new()),
        }
    }

    /// A list of strings; empty when not given.
    pub fn list(&self, name: &'static str) -> Result<Vec<String>> {
        match self.get(name, &["list"])? {
            Some(Parsed::List(l)) => Ok(l.clone()),
            _ => Ok(Vec::new()),
        }
    }

    /// A list of dictionaries, each parsed against the option's item spec; empty when not given.
    pub fn dicts(&self, name: &'static str) -> Result<Vec<Options>> {
        match self.get(name, &["list"])? {
            Some(Parsed::Dicts(items)) => Ok(items.clone()),
            _ => Ok(Vec::new()),
        }
    }
}

/// One option's value: converted to its kind, checked against its choices and range, the default
/// when not given; `None` when not given and without a default.
fn parse_value(option: &OptionSpec, given: Option<Value>) -> Result<Option<Parsed>> {
    let name = option.name;
    let Some(value) = given else {
        if option.required {
            return Err(Error::option(name, "is required"));
        }
        return Ok(match option.default {
            Default::None => None,
            Default::Str(s) => Some(Parsed::Str(s.to_string())),
            Default::Bool(b) => Some(Parsed::Bool(b)),
            Default::Int(i) => Some(Parsed::Int(i)),
            Default::EmptyList => Some(match option.kind {
                Kind::IntList { .. } => Parsed::Ints(Vec::new()),
                _ => Parsed::List(Vec::new()),
            }),
        });
    };
    let parsed = match option.kind {
        Kind::Str | Kind::Path => Parsed::Str(to_string(name, value)?),
        Kind::Bool => Parsed::Bool(to_bool(name, value)?),
        Kind::Int { min, max } => Parsed::Int(to_int(name, value, min, max)?),
        Kind::StrList => Parsed::List(to_list(name, value)?),
        Kind::IntList { min, max } => Parsed::Ints(to_int_list(name, value, min, max)?),
        Kind::DictList(items) => Parsed::Dicts(to_dicts(name, value, items)?),
    };
    match &parsed {
        Parsed::Str(s) if option.required && s.trim().is_empty() => {
            return Err(Error::option(name, "must not be empty"))
        }
        Parsed::Str(s) if !option.choices.is_empty() && !option.choices.contains(&s.as_str()) => {
            return Err(Error::option(
                name,
                format!("{s:?} is not one of: {}", option.choices.join(", ")),
            ))
        }
        list if option.required && list.is_empty_list() => {
            return Err(Error::option(name, "is required: give at least one item"))
        }
        _ => {}
    }
    Ok(Some(parsed))
}

fn to_string(name: &str, value: Value) -> Result<String> {
    match value {
        Value::String(s) => Ok(s),
        Value::Number(n) => Ok(n.to_string()),
        other => Err(Error::option(
            name,
            format!("expected a string, got {}", type_name(&other)),
        )),
    }
}

fn to_bool(name: &str, value: Value) -> Result<bool> {
    match value {
        Value::Bool(b) => Ok(b),
        Value::String(s) => match s.to_ascii_lowercase().as_str() {
            "true" | "yes" | "on" | "1" | "y" | "t" => Ok(true),
            "false" | "no" | "off" | "0" | "n" | "f" => Ok(false),
            _ => Err(Error::option(
                name,
                format!("expected a boolean, got the string {s:?}"),
            )),
        },
        Value::Number(n) if n.as_u64() == Some(0) => Ok(false),
        Value::Number(n) if n.as_u64() == Some(1) => Ok(true),
        other => Err(Error::option(
            name,
            format!("expected a boolean, got {}", type_name(&other)),
        )),
    }
}

fn to_int(name: &str, value: Value, min: i64, max: i64) -> Result<i64> {
    int_in_range(value, min, max).map_err(|reason| Error::option(name, reason))
}

/// A whole number (or its string form) within `min..=max`, or why not.
fn int_in_range(value: Value, min: i64, max: i64) -> std::result::Result<i64, String> {
    let value = match value {
        Value::Number(n) => n
            .as_i64()
            .ok_or_else(|| format!("expected a whole number, got {n}"))?,
        Value::String(s) => s
            .trim()
            .parse::<i64>()
            .map_err(|_| format!("expected a whole number, got the string {s:?}"))?,
        other => {
            return Err(format!(
                "expected a whole number, got {}",
                type_name(&other)
            ))
        }
    };
    if value < min || value > max {
        return Err(format!(
            "{value} is out of range: use a value from {min} to {max}"
        ));
    }
    Ok(value)
}

/// Each item a whole number within `min..=max`; errors name the item's index.
fn to_int_list(name: &str, value: Value, min: i64, max: i64) -> Result<Vec<i64>> {
    let items: Vec<Value> = match value {
        Value::Array(items) => items,
        Value::String(s) => s
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(|p| Value::String(p.to_string()))
            .collect(),
        Value::Number(n) => vec![Value::Number(n)],
        other => {
            return Err(Error::option(
                name,
                format!(
                    "expected a list of whole numbers, got {}",
                    type_name(&other)
                ),
            ))
        }
    };
    items
        .into_iter()
        .enumerate()
        .map(|(i, item)| {
            int_in_range(item, min, max)
                .map_err(|reason| Error::option(name, format!("item {i}: {reason}")))
        })
        .collect()
}

fn to_list(name: &str, value: Value) -> Result<Vec<String>> {
    match value {
        Value::String(s) => Ok(s
            .split(',')
            .map(|p| p.trim().to_string())
            .filter(|p| !p.is_empty())
            .collect()),
        Value::Array(items) => items
            .into_iter()
            .enumerate()
            .map(|(i, item)| match item {
                Value::String(s) if !s.trim().is_empty() => Ok(s.trim().to_string()),
                Value::Number(n) => Ok(n.to_string()),
                other => Err(Error::option(
                    name,
                    format!(
                        "item {i} must be a non-empty string, got {}",
                        type_name(&other)
                    ),
                )),
            })
            .collect(),
        other => Err(Error::option(
            name,
            format!("expected a list of strings, got {}", type_name(&other)),
        )),
    }
}

/// Each item a dictionary parsed against `items`; errors name the option and the item's index
/// (`kubeconfigs[2]: option `server`: is required`).
fn to_dicts(name: &str, value: Value, items: &'static ModuleSpec) -> Result<Vec<Options>> {
    let Value::Array(list) = value else {
        return Err(Error::option(
            name,
            format!("expected a list of dictionaries, got {}", type_name(&value)),
        ));
    };
    list.into_iter()
        .enumerate()
        .map(|(i, item)| match item {
            Value::Object(map) => Options::parse(items, map)
                .map_err(|e| Error::option(&format!("{name}[{i}]"), e.to_string())),
            other => Err(Error::option(
                &format!("{name}[{i}]"),
                format!("expected a dictionary, got {}", type_name(&other)),
            )),
        })
        .collect()
}

/// The supported name nearest to `unknown` (edit distance at most 2, and less than half its
/// length), if any: the "did you mean" of an unknown option.
fn closest(unknown: &str, supported: &[&'static str]) -> Option<&'static str> {
    supported
        .iter()
        .map(|s| (edit_distance(unknown, s), *s))
        .filter(|(d, s)| *d <= 2 && *d * 2 < s.len().max(unknown.len()))
        .min()
        .map(|(_, s)| s)
}

/// Levenshtein distance over chars.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1)
                .min(row[j] + 1)
                .min(diagonal + usize::from(ca != *cb));
            diagonal = above;
        }
    }
    row[b.len()]
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a dictionary",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    static SPEC: ModuleSpec = ModuleSpec {
        name: "test_module",
        options: &[
            OptionSpec::new("path", Kind::Path, "A file.").default(Default::Str("/etc/a")),
            OptionSpec::new("server", Kind::Str, "A URL.").required(),
            OptionSpec::new("backup", Kind::Bool, "Keep a copy.").default(Default::Bool(true)),
            OptionSpec::new("timeout", Kind::Int { min: 1, max: 10 }, "Seconds.")
                .default(Default::Int(5)),
            OptionSpec::new("sans", Kind::StrList, "Names.").default(Default::EmptyList),
            OptionSpec::new("mode", Kind::Str, "How.")
                .choices(&["always", "never"])
                .default(Default::Str("never")),
            OptionSpec::new("cluster", Kind::Str, "A name."),
            OptionSpec::new("ports", Kind::IntList { min: 1, max: 65535 }, "Ports.")
                .default(Default::EmptyList),
            OptionSpec::new("retries", Kind::Int { min: 0, max: 9 }, "Tries."),
        ],
    };

    static ITEM: ModuleSpec = ModuleSpec {
        name: "test_module.items",
        options: &[
            OptionSpec::new("path", Kind::Path, "A file.").required(),
            OptionSpec::new("keep", Kind::Bool, "Keep.").default(Default::Bool(false)),
        ],
    };

    static WITH_ITEMS: ModuleSpec = ModuleSpec {
        name: "test_items",
        options: &[OptionSpec::new("items", Kind::DictList(&ITEM), "Items.")],
    };

    #[test]
    fn dictionary_items_are_parsed_with_their_own_spec_and_named_by_index() {
        let parse_items = |v: Value| match v {
            Value::Object(m) => Options::parse(&WITH_ITEMS, m),
            _ => unreachable!("tests pass objects"),
        };
        let o =
            parse_items(json!({"items": [{"path": "/a"}, {"path": "/b", "keep": "yes"}]})).unwrap();
        let items = o.dicts("items").unwrap();
        assert_eq!(items.len(), 2);
        assert_eq!(items[0].path("path").unwrap(), PathBuf::from("/a"));
        assert!(!items[0].bool("keep").unwrap());
        assert!(items[1].bool("keep").unwrap());
        assert!(parse_items(json!({}))
            .unwrap()
            .dicts("items")
            .unwrap()
            .is_empty());
        let e = parse_items(json!({"items": [{"path": "/a"}, {"keep": true}]}))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("option `items[1]`") && e.contains("option `path`: is required"),
            "{e}"
        );
        let e = parse_items(json!({"items": [{"path": "/a", "pth": "/b"}]}))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("items[0]") && e.contains("`pth` (did you mean `path`?)"),
            "{e}"
        );
        let e = parse_items(json!({"items": ["/a"]}))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("items[0]") && e.contains("expected a dictionary, got a string"),
            "{e}"
        );
        let e = parse_items(json!({"items": "/a"})).unwrap_err().to_string();
        assert!(e.contains("expected a list of dictionaries"), "{e}");
    }

    fn parse(v: Value) -> Result<Options> {
        match v {
            Value::Object(m) => Options::parse(&SPEC, m),
            _ => unreachable!("tests pass objects"),
        }
    }

    fn err(v: Value) -> String {
        parse(v).unwrap_err().to_string()
    }

    #[test]
    fn defaults_come_from_the_spec() {
        let o = parse(json!({"server": "https://x:6443"})).unwrap();
        assert_eq!(o.path("path").unwrap(), PathBuf::from("/etc/a"));
        assert!(o.bool("backup").unwrap());
        assert_eq!(o.int("timeout").unwrap(), 5);
        assert!(o.list("sans").unwrap().is_empty());
        assert_eq!(o.string("mode").unwrap(), "never");
        assert_eq!(o.opt_string("cluster").unwrap(), None);
        assert!(o.ints("ports").unwrap().is_empty());
        assert_eq!(o.opt_int("retries").unwrap(), None);
        assert!(o
            .int("retries")
            .unwrap_err()
            .to_string()
            .contains("is required"));
    }

    #[test]
    fn integer_lists_take_numbers_strings_and_ranges() {
        let o = parse(json!({"server": "s", "ports": [22, "6443"], "retries": "2"})).unwrap();
        assert_eq!(o.ints("ports").unwrap(), vec![22, 6443]);
        assert_eq!(o.opt_int("retries").unwrap(), Some(2));
        let o = parse(json!({"server": "s", "ports": "22, 6443"})).unwrap();
        assert_eq!(o.ints("ports").unwrap(), vec![22, 6443]);
        let o = parse(json!({"server": "s", "ports": 8443})).unwrap();
        assert_eq!(o.ints("ports").unwrap(), vec![8443]);
        let e = err(json!({"server": "s", "ports": [22, 0]}));
        assert!(
            e.contains("`ports`: item 1: 0 is out of range: use a value from 1 to 65535"),
            "{e}"
        );
        let e = err(json!({"server": "s", "ports": [22, "ssh"]}));
        assert!(
            e.contains("`ports`: item 1: expected a whole number, got the string \"ssh\""),
            "{e}"
        );
        let e = err(json!({"server": "s", "ports": {"a": 1}}));
        assert!(
            e.contains("expected a list of whole numbers, got a dictionary"),
            "{e}"
        );
        assert_eq!(Kind::IntList { min: 1, max: 2 }.elements(), Some("int"));
        assert_eq!(Kind::IntList { min: 1, max: 2 }.ansible_type(), "list");
    }

    #[test]
    fn unknown_options_are_named_with_the_supported_ones() {
        let e = err(json!({"server": "s", "pth": "/b"}));
        assert!(e.contains("`pth` (did you mean `path`?)"), "{e}");
        assert!(
            e.contains(
                "supported options: backup, cluster, mode, path, ports, retries, sans, server, timeout"
            ),
            "{e}"
        );
    }

    #[test]
    fn a_typo_is_reported_before_the_missing_option_it_stands_for() {
        let e = err(json!({"sever": "https://x:6443"}));
        assert!(e.contains("`sever` (did you mean `server`?)"), "{e}");
        assert!(!e.contains("is required"), "{e}");
    }

    #[test]
    fn a_far_unknown_option_gets_no_suggestion() {
        let e = err(json!({"server": "s", "kubeha_no_such_option": 1}));
        assert!(e.contains("`kubeha_no_such_option`;"), "{e}");
        assert!(!e.contains("did you mean"), "{e}");
    }

    #[test]
    fn required_options_must_be_there_and_not_empty() {
        assert!(err(json!({})).contains("`server`: is required"));
        assert!(err(json!({"server": "  "})).contains("must not be empty"));
        assert!(err(json!({"server": null})).contains("is required"));
    }

    #[test]
    fn edit_distance_counts_edits() {
        assert_eq!(edit_distance("sever", "server"), 1);
        assert_eq!(edit_distance("cert_san", "cert_sans"), 1);
        assert_eq!(edit_distance("", "ab"), 2);
        assert_eq!(edit_distance("abc", "abc"), 0);
        assert_eq!(closest("pth", &["path", "backup"]), Some("path"));
        assert_eq!(closest("x", &["path"]), None);
    }

    #[test]
    fn wrong_types_name_the_option() {
        let e = err(json!({"server": "s", "backup": "maybe"}));
        assert!(
            e.contains("`backup`") && e.contains("expected a boolean"),
            "{e}"
        );
        let e = err(json!({"server": "s", "timeout": [1]}));
        assert!(e.contains("`timeout`") && e.contains("whole number"), "{e}");
        let e = err(json!({"server": "s", "sans": {"a": 1}}));
        assert!(e.contains("`sans`") && e.contains("list of strings"), "{e}");
        let e = err(json!({"server": {"a": 1}}));
        assert!(
            e.contains("`server`") && e.contains("expected a string"),
            "{e}"
        );
    }

    #[test]
    fn templated_strings_convert() {
        let o =
            parse(json!({"server": 6443, "backup": "False", "timeout": "3", "sans": "a, b,,c"}))
                .unwrap();
        assert_eq!(o.string("server").unwrap(), "6443");
        assert!(!o.bool("backup").unwrap());
        assert_eq!(o.int("timeout").unwrap(), 3);
        assert_eq!(o.list("sans").unwrap(), vec!["a", "b", "c"]);
    }

    #[test]
    fn ranges_and_choices_are_enforced() {
        let e = err(json!({"server": "s", "timeout": 0}));
        assert!(e.contains("out of range: use a value from 1 to 10"), "{e}");
        let e = err(json!({"server": "s", "mode": "sometimes"}));
        assert!(
            e.contains("\"sometimes\" is not one of: always, never"),
            "{e}"
        );
    }

    #[test]
    fn reading_an_undeclared_option_is_a_reported_module_bug() {
        let o = parse(json!({"server": "s"})).unwrap();
        let e = o.bool("server").unwrap_err().to_string();
        assert!(e.contains("internal error"), "{e}");
        assert!(o.string("nope").is_err());
    }
}
