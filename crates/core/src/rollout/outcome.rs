//! How a rollout run ends, and the exit code each ending means.

use serde::Serialize;

use crate::exit;
use crate::model::{Percent, Reading, RouteView, Side};

/// How a rollout ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// All traffic on the candidate.
    Completed,
    /// All traffic was on the candidate already.
    NothingToDo,
    /// A gate failed; all traffic is back on the stable side (or never left it).
    RolledBack,
    /// A gate failed and `on_failure = "pause"`: traffic left at the stage.
    Paused,
    /// Gates inconclusive for longer than `max_hold`: traffic left at the stage.
    Held,
    /// Stopped by a signal; traffic rolled back (or left, by policy).
    Interrupted,
}

impl Outcome {
    /// The exit code: an interrupted run that put traffic back says so like a rollback (3), one
    /// that left it says so like a hold (7).
    pub fn exit_code(self, rolled_back: bool) -> i32 {
        match self {
            Outcome::Completed | Outcome::NothingToDo => exit::OK,
            Outcome::RolledBack => exit::ROLLED_BACK,
            Outcome::Paused | Outcome::Held => exit::HELD,
            Outcome::Interrupted if rolled_back => exit::ROLLED_BACK,
            Outcome::Interrupted => exit::HELD,
        }
    }
}

/// What a command did, as its result says it (`action` in text and JSON).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// A rollout began: stage 1.
    Started,
    /// One stage on (or a stopped run's write finished).
    Advanced,
    /// Not yet time: baking, holding or watching; the next call goes on.
    NotYet,
    /// All traffic on the candidate, which is the stable side now.
    Completed,
    /// Traffic back on the stable side.
    RolledBack,
    /// The rollout paused (by `on_failure`, or `pause`).
    Paused,
    /// Gates inconclusive past `max_hold`: traffic left at the stage.
    Held,
    /// `pause`: the rollout marked paused.
    Pause,
    /// `resume`: the rollout released.
    Resume,
    /// `promote`: all traffic on the candidate, now the stable side.
    Promoted,
    /// Nothing was needed.
    NothingToDo,
    /// `--dry-run`: what would be done, nothing done.
    DryRun,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Started => "started",
            Action::Advanced => "advanced",
            Action::NotYet => "not-yet",
            Action::Completed => "completed",
            Action::RolledBack => "rolled-back",
            Action::Paused => "paused",
            Action::Held => "held",
            Action::Pause => "pause",
            Action::Resume => "resume",
            Action::Promoted => "promoted",
            Action::NothingToDo => "nothing-to-do",
            Action::DryRun => "dry-run",
        }
    }
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a run left things.
#[derive(Clone, Debug, Serialize)]
pub struct End {
    pub outcome: Outcome,
    pub exit_code: i32,
    pub from: Side,
    pub to: Side,
    /// The stage reached (1-based; 0 when no traffic moved or it moved back).
    pub stage: usize,
    pub stages: usize,
    /// The candidate's share at the end.
    pub percent: Percent,
    pub routes: Vec<RouteView>,
    /// Why the run ended where it did, when it did not complete.
    pub reason: Option<String>,
    /// The last gate readings.
    pub readings: Vec<Reading>,
    /// What the shadow gates would have done during the run.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub shadow: Vec<crate::rollout::decide::Shadow>,
}
