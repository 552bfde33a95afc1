//! One file per command. Each takes the resolved [`Settings`] and its own resolved arguments
//! ([`Invocation`]), does its pre-checks (which write nothing), then its writes, and returns the
//! exit code after printing its result.

pub mod advance;
pub mod discover;
pub mod history;
pub mod iam_policy;
pub mod pause;
pub mod promote;
pub mod rollback;
pub mod rollout;
pub mod set;
pub mod shared;
pub mod state_init;
pub mod status;
pub mod validate;
pub mod waves;

use std::time::Duration;

use crate::error::Result;
use crate::rollout::engine::OnInterrupt;
use crate::settings::Settings;

/// A command of a profile with its arguments resolved: typed, defaults applied, ready to run.
/// The command line becomes one of these once (`app.rs`); nothing later reads a flag again.
pub enum Invocation {
    Validate,
    Status {
        watch: Option<Duration>,
    },
    Set(set::Args),
    Rollout(rollout::Args),
    Advance(advance::Args),
    Rollback(rollback::Args),
    Promote {
        dry_run: bool,
        force: bool,
    },
    /// `pause` (true) or `resume` (false).
    Pause {
        pause: bool,
        dry_run: bool,
    },
    History {
        limit: usize,
    },
    IamPolicy {
        read_only: bool,
        /// `--for state-init`: the policy of `state init` instead of the everyday one.
        state_init: bool,
    },
    StateInit {
        dry_run: bool,
    },
}

impl Invocation {
    /// Runs the command; returns the exit code.
    pub async fn execute(self, s: &Settings) -> Result<i32> {
        match self {
            Invocation::Validate => validate::run(s).await,
            Invocation::Status { watch } => status::run(s, watch).await,
            Invocation::Set(args) => set::run(s, args).await,
            Invocation::Rollout(args) => rollout::run(s, args).await,
            Invocation::Advance(args) => advance::run(s, args).await,
            Invocation::Rollback(args) => rollback::run(s, args).await,
            Invocation::Promote { dry_run, force } => promote::run(s, dry_run, force).await,
            Invocation::Pause { pause, dry_run } => pause::run(s, pause, dry_run).await,
            Invocation::History { limit } => history::run(s, limit).await,
            Invocation::IamPolicy { read_only, state_init } => iam_policy::run(s, read_only, state_init).await,
            Invocation::StateInit { dry_run } => state_init::run(s, dry_run).await,
        }
    }
}

/// How a stopped run treats traffic, as `--on-interrupt` says.
pub fn on_interrupt(leave: bool) -> OnInterrupt {
    if leave { OnInterrupt::Leave } else { OnInterrupt::Rollback }
}
