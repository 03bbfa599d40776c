//! Writing scalars: the quote style a file uses, and when a plain scalar is safe for every YAML
//! reader (YAML 1.1 ones such as kubeadm's included).

use serde_yaml_ng::Value;

/// How the file quotes scalars, to write new ones the same way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quote {
    /// Plain when YAML reads it back as the same string, double quotes otherwise.
    PlainIfSafe,
    Double,
    Single,
}

impl Quote {
    pub(super) fn of(existing: &str) -> Quote {
        if existing.starts_with('"') {
            Quote::Double
        } else if existing.starts_with('\'') {
            Quote::Single
        } else {
            Quote::PlainIfSafe
        }
    }
}

/// Block-list items `- <value>` at column `col`, each on a new line: the list a missing key, an
/// empty parent or an empty list gets.
pub(super) fn new_list_items(items: &[&String], col: usize) -> String {
    items
        .iter()
        .map(|m| {
            format!(
                "\n{}- {}",
                " ".repeat(col),
                format_scalar(m, Quote::PlainIfSafe)
            )
        })
        .collect()
}

/// Write `value` as a YAML scalar in `style`; plain only when every YAML reader (YAML 1.1 ones
/// like kubeadm's included) reads it back as the same string.
pub fn format_scalar(value: &str, style: Quote) -> String {
    match style {
        Quote::Single if !value.contains(['\n', '\\']) => {
            format!("'{}'", value.replace('\'', "''"))
        }
        Quote::PlainIfSafe if plain_is_safe(value) => value.to_string(),
        _ => serde_json::to_string(value).unwrap_or_else(|_| format!("\"{value}\"")),
    }
}

pub(super) fn plain_is_safe(value: &str) -> bool {
    let Some(first) = value.chars().next() else {
        return false;
    };
    if value.trim() != value
        || "-?:,[]{}#&*!|>'\"%@`".contains(first)
        || value.contains(": ")
        || value.contains(" #")
        || value.ends_with(':')
        || value.chars().any(|c| c.is_control())
    {
        return false;
    }
    // Numbers, times and sexagesimals of YAML 1.1, and its booleans.
    if looks_like_yaml11_number(value) {
        return false;
    }
    let lower = value.to_ascii_lowercase();
    if [
        "y", "n", "yes", "no", "on", "off", "true", "false", "null", "~",
    ]
    .contains(&lower.as_str())
    {
        return false;
    }
    matches!(
        serde_yaml_ng::from_str::<Value>(&format!("k: {value}")),
        Ok(Value::Mapping(m)) if m.get("k") == Some(&Value::String(value.to_string()))
    )
}

/// Numbers (`12`, `1.5`, `1e3`) and YAML 1.1 sexagesimals (`10:30`, `1:20:30.5`), which
/// YAML 1.1 readers such as kubeadm's would not read as strings.
pub(super) fn looks_like_yaml11_number(value: &str) -> bool {
    let v = value.trim_start_matches(['+', '-']);
    if v.chars()
        .all(|c| c.is_ascii_digit() || "._eE+-".contains(c))
        && v.matches('.').count() <= 1
    {
        return true;
    }
    let parts: Vec<&str> = v.split(':').collect();
    if parts.len() < 2 {
        return false;
    }
    let digits = |p: &str| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit() || c == '_');
    let last = parts[parts.len() - 1];
    let last_int = last.split('.').next().unwrap_or("");
    digits(parts[0])
        && parts[1..parts.len() - 1]
            .iter()
            .all(|p| p.len() <= 2 && digits(p) && p.parse::<u32>().is_ok_and(|n| n < 60))
        && last_int.len() <= 2
        && digits(last_int)
        && last_int.parse::<u32>().is_ok_and(|n| n < 60)
        && last
            .split('.')
            .nth(1)
            .map_or(true, |f| f.chars().all(|c| c.is_ascii_digit() || c == '_'))
}
