//! The line editor: finds a path's key, value span and shape in the lines of one document of a
//! block-style YAML text, and splices new text in at the indentation of the siblings.

use super::scalars::{format_scalar, Quote};
use super::{path_to_string, Seg};
use crate::error::{Error, Result};
use std::ops::Range;
use std::path::Path;

/// One line of the text: byte offsets (end excludes the newline), indentation, and whether it
/// holds content (not blank, not a comment).
#[derive(Debug, Clone, Copy)]
pub(super) struct Line {
    pub(super) start: usize,
    pub(super) end: usize,
    pub(super) indent: usize,
    pub(super) content: bool,
}

pub(super) fn lines_of(text: &str, range: Range<usize>) -> Vec<Line> {
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
pub(super) struct MapScope {
    pub(super) first: usize,
    pub(super) end: usize,
    pub(super) indent: usize,
    pub(super) first_col: Option<usize>,
}

/// Where a key was found.
#[derive(Debug, Clone, Copy)]
pub(super) struct KeyHit {
    pub(super) line: usize,
    pub(super) col: usize,
    /// Offset just after the `:`.
    pub(super) after_colon: usize,
}

/// The value of a key.
#[derive(Debug, Clone)]
pub(super) enum Shape {
    /// Nothing after the colon and no child lines (null).
    Empty,
    /// A scalar or flow collection on the key's line: its exact byte span.
    Inline(Range<usize>),
    /// Child lines `first..=last` (a block mapping or sequence).
    Block { first: usize, last: usize },
}

pub(super) struct Editor<'t> {
    pub(super) text: &'t str,
    pub(super) origin: &'t Path,
    pub(super) lines: Vec<Line>,
}

impl<'t> Editor<'t> {
    pub(super) fn new(text: &'t str, origin: &'t Path, doc: Range<usize>) -> Self {
        Editor {
            text,
            origin,
            lines: lines_of(text, doc),
        }
    }

    pub(super) fn line_text(&self, i: usize) -> &'t str {
        let l = self.lines[i];
        &self.text[l.start..l.end]
    }

    pub(super) fn refuse(&self, path: &[Seg], reason: impl Into<String>) -> Error {
        Error::content(
            self.origin,
            format!("cannot edit `{}`: {}", path_to_string(path), reason.into()),
        )
    }

    pub(super) fn top_scope(&self) -> MapScope {
        MapScope {
            first: 0,
            end: self.lines.len(),
            indent: 0,
            first_col: None,
        }
    }

    pub(super) fn key_col(&self, scope: &MapScope, i: usize) -> usize {
        match scope.first_col {
            Some(c) if i == scope.first => c,
            _ => self.lines[i].indent,
        }
    }

    pub(super) fn find_key(&self, scope: &MapScope, key: &str) -> Option<KeyHit> {
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
    pub(super) fn last_content(&self, first: usize, end: usize) -> Option<usize> {
        (first..end).rev().find(|&i| self.lines[i].content)
    }

    pub(super) fn shape(&self, hit: &KeyHit, path: &[Seg]) -> Result<Shape> {
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
    pub(super) fn inline_end(&self, start: usize, c: char, path: &[Seg]) -> Result<usize> {
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
    pub(super) fn child_map(&self, first: usize, last: usize, path: &[Seg]) -> Result<MapScope> {
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
    pub(super) fn items(
        &self,
        first: usize,
        last: usize,
        path: &[Seg],
    ) -> Result<Vec<(usize, usize)>> {
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
    pub(super) fn item_map(&self, dash_line: usize, last: usize, path: &[Seg]) -> Result<MapScope> {
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
    pub(super) fn locate(&self, path: &[Seg]) -> Result<Located> {
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
    pub(super) fn indent_step(&self) -> usize {
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
    pub(super) fn list_indent(&self, col: usize) -> usize {
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

pub(super) enum Located {
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

/// `{}` (blanks inside allowed): a flow mapping with nothing in it.
pub(super) fn is_empty_flow_map(value: &str) -> bool {
    value
        .strip_prefix('{')
        .and_then(|v| v.strip_suffix('}'))
        .is_some_and(|inner| inner.trim().is_empty())
}

/// Write `block` (the missing keys, each on a new line) below an empty parent key: after its line,
/// and, where the parent was an empty flow mapping, without the `{}` and the blanks before it (a
/// comment after it stays on the key's line).
pub(super) fn fill_empty_parent(
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

pub(super) fn apply(text: &str, at: Range<usize>, replacement: &str) -> String {
    let mut out = String::with_capacity(text.len() + replacement.len());
    out.push_str(&text[..at.start]);
    out.push_str(replacement);
    out.push_str(&text[at.end..]);
    out
}

/// Text for the missing keys `keys` (nested mappings) ending with `leaf` (the rendered value
/// lines after the last key), each line starting with a newline, at column `col`.
pub(super) fn nested_block(
    keys: &[Seg],
    col: usize,
    step: usize,
    leaf: &dyn Fn(usize) -> String,
) -> String {
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
