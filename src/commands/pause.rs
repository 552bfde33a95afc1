//! `cutover pause` / `cutover resume`: hold a rollout (a paused rollout is not advanced, and a
//! running `rollout` stops at its next poll, exit 7), or release it (its stage bakes again).
//! `resume` only marks the rollout progressing; it drives nothing itself (a `rollout` run or the
//! scheduler's `advance` does), and says so.

use crate::error::{Error, Result};
use crate::exit;
use crate::report::{RolloutView, StepReport};
use crate::rollout::events::Event;
use crate::rollout::ledger::{Ledger, Status};
use crate::rollout::outcome::Action;
use crate::rollout::ports::Clock;
use crate::settings::Settings;

pub async fn run(settings: &Settings, pause: bool, dry_run: bool) -> Result<i32> {
    let command = if pause { "pause" } else { "resume" };
    let store = settings.need_store(command)?;
    let traffic = settings.traffic();
    let clock = Clock::new();
    let mut ledger = Ledger::new(store, format!("{command} pid {}", std::process::id()), settings.lease());
    let (live, state) = tokio::join!(traffic.read_views(), ledger.load());
    let live = live?;
    let Some(state) = state.map_err(Error::from)?.cloned() else {
        return Err(Error::refused(format!(
            "no rollout of `{}` is recorded: nothing to {command}",
            settings.profile.name
        )));
    };
    let report = |action: Action, message: String, state: Option<&_>| StepReport {
        profile: settings.profile.name.clone(),
        command,
        action,
        message,
        exit_code: exit::OK,
        before: Vec::new(),
        routes: live.clone(),
        rollout: state.map(|s| RolloutView::of(s, clock.now_ms())),
        readings: Vec::new(),
        elapsed_ms: None,
        drain: None,
        shadow: Vec::new(),
    };
    let (from, to) = if pause { (Status::Progressing, Status::Paused) } else { (Status::Paused, Status::Progressing) };
    if state.status != from {
        let msg = format!("the rollout is {}: nothing to {command}", state.status);
        settings.print(&report(Action::NothingToDo, msg, Some(&state)))?;
        return Ok(exit::OK);
    }
    if dry_run {
        let msg = format!("would mark the rollout {to} (no change made)");
        settings.print(&report(Action::DryRun, msg, Some(&state)))?;
        return Ok(exit::OK);
    }
    let reason = if pause { Some(format!("paused by {}", settings.identity.who().await)) } else { None };
    match ledger.set_paused(pause, reason.clone(), || clock.now_ms()).await? {
        Some(s) => {
            let mut bus = settings.bus(false);
            bus.event(Event::PauseChanged { paused: pause, stage: s.progress.stage, reason, routes: live.clone() });
            bus.close().await;
            let action = if pause { Action::Pause } else { Action::Resume };
            let message = if pause {
                format!(
                    "the rollout is {to}: a running `rollout` stops at its next poll (exit 7), `advance` moves nothing"
                )
            } else {
                // Nothing in this process drives the rollout: say what will.
                format!(
                    "the rollout is {to} again (its stage bakes again from now), but nothing drives it yet: run `cutover rollout -p {}` to drive it here, or the scheduler's next `advance` will",
                    settings.profile.name
                )
            };
            settings.print(&report(action, message, Some(&s)))?;
        }
        None => {
            let now = ledger.state().cloned();
            let msg = format!(
                "the rollout is {}: nothing to {command}",
                now.as_ref().map(|s| s.status.to_string()).unwrap_or_else(|| "gone".into())
            );
            settings.print(&report(Action::NothingToDo, msg, now.as_ref()))?;
        }
    }
    Ok(exit::OK)
}
