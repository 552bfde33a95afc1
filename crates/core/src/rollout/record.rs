//! What the rollout state is made of, as it is stored: the state item of a profile (stable side,
//! candidate, status, stages, progress, the split last confirmed, claims, lease, version) and the
//! lines of its append-only audit trail. The ledger ([`super::ledger`]) is their only writer; a
//! store (the DynamoDB table) keeps them.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::model::{Percent, RouteView, Weights};
use crate::rollout::clock::Clock;
use crate::rollout::decide::Progress;
use crate::rollout::events::Event;

/// Where a rollout stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Progressing,
    Paused,
    Aborted,
    Completed,
}

impl Status {
    /// A rollout that is not over: `set` refuses to move its traffic, `advance` goes on with it.
    pub fn is_active(self) -> bool {
        matches!(self, Status::Progressing | Status::Paused)
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Status::Progressing => "progressing",
            Status::Paused => "paused",
            Status::Aborted => "aborted",
            Status::Completed => "completed",
        })
    }
}

/// One route's weights as recorded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteWeights {
    pub name: String,
    pub blue: u32,
    pub green: u32,
}

impl RouteWeights {
    pub fn of(routes: &[RouteView]) -> Vec<RouteWeights> {
        routes
            .iter()
            .map(|r| RouteWeights { name: r.name.clone(), blue: r.weights.blue, green: r.weights.green })
            .collect()
    }

    pub fn weights(&self) -> Weights {
        Weights::new(self.blue, self.green)
    }
}

/// Who drives the rollout, until when.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    pub holder: String,
    /// Milliseconds since the Unix epoch.
    pub expires_ms: u64,
}

/// What a claimed write does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum ClaimKind {
    /// Moves every route to this stage, toward the candidate.
    Forward { stage: usize },
    /// Puts all traffic back on the stable side (a rollback the run started itself).
    Restore,
}

/// A traffic write announced before it is sent. Nothing of it is sent after `deadline_ms`; a
/// request sent just before may still land a little later, which [`LAND_MARGIN`] covers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claim {
    pub id: String,
    pub holder: String,
    #[serde(flatten)]
    pub kind: ClaimKind,
    pub deadline_ms: u64,
}

impl Claim {
    /// Until when a write of this claim may still land.
    pub fn lands_by_ms(&self) -> u64 {
        self.deadline_ms.saturating_add(LAND_MARGIN.as_millis() as u64)
    }
}

/// How long after its send deadline a write may still reach AWS and be applied (a request in
/// transit when the client gave up, clocks of two hosts a little apart).
pub const LAND_MARGIN: Duration = Duration::from_secs(2);

/// The longest lease a profile may give (`[state] lease`): no claim or lease cutover writes lies
/// further ahead than this (and [`LAND_MARGIN`]). One that does was written by something else.
pub const MAX_LEASE: Duration = Duration::from_secs(3600);

/// The furthest ahead of `now_ms` a lease or a claim cutover wrote can end.
fn horizon(now_ms: u64) -> u64 {
    now_ms.saturating_add((MAX_LEASE + LAND_MARGIN).as_millis() as u64)
}

/// The state item of one profile.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RolloutState {
    pub version: u64,
    /// Tells one rollout of a profile from the next.
    pub id: String,
    pub stable: crate::model::Side,
    pub candidate: crate::model::Side,
    pub status: Status,
    pub stages: Vec<Percent>,
    pub progress: Progress,
    /// The split last confirmed on every route.
    pub weights: Vec<RouteWeights>,
    #[serde(default)]
    pub claims: Vec<Claim>,
    pub lease: Option<Lease>,
    pub started_ms: u64,
    pub updated_ms: u64,
    pub reason: Option<String>,
    /// A token of the write that produced this version: a retried write whose first attempt
    /// succeeded recognises its own work instead of reporting a conflict.
    #[serde(default)]
    pub nonce: String,
}

impl RolloutState {
    /// The lease, when someone other than `me` holds it at `now_ms`.
    pub fn lease_held_by_other(&self, me: &str, now_ms: u64) -> Option<&Lease> {
        self.lease.as_ref().filter(|l| l.holder != me && l.expires_ms > now_ms)
    }

    /// Claims whose writes may still land at `now_ms`.
    pub fn open_claims(&self, now_ms: u64) -> impl Iterator<Item = &Claim> {
        self.claims.iter().filter(move |c| c.lands_by_ms() > now_ms)
    }

    /// The writes toward the candidate that may still land at `now_ms`: what a rollback waits on
    /// (a rollback a run began needs no waiting).
    pub fn forward_writes_open(&self, now_ms: u64) -> Vec<Claim> {
        // A claim past any lease no cutover made: nothing waits on it (`problem_at` reports it).
        self.open_claims(now_ms)
            .filter(|c| matches!(c.kind, ClaimKind::Forward { .. }) && c.lands_by_ms() <= horizon(now_ms))
            .cloned()
            .collect()
    }

    /// The candidate's share at the stage reached; none once the rollout is over (a completed
    /// one has made its candidate the stable side).
    pub fn percent(&self) -> Percent {
        match self.status {
            Status::Completed | Status::Aborted => Percent::ZERO,
            _ if self.progress.stage == 0 => Percent::ZERO,
            // Past the stages (an item no cutover wrote, see `problem`): as far as it says.
            _ => self.stages.get(self.progress.stage - 1).or(self.stages.last()).copied().unwrap_or(Percent::ZERO),
        }
    }

    /// What makes the item one no cutover could have written — a stage past its stages, stages
    /// that do not ascend to 100, a side that is its own candidate — or `None`. A run refuses to
    /// drive such a rollout; `rollback` restores traffic and marks it aborted all the same (which
    /// writes a sound item), and `status` says what is wrong.
    pub fn problem(&self) -> Option<String> {
        if self.stable == self.candidate {
            return Some(format!("the stable side and the candidate are both {}", self.stable));
        }
        if self.stages.is_empty() {
            return Some("the rollout has no stages".into());
        }
        if self.stages.windows(2).any(|w| w[0] >= w[1]) || self.stages.last() != Some(&Percent::FULL) {
            return Some("its stages do not ascend to 100 %".into());
        }
        if self.progress.stage > self.stages.len() {
            return Some(format!("it is at stage {} of {}", self.progress.stage, self.stages.len()));
        }
        None
    }

    /// Drops the claims no cutover could have made (ending past any lease): a rollback records a
    /// sound state.
    pub fn drop_impossible_claims(&mut self, now_ms: u64) {
        self.claims.retain(|c| c.lands_by_ms() <= horizon(now_ms));
    }

    /// [`RolloutState::problem`], and at `now_ms`: a lease or a claim ending further ahead than
    /// any lease a profile may give.
    pub fn problem_at(&self, now_ms: u64) -> Option<String> {
        if let Some(p) = self.problem() {
            return Some(p);
        }
        if self.lease.as_ref().is_some_and(|l| l.expires_ms > horizon(now_ms)) {
            return Some(format!("its lease runs past any lease ({} at most)", humantime::format_duration(MAX_LEASE)));
        }
        if self.claims.iter().any(|c| c.lands_by_ms() > horizon(now_ms)) {
            return Some(format!("a claim runs past any lease ({} at most)", humantime::format_duration(MAX_LEASE)));
        }
        None
    }
}

/// One line of the audit trail.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Milliseconds since the Unix epoch.
    pub at_ms: u64,
    pub at: String,
    /// Who acted: the caller's identity as STS says it (an ARN), never a name the caller gave.
    pub actor: String,
    /// `CUTOVER_ACTOR`, when given: who the caller says it acts for — an annotation beside the
    /// ARN, not verified.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor_note: Option<String>,
    pub action: String,
    pub before: Vec<RouteWeights>,
    pub after: Vec<RouteWeights>,
    pub why: Option<String>,
    pub stage: Option<usize>,
    /// The rollout the entry belongs to (the state item's `id`): the entries of one rollout told
    /// from the next. Absent on entries written before cutover recorded it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout_id: Option<String>,
    /// The reason a person gave (`rollback --reason TEXT`), in their words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Order among the entries of one process within one millisecond.
    #[serde(default)]
    pub seq: u32,
}

impl AuditEntry {
    /// The entry of `event`, if it is a transition; `actor` is filled in by whoever writes it.
    pub fn of(event: &Event, seq: u32) -> Option<AuditEntry> {
        let t = event.transition()?;
        let at_ms = Clock::new().now_ms();
        Some(AuditEntry {
            at_ms,
            at: fmt_ms(at_ms),
            actor: String::new(),
            actor_note: None,
            action: t.action.to_string(),
            before: RouteWeights::of(t.before),
            after: RouteWeights::of(t.after),
            why: t.why,
            stage: t.stage,
            rollout_id: None,
            reason: t.reason.map(String::from),
            seq,
        })
    }
}

/// An id unique enough for rollouts, claims and write tokens: time, process and a counter mixed.
pub fn new_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    let mut x = (t as u64) ^ (u64::from(std::process::id()) << 40) ^ n.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    format!("{x:016x}")
}

/// Milliseconds since the Unix epoch as an RFC 3339 time.
pub fn fmt_ms(ms: u64) -> String {
    // RFC 3339 ends at the year 9999 (and humantime will not format past it): a time read from
    // a state item no cutover wrote may lie beyond.
    const LAST_MS: u64 = 253_402_300_799_000;
    if ms > LAST_MS {
        return format!("{ms} ms after 1970 (past the year 9999)");
    }
    humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}
