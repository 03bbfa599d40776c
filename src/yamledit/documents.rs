//! The documents of a YAML text: where each one is (split at `---` lines) and what it parses
//! to, and error messages that never quote key material.

use crate::error::{Error, Result};
use serde_yaml_ng::Value;
use std::ops::Range;
use std::path::Path;

/// Byte ranges of the documents in `text`, split at lines that start with `---`. The separator
/// lines belong to no range. A text without separators is one document.
pub fn documents(text: &str) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut pos = 0;
    for line in text.split_inclusive('\n') {
        let body = line.trim_end_matches(['\n', '\r']);
        if is_doc_separator(body) {
            out.push(start..pos);
            start = pos + line.len();
        }
        pos += line.len();
    }
    out.push(start..text.len());
    out
}

fn is_doc_separator(line: &str) -> bool {
    match line.strip_prefix("---") {
        Some(rest) => rest.is_empty() || rest.starts_with([' ', '\t']),
        None => false,
    }
}

/// A YAML error for a message: quoted values from the file (which may be key material) are
/// elided, the position is kept.
pub fn describe_error(e: &serde_yaml_ng::Error) -> String {
    let text = e.to_string();
    let mut out = String::with_capacity(text.len());
    let mut rest = text.as_str();
    while let Some(start) = rest.find('"') {
        out.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        match after.find('"') {
            Some(end) => {
                let quoted = &after[..end];
                if quoted.len() > 24 || quoted.contains("-----") {
                    out.push_str("\"<value not shown>\"");
                } else {
                    out.push('"');
                    out.push_str(quoted);
                    out.push('"');
                }
                rest = &after[end + 1..];
            }
            None => {
                out.push_str("\"<value not shown>");
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

/// The documents of `text` with their parsed values (an empty or comment-only document is
/// `Value::Null`). Fails naming `origin` when any document is not valid YAML.
pub fn parse_documents(text: &str, origin: &Path) -> Result<Vec<(Range<usize>, Value)>> {
    // The whole text must parse as a YAML stream, as the tools that read it will parse it.
    for (i, doc) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
        <Value as serde::Deserialize>::deserialize(doc).map_err(|e| {
            Error::content(
                origin,
                format!(
                    "is not valid YAML (document {}: {}); fix the file or restore it from its backup",
                    i + 1,
                    describe_error(&e)
                ),
            )
        })?;
    }
    documents(text)
        .into_iter()
        .enumerate()
        .map(|(i, range)| {
            let part = &text[range.clone()];
            if let Some(rest) = text[range.end..].lines().next() {
                if is_doc_separator(rest) && !rest[3..].trim().is_empty() && !rest[3..].trim().starts_with('#') {
                    return Err(Error::content(
                        origin,
                        format!("document separator line {rest:?} carries content; put the content on its own line after '---'"),
                    ));
                }
            }
            let value: Value = if part.trim().is_empty() {
                Value::Null
            } else {
                serde_yaml_ng::from_str(part).map_err(|e| {
                    Error::content(
                        origin,
                        format!(
                    "is not valid YAML (document {}: {}); fix the file or restore it from its backup",
                    i + 1,
                    describe_error(&e)
                ),
                    )
                })?
            };
            Ok((range, value))
        })
        .collect()
}
