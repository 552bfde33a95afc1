//! The ledger: the one writer of a profile's rollout state.
//!
//! The state item says who is stable and who the candidate is, the stage reached and the progress
//! of its bake, the split last confirmed, the status, the lease of the run driving the rollout, and
//! the **claims**: every traffic write toward the candidate is claimed in the item, with a deadline,
//! before it is sent. Every write of the item is conditional on the version it read, so two
//! writers never both succeed from one read.
//!
//! The protocol that lets `rollback` win: a run claims a write (conditional: the rollout is still
//! progressing and the lease is its own) and sends nothing once the claim's deadline has passed. A
//! rollback restores traffic, marks the rollout aborted (after which no claim can be made), then
//! re-asserts the stable split until every claim that was open has passed its deadline or been
//! released. So nothing claimed can land after it returns.

use std::time::Duration;

use crate::error::Error;
use crate::model::{Percent, RouteView, Side};
use crate::rollout::decide::Progress;
use crate::rollout::ports::{Store, StoreError};
pub use crate::rollout::record::{
    AuditEntry, Claim, ClaimKind, LAND_MARGIN, Lease, RolloutState, RouteWeights, Status, fmt_ms, new_id,
};

/// Why a run may no longer drive the rollout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Loss {
    /// Someone rolled it back (or `set --force`).
    Aborted { reason: Option<String> },
    /// Someone paused it.
    Paused { reason: Option<String> },
    /// It was completed (promoted) meanwhile.
    Completed,
    /// Another run holds the lease.
    Taken { holder: String, until_ms: u64 },
    /// The state item is gone, or belongs to another rollout now.
    Superseded,
}

impl Loss {
    pub fn message(&self) -> String {
        match self {
            Loss::Aborted { reason } => format!(
                "the rollout was aborted{}: stopping without writing",
                reason.as_ref().map(|r| format!(" ({r})")).unwrap_or_default()
            ),
            Loss::Paused { reason } => format!(
                "the rollout was paused{}: stopping, traffic left where it is",
                reason.as_ref().map(|r| format!(" ({r})")).unwrap_or_default()
            ),
            Loss::Completed => "the rollout was completed by another run".into(),
            Loss::Taken { holder, until_ms } => {
                format!("another run holds the rollout: {holder} (lease until {})", fmt_ms(*until_ms))
            }
            Loss::Superseded => "the rollout state was replaced by another rollout".into(),
        }
    }
}

/// What went wrong with the state.
#[derive(Debug)]
pub enum LedgerError {
    /// This run may no longer drive the rollout.
    Lost(Loss),
    /// The table could not be read or written this time (after the SDK's retries): try again.
    Unavailable(String),
    /// Anything that retrying will not mend (no permission, no table, an unreadable item).
    Failed(Error),
}

impl std::fmt::Display for LedgerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LedgerError::Lost(l) => f.write_str(&l.message()),
            LedgerError::Unavailable(m) => write!(f, "the rollout state is unavailable: {m}"),
            LedgerError::Failed(e) => write!(f, "{e}"),
        }
    }
}

impl From<LedgerError> for Error {
    fn from(e: LedgerError) -> Error {
        match e {
            LedgerError::Lost(Loss::Paused { .. }) => Error::Paused { message: e.to_string() },
            LedgerError::Lost(_) => Error::Locked { message: e.to_string() },
            LedgerError::Unavailable(m) => Error::Other(format!("the rollout state is unavailable: {m}")),
            LedgerError::Failed(e) => e,
        }
    }
}

/// How a rollout ends, as the ledger records it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ending {
    /// All traffic on the candidate, which becomes the stable side.
    Completed,
    /// Traffic back on the stable side; no run moves it again.
    Aborted { reason: String },
    /// Traffic left at the stage; `resume` releases it.
    Paused { reason: String },
}

/// A fresh rollout to record.
pub struct Start<'a> {
    pub stable: Side,
    pub stages: &'a [Percent],
    pub progress: Progress,
    pub routes: &'a [RouteView],
}

/// The one writer of a profile's state item, for one process.
pub struct Ledger<S: Store> {
    store: S,
    /// This process's lease holder id.
    me: String,
    lease: Duration,
    /// The item as last read or written by this ledger.
    current: Option<RolloutState>,
    /// An audit entry handed to [`Ledger::abort_noted`] is in the trail.
    noted: bool,
}

/// A write of the item failed: the reason, already classified.
fn store_error(e: StoreError) -> LedgerError {
    match e {
        StoreError::Conflict => LedgerError::Unavailable("conflicting write".into()),
        StoreError::Unavailable(m) => LedgerError::Unavailable(m),
        StoreError::Failed(e) => LedgerError::Failed(e),
    }
}

impl<S: Store> Ledger<S> {
    pub fn new(store: S, me: String, lease: Duration) -> Ledger<S> {
        Ledger { store, me, lease, current: None, noted: false }
    }

    /// This run's lease holder id.
    pub fn me(&self) -> &str {
        &self.me
    }

    /// The lease length.
    pub fn lease_len(&self) -> Duration {
        self.lease
    }

    /// The item as last read or written.
    pub fn state(&self) -> Option<&RolloutState> {
        self.current.as_ref()
    }

    /// Reads the item (strongly consistent).
    pub async fn load(&mut self) -> Result<Option<&RolloutState>, LedgerError> {
        self.current = self.store.load().await.map_err(store_error)?;
        Ok(self.current.as_ref())
    }

    /// Whether the audit entry handed to [`Ledger::abort_noted`] was written (with the abort, or
    /// on its own when no rollout was recorded).
    pub fn noted(&self) -> bool {
        self.noted
    }

    fn lease_from(&self, now_ms: u64) -> Lease {
        Lease { holder: self.me.clone(), expires_ms: now_ms.saturating_add(self.lease_ms()) }
    }

    /// The lease in milliseconds (a profile bounds it to an hour; never wrapping whatever it is).
    fn lease_ms(&self) -> u64 {
        u64::try_from(self.lease.as_millis()).unwrap_or(u64::MAX)
    }

    /// Until when this run's lease is known to hold (as last written).
    pub fn lease_until(&self) -> Option<u64> {
        self.current.as_ref()?.lease.as_ref().filter(|l| l.holder == self.me).map(|l| l.expires_ms)
    }

    /// Whether this run must stop driving because its lease has run out unrenewed.
    pub fn lease_lapsed(&self, now_ms: u64) -> bool {
        self.lease_until().is_none_or(|until| until <= now_ms)
    }

    /// Writes `next` if the item is still at `expected`. A conflict whose item turns out to be
    /// this very write (its first attempt landed, its answer was lost) is a success.
    async fn put(&mut self, next: RolloutState, expected: Option<u64>, now_ms: u64) -> Result<(), StoreError> {
        self.put_noted(next, expected, now_ms, None).await
    }

    /// [`Ledger::put`], with an audit entry in the same write.
    async fn put_noted(
        &mut self,
        mut next: RolloutState,
        expected: Option<u64>,
        now_ms: u64,
        entry: Option<&AuditEntry>,
    ) -> Result<(), StoreError> {
        next.version = expected.map_or(1, |v| v + 1);
        next.updated_ms = now_ms;
        next.nonce = new_id();
        match self.store.save_noted(&next, expected, entry).await {
            Ok(()) => {
                self.current = Some(next);
                Ok(())
            }
            Err(StoreError::Conflict) => match self.store.load().await {
                Ok(Some(found)) if found.version == next.version && found.nonce == next.nonce => {
                    self.current = Some(next);
                    Ok(())
                }
                Ok(found) => {
                    self.current = found;
                    Err(StoreError::Conflict)
                }
                Err(_) => Err(StoreError::Conflict),
            },
            Err(e) => Err(e),
        }
    }

    /// Why `s` no longer lets this run drive it, if it does not.
    fn not_ours(&self, s: &RolloutState, now_ms: u64) -> Option<Loss> {
        match s.status {
            Status::Aborted => return Some(Loss::Aborted { reason: s.reason.clone() }),
            Status::Paused => return Some(Loss::Paused { reason: s.reason.clone() }),
            Status::Completed => return Some(Loss::Completed),
            Status::Progressing => {}
        }
        s.lease_held_by_other(&self.me, now_ms)
            .map(|l| Loss::Taken { holder: l.holder.clone(), until_ms: l.expires_ms })
    }

    /// The item this run drives, as last read: the same rollout, still its to drive.
    fn driven(&self, id: &str, now_ms: u64) -> Result<RolloutState, LedgerError> {
        let cur = self.current.clone().filter(|s| s.id == id).ok_or(LedgerError::Lost(Loss::Superseded))?;
        match self.not_ours(&cur, now_ms) {
            Some(loss) => Err(LedgerError::Lost(loss)),
            None => Ok(cur),
        }
    }

    /// Applies `edit` to the item this run drives (renewing the lease), conditionally; after a
    /// conflicting write it re-reads and, while the run may still drive the rollout, tries again.
    async fn drive(&mut self, now_ms: u64, edit: impl Fn(&mut RolloutState)) -> Result<(), LedgerError> {
        let id = self.current.as_ref().map(|s| s.id.clone()).ok_or(LedgerError::Lost(Loss::Superseded))?;
        for _ in 0..3 {
            let cur = self.driven(&id, now_ms)?;
            let mut next = cur.clone();
            next.lease = Some(self.lease_from(now_ms));
            edit(&mut next);
            match self.put(next, Some(cur.version), now_ms).await {
                Ok(()) => return Ok(()),
                Err(StoreError::Conflict) => continue,
                Err(e) => return Err(store_error(e)),
            }
        }
        Err(LedgerError::Unavailable("the rollout state kept changing".into()))
    }

    /// Records a fresh rollout and takes its lease. Conditional on the item last loaded (or on
    /// there being none): a run that started meanwhile wins, this one gets [`Loss::Taken`].
    pub async fn begin(&mut self, start: Start<'_>, now_ms: u64) -> Result<(), LedgerError> {
        let expected = self.current.as_ref().map(|s| s.version);
        if let Some(s) = &self.current {
            if let Some(l) = s.lease_held_by_other(&self.me, now_ms) {
                return Err(LedgerError::Lost(Loss::Taken { holder: l.holder.clone(), until_ms: l.expires_ms }));
            }
            if let Some(c) = s.open_claims(now_ms).find(|c| c.holder != self.me) {
                return Err(LedgerError::Lost(Loss::Taken { holder: c.holder.clone(), until_ms: c.lands_by_ms() }));
            }
        }
        let next = RolloutState {
            version: 0,
            id: new_id(),
            stable: start.stable,
            candidate: start.stable.other(),
            status: Status::Progressing,
            stages: start.stages.to_vec(),
            progress: start.progress,
            weights: RouteWeights::of(start.routes),
            claims: Vec::new(),
            lease: Some(self.lease_from(now_ms)),
            started_ms: now_ms,
            updated_ms: now_ms,
            reason: None,
            nonce: String::new(),
        };
        match self.put(next, expected, now_ms).await {
            Ok(()) => Ok(()),
            Err(StoreError::Conflict) => Err(LedgerError::Lost(match &self.current {
                Some(s) => match &s.lease {
                    Some(l) => Loss::Taken { holder: l.holder.clone(), until_ms: l.expires_ms },
                    None => Loss::Superseded,
                },
                None => Loss::Superseded,
            })),
            Err(e) => Err(store_error(e)),
        }
    }

    /// Takes the lease of the progressing rollout last loaded, recording where its stage stands
    /// (a run taking over bakes the stage again; `--force` may have moved it). Claims whose writes
    /// can no longer land are dropped.
    pub async fn take(&mut self, progress: Progress, now_ms: u64) -> Result<(), LedgerError> {
        self.drive(now_ms, |s| {
            s.progress = progress.clone();
            s.claims.retain(|c| c.lands_by_ms() > now_ms);
        })
        .await
    }

    /// Re-reads the item and renews the lease once past half its life. `Ok` while this run may
    /// go on driving.
    pub async fn sync(&mut self, now_ms: u64) -> Result<(), LedgerError> {
        let id = self.current.as_ref().map(|s| s.id.clone()).ok_or(LedgerError::Lost(Loss::Superseded))?;
        self.current = self.store.load().await.map_err(store_error)?;
        self.driven(&id, now_ms)?;
        let half = self.lease_ms() / 2;
        if self.lease_until().is_none_or(|until| now_ms.saturating_add(half) >= until) {
            self.drive(now_ms, |_| {}).await
        } else {
            Ok(())
        }
    }

    /// Renews the lease without re-reading (during a long write).
    pub async fn renew(&mut self, now_ms: u64) -> Result<(), LedgerError> {
        self.drive(now_ms, |_| {}).await
    }

    /// Claims a write: returns its id. The claim's deadline is within the lease it renews.
    pub async fn claim(&mut self, kind: ClaimKind, deadline_ms: u64, now_ms: u64) -> Result<Claim, LedgerError> {
        let deadline_ms = deadline_ms.min(now_ms.saturating_add(self.lease_ms()));
        let claim = Claim { id: new_id(), holder: self.me.clone(), kind, deadline_ms };
        let c = claim.clone();
        self.drive(now_ms, move |s| {
            // An earlier claim whose write failed this time stays while that write may land.
            s.claims.retain(|x| x.lands_by_ms() > now_ms);
            s.claims.push(c.clone());
        })
        .await?;
        Ok(claim)
    }

    /// A claimed forward write landed: `stage` is reached, its bake starts, the claim is done.
    pub async fn land(
        &mut self,
        claim: &Claim,
        stage: usize,
        routes: &[RouteView],
        now_ms: u64,
    ) -> Result<(), LedgerError> {
        let weights = RouteWeights::of(routes);
        self.drive(now_ms, |s| {
            s.claims.retain(|c| c.id != claim.id);
            s.progress = Progress::at(stage, now_ms);
            s.weights = weights.clone();
        })
        .await
    }

    /// Withdraws this run's claim after its write has ended, whatever the rollout's status (a
    /// rollback waiting on it can then return sooner). Best effort: the deadline bounds it anyway.
    pub async fn release(&mut self, claim: &Claim, now_ms: u64) {
        for _ in 0..3 {
            let Some(cur) = self.current.clone() else { return };
            if !cur.claims.iter().any(|c| c.id == claim.id) {
                return;
            }
            let mut next = cur.clone();
            next.claims.retain(|c| c.id != claim.id);
            match self.put(next, Some(cur.version), now_ms).await {
                Ok(()) => return,
                Err(StoreError::Conflict) => continue,
                Err(_) => return,
            }
        }
    }

    /// Records the progress of the stage's bake, when it changed. Unless `reading_time` (what
    /// `advance` needs: its next call reads the gates' history since this reading), a change of
    /// the reading's time alone is not written: a run that takes a stage over bakes it again
    /// anyway, and an older reading time only widens the window the next call reads.
    pub async fn save_progress(
        &mut self,
        progress: &Progress,
        now_ms: u64,
        reading_time: bool,
    ) -> Result<(), LedgerError> {
        let recorded = |s: &RolloutState| {
            if reading_time {
                s.progress == *progress
            } else {
                Progress { read_ms: progress.read_ms, ..s.progress.clone() } == *progress
            }
        };
        if self.current.as_ref().is_some_and(recorded) {
            return Ok(());
        }
        self.drive(now_ms, |s| s.progress = progress.clone()).await
    }

    /// Ends the rollout this run drives: releases the lease and its claims.
    pub async fn end(&mut self, ending: &Ending, routes: &[RouteView], now_ms: u64) -> Result<(), LedgerError> {
        let weights = RouteWeights::of(routes);
        let me = self.me.clone();
        self.drive(now_ms, |s| {
            s.weights = weights.clone();
            s.lease = None;
            s.claims.retain(|c| still_landing(c, &me, now_ms));
            match ending {
                Ending::Completed => {
                    s.status = Status::Completed;
                    s.stable = s.candidate;
                    s.candidate = s.stable.other();
                    s.progress = Progress::at(s.stages.len(), now_ms);
                    s.reason = None;
                }
                Ending::Aborted { reason } => {
                    s.status = Status::Aborted;
                    s.progress = Progress::at(0, now_ms);
                    s.reason = Some(reason.clone());
                }
                Ending::Paused { reason } => {
                    s.status = Status::Paused;
                    s.reason = Some(reason.clone());
                }
            }
        })
        .await
    }

    /// Lets go of the lease, leaving the rollout as it is (a scheduled step done, a run stopping).
    pub async fn release_lease(&mut self, now_ms: u64) -> Result<(), LedgerError> {
        let Some(cur) = self.current.clone() else { return Ok(()) };
        if cur.lease.as_ref().is_none_or(|l| l.holder != self.me) {
            return Ok(());
        }
        let mut next = cur.clone();
        next.lease = None;
        next.claims.retain(|c| still_landing(c, &self.me, now_ms));
        self.put(next, Some(cur.version), now_ms).await.map_err(store_error)
    }

    /// `rollback` (and `set --force`): marks the rollout aborted with all traffic on `to`,
    /// whatever the lease, retrying lost races and an unavailable table for at most `within`.
    /// Returns the claims that were open when the abort was recorded: their writes may still land
    /// until their deadlines. `None` when no rollout was ever recorded.
    pub async fn abort(
        &mut self,
        to: Side,
        reason: &str,
        routes: &[RouteView],
        within: Duration,
        now: impl Fn() -> u64,
    ) -> Result<Option<Vec<Claim>>, LedgerError> {
        self.abort_noted(to, reason, routes, within, now, None).await
    }

    /// [`Ledger::abort`], with `entry` written to the audit trail in the same request as the
    /// abort (a rollback's line: it lands exactly when the abort does).
    pub async fn abort_noted(
        &mut self,
        to: Side,
        reason: &str,
        routes: &[RouteView],
        within: Duration,
        now: impl Fn() -> u64,
        entry: Option<&AuditEntry>,
    ) -> Result<Option<Vec<Claim>>, LedgerError> {
        let weights = RouteWeights::of(routes);
        let mut last = String::new();
        let started = tokio::time::Instant::now();
        let give_up = started.checked_add(within).unwrap_or(started);
        for attempt in 0..100u32 {
            if attempt > 0 && tokio::time::Instant::now() >= give_up {
                break;
            }
            if attempt > 0 || self.current.is_none() {
                // No rollout known: the item is read again (one may have begun since the
                // command's read) and, at once, the entry goes to the trail as a line of its own —
                // one round trip, beside the traffic write's propagation, not two after it.
                let line = entry.filter(|_| attempt == 0 && self.current.is_none());
                let append = async {
                    match line {
                        Some(e) => Some(self.store.append(e).await),
                        None => None,
                    }
                };
                let (loaded, appended) = tokio::join!(self.store.load(), append);
                match appended {
                    Some(Ok(written)) => self.noted = written,
                    Some(Err(e)) => tracing::warn!(error = ?e, "could not write the rollback's audit line"),
                    None => {}
                }
                match loaded {
                    Ok(s) => self.current = s,
                    Err(StoreError::Unavailable(m)) => {
                        last = m;
                        tokio::time::sleep(backoff(attempt)).await;
                        continue;
                    }
                    Err(e) => return Err(store_error(e)),
                }
            }
            let Some(cur) = self.current.clone() else { return Ok(None) };
            let now_ms = now();
            let mut next = cur.clone();
            if next.status.is_active() {
                next.status = Status::Aborted;
                next.reason = Some(reason.to_string());
            }
            next.stable = to;
            next.candidate = to.other();
            next.progress = Progress::at(0, now_ms);
            next.weights = weights.clone();
            next.lease = None;
            next.drop_impossible_claims(now_ms);
            // An entry already in the trail (written beside the read) is not written twice.
            let with = entry.filter(|_| !self.noted);
            match self.put_noted(next, Some(cur.version), now_ms, with).await {
                Ok(()) => {
                    self.noted |= with.is_some();
                    return Ok(self.current.as_ref().map(|s| s.forward_writes_open(now_ms)));
                }
                Err(StoreError::Conflict) => last = "the rollout state kept changing".into(),
                Err(StoreError::Unavailable(m)) => {
                    last = m;
                    tokio::time::sleep(backoff(attempt)).await;
                }
                Err(e) => return Err(store_error(e)),
            }
        }
        Err(LedgerError::Unavailable(last))
    }

    /// Re-reads the item: the claims still open now (a rollback waiting on them).
    pub async fn open_claims(&mut self, now_ms: u64) -> Result<Vec<Claim>, LedgerError> {
        self.load().await?;
        Ok(self.current.as_ref().map(|s| s.forward_writes_open(now_ms)).unwrap_or_default())
    }

    /// `pause` / `resume`: flips a progressing rollout to paused or back. Returns the item
    /// written, or `Ok(None)` with the item unchanged when its status is not the one to flip.
    pub async fn set_paused(
        &mut self,
        pause: bool,
        reason: Option<String>,
        now: impl Fn() -> u64,
    ) -> Result<Option<RolloutState>, LedgerError> {
        let (from, to) =
            if pause { (Status::Progressing, Status::Paused) } else { (Status::Paused, Status::Progressing) };
        for attempt in 0..10u32 {
            self.load().await?;
            let Some(cur) = self.current.clone() else { return Ok(None) };
            if cur.status != from {
                return Ok(None);
            }
            let now_ms = now();
            let mut next = cur.clone();
            next.status = to;
            next.reason = reason.clone();
            if !pause {
                // The stage bakes again from now: nobody watched it while it was paused.
                next.progress.rebake(now_ms);
            }
            match self.put(next, Some(cur.version), now_ms).await {
                Ok(()) => return Ok(self.current.clone()),
                Err(StoreError::Conflict) => continue,
                Err(StoreError::Unavailable(_)) => tokio::time::sleep(backoff(attempt)).await,
                Err(e) => return Err(store_error(e)),
            }
        }
        Err(LedgerError::Unavailable("the rollout state kept changing; try again".into()))
    }

    /// Records a split set by hand when no rollout is active (`set`): the weights last written.
    pub async fn record_split(&mut self, routes: &[RouteView], now_ms: u64) -> Result<(), LedgerError> {
        let Some(cur) = self.current.clone() else { return Ok(()) };
        let mut next = cur.clone();
        next.weights = RouteWeights::of(routes);
        self.put(next, Some(cur.version), now_ms).await.map_err(|e| match e {
            StoreError::Conflict => LedgerError::Unavailable("the rollout state changed meanwhile".into()),
            e => store_error(e),
        })
    }
}

/// Whether a claim must stay when its run lets go of the rollout: another run's, or a forward
/// write of this one that failed this time and may still land. (A write that ended — landed or
/// refused — was released already; a rollback this run began needs no one to wait for it.)
fn still_landing(c: &Claim, me: &str, now_ms: u64) -> bool {
    c.holder != me || (matches!(c.kind, ClaimKind::Forward { .. }) && c.lands_by_ms() > now_ms)
}

/// A short pause between attempts at the state table: 100 ms doubling to 2 s.
pub fn backoff(attempt: u32) -> Duration {
    Duration::from_millis((100u64 << attempt.min(5)).min(2000))
}

/// A state store in memory: profiles without `[state]` (the run's own progress, nothing shared),
/// and the engine's unit tests, where a test holding a clone plays the other writer.
#[derive(Clone, Default)]
pub struct MemoryStore {
    item: std::sync::Arc<std::sync::Mutex<Option<RolloutState>>>,
}

impl MemoryStore {
    /// The item as stored now.
    pub fn get(&self) -> Option<RolloutState> {
        self.item.lock().expect("memory store").clone()
    }

    /// Replaces the item as another writer would: conditional on nothing, bumping the version.
    pub fn update(&self, edit: impl FnOnce(&mut RolloutState)) {
        let mut guard = self.item.lock().expect("memory store");
        if let Some(s) = guard.as_mut() {
            edit(s);
            s.version += 1;
            s.nonce = new_id();
        }
    }
}

impl Store for MemoryStore {
    async fn load(&self) -> Result<Option<RolloutState>, StoreError> {
        Ok(self.get())
    }

    async fn save(&self, state: &RolloutState, expected: Option<u64>) -> Result<(), StoreError> {
        let mut guard = self.item.lock().expect("memory store");
        if guard.as_ref().map(|s| s.version) != expected {
            return Err(StoreError::Conflict);
        }
        *guard = Some(state.clone());
        Ok(())
    }
}
