//! What makes a profile unusable, said with the file and the key path. A leaf: it names nothing
//! else of cutover but the core's error, which it becomes (exit 2).

use std::path::PathBuf;

/// A profile file that cannot be used. Nothing is changed when one is found.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    #[error("no profile given\nhint: pass `-p NAME` or set CUTOVER_PROFILE{}", known_hint(.known))]
    NoneGiven { known: Vec<String> },
    #[error(
        "profile `{name}` not found in {}{}\nhint: give a path (`-p ./my.toml`), or point `--profiles-dir` (or CUTOVER_PROFILES_DIR) at its folder",
        folders(.dirs),
        known_hint(.known)
    )]
    NotFound { name: String, dirs: Vec<PathBuf>, known: Vec<String> },
    #[error("cannot read profile {}: {source}", .path.display())]
    Read { path: PathBuf, source: std::io::Error },
    #[error("invalid profile {}: {}{message}{}", .path.display(), at(.key), hint_text(.hint))]
    Invalid { path: PathBuf, key: String, message: String, hint: Option<String> },
}

fn folders(dirs: &[PathBuf]) -> String {
    dirs.iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(", then ")
}

fn known_hint(known: &[String]) -> String {
    if known.is_empty() { String::new() } else { format!(" (known: {})", known.join(", ")) }
}

fn at(key: &str) -> String {
    if key.is_empty() || key == "." { String::new() } else { format!("at `{key}`: ") }
}

fn hint_text(hint: &Option<String>) -> String {
    hint.as_ref().map(|h| format!("\nhint: {h}")).unwrap_or_default()
}

impl From<ProfileError> for crate::error::Error {
    fn from(e: ProfileError) -> crate::error::Error {
        crate::error::Error::Profile(Box::new(e))
    }
}
