//! The documents of a YAML text: where each one is (split at `---` lines) and what it parses
//! to, and error messages that never quote key material.

use crate::error::{Error, Result};
use serde_yaml_ng::Value;
use std::ops::Range;
use std::path::{Path, PathBuf};

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

/// A YAML text with its documents parsed once. Passed down instead of the text, so that one
/// module call parses a file once, and the result of an edit once (the re-parse check's parse,
/// which is the parsed form of the next edit's input). Its `Debug` shows neither text nor values:
/// a kubeconfig's text holds keys.
#[derive(Clone)]
pub struct YamlText {
    text: String,
    origin: PathBuf,
    docs: Vec<(Range<usize>, Value)>,
}

impl std::fmt::Debug for YamlText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("YamlText")
            .field("origin", &self.origin)
            .field("documents", &self.docs.len())
            .finish_non_exhaustive()
    }
}

impl YamlText {
    /// Parse `text`; `origin` names it in errors. See [`parse_documents`].
    pub fn parse(text: impl Into<String>, origin: &Path) -> Result<YamlText> {
        let text = text.into();
        let docs = parse_documents(&text, origin)?;
        Ok(YamlText {
            text,
            origin: origin.to_path_buf(),
            docs,
        })
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    pub fn into_text(self) -> String {
        self.text
    }

    pub fn origin(&self) -> &Path {
        &self.origin
    }

    /// Every document: its byte range and its value (`Null` when empty or only comments).
    pub fn docs(&self) -> &[(Range<usize>, Value)] {
        &self.docs
    }

    /// Document `i`, or an error naming the file.
    pub fn doc(&self, i: usize) -> Result<&(Range<usize>, Value)> {
        self.docs
            .get(i)
            .ok_or_else(|| Error::content(&self.origin, format!("has no document {}", i + 1)))
    }
}

#[cfg(test)]
thread_local! {
    /// Whole-text YAML parses on this thread: what the parse-once tests count.
    pub(crate) static PARSES: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

fn count_parse() {
    #[cfg(test)]
    PARSES.with(|c| c.set(c.get() + 1));
}

fn invalid(origin: &Path, i: usize, e: &serde_yaml_ng::Error) -> Error {
    Error::content(
        origin,
        format!(
            "is not valid YAML (document {}: {}); fix the file or restore it from its backup",
            i + 1,
            describe_error(e)
        ),
    )
}

/// Whether a part of the text holds anything but blanks and comments.
fn has_content(part: &str) -> bool {
    part.lines().any(|l| {
        let t = l.trim();
        !t.is_empty() && !t.starts_with('#')
    })
}

/// The documents of `text` with their parsed values (an empty or comment-only document is
/// `Value::Null`). Fails naming `origin` when any document is not valid YAML.
///
/// The text is parsed once, as the YAML stream the tools that read it will parse, and each
/// stream document is matched to its range: the part before a first `---` is a document only when
/// it has content, every later part is one, and a part without content must be a null document. Should a text not match up that way (a directive
/// such as `%YAML`), each range is parsed on its own instead, as a second parse.
pub fn parse_documents(text: &str, origin: &Path) -> Result<Vec<(Range<usize>, Value)>> {
    count_parse();
    let mut stream = Vec::new();
    for (i, doc) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
        stream.push(
            <Value as serde::Deserialize>::deserialize(doc).map_err(|e| invalid(origin, i, &e))?,
        );
    }
    let ranges = documents(text);
    for range in &ranges {
        if let Some(rest) = text[range.end..].lines().next() {
            if is_doc_separator(rest) && has_content(&rest[3..]) {
                return Err(Error::content(
                    origin,
                    format!("document separator line {rest:?} carries content; put the content on its own line after '---'"),
                ));
            }
        }
    }
    // The part before a first `---` is a stream document only when it has content (libyaml
    // still yields one null document for a text with none at all).
    let first_empty = ranges
        .first()
        .is_some_and(|r| !has_content(&text[r.clone()]));
    let skip = if stream.len() == ranges.len() {
        Some(0)
    } else if first_empty && stream.len() + 1 == ranges.len() {
        Some(1)
    } else {
        None
    };
    let aligned = skip.filter(|&skip| {
        ranges
            .iter()
            .skip(skip)
            .zip(&stream)
            .all(|(r, v)| has_content(&text[r.clone()]) || v.is_null())
    });
    if let Some(skip) = aligned {
        let values = std::iter::repeat(Value::Null).take(skip).chain(stream);
        return Ok(ranges.into_iter().zip(values).collect());
    }
    count_parse();
    ranges
        .into_iter()
        .enumerate()
        .map(|(i, range)| {
            let part = &text[range.clone()];
            let value: Value = if part.trim().is_empty() {
                Value::Null
            } else {
                serde_yaml_ng::from_str(part).map_err(|e| invalid(origin, i, &e))?
            };
            Ok((range, value))
        })
        .collect()
}
