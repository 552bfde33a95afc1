//! The rollout engine: moves traffic to the candidate stage by stage, reads the gates every poll,
//! and rolls back (or pauses) when one fails. [`Driver`] holds what `rollout` (this module's
//! continuous loop) and `advance` ([`crate::rollout::scheduled`], one step per call) share: the
//! claimed write of a stage, the rollback, the endings — each recorded by the ledger and told as
//! an [`Event`].
//!
//! Faults are weather: a gate, route or state read that fails after the SDK's retries is tried
//! again at the next poll while the lease holds; a write that fails that way is claimed and sent
//! again once the routes have been read anew. The lease is renewed while a write waits. Only what
//! retrying cannot mend (a missing permission, drift, a lost lease) ends the run.

use std::future::Future;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::watch;

use crate::error::{Error, Result};
use crate::model::{Percent, Reading, RouteView, Side};
use crate::rollout::decide::{Decision, OnFailure, Progress, Rules, Shadow, decide, shadow};
use crate::rollout::events::{Event, Halt, Sink};
use crate::rollout::ledger::{Claim, ClaimKind, Ending, Ledger, LedgerError, Loss, Start, backoff};
use crate::rollout::open::{Entry, Opening, Pending};
use crate::rollout::outcome::{End, Outcome};
use crate::rollout::ports::{Attachments, Clock, GateContext, Gates, Store, Traffic, TrafficError, WriteGuard};
use crate::rollout::position::{Position, locate};
use crate::rollout::restore::{live_lines, settle};

/// What a stopped (Ctrl-C, SIGTERM) rollout does with traffic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnInterrupt {
    /// All traffic back to the stable side (the default: a stopped CI job must not leave a split).
    Rollback,
    /// Leave traffic at the stage reached; the rollout is marked paused.
    Leave,
}

/// How long a run that finds traffic moved under it waits for a rollback to record its abort
/// (it writes traffic first) before it calls the move drift.
const ABORT_GRACE: Duration = Duration::from_secs(5);

/// The parts a run drives with.
pub struct Parts<'a, T: Traffic, G: Gates, S: Store> {
    pub profile: &'a str,
    pub traffic: &'a T,
    pub gates: &'a G,
    pub ledger: &'a mut Ledger<S>,
    pub sink: &'a mut dyn Sink,
    pub clock: Clock,
    /// How long a claimed write may take to be sent (its claim's deadline).
    pub write_window: Duration,
    /// What rides on the routes while the rollout runs: attached before the first shift.
    pub attachments: &'a dyn Attachments,
}

/// How long a claimed write may be sent for: long enough for the SDK's retries of a throttled
/// write, short enough that a rollback racing it is not held long; never past half the lease.
pub fn write_window(lease: Duration) -> Duration {
    (lease / 2).clamp(Duration::from_secs(1), Duration::from_secs(20))
}

/// A step of the run: go on, or the run's end.
pub(crate) enum Flow {
    Go,
    Done(Result<End>),
}

/// One run of one rollout.
pub struct Driver<'a, T: Traffic, G: Gates, S: Store> {
    pub(crate) profile: &'a str,
    pub(crate) traffic: &'a T,
    pub(crate) gates: &'a G,
    pub(crate) ledger: &'a mut Ledger<S>,
    pub(crate) sink: &'a mut dyn Sink,
    pub(crate) clock: Clock,
    write_window: Duration,
    attachments: &'a dyn Attachments,
    pub(crate) rules: Rules,
    pub(crate) stable: Side,
    pub(crate) candidate: Side,
    pub(crate) progress: Progress,
    pub(crate) views: Vec<RouteView>,
    /// The routes as this run last read or wrote them, while nothing else of this run has
    /// written them since.
    routes: Option<T::Routes>,
    /// A `rollout` run, reading the gates every poll (not `advance`, one reading a call).
    continuous: bool,
    pub(crate) readings: Vec<Reading>,
    /// What the shadow gates would have done, this run.
    pub(crate) shadows: Vec<Shadow>,
}

impl<'a, T: Traffic, G: Gates, S: Store> Driver<'a, T, G, S> {
    pub fn new(parts: Parts<'a, T, G, S>, opening: &Opening<T::Routes>) -> Driver<'a, T, G, S> {
        Driver {
            profile: parts.profile,
            traffic: parts.traffic,
            gates: parts.gates,
            ledger: parts.ledger,
            sink: parts.sink,
            clock: parts.clock,
            write_window: parts.write_window,
            attachments: parts.attachments,
            rules: opening.rules.clone(),
            stable: opening.stable,
            candidate: opening.candidate,
            progress: opening.progress.clone(),
            views: opening.views.clone(),
            routes: None,
            continuous: false,
            readings: Vec::new(),
            shadows: Vec::new(),
        }
    }

    /// The routes as read at the opening, when nothing has written them since (the first shift
    /// then reads only what must be read again).
    pub fn with_routes(mut self, routes: T::Routes) -> Self {
        self.routes = Some(routes);
        self
    }

    fn stages(&self) -> usize {
        self.rules.stages.len()
    }

    /// The first write of the run: records a fresh rollout, or takes the lease of the recorded
    /// one (`rebake`: its stage bakes again — a run taking over, not the next scheduled call).
    pub(crate) async fn enter(&mut self, entry: Entry, rebake: bool, pending: Option<&Pending>) -> Result<()> {
        if entry == Entry::TakeOver && rebake {
            self.progress.rebake(self.clock.now_ms());
        }
        let (stable, rules, progress, views) = (self.stable, &self.rules, &self.progress, &self.views);
        let first_write = async |l: &mut Ledger<S>, now: u64| match entry {
            Entry::Fresh => {
                let start = Start { stable, stages: &rules.stages, progress: progress.clone(), routes: views };
                l.begin(start, now).await
            }
            Entry::TakeOver => l.take(progress.clone(), now).await,
        };
        retry_ledger(self.ledger, self.sink, self.clock, "record the rollout", 5, false, first_write).await?;
        // A write a stopped run left pending is where this one resumes.
        let at = match pending {
            Some(Pending::Forward { stage, .. }) => *stage,
            _ => self.progress.stage,
        };
        let resume_at = (entry == Entry::TakeOver || at > 0).then_some(at);
        self.sink.event(&Event::Started {
            profile: self.profile.to_string(),
            from: self.stable,
            to: self.candidate,
            stages: self.rules.stages.clone(),
            resume_at,
            routes: self.views.clone(),
            dns_ttl_secs: (self.rules.dns_ttl > self.rules.bake).then_some(self.rules.dns_ttl.as_secs()),
        });
        Ok(())
    }

    /// Finishes what a stopped run left half done.
    pub(crate) async fn resume(&mut self, pending: Pending) -> Flow {
        match pending {
            Pending::Forward { stage, .. } => self.shift(stage).await,
            Pending::Restore => {
                let reason = "completing the rollback that an interrupted run began".to_string();
                Flow::Done(self.roll_back(reason, Outcome::RolledBack).await)
            }
        }
    }

    /// What the gates are told.
    pub(crate) fn gate_context(&self, since: Option<SystemTime>) -> GateContext {
        let sides = (self.stable, self.candidate);
        GateContext::at(self.profile, sides, &self.rules, &self.progress, self.clock.now_ms(), since)
    }

    /// The window of the next reading, as a time (alarm history since then).
    pub(crate) fn window_start(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(self.progress.window_start_ms())
    }

    /// Takes `readings` into the state machine and says what to do.
    pub(crate) fn decide(&mut self, readings: Vec<Reading>) -> Decision {
        let now = self.clock.now_ms();
        let decision = decide(&self.rules, &mut self.progress, &readings, now);
        self.sink.event(&Event::GatesRead {
            stage: self.progress.stage,
            readings: readings.clone(),
            fails: self.progress.fails.clone(),
        });
        for note in shadow(&self.rules, &mut self.progress, &readings, &decision) {
            self.sink.event(&Event::Shadow { note: note.clone() });
            self.shadows.push(note);
        }
        self.readings = readings;
        decision
    }

    /// Something failed this time; the next poll tries again.
    fn weather(&mut self, what: String, error: String) -> Flow {
        self.sink.event(&Event::Retrying { what, error });
        Flow::Go
    }

    /// Moves every route to `stage`: reads them (never writing from a split this run did not
    /// leave), claims the write, sends it, records the stage.
    pub(crate) async fn shift(&mut self, stage: usize) -> Flow {
        let from = self.progress.stage;
        let percent = self.rules.percent(stage);
        if from == 0 {
            // The gates passed: what rides on the routes goes on before the candidate gets traffic.
            match self.attachments.attach(self.candidate).await {
                Ok(true) => self.routes = None,
                Ok(false) => {}
                Err(e) if e.is_transient() => {
                    return self.weather("attach the safety net and the preview record".into(), e.to_string());
                }
                Err(e) => return Flow::Done(Err(e)),
            }
        }
        let read = match self.routes.take() {
            Some(last) => self.traffic.reread(&last).await,
            None => self.traffic.read().await,
        };
        let routes = match read {
            Ok(r) => r,
            Err(TrafficError::Failed(e)) => return Flow::Done(Err(e)),
            Err(e) => return self.weather(format!("read the routes before stage {stage}"), e.to_string()),
        };
        let before = T::views(&routes);
        if !self.explains(&before, from, stage) {
            return Flow::Done(self.moved(&before, "the live weights changed under this run").await);
        }
        let now = self.clock.now_ms();
        let deadline = now + self.write_window.as_millis() as u64;
        let claim = match self.ledger.claim(ClaimKind::Forward { stage }, deadline, now).await {
            Ok(c) => c,
            Err(LedgerError::Lost(loss)) => return Flow::Done(self.lost(loss)),
            Err(LedgerError::Unavailable(m)) => return self.weather(format!("claim the write of stage {stage}"), m),
            Err(LedgerError::Failed(e)) => return Flow::Done(Err(e)),
        };
        let guard = WriteGuard { compare: true, deadline: Some(self.clock.instant_of(claim.deadline_ms)) };
        let write = self.traffic.write(&routes, self.candidate, percent, guard);
        let written = while_renewing(self.ledger, self.clock, write).await;
        match written {
            Ok(after) => {
                let written = after.clone();
                let after = T::views(&after);
                match self.land(&claim, stage, &after).await {
                    Ok(()) => {
                        self.routes = Some(written);
                        self.progress = Progress::at(stage, self.clock.now_ms());
                        self.views = after.clone();
                        self.sink.event(&Event::StageApplied {
                            stage,
                            stages: self.stages(),
                            side: self.candidate,
                            percent,
                            before,
                            routes: after,
                        });
                        Flow::Go
                    }
                    Err(LedgerError::Lost(loss)) => Flow::Done(self.lost_in_flight(loss, &claim, from).await),
                    Err(LedgerError::Unavailable(m)) => Flow::Done(Err(Error::Locked {
                        message: format!(
                            "stage {stage} is live, but the rollout state could not be updated before this run's lease ran out ({m}); the next run records it and goes on"
                        ),
                    })),
                    Err(LedgerError::Failed(e)) => Flow::Done(Err(e)),
                }
            }
            Err(TrafficError::Transient(m)) => self.weather(format!("write stage {stage}"), m),
            Err(TrafficError::Conflict(m)) => {
                // Refused whole (a Route53 compare-and-swap) or overwritten at once (an ALB
                // read-back): this write has ended. Was it a rollback?
                match self.ledger.sync(self.clock.now_ms()).await {
                    Err(LedgerError::Lost(loss)) => Flow::Done(self.lost_in_flight(loss, &claim, from).await),
                    _ => {
                        self.ledger.release(&claim, self.clock.now_ms()).await;
                        // An earlier write of this run that timed out on the way may have landed
                        // since the read (AWS applies what it received): a split this run's own
                        // writes explain is not someone else's, and the next poll goes on from it.
                        if let Ok(now) = self.traffic.read().await {
                            let live = T::views(&now);
                            if live != before && self.explains(&live, from, stage) {
                                return self.weather(format!("write stage {stage}"), m);
                            }
                        }
                        Flow::Done(self.moved(&before, &m).await)
                    }
                }
            }
            Err(TrafficError::Failed(e)) => Flow::Done(self.failed_write(e, &claim, from, stage).await),
        }
    }

    /// Whether this run's own writes explain `live` while it moves from stage `from` to `stage`:
    /// every route at one of the two, or some at each.
    fn explains(&self, live: &[RouteView], from: usize, stage: usize) -> bool {
        match locate(live, &self.rules, self.candidate) {
            Position::At(k) => k == from || k == stage,
            Position::Between { lo, hi } => lo == from && hi == stage,
            _ => false,
        }
    }

    /// Records a landed stage, trying again while the lease holds.
    async fn land(&mut self, claim: &Claim, stage: usize, after: &[RouteView]) -> Result<(), LedgerError> {
        let what = format!("record stage {stage}");
        let record = async |l: &mut Ledger<S>, now: u64| l.land(claim, stage, after, now).await;
        retry_ledger(self.ledger, self.sink, self.clock, &what, u32::MAX, true, record).await
    }

    /// This run's write has ended (landed whole, in part, or refused), but the rollout changed
    /// meanwhile. A rollback (or a pause) gets the last word: whatever part of the write landed
    /// is put back where the state says traffic is, the claim is released, the run stops.
    async fn lost_in_flight(&mut self, loss: Loss, claim: &Claim, from: usize) -> Result<End> {
        let back = match &loss {
            Loss::Aborted { .. } => Some((self.ledger.state().map_or(self.stable, |s| s.stable), Percent::FULL)),
            Loss::Paused { .. } => Some((self.candidate, self.rules.percent(from))),
            _ => None,
        };
        if let Some((side, percent)) = back {
            let reason = format!("{}; taking back the write this run had in flight", loss.message());
            self.sink.event(&Event::RollingBack { to: side, reason });
            match settle(self.traffic, None, side, percent, 30).await {
                Ok(routes) => self.views = routes,
                Err(e) => {
                    self.ledger.release(claim, self.clock.now_ms()).await;
                    return Err(Error::SplitUnknown {
                        message: format!(
                            "{}, and taking back the write this run had in flight failed: {e}\n{}",
                            loss.message(),
                            live_lines(&self.views)
                        ),
                    });
                }
            }
        }
        self.ledger.release(claim, self.clock.now_ms()).await;
        Err(LedgerError::Lost(loss).into())
    }

    /// The routes are not where this run left them: why? A rollback or a pause recorded in the
    /// state ends the run without writing; otherwise someone moved traffic by hand (drift).
    async fn moved(&mut self, live: &[RouteView], what: &str) -> Result<End> {
        // A rollback writes traffic first and records the abort right after: give it the time to.
        let give_up = tokio::time::Instant::now() + self.ledger.lease_len().min(ABORT_GRACE);
        loop {
            if let Err(LedgerError::Lost(loss)) = self.ledger.sync(self.clock.now_ms()).await {
                return self.lost(loss);
            }
            if tokio::time::Instant::now() >= give_up {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let _ = self.ledger.release_lease(self.clock.now_ms()).await;
        let mut message = format!("{what} (someone else moved traffic): stopping without writing");
        for r in live {
            message.push_str(&format!("\n  {} {}: live {}:{}", r.kind, r.name, r.weights.blue, r.weights.green));
        }
        Err(Error::Drift {
            message,
            hint: Some(
                "check `cutover status`; start the rollout again (or pass --force) once the split is what you want"
                    .into(),
            ),
        })
    }

    /// This run may no longer drive the rollout; nothing more is written.
    pub(crate) fn lost(&mut self, loss: Loss) -> Result<End> {
        Err(LedgerError::Lost(loss).into())
    }

    /// A write refused for good (a permission, a route gone — say a role that may change the
    /// zone but not the listener). Where this write landed on some routes only, they are put back
    /// at stage `from`, under the write's claim and compare: then, as when nothing moved, exit 1;
    /// if that fails, 4 with every route's split.
    async fn failed_write(&mut self, e: Error, claim: &Claim, from: usize, stage: usize) -> Result<End> {
        let ended = self.take_back(e, claim, from, stage).await;
        self.ledger.release(claim, self.clock.now_ms()).await;
        let _ = self.ledger.release_lease(self.clock.now_ms()).await;
        ended
    }

    async fn take_back(&mut self, e: Error, claim: &Claim, from: usize, stage: usize) -> Result<End> {
        let routes = match self.traffic.read().await {
            Ok(routes) => routes,
            Err(read) => {
                return Err(Error::SplitUnknown {
                    message: format!("a write failed ({e}) and the routes cannot be read back ({read})"),
                });
            }
        };
        let views = T::views(&routes);
        match locate(&views, &self.rules, self.candidate) {
            Position::At(_) => return Err(e),
            Position::Between { lo, hi } if lo == from && hi == stage => {}
            _ => {
                return Err(Error::SplitUnknown {
                    message: format!("a write failed part-way: {e}\n{}", live_lines(&views)),
                });
            }
        }
        // A rollback or a pause recorded since gets the last word.
        if let Err(LedgerError::Lost(loss)) = self.ledger.sync(self.clock.now_ms()).await {
            return self.lost_in_flight(loss, claim, from).await;
        }
        tracing::warn!(stage = from, "a write failed part-way; putting the routes it moved back at stage {from}");
        let guard = WriteGuard { compare: true, deadline: Some(self.clock.instant_of(claim.deadline_ms)) };
        let put = self.traffic.write(&routes, self.candidate, self.rules.percent(from), guard).await;
        let after = match &put {
            Ok(after) => T::views(after),
            Err(_) => self.traffic.read().await.map(|r| T::views(&r)).unwrap_or(views),
        };
        if locate(&after, &self.rules, self.candidate) == Position::At(from) {
            self.views = after;
            return Err(e.noted(&format!(
                "(the routes this write had moved are back at stage {from}: traffic is as before the write)"
            )));
        }
        let why =
            put.err().map(|p| format!("; putting back the routes it had moved failed too: {p}")).unwrap_or_default();
        Err(Error::SplitUnknown { message: format!("a write failed part-way: {e}{why}\n{}", live_lines(&after)) })
    }

    /// All traffic back to the stable side, then the rollout marked aborted. The rollback is
    /// claimed first, so a run that dies half-way is finished by the next one; it never waits on
    /// the state table.
    pub(crate) async fn roll_back(&mut self, reason: String, outcome: Outcome) -> Result<End> {
        self.sink.event(&Event::RollingBack { to: self.stable, reason: reason.clone() });
        let stage = self.progress.stage;
        let now = self.clock.now_ms();
        // The claim and the read of the routes at once: the write waits on one round trip.
        let claim = self.ledger.claim(ClaimKind::Restore, now + self.write_window.as_millis() as u64, now);
        let (claimed, read) = tokio::join!(claim, self.traffic.read());
        if let Err(LedgerError::Lost(Loss::Aborted { .. })) = claimed {
            tracing::info!("the rollout was already aborted; making sure traffic is back");
        }
        self.routes = None;
        let before = self.views.clone();
        let after = match settle(self.traffic, read.ok(), self.stable, Percent::FULL, 30).await {
            Ok(v) => v,
            Err(e) => {
                return Err(Error::SplitUnknown {
                    message: format!(
                        "rolling back to {} failed ({reason}): {e}\ntraffic may be split; run `cutover rollback --to {}`",
                        self.stable, self.stable
                    ),
                });
            }
        };
        self.views = after.clone();
        self.record_end(&Ending::Aborted { reason: reason.clone() }, &after).await;
        self.sink.event(&Event::RolledBack { to: self.stable, reason: reason.clone(), before, routes: after.clone() });
        self.sink.event(&Event::Ended { outcome, reason: Some(reason.clone()) });
        Ok(self.end(outcome, outcome.exit_code(true), stage, Percent::ZERO, Some(reason)))
    }

    /// Reads the live weights before a final report: a split this run did not write is drift
    /// (someone moved traffic while the stage baked), said with the live weights, not a report of
    /// the weights this run last wrote. A read that fails leaves the report to what was written.
    async fn live_is_ours(&mut self) -> Option<Result<End>> {
        let live = match self.traffic.read().await {
            Ok(routes) => T::views(&routes),
            Err(e) => {
                tracing::warn!(error = %e, "could not read the live weights for the final report");
                return None;
            }
        };
        if live == self.views {
            return None;
        }
        Some(self.moved(&live, "the live weights are not the ones this run wrote").await)
    }

    /// Stops with traffic where it is, the rollout marked paused.
    pub(crate) async fn halt(&mut self, why: Halt, reason: String) -> Result<End> {
        if let Some(drift) = self.live_is_ours().await {
            return drift;
        }
        let views = self.views.clone();
        self.record_end(&Ending::Paused { reason: reason.clone() }, &views).await;
        let stage = self.progress.stage;
        self.sink.event(&Event::Halted { why, stage, reason: reason.clone(), routes: views });
        let outcome = match why {
            Halt::Paused => Outcome::Paused,
            Halt::Held => Outcome::Held,
            Halt::Interrupted => Outcome::Interrupted,
        };
        self.sink.event(&Event::Ended { outcome, reason: Some(reason.clone()) });
        let percent = self.rules.percent(stage);
        Ok(self.end(outcome, outcome.exit_code(false), stage, percent, Some(reason)))
    }

    /// The last stage baked: the candidate is the stable side now.
    pub(crate) async fn complete(&mut self) -> Result<End> {
        if let Some(drift) = self.live_is_ours().await {
            return drift;
        }
        let views = self.views.clone();
        self.record_end(&Ending::Completed, &views).await;
        let n = self.stages();
        self.sink.event(&Event::Completed { side: self.candidate, stage: n, routes: views });
        self.sink.event(&Event::Ended { outcome: Outcome::Completed, reason: None });
        Ok(self.end(Outcome::Completed, 0, n, Percent::FULL, None))
    }

    /// Records the end of the rollout, trying again while the lease holds. A rollout that cannot
    /// be recorded is said so; the next run finds the truth from the routes and the claims.
    async fn record_end(&mut self, ending: &Ending, routes: &[RouteView]) {
        let record = async |l: &mut Ledger<S>, now: u64| l.end(ending, routes, now).await;
        match retry_ledger(self.ledger, self.sink, self.clock, "record the end of the rollout", 20, true, record).await
        {
            Ok(()) => {}
            Err(LedgerError::Lost(loss)) => {
                tracing::info!(why = %loss.message(), "the rollout state had changed; its end is not recorded by this run");
            }
            Err(e) => tracing::warn!(error = %e, "could not record the end of the rollout"),
        }
    }

    /// Saves the bake's progress; a state table that does not answer is tried at the next poll.
    pub(crate) async fn save_progress(&mut self) -> Flow {
        let now = self.clock.now_ms();
        match self.ledger.save_progress(&self.progress, now, !self.continuous).await {
            Ok(()) => Flow::Go,
            Err(LedgerError::Lost(loss)) => Flow::Done(self.lost(loss)),
            Err(LedgerError::Unavailable(m)) => self.weather("record the bake's progress".into(), m),
            Err(LedgerError::Failed(e)) => Flow::Done(Err(e)),
        }
    }

    pub(crate) fn end(
        &self,
        outcome: Outcome,
        exit_code: i32,
        stage: usize,
        percent: Percent,
        reason: Option<String>,
    ) -> End {
        End {
            outcome,
            exit_code,
            from: self.stable,
            to: self.candidate,
            stage,
            stages: self.stages(),
            percent,
            routes: self.views.clone(),
            reason,
            readings: self.readings.clone(),
            shadow: self.shadows.clone(),
        }
    }

    /// The reason of a failed gate.
    pub(crate) fn failure_reason(&self, gate: &str, detail: &str) -> String {
        let stage = self.progress.stage;
        if stage == 0 {
            format!("gate {gate} failed before any traffic moved: {detail}")
        } else {
            format!(
                "gate {gate} failed at stage {stage}/{} ({} {}%): {detail}",
                self.stages(),
                self.candidate,
                self.rules.percent(stage)
            )
        }
    }

    /// Acts on a decision that ends the run or reads on. `Shift` and `Complete` are the callers'.
    pub(crate) async fn act(&mut self, decision: Decision) -> Flow {
        match decision {
            Decision::Shift { stage } => {
                if stage > 1 {
                    let baked = stage - 1;
                    self.sink.event(&Event::StageBaked {
                        stage: baked,
                        stages: self.stages(),
                        percent: self.rules.percent(baked),
                    });
                }
                self.shift(stage).await
            }
            Decision::Complete => {
                let n = self.stages();
                self.sink.event(&Event::StageBaked { stage: n, stages: n, percent: Percent::FULL });
                Flow::Done(self.complete().await)
            }
            Decision::Bake { remaining } => {
                self.sink.event(&Event::Baking { stage: self.progress.stage, remaining });
                self.save_progress().await
            }
            Decision::Hold { reason, left } => {
                self.sink.event(&Event::Held { stage: self.progress.stage, reason, left });
                self.save_progress().await
            }
            // The gate lines say what is awaited; nothing is held.
            Decision::Watch { .. } | Decision::Pending { .. } => self.save_progress().await,
            Decision::Frozen { reason, since_ms } => {
                let now = self.clock.now_ms();
                let frozen = Duration::from_millis(now.saturating_sub(since_ms));
                // A running `rollout` gives up past `max_hold` (a pipeline does not wait out a
                // weekend's freeze); `advance` says "frozen until …" at every call, and the
                // stage moves on at the first call after the freeze.
                if self.continuous && frozen >= self.rules.max_hold {
                    let why = format!("frozen for {} (max_hold): {reason}", humantime::format_duration(round(frozen)));
                    return Flow::Done(self.halt(Halt::Held, why).await);
                }
                // Said once, at the reading that began the freeze (`now` is later than it).
                if self.progress.read_ms == Some(since_ms) {
                    self.sink.event(&Event::Frozen { stage: self.progress.stage, reason });
                }
                self.save_progress().await
            }
            Decision::Fail { gate, detail, action } => {
                let reason = self.failure_reason(&gate, &detail);
                match action {
                    OnFailure::Rollback => Flow::Done(self.roll_back(reason, Outcome::RolledBack).await),
                    OnFailure::Pause => Flow::Done(self.halt(Halt::Paused, reason).await),
                }
            }
            Decision::HeldTooLong { reason, held } => {
                let why =
                    format!("gates inconclusive for {} (max_hold): {reason}", humantime::format_duration(round(held)));
                Flow::Done(self.halt(Halt::Held, why).await)
            }
        }
    }

    /// Drives the rollout to its end: the `rollout` command. Every ending lets go of the lease:
    /// the endings the ledger records (completed, rolled back, paused, held) clear it with the
    /// status; any other — a pause or a rollback seen from another process, an error — gives it
    /// back here, so the next run (after `resume`, say) is not refused by a lease of a process
    /// that has exited.
    pub async fn run(
        mut self,
        opening: Opening<T::Routes>,
        cancel: watch::Receiver<bool>,
        on_interrupt: OnInterrupt,
    ) -> Result<End> {
        let end = self.drive(opening, cancel, on_interrupt).await;
        if end.is_err() {
            self.let_go().await;
        }
        end
    }

    /// Gives this run's lease back, if it still holds it (best effort: it expires anyway).
    pub(crate) async fn let_go(&mut self) {
        for _ in 0..3 {
            match self.ledger.release_lease(self.clock.now_ms()).await {
                Ok(()) => return,
                Err(e) => tracing::debug!(error = %e, "giving the lease back"),
            }
        }
        tracing::warn!("could not give the lease back; it expires by itself");
    }

    async fn drive(
        &mut self,
        opening: Opening<T::Routes>,
        cancel: watch::Receiver<bool>,
        on_interrupt: OnInterrupt,
    ) -> Result<End> {
        self.continuous = true;
        self.enter(opening.entry, true, opening.pending.as_ref()).await?;
        if let Some(p) = opening.pending {
            if let Flow::Done(end) = self.resume(p).await {
                return end;
            }
        } else if self.progress.stage > 0 {
            let stage = self.progress.stage;
            self.sink.event(&Event::StageResumed {
                stage,
                stages: self.stages(),
                side: self.candidate,
                percent: self.rules.percent(stage),
            });
        }
        let mut ticker = tokio::time::interval(self.rules.poll);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut cancel = cancel;
        loop {
            tokio::select! {
                biased;
                _ = stopped(&mut cancel) => return self.interrupted(on_interrupt).await,
                _ = ticker.tick() => {}
            }
            let ctx = self.gate_context(None);
            let now = self.clock.now_ms();
            let got = {
                let read = async { tokio::join!(self.ledger.sync(now), self.gates.read(&ctx)) };
                tokio::select! {
                    biased;
                    _ = stopped(&mut cancel) => None,
                    r = read => Some(r),
                }
            };
            let Some((synced, readings)) = got else {
                return self.interrupted(on_interrupt).await;
            };
            match synced {
                Ok(()) => {}
                Err(LedgerError::Lost(loss)) => return self.lost(loss),
                Err(LedgerError::Failed(e)) => return Err(e),
                Err(LedgerError::Unavailable(m)) => {
                    if self.ledger.lease_lapsed(self.clock.now_ms()) {
                        return Err(Error::Locked {
                            message: format!(
                                "the rollout state could not be read or renewed for the whole lease ({m}): stopping with traffic at stage {} — another run may take over",
                                self.progress.stage
                            ),
                        });
                    }
                    self.weather("read the rollout state".into(), m);
                }
            }
            let decision = self.decide(readings);
            let stage = self.progress.stage;
            if let Flow::Done(end) = self.act(decision).await {
                return end;
            }
            if self.progress.stage != stage {
                // A stage's bake is measured from when it was reached: the next reading comes one
                // poll after the shift.
                ticker.reset();
            }
        }
    }

    /// Ctrl-C or SIGTERM: a write in flight has finished (the signal is only heard between
    /// steps); traffic goes back or stays, by policy.
    async fn interrupted(&mut self, on_interrupt: OnInterrupt) -> Result<End> {
        let stage = self.progress.stage;
        match on_interrupt {
            OnInterrupt::Rollback => {
                let reason = format!("interrupted at stage {stage}: traffic rolled back to {}", self.stable);
                self.roll_back(reason, Outcome::Interrupted).await
            }
            OnInterrupt::Leave => {
                let reason = format!("interrupted at stage {stage}: traffic left where it is");
                self.halt(Halt::Interrupted, reason).await
            }
        }
    }
}

/// Runs a write of the ledger again while the state table is unavailable — at most `tries` more
/// times and, when `leased`, only while this run's lease holds — telling each retry.
async fn retry_ledger<S: Store>(
    ledger: &mut Ledger<S>,
    sink: &mut dyn Sink,
    clock: Clock,
    what: &str,
    tries: u32,
    leased: bool,
    mut write: impl AsyncFnMut(&mut Ledger<S>, u64) -> Result<(), LedgerError>,
) -> Result<(), LedgerError> {
    let mut attempt = 0;
    loop {
        let now = clock.now_ms();
        match write(ledger, now).await {
            Err(LedgerError::Unavailable(m)) if attempt < tries && !(leased && ledger.lease_lapsed(now)) => {
                sink.event(&Event::Retrying { what: what.to_string(), error: m });
                tokio::time::sleep(backoff(attempt)).await;
                attempt += 1;
            }
            other => return other,
        }
    }
}

/// Resolves when the run is asked to stop; never, if nobody can ask any more.
async fn stopped(rx: &mut watch::Receiver<bool>) {
    loop {
        if *rx.borrow_and_update() {
            return;
        }
        if rx.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// Runs `work` while renewing the lease every third of its length (a Route53 change can take
/// minutes to be INSYNC). Renewing never interrupts the work.
async fn while_renewing<S: Store, F: Future>(ledger: &mut Ledger<S>, clock: Clock, work: F) -> F::Output {
    let every = (ledger.lease_len() / 3).max(Duration::from_millis(100));
    let done = tokio::sync::Notify::new();
    let work = async {
        let out = work.await;
        done.notify_one();
        out
    };
    let renew = async {
        loop {
            tokio::select! {
                _ = done.notified() => break,
                _ = tokio::time::sleep(every) => {
                    if let Err(e) = ledger.renew(clock.now_ms()).await {
                        tracing::debug!(error = %e, "lease renewal during a write failed");
                    }
                }
            }
        }
    };
    let (out, ()) = tokio::join!(work, renew);
    out
}

fn round(d: Duration) -> Duration {
    Duration::from_millis(d.as_millis() as u64 / 100 * 100)
}
