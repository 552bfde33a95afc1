//! The rollout engine: moves traffic to the candidate in stages, bakes each stage while reading
//! the gates, and rolls back (or pauses) when a gate fails.
//!
//! It sees traffic through [`TrafficPort`] and gates through [`GateSet`], and tells what happens
//! through [`Event`]s; all waiting is on tokio's clock, so its tests run on paused time against a
//! scripted fake. A run ends with a [`RolloutReport`] whose `outcome` maps to one exit code.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::coord::Guard;
use crate::error::{Error, Result};
use crate::events::{Event, Reporter};
use crate::exit;
use crate::gates::{GateContext, GateSet, Reading, Verdict};
use crate::profile::{OnFailure, Rollout};
use crate::split::{Percent, Side, choose_weights};
use crate::splitter::{RouteView, Traffic};

/// The engine's view of traffic: read every route, or move them all to one split.
#[allow(async_fn_in_trait)]
pub trait TrafficPort {
    async fn read(&self) -> Result<Vec<RouteView>>;
    /// Moves every route to `percent` on `side`. With `expected`, refuses ([`Error::Drift`])
    /// when the live weights are not those: someone else moved traffic since this run did.
    async fn shift(&self, side: Side, percent: Percent, expected: Option<&[RouteView]>) -> Result<Vec<RouteView>>;
}

impl TrafficPort for Traffic {
    async fn read(&self) -> Result<Vec<RouteView>> {
        Ok(Traffic::read(self).await?.iter().map(|r| r.view()).collect())
    }

    async fn shift(&self, side: Side, percent: Percent, expected: Option<&[RouteView]>) -> Result<Vec<RouteView>> {
        let live = Traffic::read(self).await?;
        if let Some(expected) = expected {
            let now: Vec<RouteView> = live.iter().map(|r| r.view()).collect();
            if now != expected {
                return Err(drift_error(expected, &now));
            }
        }
        let changes = Traffic::plan(&live, side, percent);
        let after = self.apply(&changes).await?;
        Ok(after.iter().map(|r| r.view()).collect())
    }
}

fn drift_error(expected: &[RouteView], now: &[RouteView]) -> Error {
    let mut message =
        String::from("the live weights changed under this run (someone else moved traffic): stopping without writing");
    for (e, n) in expected.iter().zip(now) {
        if e.weights != n.weights {
            message.push_str(&format!(
                "\n  {} {}: expected {}:{}, live {}:{}",
                n.kind, n.name, e.weights.blue, e.weights.green, n.weights.blue, n.weights.green
            ));
        }
    }
    Error::Drift {
        message,
        hint: Some(
            "check `cutover status`; start the rollout again (or pass --force) once the split is what you want".into(),
        ),
    }
}

/// What a stopped (Ctrl-C, SIGTERM) rollout does with traffic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnInterrupt {
    /// All traffic back to the stable side (the default: a stopped CI job must not leave a split).
    Rollback,
    /// Leave traffic at the stage reached.
    Leave,
}

/// How a rollout ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// All traffic on the candidate.
    Completed,
    /// All traffic was on the candidate already.
    NothingToDo,
    /// A gate failed; all traffic is back on the stable side.
    RolledBack,
    /// A gate failed and `on_failure = "pause"`: traffic left at the stage.
    Paused,
    /// Gates inconclusive for longer than `max_hold`: traffic left at the stage.
    Held,
    /// Stopped by a signal; traffic rolled back (or left, by policy).
    Interrupted,
}

impl Outcome {
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

/// The result of `cutover rollout`: text on stdout, or one JSON document.
#[derive(Debug, Serialize)]
pub struct RolloutReport {
    pub profile: String,
    pub from: Side,
    pub to: Side,
    pub outcome: Outcome,
    pub exit_code: i32,
    /// Stages completed or reached (1-based; 0 when no traffic moved).
    pub stage: usize,
    pub stages: usize,
    /// The candidate's share of traffic at the end.
    pub percent: Percent,
    pub routes: Vec<RouteView>,
    /// Why the run ended where it did, when it did not complete.
    pub reason: Option<String>,
    /// The last gate readings.
    pub readings: Vec<Reading>,
    pub elapsed_secs: f64,
}

impl fmt::Display for RolloutReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let headline = match self.outcome {
            Outcome::Completed => format!("rollout completed: all traffic on {}", self.to),
            Outcome::NothingToDo => format!("nothing to do: all traffic is already on {}", self.to),
            Outcome::RolledBack => format!("ROLLED BACK: all traffic on {} again", self.from),
            Outcome::Paused => format!(
                "PAUSED at stage {}/{}: {} {}% (traffic left there)",
                self.stage, self.stages, self.to, self.percent
            ),
            Outcome::Held if self.stage == 0 => {
                format!("HELD before the first shift: all traffic still on {}", self.from)
            }
            Outcome::Held => format!(
                "HELD at stage {}/{}: {} {}% (traffic left there)",
                self.stage, self.stages, self.to, self.percent
            ),
            Outcome::Interrupted if self.percent == Percent::ZERO => {
                format!("INTERRUPTED: all traffic on {}", self.from)
            }
            Outcome::Interrupted => format!(
                "INTERRUPTED at stage {}/{}: {} {}% (traffic left there)",
                self.stage, self.stages, self.to, self.percent
            ),
        };
        writeln!(f, "{headline}  [profile {}, {:.1}s, exit {}]", self.profile, self.elapsed_secs, self.exit_code)?;
        if let Some(r) = &self.reason {
            writeln!(f, "  why: {r}")?;
        }
        for r in &self.routes {
            writeln!(f, "  {:<8}{:<44} {}", r.kind.to_string(), r.name, r.weights)?;
        }
        Ok(())
    }
}

/// How one stage's bake ended.
enum Bake {
    Baked,
    Stopped(Error),
    Failed(Reading),
    Held(String),
    Interrupted,
}

/// Drives one rollout.
pub struct Engine<'a, T: TrafficPort, G: GateSet, Gd: Guard> {
    pub profile: String,
    pub rollout: &'a Rollout,
    pub traffic: &'a T,
    pub gates: &'a G,
    pub reporter: &'a mut dyn Reporter,
    pub guard: &'a mut Gd,
    /// Becomes `true` when the run is asked to stop.
    pub cancel: watch::Receiver<bool>,
    pub on_interrupt: OnInterrupt,
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

/// Where a split is among the stages toward `to`: `Some(i)` when every route is at stage `i`.
fn stage_of(routes: &[RouteView], to: Side, stages: &[Percent]) -> Option<usize> {
    stages.iter().position(|&p| routes.iter().all(|r| choose_weights(to, p, r.kind.max_weight()).weights == r.weights))
}

impl<T: TrafficPort, G: GateSet, Gd: Guard> Engine<'_, T, G, Gd> {
    /// Runs the rollout to its end. Errors are for what the engine could not do at all (a refused
    /// start, drift, a failed write, a lost lease); gate outcomes are in the report.
    pub async fn run(&mut self, to: Option<Side>) -> Result<RolloutReport> {
        let report = self.run_stages(to).await?;
        self.guard.end(&report).await;
        Ok(report)
    }

    async fn run_stages(&mut self, to: Option<Side>) -> Result<RolloutReport> {
        let started = Instant::now();
        let stages = self.rollout.stages.clone();
        let mut routes = self.traffic.read().await?;
        let sole = sole_side(&routes);

        // Which way, and from where.
        let to = match (to, sole) {
            (Some(to), _) => to,
            (None, Some(live)) => live.other(),
            (None, None) => {
                Side::ALL.into_iter().find(|&s| stage_of(&routes, s, &stages).is_some()).ok_or_else(|| {
                    Error::refused_hint(
                        "traffic is split and the split is no stage of this rollout, so the side to roll to is unclear",
                        "say which side to roll to: `cutover rollout --to green`",
                    )
                })?
            }
        };
        let from = to.other();
        let profile = self.profile.clone();
        let report = |outcome: Outcome,
                      stage: usize,
                      percent: Percent,
                      routes: Vec<RouteView>,
                      reason: Option<String>,
                      readings: Vec<Reading>,
                      rolled_back: bool| RolloutReport {
            profile: profile.clone(),
            from,
            to,
            outcome,
            exit_code: outcome.exit_code(rolled_back),
            stage,
            stages: stages.len(),
            percent,
            routes,
            reason,
            readings,
            elapsed_secs: started.elapsed().as_secs_f64(),
        };
        if sole == Some(to) {
            return Ok(report(Outcome::NothingToDo, stages.len(), Percent::FULL, routes, None, Vec::new(), false));
        }
        // Start from all traffic on the stable side, or resume at a stage of this rollout.
        let first = if sole == Some(from) {
            0
        } else {
            match stage_of(&routes, to, &stages) {
                Some(i) => i,
                None => {
                    let mut message = format!(
                        "the live split is neither all traffic on {from} nor a stage of this rollout toward {to}:"
                    );
                    for r in &routes {
                        message.push_str(&format!("\n  {} {}: {}", r.kind, r.name, r.weights));
                    }
                    return Err(Error::Drift {
                        message,
                        hint: Some(format!(
                            "put traffic back first (`cutover rollback --to {from}`), or set it to a stage (`cutover set {to}=STAGE`)"
                        )),
                    });
                }
            }
        };
        self.reporter.event(&Event::Started {
            profile: self.profile.clone(),
            from,
            to,
            stages: stages.clone(),
            resume_at: (sole != Some(from)).then_some(first + 1),
            routes: routes.clone(),
        });

        let mut ctx = GateContext {
            profile: self.profile.clone(),
            candidate: to,
            stable: from,
            current_percent: if first == 0 && sole == Some(from) { Percent::ZERO } else { stages[first] },
            next_percent: None,
            stage: 0,
            stages: stages.len(),
            stage_age: Duration::ZERO,
            since: None,
        };
        let mut readings: Vec<Reading> = Vec::new();

        // Gates before the first shift: a candidate that is already failing gets no traffic.
        if sole == Some(from) {
            ctx.next_percent = Some(stages[0]);
            match self.bake(&mut ctx, Duration::ZERO, &mut readings).await {
                Bake::Baked => {}
                Bake::Failed(r) => {
                    let reason = format!("gate {} failed before any traffic moved: {}", r.gate, r.detail);
                    self.reporter.event(&Event::Ended { outcome: Outcome::RolledBack, reason: Some(reason.clone()) });
                    return Ok(report(Outcome::RolledBack, 0, Percent::ZERO, routes, Some(reason), readings, true));
                }
                Bake::Held(why) => {
                    self.reporter.event(&Event::Ended { outcome: Outcome::Held, reason: Some(why.clone()) });
                    return Ok(report(Outcome::Held, 0, Percent::ZERO, routes, Some(why), readings, false));
                }
                Bake::Stopped(e) => return Err(e),
                Bake::Interrupted => {
                    let why = "interrupted before any traffic moved".to_string();
                    self.reporter.event(&Event::Ended { outcome: Outcome::Interrupted, reason: Some(why.clone()) });
                    return Ok(report(Outcome::Interrupted, 0, Percent::ZERO, routes, Some(why), readings, true));
                }
            }
        }
        // Resuming at a stage: it is baked again before moving on.
        let mut index = first;
        loop {
            let percent = stages[index];
            let already_there = sole != Some(from) && index == first;
            if !already_there {
                if *self.cancel.borrow() {
                    return self.interrupted(from, index, ctx.current_percent, routes, readings, &report).await;
                }
                self.guard.before_shift(index + 1, percent).await?;
                let before = routes.clone();
                routes = self.traffic.shift(to, percent, Some(&routes)).await?;
                if let Err(e) = self.guard.after_shift(index + 1, percent, &before, &routes).await {
                    // A rollback took over while this write was in flight: give it the last word.
                    self.reporter.event(&Event::RollingBack { to: from, reason: e.to_string() });
                    let _ = self.traffic.shift(from, Percent::FULL, None).await;
                    return Err(e);
                }
                self.reporter.event(&Event::StageApplied {
                    stage: index + 1,
                    stages: stages.len(),
                    side: to,
                    percent,
                    routes: routes.clone(),
                });
            } else {
                self.reporter.event(&Event::StageResumed { stage: index + 1, stages: stages.len(), side: to, percent });
            }
            ctx.current_percent = percent;
            ctx.stage = index + 1;
            ctx.next_percent = stages.get(index + 1).copied();
            match self.bake(&mut ctx, self.rollout.bake, &mut readings).await {
                Bake::Baked => {
                    self.reporter.event(&Event::StageBaked { stage: index + 1, stages: stages.len(), percent });
                    if index + 1 == stages.len() {
                        self.reporter.event(&Event::Ended { outcome: Outcome::Completed, reason: None });
                        return Ok(report(Outcome::Completed, index + 1, percent, routes, None, readings, false));
                    }
                    index += 1;
                }
                Bake::Failed(r) => {
                    let reason = format!(
                        "gate {} failed at stage {}/{} ({to} {percent}%): {}",
                        r.gate,
                        index + 1,
                        stages.len(),
                        r.detail
                    );
                    match self.rollout.on_failure {
                        OnFailure::Rollback => {
                            let after = self.roll_back(from, &reason).await?;
                            self.reporter
                                .event(&Event::Ended { outcome: Outcome::RolledBack, reason: Some(reason.clone()) });
                            return Ok(report(
                                Outcome::RolledBack,
                                index + 1,
                                Percent::ZERO,
                                after,
                                Some(reason),
                                readings,
                                true,
                            ));
                        }
                        OnFailure::Pause => {
                            self.reporter
                                .event(&Event::Ended { outcome: Outcome::Paused, reason: Some(reason.clone()) });
                            return Ok(report(
                                Outcome::Paused,
                                index + 1,
                                percent,
                                routes,
                                Some(reason),
                                readings,
                                false,
                            ));
                        }
                    }
                }
                Bake::Held(why) => {
                    self.reporter.event(&Event::Ended { outcome: Outcome::Held, reason: Some(why.clone()) });
                    return Ok(report(Outcome::Held, index + 1, percent, routes, Some(why), readings, false));
                }
                Bake::Interrupted => {
                    return self.interrupted(from, index + 1, percent, routes, readings, &report).await;
                }
                Bake::Stopped(e) => return Err(e),
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn interrupted(
        &mut self,
        from: Side,
        stage: usize,
        percent: Percent,
        routes: Vec<RouteView>,
        readings: Vec<Reading>,
        report: &impl Fn(Outcome, usize, Percent, Vec<RouteView>, Option<String>, Vec<Reading>, bool) -> RolloutReport,
    ) -> Result<RolloutReport> {
        match self.on_interrupt {
            OnInterrupt::Rollback if percent > Percent::ZERO => {
                let reason = format!("interrupted at stage {stage}: traffic rolled back to {from}");
                let after = self.roll_back(from, &reason).await?;
                self.reporter.event(&Event::Ended { outcome: Outcome::Interrupted, reason: Some(reason.clone()) });
                Ok(report(Outcome::Interrupted, stage, Percent::ZERO, after, Some(reason), readings, true))
            }
            _ => {
                let reason = format!("interrupted at stage {stage}: traffic left where it is");
                self.reporter.event(&Event::Ended { outcome: Outcome::Interrupted, reason: Some(reason.clone()) });
                Ok(report(
                    Outcome::Interrupted,
                    stage,
                    percent,
                    routes,
                    Some(reason),
                    readings,
                    percent == Percent::ZERO,
                ))
            }
        }
    }

    /// All traffic to the stable side, whatever the live weights are now. A failure here means
    /// traffic may be split: exit 4.
    async fn roll_back(&mut self, stable: Side, reason: &str) -> Result<Vec<RouteView>> {
        self.reporter.event(&Event::RollingBack { to: stable, reason: reason.to_string() });
        let before = self.traffic.read().await.unwrap_or_default();
        match self.traffic.shift(stable, Percent::FULL, None).await {
            Ok(after) => {
                self.guard.rolled_back(&before, &after, reason).await;
                Ok(after)
            }
            Err(Error::SplitUnknown { message }) => {
                Err(Error::SplitUnknown { message: format!("rolling back failed ({reason}): {message}") })
            }
            Err(e) => {
                let live = match self.traffic.read().await {
                    Ok(routes) => {
                        routes.iter().map(|r| format!("\n  {} {}: {}", r.kind, r.name, r.weights)).collect::<String>()
                    }
                    Err(_) => "\n  (could not read the routes)".to_string(),
                };
                Err(Error::SplitUnknown {
                    message: format!(
                        "rolling back to {stable} failed ({reason}): {e}\ntraffic may be split; run `cutover rollback --to {stable}`. Live now:{live}"
                    ),
                })
            }
        }
    }

    /// Reads the gates every `poll` until they have passed continuously for `bake` (once, when
    /// `bake` is zero), one fails `failure_threshold` times in a row, or they wait past `max_hold`.
    async fn bake(&mut self, ctx: &mut GateContext, bake: Duration, last: &mut Vec<Reading>) -> Bake {
        let stage_start = Instant::now();
        let mut pass_since: Option<Instant> = None;
        let mut hold_since: Option<Instant> = None;
        let mut fails: BTreeMap<String, u32> = BTreeMap::new();
        let mut ticker = tokio::time::interval(self.rollout.poll);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut cancel = self.cancel.clone();
        loop {
            // Time is measured at the ticks, so a bake is exactly a number of polls.
            let now = tokio::select! {
                biased;
                _ = stopped(&mut cancel) => return Bake::Interrupted,
                t = ticker.tick() => t,
            };
            ctx.stage_age = now.duration_since(stage_start);
            if let Err(e) = self.guard.tick().await {
                return Bake::Stopped(e);
            }
            let readings = tokio::select! {
                biased;
                _ = stopped(&mut cancel) => return Bake::Interrupted,
                r = self.gates.read_all(ctx) => r,
            };
            for r in &readings {
                let n = fails.entry(r.gate.clone()).or_default();
                *n = if r.verdict == Verdict::Fail { *n + 1 } else { 0 };
            }
            self.reporter.event(&Event::GatesRead {
                stage: ctx.stage,
                readings: readings.clone(),
                fails: fails.clone(),
            });
            *last = readings.clone();
            if let Some(failed) =
                readings.iter().find(|r| fails.get(&r.gate).copied().unwrap_or(0) >= self.rollout.failure_threshold)
            {
                return Bake::Failed(failed.clone());
            }
            let all_pass = readings.iter().all(|r| r.verdict == Verdict::Pass);
            let waiting: Vec<&Reading> = readings.iter().filter(|r| r.verdict == Verdict::Wait).collect();
            if all_pass {
                hold_since = None;
                let since = *pass_since.get_or_insert(now);
                let baked = now.duration_since(since);
                if baked >= bake {
                    return Bake::Baked;
                }
                self.reporter.event(&Event::Baking { stage: ctx.stage, remaining: bake - baked });
                continue;
            }
            pass_since = None;
            if !waiting.is_empty() {
                let since = *hold_since.get_or_insert(now);
                let held = now.duration_since(since);
                let why = waiting.iter().map(|r| format!("{}: {}", r.gate, r.detail)).collect::<Vec<_>>().join("; ");
                if held >= self.rollout.max_hold {
                    return Bake::Held(format!(
                        "gates inconclusive for {} (max_hold): {why}",
                        humantime::format_duration(round(held))
                    ));
                }
                self.reporter.event(&Event::Held { stage: ctx.stage, reason: why, left: self.rollout.max_hold - held });
            } else {
                hold_since = None;
            }
        }
    }
}

fn round(d: Duration) -> Duration {
    Duration::from_millis(d.as_millis() as u64 / 100 * 100)
}

fn sole_side(routes: &[RouteView]) -> Option<Side> {
    crate::split::sole_side(routes.iter().map(|r| r.weights))
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::collections::VecDeque;

    use super::*;
    use crate::split::Weights;
    use crate::splitter::RouteKind;

    /// Traffic in memory: every shift is recorded; a shift can be made to fail.
    struct FakeTraffic {
        routes: RefCell<Vec<RouteView>>,
        shifts: RefCell<Vec<(Side, Percent)>>,
        fail_shift_to: Option<Side>,
    }

    impl FakeTraffic {
        fn new(blue: u32, green: u32) -> FakeTraffic {
            FakeTraffic {
                routes: RefCell::new(vec![
                    RouteView { kind: RouteKind::Route53, name: "api A".into(), weights: Weights::new(blue, green) },
                    RouteView {
                        kind: RouteKind::Alb,
                        name: "front/default".into(),
                        weights: Weights::new(blue, green),
                    },
                ]),
                shifts: RefCell::new(Vec::new()),
                fail_shift_to: None,
            }
        }
    }

    impl TrafficPort for FakeTraffic {
        async fn read(&self) -> Result<Vec<RouteView>> {
            Ok(self.routes.borrow().clone())
        }
        async fn shift(&self, side: Side, percent: Percent, expected: Option<&[RouteView]>) -> Result<Vec<RouteView>> {
            if let Some(e) = expected
                && e != self.routes.borrow().as_slice()
            {
                return Err(drift_error(e, &self.routes.borrow()));
            }
            if self.fail_shift_to == Some(side) {
                return Err(Error::Aws { action: "ChangeResourceRecordSets".into(), message: "boom".into() });
            }
            self.shifts.borrow_mut().push((side, percent));
            for r in self.routes.borrow_mut().iter_mut() {
                r.weights = choose_weights(side, percent, r.kind.max_weight()).weights;
            }
            Ok(self.routes.borrow().clone())
        }
    }

    /// Gates that answer from a script, one verdict per read; the last one repeats.
    struct ScriptedGates {
        script: RefCell<VecDeque<Verdict>>,
        reads: RefCell<Vec<(usize, tokio::time::Instant)>>,
    }

    impl ScriptedGates {
        fn new(script: &[Verdict]) -> ScriptedGates {
            ScriptedGates { script: RefCell::new(script.iter().copied().collect()), reads: RefCell::new(Vec::new()) }
        }
    }

    impl GateSet for ScriptedGates {
        async fn read_all(&self, ctx: &GateContext) -> Vec<Reading> {
            self.reads.borrow_mut().push((ctx.stage, tokio::time::Instant::now()));
            let mut s = self.script.borrow_mut();
            let v = if s.len() > 1 { s.pop_front().unwrap() } else { *s.front().unwrap() };
            vec![Reading::new("scripted", v, format!("{v}"))]
        }
    }

    #[derive(Default)]
    struct Collect(Vec<String>);
    impl Reporter for Collect {
        fn event(&mut self, e: &Event) {
            self.0.push(format!("{e:?}"));
        }
    }

    fn rollout(on_failure: OnFailure) -> Rollout {
        Rollout {
            stages: ["10", "25", "50", "100"].iter().map(|s| s.parse().unwrap()).collect(),
            bake: Duration::from_secs(60),
            poll: Duration::from_secs(10),
            failure_threshold: 2,
            on_failure,
            max_hold: Duration::from_secs(300),
        }
    }

    async fn run(
        traffic: &FakeTraffic,
        gates: &ScriptedGates,
        r: &Rollout,
        cancel: watch::Receiver<bool>,
    ) -> Result<RolloutReport> {
        let mut rep = Collect::default();
        let mut guard = crate::coord::NoGuard;
        let mut engine = Engine {
            profile: "t".into(),
            rollout: r,
            traffic,
            gates,
            reporter: &mut rep,
            guard: &mut guard,
            cancel,
            on_interrupt: OnInterrupt::Rollback,
        };
        engine.run(None).await
    }

    fn pct(s: &str) -> Percent {
        s.parse().unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn all_passing_moves_through_every_stage_baking_each() {
        let t = FakeTraffic::new(100, 0);
        let g = ScriptedGates::new(&[Verdict::Pass]);
        let (_tx, rx) = watch::channel(false);
        let start = tokio::time::Instant::now();
        let rep = run(&t, &g, &rollout(OnFailure::Rollback), rx).await.unwrap();
        assert_eq!(rep.outcome, Outcome::Completed);
        assert_eq!(rep.exit_code, 0);
        let shifts: Vec<(Side, Percent)> = t.shifts.borrow().clone();
        assert_eq!(
            shifts,
            vec![
                (Side::Green, pct("10")),
                (Side::Green, pct("25")),
                (Side::Green, pct("50")),
                (Side::Green, pct("100"))
            ]
        );
        assert!(t.routes.borrow().iter().all(|r| r.weights == Weights::new(0, 100)));
        // Four stages of 60 s bake each, read every 10 s.
        assert_eq!(start.elapsed(), Duration::from_secs(240));
        // Gates were read before the first shift (stage 0) too.
        assert_eq!(g.reads.borrow()[0].0, 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_gate_failing_twice_rolls_back_to_the_stable_side() {
        let t = FakeTraffic::new(100, 0);
        // Pre-check passes; stage 1 passes once, then fails twice.
        let g = ScriptedGates::new(&[Verdict::Pass, Verdict::Pass, Verdict::Fail, Verdict::Fail]);
        let (_tx, rx) = watch::channel(false);
        let rep = run(&t, &g, &rollout(OnFailure::Rollback), rx).await.unwrap();
        assert_eq!(rep.outcome, Outcome::RolledBack);
        assert_eq!(rep.exit_code, 3);
        assert_eq!(rep.stage, 1);
        assert_eq!(t.shifts.borrow().last(), Some(&(Side::Blue, Percent::FULL)));
        assert!(t.routes.borrow().iter().all(|r| r.weights == Weights::new(100, 0)));
    }

    #[tokio::test(start_paused = true)]
    async fn one_failed_reading_below_the_threshold_only_restarts_the_bake() {
        let t = FakeTraffic::new(100, 0);
        let g = ScriptedGates::new(&[Verdict::Pass, Verdict::Pass, Verdict::Fail, Verdict::Pass]);
        let (_tx, rx) = watch::channel(false);
        let start = tokio::time::Instant::now();
        let rep = run(&t, &g, &rollout(OnFailure::Rollback), rx).await.unwrap();
        assert_eq!(rep.outcome, Outcome::Completed);
        // Stage 1: pass at 0 s, fail at 10 s, passing again from 20 s: baked at 80 s.
        assert_eq!(start.elapsed(), Duration::from_secs(80 + 3 * 60));
    }

    #[tokio::test(start_paused = true)]
    async fn pause_on_failure_leaves_traffic_at_the_stage() {
        let t = FakeTraffic::new(100, 0);
        let g = ScriptedGates::new(&[Verdict::Pass, Verdict::Fail, Verdict::Fail]);
        let (_tx, rx) = watch::channel(false);
        let rep = run(&t, &g, &rollout(OnFailure::Pause), rx).await.unwrap();
        assert_eq!(rep.outcome, Outcome::Paused);
        assert_eq!(rep.exit_code, 7);
        assert!(t.routes.borrow().iter().all(|r| r.weights == Weights::new(90, 10)));
    }

    #[tokio::test(start_paused = true)]
    async fn a_failing_candidate_gets_no_traffic() {
        let t = FakeTraffic::new(100, 0);
        let g = ScriptedGates::new(&[Verdict::Fail]);
        let (_tx, rx) = watch::channel(false);
        let rep = run(&t, &g, &rollout(OnFailure::Rollback), rx).await.unwrap();
        assert_eq!(rep.outcome, Outcome::RolledBack);
        assert_eq!(rep.stage, 0);
        assert!(t.shifts.borrow().is_empty(), "no write at all");
    }

    #[tokio::test(start_paused = true)]
    async fn waiting_past_max_hold_ends_held_with_traffic_left() {
        let t = FakeTraffic::new(100, 0);
        let g = ScriptedGates::new(&[Verdict::Pass, Verdict::Wait]);
        let (_tx, rx) = watch::channel(false);
        let start = tokio::time::Instant::now();
        let rep = run(&t, &g, &rollout(OnFailure::Rollback), rx).await.unwrap();
        assert_eq!(rep.outcome, Outcome::Held);
        assert_eq!(rep.exit_code, 7);
        assert_eq!(rep.stage, 1);
        assert!(t.routes.borrow().iter().all(|r| r.weights == Weights::new(90, 10)));
        // Held from the first wait reading (0 s into stage 1) until max_hold (300 s).
        assert_eq!(start.elapsed(), Duration::from_secs(300));
    }

    #[tokio::test(start_paused = true)]
    async fn an_interrupt_rolls_back_by_default() {
        let t = FakeTraffic::new(100, 0);
        let g = ScriptedGates::new(&[Verdict::Pass]);
        let (tx, rx) = watch::channel(false);
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(75)).await;
            let _ = tx.send(true);
            std::future::pending::<()>().await;
        });
        let rep = run(&t, &g, &rollout(OnFailure::Rollback), rx).await.unwrap();
        assert_eq!(rep.outcome, Outcome::Interrupted);
        assert_eq!(rep.exit_code, 3);
        assert_eq!(rep.stage, 2);
        assert!(t.routes.borrow().iter().all(|r| r.weights == Weights::new(100, 0)));
    }

    #[tokio::test(start_paused = true)]
    async fn someone_else_moving_traffic_stops_the_run_without_writing() {
        let t = FakeTraffic::new(100, 0);
        let g = ScriptedGates::new(&[Verdict::Pass]);
        let (_tx, rx) = watch::channel(false);
        let t = std::rc::Rc::new(t);
        let t2 = t.clone();
        // An on-call engineer puts everything back on blue 30 s into stage 1.
        let local = tokio::task::LocalSet::new();
        let res = local
            .run_until(async move {
                tokio::task::spawn_local(async move {
                    tokio::time::sleep(Duration::from_secs(30)).await;
                    for r in t2.routes.borrow_mut().iter_mut() {
                        r.weights = Weights::new(100, 0);
                    }
                });
                run(&t, &g, &rollout(OnFailure::Rollback), rx).await.map(|_| t)
            })
            .await;
        let err = res.err().expect("drift stops the run");
        assert_eq!(err.exit_code(), exit::DRIFT);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_rollback_is_exit_4() {
        let mut t = FakeTraffic::new(100, 0);
        t.fail_shift_to = Some(Side::Blue);
        let g = ScriptedGates::new(&[Verdict::Pass, Verdict::Fail, Verdict::Fail]);
        let (_tx, rx) = watch::channel(false);
        let err = run(&t, &g, &rollout(OnFailure::Rollback), rx).await.err().unwrap();
        assert_eq!(err.exit_code(), exit::SPLIT_UNKNOWN);
        assert!(err.to_string().contains("rollback --to blue"), "{err}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_split_at_a_stage_resumes_there() {
        let t = FakeTraffic::new(75, 25);
        let g = ScriptedGates::new(&[Verdict::Pass]);
        let (_tx, rx) = watch::channel(false);
        let rep = run(&t, &g, &rollout(OnFailure::Rollback), rx).await.unwrap();
        assert_eq!(rep.outcome, Outcome::Completed);
        assert_eq!(t.shifts.borrow().clone(), vec![(Side::Green, pct("50")), (Side::Green, pct("100"))]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_split_that_is_no_stage_is_drift() {
        let t = FakeTraffic::new(70, 30);
        let g = ScriptedGates::new(&[Verdict::Pass]);
        let (_tx, rx) = watch::channel(false);
        let err = run(&t, &g, &rollout(OnFailure::Rollback), rx).await.err().unwrap();
        assert_eq!(err.exit_code(), exit::USAGE, "no side to roll to can be inferred");
        assert!(t.shifts.borrow().is_empty());
    }
}
