//! `cutover rollout [--to SIDE]`: every stage to 100 % on the candidate, baking and gating each;
//! on a failed gate, rolled back (or paused). Unattended in a pipeline: the exit code says how it
//! ended, the result is one JSON document with `-o json`.
//!
//! Every pre-check — the rollout state (lease, drift, a paused rollout), the sides' placement, the
//! gates' alarms and target groups — runs before the first write. Only then is the rollout
//! recorded, the preview record moved and traffic shifted.

use std::time::Instant;

use crate::error::{Error, Result};
use crate::exit;
use crate::model::{Percent, Side};
use crate::report::{RolloutReport, ValidateReport};
use crate::rollout::engine::{Driver, OnInterrupt, Parts, write_window};
use crate::rollout::ledger::{Ledger, MemoryStore};
use crate::rollout::open::{Ask, Opened, open};
use crate::rollout::outcome::{End, Outcome};
use crate::rollout::ports::{Clock, Store};
use crate::settings::Settings;
use crate::splitter::{AwsTraffic, sole_side};

pub struct Args {
    pub to: Option<Side>,
    pub dry_run: bool,
    pub on_interrupt: OnInterrupt,
    pub force: bool,
    pub repoint: bool,
}

pub async fn run(settings: &Settings, args: Args) -> Result<i32> {
    let traffic = settings.traffic();
    if args.dry_run {
        let routes = traffic.read().await?;
        let live = sole_side(&routes);
        let report = match args.to {
            Some(to) => ValidateReport::new_toward(&settings.profile, &routes, live, to),
            None => ValidateReport::new(&settings.profile, &routes, live),
        };
        settings.print(&report)?;
        return Ok(exit::OK);
    }
    match settings.store() {
        Some(store) => drive(settings, &traffic, store, settings.identity.holder().await, &args).await,
        // Without a state table the run keeps its progress to itself, and a lock file keeps a
        // second run on this machine out (not one on another machine: said at the start).
        None => {
            let _lock = settings.local_lock()?;
            if settings.output == crate::cli::OutputFormat::Text {
                eprintln!("note: {}", crate::state::local_lock::NOT_ACROSS_MACHINES);
            }
            drive(settings, &traffic, MemoryStore::default(), "this run".into(), &args).await
        }
    }
}

async fn drive<S: Store>(
    settings: &Settings,
    traffic: &AwsTraffic,
    store: S,
    holder: String,
    args: &Args,
) -> Result<i32> {
    let started = Instant::now();
    let profile = &settings.profile;
    let clock = Clock::new();
    let mut ledger = Ledger::new(store, holder, settings.lease());
    let opened = open(
        traffic,
        &mut ledger,
        Ask { profile: &profile.name, rules: &profile.rollout, to: args.to, force: args.force, restart: true },
        clock.now_ms(),
    )
    .await?;
    let mut opening = match opened {
        Opened::Run(o) => o,
        Opened::NothingToDo { views, side } => {
            let end = End {
                outcome: Outcome::NothingToDo,
                exit_code: exit::OK,
                from: side.other(),
                to: side,
                stage: profile.rollout.stages.len(),
                stages: profile.rollout.stages.len(),
                percent: Percent::FULL,
                routes: views,
                reason: None,
                readings: Vec::new(),
                shadow: Vec::new(),
            };
            let report = RolloutReport::new(&profile.name, end, started.elapsed().as_secs_f64());
            settings.print(&report)?;
            return Ok(report.exit_code());
        }
        Opened::Idle { state, .. } => {
            return Err(Error::Paused {
                message: format!("the rollout of `{}` is {}: `cutover resume` releases it", profile.name, state.status),
            });
        }
    };
    let checked = super::shared::precheck(settings, &mut opening, args.repoint).await?;
    // Every pre-check passed: from here on things are written.
    let (gates, routes) = checked.commit(settings, traffic, &opening).await?;
    let cancel = on_signal();
    let mut bus = settings.bus(true);
    settings.note_freeze_override(&mut bus, &opening.views).await;
    let opening_routes = opening.routes.clone();
    let attachments = settings.attachments(traffic, Some(&opening_routes));
    let parts = Parts {
        profile: &profile.name,
        traffic,
        gates: &gates,
        ledger: &mut ledger,
        sink: bus.sink(),
        clock,
        write_window: write_window(settings.lease()),
        attachments: &attachments,
    };
    let mut driver = Driver::new(parts, &opening);
    if let Some(routes) = routes {
        driver = driver.with_routes(routes);
    }
    let end = driver.run(opening, cancel, args.on_interrupt).await;
    bus.close().await;
    let end = end?;
    let over = matches!(end.outcome, Outcome::Completed | Outcome::RolledBack)
        || end.outcome == Outcome::Interrupted && end.percent == Percent::ZERO;
    if over {
        super::shared::drop_safety_net(settings, traffic, &opening_routes).await;
    }
    if end.outcome == Outcome::Completed {
        // Promoted: the preview hostname moves to the next candidate, the old stable side.
        if let Err(e) = settings.point_preview(traffic, end.to.other()).await {
            tracing::warn!(error = %e, "could not point the preview record at the next candidate");
        }
    }
    let report = RolloutReport::new(&profile.name, end, started.elapsed().as_secs_f64());
    settings.print(&report)?;
    Ok(report.exit_code())
}

/// A flag that turns `true` on Ctrl-C or SIGTERM (a stopped CodeBuild job).
fn on_signal() -> tokio::sync::watch::Receiver<bool> {
    let (tx, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::warn!("stop requested: ending the rollout once the write in flight (if any) is done");
        let _ = tx.send(true);
        std::future::pending::<()>().await;
    });
    rx
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
