//! One `advance` step, for schedulers: take the lease, read the gates over the window since the
//! last call, let the one state machine decide, do at most one stage's move, give the lease back.
//! The progress of the bake stays in the state item between calls, so `failure_threshold`, `bake`,
//! `max_hold` and `on_failure` mean what they mean to a running `rollout`.

use serde::Serialize;

use crate::error::Result;
use crate::exit;
use crate::model::{Reading, RouteView, Verdict};
use crate::rollout::decide::Decision;
use crate::rollout::engine::{Driver, Flow};
use crate::rollout::open::{Entry, Opening};
use crate::rollout::outcome::{Action, End, Outcome};
use crate::rollout::ports::{Gates, Store, Traffic};

/// How a call that moved traffic moved it.
#[derive(Clone, Copy)]
enum Moved {
    /// Started a rollout: stage 1.
    Started,
    /// One stage on.
    Advanced,
    /// Finished the write a stopped run had begun.
    Finished,
}

/// What one call did.
#[derive(Clone, Debug, Serialize)]
pub struct Step {
    pub action: Action,
    pub message: String,
    pub exit_code: i32,
    /// The stage reached after the call.
    pub stage: usize,
    pub routes: Vec<RouteView>,
    pub readings: Vec<Reading>,
    /// What the shadow gates would have done this call.
    pub shadow: Vec<crate::rollout::decide::Shadow>,
}

impl<T: Traffic, G: Gates, S: Store> Driver<'_, T, G, S> {
    fn where_(&self) -> String {
        let stage = self.progress.stage;
        if stage == 0 {
            "before the first shift".into()
        } else {
            format!("at stage {stage}/{} ({} {}%)", self.rules.stages.len(), self.candidate, self.rules.percent(stage))
        }
    }

    /// Until when the freeze lasts: the latest `until` of the frozen readings (UTC times of one
    /// format, so their order is the strings'), when every one says it.
    fn frozen_until(&self) -> Option<String> {
        let frozen = self.readings.iter().filter(|r| r.verdict == Verdict::Frozen && !r.shadow);
        let until: Option<Vec<String>> =
            frozen.map(|r| r.evidence.as_ref()?.get("until")?.as_str().map(String::from)).collect();
        until?.into_iter().max()
    }

    fn step_of(&self, action: Action, message: String, exit_code: i32) -> Step {
        Step {
            action,
            message,
            exit_code,
            stage: self.progress.stage,
            routes: self.views.clone(),
            readings: self.readings.clone(),
            shadow: self.shadows.clone(),
        }
    }

    fn step_of_end(&self, end: End) -> Step {
        let (action, message) = match end.outcome {
            Outcome::Completed => (Action::Completed, format!("rollout completed: all traffic on {}", end.to)),
            Outcome::RolledBack => {
                (Action::RolledBack, format!("ROLLED BACK to {}: {}", end.from, end.reason.clone().unwrap_or_default()))
            }
            Outcome::Paused => {
                (Action::Paused, format!("PAUSED {}: {}", self.where_(), end.reason.clone().unwrap_or_default()))
            }
            Outcome::Held => (
                Action::Held,
                format!("HELD {}: {}; the rollout is paused", self.where_(), end.reason.clone().unwrap_or_default()),
            ),
            Outcome::NothingToDo | Outcome::Interrupted => {
                (Action::NothingToDo, end.reason.clone().unwrap_or_default())
            }
        };
        Step {
            action,
            message,
            exit_code: end.exit_code,
            stage: end.stage,
            routes: end.routes,
            readings: end.readings,
            shadow: end.shadow,
        }
    }

    /// One scheduled step.
    pub async fn step(mut self, opening: Opening<T::Routes>) -> Result<Step> {
        let entry = opening.entry;
        self.enter(entry, false, opening.pending.as_ref()).await?;
        if let Some(pending) = opening.pending {
            let before = self.progress.stage;
            let flow = self.resume(pending).await;
            return self.finish_step(flow, before, Moved::Finished, None).await;
        }
        let ctx = self.gate_context(Some(self.window_start()));
        let readings = self.gates.read(&ctx).await;
        let decision = self.decide(readings);
        let before = self.progress.stage;
        let waiting = match &decision {
            Decision::Bake { remaining } => {
                let bake = self.rules.bake_of(before);
                let why = if bake > self.rules.bake { " (the records' DNS TTL)" } else { "" };
                Some(format!(
                    "not yet time: {}, baked {} of {}{why}",
                    self.where_(),
                    humantime::format_duration(std::time::Duration::from_secs((bake - *remaining).as_secs())),
                    humantime::format_duration(bake)
                ))
            }
            Decision::Hold { reason, .. } => Some(format!("holding {}: gates inconclusive ({reason})", self.where_())),
            Decision::Pending { reason } => Some(format!("not yet time: {}, {reason}", self.where_())),
            Decision::Frozen { reason, .. } => Some(match self.frozen_until() {
                Some(until) => format!("frozen until {until} {}: {reason}", self.where_()),
                None => format!("frozen {}: {reason}", self.where_()),
            }),
            Decision::Watch { reason } => Some(format!("watching {}: {reason}", self.where_())),
            _ => None,
        };
        let flow = self.act(decision).await;
        let moved = if entry == Entry::Fresh && before == 0 { Moved::Started } else { Moved::Advanced };
        self.finish_step(flow, before, moved, waiting).await
    }

    /// Says what the call did: the run's end, a stage moved (`moved`), or why it waits.
    async fn finish_step(&mut self, flow: Flow, before: usize, moved: Moved, waiting: Option<String>) -> Result<Step> {
        if let Flow::Done(end) = flow {
            if end.is_err() {
                self.let_go().await;
            }
            return Ok(self.step_of_end(end?));
        }
        self.release().await;
        let stages = self.rules.stages.len();
        let (action, message) = match (waiting, moved) {
            (Some(why), _) => (Action::NotYet, why),
            (None, _) if self.progress.stage == before => {
                (Action::NotYet, format!("could not move on {} this time; the next call tries again", self.where_()))
            }
            (None, Moved::Started) => (
                Action::Started,
                format!("started {} → {}: stage 1/{stages} at {}%", self.stable, self.candidate, self.rules.percent(1)),
            ),
            (None, Moved::Advanced) => (
                Action::Advanced,
                format!(
                    "stage {}/{stages}: {} at {}%",
                    self.progress.stage,
                    self.candidate,
                    self.rules.percent(self.progress.stage)
                ),
            ),
            (None, Moved::Finished) => {
                (Action::Advanced, format!("finished the write a stopped run had begun: {}", self.where_()))
            }
        };
        Ok(self.step_of(action, message, exit::OK))
    }

    /// Gives the lease back at the end of a call.
    async fn release(&mut self) {
        if let Err(e) = self.ledger.release_lease(self.clock.now_ms()).await {
            tracing::warn!(error = %e, "could not release the lease; it expires by itself");
        }
    }

    /// What a step would do, doing nothing: reads the gates and decides on a copy.
    pub async fn preview(mut self, opening: Opening<T::Routes>) -> Step {
        let ctx = self.gate_context(Some(self.window_start()));
        let readings = self.gates.read(&ctx).await;
        if let Some(p) = opening.pending {
            return self.step_of(
                Action::DryRun,
                format!("would finish the write a stopped run had begun ({p:?})"),
                exit::OK,
            );
        }
        let what = match self.decide(readings) {
            Decision::Shift { stage } if opening.entry == Entry::Fresh && stage == 1 => {
                format!("would start a rollout {} → {} at {}%", self.stable, self.candidate, self.rules.percent(1))
            }
            Decision::Shift { stage } => format!(
                "would move {} to {}% (stage {stage}/{})",
                self.candidate,
                self.rules.percent(stage),
                self.rules.stages.len()
            ),
            Decision::Complete => "would mark the rollout completed".into(),
            Decision::Bake { remaining } => format!(
                "would wait: {} left to bake {}",
                humantime::format_duration(std::time::Duration::from_secs(remaining.as_secs())),
                self.where_()
            ),
            Decision::Hold { reason, .. } => format!("would hold {}: {reason}", self.where_()),
            Decision::Pending { reason } => format!("would wait {}: {reason}", self.where_()),
            Decision::Frozen { reason, .. } => format!("would hold {}, frozen: {reason}", self.where_()),
            Decision::Watch { reason } => format!("would watch {}: {reason}", self.where_()),
            Decision::Fail { gate, detail, action } => {
                format!(
                    "would {} : {}",
                    if action == crate::rollout::decide::OnFailure::Rollback { "roll back" } else { "pause" },
                    self.failure_reason(&gate, &detail)
                )
            }
            Decision::HeldTooLong { reason, .. } => {
                format!("would pause the rollout: gates inconclusive past max_hold ({reason})")
            }
        };
        self.step_of(Action::DryRun, what, exit::OK)
    }
}
