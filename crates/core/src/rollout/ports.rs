//! What the rollout core needs of the world, as traits: traffic (read every route, write them all
//! to one split), gates (read them all), and the state store. The splitters, the gate kinds and the
//! DynamoDB table implement them; the core's tests script them.

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::error::Error;
use crate::model::{Percent, Reading, RouteView, Side};
pub use crate::rollout::clock::Clock;
use crate::rollout::record::{AuditEntry, RolloutState};

/// Why a traffic read or write did not do what was asked.
#[derive(Debug)]
pub enum TrafficError {
    /// Throttled, a 5xx, a dropped connection, a deadline reached: nothing or part was written
    /// and the next attempt may succeed. Read again before writing again.
    Transient(String),
    /// The routes are not as this run read them: someone else moved traffic (a compare-and-swap
    /// refused by Route53, or a read-back showing weights this run did not write).
    Conflict(String),
    /// Retrying will not help: a route the profile names wrongly, a missing permission.
    Failed(Error),
}

impl std::fmt::Display for TrafficError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TrafficError::Transient(m) => write!(f, "{m}"),
            TrafficError::Conflict(m) => write!(f, "{m}"),
            TrafficError::Failed(e) => write!(f, "{e}"),
        }
    }
}

impl From<TrafficError> for Error {
    fn from(e: TrafficError) -> Error {
        match e {
            TrafficError::Failed(e) => e,
            TrafficError::Transient(m) => Error::Other(m),
            TrafficError::Conflict(m) => Error::Drift { message: m, hint: None },
        }
    }
}

/// How a write is sent.
#[derive(Clone, Copy, Debug)]
pub struct WriteGuard {
    /// Route53: send the record sets as read as DELETE + CREATE, so that the batch fails whole
    /// when any of them changed since (AWS refuses a DELETE whose values differ). Rollbacks write
    /// without it: they must win.
    pub compare: bool,
    /// No request is sent after this instant.
    pub deadline: Option<tokio::time::Instant>,
}

impl WriteGuard {
    /// A write that must land whatever was written meanwhile.
    pub const BLIND: WriteGuard = WriteGuard { compare: false, deadline: None };
}

/// Every route of a profile.
#[allow(async_fn_in_trait)]
pub trait Traffic {
    /// The routes as read: their splits and whatever a write needs to keep the rest of them.
    type Routes: Clone;

    fn views(routes: &Self::Routes) -> Vec<RouteView>;

    /// Reads every route.
    async fn read(&self) -> Result<Self::Routes, TrafficError>;

    /// Reads what a write needs, knowing `last`: the routes as this run's last write left them.
    /// A backend whose writes are conditional may answer from `last` (a stale copy makes the
    /// write fail, never land); by default, every route is read.
    async fn reread(&self, last: &Self::Routes) -> Result<Self::Routes, TrafficError> {
        let _ = last;
        self.read().await
    }

    /// Changes each time a write is accepted by the service (before it is confirmed applied), for
    /// a caller that acts the moment traffic is moving; `None` when the backend cannot tell.
    fn accepted(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        None
    }

    /// Moves every route of `routes` (as read) that is not there yet to `percent` on `side`, then
    /// reads them back. Part-way failures are not undone: each route holds its old or its new
    /// split, and the caller decides.
    async fn write(
        &self,
        routes: &Self::Routes,
        side: Side,
        percent: Percent,
        guard: WriteGuard,
    ) -> Result<Self::Routes, TrafficError>;
}

/// What a gate is told when it is read.
#[derive(Clone, Debug, Serialize)]
pub struct GateContext {
    pub profile: String,
    /// The side traffic moves to.
    pub candidate: Side,
    /// The side that had all traffic when the rollout began.
    pub stable: Side,
    /// The candidate's share now, and the share the next step would give it.
    pub current_percent: Percent,
    pub next_percent: Option<Percent>,
    /// 0 before the first shift; 1-based stage index otherwise.
    pub stage: usize,
    pub stages: usize,
    /// How long the current stage has run (read windows of metric gates start no earlier).
    #[serde(skip)]
    pub stage_age: Duration,
    /// How long the next stage would bake: a calendar that closes before then holds the move.
    #[serde(skip)]
    pub next_bake: Duration,
    /// For a scheduled `advance`: read what happened since then (alarm history), not only now.
    #[serde(skip)]
    pub since: Option<SystemTime>,
}

impl GateContext {
    /// What the gates of a rollout from `stable` to `candidate` are told at `now_ms`, its stage
    /// and bake as `progress` says, reading what happened `since` then.
    pub fn at(
        profile: &str,
        (stable, candidate): (Side, Side),
        rules: &crate::rollout::decide::Rules,
        progress: &crate::rollout::decide::Progress,
        now_ms: u64,
        since: Option<SystemTime>,
    ) -> GateContext {
        let stage = progress.stage;
        GateContext {
            profile: profile.to_string(),
            candidate,
            stable,
            current_percent: rules.percent(stage),
            next_percent: rules.stages.get(stage).copied(),
            stage,
            stages: rules.stages.len(),
            stage_age: Duration::from_millis(now_ms.saturating_sub(progress.stage_reached_ms)),
            next_bake: if stage < rules.stages.len() { rules.bake_of(stage + 1) } else { Duration::ZERO },
            since,
        }
    }
}

/// What rides on the routes while a rollout runs, beside the weights: the preview record pointed
/// at the candidate, the safety net's health checks on its records. Put in place once the gates
/// passed before the first shift — a refusal writes nothing — and taken away when the rollout is
/// over.
pub trait Attachments {
    /// Before the first shift to `candidate`: says whether it wrote the routes (a run then reads
    /// them again before its write).
    fn attach(&self, candidate: Side) -> Pin<Box<dyn Future<Output = Result<bool, Error>> + '_>>;
    /// The rollout is over (completed, rolled back, aborted): the records as they were. A failure
    /// is the implementation's to say; traffic is where it should be.
    fn detach(&self) -> Pin<Box<dyn Future<Output = ()> + '_>>;
}

/// Nothing rides on the routes.
impl Attachments for () {
    fn attach(&self, _: Side) -> Pin<Box<dyn Future<Output = Result<bool, Error>> + '_>> {
        Box::pin(async { Ok(false) })
    }

    fn detach(&self) -> Pin<Box<dyn Future<Output = ()> + '_>> {
        Box::pin(async {})
    }
}

/// The profile's gates, read all at once.
#[allow(async_fn_in_trait)]
pub trait Gates {
    async fn read(&self, ctx: &GateContext) -> Vec<Reading>;
}

/// Why the state store did not do what was asked.
#[derive(Debug)]
pub enum StoreError {
    /// A conditional write found another version.
    Conflict,
    /// Throttled, a 5xx, unreachable (after the SDK's retries): try again.
    Unavailable(String),
    /// No table, no permission, an item that cannot be read.
    Failed(Error),
}

/// Where the rollout state lives: one item per profile.
#[allow(async_fn_in_trait)]
pub trait Store {
    /// The item, read strongly consistent; `None` when no rollout was ever recorded.
    async fn load(&self) -> Result<Option<RolloutState>, StoreError>;
    /// Writes the item if its version is still `expected` (`None`: if there is none).
    async fn save(&self, state: &RolloutState, expected: Option<u64>) -> Result<(), StoreError>;

    /// [`Store::save`], with `entry` appended to the audit trail in the same request: both land or
    /// neither. A store without an audit trail writes the item alone.
    async fn save_noted(
        &self,
        state: &RolloutState,
        expected: Option<u64>,
        entry: Option<&AuditEntry>,
    ) -> Result<(), StoreError> {
        let _ = entry;
        self.save(state, expected).await
    }

    /// Appends `entry` to the audit trail on its own (a rollback with no rollout recorded):
    /// `Ok(false)` for a store without an audit trail.
    async fn append(&self, entry: &AuditEntry) -> Result<bool, StoreError> {
        let _ = entry;
        Ok(false)
    }
}
