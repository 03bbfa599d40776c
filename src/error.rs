//! Typed errors of the library. Every message names what was wrong (file, option, value) and,
//! where there is one, the fix: it is shown to the operator as the task's `msg`.

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A module option is unknown, missing, of the wrong type or out of range.
    #[error("option `{option}`: {reason}")]
    Option { option: String, reason: String },

    /// Several unknown options at once; reported together so one run shows them all.
    #[error(
        "unsupported option(s) for module {module}: {unknown}; supported options: {supported}"
    )]
    UnknownOptions {
        module: String,
        unknown: String,
        supported: String,
    },

    /// The arguments file Ansible hands to the module is missing or not a JSON object.
    #[error("module arguments {path}: {reason}")]
    Arguments { path: PathBuf, reason: String },

    /// A file's content is not what the module can work on (bad YAML, unknown apiVersion, ...).
    #[error("{path}: {reason}")]
    Content { path: PathBuf, reason: String },

    /// An I/O operation on a file failed.
    #[error("{path}: cannot {action}: {source}")]
    Io {
        path: PathBuf,
        action: &'static str,
        #[source]
        source: std::io::Error,
    },

    /// A precondition of the host or cluster does not hold; nothing was changed.
    #[error("{0}")]
    Refused(String),

    /// A network exchange (TLS, HTTP, Kubernetes API) failed.
    #[error("{endpoint}: {reason}")]
    Remote { endpoint: String, reason: String },

    /// A wait ran out of time.
    #[error("{0}")]
    Timeout(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn option(option: &str, reason: impl Into<String>) -> Self {
        Error::Option {
            option: option.to_string(),
            reason: reason.into(),
        }
    }

    pub fn content(path: &Path, reason: impl Into<String>) -> Self {
        Error::Content {
            path: path.to_path_buf(),
            reason: reason.into(),
        }
    }

    pub fn io(path: &Path, action: &'static str, source: std::io::Error) -> Self {
        Error::Io {
            path: path.to_path_buf(),
            action,
            source,
        }
    }

    pub fn remote(endpoint: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Remote {
            endpoint: endpoint.into(),
            reason: reason.into(),
        }
    }
}
