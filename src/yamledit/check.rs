//! The re-parse check every edit passes before it is returned: the result must parse and differ
//! from the original only at the edited path.

use super::documents::YamlText;
use super::{path_to_string, Seg};
use crate::error::{Error, Result};
use serde_yaml_ng::Value;

/// Check an edit: `after` must parse; every document but `doc` must be unchanged; in `doc` the
/// value must equal `expected` (the original with only `path` set). Anything else means the
/// targeted edit misread the file: refuse rather than write it. Returns `after` parsed (its one
/// parse), ready for the next edit.
pub fn verify(
    before: &YamlText,
    after: String,
    doc: usize,
    path: &[Seg],
    expected: &Value,
) -> Result<YamlText> {
    let origin = before.origin();
    let broken = |what: String| {
        Error::content(
            origin,
            format!(
                "the edit of `{}` would change more than that field ({what}); nothing was written. The file's layout is one this module does not edit safely: set the field by hand",
                path_to_string(path)
            ),
        )
    };
    let new = YamlText::parse(after, origin)
        .map_err(|e| broken(format!("the result does not parse: {e}")))?;
    let (old, new_docs) = (before.docs(), new.docs());
    if old.len() != new_docs.len() {
        return Err(broken("the number of documents changed".into()));
    }
    for (i, ((_, a), (_, b))) in old.iter().zip(new_docs.iter()).enumerate() {
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
    Ok(new)
}
