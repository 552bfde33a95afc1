//! The core's typed errors. Each maps to one documented exit code (see [`crate::exit`]).

use crate::exit;

/// Why a command did not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The profile could not be found or read, or is invalid (the profile's own error, which says
    /// the file and the key path).
    #[error(transparent)]
    Profile(Box<dyn std::error::Error + Send + Sync + 'static>),

    /// Bad usage, or a resource the profile names is not what it must be. Nothing was changed.
    #[error("{message}{}", hint_line(.hint))]
    Refused { message: String, hint: Option<String> },

    /// The live split is not what it should be; refused without `--force`.
    #[error("{message}{}", hint_line(.hint))]
    Drift { message: String, hint: Option<String> },

    /// A gate failed (or waits) before a shift: nothing was moved.
    #[error("{message}")]
    Gate { message: String, held: bool },

    /// Another run holds the rollout, or the state changed under this run.
    #[error("{message}")]
    Locked { message: String },

    /// The rollout is paused or held: nothing was moved.
    #[error("{message}")]
    Paused { message: String },

    /// An AWS call failed (after the SDK's retries). `transient`: throttled, a 5xx, a timeout or
    /// a connection that failed — another attempt later may succeed.
    #[error("{action}: {message}")]
    Aws { action: String, message: String, transient: bool },

    /// A write failed part-way and putting things back failed too: traffic may be split.
    #[error("{message}")]
    SplitUnknown { message: String },

    /// Anything else that should not happen.
    #[error("{0}")]
    Other(String),
}

fn hint_line(hint: &Option<String>) -> String {
    hint.as_ref().map(|h| format!("\nhint: {h}")).unwrap_or_default()
}

impl Error {
    pub fn refused(message: impl Into<String>) -> Error {
        Error::Refused { message: message.into(), hint: None }
    }

    pub fn refused_hint(message: impl Into<String>, hint: impl Into<String>) -> Error {
        Error::Refused { message: message.into(), hint: Some(hint.into()) }
    }

    /// A refusal that something regional was not found names the region it was looked for in:
    /// the commonest reason is a shell or profile aimed at another region. (Route53's hosted zones
    /// and records are global.)
    pub fn in_region(self, region: Option<&str>) -> Error {
        match (self, region) {
            (Error::Refused { message, hint }, Some(region))
                if message.contains("not found") && !message.contains("hosted zone") =>
            {
                Error::Refused { message: format!("{message} (looked up in region {region})"), hint }
            }
            (e, _) => e,
        }
    }

    /// The error with `note` on a line of its own after its message (an AWS failure's, or a
    /// refusal's); other errors as they are.
    pub fn noted(self, note: &str) -> Error {
        match self {
            Error::Aws { action, message, transient } => {
                Error::Aws { action, message: format!("{message}\n{note}"), transient }
            }
            Error::Refused { message, hint } => Error::Refused { message: format!("{message}\n{note}"), hint },
            other => other,
        }
    }

    /// Whether trying again later may succeed (an AWS call throttled, failed with a 5xx, timed out
    /// or could not connect).
    pub fn is_transient(&self) -> bool {
        matches!(self, Error::Aws { transient: true, .. })
    }

    /// The process exit code this error ends a command with.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Profile(_) | Error::Refused { .. } => exit::USAGE,
            Error::Drift { .. } => exit::DRIFT,
            Error::SplitUnknown { .. } => exit::SPLIT_UNKNOWN,
            Error::Gate { held: true, .. } => exit::HELD,
            Error::Locked { .. } => exit::LOCKED,
            Error::Paused { .. } => exit::HELD,
            Error::Gate { held: false, .. } => exit::ROLLED_BACK,
            Error::Aws { .. } | Error::Other(_) => exit::UNEXPECTED,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
