//! Targeted edits of block-style YAML text (kubeadm configs, kubeconfigs, the YAML inside
//! ConfigMaps): the file is read and validated with serde_yaml_ng, but written by replacing or
//! inserting text only at the spans of the fields that change. Every other byte stays: other
//! documents of a multi-document file, key order, quoting, comments, blank lines.
//!
//! Every edit is checked after the fact ([`verify`]): the result is parsed again and must equal the
//! original with only the targeted fields different. An edit that would change anything else is
//! refused, so a file shape this editor does not understand can never be corrupted.
//!
//! API (all pure, text in, text out):
//! - [`documents`]: byte ranges of the documents of a multi-document text (split at `---` lines);
//! - [`parse_documents`]: those ranges with their parsed [`Value`]s;
//! - [`Seg`] / [`get`]: a path (`apiServer.certSANs`, `clusters[1].cluster.server`) and its value;
//! - [`set_scalar`]: set a string scalar at a path, inserting the key (and missing parent mappings)
//!   with the indentation of its siblings; `Ok(None)` when it already has that value;
//! - [`ensure_list_items`]: make a string list at a path contain items (appended in order, existing
//!   entries and order kept; block lists, flow lists `[a, b]`, empty or absent keys);
//! - [`format_scalar`]: quote a new scalar when needed, in the quote style the file uses.
//!
//! Limits (refused with a message, never guessed): anchors, aliases, tags and block scalars at an
//! edited path, flow mappings as parents of an edited key, multi-line plain scalars.

use crate::error::{Error, Result};
use serde_yaml_ng::{Mapping, Value};
use std::ops::Range;
use std::path::Path;

/// One step of a path into a document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seg {
    /// A key of a mapping.
    Key(String),
    /// The n-th item of a sequence (0-based, in text order).
    Item(usize),
}

impl Seg {
    pub fn key(name: &str) -> Seg {
        Seg::Key(name.to_string())
    }
}

/// `a.b[2].c` for messages.
pub fn path_to_string(path: &[Seg]) -> String {
    let mut out = String::new();
    for seg in path {
        match seg {
            Seg::Key(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(k);
            }
            Seg::Item(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

/// The value at `path`, if present.
pub fn get<'a>(value: &'a Value, path: &[Seg]) -> Option<&'a Value> {
    let mut cur = value;
    for seg in path {
        cur = match (seg, cur) {
            (Seg::Key(k), Value::Mapping(m)) => m.get(k.as_str())?,
            (Seg::Item(i), Value::Sequence(s)) => s.get(*i)?,
            _ => return None,
        };
    }
    Some(cur)
}

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

/// One line of the text: byte offsets (end excludes the newline), indentation, and whether it
/// holds content (not blank, not a comment).
#[derive(Debug, Clone, Copy)]
struct Line {
    start: usize,
    end: usize,
    indent: usize,
    content: bool,
}

fn lines_of(text: &str, range: Range<usize>) -> Vec<Line> {
    let mut out = Vec::new();
    let mut pos = range.start;
    for raw in text[range.clone()].split_inclusive('\n') {
        let body = raw.trim_end_matches(['\n', '\r']);
        let indent = body.len() - body.trim_start_matches(' ').len();
        let rest = &body[indent..];
        out.push(Line {
            start: pos,
            end: pos + body.len(),
            indent,
            content: !rest.trim().is_empty() && !rest.starts_with('#'),
        });
        pos += raw.len();
    }
    out
}

/// A block mapping: the lines it spans, the column of its keys, and for a mapping that starts on
/// a sequence item's line (`- name: x`) the column of that first key.
#[derive(Debug, Clone, Copy)]
struct MapScope {
    first: usize,
    end: usize,
    indent: usize,
    first_col: Option<usize>,
}

/// Where a key was found.
#[derive(Debug, Clone, Copy)]
struct KeyHit {
    line: usize,
    col: usize,
    /// Offset just after the `:`.
    after_colon: usize,
}

/// The value of a key.
#[derive(Debug, Clone)]
enum Shape {
    /// Nothing after the colon and no child lines (null).
    Empty,
    /// A scalar or flow collection on the key's line: its exact byte span.
    Inline(Range<usize>),
    /// Child lines `first..=last` (a block mapping or sequence).
    Block { first: usize, last: usize },
}

struct Editor<'t> {
    text: &'t str,
    origin: &'t Path,
    lines: Vec<Line>,
}

impl<'t> Editor<'t> {
    fn new(text: &'t str, origin: &'t Path, doc: Range<usize>) -> Self {
        Editor {
            text,
            origin,
            lines: lines_of(text, doc),
        }
    }

    fn line_text(&self, i: usize) -> &'t str {
        let l = self.lines[i];
        &self.text[l.start..l.end]
    }

    fn refuse(&self, path: &[Seg], reason: impl Into<String>) -> Error {
        Error::content(
            self.origin,
            format!("cannot edit `{}`: {}", path_to_string(path), reason.into()),
        )
    }

    fn top_scope(&self) -> MapScope {
        MapScope {
            first: 0,
            end: self.lines.len(),
            indent: 0,
            first_col: None,
        }
    }

    fn key_col(&self, scope: &MapScope, i: usize) -> usize {
        match scope.first_col {
            Some(c) if i == scope.first => c,
            _ => self.lines[i].indent,
        }
    }

    fn find_key(&self, scope: &MapScope, key: &str) -> Option<KeyHit> {
        for i in scope.first..scope.end {
            if !self.lines[i].content {
                continue;
            }
            let col = self.key_col(scope, i);
            if col != scope.indent {
                continue;
            }
            let start = self.lines[i].start + col;
            let rest = &self.text[start..self.lines[i].end];
            for candidate in [key.to_string(), format!("\"{key}\""), format!("'{key}'")] {
                if let Some(after) = rest.strip_prefix(candidate.as_str()) {
                    let trimmed = after.trim_start_matches(' ');
                    if let Some(after_colon) = trimmed.strip_prefix(':') {
                        if after_colon.is_empty() || after_colon.starts_with([' ', '\t']) {
                            let offset = self.lines[i].end - after_colon.len();
                            return Some(KeyHit {
                                line: i,
                                col,
                                after_colon: offset,
                            });
                        }
                    }
                }
            }
        }
        None
    }

    /// The last content line of a scope (None when it has none).
    fn last_content(&self, first: usize, end: usize) -> Option<usize> {
        (first..end).rev().find(|&i| self.lines[i].content)
    }

    fn shape(&self, hit: &KeyHit, path: &[Seg]) -> Result<Shape> {
        let line_end = self.lines[hit.line].end;
        let inline = &self.text[hit.after_colon..line_end];
        let lead = inline.len() - inline.trim_start().len();
        let value_start = hit.after_colon + lead;
        let first_char = self.text[value_start..line_end].chars().next();
        // Child lines: deeper than the key, or at its column starting with '-' (a sequence
        // written without extra indentation, as kubectl does).
        let mut last_child = None;
        for j in hit.line + 1..self.lines.len() {
            let l = self.lines[j];
            if !l.content {
                continue;
            }
            let body = &self.text[l.start + l.indent..l.end];
            let dash = body == "-" || body.starts_with("- ");
            if l.indent > hit.col
                || (l.indent == hit.col && dash && matches!(first_char, None | Some('#')))
            {
                last_child = Some(j);
            } else {
                break;
            }
        }
        match first_char {
            None | Some('#') => Ok(match last_child {
                None => Shape::Empty,
                Some(last) => Shape::Block {
                    first: hit.line + 1,
                    last,
                },
            }),
            Some('&') | Some('*') | Some('!') => Err(self.refuse(
                path,
                "it uses a YAML anchor, alias or tag; edit the file by hand",
            )),
            Some('|') | Some('>') => Err(self.refuse(path, "it is a block scalar")),
            Some(c) => {
                let end = self.inline_end(value_start, c, path)?;
                if last_child.is_some() && !matches!(c, '[' | '{' | '"' | '\'') {
                    return Err(self.refuse(path, "it is a plain scalar that spans several lines"));
                }
                Ok(Shape::Inline(value_start..end))
            }
        }
    }

    /// End offset of an inline value starting at `start` with first character `c`.
    fn inline_end(&self, start: usize, c: char, path: &[Seg]) -> Result<usize> {
        let bytes = self.text.as_bytes();
        match c {
            '"' => {
                let mut i = start + 1;
                while i < bytes.len() {
                    match bytes[i] {
                        b'\\' => i += 2,
                        b'"' => return Ok(i + 1),
                        _ => i += 1,
                    }
                }
                Err(self.refuse(path, "unterminated double-quoted string"))
            }
            '\'' => {
                let mut i = start + 1;
                while i < bytes.len() {
                    if bytes[i] == b'\'' {
                        if bytes.get(i + 1) == Some(&b'\'') {
                            i += 2;
                            continue;
                        }
                        return Ok(i + 1);
                    }
                    i += 1;
                }
                Err(self.refuse(path, "unterminated single-quoted string"))
            }
            '[' | '{' => {
                let mut depth = 0usize;
                let mut i = start;
                let mut quote: Option<u8> = None;
                while i < bytes.len() {
                    let b = bytes[i];
                    match quote {
                        Some(b'"') if b == b'\\' => i += 1,
                        Some(q) if b == q => quote = None,
                        Some(_) => {}
                        None => match b {
                            b'"' | b'\'' => quote = Some(b),
                            b'[' | b'{' => depth += 1,
                            b']' | b'}' => {
                                depth -= 1;
                                if depth == 0 {
                                    return Ok(i + 1);
                                }
                            }
                            _ => {}
                        },
                    }
                    i += 1;
                }
                Err(self.refuse(path, "unterminated flow collection"))
            }
            _ => {
                let line_end = self.text[start..]
                    .find('\n')
                    .map(|n| start + n)
                    .unwrap_or(self.text.len());
                let seg = &self.text[start..line_end];
                let cut = seg.find(" #").unwrap_or(seg.len());
                Ok(start + seg[..cut].trim_end().len())
            }
        }
    }

    /// The mapping that is the value of a key whose shape is a block.
    fn child_map(&self, first: usize, last: usize, path: &[Seg]) -> Result<MapScope> {
        let lead = (first..=last)
            .find(|&i| self.lines[i].content)
            .ok_or_else(|| self.refuse(path, "empty block"))?;
        let body =
            &self.text[self.lines[lead].start + self.lines[lead].indent..self.lines[lead].end];
        if body.starts_with('-') {
            return Err(self.refuse(path, "expected a mapping here, found a list"));
        }
        Ok(MapScope {
            first,
            end: last + 1,
            indent: self.lines[lead].indent,
            first_col: None,
        })
    }

    /// The sequence items of a block sequence: (dash line, last line) of each.
    fn items(&self, first: usize, last: usize, path: &[Seg]) -> Result<Vec<(usize, usize)>> {
        let lead = (first..=last)
            .find(|&i| self.lines[i].content)
            .ok_or_else(|| self.refuse(path, "empty block"))?;
        let col = self.lines[lead].indent;
        let mut out: Vec<(usize, usize)> = Vec::new();
        for i in lead..=last {
            let l = self.lines[i];
            if !l.content {
                continue;
            }
            let body = &self.text[l.start + l.indent..l.end];
            if l.indent == col {
                if !(body == "-" || body.starts_with("- ")) {
                    return Err(self.refuse(path, "expected a list here"));
                }
                out.push((i, i));
            } else if let Some(item) = out.last_mut() {
                item.1 = i;
            }
        }
        Ok(out)
    }

    /// The mapping inside a sequence item (`- key: v` or `-` then keys on the next lines).
    fn item_map(&self, dash_line: usize, last: usize, path: &[Seg]) -> Result<MapScope> {
        let l = self.lines[dash_line];
        let after_dash = &self.text[l.start + l.indent + 1..l.end];
        let spaces = after_dash.len() - after_dash.trim_start_matches(' ').len();
        if after_dash.trim().is_empty() || after_dash.trim_start().starts_with('#') {
            let lead = (dash_line + 1..=last)
                .find(|&i| self.lines[i].content)
                .ok_or_else(|| self.refuse(path, "empty list item"))?;
            return Ok(MapScope {
                first: dash_line + 1,
                end: last + 1,
                indent: self.lines[lead].indent,
                first_col: None,
            });
        }
        Ok(MapScope {
            first: dash_line,
            end: last + 1,
            indent: l.indent + 1 + spaces,
            first_col: Some(l.indent + 1 + spaces),
        })
    }

    /// Walk `path`. Returns the hit and shape of the last key, or the deepest existing mapping
    /// and the index in `path` of the first missing key.
    fn locate(&self, path: &[Seg]) -> Result<Located> {
        let mut scope = self.top_scope();
        let mut i = 0;
        loop {
            let Seg::Key(key) = &path[i] else {
                return Err(self.refuse(path, "a list index must follow a key"));
            };
            let Some(hit) = self.find_key(&scope, key) else {
                return Ok(Located::Missing { scope, from: i });
            };
            let shape = self.shape(&hit, &path[..=i])?;
            if i + 1 == path.len() {
                return Ok(Located::Found { hit, shape });
            }
            match (&path[i + 1], &shape) {
                (Seg::Key(_), Shape::Block { first, last }) => {
                    scope = self.child_map(*first, *last, &path[..=i])?;
                    i += 1;
                }
                (Seg::Key(_), Shape::Empty) => {
                    return Ok(Located::EmptyParent {
                        hit,
                        from: i + 1,
                        empty_flow: None,
                    });
                }
                // `apiServer: {}` (kubeadm config print init-defaults writes it): an empty mapping
                // like a null one, the `{}` dropped when the keys below it are written.
                (Seg::Key(_), Shape::Inline(span)) if is_empty_flow_map(&self.text[span.clone()]) => {
                    return Ok(Located::EmptyParent {
                        hit,
                        from: i + 1,
                        empty_flow: Some(span.clone()),
                    });
                }
                (Seg::Item(n), Shape::Block { first, last }) => {
                    let items = self.items(*first, *last, &path[..=i])?;
                    let (dash, end) = *items.get(*n).ok_or_else(|| {
                        self.refuse(path, format!("the list has {} items", items.len()))
                    })?;
                    scope = self.item_map(dash, end, &path[..=i + 1])?;
                    if i + 2 >= path.len() {
                        return Err(self.refuse(path, "a path must end with a key"));
                    }
                    i += 2;
                }
                _ => {
                    return Err(self.refuse(
                        &path[..=i],
                        "it is written inline (flow style or a scalar) where a block mapping or list was expected",
                    ))
                }
            }
        }
    }

    /// The indentation step the file uses for nested mappings (2 when it shows none).
    fn indent_step(&self) -> usize {
        let content: Vec<&Line> = self.lines.iter().filter(|l| l.content).collect();
        for w in content.windows(2) {
            if w[1].indent > w[0].indent
                && self.text[w[0].start..w[0].end].trim_end().ends_with(':')
            {
                return w[1].indent - w[0].indent;
            }
        }
        2
    }

    /// The indentation the file uses for list items under a key at column `col`.
    fn list_indent(&self, col: usize) -> usize {
        for (i, l) in self.lines.iter().enumerate() {
            if !l.content || i == 0 {
                continue;
            }
            let body = &self.text[l.start + l.indent..l.end];
            if body.starts_with("- ") {
                if let Some(prev) = (0..i).rev().find(|&p| self.lines[p].content) {
                    let pl = self.lines[prev];
                    if self.text[pl.start..pl.end].trim_end().ends_with(':')
                        && !self.text[pl.start + pl.indent..pl.end].starts_with('-')
                    {
                        return col + (l.indent - pl.indent);
                    }
                }
            }
        }
        // No list to copy: write items at the key's column, as kubeadm and kubectl do.
        col
    }
}

enum Located {
    Found {
        hit: KeyHit,
        shape: Shape,
    },
    /// `path[from..]` is missing; `scope` is the mapping that should hold `path[from]`.
    Missing {
        scope: MapScope,
        from: usize,
    },
    /// `path[from - 1]` exists with an empty value, null or an empty flow mapping `{}` (its span
    /// in `empty_flow`); `path[from..]` is missing below it.
    EmptyParent {
        hit: KeyHit,
        from: usize,
        empty_flow: Option<Range<usize>>,
    },
}

/// How the file quotes scalars, to write new ones the same way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quote {
    /// Plain when YAML reads it back as the same string, double quotes otherwise.
    PlainIfSafe,
    Double,
    Single,
}

impl Quote {
    fn of(existing: &str) -> Quote {
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
fn new_list_items(items: &[&String], col: usize) -> String {
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

fn plain_is_safe(value: &str) -> bool {
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
fn looks_like_yaml11_number(value: &str) -> bool {
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

/// `{}` (blanks inside allowed): a flow mapping with nothing in it.
fn is_empty_flow_map(value: &str) -> bool {
    value
        .strip_prefix('{')
        .and_then(|v| v.strip_suffix('}'))
        .is_some_and(|inner| inner.trim().is_empty())
}

/// Write `block` (the missing keys, each on a new line) below an empty parent key: after its line,
/// and, where the parent was an empty flow mapping, without the `{}` and the blanks before it (a
/// comment after it stays on the key's line).
fn fill_empty_parent(
    text: &str,
    ed: &Editor,
    hit: &KeyHit,
    empty_flow: Option<Range<usize>>,
    block: &str,
) -> String {
    let at = ed.lines[hit.line].end;
    let with_block = apply(text, at..at, block);
    match empty_flow {
        Some(span) => apply(&with_block, hit.after_colon..span.end, ""),
        None => with_block,
    }
}

fn apply(text: &str, at: Range<usize>, replacement: &str) -> String {
    let mut out = String::with_capacity(text.len() + replacement.len());
    out.push_str(&text[..at.start]);
    out.push_str(replacement);
    out.push_str(&text[at.end..]);
    out
}

/// Text for the missing keys `keys` (nested mappings) ending with `leaf` (the rendered value
/// lines after the last key), each line starting with a newline, at column `col`.
fn nested_block(keys: &[Seg], col: usize, step: usize, leaf: &dyn Fn(usize) -> String) -> String {
    let mut out = String::new();
    let mut c = col;
    for (i, seg) in keys.iter().enumerate() {
        let Seg::Key(k) = seg else { break };
        out.push('\n');
        out.push_str(&" ".repeat(c));
        out.push_str(&format_scalar(k, Quote::PlainIfSafe));
        out.push(':');
        if i + 1 == keys.len() {
            out.push_str(&leaf(c));
        }
        c += step;
    }
    out
}

/// Set the string scalar at `path` in document `doc` of `text` to `value`. Returns `Ok(None)`
/// when it already has that value. Missing keys (and missing parent mappings) are inserted at the
/// end of their mapping with the indentation of their siblings.
pub fn set_scalar(
    text: &str,
    origin: &Path,
    doc: usize,
    path: &[Seg],
    value: &str,
) -> Result<Option<String>> {
    let docs = parse_documents(text, origin)?;
    let (range, parsed) = docs
        .get(doc)
        .cloned()
        .ok_or_else(|| Error::content(origin, format!("has no document {}", doc + 1)))?;
    if get(&parsed, path).and_then(Value::as_str) == Some(value) {
        return Ok(None);
    }
    let ed = Editor::new(text, origin, range);
    let new_text = match ed.locate(path)? {
        Located::Found {
            shape: Shape::Inline(span),
            ..
        } => {
            let old = &text[span.clone()];
            if old.starts_with(['[', '{']) {
                return Err(ed.refuse(path, "expected a scalar, found a flow collection"));
            }
            apply(text, span, &format_scalar(value, Quote::of(old)))
        }
        Located::Found {
            hit,
            shape: Shape::Empty,
        } => apply(
            text,
            hit.after_colon..hit.after_colon,
            &format!(" {}", format_scalar(value, Quote::PlainIfSafe)),
        ),
        Located::Found {
            shape: Shape::Block { .. },
            ..
        } => return Err(ed.refuse(path, "expected a scalar, found a mapping or list")),
        Located::Missing { scope, from } => {
            let step = ed.indent_step();
            let leaf = |_c: usize| format!(" {}", format_scalar(value, Quote::PlainIfSafe));
            let block = nested_block(&path[from..], scope.indent, step, &leaf);
            let at = insertion_point(&ed, &scope)?;
            apply(text, at..at, &block)
        }
        Located::EmptyParent {
            hit,
            from,
            empty_flow,
        } => {
            let step = ed.indent_step();
            let leaf = |_c: usize| format!(" {}", format_scalar(value, Quote::PlainIfSafe));
            let block = nested_block(&path[from..], hit.col + step, step, &leaf);
            fill_empty_parent(text, &ed, &hit, empty_flow, &block)
        }
    };
    let mut expected = parsed.clone();
    set_value(&mut expected, path, Value::String(value.to_string()));
    verify(text, &new_text, origin, doc, path, &expected)?;
    Ok(Some(new_text))
}

/// Make the string list at `path` contain every one of `items` (missing ones appended in the
/// given order; existing entries, their order and their quoting kept). Returns `Ok(None)` when
/// nothing is missing.
pub fn ensure_list_items(
    text: &str,
    origin: &Path,
    doc: usize,
    path: &[Seg],
    items: &[String],
) -> Result<Option<String>> {
    let docs = parse_documents(text, origin)?;
    let (range, parsed) = docs
        .get(doc)
        .cloned()
        .ok_or_else(|| Error::content(origin, format!("has no document {}", doc + 1)))?;
    let existing: Vec<String> = match get(&parsed, path) {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Sequence(seq)) => seq
            .iter()
            .map(|v| match v {
                Value::String(s) => s.clone(),
                other => serde_yaml_ng::to_string(other)
                    .unwrap_or_default()
                    .trim()
                    .to_string(),
            })
            .collect(),
        Some(_) => {
            return Err(Error::content(
                origin,
                format!(
                    "`{}` is not a list; make it a list of strings",
                    path_to_string(path)
                ),
            ))
        }
    };
    let mut missing: Vec<&String> = Vec::new();
    for item in items {
        if !existing.contains(item) && !missing.contains(&item) {
            missing.push(item);
        }
    }
    if missing.is_empty() {
        return Ok(None);
    }
    let ed = Editor::new(text, origin, range);
    let new_text = match ed.locate(path)? {
        Located::Found {
            shape: Shape::Inline(span),
            ..
        } => {
            let old = &text[span.clone()];
            if !old.starts_with('[') {
                return Err(ed.refuse(path, "expected a list, found a scalar"));
            }
            let inner = old[1..old.len() - 1].trim();
            let style = first_flow_item_style(inner);
            let added: Vec<String> = missing.iter().map(|m| format_scalar(m, style)).collect();
            if inner.is_empty() {
                apply(text, span, &format!("[{}]", added.join(", ")))
            } else {
                // Insert just after the last item, before any whitespace and the closing bracket.
                let body_end = span.start + old[..old.len() - 1].trim_end().len();
                let body_end = if text[..body_end].ends_with(',') {
                    body_end - 1
                } else {
                    body_end
                };
                apply(text, body_end..body_end, &format!(", {}", added.join(", ")))
            }
        }
        Located::Found {
            hit,
            shape: Shape::Empty,
        } => {
            let block = new_list_items(&missing, ed.list_indent(hit.col));
            let at = ed.lines[hit.line].end;
            apply(text, at..at, &block)
        }
        Located::Found {
            shape: Shape::Block { first, last },
            ..
        } => {
            let list = ed.items(first, last, path)?;
            let (first_dash, _) = list[0];
            let (_, last_line) = list[list.len() - 1];
            let dash_line = ed.line_text(first_dash);
            let indent = ed.lines[first_dash].indent;
            let after = &dash_line[indent + 1..];
            let spaces = after.len() - after.trim_start_matches(' ').len();
            let prefix = format!("{}-{}", " ".repeat(indent), " ".repeat(spaces.max(1)));
            let style = Quote::of(after.trim_start());
            let block: String = missing
                .iter()
                .map(|m| format!("\n{prefix}{}", format_scalar(m, style)))
                .collect();
            let at = ed.lines[last_line].end;
            apply(text, at..at, &block)
        }
        Located::Missing { scope, from } => {
            let step = ed.indent_step();
            let leaf = |c: usize| new_list_items(&missing, c + ed.list_indent(0));
            let block = nested_block(&path[from..], scope.indent, step, &leaf);
            let at = insertion_point(&ed, &scope)?;
            apply(text, at..at, &block)
        }
        Located::EmptyParent {
            hit,
            from,
            empty_flow,
        } => {
            let step = ed.indent_step();
            let leaf = |c: usize| new_list_items(&missing, c + ed.list_indent(0));
            let block = nested_block(&path[from..], hit.col + step, step, &leaf);
            fill_empty_parent(text, &ed, &hit, empty_flow, &block)
        }
    };
    let mut expected = parsed.clone();
    let mut all: Vec<Value> = match get(&parsed, path) {
        Some(Value::Sequence(seq)) => seq.clone(),
        _ => Vec::new(),
    };
    all.extend(missing.iter().map(|m| Value::String((*m).clone())));
    set_value(&mut expected, path, Value::Sequence(all));
    verify(text, &new_text, origin, doc, path, &expected)?;
    Ok(Some(new_text))
}

fn first_flow_item_style(inner: &str) -> Quote {
    Quote::of(inner.trim_start())
}

/// Where to insert a new key into `scope`: the end of its last content line.
fn insertion_point(ed: &Editor<'_>, scope: &MapScope) -> Result<usize> {
    match ed.last_content(scope.first, scope.end) {
        Some(i) => Ok(ed.lines[i].end),
        None => Err(Error::content(
            ed.origin,
            "the document is empty; it must hold a mapping".to_string(),
        )),
    }
}

/// Set `path` in a parsed value, creating missing mappings.
fn set_value(root: &mut Value, path: &[Seg], value: Value) {
    let mut cur = root;
    for seg in path {
        if cur.is_null() {
            *cur = Value::Mapping(Mapping::new());
        }
        cur = match (seg, cur) {
            (Seg::Key(k), Value::Mapping(m)) => {
                m.entry(Value::String(k.clone())).or_insert(Value::Null)
            }
            (Seg::Item(i), Value::Sequence(s)) if *i < s.len() => &mut s[*i],
            _ => return,
        };
    }
    *cur = value;
}

/// Check an edit: `after` must parse; every document but `doc` must be unchanged; in `doc` the
/// value must equal `expected` (the original with only `path` set). Anything else means the
/// targeted edit misread the file: refuse rather than write it.
pub fn verify(
    before: &str,
    after: &str,
    origin: &Path,
    doc: usize,
    path: &[Seg],
    expected: &Value,
) -> Result<()> {
    let broken = |what: String| {
        Error::content(
            origin,
            format!(
                "the edit of `{}` would change more than that field ({what}); nothing was written. The file's layout is one this module does not edit safely: set the field by hand",
                path_to_string(path)
            ),
        )
    };
    let old = parse_documents(before, origin)?;
    let new = parse_documents(after, origin)
        .map_err(|e| broken(format!("the result does not parse: {e}")))?;
    if old.len() != new.len() {
        return Err(broken("the number of documents changed".into()));
    }
    for (i, ((_, a), (_, b))) in old.iter().zip(new.iter()).enumerate() {
        if i == doc {
            if b != expected {
                return Err(broken(format!(
                    "document {} differs from the expected result",
                    i + 1
                )));
            }
        } else if a != b {
            return Err(broken(format!("document {} changed", i + 1)));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(keys: &[&str]) -> Vec<Seg> {
        keys.iter().map(|k| Seg::key(k)).collect()
    }

    const CFG: &str = "# managed by kubespray\napiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\nlocalAPIEndpoint:\n  advertiseAddress: \"10.0.0.11\"\n---\napiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\ncontrolPlaneEndpoint: \"10.0.0.11:6443\"  # first master\napiServer:\n  extraArgs:\n  - name: anonymous-auth\n    value: \"True\"\n  certSANs:\n  - \"kubernetes\"\n  - \"10.0.0.11\"\n  # trailing comment\nnetworking:\n  dnsDomain: cluster.local\n";

    #[test]
    fn scalar_replaced_in_place_keeping_quotes_and_comment() {
        let out = set_scalar(
            CFG,
            Path::new("f"),
            1,
            &p(&["controlPlaneEndpoint"]),
            "10.0.0.10:6443",
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            out,
            CFG.replace("\"10.0.0.11:6443\"  # first", "\"10.0.0.10:6443\"  # first")
        );
        assert!(set_scalar(
            &out,
            Path::new("f"),
            1,
            &p(&["controlPlaneEndpoint"]),
            "10.0.0.10:6443"
        )
        .unwrap()
        .is_none());
    }

    #[test]
    fn block_list_appended_after_last_item() {
        let out = ensure_list_items(
            CFG,
            Path::new("f"),
            1,
            &p(&["apiServer", "certSANs"]),
            &["10.0.0.11".into(), "10.0.0.10".into(), "lb.local".into()],
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            out,
            CFG.replace(
                "  - \"10.0.0.11\"\n",
                "  - \"10.0.0.11\"\n  - \"10.0.0.10\"\n  - \"lb.local\"\n"
            )
        );
    }

    #[test]
    fn only_an_empty_flow_mapping_is_empty() {
        assert!(is_empty_flow_map("{}") && is_empty_flow_map("{ }"));
        assert!(
            !is_empty_flow_map("{{}}") && !is_empty_flow_map("{a: 1}") && !is_empty_flow_map("[]")
        );
    }

    #[test]
    fn an_empty_flow_mapping_parent_becomes_a_block() {
        // what `kubeadm config print init-defaults` writes, with a comment after it
        let t = "kind: ClusterConfiguration\napiServer: {} # defaults\nclusterName: x\n";
        let out = ensure_list_items(
            t,
            Path::new("f"),
            0,
            &p(&["apiServer", "certSANs"]),
            &["c".into()],
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            out,
            "kind: ClusterConfiguration\napiServer: # defaults\n  certSANs:\n  - c\nclusterName: x\n"
        );
        let out = set_scalar(t, Path::new("f"), 0, &p(&["apiServer", "x"]), "1")
            .unwrap()
            .unwrap();
        assert_eq!(
            out,
            "kind: ClusterConfiguration\napiServer: # defaults\n  x: \"1\"\nclusterName: x\n"
        );
        // a flow mapping with content is still refused, not rewritten
        let t = "kind: ClusterConfiguration\napiServer: {a: 1}\n";
        assert!(ensure_list_items(
            t,
            Path::new("f"),
            0,
            &p(&["apiServer", "certSANs"]),
            &["c".into()]
        )
        .is_err());
    }

    #[test]
    fn flow_list_and_missing_keys() {
        let t = "kind: ClusterConfiguration\napiServer:\n    certSANs: [a, 'b']\nclusterName: x\n";
        let out = ensure_list_items(
            t,
            Path::new("f"),
            0,
            &p(&["apiServer", "certSANs"]),
            &["c".into(), "fd00::1".into()],
        )
        .unwrap()
        .unwrap();
        assert_eq!(out, "kind: ClusterConfiguration\napiServer:\n    certSANs: [a, 'b', c, fd00::1]\nclusterName: x\n");
        let t = "kind: ClusterConfiguration\napiServer:\n    timeoutForControlPlane: 4m0s\nclusterName: x\n";
        let out = ensure_list_items(
            t,
            Path::new("f"),
            0,
            &p(&["apiServer", "certSANs"]),
            &["c".into()],
        )
        .unwrap()
        .unwrap();
        assert_eq!(out, "kind: ClusterConfiguration\napiServer:\n    timeoutForControlPlane: 4m0s\n    certSANs:\n    - c\nclusterName: x\n");
        let t = "kind: ClusterConfiguration\nclusterName: x";
        let out = ensure_list_items(
            t,
            Path::new("f"),
            0,
            &p(&["apiServer", "certSANs"]),
            &["c".into()],
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            out,
            "kind: ClusterConfiguration\nclusterName: x\napiServer:\n  certSANs:\n  - c"
        );
        let out = set_scalar(
            t,
            Path::new("f"),
            0,
            &p(&["controlPlaneEndpoint"]),
            "[fd00::1]:6443",
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            out,
            "kind: ClusterConfiguration\nclusterName: x\ncontrolPlaneEndpoint: \"[fd00::1]:6443\""
        );
        let t = "certSANs: []\n";
        assert_eq!(
            ensure_list_items(t, Path::new("f"), 0, &p(&["certSANs"]), &["a".into()])
                .unwrap()
                .unwrap(),
            "certSANs: [a]\n"
        );
        let t = "certSANs:\nx: 1\n";
        assert_eq!(
            ensure_list_items(t, Path::new("f"), 0, &p(&["certSANs"]), &["a".into()])
                .unwrap()
                .unwrap(),
            "certSANs:\n- a\nx: 1\n"
        );
    }

    #[test]
    fn sequence_items_are_navigated() {
        let t = "apiVersion: v1\nclusters:\n- cluster:\n    server: https://a:6443\n  name: a\n- name: b\n  cluster:\n    certificate-authority-data: QUJD\n    server: https://b:6443\nkind: Config\n";
        let path = vec![
            Seg::key("clusters"),
            Seg::Item(1),
            Seg::key("cluster"),
            Seg::key("server"),
        ];
        let out = set_scalar(t, Path::new("f"), 0, &path, "https://vip:6443")
            .unwrap()
            .unwrap();
        assert_eq!(out, t.replace("https://b:6443", "https://vip:6443"));
    }

    #[test]
    fn unsafe_scalars_are_quoted() {
        assert_eq!(format_scalar("10.0.0.1", Quote::PlainIfSafe), "10.0.0.1");
        assert_eq!(format_scalar("1.5", Quote::PlainIfSafe), "\"1.5\"");
        assert_eq!(format_scalar("10:30", Quote::PlainIfSafe), "\"10:30\"");
        assert_eq!(
            format_scalar("10.0.0.10:6443", Quote::PlainIfSafe),
            "10.0.0.10:6443"
        );
        assert_eq!(format_scalar("lb:6443", Quote::PlainIfSafe), "lb:6443");
        assert_eq!(
            format_scalar("lb.example.com", Quote::PlainIfSafe),
            "lb.example.com"
        );
        assert_eq!(format_scalar("yes", Quote::PlainIfSafe), "\"yes\"");
        assert_eq!(format_scalar("::1", Quote::PlainIfSafe), "\"::1\"");
        assert_eq!(format_scalar("it's", Quote::Single), "'it''s'");
    }

    #[test]
    fn malformed_yaml_is_refused() {
        let err = set_scalar("a: [1,\n", Path::new("/etc/x.yaml"), 0, &p(&["a"]), "b")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("/etc/x.yaml") && err.contains("not valid YAML"),
            "{err}"
        );
    }
}
