//! The commands that work on the shared rollout state: `advance`, `rollback` (without `--to`),
//! `promote`, `pause`/`resume`, `history`, `state init`, and the rollout part of `status`.

use std::fmt;
use std::time::{Duration, UNIX_EPOCH};

use serde::Serialize;

use crate::coord::{StateGuard, explains, fresh_state, holder_id};
use crate::engine::TrafficPort;
use crate::error::{Error, Result};
use crate::exit;
use crate::gates::{GateContext, GateSet, Gates, Reading, Verdict};
use crate::notify::Notifier;
use crate::profile::Profile;
use crate::split::{Percent, Side};
use crate::splitter::{RouteLive, RouteView, Traffic};
use crate::state::{AuditEntry, RolloutState, RouteWeights, StateStore, Status, fmt_ms, now_ms};

/// The result of a state command: what happened, in a sentence, and the state after.
#[derive(Debug, Serialize)]
pub struct StepReport {
    pub profile: String,
    pub command: &'static str,
    /// What was done: `started`, `advanced`, `not-yet`, `nothing-to-do`, `rolled-back`, …
    pub action: String,
    pub message: String,
    pub exit_code: i32,
    /// The split before, when this command moved traffic.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub before: Vec<RouteView>,
    pub routes: Vec<RouteView>,
    pub rollout: Option<RolloutView>,
    pub readings: Vec<Reading>,
}

impl fmt::Display for StepReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}: {}", self.command, self.message)?;
        for r in &self.routes {
            match self.before.iter().find(|b| b.name == r.name && b.kind == r.kind) {
                Some(b) if b.weights != r.weights => {
                    writeln!(f, "  {:<8}{:<44} {}  →  {}", r.kind.to_string(), r.name, b.weights, r.weights)?
                }
                _ => writeln!(f, "  {:<8}{:<44} {}", r.kind.to_string(), r.name, r.weights)?,
            }
        }
        if let Some(r) = &self.rollout {
            write!(f, "{r}")?;
        }
        Ok(())
    }
}

/// The rollout state as `status` shows it.
#[derive(Clone, Debug, Serialize)]
pub struct RolloutView {
    pub stable: Side,
    pub candidate: Side,
    pub status: Status,
    pub stage: usize,
    pub stages: usize,
    pub percent: Percent,
    pub stage_reached_at: String,
    pub started_at: String,
    pub lease_holder: Option<String>,
    pub lease_expires_at: Option<String>,
    pub version: u64,
    pub reason: Option<String>,
}

impl From<&RolloutState> for RolloutView {
    fn from(s: &RolloutState) -> RolloutView {
        let lease = s.lease.as_ref().filter(|l| l.expires_ms > now_ms());
        RolloutView {
            stable: s.stable,
            candidate: s.candidate,
            status: s.status,
            stage: s.stage,
            stages: s.stages.len(),
            percent: s.percent,
            stage_reached_at: fmt_ms(s.stage_reached_ms),
            started_at: fmt_ms(s.started_ms),
            lease_holder: lease.map(|l| l.holder.clone()),
            lease_expires_at: lease.map(|l| fmt_ms(l.expires_ms)),
            version: s.version,
            reason: s.reason.clone(),
        }
    }
}

impl fmt::Display for RolloutView {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "rollout: {} → {}, {}, stage {}/{} ({} {}%) since {}",
            self.stable,
            self.candidate,
            self.status,
            self.stage,
            self.stages,
            self.candidate,
            self.percent,
            self.stage_reached_at
        )?;
        if let (Some(h), Some(until)) = (&self.lease_holder, &self.lease_expires_at) {
            writeln!(f, "  lease: {h} until {until}")?;
        }
        if let Some(r) = &self.reason {
            writeln!(f, "  why: {r}")?;
        }
        Ok(())
    }
}

/// Everything a state command needs.
pub struct StateCtx<'a> {
    pub profile: &'a Profile,
    pub traffic: &'a Traffic,
    pub sdk: &'a aws_config::SdkConfig,
    pub store: StateStore,
    pub notifier: Notifier,
    /// Who is acting, asked of STS only when first needed: never before a rollback's write.
    actor: tokio::sync::OnceCell<String>,
}

impl<'a> StateCtx<'a> {
    pub fn new(
        profile: &'a Profile,
        traffic: &'a Traffic,
        sdk: &'a aws_config::SdkConfig,
        command: &str,
    ) -> Result<StateCtx<'a>> {
        let Some(cfg) = &profile.state else {
            return Err(Error::refused_hint(
                format!("`{command}` needs the rollout state, and profile `{}` has no [state] table", profile.name),
                "add `[state] table = \"cutover-state\"` to the profile and run `cutover state init`",
            ));
        };
        Ok(StateCtx {
            profile,
            traffic,
            sdk,
            store: StateStore::new(sdk, &cfg.table, &profile.name),
            notifier: Notifier::new(sdk, &profile.name, &profile.notify),
            actor: tokio::sync::OnceCell::new(),
        })
    }

    async fn actor(&self) -> &str {
        self.actor.get_or_init(|| crate::coord::actor(self.sdk)).await
    }

    fn lease(&self) -> Duration {
        self.profile.state.as_ref().map(|s| s.lease).unwrap_or(Duration::from_secs(60))
    }

    fn report(
        &self,
        command: &'static str,
        action: &str,
        message: String,
        code: i32,
        routes: Vec<RouteView>,
        state: Option<&RolloutState>,
    ) -> StepReport {
        StepReport {
            profile: self.profile.name.clone(),
            command,
            action: action.to_string(),
            message,
            exit_code: code,
            before: Vec::new(),
            routes,
            rollout: state.map(RolloutView::from),
            readings: Vec::new(),
        }
    }

    async fn audit(
        &self,
        action: &str,
        before: &[RouteView],
        after: &[RouteView],
        why: Option<String>,
        stage: Option<usize>,
    ) {
        self.store.record(self.actor().await, action, before, after, why, stage).await;
    }

    /// The guard a `rollout` runs under: takes (or creates) the state and its lease. `routes` are
    /// the routes as the caller just read them.
    pub async fn guard_for_rollout(
        &self,
        to: Option<Side>,
        force: bool,
        routes: &[RouteLive],
    ) -> Result<(StateGuard, Side)> {
        let me = holder_id(self.actor().await);
        let live = views(routes);
        let loaded = self.store.load().await?;
        let now = now_ms();
        let (mut state, expected, to) = match loaded {
            Some(s) if s.status == Status::Progressing => {
                if let Some(l) = s.lease_held_by_other(&me, now) {
                    return Err(Error::Locked {
                        message: format!(
                            "another run holds the rollout of `{}`: {} (lease until {})",
                            self.profile.name,
                            l.holder,
                            fmt_ms(l.expires_ms)
                        ),
                    });
                }
                if let Some(to) = to
                    && to != s.candidate
                {
                    return Err(Error::refused_hint(
                        format!(
                            "a rollout toward {} is in progress (stage {}/{})",
                            s.candidate,
                            s.stage,
                            s.stages.len()
                        ),
                        format!("finish it, or `cutover rollback` first, then `cutover rollout --to {to}`"),
                    ));
                }
                if !force && !explains(&s, &live) {
                    return Err(drift(&s, &live));
                }
                let to = s.candidate;
                let v = s.version;
                (s, Some(v), to)
            }
            Some(s) if s.status == Status::Paused => {
                return Err(Error::Paused {
                    message: format!("the rollout of `{}` is paused: `cutover resume` releases it", self.profile.name),
                });
            }
            other => {
                let sole = sole(&live);
                let to = to.or(sole.map(Side::other)).ok_or_else(|| {
                    Error::refused_hint(
                        "traffic is split and no rollout is recorded",
                        "say the side to roll to: `cutover rollout --to green`",
                    )
                })?;
                if sole == Some(to) {
                    // Nothing to move; the engine reports it.
                    let s = fresh_state(to.other(), &self.profile.rollout.stages, &live, &me, self.lease());
                    let guard = self.guard(s).await;
                    return Ok((guard, to));
                }
                let stable = to.other();
                let s = fresh_state(stable, &self.profile.rollout.stages, &live, &me, self.lease());
                (s, other.map(|o| o.version), to)
            }
        };
        state.lease =
            Some(crate::state::Lease { holder: me.clone(), expires_ms: now + self.lease().as_millis() as u64 });
        let fresh = expected.is_none() || state.stage == 0 && state.started_ms >= now;
        self.store.save(&mut state, expected).await?;
        if fresh {
            self.audit(
                "started",
                &live,
                &live,
                Some(format!("rollout {} → {}", state.stable, state.candidate)),
                Some(0),
            )
            .await;
            self.notifier.send("started", &format!("rollout {} → {}", state.stable, state.candidate), &state).await;
        }
        let mut guard = self.guard(state).await;
        guard.me = me;
        Ok((guard, to))
    }

    async fn guard(&self, state: RolloutState) -> StateGuard {
        StateGuard {
            store: self.store.clone(),
            me: state.lease.as_ref().map(|l| l.holder.clone()).unwrap_or_default(),
            state,
            actor: self.actor().await.to_string(),
            lease: self.lease(),
            notifier: self.notifier.clone(),
        }
    }

    /// `cutover rollback` (and `--to`): traffic first, then the state, then a check that nothing
    /// moved it back toward the candidate meanwhile.
    pub async fn rollback(&self, to: Option<Side>, dry_run: bool) -> Result<StepReport> {
        // With a side named, traffic moves before the state is even read.
        let (stable, state) = match to {
            Some(side) => (side, None),
            None => match self.store.load().await {
                Ok(Some(s)) => (s.stable, Some(s)),
                Ok(None) => {
                    return Err(Error::refused_hint(
                        format!("no rollout of `{}` is recorded, so the stable side is unknown", self.profile.name),
                        "name the side: `cutover rollback --to blue`",
                    ));
                }
                Err(e) => {
                    return Err(Error::SplitUnknown {
                        message: format!(
                            "cannot read the rollout state ({e}): the stable side is unknown and nothing was moved\nrun `cutover rollback --to SIDE` to restore traffic without the state"
                        ),
                    });
                }
            },
        };
        let before = self.traffic.read_views().await?;
        if dry_run {
            let msg = format!("would move all traffic to {stable} and mark the rollout aborted (no change made)");
            return Ok(self.report("rollback", "dry-run", msg, exit::OK, before, state.as_ref()));
        }
        let after = self.traffic.shift(stable, Percent::FULL, None).await?;
        // Mark it aborted, breaking any lease; retry on races with a running rollout.
        // Ok(None): no rollout was recorded.
        let mut marked: Result<Option<RolloutState>> = Ok(None);
        for _ in 0..10 {
            match self.store.load().await {
                Ok(Some(mut s)) => {
                    let v = s.version;
                    if s.status == Status::Progressing || s.status == Status::Paused {
                        s.status = Status::Aborted;
                        s.reason = Some(format!("rolled back to {stable} by {}", self.actor().await));
                    }
                    s.stage = 0;
                    s.percent = Percent::ZERO;
                    s.stable = stable;
                    s.candidate = stable.other();
                    s.weights = RouteWeights::of(&after);
                    s.lease = None;
                    match self.store.save(&mut s, Some(v)).await {
                        Ok(()) => {
                            marked = Ok(Some(s));
                            break;
                        }
                        Err(Error::Locked { .. }) => {
                            marked = Err(Error::Locked { message: "the rollout state kept changing".into() });
                            continue;
                        }
                        Err(e) => {
                            marked = Err(e);
                            break;
                        }
                    }
                }
                Ok(None) => {
                    marked = Ok(None);
                    break;
                }
                Err(e) => {
                    marked = Err(e);
                    break;
                }
            }
        }
        // A rollout whose write was already in flight could have landed after ours: check, and
        // put traffic back again if so. (It cannot claim another write: the state is aborted.)
        let mut after = after;
        let now = self.traffic.read_views().await?;
        if sole(&now) != Some(stable) {
            tracing::warn!("traffic moved again after the rollback: restoring it");
            after = self.traffic.shift(stable, Percent::FULL, None).await?;
        }
        match marked {
            Ok(Some(s)) => {
                let msg = format!("all traffic on {stable}; the rollout is marked aborted");
                self.audit("rollback", &before, &after, Some(msg.clone()), None).await;
                self.notifier.send("rolled-back", &msg, &s).await;
                let mut r = self.report("rollback", "rolled-back", msg, exit::OK, after, Some(&s));
                r.before = before;
                Ok(r)
            }
            Ok(None) => {
                let msg = format!("all traffic on {stable} (no rollout was recorded)");
                self.audit("rollback", &before, &after, Some(msg.clone()), None).await;
                let mut r = self.report("rollback", "rolled-back", msg, exit::OK, after, None);
                r.before = before;
                Ok(r)
            }
            Err(e) => Err(Error::SplitUnknown {
                message: format!(
                    "traffic is back on {stable}, but the rollout state was NOT updated ({e}): a scheduled `advance` may move traffic again — pause the schedule"
                ),
            }),
        }
    }

    /// `cutover advance`: at most one stage per call.
    pub async fn advance(&self, to: Option<Side>, dry_run: bool, force: bool, repoint: bool) -> Result<StepReport> {
        let me = holder_id(self.actor().await);
        let mut routes = self.traffic.read().await?;
        let live = views(&routes);
        let loaded = self.store.load().await?;
        let now = now_ms();
        let stages = &self.profile.rollout.stages;
        let state = match loaded {
            Some(s) if s.status == Status::Progressing => s,
            Some(s) if s.status == Status::Paused => {
                return Ok(self.report(
                    "advance",
                    "nothing-to-do",
                    "the rollout is paused: nothing to do (`cutover resume` releases it)".into(),
                    exit::OK,
                    live,
                    Some(&s),
                ));
            }
            Some(s) if to.is_none() => {
                let msg = format!(
                    "the rollout is {}: nothing to do (start the next one with `cutover advance --to SIDE`)",
                    s.status
                );
                return Ok(self.report("advance", "nothing-to-do", msg, exit::OK, live, Some(&s)));
            }
            previous => return self.start(to, routes, previous, me, dry_run, repoint).await,
        };
        if let Some(l) = state.lease_held_by_other(&me, now) {
            return Err(Error::Locked {
                message: format!("another run holds the rollout: {} (lease until {})", l.holder, fmt_ms(l.expires_ms)),
            });
        }
        if !force && !explains(&state, &live) {
            return Err(drift(&state, &live));
        }
        if !dry_run {
            crate::sides::ensure(self.sdk, self.profile, self.traffic, &mut routes, &[state.candidate], repoint)
                .await?;
        }
        // Gates over the stage's whole bake window, not only their value now: a failure between
        // two scheduled calls must not be advanced past.
        let since = UNIX_EPOCH + Duration::from_millis(state.stage_reached_ms);
        let age = Duration::from_millis(now.saturating_sub(state.stage_reached_ms));
        let gates = Gates::new(self.sdk, self.profile, &routes);
        let ctx = GateContext {
            profile: self.profile.name.clone(),
            candidate: state.candidate,
            stable: state.stable,
            current_percent: state.percent,
            next_percent: stages.get(state.stage).copied(),
            stage: state.stage,
            stages: stages.len(),
            stage_age: age,
            since: Some(since),
        };
        let readings = gates.read_all(&ctx).await;
        let report = |action: &str, msg: String, code: i32, routes: Vec<RouteView>, s: &RolloutState| {
            let mut r = self.report("advance", action, msg, code, routes, Some(s));
            r.readings = readings.clone();
            r
        };
        if let Some(failed) = readings.iter().find(|r| r.verdict == Verdict::Fail) {
            let reason =
                format!("gate {} failed at stage {}/{}: {}", failed.gate, state.stage, stages.len(), failed.detail);
            if dry_run {
                return Ok(report("dry-run", format!("would roll back: {reason}"), exit::OK, live, &state));
            }
            let after =
                self.traffic.shift(state.stable, Percent::FULL, None).await.map_err(|e| Error::SplitUnknown {
                    message: format!("rolling back to {} failed ({reason}): {e}\nrun `cutover rollback`", state.stable),
                })?;
            let mut s = state.clone();
            let v = s.version;
            s.status = Status::Aborted;
            s.stage = 0;
            s.percent = Percent::ZERO;
            s.weights = RouteWeights::of(&after);
            s.lease = None;
            s.reason = Some(reason.clone());
            if let Err(e) = self.store.save(&mut s, Some(v)).await {
                tracing::warn!(error = %e, "could not mark the rollout aborted");
            }
            self.audit("rolled-back", &live, &after, Some(reason.clone()), Some(state.stage)).await;
            self.notifier.send("rolled-back", &reason, &s).await;
            return Ok(report(
                "rolled-back",
                format!("ROLLED BACK to {}: {reason}", state.stable),
                exit::ROLLED_BACK,
                after,
                &s,
            ));
        }
        if readings.iter().any(|r| r.verdict == Verdict::Wait) {
            let why = readings
                .iter()
                .filter(|r| r.verdict == Verdict::Wait)
                .map(|r| format!("{}: {}", r.gate, r.detail))
                .collect::<Vec<_>>()
                .join("; ");
            if age > self.profile.rollout.bake + self.profile.rollout.max_hold && !dry_run {
                let mut s = state.clone();
                let v = s.version;
                s.status = Status::Paused;
                s.reason = Some(format!("gates inconclusive past max_hold: {why}"));
                self.store.save(&mut s, Some(v)).await?;
                self.audit("held", &live, &live, s.reason.clone(), Some(state.stage)).await;
                self.notifier.send("held", s.reason.as_deref().unwrap_or_default(), &s).await;
                return Ok(report(
                    "held",
                    format!("HELD at stage {}: gates inconclusive past max_hold; the rollout is paused", state.stage),
                    exit::HELD,
                    live,
                    &s,
                ));
            }
            return Ok(report(
                "not-yet",
                format!("holding at stage {}/{}: gates inconclusive ({why})", state.stage, stages.len()),
                exit::OK,
                live,
                &state,
            ));
        }
        if age < self.profile.rollout.bake {
            let left = self.profile.rollout.bake - age;
            let msg = format!(
                "not yet time: stage {}/{} ({} {}%) has baked {} of {}",
                state.stage,
                stages.len(),
                state.candidate,
                state.percent,
                humantime::format_duration(Duration::from_secs(age.as_secs())),
                humantime::format_duration(self.profile.rollout.bake)
            );
            tracing::info!(left_secs = left.as_secs(), "not yet time");
            return Ok(report("not-yet", msg, exit::OK, live, &state));
        }
        if state.stage >= stages.len() {
            let mut s = state.clone();
            let v = s.version;
            if dry_run {
                return Ok(report("dry-run", "would mark the rollout completed".into(), exit::OK, live, &s));
            }
            s.status = Status::Completed;
            s.stable = state.candidate;
            s.candidate = state.stable;
            s.lease = None;
            self.store.save(&mut s, Some(v)).await?;
            self.audit("completed", &live, &live, None, Some(state.stage)).await;
            self.notifier.send("completed", &format!("all traffic on {}", state.candidate), &s).await;
            return Ok(report(
                "completed",
                format!("rollout completed: all traffic on {}", state.candidate),
                exit::OK,
                live,
                &s,
            ));
        }
        let next = stages[state.stage];
        if dry_run {
            return Ok(report(
                "dry-run",
                format!("would move {} to {next}% (stage {}/{})", state.candidate, state.stage + 1, stages.len()),
                exit::OK,
                live,
                &state,
            ));
        }
        let (s, after) = self.step(state, me, live, next).await?;
        let msg = format!("stage {}/{}: {} at {next}%", s.stage, stages.len(), s.candidate);
        Ok(report("advanced", msg, exit::OK, after, &s))
    }

    /// Claims the next write, moves traffic one stage, records it; returns the state and the split
    /// written. A rollback landing in between wins: traffic goes back and this exits 5.
    async fn step(
        &self,
        mut state: RolloutState,
        me: String,
        live: Vec<RouteView>,
        next: Percent,
    ) -> Result<(RolloutState, Vec<RouteView>)> {
        let v = state.version;
        state.lease = Some(crate::state::Lease { holder: me, expires_ms: now_ms() + self.lease().as_millis() as u64 });
        self.store.save(&mut state, Some(v)).await?;
        let after = self.traffic.shift(state.candidate, next, Some(&live)).await?;
        state.stage += 1;
        state.percent = next;
        state.weights = RouteWeights::of(&after);
        state.stage_reached_ms = now_ms();
        state.lease = None;
        let v = state.version;
        if let Err(e) = self.store.save(&mut state, Some(v)).await {
            let _ = self.traffic.shift(state.stable, Percent::FULL, None).await;
            return Err(e);
        }
        self.audit(
            "stage",
            &live,
            &after,
            Some(format!("stage {}: {} {next}%", state.stage, state.candidate)),
            Some(state.stage),
        )
        .await;
        self.notifier
            .send(
                "stage-reached",
                &format!("stage {}/{}: {} at {next}%", state.stage, state.stages.len(), state.candidate),
                &state,
            )
            .await;
        Ok((state, after))
    }

    /// The first call of a scheduled rollout: gates once, then stage 1.
    async fn start(
        &self,
        to: Option<Side>,
        mut routes: Vec<RouteLive>,
        previous: Option<RolloutState>,
        me: String,
        dry_run: bool,
        repoint: bool,
    ) -> Result<StepReport> {
        let stages = &self.profile.rollout.stages;
        let live = views(&routes);
        let Some(stable) = sole(&live).filter(|&s| to.is_none_or(|t| t != s)) else {
            if let (Some(t), Some(s)) = (to, sole(&live))
                && t == s
            {
                return Ok(self.report(
                    "advance",
                    "nothing-to-do",
                    format!("all traffic is already on {t}: nothing to do"),
                    exit::OK,
                    live,
                    previous.as_ref(),
                ));
            }
            return Err(Error::Drift {
                message: "traffic is split and no rollout is in progress: a scheduled rollout starts from all traffic on one side".into(),
                hint: Some("put it on one side first: `cutover rollback --to blue`".into()),
            });
        };
        let to = stable.other();
        if !dry_run {
            crate::sides::ensure(self.sdk, self.profile, self.traffic, &mut routes, &[to], repoint).await?;
        }
        let gates = Gates::new(self.sdk, self.profile, &routes);
        gates.preflight(to).await?;
        let ctx = GateContext {
            profile: self.profile.name.clone(),
            candidate: to,
            stable,
            current_percent: Percent::ZERO,
            next_percent: Some(stages[0]),
            stage: 0,
            stages: stages.len(),
            stage_age: Duration::ZERO,
            since: None,
        };
        let readings = gates.read_all(&ctx).await;
        if let Some((why, held)) = crate::gates::blocking(&readings) {
            let (action, code) = if held { ("not-yet", exit::HELD) } else { ("refused", exit::ROLLED_BACK) };
            let mut r = self.report(
                "advance",
                action,
                format!("not starting toward {to}: {why}"),
                code,
                live,
                previous.as_ref(),
            );
            r.readings = readings;
            return Ok(r);
        }
        if dry_run {
            return Ok(self.report(
                "advance",
                "dry-run",
                format!("would start a rollout {stable} → {to} at {}%", stages[0]),
                exit::OK,
                live,
                previous.as_ref(),
            ));
        }
        let mut s = fresh_state(stable, stages, &live, &me, self.lease());
        self.store.save(&mut s, previous.map(|p| p.version)).await?;
        self.audit("started", &live, &live, Some(format!("rollout {stable} → {to}")), Some(0)).await;
        self.notifier.send("started", &format!("rollout {stable} → {to}"), &s).await;
        // The preview hostname follows the candidate from the start.
        self.traffic.point_preview(to).await?;
        let (s, after) = self.step(s, me, live, stages[0]).await?;
        let mut r = self.report(
            "advance",
            "started",
            format!("started {stable} → {to}: stage 1/{} at {}%", stages.len(), stages[0]),
            exit::OK,
            after,
            Some(&s),
        );
        r.readings = readings;
        Ok(r)
    }

    /// `cutover promote`: the candidate to 100 %, and it becomes the stable side.
    pub async fn promote(&self, dry_run: bool, force: bool) -> Result<StepReport> {
        let routes = self.traffic.read().await?;
        let live = views(&routes);
        let Some(state) = self.store.load().await? else {
            return Err(Error::refused_hint(
                "no rollout is recorded: nothing to promote",
                "start one: `cutover rollout` or `cutover advance`",
            ));
        };
        if state.status == Status::Completed || state.status == Status::Aborted {
            return Ok(self.report(
                "promote",
                "nothing-to-do",
                format!("the rollout is {}: nothing to promote", state.status),
                exit::OK,
                live,
                Some(&state),
            ));
        }
        if let Some(l) = state.lease_held_by_other(&holder_id(self.actor().await), now_ms())
            && !force
        {
            return Err(Error::Locked {
                message: format!("another run holds the rollout: {} (until {})", l.holder, fmt_ms(l.expires_ms)),
            });
        }
        if !force && !explains(&state, &live) {
            return Err(drift(&state, &live));
        }
        let candidate = state.candidate;
        if !force {
            let gates = Gates::new(self.sdk, self.profile, &routes);
            gates.preflight(candidate).await?;
            let ctx = GateContext {
                profile: self.profile.name.clone(),
                candidate,
                stable: state.stable,
                current_percent: state.percent,
                next_percent: Some(Percent::FULL),
                stage: state.stage,
                stages: state.stages.len(),
                stage_age: Duration::from_millis(now_ms().saturating_sub(state.stage_reached_ms)),
                since: None,
            };
            let readings = gates.read_all(&ctx).await;
            if let Some((why, held)) = crate::gates::blocking(&readings) {
                return Err(Error::Gate {
                    message: format!(
                        "not promoting {candidate}: {why}\nnothing was changed (`--force` skips the gates)"
                    ),
                    held,
                });
            }
        }
        if dry_run {
            return Ok(self.report(
                "promote",
                "dry-run",
                format!("would move all traffic to {candidate} and make it the stable side"),
                exit::OK,
                live,
                Some(&state),
            ));
        }
        let after = self.traffic.shift(candidate, Percent::FULL, None).await?;
        // The preview hostname moves to the next candidate: the old stable side.
        if let Err(e) = self.traffic.point_preview(candidate.other()).await {
            tracing::warn!(error = %e, "could not point the preview record at the next candidate");
        }
        let mut s = state.clone();
        let v = s.version;
        s.status = Status::Completed;
        s.stable = candidate;
        s.candidate = candidate.other();
        s.stage = s.stages.len();
        s.percent = Percent::FULL;
        s.weights = RouteWeights::of(&after);
        s.lease = None;
        s.reason = None;
        self.store.save(&mut s, Some(v)).await?;
        let msg = format!("all traffic on {candidate}, now the stable side");
        self.audit("promote", &live, &after, Some(msg.clone()), Some(s.stage)).await;
        self.notifier.send("completed", &msg, &s).await;
        let mut r = self.report("promote", "promoted", msg, exit::OK, after, Some(&s));
        r.before = live;
        Ok(r)
    }

    /// `pause` / `resume`.
    pub async fn set_paused(&self, pause: bool, dry_run: bool) -> Result<StepReport> {
        let command = if pause { "pause" } else { "resume" };
        let live = self.traffic.read_views().await?;
        for _ in 0..10 {
            let Some(mut s) = self.store.load().await? else {
                return Err(Error::refused(format!(
                    "no rollout of `{}` is recorded: nothing to {command}",
                    self.profile.name
                )));
            };
            let (from, to) =
                if pause { (Status::Progressing, Status::Paused) } else { (Status::Paused, Status::Progressing) };
            if s.status != from {
                let msg = format!("the rollout is {}: nothing to {command}", s.status);
                return Ok(self.report(command, "nothing-to-do", msg, exit::OK, live, Some(&s)));
            }
            if dry_run {
                let msg = format!("would mark the rollout {to} (no change made)");
                return Ok(self.report(command, "dry-run", msg, exit::OK, live, Some(&s)));
            }
            let v = s.version;
            s.status = to;
            s.reason = if pause { Some(format!("paused by {}", self.actor().await)) } else { None };
            if !pause {
                // The stage bakes again from now.
                s.stage_reached_ms = now_ms();
            }
            match self.store.save(&mut s, Some(v)).await {
                Ok(()) => {
                    let msg = format!("the rollout is {to}");
                    self.audit(command, &live, &live, Some(msg.clone()), Some(s.stage)).await;
                    self.notifier.send(command, &msg, &s).await;
                    return Ok(self.report(command, command, msg, exit::OK, live, Some(&s)));
                }
                Err(Error::Locked { .. }) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(Error::Locked { message: "the rollout state kept changing; try again".into() })
    }
}

/// Every route's split, without what a write needs.
fn views(routes: &[RouteLive]) -> Vec<RouteView> {
    routes.iter().map(RouteLive::view).collect()
}

/// The side holding all traffic on every route, if one does.
pub fn sole(routes: &[RouteView]) -> Option<Side> {
    crate::split::sole_side(routes.iter().map(|r| r.weights))
}

fn drift(state: &RolloutState, live: &[RouteView]) -> Error {
    let mut message = format!(
        "drift: the live weights are not what the rollout state says (stage {}/{} of {} → {}); someone changed them by hand?",
        state.stage,
        state.stages.len(),
        state.stable,
        state.candidate
    );
    for r in live {
        let want = state
            .weights
            .iter()
            .find(|w| w.name == r.name)
            .map(|w| format!("{}:{}", w.blue, w.green))
            .unwrap_or_else(|| "?".into());
        message.push_str(&format!(
            "\n  {} {}: live {}:{}, recorded {want}",
            r.kind, r.name, r.weights.blue, r.weights.green
        ));
    }
    Error::Drift {
        message,
        hint: Some("look at `cutover status` and `cutover history`; `--force` goes on from the live split, `cutover rollback` ends the rollout".into()),
    }
}

/// `history` output.
#[derive(Debug, Serialize)]
pub struct HistoryReport {
    pub profile: String,
    pub entries: Vec<AuditEntry>,
}

impl fmt::Display for HistoryReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.entries.is_empty() {
            return writeln!(f, "no cutovers recorded for profile {}", self.profile);
        }
        for e in &self.entries {
            let split =
                |w: &[RouteWeights]| w.first().map(|w| format!("{}:{}", w.blue, w.green)).unwrap_or_else(|| "-".into());
            write!(f, "{}  {:<12} {:>7} → {:<7} {}", e.at, e.action, split(&e.before), split(&e.after), e.actor)?;
            if let Some(w) = &e.why {
                write!(f, "  ({w})")?;
            }
            writeln!(f)?;
        }
        Ok(())
    }
}
