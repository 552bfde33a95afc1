//! The one event vocabulary: what a rollout (and every command that moves traffic or changes the
//! rollout state) tells while it runs. Reporters render events on stderr; the audit trail and the
//! notifications are sinks of the same stream and record the events that are **transitions** — so
//! what a person reads, what `history` lists and what SNS publishes can never disagree.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use crate::model::{Percent, Reading, RouteView, Side};
use crate::rollout::outcome::Outcome;

/// One thing that happened.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum Event {
    /// A rollout began, or a run took over a recorded one (`resume_at`).
    Started {
        profile: String,
        from: Side,
        to: Side,
        stages: Vec<Percent>,
        resume_at: Option<usize>,
        routes: Vec<RouteView>,
        /// Set when the records' DNS TTL makes each stage bake longer than `bake`.
        #[serde(skip_serializing_if = "Option::is_none")]
        dns_ttl_secs: Option<u64>,
    },
    GatesRead {
        stage: usize,
        readings: Vec<Reading>,
        fails: BTreeMap<String, u32>,
    },
    Baking {
        stage: usize,
        #[serde(with = "secs")]
        remaining: Duration,
    },
    Held {
        stage: usize,
        reason: String,
        #[serde(with = "secs")]
        left: Duration,
    },
    /// Every route moved to a stage.
    StageApplied {
        stage: usize,
        stages: usize,
        side: Side,
        percent: Percent,
        before: Vec<RouteView>,
        routes: Vec<RouteView>,
    },
    /// A run took over at a stage already live: it bakes again.
    StageResumed {
        stage: usize,
        stages: usize,
        side: Side,
        percent: Percent,
    },
    StageBaked {
        stage: usize,
        stages: usize,
        percent: Percent,
    },
    /// Something failed this time (throttled, unreachable); tried again at the next poll.
    Retrying {
        what: String,
        error: String,
    },
    RollingBack {
        to: Side,
        reason: String,
    },
    /// The rollout rolled itself back: all traffic on the stable side, the rollout aborted.
    RolledBack {
        to: Side,
        reason: String,
        before: Vec<RouteView>,
        routes: Vec<RouteView>,
    },
    /// The rollout stopped with traffic left where it is: a gate failed with `on_failure =
    /// "pause"`, gates waited past `max_hold`, or the run was interrupted.
    Halted {
        why: Halt,
        stage: usize,
        reason: String,
        routes: Vec<RouteView>,
    },
    /// All traffic on the candidate, which is the stable side now.
    Completed {
        side: Side,
        stage: usize,
        routes: Vec<RouteView>,
    },
    /// `rollback`: all traffic on `to`; `aborted` when a rollout was recorded and is now aborted.
    Rollback {
        to: Side,
        by: String,
        /// `rollback --reason TEXT`: why the person rolled back, in their words.
        reason: Option<String>,
        aborted: bool,
        before: Vec<RouteView>,
        routes: Vec<RouteView>,
    },
    /// `set`: every route moved to one split by hand.
    Set {
        side: Side,
        percent: Percent,
        aborted: bool,
        before: Vec<RouteView>,
        routes: Vec<RouteView>,
    },
    /// `promote`: all traffic on the candidate, which becomes the stable side.
    Promoted {
        side: Side,
        before: Vec<RouteView>,
        routes: Vec<RouteView>,
    },
    /// `pause` / `resume`.
    /// A shadow gate would have acted (rolled back, paused, held a shift): nothing was done.
    Shadow {
        #[serde(flatten)]
        note: crate::rollout::decide::Shadow,
    },
    /// A calendar holds a baked stage (a change freeze): said once when the hold begins.
    Frozen {
        stage: usize,
        reason: String,
    },
    /// `--override-freeze`: a command moves traffic although a calendar forbids it.
    FreezeOverridden {
        reason: String,
        by: String,
        routes: Vec<RouteView>,
    },
    PauseChanged {
        paused: bool,
        stage: usize,
        reason: Option<String>,
        routes: Vec<RouteView>,
    },
    Ended {
        outcome: Outcome,
        reason: Option<String>,
    },
}

/// Why a rollout halted with traffic left where it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Halt {
    /// A gate failed and `on_failure = "pause"`.
    Paused,
    /// Gates inconclusive past `max_hold`.
    Held,
    /// Ctrl-C or SIGTERM with `--on-interrupt leave`.
    Interrupted,
}

/// A transition, as the audit trail and notifications record it.
#[derive(Clone, Debug)]
pub struct Transition<'a> {
    /// The audit action (`history`): `started`, `stage`, `rolled-back`, …
    pub action: &'static str,
    /// The notification's event name: `started`, `stage-reached`, `rolled-back`, …
    pub notify: &'static str,
    pub before: &'a [RouteView],
    pub after: &'a [RouteView],
    pub why: Option<String>,
    pub stage: Option<usize>,
    /// Who acted, when a person did: notifications name them; the audit trail has its own actor
    /// field and never repeats it inside `why`.
    pub by: Option<&'a str>,
    /// The reason the person gave (`rollback --reason`).
    pub reason: Option<&'a str>,
}

impl Event {
    /// The transition this event records, if it is one.
    pub fn transition(&self) -> Option<Transition<'_>> {
        let t = |action, notify, before, after, why: Option<String>, stage| {
            Some(Transition { action, notify, before, after, why, stage, by: None, reason: None })
        };
        match self {
            Event::Started { from, to, routes, resume_at: None, .. } => {
                t("started", "started", routes, routes, Some(format!("rollout {from} → {to}")), Some(0))
            }
            Event::StageApplied { stage, side, percent, before, routes, .. } => t(
                "stage",
                "stage-reached",
                before,
                routes,
                Some(format!("stage {stage}: {side} {percent}%")),
                Some(*stage),
            ),
            Event::RolledBack { reason, before, routes, .. } => {
                t("rolled-back", "rolled-back", before, routes, Some(reason.clone()), None)
            }
            Event::Halted { why, stage, reason, routes } => {
                let action = match why {
                    Halt::Paused => "paused",
                    Halt::Held => "held",
                    Halt::Interrupted => "interrupted",
                };
                t(action, action, routes, routes, Some(reason.clone()), Some(*stage))
            }
            Event::Completed { side, stage, routes } => {
                t("completed", "completed", routes, routes, Some(format!("all traffic on {side}")), Some(*stage))
            }
            Event::Rollback { to, by, reason, aborted, before, routes } => {
                let why = if *aborted {
                    format!("all traffic on {to}; the rollout is marked aborted")
                } else {
                    format!("all traffic on {to}")
                };
                t("rollback", "rolled-back", before, routes, Some(why), None).map(|t| Transition {
                    by: Some(by),
                    reason: reason.as_deref(),
                    ..t
                })
            }
            Event::Set { side, percent, aborted, before, routes } => {
                let why = format!(
                    "set {side}={percent}%{}",
                    if *aborted { "; the rollout in progress is aborted (--force)" } else { "" }
                );
                t("set", "set", before, routes, Some(why), None)
            }
            Event::Promoted { side, before, routes } => t(
                "promote",
                "completed",
                before,
                routes,
                Some(format!("all traffic on {side}, now the stable side")),
                None,
            ),
            Event::Frozen { stage, reason } => t("frozen", "frozen", &[], &[], Some(reason.clone()), Some(*stage)),
            Event::Shadow { note } => t(
                "shadow",
                "shadow",
                &[],
                &[],
                Some(format!("{} {} at stage {}: {}", note.gate, note.would, note.stage, note.reading)),
                Some(note.stage),
            ),
            Event::FreezeOverridden { reason, by, routes } => t(
                "freeze-overridden",
                "freeze-overridden",
                routes,
                routes,
                Some("a change freeze overridden".into()),
                None,
            )
            .map(|t| Transition { by: Some(by), reason: Some(reason), ..t }),
            Event::PauseChanged { paused, stage, reason, routes } => {
                // `pause` records "paused by WHO" in the state; the audit entry has its own actor
                // field, so who paused goes to notifications only.
                let by = reason.as_deref().and_then(|r| r.strip_prefix("paused by "));
                let (action, why) = if *paused {
                    let why = match (by, reason) {
                        (None, Some(r)) => r.clone(),
                        _ => "the rollout is paused".into(),
                    };
                    ("pause", why)
                } else {
                    ("resume", "the rollout is progressing".into())
                };
                t(action, if *paused { "paused" } else { "resume" }, routes, routes, Some(why), Some(*stage))
                    .map(|t| Transition { by, ..t })
            }
            _ => None,
        }
    }
}

mod secs {
    pub fn serialize<S: serde::Serializer>(d: &std::time::Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64((d.as_secs_f64() * 10.0).round() / 10.0)
    }
}

/// Receives events: a reporter, the audit trail, the notifier.
pub trait Sink {
    fn event(&mut self, event: &Event);
}

/// Several sinks as one.
#[derive(Default)]
pub struct Fanout(pub Vec<Box<dyn Sink + Send>>);

impl Sink for Fanout {
    fn event(&mut self, event: &Event) {
        for s in &mut self.0 {
            s.event(event);
        }
    }
}

/// Events kept in memory (the core's tests).
#[derive(Default)]
pub struct Recorded(pub Vec<Event>);

impl Sink for Recorded {
    fn event(&mut self, event: &Event) {
        self.0.push(event.clone());
    }
}
