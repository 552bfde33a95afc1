//! One file per command. Each takes the resolved [`Settings`], does its pre-checks (which write
//! nothing), then its writes, and returns the exit code after printing its result.

pub mod advance;
pub mod discover;
pub mod history;
pub mod iam_policy;
pub mod pause;
pub mod promote;
pub mod rollback;
pub mod rollout;
pub mod set;
pub mod state_init;
pub mod status;
pub mod validate;

use std::time::Duration;

use crate::error::{Error, Result};
use crate::model::{Percent, RouteView, Side};
use crate::rollout::engine::{holds, live_lines, settle};
use crate::rollout::ledger::{Claim, Ledger, backoff};
use crate::rollout::ports::{Clock, Store};
use crate::settings::Settings;
use crate::splitter::AwsTraffic;

/// How long `rollback` (and `set --force`) keep trying to mark the rollout aborted when the state
/// table does not answer: traffic has moved already; then they say the state was not updated.
pub const ABORT_WITHIN: Duration = Duration::from_secs(10);

/// Keeps every route at `percent` on `side` until no claimed write can still land: re-reads the
/// claims (a run that finished its write releases them), and writes the split again whenever a
/// write in flight landed over it. Returns the routes as last read.
///
/// This is what makes `rollback` (and `set --force`) win: the rollout was aborted before this
/// runs, so no new claim can be made, and every claim made before has a deadline. `stale`: the
/// rollout state changed between the command's read and its abort — a rollout claimed, wrote and
/// recorded a write meanwhile (its claim already released) — so `routes` is read again before it
/// is trusted.
pub async fn hold_until_claims_pass<S: Store>(
    traffic: &AwsTraffic,
    ledger: &mut Ledger<S>,
    side: Side,
    percent: Percent,
    mut open: Vec<Claim>,
    mut routes: Vec<RouteView>,
    stale: bool,
) -> Result<Vec<RouteView>> {
    let clock = Clock::new();
    let mut attempt = 0;
    let mut fresh = !stale;
    loop {
        let now = clock.now_ms();
        open.retain(|c| c.lands_by_ms() > now);
        if open.is_empty() && fresh && holds(&routes, side, percent) {
            return Ok(routes);
        }
        if !open.is_empty() {
            let until = open.iter().map(Claim::lands_by_ms).max().unwrap_or(now);
            tracing::info!(
                claims = open.len(),
                wait_ms = until.saturating_sub(now),
                "a rollout's write may still land: holding the split until its claim passes"
            );
            tokio::time::sleep(Duration::from_millis(100).min(Duration::from_millis(until.saturating_sub(now)))).await;
            // Claims released by a run whose write has ended need no more waiting.
            if let Ok(still) = ledger.open_claims(clock.now_ms()).await {
                open.retain(|c| still.iter().any(|s| s.id == c.id));
            }
        }
        let read = match traffic.read().await {
            Ok(r) => r,
            Err(e) => {
                if attempt > 20 {
                    return Err(Error::SplitUnknown {
                        message: format!("cannot read the routes to confirm the split: {e}\n{}", live_lines(&routes)),
                    });
                }
                attempt += 1;
                tokio::time::sleep(backoff(attempt)).await;
                continue;
            }
        };
        routes = read.iter().map(|r| r.view()).collect();
        fresh = true;
        if !holds(&routes, side, percent) {
            tracing::warn!("a write that was in flight landed after this one: writing the split again");
            // From the routes just read: a write waits on no second read.
            routes = settle(traffic, Some(read), side, percent, 30).await.map_err(|e| Error::SplitUnknown {
                message: format!("could not put the split back ({e})\n{}", live_lines(&routes)),
            })?;
        }
    }
}

/// Reads every gate once against `candidate`, after checking that what they name exists (exit 2
/// otherwise). Anything but all-pass refuses the command, with nothing changed: exit 3 for a
/// failing gate, 7 for one that waits.
pub async fn gates_once(
    settings: &Settings,
    routes: &[crate::splitter::RouteLive],
    candidate: Side,
    current: Percent,
    next: Percent,
    refusal: &str,
    skip: &str,
) -> Result<Vec<crate::model::Reading>> {
    use crate::rollout::ports::Gates as _;
    let gates = settings.gates(routes);
    gates.preflight(candidate).await?;
    let ctx = crate::rollout::ports::GateContext {
        profile: settings.profile.name.clone(),
        candidate,
        stable: candidate.other(),
        current_percent: current,
        next_percent: Some(next),
        stage: 0,
        stages: 1,
        stage_age: Duration::ZERO,
        since: None,
    };
    let readings = gates.read(&ctx).await;
    for r in &readings {
        tracing::info!(gate = %r.gate, verdict = %r.verdict, detail = %r.detail, "gate read");
    }
    match crate::model::blocking(&readings) {
        None => Ok(readings),
        Some((why, held)) => Err(Error::Gate {
            message: format!("{refusal} {candidate}: {why}\nnothing was changed (`{skip}` skips the gates)"),
            held,
        }),
    }
}

/// The rollout is over (completed, rolled back, aborted): the safety net comes off every record,
/// which gets back its own health check. A failure is a warning — traffic is where it should be
/// — and the next run cleans up what is left.
pub async fn drop_safety_net(settings: &Settings, traffic: &AwsTraffic) {
    let Some(net) = crate::safety_net::SafetyNet::of(&settings.aws, &settings.profile) else {
        return;
    };
    match net.remove(traffic).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(deleted = n, "safety net removed: the records have their own health checks back"),
        Err(e) => tracing::warn!(
            error = %e,
            "could not take the safety net's health checks off the records; the next run of this profile removes them"
        ),
    }
}

/// What a run's pre-checks found, before anything is written.
pub struct Checked {
    pub gates: crate::gates::Gates,
    stale: Vec<crate::sides::Stale>,
}

/// The pre-checks of `rollout` and `advance` beyond the rollout state (which `open` checked):
/// where the candidate runs (its cluster ACTIVE, every alias at its side's current ingress ALB;
/// refused unless `--repoint`), and what the gates name. Writes nothing.
pub async fn precheck(
    settings: &Settings,
    opening: &mut crate::rollout::open::Opening<Vec<crate::splitter::RouteLive>>,
    repoint: bool,
) -> Result<Checked> {
    let profile = &settings.profile;
    opening.rules.dns_ttl = crate::observe::dns_floor(&opening.routes, profile.observe.is_some(), profile.dns_ttl);
    let stale = crate::sides::check(&settings.aws, &profile.sides, &opening.routes, &[opening.candidate]).await?;
    if !stale.is_empty() && !repoint {
        return Err(crate::sides::stale_error(&stale));
    }
    let gates = settings.gates(&opening.routes);
    gates.preflight(opening.candidate).await?;
    if let Some(net) = crate::safety_net::SafetyNet::of(&settings.aws, profile) {
        net.preflight(opening.candidate).await?;
    }
    Ok(Checked { gates, stale })
}

impl Checked {
    /// Every pre-check passed: points stale aliases at their side's ALB (`--repoint`) and, when a
    /// rollout starts, the preview record at the candidate. Returns the gates to read, and the
    /// routes as opened when none of that wrote them (the first stage's write starts from them).
    pub async fn commit(
        self,
        settings: &Settings,
        traffic: &AwsTraffic,
        opening: &crate::rollout::open::Opening<Vec<crate::splitter::RouteLive>>,
    ) -> Result<(crate::gates::Gates, Option<Vec<crate::splitter::RouteLive>>)> {
        let mut gates = self.gates;
        let mut wrote = false;
        if !self.stale.is_empty() {
            let routes = traffic.read().await?;
            let mut changes = Vec::new();
            crate::sides::repoint(&routes, &mut changes, self.stale);
            traffic.apply(&routes, &changes, None).await?;
            wrote = true;
            gates = settings.gates(&traffic.read().await?);
        }
        if opening.entry == crate::rollout::open::Entry::Fresh && opening.progress.stage == 0 {
            // The preview hostname follows the candidate from the start of a rollout.
            wrote |= settings.point_preview(traffic, opening.candidate).await?;
        }
        if let Some(net) = crate::safety_net::SafetyNet::of(&settings.aws, &settings.profile) {
            // Before traffic moves: Route53 withdraws the candidate by itself if an alarm fires
            // while no cutover process watches.
            let known = (!wrote).then_some(opening.routes.as_slice());
            wrote |= net.attach(traffic, known, opening.candidate).await?.1;
        }
        Ok((gates, (!wrote).then(|| opening.routes.clone())))
    }
}
