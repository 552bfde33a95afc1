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
/// - No readings at all (a profile without gates) count as all pass.
pub fn decide(rules: &Rules, progress: &mut Progress, readings: &[Reading], now_ms: u64) -> Decision {
    let first_reading = progress.read_ms.is_none();
    progress.read_ms = Some(now_ms);
    for r in readings {
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
    let waiting: Vec<&Reading> = readings.iter().filter(|r| r.verdict == Verdict::Wait).collect();
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
