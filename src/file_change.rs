//! Acting on a decided text change of one file: resolve symlinks to the real file, make sure it
//! still holds the text the decision was made from, back it up with Ansible's naming, and replace
//! it atomically keeping owner and mode ([`crate::fsio`]). In check mode nothing is written.
//!
//! API: [`read_target`]`(path)` -> [`Target`] (real path + text), [`apply`]`(target, new_text,
//! check_mode, backup, original_dir)` -> the backup file written, if any, [`report_change`] (the message, backup
//! and diff of a changed file in a module's result).

use crate::diff::FileDiff;
use crate::error::{Error, Result};
use crate::fsio;
use crate::options::{Default, Kind, OptionSpec};
use crate::protocol::ModuleOutput;
use std::path::{Path, PathBuf};

/// The `backup` option of every module that edits one file in place (declared once, so that the
/// modules and their sidecars cannot drift apart).
pub const BACKUP_OPTION: OptionSpec = OptionSpec::new(
    "backup",
    Kind::Bool,
    "Keep a copy of the original file next to it with Ansible's backup naming.",
)
.default(Default::Bool(true));

/// The `original_dir` option of every module that edits files kubeha's rollback restores.
pub const ORIGINAL_DIR_OPTION: OptionSpec = OptionSpec::new(
    "original_dir",
    Kind::Path,
    "Before a file is first changed, keep its original under this directory at the file's absolute path (C(<original_dir>/etc/kubernetes/admin.conf)), with the file's owner and mode, in directories created 0700. An original already there is never overwritten (it is the state before the first change, which the rollback restores). When unset, no original is kept. Nothing is written in check mode.",
);

/// A file about to be edited: the path the user gave, the real file behind it, its text.
#[derive(Debug, Clone)]
pub struct Target {
    pub path: PathBuf,
    pub real_path: PathBuf,
    pub text: String,
}

/// Read the file at `path` (following symlinks), refusing what is not a regular UTF-8 file.
pub fn read_target(path: &Path) -> Result<Target> {
    let real_path = std::fs::canonicalize(path).map_err(|e| Error::io(path, "find", e))?;
    let meta =
        std::fs::metadata(&real_path).map_err(|e| Error::io(path, "read the attributes of", e))?;
    if !meta.is_file() {
        return Err(Error::content(
            path,
            "is not a regular file; point `path` at the file itself",
        ));
    }
    let text = fsio::read_text(&real_path)?;
    Ok(Target {
        path: path.to_path_buf(),
        real_path,
        text,
    })
}

/// Write `new_text` over the target unless in check mode. The file must still hold the text the
/// change was decided from (someone else may have edited it meanwhile). Returns the backup path
/// when `backup` is set and the file was written.
pub fn apply(
    target: &Target,
    new_text: &str,
    check_mode: bool,
    backup: bool,
    original_dir: Option<&Path>,
) -> Result<Option<PathBuf>> {
    if check_mode {
        return Ok(None);
    }
    let now = fsio::read_text(&target.real_path)?;
    if now != target.text {
        return Err(Error::Refused(format!(
            "{} changed while this module was working on it; nothing was written: run the task again",
            target.path.display()
        )));
    }
    if let Some(dir) = original_dir {
        save_original(dir, target)?;
    }
    let backup_file = if backup {
        Some(fsio::backup(&target.real_path)?)
    } else {
        None
    };
    fsio::replace(&target.real_path, new_text.as_bytes())?;
    Ok(backup_file)
}

/// Keep the target's text as it was before this change under `dir` ([`fsio::original_path`] of
/// the path the user gave, so that the restore puts it back there), unless an original is already
/// kept. Owner and mode are the real file's.
fn save_original(dir: &Path, target: &Target) -> Result<()> {
    let named = if target.path.is_absolute() {
        &target.path
    } else {
        &target.real_path
    };
    write_original(dir, named, target.text.as_bytes(), &target.real_path)
}

/// Keep the file at `path` (as it is on disk now, symlinks followed) under `dir` unless an
/// original is already kept there; for files a module replaces without editing their text (a
/// certificate and its key). The content is never shown.
pub fn keep_original(dir: &Path, path: &Path) -> Result<()> {
    write_original(dir, path, &fsio::read(path)?, path)
}

/// `content` as the original of `named` under `dir`, with the owner and mode of `real` (the file
/// on disk), unless one is kept already.
fn write_original(dir: &Path, named: &Path, content: &[u8], real: &Path) -> Result<()> {
    let attrs = fsio::FileAttrs::of(real)?;
    fsio::write_once(&fsio::original_path(dir, named), content, attrs)?;
    Ok(())
}

/// What every file module reports for a changed file: `would update` (check mode) or `updated`
/// with the reasons, the backup written, and the diff as it may be shown (`before`/`after`
/// already redacted where the file holds keys).
pub fn report_change(
    out: &mut ModuleOutput,
    path: &str,
    check_mode: bool,
    reasons: &[String],
    backup_file: Option<PathBuf>,
    before: String,
    after: String,
) {
    out.changed = true;
    out.msg = format!(
        "{} {path}: {}",
        if check_mode {
            "would update"
        } else {
            "updated"
        },
        reasons.join("; ")
    );
    if let Some(b) = backup_file {
        out.set("backup_file", b.display().to_string());
    }
    out.diffs.push(FileDiff::new(path, before, after));
}
