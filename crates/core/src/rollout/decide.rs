//! The one rollout state machine: given the rules, the persisted progress of the current stage,
//! this reading of the gates and the time, what happens next.
//!
//! `rollout` calls it once per poll tick, `advance` once per call, with the same meaning of
//! `bake`, `failure_threshold`, `max_hold` and `on_failure`. Its progress (consecutive failures per
//! gate, since when every gate has passed, since when a gate has waited) lives in the state item,
//! so a scheduled rollout that is called every few minutes keeps its streaks between calls.
//!
//! Time is milliseconds since the Unix epoch, so progress written by one process means the same to
//! the next one.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::model::{Percent, Reading, Verdict};

/// What to do when a gate fails `failure_threshold` times in a row.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OnFailure {
    Rollback,
    Pause,
}

/// How a rollout moves: the stages and the timing of gate readings (the profile's `[rollout]`).
#[derive(Clone, Debug, PartialEq)]
pub struct Rules {
    /// Percent on the candidate at each stage; ascending, ending at 100.
    pub stages: Vec<Percent>,
    pub bake: Duration,
    pub poll: Duration,
    pub failure_threshold: u32,
    pub on_failure: OnFailure,
    pub max_hold: Duration,
    /// The longest time resolvers may keep answering from before a shift (the DNS TTL of the
    /// Route53 routes the observed split does not verify): no stage bakes shorter.
    pub dns_ttl: Duration,
}

impl Default for Rules {
    fn default() -> Self {
        Rules {
            stages: [10, 25, 50, 100].iter().map(|p| Percent::from_milli(p * 1000).expect("in range")).collect(),
            bake: Duration::from_secs(300),
            poll: Duration::from_secs(15),
            failure_threshold: 2,
            on_failure: OnFailure::Rollback,
            max_hold: Duration::from_secs(3600),
            dns_ttl: Duration::ZERO,
        }
    }
}

impl Rules {
    /// The candidate's share at `stage` (0: before the first shift).
    pub fn percent(&self, stage: usize) -> Percent {
        if stage == 0 {
            Percent::ZERO
        } else {
            self.stages.get(stage - 1).or(self.stages.last()).copied().unwrap_or(Percent::FULL)
        }
    }

    /// How long `stage` must read pass before the next step: nothing before the first shift (the
    /// gates must pass once), `bake` at every stage, the last one (100 %) included — never less
    /// than the DNS TTL, or clients still resolving the old split would not have been judged.
    pub fn bake_of(&self, stage: usize) -> Duration {
        if stage == 0 { Duration::ZERO } else { self.bake.max(self.dns_ttl) }
    }
}

/// Where the current stage stands: persisted in the state item after every change.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    /// The stage reached: 0 before the first shift, 1-based after.
    pub stage: usize,
    /// When that stage was reached (or the rollout started, for stage 0).
    pub stage_reached_ms: u64,
    /// When the gates were last read during this stage; `None` until the first reading.
    #[serde(default)]
    pub read_ms: Option<u64>,
    /// Since when every gate has read pass without a break.
    #[serde(default)]
    pub pass_since_ms: Option<u64>,
    /// Since when some gate has read wait without a pass of all.
    #[serde(default)]
    pub hold_since_ms: Option<u64>,
    /// Since when a calendar has held a baked stage (a change freeze).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frozen_since_ms: Option<u64>,
    /// Consecutive fail readings per shadow gate (never acted on).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub shadow_fails: BTreeMap<String, u32>,
    /// Consecutive fail readings per gate.
    #[serde(default)]
    pub fails: BTreeMap<String, u32>,
}

impl Progress {
    /// Progress at a stage just reached.
    pub fn at(stage: usize, now_ms: u64) -> Progress {
        Progress { stage, stage_reached_ms: now_ms, ..Progress::default() }
    }

    /// A run taking over a stage reached earlier: the stage bakes again from the next reading (no
    /// one watched while no run held it), the failure counts stand.
    pub fn rebake(&mut self, now_ms: u64) {
        self.pass_since_ms = None;
        self.hold_since_ms = None;
        self.read_ms = Some(now_ms);
    }

    /// The window a reading taken now must cover: since the last reading, or since the stage was
    /// reached for its first one. `advance` reads alarm history over it.
    pub fn window_start_ms(&self) -> u64 {
        self.read_ms.unwrap_or(self.stage_reached_ms)
    }
}

/// What the state machine says to do next.
#[derive(Clone, Debug, PartialEq)]
pub enum Decision {
    /// The stage is baked (or, before the first shift, every gate passed): move to this stage.
    Shift { stage: usize },
    /// The last stage is baked: the rollout is complete.
    Complete,
    /// Every gate passes; the stage needs this much longer.
    Bake { remaining: Duration },
    /// Some gate waits; the stage is held, at most this much longer.
    Hold { reason: String, left: Duration },
    /// What a gate needs is not published yet (and no bake has begun): keep reading. Not a hold:
    /// it never counts toward `max_hold`.
    Pending { reason: String },
    /// The stage is ready to move on, but a calendar forbids moving toward the candidate (since
    /// `since_ms`): hold at this weight. `rollout` ends held once that lasts `max_hold`; `advance`
    /// says "not yet".
    Frozen { reason: String, since_ms: u64 },
    /// Some gate failed, fewer than `failure_threshold` times in a row: keep reading.
    Watch { reason: String },
    /// A gate failed `failure_threshold` times in a row.
    Fail { gate: String, detail: String, action: OnFailure },
    /// Gates have waited longer than `max_hold`.
    HeldTooLong { reason: String, held: Duration },
}

/// Updates `progress` with `readings` taken at `now_ms`, and says what to do next.
///
/// - A fail reading counts toward its gate's streak; `failure_threshold` in a row fails the stage.
/// - All pass: the pass streak goes on (or starts). The first reading of a stage vouches for the
///   time since the stage was reached (`rollout` reads right after a shift; `advance` reads the
///   gates' history over that window); after a reading that was not all pass, it starts now.
/// - Some wait (and none failed past the threshold): held; past `max_hold` the run ends held.
/// - A pending reading (its data not published yet) is neither: it neither starts nor breaks the
///   pass streak, nor a gate's failure streak, nor a hold. With every other gate passing, a streak
///   under way goes on; none under way, the stage waits for the data without holding.
/// - A frozen reading (a calendar forbids moving toward the candidate) lets the stage bake on and
///   keeps it from moving on: a stage that would shift holds at its weight instead.
/// - No readings at all (a profile without gates) count as all pass.
///
/// Shadow gates' readings (`shadow = true`) are not among them: they never change what is decided
/// — see [`shadow`] for what they would have done.
pub fn decide(rules: &Rules, progress: &mut Progress, readings: &[Reading], now_ms: u64) -> Decision {
    let real: Vec<Reading> = readings.iter().filter(|r| !r.shadow).cloned().collect();
    let readings = real.as_slice();
    let decision = judge(rules, progress, readings, now_ms);
    let frozen: Vec<&Reading> = readings.iter().filter(|r| r.verdict == Verdict::Frozen).collect();
    match decision {
        // Completing moves no traffic (the last stage is all on the candidate): never frozen.
        Decision::Shift { .. } if !frozen.is_empty() => {
            let since_ms = *progress.frozen_since_ms.get_or_insert(now_ms);
            let reason = frozen.iter().map(|r| format!("{}: {}", r.gate, r.detail)).collect::<Vec<_>>().join("; ");
            Decision::Frozen { reason, since_ms }
        }
        other => {
            progress.frozen_since_ms = None;
            other
        }
    }
}

/// What a shadow gate would have done, had it not been a shadow.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shadow {
    pub gate: String,
    /// The stage it was read at.
    pub stage: usize,
    /// `would have rolled back`, `would have paused`, `would have held stage 2`.
    pub would: String,
    /// Its reading: `FAIL: …`.
    pub reading: String,
}

/// What the shadow gates among `readings` would have done with `decision` (the real gates'):
/// roll back or pause where one failed `failure_threshold` times in a row, hold a shift one did
/// not pass. Updates their failure streaks in `progress`; changes nothing else.
pub fn shadow(rules: &Rules, progress: &mut Progress, readings: &[Reading], decision: &Decision) -> Vec<Shadow> {
    let threshold = rules.failure_threshold.max(1);
    let stage = progress.stage;
    let mut notes = Vec::new();
    for r in readings.iter().filter(|r| r.shadow) {
        let n = progress.shadow_fails.entry(r.gate.clone()).or_default();
        *n = if r.verdict == Verdict::Fail { *n + 1 } else { 0 };
        let said = format!("{}: {}", r.verdict.to_string().to_uppercase(), r.detail);
        if *n == threshold {
            let would = match rules.on_failure {
                OnFailure::Rollback => "would have rolled back",
                OnFailure::Pause => "would have paused",
            };
            notes.push(Shadow { gate: r.gate.clone(), stage, would: would.into(), reading: said });
        } else if r.verdict != Verdict::Pass
            && r.verdict != Verdict::Fail
            && let Decision::Shift { stage: next } = decision
        {
            notes.push(Shadow {
                gate: r.gate.clone(),
                stage,
                would: format!("would have held the shift to stage {next}"),
                reading: said,
            });
        }
    }
    progress.shadow_fails.retain(|_, n| *n > 0);
    notes
}

/// [`decide`] without the calendars: frozen readings count as passes.
fn judge(rules: &Rules, progress: &mut Progress, readings: &[Reading], now_ms: u64) -> Decision {
    let first_reading = progress.read_ms.is_none();
    progress.read_ms = Some(now_ms);
    let thawed: Vec<Reading> = readings
        .iter()
        .map(|r| if r.verdict == Verdict::Frozen { Reading { verdict: Verdict::Pass, ..r.clone() } } else { r.clone() })
        .collect();
    let (pending, readings): (Vec<&Reading>, Vec<&Reading>) =
        thawed.iter().partition(|r| r.verdict == Verdict::Pending);
    for r in &readings {
        let n = progress.fails.entry(r.gate.clone()).or_default();
        *n = if r.verdict == Verdict::Fail { *n + 1 } else { 0 };
    }
    progress.fails.retain(|_, n| *n > 0);
    let threshold = rules.failure_threshold.max(1);
    if let Some(failed) = readings.iter().find(|r| progress.fails.get(&r.gate).copied().unwrap_or(0) >= threshold) {
        return Decision::Fail { gate: failed.gate.clone(), detail: failed.detail.clone(), action: rules.on_failure };
    }
    let stage = progress.stage;
    let all_pass = readings.iter().all(|r| r.verdict == Verdict::Pass);
    if all_pass && !pending.is_empty() && progress.pass_since_ms.is_none() {
        let reason = pending.iter().map(|r| format!("{}: {}", r.gate, r.detail)).collect::<Vec<_>>().join("; ");
        return Decision::Pending { reason };
    }
    if all_pass {
        progress.hold_since_ms = None;
        let since = *progress.pass_since_ms.get_or_insert(if first_reading {
            progress.stage_reached_ms.min(now_ms)
        } else {
            now_ms
        });
        let baked = Duration::from_millis(now_ms.saturating_sub(since));
        let bake = rules.bake_of(stage);
        if baked >= bake {
            return if stage >= rules.stages.len() { Decision::Complete } else { Decision::Shift { stage: stage + 1 } };
        }
        return Decision::Bake { remaining: bake - baked };
    }
    progress.pass_since_ms = None;
    let waiting: Vec<&Reading> = readings.iter().copied().filter(|r| r.verdict == Verdict::Wait).collect();
    if waiting.is_empty() {
        progress.hold_since_ms = None;
        let reason = readings
            .iter()
            .filter(|r| r.verdict == Verdict::Fail)
            .map(|r| {
                let n = progress.fails.get(&r.gate).copied().unwrap_or(0);
                format!("{}: {} ({n} of {threshold} in a row)", r.gate, r.detail)
            })
            .collect::<Vec<_>>()
            .join("; ");
        return Decision::Watch { reason };
    }
    let reason = waiting.iter().map(|r| format!("{}: {}", r.gate, r.detail)).collect::<Vec<_>>().join("; ");
    let since = *progress.hold_since_ms.get_or_insert(now_ms);
    let held = Duration::from_millis(now_ms.saturating_sub(since));
    if held >= rules.max_hold {
        return Decision::HeldTooLong { reason, held };
    }
    Decision::Hold { reason, left: rules.max_hold - held }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(threshold: u32, on_failure: OnFailure) -> Rules {
        Rules {
            stages: ["10", "50", "100"].iter().map(|s| s.parse().unwrap()).collect(),
            bake: Duration::from_secs(60),
            poll: Duration::from_secs(10),
            failure_threshold: threshold,
            on_failure,
            max_hold: Duration::from_secs(120),
            dns_ttl: Duration::ZERO,
        }
    }

    fn r(v: Verdict) -> Vec<Reading> {
        vec![Reading::new("g", v, v.to_string())]
    }

    const S: u64 = 1_000;

    #[test]
    fn a_pass_before_the_first_shift_moves_to_stage_1_at_once() {
        let mut p = Progress::at(0, 0);
        assert_eq!(decide(&rules(2, OnFailure::Rollback), &mut p, &r(Verdict::Pass), 0), Decision::Shift { stage: 1 });
    }

    #[test]
    fn the_first_reading_of_a_stage_vouches_for_the_time_since_it_was_reached() {
        let rules = rules(2, OnFailure::Rollback);
        // `advance` called 60 s after the shift: the stage is baked.
        let mut p = Progress::at(1, 0);
        assert_eq!(decide(&rules, &mut p, &r(Verdict::Pass), 60 * S), Decision::Shift { stage: 2 });
        // After a wait, the streak starts at the next pass.
        let mut p = Progress::at(1, 0);
        assert!(matches!(decide(&rules, &mut p, &r(Verdict::Wait), 10 * S), Decision::Hold { .. }));
        assert_eq!(
            decide(&rules, &mut p, &r(Verdict::Pass), 20 * S),
            Decision::Bake { remaining: Duration::from_secs(60) }
        );
        assert_eq!(decide(&rules, &mut p, &r(Verdict::Pass), 80 * S), Decision::Shift { stage: 2 });
    }

    #[test]
    fn failures_count_in_a_row_and_a_pass_resets_them() {
        let rules = rules(3, OnFailure::Pause);
        let mut p = Progress::at(1, 0);
        assert!(matches!(decide(&rules, &mut p, &r(Verdict::Fail), 10 * S), Decision::Watch { .. }));
        assert!(matches!(decide(&rules, &mut p, &r(Verdict::Fail), 20 * S), Decision::Watch { .. }));
        assert!(matches!(decide(&rules, &mut p, &r(Verdict::Pass), 30 * S), Decision::Bake { .. }));
        assert!(p.fails.is_empty());
        decide(&rules, &mut p, &r(Verdict::Fail), 40 * S);
        decide(&rules, &mut p, &r(Verdict::Fail), 50 * S);
        assert_eq!(
            decide(&rules, &mut p, &r(Verdict::Fail), 60 * S),
            Decision::Fail { gate: "g".into(), detail: "fail".into(), action: OnFailure::Pause }
        );
    }

    #[test]
    fn a_wait_never_counts_as_a_pass_and_holds_until_max_hold() {
        let rules = rules(2, OnFailure::Rollback);
        let mut p = Progress::at(1, 0);
        decide(&rules, &mut p, &r(Verdict::Pass), 10 * S);
        assert!(matches!(decide(&rules, &mut p, &r(Verdict::Wait), 20 * S), Decision::Hold { .. }));
        assert_eq!(p.pass_since_ms, None);
        match decide(&rules, &mut p, &r(Verdict::Wait), 140 * S) {
            Decision::HeldTooLong { held, .. } => assert_eq!(held, Duration::from_secs(120)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_last_stage_bakes_too_then_completes() {
        let rules = rules(2, OnFailure::Rollback);
        let mut p = Progress::at(3, 0);
        assert!(matches!(decide(&rules, &mut p, &r(Verdict::Pass), 30 * S), Decision::Bake { .. }));
        assert_eq!(decide(&rules, &mut p, &r(Verdict::Pass), 60 * S), Decision::Complete);
    }

    #[test]
    fn a_stage_bakes_at_least_the_dns_ttl() {
        let mut rules = rules(2, OnFailure::Rollback);
        rules.bake = Duration::from_secs(10);
        rules.dns_ttl = Duration::from_secs(60);
        let mut p = Progress::at(1, 0);
        assert_eq!(
            decide(&rules, &mut p, &r(Verdict::Pass), 30 * S),
            Decision::Bake { remaining: Duration::from_secs(30) }
        );
        assert_eq!(decide(&rules, &mut p, &r(Verdict::Pass), 60 * S), Decision::Shift { stage: 2 });
        // Before the first shift nothing is cached: the gates pass once and traffic moves.
        let mut p = Progress::at(0, 0);
        assert_eq!(decide(&rules, &mut p, &r(Verdict::Pass), 0), Decision::Shift { stage: 1 });
    }

    #[test]
    fn a_pending_reading_neither_passes_nor_restarts_the_bake_nor_holds() {
        let rules = rules(2, OnFailure::Rollback);
        let pending =
            |other: Verdict| vec![Reading::pending("observe", "minute 14:03 not published"), r(other)[0].clone()];
        // No streak yet: the stage waits for the data, without a hold.
        let mut p = Progress::at(1, 0);
        assert!(matches!(decide(&rules, &mut p, &pending(Verdict::Pass), 10 * S), Decision::Pending { .. }));
        assert_eq!((p.pass_since_ms, p.hold_since_ms), (None, None));
        // Verified at 30 s: the bake begins; a pending reading later does not restart it.
        decide(&rules, &mut p, &r(Verdict::Pass), 30 * S);
        assert_eq!(
            decide(&rules, &mut p, &pending(Verdict::Pass), 60 * S),
            Decision::Bake { remaining: Duration::from_secs(30) }
        );
        assert_eq!(decide(&rules, &mut p, &pending(Verdict::Pass), 90 * S), Decision::Shift { stage: 2 });
        // A pending reading never hides another gate's failure, nor counts toward max_hold.
        let mut p = Progress::at(1, 0);
        assert!(matches!(decide(&rules, &mut p, &pending(Verdict::Fail), 10 * S), Decision::Watch { .. }));
        assert!(matches!(decide(&rules, &mut p, &pending(Verdict::Fail), 20 * S), Decision::Fail { .. }));
        let mut p = Progress::at(1, 0);
        for t in 0..100 {
            let d = decide(&rules, &mut p, &pending(Verdict::Pass), t * 10 * S);
            assert!(matches!(d, Decision::Pending { .. }), "{d:?}");
        }
    }

    #[test]
    fn a_frozen_calendar_lets_a_stage_bake_and_holds_it_at_its_weight() {
        let rules = rules(2, OnFailure::Rollback);
        let freeze = |other: Verdict| vec![Reading::frozen("freeze", "closed until 18:00"), r(other)[0].clone()];
        let mut p = Progress::at(1, 0);
        // The stage bakes while frozen…
        assert_eq!(
            decide(&rules, &mut p, &freeze(Verdict::Pass), 30 * S),
            Decision::Bake { remaining: Duration::from_secs(30) }
        );
        // …and once baked holds instead of moving on, since the first such reading.
        match decide(&rules, &mut p, &freeze(Verdict::Pass), 60 * S) {
            Decision::Frozen { reason, since_ms } => {
                assert!(reason.contains("closed until 18:00"), "{reason}");
                assert_eq!(since_ms, 60 * S);
            }
            other => panic!("{other:?}"),
        }
        assert!(
            matches!(decide(&rules, &mut p, &freeze(Verdict::Pass), 90 * S), Decision::Frozen { since_ms, .. } if since_ms == 60 * S)
        );
        // Thawed: it moves on at once, the bake kept.
        assert_eq!(decide(&rules, &mut p, &r(Verdict::Pass), 100 * S), Decision::Shift { stage: 2 });
        assert_eq!(p.frozen_since_ms, None);
        // A freeze never hides a failure: the rollback is never frozen.
        let mut p = Progress::at(1, 0);
        decide(&rules, &mut p, &freeze(Verdict::Fail), 10 * S);
        assert!(matches!(decide(&rules, &mut p, &freeze(Verdict::Fail), 20 * S), Decision::Fail { .. }));
        // Before the first shift a freeze keeps the rollout from starting.
        let mut p = Progress::at(0, 0);
        assert!(matches!(decide(&rules, &mut p, &freeze(Verdict::Pass), 0), Decision::Frozen { .. }));
    }

    #[test]
    fn a_shadow_gate_never_changes_what_is_decided_and_says_what_it_would_have_done() {
        let rules = rules(2, OnFailure::Rollback);
        let shadow_fail = Reading { shadow: true, ..Reading::new("judge#1", Verdict::Fail, "candidate 5× worse") };
        let shadow_wait = Reading { shadow: true, ..Reading::new("judge#1", Verdict::Wait, "inconclusive") };
        let with = |s: &Reading, v: Verdict| vec![s.clone(), r(v)[0].clone()];
        // The same decisions as without the shadow gate, at every reading.
        let (mut p, mut q) = (Progress::at(1, 0), Progress::at(1, 0));
        let mut notes = Vec::new();
        for t in [10, 20, 30, 60, 70] {
            let d = decide(&rules, &mut p, &with(&shadow_fail, Verdict::Pass), t * S);
            assert_eq!(d, decide(&rules, &mut q, &r(Verdict::Pass), t * S));
            notes.extend(shadow(&rules, &mut p, &with(&shadow_fail, Verdict::Pass), &d));
        }
        // It would have rolled back once its failures reached the threshold, and said so once.
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert_eq!((notes[0].would.as_str(), notes[0].stage), ("would have rolled back", 1));
        assert!(notes[0].reading.starts_with("FAIL: candidate 5× worse"), "{notes:?}");
        // A run of only shadow gates bakes and moves on.
        let mut p = Progress::at(1, 0);
        let d = decide(&rules, &mut p, std::slice::from_ref(&shadow_wait), 60 * S);
        assert_eq!(d, Decision::Shift { stage: 2 });
        let notes = shadow(&rules, &mut p, std::slice::from_ref(&shadow_wait), &d);
        assert_eq!(notes[0].would, "would have held the shift to stage 2");
        // A shadow failure never masks a real one.
        let mut p = Progress::at(1, 0);
        decide(
            &rules,
            &mut p,
            &with(&Reading { verdict: Verdict::Pass, ..shadow_fail.clone() }, Verdict::Fail),
            10 * S,
        );
        let d =
            decide(&rules, &mut p, &with(&Reading { verdict: Verdict::Pass, ..shadow_fail }, Verdict::Fail), 20 * S);
        assert!(matches!(d, Decision::Fail { gate, .. } if gate == "g"));
    }

    #[test]
    fn a_taken_over_stage_bakes_again() {
        let rules = rules(2, OnFailure::Rollback);
        let mut p = Progress::at(1, 0);
        p.rebake(500 * S);
        assert_eq!(
            decide(&rules, &mut p, &r(Verdict::Pass), 510 * S),
            Decision::Bake { remaining: Duration::from_secs(60) }
        );
    }
}
