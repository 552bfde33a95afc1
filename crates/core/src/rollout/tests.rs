//! The core against scripted traffic, gates and a state store in memory, on tokio's paused clock:
//! the same state machine for `rollout` and `advance`, rollbacks that win, faults that are weather,
//! positions a stopped run leaves.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;
use std::time::Duration;

use tokio::sync::watch;

use crate::error::{Error, Result};
use crate::exit;
use crate::model::{Percent, Reading, RouteView, Side, Verdict, Weights};
use crate::rollout::decide::{OnFailure, Rules};
use crate::rollout::engine::{Driver, OnInterrupt, Parts};
use crate::rollout::events::{Event, Recorded};
use crate::rollout::ledger::{ClaimKind, Ledger, MemoryStore, RolloutState, Status};
use crate::rollout::open::{Ask, Opened, open};
use crate::rollout::outcome::{Action, End, Outcome};
use crate::rollout::ports::{Clock, GateContext, Gates, Store, StoreError, Traffic, TrafficError, WriteGuard};
use crate::rollout::scheduled::Step;
use crate::weights::split;

/// Another writer's work, run inside a write in flight.
type Hook = Box<dyn FnOnce(&FakeTraffic)>;

/// Two routes in memory. Writes can be made to fail, or to run a hook first (another writer
/// landing while this write is in flight).
#[derive(Clone, Default)]
struct FakeTraffic {
    routes: Rc<RefCell<Vec<RouteView>>>,
    /// Every write: (side, percent, compare).
    writes: Rc<RefCell<Vec<(Side, Percent)>>>,
    /// Transient failures of the next writes.
    fail_writes: Rc<Cell<u32>>,
    /// Transient failures of the next reads.
    fail_reads: Rc<Cell<u32>>,
    /// Writes toward this side fail for good.
    refuse_side: Rc<Cell<Option<Side>>>,
    /// Runs once, inside the next write toward the candidate, before it lands.
    in_flight: Rc<RefCell<Option<Hook>>>,
    /// Only the first route is written by the next write, then it fails (a process killed
    /// between two writes of one stage).
    cut_next: Rc<Cell<bool>>,
}

impl FakeTraffic {
    fn new(blue: u32, green: u32) -> FakeTraffic {
        let t = FakeTraffic::default();
        *t.routes.borrow_mut() = vec![
            RouteView { kind: crate::model::kinds::DNS, name: "api A".into(), weights: Weights::new(blue, green) },
            RouteView {
                kind: crate::model::kinds::LB,
                name: "front/default".into(),
                weights: Weights::new(blue, green),
            },
        ];
        t
    }

    fn set(&self, blue: u32, green: u32) {
        for r in self.routes.borrow_mut().iter_mut() {
            r.weights = Weights::new(blue, green);
        }
    }

    fn all(&self) -> Vec<Weights> {
        self.routes.borrow().iter().map(|r| r.weights).collect()
    }

    fn on_all(&self, blue: u32, green: u32) -> bool {
        self.all().iter().all(|w| *w == Weights::new(blue, green))
    }
}

impl Traffic for FakeTraffic {
    type Routes = Vec<RouteView>;

    fn views(routes: &Vec<RouteView>) -> Vec<RouteView> {
        routes.clone()
    }

    async fn read(&self) -> Result<Vec<RouteView>, TrafficError> {
        if self.fail_reads.get() > 0 {
            self.fail_reads.set(self.fail_reads.get() - 1);
            return Err(TrafficError::Transient("Throttling: Rate exceeded".into()));
        }
        Ok(self.routes.borrow().clone())
    }

    async fn write(
        &self,
        routes: &Vec<RouteView>,
        side: Side,
        percent: Percent,
        guard: WriteGuard,
    ) -> Result<Vec<RouteView>, TrafficError> {
        if self.refuse_side.get() == Some(side) {
            return Err(TrafficError::Failed(Error::Aws {
                action: "ModifyListener".into(),
                message: "AccessDenied".into(),
                transient: false,
            }));
        }
        if self.fail_writes.get() > 0 {
            self.fail_writes.set(self.fail_writes.get() - 1);
            return Err(TrafficError::Transient("Throttling: Rate exceeded".into()));
        }
        if guard.deadline.is_some_and(|d| tokio::time::Instant::now() > d) {
            return Err(TrafficError::Transient("the claim's deadline passed".into()));
        }
        // A write takes a while; another writer may land meanwhile.
        tokio::time::sleep(Duration::from_millis(200)).await;
        if let Some(hook) = self.in_flight.borrow_mut().take() {
            hook(self);
        }
        // Route53 refuses a batch whose DELETEs no longer match (compare-and-swap); ALB has no
        // such condition and its write lands whatever happened meanwhile.
        let refused = guard.compare
            && routes
                .iter()
                .zip(self.routes.borrow().iter())
                .any(|(read, now)| read.kind == crate::model::kinds::DNS && read != now);
        self.writes.borrow_mut().push((side, percent));
        let cut = self.cut_next.replace(false);
        for (i, r) in self.routes.borrow_mut().iter_mut().enumerate() {
            if cut && i > 0 {
                break;
            }
            if refused && r.kind == crate::model::kinds::DNS {
                continue;
            }
            r.weights = split(r.kind, side, percent);
        }
        if refused {
            return Err(TrafficError::Conflict(
                "InvalidChangeBatch: the values provided do not match the current values".into(),
            ));
        }
        if cut {
            return Err(TrafficError::Transient("connection reset".into()));
        }
        Ok(self.routes.borrow().clone())
    }
}

/// Gates that answer from a script, one verdict per read; the last one repeats.
#[derive(Clone)]
struct Scripted {
    script: Rc<RefCell<VecDeque<Verdict>>>,
    /// (stage, time) of every read.
    reads: Rc<RefCell<Vec<(usize, tokio::time::Instant)>>>,
}

impl Scripted {
    fn new(script: &[Verdict]) -> Scripted {
        Scripted { script: Rc::new(RefCell::new(script.iter().copied().collect())), reads: Rc::default() }
    }
}

impl Gates for Scripted {
    async fn read(&self, ctx: &GateContext) -> Vec<Reading> {
        self.reads.borrow_mut().push((ctx.stage, tokio::time::Instant::now()));
        let mut s = self.script.borrow_mut();
        let v = if s.len() > 1 { s.pop_front().unwrap() } else { *s.front().unwrap() };
        let mut reading = Reading::new("scripted", v, v.to_string());
        if v == Verdict::Frozen {
            let until = serde_json::json!({ "until": "2026-12-21T08:00:00Z" });
            reading.evidence = until.as_object().cloned();
        }
        vec![reading]
    }
}

/// The memory store, made to fail its next operations (a throttled or unreachable table).
#[derive(Clone, Default)]
struct Flaky {
    inner: MemoryStore,
    fail: Rc<Cell<u32>>,
}

impl Flaky {
    fn trip(&self) -> Result<(), StoreError> {
        if self.fail.get() > 0 {
            self.fail.set(self.fail.get() - 1);
            return Err(StoreError::Unavailable("ThrottlingException".into()));
        }
        Ok(())
    }
}

impl Store for Flaky {
    async fn load(&self) -> Result<Option<RolloutState>, StoreError> {
        self.trip()?;
        self.inner.load().await
    }
    async fn save(&self, state: &RolloutState, expected: Option<u64>) -> Result<(), StoreError> {
        self.trip()?;
        self.inner.save(state, expected).await
    }
}

fn rules(on_failure: OnFailure) -> Rules {
    Rules {
        stages: ["10", "25", "50", "100"].iter().map(|s| s.parse().unwrap()).collect(),
        bake: Duration::from_secs(60),
        poll: Duration::from_secs(10),
        failure_threshold: 2,
        on_failure,
        max_hold: Duration::from_secs(300),
        dns_ttl: Duration::ZERO,
    }
}

fn pct(s: &str) -> Percent {
    s.parse().unwrap()
}

struct World {
    traffic: FakeTraffic,
    gates: Scripted,
    store: Flaky,
    rules: Rules,
    events: Rc<RefCell<Vec<Event>>>,
    /// One clock for every run of the world: wall time stands still on the paused clock.
    clock: Clock,
}

impl World {
    fn new(blue: u32, green: u32, script: &[Verdict]) -> World {
        World {
            traffic: FakeTraffic::new(blue, green),
            gates: Scripted::new(script),
            store: Flaky::default(),
            rules: rules(OnFailure::Rollback),
            events: Rc::default(),
            clock: Clock::new(),
        }
    }

    fn state(&self) -> RolloutState {
        self.store.inner.get().expect("a rollout is recorded")
    }

    /// A ledger held by `holder`, and what opening the rollout found (`restart`: as `rollout` does).
    async fn open(
        &self,
        holder: &str,
        restart: bool,
    ) -> Result<(Ledger<Flaky>, Opened<<FakeTraffic as Traffic>::Routes>)> {
        let mut ledger = Ledger::new(self.store.clone(), holder.into(), Duration::from_secs(60));
        let ask = Ask { profile: "t", rules: &self.rules, to: None, force: false, restart };
        let opened = open(&self.traffic, &mut ledger, ask, self.clock.now_ms()).await?;
        Ok((ledger, opened))
    }

    /// The parts a driver runs on, with this world's traffic, gates and clock.
    fn parts<'a>(
        &'a self,
        ledger: &'a mut Ledger<Flaky>,
        sink: &'a mut Recorded,
    ) -> Parts<'a, FakeTraffic, Scripted, Flaky> {
        Parts {
            profile: "t",
            traffic: &self.traffic,
            gates: &self.gates,
            ledger,
            sink,
            clock: self.clock,
            write_window: Duration::from_secs(20),
            attachments: &(),
        }
    }

    async fn rollout(&self, cancel: watch::Receiver<bool>, on_interrupt: OnInterrupt) -> Result<End> {
        let (mut ledger, opened) = self.open("me", true).await?;
        let Opened::Run(opening) = opened else { panic!("nothing to run") };
        let mut sink = Recorded::default();
        let parts = self.parts(&mut ledger, &mut sink);
        let end = Driver::new(parts, &opening).run(opening, cancel, on_interrupt).await;
        self.events.borrow_mut().extend(sink.0);
        end
    }

    async fn run(&self) -> Result<End> {
        let (tx, rx) = watch::channel(false);
        std::mem::forget(tx);
        self.rollout(rx, OnInterrupt::Rollback).await
    }

    async fn advance(&self) -> Result<Step> {
        let (mut ledger, opened) = self.open("cron", false).await?;
        let opening = match opened {
            Opened::Run(o) => o,
            Opened::NothingToDo { .. } | Opened::Idle { .. } => {
                return Ok(Step {
                    action: Action::NothingToDo,
                    message: String::new(),
                    exit_code: 0,
                    stage: 0,
                    routes: vec![],
                    readings: vec![],
                    shadow: vec![],
                });
            }
        };
        let mut sink = Recorded::default();
        let parts = self.parts(&mut ledger, &mut sink);
        let step = Driver::new(parts, &opening).step(opening).await;
        self.events.borrow_mut().extend(sink.0);
        step
    }
}

use Verdict::{Fail, Pass, Wait};

#[tokio::test(start_paused = true)]
async fn all_passing_moves_through_every_stage_baking_each() {
    let w = World::new(100, 0, &[Pass]);
    let start = tokio::time::Instant::now();
    let end = w.run().await.unwrap();
    assert_eq!((end.outcome, end.exit_code), (Outcome::Completed, 0));
    assert_eq!(
        *w.traffic.writes.borrow(),
        vec![(Side::Green, pct("10")), (Side::Green, pct("25")), (Side::Green, pct("50")), (Side::Green, pct("100"))]
    );
    assert!(w.traffic.on_all(0, 100));
    // Four stages of 60 s bake, read every 10 s; the bake of a stage starts when it is reached.
    let elapsed = start.elapsed();
    assert!(elapsed >= Duration::from_secs(240) && elapsed <= Duration::from_secs(250), "{elapsed:?}");
    // Gates were read before the first shift (stage 0) too.
    assert_eq!(w.gates.reads.borrow()[0].0, 0);
    let s = w.state();
    assert_eq!((s.status, s.stable, s.candidate), (Status::Completed, Side::Green, Side::Blue));
    assert!(s.lease.is_none() && s.claims.is_empty(), "lease and claims released: {s:?}");
}

#[tokio::test(start_paused = true)]
async fn a_gate_failing_twice_rolls_back_to_the_stable_side_and_aborts() {
    let w = World::new(100, 0, &[Pass, Pass, Fail, Fail]);
    let end = w.run().await.unwrap();
    assert_eq!((end.outcome, end.exit_code, end.stage), (Outcome::RolledBack, exit::ROLLED_BACK, 1));
    assert!(w.traffic.on_all(100, 0));
    let s = w.state();
    assert_eq!(s.status, Status::Aborted);
    assert!(s.reason.unwrap().contains("failed at stage 1/4"));
}

#[tokio::test(start_paused = true)]
async fn one_failed_reading_below_the_threshold_only_restarts_the_bake() {
    let w = World::new(100, 0, &[Pass, Pass, Fail, Pass]);
    let start = tokio::time::Instant::now();
    let end = w.run().await.unwrap();
    assert_eq!(end.outcome, Outcome::Completed);
    // Stage 1: reached at ~0 s, fail at ~20 s, passing again from ~30 s: baked at ~90 s.
    let elapsed = start.elapsed();
    assert!(elapsed >= Duration::from_secs(90 + 180) && elapsed < Duration::from_secs(90 + 180 + 10), "{elapsed:?}");
}

#[tokio::test(start_paused = true)]
async fn pause_on_failure_leaves_traffic_at_the_stage_and_marks_it_paused() {
    let mut w = World::new(100, 0, &[Pass, Fail, Fail]);
    w.rules.on_failure = OnFailure::Pause;
    let end = w.run().await.unwrap();
    assert_eq!((end.outcome, end.exit_code), (Outcome::Paused, exit::HELD));
    assert!(w.traffic.on_all(90, 10));
    assert_eq!(w.state().status, Status::Paused);
}

#[tokio::test(start_paused = true)]
async fn a_failing_candidate_gets_no_traffic_and_the_rollout_is_not_left_progressing() {
    let w = World::new(100, 0, &[Fail]);
    let end = w.run().await.unwrap();
    assert_eq!((end.outcome, end.stage, end.exit_code), (Outcome::RolledBack, 0, exit::ROLLED_BACK));
    assert!(w.traffic.writes.borrow().is_empty(), "no write at all");
    assert_eq!(w.state().status, Status::Aborted, "a later advance must not move traffic toward it");
    let step = w.advance().await.unwrap();
    assert_eq!(step.action, Action::NothingToDo);
    assert!(w.traffic.on_all(100, 0));
}

#[tokio::test(start_paused = true)]
async fn waiting_past_max_hold_ends_held_with_traffic_left_and_the_rollout_paused() {
    let w = World::new(100, 0, &[Pass, Wait]);
    let start = tokio::time::Instant::now();
    let end = w.run().await.unwrap();
    assert_eq!((end.outcome, end.exit_code, end.stage), (Outcome::Held, exit::HELD, 1));
    assert!(w.traffic.on_all(90, 10));
    assert_eq!(w.state().status, Status::Paused);
    // Held from the first wait reading (10 s into stage 1) until max_hold (300 s).
    let elapsed = start.elapsed();
    assert!(elapsed >= Duration::from_secs(310) && elapsed < Duration::from_secs(320), "{elapsed:?}");
}

async fn interrupted_at(secs: u64, policy: OnInterrupt) -> (World, End) {
    let w = World::new(100, 0, &[Pass]);
    let (tx, rx) = watch::channel(false);
    let local = tokio::task::LocalSet::new();
    let end = local
        .run_until(async {
            tokio::task::spawn_local(async move {
                tokio::time::sleep(Duration::from_secs(secs)).await;
                let _ = tx.send(true);
                std::future::pending::<()>().await;
            });
            w.rollout(rx, policy).await
        })
        .await
        .unwrap();
    (w, end)
}

#[tokio::test(start_paused = true)]
async fn an_interrupt_rolls_back_by_default_and_the_state_says_aborted() {
    let (w, end) = interrupted_at(75, OnInterrupt::Rollback).await;
    assert_eq!((end.outcome, end.exit_code, end.stage), (Outcome::Interrupted, exit::ROLLED_BACK, 2));
    assert!(w.traffic.on_all(100, 0));
    assert_eq!(w.state().status, Status::Aborted);
}

#[tokio::test(start_paused = true)]
async fn an_interrupt_before_the_first_shift_agrees_with_its_exit_code() {
    // Rollback policy: nothing moved, exit 3, the rollout aborted (not "paused").
    let w = World::new(100, 0, &[Wait]);
    let (tx, rx) = watch::channel(false);
    let local = tokio::task::LocalSet::new();
    let end = local
        .run_until(async {
            tokio::task::spawn_local(async move {
                tokio::time::sleep(Duration::from_secs(25)).await;
                let _ = tx.send(true);
                std::future::pending::<()>().await;
            });
            w.rollout(rx, OnInterrupt::Rollback).await
        })
        .await
        .unwrap();
    assert_eq!((end.exit_code, end.stage), (exit::ROLLED_BACK, 0));
    assert_eq!(w.state().status, Status::Aborted);
    assert!(w.traffic.writes.borrow().is_empty());
    // Leave policy: exit 7 and paused.
    let (w, end) = interrupted_at(75, OnInterrupt::Leave).await;
    assert_eq!((end.exit_code, end.stage), (exit::HELD, 2));
    assert!(w.traffic.on_all(75, 25));
    assert_eq!(w.state().status, Status::Paused);
}

#[tokio::test(start_paused = true)]
async fn someone_else_moving_traffic_stops_the_run_without_writing() {
    let w = World::new(100, 0, &[Pass]);
    let t2 = w.traffic.clone();
    let local = tokio::task::LocalSet::new();
    let res = local
        .run_until(async {
            tokio::task::spawn_local(async move {
                tokio::time::sleep(Duration::from_secs(30)).await;
                t2.set(100, 0);
            });
            w.run().await
        })
        .await;
    let err = res.expect_err("drift stops the run");
    assert_eq!(err.exit_code(), exit::DRIFT, "{err}");
    assert_eq!(w.traffic.writes.borrow().len(), 1, "only stage 1 was ever written");
    assert!(w.state().lease.is_none(), "the lease is given back");
}

#[tokio::test(start_paused = true)]
async fn a_failed_rollback_is_exit_4() {
    let w = World::new(100, 0, &[Pass, Pass, Fail, Fail]);
    w.traffic.refuse_side.set(Some(Side::Blue));
    let err = w.run().await.err().unwrap();
    assert_eq!(err.exit_code(), exit::SPLIT_UNKNOWN, "{err}");
    assert!(err.to_string().contains("rollback --to blue"), "{err}");
}

#[tokio::test(start_paused = true)]
async fn without_state_a_split_at_a_stage_resumes_there_and_one_that_is_no_stage_is_refused() {
    let w = World::new(75, 25, &[Pass]);
    let end = w.run().await.unwrap();
    assert_eq!(end.outcome, Outcome::Completed);
    assert_eq!(*w.traffic.writes.borrow(), vec![(Side::Green, pct("50")), (Side::Green, pct("100"))]);

    let w = World::new(70, 30, &[Pass]);
    let err = w.run().await.err().unwrap();
    assert_eq!(err.exit_code(), exit::USAGE, "no side to roll to can be inferred: {err}");
    assert!(w.traffic.writes.borrow().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_rollback_landing_while_a_write_is_in_flight_wins() {
    let w = World::new(100, 0, &[Pass]);
    let store = w.store.inner.clone();
    // Stage 2's write is in flight when a rollback restores blue and marks the rollout aborted.
    let fired = Rc::new(Cell::new(false));
    let f = fired.clone();
    let traffic = w.traffic.clone();
    let local = tokio::task::LocalSet::new();
    let res = local
        .run_until(async {
            tokio::task::spawn_local(async move {
                // After stage 1 (~0 s) and into its bake: arm the hook for the next write.
                tokio::time::sleep(Duration::from_secs(30)).await;
                *traffic.in_flight.borrow_mut() = Some(Box::new(move |t: &FakeTraffic| {
                    t.set(100, 0);
                    store.update(|s| {
                        s.status = Status::Aborted;
                        s.reason = Some("rolled back to blue by oncall".into());
                    });
                    f.set(true);
                }));
            });
            w.run().await
        })
        .await;
    assert!(fired.get());
    let err = res.expect_err("the rollout stops");
    assert_eq!(err.exit_code(), exit::LOCKED, "{err}");
    assert!(err.to_string().contains("aborted"), "{err}");
    // Route53 refused the stale batch; the ALB write landed after the rollback's (no
    // compare-and-swap there): the run took it back itself.
    assert!(w.traffic.writes.borrow().contains(&(Side::Blue, Percent::FULL)), "{:?}", w.traffic.writes.borrow());
    assert!(w.traffic.on_all(100, 0), "{:?}", w.traffic.all());
    let s = w.state();
    assert_eq!(s.status, Status::Aborted);
    assert!(s.claims.iter().all(|c| c.holder != "me"), "the claim is released: {:?}", s.claims);
}

#[tokio::test(start_paused = true)]
async fn throttled_reads_writes_and_state_calls_are_weather() {
    let w = World::new(100, 0, &[Pass]);
    let (t, store) = (w.traffic.clone(), w.store.clone());
    let local = tokio::task::LocalSet::new();
    let end = local
        .run_until(async {
            tokio::task::spawn_local(async move {
                for i in 0..20u64 {
                    tokio::time::sleep(Duration::from_secs(17)).await;
                    match i % 3 {
                        0 => t.fail_writes.set(2),
                        1 => t.fail_reads.set(1),
                        _ => store.fail.set(3),
                    }
                }
            });
            w.run().await
        })
        .await
        .unwrap();
    assert_eq!(end.outcome, Outcome::Completed);
    assert!(w.traffic.on_all(0, 100));
    assert_eq!(w.state().status, Status::Completed);
    assert!(w.events.borrow().iter().any(|e| matches!(e, Event::Retrying { .. })), "the faults were told");
}

#[tokio::test(start_paused = true)]
async fn a_state_table_down_for_longer_than_the_lease_stops_the_run_with_exit_5() {
    let w = World::new(100, 0, &[Pass]);
    let store = w.store.clone();
    let local = tokio::task::LocalSet::new();
    let res = local
        .run_until(async {
            tokio::task::spawn_local(async move {
                tokio::time::sleep(Duration::from_secs(30)).await;
                store.fail.set(u32::MAX);
            });
            w.run().await
        })
        .await;
    let err = res.expect_err("stops");
    assert_eq!(err.exit_code(), exit::LOCKED, "{err}");
    assert!(w.traffic.on_all(90, 10), "no write without a claim: {:?}", w.traffic.all());
}

#[tokio::test(start_paused = true)]
async fn a_run_killed_between_the_writes_of_a_stage_is_finished_by_the_next_run() {
    let w = World::new(100, 0, &[Pass]);
    // Stage 1's write reaches the first route only, and the run dies there: its claim stays.
    w.traffic.cut_next.set(true);
    let local = tokio::task::LocalSet::new();
    let killed = local
        .run_until(async {
            let run = w.run();
            tokio::time::timeout(Duration::from_secs(5), run).await
        })
        .await;
    assert!(killed.is_err(), "stopped mid-run");
    assert_eq!(w.traffic.all(), vec![Weights::new(90, 10), Weights::new(100, 0)]);
    let s = w.state();
    assert!(matches!(s.claims[0].kind, ClaimKind::Forward { stage: 1 }));
    // The dead run's lease must run out first.
    tokio::time::sleep(Duration::from_secs(61)).await;
    let end = w.run().await.unwrap();
    assert_eq!(end.outcome, Outcome::Completed, "no --force needed");
    assert!(w.traffic.on_all(0, 100));
}

#[tokio::test(start_paused = true)]
async fn a_held_lease_is_exit_5_and_writes_nothing() {
    let w = World::new(100, 0, &[Pass]);
    let local = tokio::task::LocalSet::new();
    let _ = local.run_until(async { tokio::time::timeout(Duration::from_secs(30), w.run()).await }).await;
    let before = w.state();
    let err = w.advance().await.expect_err("refused");
    assert_eq!(err.exit_code(), exit::LOCKED, "{err}");
    assert_eq!(w.state(), before, "nothing written");
}

#[tokio::test(start_paused = true)]
async fn drift_is_refused_and_writes_nothing() {
    let w = World::new(100, 0, &[Pass]);
    w.advance().await.unwrap();
    w.traffic.set(70, 30);
    let before = w.state();
    let err = w.advance().await.expect_err("refused");
    assert_eq!(err.exit_code(), exit::DRIFT, "{err}");
    assert!(err.to_string().contains("live 70:30, recorded 90:10"), "{err}");
    assert_eq!(w.state(), before, "nothing written");
}

/// Feeds one script to `rollout` and to `advance` called at every poll tick; both must shift at
/// the same times, fail and pause alike.
async fn shifts_of(
    script: &[Verdict],
    on_failure: OnFailure,
    threshold: u32,
    scheduled: bool,
) -> (Vec<(u64, Percent)>, Option<Outcome>) {
    let mut w = World::new(100, 0, script);
    w.rules.on_failure = on_failure;
    w.rules.failure_threshold = threshold;
    let start = tokio::time::Instant::now();
    let writes = Rc::new(RefCell::new(Vec::new()));
    let t = w.traffic.clone();
    let ws = writes.clone();
    let watch_writes = async move {
        let mut seen = 0;
        loop {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let now = t.writes.borrow().clone();
            for (_, p) in &now[seen..] {
                ws.borrow_mut().push((start.elapsed().as_secs() / 10 * 10, *p));
            }
            seen = now.len();
        }
    };
    let outcome = if scheduled {
        let drive = async {
            let mut last = None;
            for _ in 0..200 {
                match w.advance().await {
                    Ok(step) if step.action == Action::NothingToDo => break,
                    Ok(step) => {
                        last = match step.action {
                            Action::Completed => Some(Outcome::Completed),
                            Action::RolledBack => Some(Outcome::RolledBack),
                            Action::Paused => Some(Outcome::Paused),
                            Action::Held => Some(Outcome::Held),
                            _ => last,
                        };
                        if last.is_some() {
                            break;
                        }
                    }
                    Err(e) => panic!("{e}"),
                }
                tokio::time::sleep(Duration::from_secs(10)).await;
            }
            last
        };
        tokio::select! { o = drive => o, _ = watch_writes => unreachable!() }
    } else {
        tokio::select! { e = w.run() => Some(e.unwrap().outcome), _ = watch_writes => unreachable!() }
    };
    let w = writes.borrow().clone();
    (w, outcome)
}

#[tokio::test(start_paused = true)]
async fn advance_and_rollout_agree_on_threshold_bake_max_hold_and_on_failure() {
    let scripts: [(&[Verdict], OnFailure, u32); 5] = [
        (&[Pass], OnFailure::Rollback, 2),
        (&[Pass, Pass, Fail, Pass], OnFailure::Rollback, 2),
        (&[Pass, Pass, Fail, Fail], OnFailure::Rollback, 2),
        (&[Pass, Pass, Pass, Fail, Fail, Fail], OnFailure::Pause, 3),
        (&[Pass, Pass, Wait], OnFailure::Rollback, 2),
    ];
    for (script, on_failure, threshold) in scripts {
        let continuous = shifts_of(script, on_failure, threshold, false).await;
        let scheduled = shifts_of(script, on_failure, threshold, true).await;
        assert_eq!(continuous, scheduled, "{script:?} {on_failure:?} threshold {threshold}");
    }
}

#[tokio::test(start_paused = true)]
async fn advance_counts_failures_across_calls_and_pauses_by_on_failure() {
    let mut w = World::new(100, 0, &[Pass, Fail, Fail]);
    w.rules.on_failure = OnFailure::Pause;
    assert_eq!(w.advance().await.unwrap().action, Action::Started);
    tokio::time::sleep(Duration::from_secs(10)).await;
    let one = w.advance().await.unwrap();
    assert_eq!((one.action, one.exit_code), (Action::NotYet, 0), "one fail of two: {}", one.message);
    assert_eq!(w.state().progress.fails.get("scripted"), Some(&1), "kept between calls");
    tokio::time::sleep(Duration::from_secs(10)).await;
    let two = w.advance().await.unwrap();
    assert_eq!((two.action, two.exit_code), (Action::Paused, exit::HELD));
    assert!(w.traffic.on_all(90, 10));
    assert_eq!(w.state().status, Status::Paused);
}

#[tokio::test(start_paused = true)]
async fn a_freeze_holds_a_baked_stage_and_rollout_ends_held_past_max_hold_telling_it_once() {
    let w = World::new(100, 0, &[Pass, Verdict::Frozen]);
    let start = tokio::time::Instant::now();
    let end = w.run().await.unwrap();
    assert_eq!((end.outcome, end.exit_code, end.stage), (Outcome::Held, exit::HELD, 1));
    assert!(end.reason.as_deref().unwrap().starts_with("frozen for 5m"), "{:?}", end.reason);
    assert!(w.traffic.on_all(90, 10), "held at its weight");
    // Stage 1 baked while frozen (60 s), then held max_hold (300 s).
    let elapsed = start.elapsed();
    assert!(elapsed >= Duration::from_secs(360) && elapsed < Duration::from_secs(380), "{elapsed:?}");
    let frozen = w.events.borrow().iter().filter(|e| matches!(e, Event::Frozen { stage: 1, .. })).count();
    assert_eq!(frozen, 1, "said (and audited, and notified) once");
}

#[tokio::test(start_paused = true)]
async fn advance_says_frozen_until_when_at_every_call_and_never_ends_held_by_a_freeze() {
    let w = World::new(100, 0, &[Pass, Verdict::Frozen]);
    assert_eq!(w.advance().await.unwrap().action, Action::Started);
    let mut said = Vec::new();
    for _ in 0..60 {
        tokio::time::sleep(Duration::from_secs(10)).await;
        let step = w.advance().await.unwrap();
        assert_eq!((step.action, step.exit_code), (Action::NotYet, 0), "{}", step.message);
        said.push(step.message);
    }
    // Baking for a minute, then frozen — for ten minutes, twice max_hold.
    assert!(said[0].starts_with("not yet time: at stage 1/4 (green 10%)"), "{}", said[0]);
    let last = said.last().unwrap();
    assert!(last.starts_with("frozen until 2026-12-21T08:00:00Z at stage 1/4 (green 10%): scripted"), "{last}");
    assert!(w.traffic.on_all(90, 10));
    assert_eq!(w.state().status, Status::Progressing, "the next call after the freeze moves on");
    let frozen = w.events.borrow().iter().filter(|e| matches!(e, Event::Frozen { .. })).count();
    assert_eq!(frozen, 1, "said once");
}

#[tokio::test(start_paused = true)]
async fn advance_never_jumps_stages_after_traffic_was_put_back_by_hand() {
    let w = World::new(100, 0, &[Pass]);
    w.advance().await.unwrap();
    assert!(w.traffic.on_all(90, 10));
    tokio::time::sleep(Duration::from_secs(120)).await;
    w.traffic.set(100, 0);
    let err = w.advance().await.expect_err("refused");
    assert_eq!(err.exit_code(), exit::DRIFT);
    assert!(w.traffic.on_all(100, 0));
}

#[tokio::test(start_paused = true)]
async fn a_claim_whose_write_failed_this_time_outlives_the_run_until_it_can_no_longer_land() {
    let w = World::new(100, 0, &[Pass]);
    // The first write times out (it may still land, for all the run knows).
    w.traffic.fail_writes.set(1);
    let step = w.advance().await.unwrap();
    assert_eq!(step.action, Action::NotYet, "{}", step.message);
    let s = w.state();
    assert!(s.lease.is_none(), "the call let go of the lease");
    assert!(
        matches!(s.claims.as_slice(), [c] if c.kind == ClaimKind::Forward { stage: 1 }),
        "but not of the claim: {:?}",
        s.claims
    );
    // A rollback now waits on it …
    let mut oncall = Ledger::new(w.store.clone(), "oncall".into(), Duration::from_secs(60));
    let routes = w.traffic.routes.borrow().clone();
    let open = oncall.abort(Side::Blue, "rolled back", &routes, Duration::from_secs(10), || w.clock.now_ms()).await;
    assert_eq!(open.unwrap().unwrap().len(), 1);
    // … until the write can no longer land.
    tokio::time::sleep(Duration::from_secs(23)).await;
    assert!(oncall.open_claims(w.clock.now_ms()).await.unwrap().is_empty());
}
