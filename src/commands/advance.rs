//! `cutover advance [--to SIDE]`, for schedulers: at most one stage per call, decided by the same
//! state machine as `rollout`, its progress kept in the state item between calls. Exit 0 when it
//! is not yet time or nothing is left; every refusal (lease held, drift, a misplaced side, a gate
//! naming what is not there) writes nothing.

use crate::error::Result;
use crate::exit;
use crate::model::Side;
use crate::report::{RolloutView, StepReport};
use crate::rollout::engine::{Driver, Parts, write_window};
use crate::rollout::ledger::{Ledger, Status};
use crate::rollout::open::{Ask, Opened, open};
use crate::rollout::outcome::Action;
use crate::rollout::ports::Clock;
use crate::settings::Settings;

pub struct Args {
    pub to: Option<Side>,
    pub dry_run: bool,
    pub force: bool,
    pub repoint: bool,
}

pub async fn run(settings: &Settings, args: Args) -> Result<i32> {
    let store = settings.need_store("advance")?;
    let profile = &settings.profile;
    let traffic = settings.traffic();
    let clock = Clock::new();
    let mut ledger = Ledger::new(store, settings.identity.holder().await, settings.lease());
    let opened = open(
        &traffic,
        &mut ledger,
        Ask { profile: &profile.name, rules: &profile.rollout, to: args.to, force: args.force, restart: false },
        clock.now_ms(),
    )
    .await?;
    let report = |action: Action, message: String, exit_code: i32, routes, state: Option<&_>| StepReport {
        profile: profile.name.clone(),
        command: "advance",
        action,
        message,
        exit_code,
        before: Vec::new(),
        routes,
        rollout: state.map(|s| RolloutView::of(s, clock.now_ms())),
        readings: Vec::new(),
        elapsed_ms: None,
        drain: None,
        shadow: Vec::new(),
    };
    let mut opening = match opened {
        Opened::Run(o) => o,
        Opened::NothingToDo { views, side } => {
            let msg = format!("all traffic is already on {side}: nothing to do");
            settings.print(&report(Action::NothingToDo, msg, exit::OK, views, ledger.state()))?;
            return Ok(exit::OK);
        }
        Opened::Idle { views, state } => {
            let msg = if state.status == Status::Paused {
                "the rollout is paused: nothing to do (`cutover resume` releases it)".to_string()
            } else {
                format!(
                    "the rollout is {}: nothing to do (start the next one with `cutover advance --to SIDE`)",
                    state.status
                )
            };
            settings.print(&report(Action::NothingToDo, msg, exit::OK, views, Some(&state)))?;
            return Ok(exit::OK);
        }
    };
    let checked = super::shared::precheck(settings, &mut opening, args.repoint).await?;
    let (gates, routes) = if args.dry_run {
        (checked.gates, None)
    } else {
        // Every pre-check passed: from here on things are written.
        checked.commit(settings, &traffic, &opening).await?
    };
    let mut bus = settings.bus(false);
    if !args.dry_run {
        settings.note_freeze_override(&mut bus, &opening.views).await;
    }
    let opening_routes = opening.routes.clone();
    let attachments = settings.attachments(&traffic, Some(&opening_routes));
    let parts = Parts {
        profile: &profile.name,
        traffic: &traffic,
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
    if args.dry_run {
        let step = driver.preview(opening).await;
        bus.close().await;
        let mut r = report(step.action, step.message, step.exit_code, step.routes, ledger.state());
        r.readings = step.readings;
        settings.print(&r)?;
        return Ok(exit::OK);
    }
    let step = driver.step(opening).await;
    bus.close().await;
    let step = step?;
    if matches!(step.action, Action::Completed | Action::RolledBack) {
        super::shared::drop_safety_net(settings, &traffic, &opening_routes).await;
    }
    if step.action == Action::Completed
        && let Some(s) = ledger.state()
        && let Err(e) = settings.point_preview(&traffic, s.candidate).await
    {
        tracing::warn!(error = %e, "could not point the preview record at the next candidate");
    }
    let mut r = report(step.action, step.message, step.exit_code, step.routes, ledger.state());
    r.readings = step.readings;
    r.shadow = step.shadow;
    settings.print(&r)?;
    Ok(r.exit_code)
}
