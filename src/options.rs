//! Strict option parsing. Binary modules get no argument-spec validation from Ansible, so each
//! module first declares the names it supports ([`Options::declare`]: an unknown or misspelt
//! option is reported before anything else, with the closest supported name, as Ansible reports an
//! unsupported parameter before a missing one), then takes its options one by one and calls
//! [`Options::finish`], which fails on anything left over. Values templated by Jinja arrive as
//! strings, so booleans and integers also accept their string forms, as Ansible's own type
//! conversion does; anything else of the wrong type fails naming the option.

use crate::error::{Error, Result};
use serde_json::{Map, Value};

#[derive(Debug)]
pub struct Options {
    module: &'static str,
    values: Map<String, Value>,
    known: Vec<&'static str>,
    declared: &'static [&'static str],
}

impl Options {
    pub fn new(module: &'static str, values: Map<String, Value>) -> Self {
        Options {
            module,
            values,
            known: Vec::new(),
            declared: &[],
        }
    }

    /// The module's supported option names, declared before any option is taken: any other key
    /// fails here, first, naming each unknown option with the closest supported name when one is
    /// near (`sever` -> `server`), so that a typo of a required option is not reported as that
    /// option missing.
    pub fn declare(&mut self, supported: &'static [&'static str]) -> Result<()> {
        self.declared = supported;
        let mut unknown: Vec<&str> = self
            .values
            .keys()
            .map(String::as_str)
            .filter(|k| !supported.contains(k))
            .collect();
        if unknown.is_empty() {
            return Ok(());
        }
        unknown.sort_unstable();
        let named: Vec<String> = unknown
            .iter()
            .map(|k| match closest(k, supported) {
                Some(near) => format!("`{k}` (did you mean `{near}`?)"),
                None => format!("`{k}`"),
            })
            .collect();
        let mut all = supported.to_vec();
        all.sort_unstable();
        Err(Error::UnknownOptions {
            module: self.module.to_string(),
            unknown: named.join(", "),
            supported: all.join(", "),
        })
    }

    /// Take an option; `null` counts as not given (that is how Ansible passes `None`).
    fn take(&mut self, name: &'static str) -> Option<Value> {
        // A name taken but not declared would be refused by `declare` before it got here.
        debug_assert!(
            self.declared.is_empty() || self.declared.contains(&name),
            "option `{name}` is taken but not declared"
        );
        self.known.push(name);
        match self.values.remove(name) {
            Some(Value::Null) | None => None,
            Some(v) => Some(v),
        }
    }

    pub fn string(&mut self, name: &'static str) -> Result<Option<String>> {
        match self.take(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            Some(other) => Err(Error::option(
                name,
                format!("expected a string, got {}", type_name(&other)),
            )),
        }
    }

    pub fn required_string(&mut self, name: &'static str) -> Result<String> {
        match self.string(name)? {
            Some(s) if !s.trim().is_empty() => Ok(s),
            Some(_) => Err(Error::option(name, "must not be empty")),
            None => Err(Error::option(name, "is required")),
        }
    }

    pub fn string_or(&mut self, name: &'static str, default: &str) -> Result<String> {
        Ok(self.string(name)?.unwrap_or_else(|| default.to_string()))
    }

    pub fn bool_or(&mut self, name: &'static str, default: bool) -> Result<bool> {
        match self.take(name) {
            None => Ok(default),
            Some(Value::Bool(b)) => Ok(b),
            Some(Value::String(s)) => match s.to_ascii_lowercase().as_str() {
                "true" | "yes" | "on" | "1" | "y" | "t" => Ok(true),
                "false" | "no" | "off" | "0" | "n" | "f" => Ok(false),
                _ => Err(Error::option(
                    name,
                    format!("expected a boolean, got the string {s:?}"),
                )),
            },
            Some(Value::Number(n)) if n.as_u64() == Some(0) => Ok(false),
            Some(Value::Number(n)) if n.as_u64() == Some(1) => Ok(true),
            Some(other) => Err(Error::option(
                name,
                format!("expected a boolean, got {}", type_name(&other)),
            )),
        }
    }

    /// An integer within `min..=max`.
    pub fn int_or(&mut self, name: &'static str, default: i64, min: i64, max: i64) -> Result<i64> {
        let value = match self.take(name) {
            None => return Ok(default),
            Some(Value::Number(n)) => n
                .as_i64()
                .ok_or_else(|| Error::option(name, format!("expected a whole number, got {n}")))?,
            Some(Value::String(s)) => s.trim().parse::<i64>().map_err(|_| {
                Error::option(
                    name,
                    format!("expected a whole number, got the string {s:?}"),
                )
            })?,
            Some(other) => {
                return Err(Error::option(
                    name,
                    format!("expected a whole number, got {}", type_name(&other)),
                ))
            }
        };
        if value < min || value > max {
            return Err(Error::option(
                name,
                format!("{value} is out of range: use a value from {min} to {max}"),
            ));
        }
        Ok(value)
    }

    /// A list of strings; a comma-separated string is accepted, as Ansible's `type: list` does.
    pub fn string_list(&mut self, name: &'static str) -> Result<Vec<String>> {
        match self.take(name) {
            None => Ok(Vec::new()),
            Some(Value::String(s)) => Ok(s
                .split(',')
                .map(|p| p.trim().to_string())
                .filter(|p| !p.is_empty())
                .collect()),
            Some(Value::Array(items)) => items
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
            Some(other) => Err(Error::option(
                name,
                format!("expected a list of strings, got {}", type_name(&other)),
            )),
        }
    }

    /// One of `choices`.
    pub fn choice_or(
        &mut self,
        name: &'static str,
        choices: &[&str],
        default: &str,
    ) -> Result<String> {
        let value = self.string_or(name, default)?;
        if choices.contains(&value.as_str()) {
            Ok(value)
        } else {
            Err(Error::option(
                name,
                format!("{value:?} is not one of: {}", choices.join(", ")),
            ))
        }
    }

    /// Fail on every option that no `take` asked for.
    pub fn finish(self) -> Result<()> {
        // The declaration and the takes are one list: a declared name never taken is a module bug.
        debug_assert!(
            self.declared.iter().all(|d| self.known.contains(d)),
            "declared options never taken: {:?}",
            self.declared
                .iter()
                .filter(|d| !self.known.contains(d))
                .collect::<Vec<_>>()
        );
        if self.values.is_empty() {
            return Ok(());
        }
        let mut unknown: Vec<&str> = self.values.keys().map(String::as_str).collect();
        unknown.sort_unstable();
        let mut supported = self.known.clone();
        supported.sort_unstable();
        supported.dedup();
        Err(Error::UnknownOptions {
            module: self.module.to_string(),
            unknown: unknown.join(", "),
            supported: supported.join(", "),
        })
    }
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

    fn opts(v: Value) -> Options {
        match v {
            Value::Object(m) => Options::new("test_module", m),
            _ => unreachable!("tests pass objects"),
        }
    }

    #[test]
    fn unknown_options_are_named_with_the_supported_ones() {
        let mut o = opts(json!({"path": "/a", "pth": "/b"}));
        o.string("path").unwrap();
        let err = o.finish().unwrap_err().to_string();
        assert!(err.contains("pth"), "{err}");
        assert!(err.contains("supported options: path"), "{err}");
    }

    #[test]
    fn a_typo_is_reported_before_the_missing_option_it_stands_for() {
        let mut o = opts(json!({"path": "/a", "sever": "https://x:6443"}));
        let err = o
            .declare(&["path", "server", "backup"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("`sever` (did you mean `server`?)"), "{err}");
        assert!(
            err.contains("supported options: backup, path, server"),
            "{err}"
        );
        assert!(!err.contains("is required"), "{err}");
    }

    #[test]
    fn a_far_unknown_option_gets_no_suggestion() {
        let mut o = opts(json!({"kubeha_no_such_option": 1}));
        let err = o.declare(&["path", "server"]).unwrap_err().to_string();
        assert!(err.contains("`kubeha_no_such_option`;"), "{err}");
        assert!(!err.contains("did you mean"), "{err}");
    }

    #[test]
    fn declared_options_parse_as_before() {
        let mut o = opts(json!({"path": "/a"}));
        o.declare(&["path", "backup"]).unwrap();
        assert_eq!(o.string("path").unwrap().as_deref(), Some("/a"));
        assert!(o.bool_or("backup", true).unwrap());
        o.finish().unwrap();
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
        let mut o = opts(json!({"backup": "maybe", "timeout": [1], "sans": {"a": 1}}));
        assert!(o
            .bool_or("backup", false)
            .unwrap_err()
            .to_string()
            .contains("backup"));
        assert!(o
            .int_or("timeout", 1, 1, 10)
            .unwrap_err()
            .to_string()
            .contains("timeout"));
        assert!(o
            .string_list("sans")
            .unwrap_err()
            .to_string()
            .contains("sans"));
    }

    #[test]
    fn templated_strings_convert() {
        let mut o = opts(json!({"backup": "True", "timeout": "30", "sans": "a, b,,c"}));
        assert!(o.bool_or("backup", false).unwrap());
        assert_eq!(o.int_or("timeout", 1, 1, 100).unwrap(), 30);
        assert_eq!(o.string_list("sans").unwrap(), vec!["a", "b", "c"]);
        o.finish().unwrap();
    }

    #[test]
    fn ranges_and_choices_are_enforced() {
        let mut o = opts(json!({"timeout": 0, "mode": "sometimes"}));
        assert!(o
            .int_or("timeout", 1, 1, 10)
            .unwrap_err()
            .to_string()
            .contains("out of range"));
        let err = o
            .choice_or("mode", &["always", "never"], "never")
            .unwrap_err()
            .to_string();
        assert!(err.contains("always, never"), "{err}");
    }

    #[test]
    fn null_means_not_given() {
        let mut o = opts(json!({"cluster": null}));
        assert_eq!(o.string("cluster").unwrap(), None);
        o.finish().unwrap();
    }
}
