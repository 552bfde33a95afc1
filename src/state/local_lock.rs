//! The lock of a profile without `[state]`: a lock file on this machine, held with the operating
//! system's file lock (std's `File::try_lock`, a `flock` on Unix) for as long as the process runs.
//! A second `rollout` or `set` of the same traffic on this machine is refused (exit 5) naming the
//! pid that holds it; the lock goes with the process, however it ends. Runs on other machines
//! are not excluded — only the state table does that.
//!
//! The file is per profile name and the traffic it moves (the routes' identities, hashed), in
//! `$XDG_RUNTIME_DIR/cutover/`, else `$XDG_STATE_HOME/cutover/` or `~/.local/state/cutover/`,
//! else the temporary directory's `cutover-locks/`.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::PathBuf;

use crate::error::{Error, Result};

/// What a profile without `[state]` says about concurrent runs (`validate`, a run's first line).
pub const NOT_ACROSS_MACHINES: &str = "no [state] table: a lock file keeps a second run on this machine out; runs on other machines are not excluded (add [state] and run `cutover state init` for that)";

/// A held lock file: released when dropped (or when the process ends).
#[derive(Debug)]
pub struct LocalLock {
    _file: File,
    pub path: PathBuf,
}

/// Where lock files live.
fn dir() -> PathBuf {
    let env = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    if let Some(d) = env("XDG_RUNTIME_DIR") {
        return d.join("cutover");
    }
    if let Some(d) = env("XDG_STATE_HOME") {
        return d.join("cutover");
    }
    if let Some(home) = env("HOME") {
        return home.join(".local/state/cutover");
    }
    std::env::temp_dir().join("cutover-locks")
}

/// FNV-1a, 64 bits: a name for the routes that stays the same from one build to the next.
fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

/// The lock file of profile `name` moving `routes`.
pub fn path(name: &str, routes: &[String]) -> PathBuf {
    let safe: String =
        name.chars().map(|c| if c.is_ascii_alphanumeric() || "-_.".contains(c) { c } else { '_' }).take(64).collect();
    dir().join(format!("{safe}-{:016x}.lock", fnv1a(&routes.join("\n"))))
}

impl LocalLock {
    /// Takes the lock of profile `name` moving `routes`, or refuses (exit 5) naming the pid that
    /// holds it. A lock file that cannot be made (a read-only disk) is warned about, not fatal:
    /// `Ok(None)`.
    pub fn acquire(name: &str, routes: &[String]) -> Result<Option<LocalLock>> {
        let path = path(name, routes);
        let opened = path
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|()| OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&path));
        let mut file = match opened {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot make the lock file; runs on this machine are not excluded");
                return Ok(None);
            }
        };
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = crate::terminal::one_line(holder.trim());
                let pid = if holder.is_empty() { "a process".to_string() } else { format!("pid {holder}") };
                return Err(Error::Locked {
                    message: format!(
                        "another run of `{name}` holds the rollout on this machine: {pid} (lock file {}); nothing changed\nhint: the profile has no [state] table, so only runs on this machine are kept out; wait for that run to end, or `cutover rollback` (never locked)",
                        path.display()
                    ),
                });
            }
            Err(TryLockError::Error(e)) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot lock the lock file; runs on this machine are not excluded");
                return Ok(None);
            }
        }
        let written = file.set_len(0).and_then(|()| file.rewind()).and_then(|()| {
            write!(file, "{}", std::process::id())?;
            file.flush()
        });
        if let Err(e) = written {
            tracing::debug!(error = %e, "writing the pid into the lock file");
        }
        Ok(Some(LocalLock { _file: file, path }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lock_file_is_named_by_the_profile_and_its_routes_and_stays_the_same_between_builds() {
        let a = path("svc", &["alb arn:1".into()]);
        assert_eq!(a, path("svc", &["alb arn:1".into()]));
        assert_ne!(a, path("svc", &["alb arn:2".into()]), "other traffic, another lock");
        assert!(a.file_name().unwrap().to_str().unwrap().starts_with("svc-"));
        assert!(path("../x/y", &[]).file_name().unwrap().to_str().unwrap().starts_with(".._x_y-"));
        assert_eq!(fnv1a(""), 0xcbf2_9ce4_8422_2325);
    }
}
