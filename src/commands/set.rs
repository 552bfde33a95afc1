//! `cutover set SIDE=PERCENT`: every route of the profile to one split, read and checked whole
//! before any write; the side gaining traffic passes every gate once first (unless `--no-gates`).
//!
//! While a rollout is progressing or paused, `set` would fight it: refused (exit 5). `--force`
//! aborts the rollout first — audited — and then holds the split until every write the rollout
//! had claimed can no longer land.

use std::time::Instant;

use super::shared::OneShift;
use crate::error::{Error, Result};
use crate::exit;
use crate::model::{Percent, Side, Split};
use crate::report::ChangeReport;
use crate::rollout::events::Event;
use crate::rollout::ledger::{Ledger, fmt_ms};
use crate::rollout::ports::Attachments as _;
use crate::rollout::ports::Clock;
use crate::rollout::restore::{ABORT_WITHIN, Restore};
use crate::settings::Settings;
use crate::splitter::{AwsTraffic, RouteChange};

/// What `set` is asked.
pub struct Args {
    pub split: Split,
    pub dry_run: bool,
    pub gates: bool,
    pub repoint: bool,
    pub force: bool,
}

pub async fn run(settings: &Settings, args: Args) -> Result<i32> {
    let Split { side, percent } = args.split;
    let traffic = settings.traffic();
    let profile = &settings.profile;
    let mut ledger =
        settings.store().map(|s| Ledger::new(s, format!("set pid {}", std::process::id()), settings.lease()));
    let load = async {
        match ledger.as_mut() {
            Some(l) => l.load().await.map(|s| s.cloned()),
            None => Ok(None),
        }
    };
    let (routes, state) = tokio::join!(traffic.read(), load);
    let routes = routes?;
    let state = state.map_err(Error::from)?;
    let clock = Clock::new();
    let active = state.as_ref().filter(|s| s.status.is_active());
    if let (Some(s), false) = (active, args.force) {
        let lease = s
            .lease_held_by_other("", clock.now_ms())
            .map(|l| format!(", driven by {} until {}", l.holder, fmt_ms(l.expires_ms)))
            .unwrap_or_default();
        return Err(Error::Locked {
            message: format!(
                "a rollout of `{}` is {} ({} → {}, stage {}/{}{lease}): `set` would fight it; nothing changed\nhint: `cutover rollback` ends it; `cutover set {} --force` aborts it and sets the split",
                profile.name,
                s.status,
                s.stable,
                s.candidate,
                s.progress.stage,
                s.stages.len(),
                args.split
            ),
        });
    }
    let mut changes = AwsTraffic::plan(&routes, side, percent);
    let gaining = Side::ALL.into_iter().find(|&s| changes.iter().any(|c| c.raises(s)));
    let active_sides: Vec<Side> = gaining.into_iter().collect();
    let stale = crate::sides::check(&settings.aws, &profile.sides, &routes, &active_sides).await?;
    if !stale.is_empty() {
        if !args.repoint {
            return Err(crate::sides::stale_error(&stale));
        }
        crate::sides::repoint(&routes, &mut changes, stale);
    }
    if let (true, Some(candidate), false) = (args.gates, gaining, profile.gates.is_empty()) {
        let current = Percent::from_f64(routes[0].weights.percent(candidate)).unwrap_or(Percent::ZERO);
        let next = if candidate == side { percent } else { percent.complement() };
        let toward_stable = state.as_ref().is_some_and(|s| s.stable == candidate);
        let shift = OneShift {
            candidate,
            current,
            next,
            toward_stable,
            refusal: "not shifting traffic to",
            skip: "--no-gates",
        };
        super::shared::gates_once(settings, &routes, shift).await?;
    }
    let mut report = ChangeReport::new(&profile.name, "set", side, percent, &changes, args.dry_run);
    if args.dry_run || !report.changed {
        settings.print(&report)?;
        return Ok(exit::OK);
    }
    // Without a state table, a run of this profile on this machine holds a lock file: refused
    // (exit 5) while it runs.
    let _lock = settings.local_lock()?;
    let question = format!(
        "move {side} to {percent}% on profile {}{}?",
        profile.name,
        if active.is_some() { " and abort the rollout in progress" } else { "" }
    );
    if !settings.confirm(&report.plan(), &question) {
        eprintln!("not confirmed: nothing changed");
        return Ok(exit::USAGE);
    }
    let started = Instant::now();
    let before: Vec<_> = routes.iter().map(|r| r.view()).collect();
    let planned: Vec<_> = changes.iter().map(RouteChange::planned).collect();
    // `--force` on a rollout in progress: abort it first, so it claims no more writes.
    let mut open = Vec::new();
    let aborted = match (active, ledger.as_mut()) {
        (Some(s), Some(l)) => {
            let reason = format!("aborted by `set {} --force` ({})", args.split, settings.identity.who().await);
            match l.abort(s.stable, &reason, &planned, ABORT_WITHIN, || clock.now_ms()).await {
                Ok(claims) => open = claims.unwrap_or_default(),
                Err(e) => return Err(Error::from(e)),
            }
            true
        }
        _ => false,
    };
    // The side a rollback would restore: never taken traffic off if the write fails part-way.
    let stable = state.as_ref().map(|s| s.stable).or((percent == Percent::FULL).then_some(side));
    let after = traffic.apply(&routes, &changes, stable).await?;
    let mut after: Vec<_> = after.iter().map(|r| r.view()).collect();
    if let Some(l) = ledger.as_mut() {
        if aborted {
            // Aborted before the write: what a rollout wrote before that, this write overwrote.
            let attachments = settings.attachments(&traffic, Some(&routes));
            let mut restore = Restore { traffic: &traffic, ledger: l, attachments: &attachments, clock };
            after = restore.hold(side, percent, open, after, false).await?;
            attachments.detach().await;
        } else if state.is_some()
            && let Err(e) = l.record_split(&after, clock.now_ms()).await
        {
            tracing::warn!(error = %e, "could not record the split in the rollout state");
        }
    }
    report.elapsed_ms = started.elapsed().as_millis();
    let mut bus = settings.bus(false);
    settings.note_freeze_override(&mut bus, &before).await;
    bus.event(Event::Set { side, percent, aborted, before, routes: after });
    bus.close().await;
    settings.print(&report)?;
    Ok(exit::OK)
}
