//! File writes that never lose the previous state: backups with Ansible's naming and atomic
//! replacement in the same directory that keeps the file's owner and mode.
//!
//! A reader of the target path sees either the complete old file or the complete new one: the new
//! content goes to a temporary file beside the target, is flushed, given the target's mode and
//! owner, then renamed over it, and the directory is flushed so the rename survives a crash.

use crate::error::{Error, Result};
use nix::unistd::{fchown, Gid, Uid};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// Owner and mode a rewritten file must keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileAttrs {
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

impl FileAttrs {
    pub fn of(path: &Path) -> Result<Self> {
        let meta = fs::metadata(path).map_err(|e| Error::io(path, "read the attributes of", e))?;
        Ok(FileAttrs {
            mode: meta.permissions().mode() & 0o7777,
            uid: meta.uid(),
            gid: meta.gid(),
        })
    }
}

/// Read a whole file, naming it in the error.
pub fn read(path: &Path) -> Result<Vec<u8>> {
    fs::read(path).map_err(|e| Error::io(path, "read", e))
}

/// Read a whole file as UTF-8 text.
pub fn read_text(path: &Path) -> Result<String> {
    let bytes = read(path)?;
    String::from_utf8(bytes).map_err(|_| Error::content(path, "is not UTF-8 text"))
}

/// The path Ansible's `backup_local` would choose: `<file>.<pid>.<YYYY-MM-DD@HH:MM:SS~>`.
/// The time is UTC (Ansible uses local time; hosts of a cluster usually run in UTC anyway).
pub fn backup_path(path: &Path) -> PathBuf {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let stamp = format_utc(secs);
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{}.{}~", std::process::id(), stamp));
    PathBuf::from(name)
}

/// `YYYY-MM-DD@HH:MM:SS` for a Unix time (civil-from-days, proleptic Gregorian calendar).
pub fn format_utc(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}@{:02}:{:02}:{:02}",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// Copy `path` to its backup path, keeping mode and owner, and return the backup's path.
/// The copy is itself written atomically, so a crash never leaves a truncated backup.
pub fn backup(path: &Path) -> Result<PathBuf> {
    let content = read(path)?;
    let attrs = FileAttrs::of(path)?;
    let target = backup_path(path);
    write_new(&target, &content, attrs)?;
    Ok(target)
}

/// Replace `path` with `content` atomically, keeping its mode and owner.
pub fn replace(path: &Path, content: &[u8]) -> Result<()> {
    let attrs = FileAttrs::of(path)?;
    write_new(path, content, attrs)
}

/// Write `content` to `path` atomically with the given attributes (the file may not exist yet).
pub fn write_new(path: &Path, content: &[u8], attrs: FileAttrs) -> Result<()> {
    let staged = stage(path, content, attrs)?;
    commit(&staged, path)
}

/// Write `content` to `path` once: an existing file is never overwritten (it holds the state
/// before the first change, which every later run must keep). Missing directories are created
/// 0700 (what they hold may include private keys); the file is written atomically with `attrs`,
/// so a run killed midway leaves no file or a whole one. Returns whether it wrote the file.
pub fn write_once(path: &Path, content: &[u8], attrs: FileAttrs) -> Result<bool> {
    if path.symlink_metadata().is_ok() {
        return Ok(false);
    }
    let dir = parent_of(path);
    if !dir.exists() {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(|e| Error::io(&dir, "create the directory", e))?;
    }
    write_new(path, content, attrs)?;
    Ok(true)
}

/// Where the original of `file` is kept under `dir`: the file's absolute path below it
/// (`<dir>/etc/kubernetes/admin.conf`), the layout the role's restore reads back.
pub fn original_path(dir: &Path, file: &Path) -> PathBuf {
    use std::path::Component;
    let mut relative = PathBuf::new();
    for c in file.components() {
        match c {
            Component::Normal(name) => relative.push(name),
            Component::ParentDir => {
                relative.pop();
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    dir.join(relative)
}

/// Write `content` to a temporary file beside `path` (same directory, so the rename is atomic),
/// flushed and with the final mode and owner, and return the temporary path. The caller commits
/// it with [`commit`]; [`discard`] removes it.
pub fn stage(path: &Path, content: &[u8], attrs: FileAttrs) -> Result<PathBuf> {
    let dir = parent_of(path);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "file".into());
    // Leading dot: kubelet ignores dot-files in the static-pod directory, and so do most globbers.
    let tmp = dir.join(format!(".{name}.kubeha-{}.tmp", std::process::id()));
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(|e| Error::io(&tmp, "create the temporary file", e))?;
        file.write_all(content)
            .map_err(|e| Error::io(&tmp, "write", e))?;
        fchown(
            file.as_raw_fd(),
            Some(Uid::from_raw(attrs.uid)),
            Some(Gid::from_raw(attrs.gid)),
        )
        .map_err(|e| Error::io(&tmp, "set the owner of", std::io::Error::from(e)))?;
        file.set_permissions(fs::Permissions::from_mode(attrs.mode))
            .map_err(|e| Error::io(&tmp, "set the mode of", e))?;
        file.sync_all().map_err(|e| Error::io(&tmp, "flush", e))?;
        Ok(())
    })();
    match result {
        Ok(()) => Ok(tmp),
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            Err(e)
        }
    }
}

/// Rename a staged file over its target and flush the directory.
pub fn commit(staged: &Path, path: &Path) -> Result<()> {
    if let Err(e) = fs::rename(staged, path) {
        let _ = fs::remove_file(staged);
        return Err(Error::io(path, "replace", e));
    }
    sync_dir(&parent_of(path))
}

/// Remove a staged file that will not be committed.
pub fn discard(staged: &Path) {
    let _ = fs::remove_file(staged);
}

fn parent_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

fn sync_dir(dir: &Path) -> Result<()> {
    let handle = File::open(dir).map_err(|e| Error::io(dir, "open the directory", e))?;
    handle
        .sync_all()
        .map_err(|e| Error::io(dir, "flush the directory", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_formatting_matches_known_dates() {
        assert_eq!(format_utc(0), "1970-01-01@00:00:00");
        assert_eq!(format_utc(951_782_400), "2000-02-29@00:00:00");
        assert_eq!(format_utc(1_795_990_000), "2026-11-29@22:06:40");
    }

    #[test]
    fn replace_keeps_mode_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("admin.conf");
        fs::write(&path, b"old").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
        replace(&path, b"new").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"new");
        assert_eq!(FileAttrs::of(&path).unwrap().mode, 0o640);
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
    }

    #[test]
    fn backup_copies_content_and_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("apiserver.key");
        fs::write(&path, b"secret").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        let b = backup(&path).unwrap();
        assert!(b
            .to_string_lossy()
            .contains(&format!("apiserver.key.{}.", std::process::id())));
        assert!(b.to_string_lossy().ends_with('~'));
        assert_eq!(fs::read(&b).unwrap(), b"secret");
        assert_eq!(FileAttrs::of(&b).unwrap().mode, 0o600);
    }

    #[test]
    fn missing_file_error_names_the_path() {
        let err = replace(Path::new("/nonexistent/dir/kubelet.conf"), b"x").unwrap_err();
        assert!(
            err.to_string().contains("/nonexistent/dir/kubelet.conf"),
            "{err}"
        );
    }
    #[test]
    fn write_once_never_overwrites_and_makes_private_directories() {
        let dir = tempfile::tempdir().unwrap();
        let original = original_path(
            &dir.path().join("original"),
            Path::new("/etc/kubernetes/ssl/apiserver.key"),
        );
        assert_eq!(
            original,
            dir.path().join("original/etc/kubernetes/ssl/apiserver.key")
        );
        let attrs = FileAttrs {
            mode: 0o600,
            uid: nix::unistd::geteuid().as_raw(),
            gid: nix::unistd::getegid().as_raw(),
        };
        assert!(write_once(&original, b"first", attrs).unwrap());
        assert!(!write_once(&original, b"second", attrs).unwrap());
        assert_eq!(fs::read(&original).unwrap(), b"first");
        assert_eq!(FileAttrs::of(&original).unwrap().mode, 0o600);
        for d in ["original", "original/etc", "original/etc/kubernetes/ssl"] {
            let mode = FileAttrs::of(&dir.path().join(d)).unwrap().mode;
            assert_eq!(mode, 0o700, "{d}");
        }
    }

    #[test]
    fn original_path_resolves_dot_components_lexically() {
        assert_eq!(
            original_path(
                Path::new("/s"),
                Path::new("/etc/../etc/./kubernetes/a.conf")
            ),
            PathBuf::from("/s/etc/kubernetes/a.conf")
        );
        assert_eq!(
            original_path(Path::new("/s"), Path::new("/../a.conf")),
            PathBuf::from("/s/a.conf")
        );
    }
}
