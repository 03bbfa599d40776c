//! Holding the local kube-apiserver down for a drill: kubelet restarts a killed static pod at
//! once, so the drill moves the manifest OUT of the manifests directory (a backup left inside
//! would be run by kubelet) into a park directory beside it, and always moves it back: on success,
//! on failure, on SIGTERM/SIGINT/SIGHUP of the module (the signal only sets a flag; the drill loop
//! stops and the restore runs), on a panic (Drop), and, if the module was SIGKILLed, at the start
//! of the next run ([`restore_leftover`]).

use crate::error::{Error, Result};
use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: nix::libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// Catch SIGTERM, SIGINT and SIGHUP: they set a flag the drill polls.
pub fn catch_signals() -> Result<()> {
    let action = SigAction::new(
        SigHandler::Handler(on_signal),
        SaFlags::empty(),
        SigSet::empty(),
    );
    for sig in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        unsafe { sigaction(sig, &action) }
            .map_err(|e| Error::Refused(format!("cannot install a {sig} handler: {e}")))?;
    }
    Ok(())
}

/// Whether a termination signal arrived.
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// The manifest's path and its parked path.
#[derive(Debug, Clone)]
pub struct ParkPaths {
    pub manifest: PathBuf,
    pub parked: PathBuf,
}

impl ParkPaths {
    pub fn new(manifests_dir: &Path, park_dir: &Path, file: &str) -> ParkPaths {
        ParkPaths {
            manifest: manifests_dir.join(file),
            parked: park_dir.join(file),
        }
    }
}

fn move_file(from: &Path, to: &Path) -> Result<()> {
    match fs::rename(from, to) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(nix::libc::EXDEV) => {
            let content = crate::fsio::read(from)?;
            let attrs = crate::fsio::FileAttrs::of(from)?;
            crate::fsio::write_new(to, &content, attrs)?;
            fs::remove_file(from).map_err(|e| Error::io(from, "remove", e))?;
        }
        Err(e) => {
            return Err(Error::Refused(format!(
                "cannot move {} to {}: {e}",
                from.display(),
                to.display()
            )))
        }
    }
    for dir in [from.parent(), to.parent()].into_iter().flatten() {
        if let Ok(d) = fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

/// A manifest parked by an earlier, killed drill is put back. Returns what was done.
pub fn restore_leftover(paths: &ParkPaths, check_mode: bool) -> Result<Option<String>> {
    if !paths.parked.exists() {
        return Ok(None);
    }
    if paths.manifest.exists() {
        return Err(Error::Refused(format!(
            "{} exists and so does {} (left by an interrupted drill); compare them, keep the right one in the manifests directory and delete the other, then rerun",
            paths.manifest.display(),
            paths.parked.display()
        )));
    }
    if check_mode {
        return Ok(Some(format!(
            "would restore {} from {} (left by an interrupted drill)",
            paths.manifest.display(),
            paths.parked.display()
        )));
    }
    move_file(&paths.parked, &paths.manifest)?;
    Ok(Some(format!(
        "restored {} from {} (left by an interrupted drill)",
        paths.manifest.display(),
        paths.parked.display()
    )))
}

/// A parked manifest; dropping it puts the manifest back if [`Parked::restore`] was not called.
pub struct Parked {
    paths: ParkPaths,
    restored: bool,
}

impl Parked {
    /// Move the manifest into the park directory (created 0700).
    pub fn park(paths: &ParkPaths) -> Result<Parked> {
        if !paths.manifest.exists() {
            return Err(Error::Refused(format!(
                "{} does not exist: this host does not run kube-apiserver as a static pod; the drill needs a control-plane host",
                paths.manifest.display()
            )));
        }
        if let Some(dir) = paths.parked.parent() {
            if !dir.exists() {
                fs::create_dir_all(dir)
                    .map_err(|e| Error::io(dir, "create the drill park directory", e))?;
                use std::os::unix::fs::PermissionsExt;
                fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
                    .map_err(|e| Error::io(dir, "set the mode of", e))?;
            }
        }
        move_file(&paths.manifest, &paths.parked)?;
        Ok(Parked {
            paths: paths.clone(),
            restored: false,
        })
    }

    /// Put the manifest back.
    pub fn restore(mut self) -> Result<()> {
        self.restored = true;
        move_file(&self.paths.parked, &self.paths.manifest)
    }
}

impl Drop for Parked {
    fn drop(&mut self) {
        if !self.restored {
            let _ = move_file(&self.paths.parked, &self.paths.manifest);
        }
    }
}
