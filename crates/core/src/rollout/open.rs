//! Where a `rollout` or an `advance` starts from: the routes and the recorded rollout, read once,
//! checked against each other. Nothing is written here — a refusal leaves the state, the audit
//! trail and every record as they were.
//!
//! A recorded rollout is taken over when the live split is the stage it reached, or a position a
//! cut-short write of it explains (some routes at the next stage, or back on the stable side after
//! a rollback it began). Anything else is drift: refused, exit 6, unless `--force`.

use crate::error::{Error, Result};
use crate::model::{RouteView, Side, sole_side_of};
use crate::rollout::decide::{Progress, Rules};
use crate::rollout::ledger::{Claim, ClaimKind, Ledger, RolloutState, Status, fmt_ms};
use crate::rollout::ports::{Store, Traffic};
use crate::rollout::position::{Position, heading, locate};

/// A write a stopped run left half done.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Pending {
    /// Routes between the stage reached and `stage` (or all at `stage`, unrecorded): finish the
    /// write, record the stage.
    Forward { stage: usize, claim: Option<Claim> },
    /// A rollback the run had begun: finish it.
    Restore,
}

/// How the run comes to the rollout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Entry {
    /// No rollout in progress: record a new one.
    Fresh,
    /// A rollout in progress (stopped run, or the previous scheduled call): take its lease.
    TakeOver,
}

/// Everything a run needs to start driving.
pub struct Opening<R> {
    pub routes: R,
    pub views: Vec<RouteView>,
    pub stable: Side,
    pub candidate: Side,
    /// The profile's rules, with the stages the rollout was recorded with.
    pub rules: Rules,
    pub entry: Entry,
    pub progress: Progress,
    pub pending: Option<Pending>,
}

/// What `open` found.
pub enum Opened<R> {
    /// Drive the rollout.
    Run(Opening<R>),
    /// All traffic is on `side` already.
    NothingToDo { views: Vec<RouteView>, side: Side },
    /// The recorded rollout is paused, or over and no side was named to start another.
    Idle { views: Vec<RouteView>, state: RolloutState },
}

/// What a run asks for.
pub struct Ask<'a> {
    pub profile: &'a str,
    pub rules: &'a Rules,
    /// The side asked for (`--to`).
    pub to: Option<Side>,
    /// `--force`: go on from a live split the recorded rollout does not explain.
    pub force: bool,
    /// Whether a finished (aborted, completed) rollout may be followed by a new one without
    /// naming the side: `rollout` does, `advance` does not.
    pub restart: bool,
}

/// Reads the routes and the rollout state (at once) and says where a run starts.
pub async fn open<T: Traffic, S: Store>(
    traffic: &T,
    ledger: &mut Ledger<S>,
    ask: Ask<'_>,
    now_ms: u64,
) -> Result<Opened<T::Routes>> {
    let Ask { profile, rules, to, force, restart } = ask;
    let (routes, state) = tokio::join!(traffic.read(), ledger.load());
    let routes = routes?;
    let state = state.map_err(Error::from)?.cloned();
    if let Some(problem) = state.as_ref().filter(|s| s.status.is_active()).and_then(|s| s.problem_at(now_ms)) {
        return Err(unsound(profile, &problem));
    }
    let views = T::views(&routes);
    match state {
        Some(s) if s.status == Status::Progressing => {
            if let Some(l) = s.lease_held_by_other(ledger.me(), now_ms) {
                return Err(Error::Locked {
                    message: format!(
                        "another run holds the rollout of `{profile}`: {} (lease until {})",
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
                        s.progress.stage,
                        s.stages.len()
                    ),
                    format!("finish it, or `cutover rollback` first, then roll to {to}"),
                ));
            }
            take_over(routes, views, s, rules, force, now_ms)
        }
        Some(s) if s.status == Status::Paused => Ok(Opened::Idle { views, state: s }),
        Some(s) if to.is_none() && !restart => Ok(Opened::Idle { views, state: s }),
        _ => fresh(routes, views, rules, to, now_ms),
    }
}

/// A recorded rollout no cutover could have written: refused, nothing moved — `rollback` restores
/// the stable side and records a sound (aborted) state.
pub fn unsound(profile: &str, problem: &str) -> Error {
    Error::Other(format!(
        "the recorded rollout of `{profile}` cannot be driven: {problem}; nothing was moved\nhint: `cutover rollback` restores its stable side and marks it aborted, which records a sound state"
    ))
}

/// What the live split means to a recorded rollout in progress.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Explained {
    /// Every route at the stage it recorded.
    AsRecorded,
    /// A write its run claimed was cut short (or landed unrecorded): the next run finishes it.
    Pending(Pending),
    /// Neither: someone moved traffic.
    Drift,
}

/// How `live` stands against the recorded rollout `s`: `rollout` and `advance` take it over from
/// there, `status` says so. `rules` are the profile's; the stages are the ones recorded.
pub fn explain(s: &RolloutState, live: &[RouteView], rules: &Rules) -> Explained {
    let rules = Rules { stages: s.stages.clone(), ..rules.clone() };
    let stage = s.progress.stage;
    let position = locate(live, &rules, s.candidate);
    // The furthest write claimed (a write that failed this time may have been claimed again).
    let forward = s
        .claims
        .iter()
        .filter_map(|c| match c.kind {
            ClaimKind::Forward { stage } => Some((stage, c.clone())),
            ClaimKind::Restore => None,
        })
        .max_by_key(|(stage, _)| *stage);
    let restoring = s.claims.iter().any(|c| c.kind == ClaimKind::Restore);
    if position == Position::At(stage) {
        Explained::AsRecorded
    } else if restoring && (position == Position::At(0) || position == (Position::Between { lo: 0, hi: stage })) {
        Explained::Pending(Pending::Restore)
    } else if let Some((to, claim)) = forward
        .filter(|(to, _)| position == Position::At(*to) || position == (Position::Between { lo: stage, hi: *to }))
    {
        Explained::Pending(Pending::Forward { stage: to, claim: Some(claim) })
    } else {
        Explained::Drift
    }
}

/// A recorded rollout in progress: where its run stopped.
fn take_over<R>(
    routes: R,
    views: Vec<RouteView>,
    s: RolloutState,
    rules: &Rules,
    force: bool,
    now_ms: u64,
) -> Result<Opened<R>> {
    let recorded = Rules { stages: s.stages.clone(), ..rules.clone() };
    let mut progress = s.progress.clone();
    let pending = match explain(&s, &views, rules) {
        Explained::AsRecorded => None,
        Explained::Pending(p) => Some(p),
        // `--force`: go on from the live split, when it is a stage or between two.
        Explained::Drift if force => match locate(&views, &recorded, s.candidate) {
            Position::At(k) => {
                progress = Progress::at(k, now_ms);
                None
            }
            Position::Between { lo, hi } if hi == lo + 1 => {
                progress = Progress::at(lo, now_ms);
                Some(Pending::Forward { stage: hi, claim: None })
            }
            _ => return Err(drift(&s, &views)),
        },
        Explained::Drift => return Err(drift(&s, &views)),
    };
    Ok(Opened::Run(Opening {
        routes,
        views,
        stable: s.stable,
        candidate: s.candidate,
        rules: recorded,
        entry: Entry::TakeOver,
        progress,
        pending,
    }))
}

/// No rollout in progress: from all traffic on one side, or from a stage a run without a state
/// table left.
fn fresh<R>(routes: R, views: Vec<RouteView>, rules: &Rules, to: Option<Side>, now_ms: u64) -> Result<Opened<R>> {
    let sole = sole_side_of(&views);
    let to = to.or(sole.map(Side::other)).or_else(|| heading(&views, rules)).ok_or_else(|| {
        Error::refused_hint(
            "traffic is split and the split is no stage of this rollout, so the side to roll to is unclear",
            "say which side to roll to: `cutover rollout --to green`",
        )
    })?;
    if sole == Some(to) {
        return Ok(Opened::NothingToDo { views, side: to });
    }
    let stable = to.other();
    let (progress, pending) = match locate(&views, rules, to) {
        Position::At(k) => (Progress::at(k, now_ms), None),
        Position::Between { lo, hi } if hi == lo + 1 => {
            (Progress::at(lo, now_ms), Some(Pending::Forward { stage: hi, claim: None }))
        }
        _ => {
            let mut message =
                format!("the live split is neither all traffic on {stable} nor a stage of this rollout toward {to}:");
            for r in &views {
                message.push_str(&format!("\n  {} {}: {}", r.kind, r.name, r.weights));
            }
            return Err(Error::Drift {
                message,
                hint: Some(format!(
                    "put traffic back first (`cutover rollback --to {stable}`), or set it to a stage (`cutover set {to}=STAGE`)"
                )),
            });
        }
    };
    Ok(Opened::Run(Opening {
        routes,
        views,
        stable,
        candidate: to,
        rules: rules.clone(),
        entry: Entry::Fresh,
        progress,
        pending,
    }))
}

/// The refusal (exit 6) of a live split the recorded rollout does not explain.
pub fn drift(state: &RolloutState, live: &[RouteView]) -> Error {
    let mut message = format!(
        "drift: the live weights are not what the rollout state says (stage {}/{} of {} → {}); someone changed them by hand?",
        state.progress.stage,
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
        hint: Some(
            "look at `cutover status` and `cutover history`; `--force` goes on from the live split, `cutover rollback` ends the rollout"
                .into(),
        ),
    }
}
