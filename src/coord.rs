//! Coordination through the shared rollout state: the lease, the re-check before every write, the
//! audit trail and notifications. [`StateGuard`] plugs into the engine as its [`Guard`]; the
//! stateless runs use [`NoGuard`].

use std::time::Duration;

use aws_config::SdkConfig;

use crate::engine::{Outcome, RolloutReport};
use crate::error::{Error, Result};
use crate::notify::Notifier;
use crate::split::{Percent, Side};
use crate::splitter::RouteView;
use crate::state::{Lease, RolloutState, RouteWeights, StateStore, Status, fmt_ms, now_ms};

/// What the engine asks before and after it moves traffic, and tells when it ends.
#[allow(async_fn_in_trait)]
pub trait Guard {
    /// Before a write toward the candidate. An error stops the run without writing.
    async fn before_shift(&mut self, stage: usize, percent: Percent) -> Result<()>;
    /// After a write toward the candidate. An error means a rollback took over meanwhile: the
    /// engine puts traffic back on the stable side and stops.
    async fn after_shift(
        &mut self,
        stage: usize,
        percent: Percent,
        before: &[RouteView],
        after: &[RouteView],
    ) -> Result<()>;
    /// Every poll while baking (renews the lease). An error stops the run.
    async fn tick(&mut self) -> Result<()>;
    /// The engine rolled traffic back to the stable side.
    async fn rolled_back(&mut self, before: &[RouteView], after: &[RouteView], reason: &str);
    /// The run ended.
    async fn end(&mut self, report: &RolloutReport);
}

/// No shared state: nothing to check, nothing to record.
pub struct NoGuard;

impl Guard for NoGuard {
    async fn before_shift(&mut self, _: usize, _: Percent) -> Result<()> {
        Ok(())
    }
    async fn after_shift(&mut self, _: usize, _: Percent, _: &[RouteView], _: &[RouteView]) -> Result<()> {
        Ok(())
    }
    async fn tick(&mut self) -> Result<()> {
        Ok(())
    }
    async fn rolled_back(&mut self, _: &[RouteView], _: &[RouteView], _: &str) {}
    async fn end(&mut self, _: &RolloutReport) {}
}

/// Who is acting: `CUTOVER_ACTOR`, else the caller identity from STS.
pub async fn actor(sdk: &SdkConfig) -> String {
    if let Ok(a) = std::env::var("CUTOVER_ACTOR")
        && !a.trim().is_empty()
    {
        return a;
    }
    let sts = crate::client!(aws_sdk_sts, sdk);
    match tokio::time::timeout(Duration::from_secs(2), sts.get_caller_identity().send()).await {
        Ok(Ok(out)) => out.arn.unwrap_or_else(|| "unknown".into()),
        _ => "unknown".into(),
    }
}

/// The account id of the caller, from STS, when it answers within 2 s.
pub async fn account(sdk: &SdkConfig) -> Option<String> {
    let sts = crate::client!(aws_sdk_sts, sdk);
    match tokio::time::timeout(Duration::from_secs(2), sts.get_caller_identity().send()).await {
        Ok(Ok(out)) => out.account,
        _ => None,
    }
}

fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// A lease holder id unique to this process.
pub fn holder_id(actor: &str) -> String {
    format!("{actor} on {} pid {} #{:08x}", hostname(), std::process::id(), crate::state::rand_u32())
}

/// The engine's guard over the shared state: holds the lease, re-checks the state before every
/// write, records every step in the audit trail and tells the notifier.
pub struct StateGuard {
    pub store: StateStore,
    pub state: RolloutState,
    pub me: String,
    pub actor: String,
    pub lease: Duration,
    pub notifier: Notifier,
}

impl StateGuard {
    fn lease_for(&self) -> Lease {
        Lease { holder: self.me.clone(), expires_ms: now_ms() + self.lease.as_millis() as u64 }
    }

    /// Re-reads the state and checks this run may still write: not aborted, not paused, lease
    /// ours or free. Refreshes `self.state` from what was read.
    async fn recheck(&mut self) -> Result<()> {
        let now = self
            .store
            .load()
            .await?
            .ok_or_else(|| Error::Locked { message: "the rollout state vanished under this run".into() })?;
        match now.status {
            Status::Aborted => {
                return Err(Error::Locked {
                    message: format!(
                        "the rollout was aborted{}: stopping without writing",
                        now.reason.as_ref().map(|r| format!(" ({r})")).unwrap_or_default()
                    ),
                });
            }
            Status::Paused => {
                return Err(Error::Paused { message: "the rollout was paused: stopping without writing".into() });
            }
            Status::Completed => {
                return Err(Error::Locked { message: "the rollout was completed by another run".into() });
            }
            Status::Progressing => {}
        }
        if let Some(l) = now.lease_held_by_other(&self.me, now_ms()) {
            return Err(Error::Locked {
                message: format!("the lease was taken by {} (until {})", l.holder, fmt_ms(l.expires_ms)),
            });
        }
        self.state = now;
        Ok(())
    }

    async fn save(&mut self) -> Result<()> {
        let expected = self.state.version;
        self.store.save(&mut self.state, Some(expected)).await
    }

    async fn audit(
        &self,
        action: &str,
        before: &[RouteView],
        after: &[RouteView],
        why: Option<String>,
        stage: Option<usize>,
    ) {
        self.store.record(&self.actor, action, before, after, why, stage).await;
    }
}

impl Guard for StateGuard {
    async fn before_shift(&mut self, _stage: usize, _percent: Percent) -> Result<()> {
        self.recheck().await?;
        // Claim the write: a version-conditional save, so a rollback that lands first wins.
        self.state.lease = Some(self.lease_for());
        self.save().await
    }

    async fn after_shift(
        &mut self,
        stage: usize,
        percent: Percent,
        before: &[RouteView],
        after: &[RouteView],
    ) -> Result<()> {
        self.state.stage = stage;
        self.state.percent = percent;
        self.state.weights = RouteWeights::of(after);
        self.state.stage_reached_ms = now_ms();
        self.state.lease = Some(self.lease_for());
        // Conditional on the claim's version: if a rollback wrote in between, this fails and the
        // engine puts traffic back.
        self.save().await?;
        self.audit(
            "stage",
            before,
            after,
            Some(format!("stage {stage}: {} {percent}%", self.state.candidate)),
            Some(stage),
        )
        .await;
        self.notifier
            .send(
                "stage-reached",
                &format!("stage {stage}/{}: {} at {percent}%", self.state.stages.len(), self.state.candidate),
                &self.state,
            )
            .await;
        Ok(())
    }

    async fn tick(&mut self) -> Result<()> {
        // One consistent read a poll: an on-call rollback or a pause is seen within one poll.
        self.recheck().await?;
        let renew_at =
            self.state.lease.as_ref().map(|l| l.expires_ms.saturating_sub(self.lease.as_millis() as u64 / 2));
        // Renew past half the lease's life (a write only then).
        if renew_at.is_some_and(|at| now_ms() < at) && self.state.lease.as_ref().is_some_and(|l| l.holder == self.me) {
            return Ok(());
        }
        self.state.lease = Some(self.lease_for());
        self.save().await
    }

    async fn rolled_back(&mut self, before: &[RouteView], after: &[RouteView], reason: &str) {
        // The rollback has already happened: mark it, whatever the version now (retry on races).
        for _ in 0..5 {
            if let Ok(Some(now)) = self.store.load().await {
                self.state = now;
            }
            self.state.status = Status::Aborted;
            self.state.stage = 0;
            self.state.percent = Percent::ZERO;
            self.state.weights = RouteWeights::of(after);
            self.state.lease = None;
            self.state.reason = Some(reason.to_string());
            if self.save().await.is_ok() {
                break;
            }
        }
        self.audit("rolled-back", before, after, Some(reason.to_string()), None).await;
        self.notifier.send("rolled-back", reason, &self.state).await;
    }

    async fn end(&mut self, report: &RolloutReport) {
        if report.outcome == Outcome::RolledBack
            || (report.outcome == Outcome::Interrupted && report.percent == Percent::ZERO && report.stage > 0)
        {
            return; // recorded by rolled_back
        }
        let _ = self.recheck().await;
        match report.outcome {
            Outcome::Completed => {
                self.state.status = Status::Completed;
                self.state.stable = report.to;
                self.state.candidate = report.to.other();
                self.state.reason = None;
            }
            Outcome::NothingToDo => return,
            Outcome::Paused | Outcome::Held | Outcome::Interrupted => {
                self.state.status = Status::Paused;
                self.state.reason = report.reason.clone();
            }
            Outcome::RolledBack => {}
        }
        self.state.lease = None;
        if let Err(e) = self.save().await {
            tracing::warn!(error = %e, "could not record the end of the rollout");
        }
        let action = match report.outcome {
            Outcome::Completed => "completed",
            Outcome::Held => "held",
            Outcome::Paused => "paused",
            _ => "interrupted",
        };
        self.audit(action, &report.routes, &report.routes, report.reason.clone(), Some(report.stage)).await;
        self.notifier.send(action, &report.to_string(), &self.state).await;
    }
}

/// A new state item for a rollout from `stable` toward its other side.
pub fn fresh_state(stable: Side, stages: &[Percent], routes: &[RouteView], me: &str, lease: Duration) -> RolloutState {
    let now = now_ms();
    RolloutState {
        version: 0,
        stable,
        candidate: stable.other(),
        status: Status::Progressing,
        stage: 0,
        stages: stages.to_vec(),
        percent: Percent::ZERO,
        weights: RouteWeights::of(routes),
        stage_reached_ms: now,
        started_ms: now,
        updated_ms: now,
        lease: Some(Lease { holder: me.to_string(), expires_ms: now + lease.as_millis() as u64 }),
        reason: None,
    }
}

/// Whether the live split is one the state explains: what it last wrote, or (a write in flight
/// when a run died) any stage of the rollout toward the candidate, or all on the stable side.
pub fn explains(state: &RolloutState, live: &[RouteView]) -> bool {
    let last: Vec<RouteWeights> = RouteWeights::of(live);
    if last == state.weights {
        return true;
    }
    let on = |side: Side, p: Percent| {
        live.iter().all(|r| crate::split::choose_weights(side, p, r.kind.max_weight()).weights == r.weights)
    };
    on(state.stable, Percent::FULL) || state.stages.iter().any(|&p| on(state.candidate, p))
}
