//! `cutover rollback [--to SIDE]`: all traffic to the stable side now, skipping gates and the
//! lease; marks the rollout aborted so no `advance` moves it again.
//!
//! The order is the on-call engineer's: traffic first (the routes and the state are read at once;
//! with `--to` the write waits on nothing), then the abort, then the split is held until every
//! write a running rollout had claimed can no longer land. Exit 0 means all of it: every route on
//! the stable side, the rollout aborted, nothing claimed still in flight.

use std::time::{Duration, Instant, SystemTime};

use crate::error::{Error, Result};
use crate::exit;
use crate::model::{Percent, Side, sole_side_of};
use crate::observe::{Clients, RequestCounts};
use crate::report::{ChangeReport, Drain, RolloutView, StepReport};
use crate::rollout::events::Event;
use crate::rollout::ledger::{Ledger, LedgerError};
use crate::rollout::outcome::Action;
use crate::rollout::ports::Attachments as _;
use crate::rollout::ports::Clock;
use crate::rollout::restore::{Restore, Rollback, drained, settle};
use crate::settings::Settings;
use crate::splitter::{AwsTraffic, RouteChange, RouteLive};
use crate::state::DynamoStore;

/// How many attempts a call to the state table gets during a rollback: it must not hold up the
/// traffic write, and the abort loop tries again anyway.
const STATE_ATTEMPTS: u32 = 3;

/// What `rollback` is asked.
pub struct Args {
    pub to: Option<Side>,
    pub dry_run: bool,
    /// `--wait`: until when traffic may take to leave the other side.
    pub wait: Option<Duration>,
    /// `--reason TEXT`: why, recorded in the audit trail and the rollout's state.
    pub reason: Option<String>,
}

pub async fn run(settings: &Settings, args: Args) -> Result<i32> {
    let Args { to, dry_run, wait, reason: said } = args;
    if wait.is_some() && settings.profile.observe.is_none() {
        return Err(Error::refused_hint(
            format!(
                "`rollback --wait` watches the observed split, and profile {} has no [observe] table",
                settings.profile.path.display()
            ),
            "drop `--wait`, or add `[observe]` (tolerance, window) so cutover can count each side's requests",
        ));
    }
    let traffic = settings.traffic();
    let Some(cfg) = &settings.profile.state else {
        let Some(side) = to else {
            return Err(Error::refused_hint(
                "rollback without --to needs the rollout state to know the stable side, and this profile has no [state] table",
                "name the side to restore: `cutover rollback --to blue`",
            ));
        };
        return without_state(settings, &traffic, side, dry_run, wait, said).await;
    };
    let store = DynamoStore::new(&settings.sdk, &cfg.table, settings.profile_id())
        .noting(settings.seen.clone())
        .with_attempts(STATE_ATTEMPTS);
    let holder = format!("rollback pid {}", std::process::id());
    let mut ledger = Ledger::new(store, holder, settings.lease());
    // The routes, the state and (for the audit entry) who is acting, all at once.
    let (routes, state, actor) = tokio::join!(traffic.read(), ledger.load(), settings.identity.actor());
    let who = match crate::state::identity::actor_note() {
        Some(note) => format!("{actor} (CUTOVER_ACTOR {note})"),
        None => actor.clone(),
    };
    let routes = routes?;
    let read = routes.clone();
    let before: Vec<_> = routes.iter().map(|r| r.view()).collect();
    let state = match state.map(|s| s.cloned()) {
        // The state item is another profile's (of the same name): nothing of it, nor of its
        // traffic, is this command's to touch — not even with `--to`.
        Err(LedgerError::Failed(e @ Error::Profile(_))) => return Err(e),
        state => state,
    };
    let stable = match (to, &state) {
        (Some(side), _) => side,
        (None, Ok(Some(s))) => s.stable,
        (None, Ok(None)) => {
            return Err(Error::refused_hint(
                format!(
                    "no rollout of `{}` is recorded, so the stable side is unknown; nothing was moved",
                    settings.profile.name
                ),
                "name the side: `cutover rollback --to blue`",
            ));
        }
        // A state table that does not exist says as little as an empty one: the same refusal.
        (None, Err(LedgerError::Failed(e))) if e.exit_code() == exit::USAGE => {
            return Err(Error::refused_hint(
                format!("the stable side is unknown: {e}; nothing was moved"),
                "name the side: `cutover rollback --to blue`",
            ));
        }
        (None, Err(e)) => {
            return Err(Error::SplitUnknown {
                message: format!(
                    "cannot read the rollout state ({e}): the stable side is unknown and nothing was moved\nrun `cutover rollback --to SIDE` to restore traffic without the state"
                ),
            });
        }
    };
    let clock = Clock::new();
    let view = state.as_ref().ok().and_then(|s| s.as_ref()).map(|s| RolloutView::of(s, clock.now_ms()));
    let report = |action: Action, message: String, routes, before| StepReport {
        profile: settings.profile.name.clone(),
        command: "rollback",
        action,
        message,
        exit_code: exit::OK,
        before,
        routes,
        rollout: view.clone(),
        readings: Vec::new(),
        elapsed_ms: None,
        drain: None,
        shadow: Vec::new(),
    };
    // Already there, and no rollout to stop: nothing is written, nothing enters the audit trail.
    let settled = sole_side_of(&before) == Some(stable)
        && match &state {
            Ok(None) => true,
            Ok(Some(s)) => !s.status.is_active() && s.stable == stable,
            Err(_) => false,
        };
    if settled {
        let msg = format!("all traffic is already on {stable} and no rollout is in progress: nothing to change");
        let mut r = report(Action::NothingToDo, msg, before.clone(), Vec::new());
        if !dry_run {
            r.drain = Some(drain(settings, &read, stable.other(), wait).await?);
        }
        settings.print(&r)?;
        return Ok(exit::OK);
    }
    if dry_run {
        let msg = format!("would move all traffic to {stable} and mark the rollout aborted (no change made)");
        settings.print(&report(Action::DryRun, msg, before, Vec::new()))?;
        return Ok(exit::OK);
    }
    let plan = format!(
        "will move all traffic to {stable} on profile {}:\n{}",
        settings.profile.name,
        before
            .iter()
            .map(|r| format!("  {:<8}{}\n          {}  →  {stable} 100%\n", r.kind.to_string(), r.name, r.weights))
            .collect::<String>()
    );
    let running = view.as_ref().is_some_and(|v| v.status.is_active());
    let question = format!(
        "move all traffic to {stable} on profile {}{}?",
        settings.profile.name,
        if running { " and stop the rollout in progress" } else { "" }
    );
    if !settings.confirm(&plan, &question) {
        eprintln!("not confirmed: nothing changed");
        return Ok(exit::USAGE);
    }

    let reason = match &said {
        Some(said) => format!("rolled back to {stable} by {who}: {said}"),
        None => format!("rolled back to {stable} by {who}"),
    };
    let planned: Vec<_> = AwsTraffic::plan(&routes, stable, Percent::FULL).iter().map(RouteChange::planned).collect();
    let recorded_rollout = matches!(&state, Ok(Some(_)));
    // The rollback's line of the audit trail goes out beside Route53's propagation: with the
    // abort, or on its own when no rollout is recorded (the table answered) — never after it.
    let entry = state
        .is_ok()
        .then(|| {
            let event = Event::Rollback {
                to: stable,
                by: who.clone(),
                reason: said.clone(),
                aborted: recorded_rollout,
                before: before.clone(),
                routes: planned.clone(),
            };
            crate::state::AuditEntry::of(&event, 0)
        })
        .flatten()
        .map(|e| crate::state::AuditEntry {
            actor: actor.clone(),
            actor_note: crate::state::identity::actor_note(),
            ..e
        });
    let read_version = state.as_ref().ok().and_then(|s| s.as_ref()).map(|s| s.version);
    let attachments = settings.attachments(&traffic, Some(&read));
    let mut restore = Restore { traffic: &traffic, ledger: &mut ledger, attachments: &attachments, clock };
    let restored = restore.rollback(routes, Rollback { stable, reason, entry, planned, read_version }).await?;
    let (after, recorded) = (restored.routes, restored.aborted);
    // Its audit entry went with the abort; notifications still hear of it.
    let mut bus = if restored.audited { settings.bus_unaudited(false) } else { settings.bus(false) };
    bus.event(Event::Rollback {
        to: stable,
        by: who,
        reason: said,
        aborted: recorded,
        before: before.clone(),
        routes: after.clone(),
    });
    bus.close().await;
    let msg = if recorded {
        format!("all traffic on {stable}; the rollout is marked aborted")
    } else {
        format!("all traffic on {stable} (no rollout was recorded)")
    };
    let mut r = report(Action::RolledBack, msg, after, before);
    r.rollout = ledger.state().map(|s| RolloutView::of(s, clock.now_ms()));
    r.elapsed_ms = Some(restored.elapsed.as_millis());
    r.drain = Some(drain(settings, &read, stable.other(), wait).await?);
    settings.print(&r)?;
    Ok(exit::OK)
}

/// What clients may still do after traffic left `left`: resolvers answer from cache for the DNS
/// TTL of the Route53 routes that gave it traffic; with `wait`, how long until its observed share
/// of requests was at most 1 % — exit 4 when that does not happen in time.
async fn drain(settings: &Settings, read: &[RouteLive], left: Side, wait: Option<Duration>) -> Result<Drain> {
    let written = (tokio::time::Instant::now(), SystemTime::now());
    let dns_ttl_secs =
        read.iter().filter(|r| r.weights.get(left) > 0).filter_map(|r| r.dns_ttl()).max().map(|d| d.as_secs());
    let mut drain = Drain { from: Some(left), dns_ttl_secs, ..Drain::default() };
    let (Some(timeout), Some(observe)) = (wait, settings.profile.observe) else {
        return Ok(drain);
    };
    let clients = Clients { counts: RequestCounts::new(&settings.aws, read), observe };
    let poll = settings.profile.rollout.poll.clamp(Duration::from_millis(100), Duration::from_secs(15));
    let (after, observed) = drained(&clients, left, written, poll, timeout).await?;
    drain.drained_after_secs = Some(after);
    drain.observed_percent = observed;
    Ok(drain)
}

/// `rollback --to SIDE` on a profile without a state table: one blind write, confirmed.
async fn without_state(
    settings: &Settings,
    traffic: &AwsTraffic,
    side: Side,
    dry_run: bool,
    wait: Option<Duration>,
    reason: Option<String>,
) -> Result<i32> {
    let routes = traffic.read().await?;
    let changes = AwsTraffic::plan(&routes, side, Percent::FULL);
    let mut report = ChangeReport::new(&settings.profile.name, "rollback", side, Percent::FULL, &changes, dry_run);
    if dry_run || !report.changed {
        settings.print(&report)?;
        return Ok(exit::OK);
    }
    if !settings.confirm(&report.plan(), &format!("move all traffic to {side} on profile {}?", settings.profile.name)) {
        eprintln!("not confirmed: nothing changed");
        return Ok(exit::USAGE);
    }
    let started = Instant::now();
    let after = settle(traffic, Some(routes.clone()), side, Percent::FULL, 30)
        .await
        .map_err(|e| Error::SplitUnknown { message: format!("could not put all traffic on {side}: {e}") })?;
    report.elapsed_ms = started.elapsed().as_millis();
    settings.attachments(traffic, Some(&routes)).detach().await;
    if settings.profile.notify.sns_topic_arn.is_some() || settings.profile.notify.webhook.is_some() {
        let mut bus = settings.bus(false);
        bus.event(Event::Rollback {
            to: side,
            by: settings.identity.actor().await,
            reason,
            aborted: false,
            before: routes.iter().map(|r| r.view()).collect(),
            routes: after,
        });
        bus.close().await;
    }
    report.drain = Some(drain(settings, &routes, side.other(), wait).await?);
    settings.print(&report)?;
    Ok(exit::OK)
}
