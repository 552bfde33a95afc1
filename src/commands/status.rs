//! `cutover status`: per route the live weights and percentages; `live` is the side holding all
//! traffic on every route (null while split); the recorded rollout, and where the live split
//! stands against it — its stage, a write a stopped run cut short (the next run finishes it), or
//! drift.

use crate::error::Result;
use crate::exit;
use crate::model::{RouteKind, RouteView, Side, sole_side_of};
use crate::observe::RequestCounts;
use crate::report::{RolloutView, RouteReport, SafetyNetView, StatusReport};
use crate::rollout::decide::Rules;
use crate::rollout::ledger::{Ledger, RolloutState, Status};
use crate::rollout::open::{Explained, Pending, explain};
use crate::rollout::ports::Clock;
use crate::rollout::position::{Position, locate};
use crate::safety_net::SafetyNet;
use crate::settings::Settings;

pub async fn run(settings: &Settings) -> Result<i32> {
    let traffic = settings.traffic();
    let mut ledger = settings.store().map(|s| Ledger::new(s, String::new(), settings.lease()));
    let load = async {
        match ledger.as_mut() {
            Some(l) => Some(l.load().await.map(|s| s.cloned())),
            None => None,
        }
    };
    let (routes, state) = tokio::join!(traffic.read(), load);
    let routes = routes?;
    let views: Vec<RouteView> = routes.iter().map(|r| r.view()).collect();
    let clock = Clock::new();
    let rollout = match state {
        None | Some(Ok(None)) => None,
        Some(Ok(Some(s))) => {
            let mut view = RolloutView::of(&s, clock.now_ms());
            view.position = Some(position(&s, &views, &settings.profile.rollout));
            Some(serde_json::to_value(view).unwrap_or_default())
        }
        Some(Err(e)) => {
            tracing::warn!("cannot read the rollout state: {e}");
            Some(serde_json::json!({ "error": e.to_string() }))
        }
    };
    let mut reports: Vec<RouteReport> = routes.iter().map(RouteReport::from).collect();
    if let Some(observe) = settings.profile.observe {
        match RequestCounts::new(&settings.sdk, &routes).read(observe.window, None).await {
            Ok(counted) => {
                for (report, c) in reports.iter_mut().zip(&counted) {
                    report.observed = c.shares();
                }
            }
            Err(e) => tracing::warn!("cannot count requests for the observed split: {e}"),
        }
    }
    if let Some(net) = SafetyNet::of(&settings.sdk, &settings.profile) {
        match net.attached(&routes).await {
            Ok(attached) => {
                for (index, side, id) in attached {
                    let at = routes.iter().position(|r| r.kind == RouteKind::Route53 && r.index == index);
                    if let Some(report) = at.and_then(|i| reports.get_mut(i)) {
                        report.safety_net = Some(SafetyNetView { side, health_check_id: id });
                    }
                }
            }
            Err(e) => tracing::warn!("cannot list the safety net's health checks: {e}"),
        }
    }
    let drift = StatusReport::disagreement(&reports);
    let report = StatusReport {
        profile: settings.profile.name.clone(),
        live: sole_side_of(&views),
        routes: reports,
        rollout,
        drift,
    };
    settings.print(&report)?;
    Ok(exit::OK)
}

/// Where the live split stands against the recorded rollout, in words.
fn position(s: &RolloutState, views: &[RouteView], rules: &Rules) -> String {
    let on = |side: Side| sole_side_of(views) == Some(side);
    match s.status {
        Status::Completed | Status::Aborted if on(s.stable) => format!("all on {}, as recorded", s.stable),
        Status::Completed | Status::Aborted => {
            format!("DRIFT: not all on {} as the {} rollout recorded", s.stable, s.status)
        }
        Status::Progressing | Status::Paused => {
            let stage = s.progress.stage;
            let recorded = Rules { stages: s.stages.clone(), ..rules.clone() };
            let live = locate(views, &recorded, s.candidate);
            match explain(s, views, rules) {
                Explained::AsRecorded => format!("at stage {stage}, as recorded"),
                Explained::Pending(Pending::Forward { stage: k, .. }) if live == Position::At(k) => {
                    format!("at stage {k}: written, not yet recorded (the next run records it)")
                }
                Explained::Pending(Pending::Forward { stage: k, .. }) => {
                    format!("between stage {stage} and stage {k}: a write was cut short (the next run finishes it)")
                }
                Explained::Pending(Pending::Restore) => "a rollback was cut short (the next run finishes it)".into(),
                Explained::Drift => format!("DRIFT: {live}, but the rollout recorded stage {stage}"),
            }
        }
    }
}
