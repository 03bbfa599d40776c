//! The `diff` payload Ansible renders under `--diff`: before/after text of each changed file or
//! object, with headers naming it. Only what changes is listed.

use serde_json::{json, Value};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileDiff {
    pub before_header: String,
    pub after_header: String,
    pub before: String,
    pub after: String,
}

impl FileDiff {
    pub fn new(name: &str, before: impl Into<String>, after: impl Into<String>) -> Self {
        FileDiff {
            before_header: format!("{name} (before)"),
            after_header: format!("{name} (after)"),
            before: before.into(),
            after: after.into(),
        }
    }

    pub fn to_json(&self) -> Value {
        json!({
            "before_header": self.before_header,
            "after_header": self.after_header,
            "before": self.before,
            "after": self.after,
        })
    }
}
