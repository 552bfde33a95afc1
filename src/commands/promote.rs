//! `cutover promote`: finishes the rollout — 100 % on the candidate, which becomes the stable
//! side. The gates are read once first and the live split must be one the rollout explains
//! (`--force` skips both). The write is claimed like any rollout write, so a rollback that races
//! it still wins.

use std::time::Instant;

use crate::error::{Error, Result};
use crate::exit;
use crate::model::Percent;
use crate::report::{RolloutView, StepReport};
use crate::rollout::decide::Rules;
use crate::rollout::engine::write_window;
use crate::rollout::events::Event;
use crate::rollout::ledger::{ClaimKind, Ending, Ledger, LedgerError, Status, fmt_ms};
use crate::rollout::open::drift;
use crate::rollout::outcome::Action;
use crate::rollout::ports::{Clock, Traffic, TrafficError, WriteGuard};
use crate::rollout::position::{Position, locate};
use crate::settings::Settings;
use crate::splitter::AwsTraffic;

pub async fn run(settings: &Settings, dry_run: bool, force: bool) -> Result<i32> {
    let store = settings.need_store("promote")?;
    let profile = &settings.profile;
    let traffic = settings.traffic();
    let clock = Clock::new();
    let mut ledger = Ledger::new(store, settings.identity.holder().await, settings.lease());
    let (routes, state) = tokio::join!(traffic.read(), ledger.load());
    let routes = routes?;
    let state = state.map_err(Error::from)?.cloned();
    let views = AwsTraffic::views(&routes);
    let Some(state) = state else {
        return Err(Error::refused_hint(
            "no rollout is recorded: nothing to promote",
            "start one: `cutover rollout` or `cutover advance`",
        ));
    };
    let report = |action: Action, message: String, routes, before, state: Option<&_>| StepReport {
        profile: profile.name.clone(),
        command: "promote",
        action,
        message,
        exit_code: exit::OK,
        before,
        routes,
        rollout: state.map(|s| RolloutView::of(s, clock.now_ms())),
        readings: Vec::new(),
        elapsed_ms: None,
        drain: None,
        shadow: Vec::new(),
    };
    if !state.status.is_active() {
        let msg = format!("the rollout is {}: nothing to promote", state.status);
        settings.print(&report(Action::NothingToDo, msg, views, Vec::new(), Some(&state)))?;
        return Ok(exit::OK);
    }
    if let Some(problem) = state.problem_at(clock.now_ms()) {
        return Err(crate::rollout::open::unsound(&profile.name, &problem));
    }
    if let Some(l) = state.lease_held_by_other(ledger.me(), clock.now_ms())
        && !force
    {
        return Err(Error::Locked {
            message: format!("another run holds the rollout: {} (until {})", l.holder, fmt_ms(l.expires_ms)),
        });
    }
    let candidate = state.candidate;
    let rules = Rules { stages: state.stages.clone(), ..profile.rollout.clone() };
    if !force && locate(&views, &rules, candidate) == Position::Elsewhere {
        return Err(drift(&state, &views));
    }
    if !force {
        let shift = super::shared::OneShift {
            candidate,
            current: state.percent(),
            next: Percent::FULL,
            toward_stable: false,
            refusal: "not promoting",
            skip: "--force",
        };
        super::shared::gates_once(settings, &routes, shift).await?;
    }
    if dry_run {
        let msg = format!("would move all traffic to {candidate} and make it the stable side");
        settings.print(&report(Action::DryRun, msg, views, Vec::new(), Some(&state)))?;
        return Ok(exit::OK);
    }
    let plan = views.iter().map(|r| format!("  {} {}: {}\n", r.kind, r.name, r.weights)).collect::<String>();
    let question = format!(
        "promote {candidate} from {}% to all traffic on profile {} ({candidate} becomes the stable side)?",
        state.percent(),
        profile.name
    );
    if !settings.confirm(&plan, &question) {
        eprintln!("not confirmed: nothing changed");
        return Ok(exit::USAGE);
    }

    let started = Instant::now();
    if state.status == Status::Paused {
        ledger.set_paused(false, None, || clock.now_ms()).await?;
    }
    let n = state.stages.len();
    let now = clock.now_ms();
    ledger.take(state.progress.clone(), now).await?;
    let claim = ledger
        .claim(ClaimKind::Forward { stage: n }, now + write_window(settings.lease()).as_millis() as u64, now)
        .await?;
    let guard = WriteGuard { compare: !force, deadline: Some(clock.instant_of(claim.deadline_ms)) };
    let after = match Traffic::write(&traffic, &routes, candidate, Percent::FULL, guard).await {
        Ok(after) => AwsTraffic::views(&after),
        Err(e) => {
            ledger.release(&claim, clock.now_ms()).await;
            let _ = ledger.release_lease(clock.now_ms()).await;
            return Err(match e {
                TrafficError::Conflict(m) => Error::Locked {
                    message: format!(
                        "the routes changed while promoting ({m}): nothing more was written; look at `cutover status`"
                    ),
                },
                e => e.into(),
            });
        }
    };
    // The write has landed: its claim is done (recorded as the last stage), then the rollout ends.
    let recorded = match ledger.land(&claim, n, &after, clock.now_ms()).await {
        Ok(()) => ledger.end(&Ending::Completed, &after, clock.now_ms()).await,
        Err(e) => Err(e),
    };
    if let Err(e) = recorded {
        return Err(match e {
            LedgerError::Lost(loss) => Error::SplitUnknown {
                message: format!(
                    "all traffic was moved to {candidate}, but meanwhile {}; look at `cutover status`",
                    loss.message()
                ),
            },
            e => e.into(),
        });
    }
    super::shared::drop_safety_net(settings, &traffic, &routes).await;
    // The preview hostname moves to the next candidate: the old stable side.
    if let Err(e) = settings.point_preview(&traffic, candidate.other()).await {
        tracing::warn!(error = %e, "could not point the preview record at the next candidate");
    }
    let mut bus = settings.bus(false);
    settings.note_freeze_override(&mut bus, &views).await;
    bus.event(Event::Promoted { side: candidate, before: views.clone(), routes: after.clone() });
    bus.close().await;
    let msg = format!("all traffic on {candidate}, now the stable side");
    let mut r = report(Action::Promoted, msg, after, views, ledger.state());
    r.elapsed_ms = Some(started.elapsed().as_millis());
    settings.print(&r)?;
    Ok(exit::OK)
}
