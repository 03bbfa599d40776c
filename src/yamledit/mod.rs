//! Targeted edits of block-style YAML text (kubeadm configs, kubeconfigs, the YAML inside
//! ConfigMaps): the file is read and validated with serde_yaml_ng, but written by replacing or
//! inserting text only at the spans of the fields that change. Every other byte stays: other
//! documents of a multi-document file, key order, quoting, comments, blank lines.
//!
//! Every edit is checked after the fact ([`verify`]): the result is parsed again and must equal the
//! original with only the targeted fields different. An edit that would change anything else is
//! refused, so a file shape this editor does not understand can never be corrupted.
//!
//! Parts: [`documents`] (document ranges and parsing), [`lines`] (the line editor that finds a
//! path's span and splices text), [`scalars`] (quoting new values), [`check`] (the re-parse check).
//!
//! API (all pure, parsed text in, parsed text out):
//! - [`documents`]: byte ranges of the documents of a multi-document text (split at `---` lines);
//! - [`YamlText`]: a text and its documents parsed once ([`parse_documents`]), what the editors
//!   take and return, so a file is parsed once per module call and each edit's result once;
//! - [`Seg`] / [`get`]: a path (`apiServer.certSANs`, `clusters[1].cluster.server`) and its value;
//! - [`set_scalar`]: set a string scalar at a path, inserting the key (and missing parent mappings)
//!   with the indentation of its siblings; `Ok(None)` when it already has that value;
//! - [`ensure_list_items`]: make a string list at a path contain items (appended in order, existing
//!   entries and order kept; block lists, flow lists `[a, b]`, empty or absent keys);
//! - [`format_scalar`]: quote a new scalar when needed, in the quote style the file uses.
//!
//! Limits (refused with a message, never guessed): anchors, aliases, tags and block scalars at an
//! edited path, flow mappings as parents of an edited key, multi-line plain scalars.

mod check;
mod documents;
mod lines;
mod scalars;

pub use check::verify;
pub use documents::{describe_error, documents, parse_documents, YamlText};
pub use scalars::{format_scalar, Quote};

/// Whole-text parses so far on this thread (tests only): the parse-once checks count them.
#[cfg(test)]
pub(crate) fn documents_parses() -> usize {
    documents::PARSES.with(std::cell::Cell::get)
}

use crate::error::{Error, Result};
use lines::{apply, fill_empty_parent, nested_block, Editor, Located, MapScope, Shape};
use scalars::new_list_items;
use serde_yaml_ng::{Mapping, Value};

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

/// Set the string scalar at `path` in document `doc` of `yaml` to `value`; the new text comes back
/// parsed (the re-parse check's one parse). Returns `Ok(None)`
/// when it already has that value. Missing keys (and missing parent mappings) are inserted at the
/// end of their mapping with the indentation of their siblings.
pub fn set_scalar(
    yaml: &YamlText,
    doc: usize,
    path: &[Seg],
    value: &str,
) -> Result<Option<YamlText>> {
    let (text, origin) = (yaml.text(), yaml.origin());
    let (range, parsed) = yaml.doc(doc)?;
    let range = range.clone();
    if get(parsed, path).and_then(Value::as_str) == Some(value) {
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
    verify(yaml, new_text, doc, path, &expected).map(Some)
}

/// Make the string list at `path` contain every one of `items` (missing ones appended in the
/// given order; existing entries, their order and their quoting kept). Returns `Ok(None)` when
/// nothing is missing.
pub fn ensure_list_items(
    yaml: &YamlText,
    doc: usize,
    path: &[Seg],
    items: &[String],
) -> Result<Option<YamlText>> {
    let (text, origin) = (yaml.text(), yaml.origin());
    let (range, parsed) = yaml.doc(doc)?;
    let range = range.clone();
    let existing: Vec<String> = match get(parsed, path) {
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
    let mut all: Vec<Value> = match get(parsed, path) {
        Some(Value::Sequence(seq)) => seq.clone(),
        _ => Vec::new(),
    };
    all.extend(missing.iter().map(|m| Value::String((*m).clone())));
    set_value(&mut expected, path, Value::Sequence(all));
    verify(yaml, new_text, doc, path, &expected).map(Some)
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

#[cfg(test)]
mod tests {
    use super::lines::is_empty_flow_map;
    use super::*;
    use std::path::Path;

    // The editors on a text: parse it (once), edit, hand back the new text.
    fn set_scalar(
        text: &str,
        origin: &Path,
        doc: usize,
        path: &[Seg],
        value: &str,
    ) -> Result<Option<String>> {
        let yaml = YamlText::parse(text, origin)?;
        Ok(super::set_scalar(&yaml, doc, path, value)?.map(YamlText::into_text))
    }

    fn ensure_list_items(
        text: &str,
        origin: &Path,
        doc: usize,
        path: &[Seg],
        items: &[String],
    ) -> Result<Option<String>> {
        let yaml = YamlText::parse(text, origin)?;
        Ok(super::ensure_list_items(&yaml, doc, path, items)?.map(YamlText::into_text))
    }

    #[test]
    fn documents_are_matched_to_their_ranges_from_one_parse() {
        let cases: [(&str, Vec<Value>); 6] = [
            ("", vec![Value::Null]),
            ("a: 1\n", vec![serde_yaml_ng::from_str("a: 1").unwrap()]),
            (
                "---\na: 1\n",
                vec![Value::Null, serde_yaml_ng::from_str("a: 1").unwrap()],
            ),
            (
                "# head\n---\na: 1\n---\n# only a comment\n---\nb: 2\n",
                vec![
                    Value::Null,
                    serde_yaml_ng::from_str("a: 1").unwrap(),
                    Value::Null,
                    serde_yaml_ng::from_str("b: 2").unwrap(),
                ],
            ),
            (
                "a: 1\n---\n",
                vec![serde_yaml_ng::from_str("a: 1").unwrap(), Value::Null],
            ),
            (
                "k: ~\n---\nb: 2\n",
                vec![
                    serde_yaml_ng::from_str("k: ~").unwrap(),
                    serde_yaml_ng::from_str("b: 2").unwrap(),
                ],
            ),
        ];
        for (text, want) in cases {
            let before = documents_parses();
            let docs = parse_documents(text, Path::new("f")).unwrap();
            let got: Vec<Value> = docs.into_iter().map(|(_, v)| v).collect();
            assert_eq!(got, want, "{text:?}");
            assert_eq!(documents_parses() - before, 1, "{text:?}: parsed once");
        }
        // A directive does not match up: each range is parsed on its own (a second parse), and
        // the directive alone is no document, as before the parse-once change.
        let before = documents_parses();
        let err = parse_documents("%YAML 1.2\n---\na: 1\n", Path::new("f")).unwrap_err();
        assert!(
            err.to_string().contains("is not valid YAML (document 1"),
            "{err}"
        );
        assert_eq!(documents_parses() - before, 2);
    }

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
