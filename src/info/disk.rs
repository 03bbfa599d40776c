//! Room for kubeha's copies: for each directory asked about, the nearest existing directory
//! (itself, or the ancestor it will be created under), the space free there (`f_bavail`: what
//! non-root users may use; root may use a little more, so this errs on the safe side), whether it
//! is writable (access(2) answers EROFS for a read-only file system even for root: a read-only
//! /etc/kubernetes on the second master must stop the run in preflight, not after the first master
//! changed), and the disk usage of the regular files in it, two levels deep (what
//! kubeha may copy: kubeconfigs, kubeadm config, certificates, manifests; or, for the module cache,
//! the binaries already there). Read-only.

use nix::sys::statvfs::statvfs;
use nix::unistd::{access, AccessFlags};
use serde_json::{json, Value};
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// The facts of one directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirSpace {
    pub path: PathBuf,
    /// `path` itself when it exists, else its nearest existing ancestor.
    pub nearest: PathBuf,
    pub free_kb: u64,
    pub writable: bool,
    /// Disk usage (allocated blocks, as `du`) of the regular files in `path` and one level below.
    pub files_kb: u64,
}

impl DirSpace {
    pub fn to_json(&self) -> Value {
        json!({
            "nearest": self.nearest.display().to_string(),
            "exists": self.nearest == self.path,
            "free_kb": self.free_kb,
            "writable": self.writable,
            "files_kb": self.files_kb,
        })
    }
}

/// Look at `path`; `Err` with a sentence when even its nearest existing ancestor cannot be read.
pub fn look(path: &Path) -> Result<DirSpace, String> {
    let mut nearest = path.to_path_buf();
    while !nearest.is_dir() {
        match nearest.parent() {
            Some(parent) => nearest = parent.to_path_buf(),
            None => {
                return Err(format!(
                    "{}: no existing directory above it",
                    path.display()
                ))
            }
        }
    }
    let stat = statvfs(&nearest)
        .map_err(|e| format!("{}: cannot read the free space ({e})", nearest.display()))?;
    let free_kb =
        (stat.blocks_available() as u64).saturating_mul(stat.fragment_size() as u64) / 1024;
    let writable = access(&nearest, AccessFlags::W_OK).is_ok();
    let files_kb = if nearest == path {
        usage_kb(path, 2)
    } else {
        0
    };
    Ok(DirSpace {
        path: path.to_path_buf(),
        nearest,
        free_kb,
        writable,
        files_kb,
    })
}

/// Allocated size of the regular files in `dir` down to `depth` levels (1 = only `dir`'s own files).
fn usage_kb(dir: &Path, depth: u32) -> u64 {
    let Ok(entries) = fs::read_dir(dir) else {
        return 0;
    };
    let mut total = 0;
    for entry in entries.flatten() {
        // symlink_metadata: a link is not followed (kubespray's pki -> ssl would count twice)
        let Ok(meta) = entry.path().symlink_metadata() else {
            continue;
        };
        if meta.is_file() {
            total += meta.blocks() * 512 / 1024;
        } else if meta.is_dir() && depth > 1 {
            total += usage_kb(&entry.path(), depth - 1);
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_directory_is_judged_by_its_nearest_existing_ancestor() {
        let tmp = tempfile::tempdir().unwrap();
        let missing = tmp.path().join("var/lib/kubeha");
        let d = look(&missing).unwrap();
        assert_eq!(d.nearest, tmp.path());
        assert_eq!(d.files_kb, 0);
        assert!(d.free_kb > 0);
        assert!(d.writable);
        assert_eq!(d.to_json()["exists"], json!(false));
    }

    #[test]
    fn files_two_levels_deep_are_counted_and_links_are_not_followed() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        fs::create_dir_all(root.join("ssl/deeper")).unwrap();
        fs::write(root.join("admin.conf"), vec![b'x'; 64 * 1024]).unwrap();
        fs::write(root.join("ssl/apiserver.crt"), vec![b'x'; 32 * 1024]).unwrap();
        // three levels down: not counted
        fs::write(root.join("ssl/deeper/big"), vec![b'x'; 512 * 1024]).unwrap();
        std::os::unix::fs::symlink(root.join("ssl"), root.join("pki")).unwrap();
        let d = look(root).unwrap();
        assert!((96..200).contains(&d.files_kb), "{}", d.files_kb);
        assert_eq!(d.to_json()["exists"], json!(true));
    }
}
