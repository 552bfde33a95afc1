//! `cutover status`: per route the live weights and percentages; `live` is the side holding all
//! traffic on every route (null while split); the recorded rollout, and where the live split
//! stands against it — its stage, a write a stopped run cut short (the next run finishes it), or
//! drift.

use std::io::IsTerminal;
use std::time::{Duration, SystemTime};

use crate::cli::OutputFormat;
use crate::error::Result;
use crate::exit;
use crate::model::{Reading, RouteView, Side, sole_side_of};
use crate::observe::{Published, RequestCounts};
use crate::report::{NetCheck, RolloutView, RouteReport, SafetyNetView, StatusReport};
use crate::rollout::decide::Rules;
use crate::rollout::ledger::{Ledger, RolloutState, Status, fmt_ms};
use crate::rollout::open::{Explained, Pending, explain};
use crate::rollout::ports::{Clock, GateContext};
use crate::rollout::position::{Position, locate};
use crate::safety_net::SafetyNet;
use crate::settings::Settings;
use crate::splitter::{AwsTraffic, RouteLive};
use crate::state::DynamoStore;

pub async fn run(settings: &Settings, watch: Option<Duration>) -> Result<i32> {
    let traffic = settings.traffic();
    let mut ledger = settings.store().map(|s| Ledger::new(s, String::new(), settings.lease()));
    // Where each side's requests are counted and what the gates read are resolved once, on the
    // first routes read, however many frames a watch draws.
    let counts = tokio::sync::OnceCell::new();
    let Some(every) = watch else {
        let (report, _, _) = snapshot(settings, &traffic, ledger.as_mut(), &counts).await?;
        settings.print(&report)?;
        return Ok(exit::OK);
    };
    // `--watch`: the same view again every `every`, with the rollout's bake and its gates, until
    // the rollout ends or the person stops watching.
    let terminal = std::io::stdout().is_terminal();
    let mut seen_active = false;
    let mut gates: Option<crate::gates::Gates> = None;
    loop {
        let (report, state, routes) = snapshot(settings, &traffic, ledger.as_mut(), &counts).await?;
        let gates = match &state {
            Some(s) if s.status.is_active() => {
                let gates = gates.get_or_insert_with(|| settings.gates(&routes));
                Some(readings(settings, gates, s).await)
            }
            _ => None,
        };
        // It ends with the rollout it saw running; before one starts it waits for one.
        let active = state.as_ref().is_some_and(|s| s.status.is_active());
        let ended = (seen_active && !active).then(|| outcome(state.as_ref()));
        let mut text = watch_frame(settings, &report, state.as_ref(), gates.as_deref(), every, ended.is_none());
        if let Some((line, _)) = &ended {
            text.push_str(line);
            text.push('\n');
        }
        match settings.output {
            OutputFormat::Json => {
                let mut doc = serde_json::to_value(&report).unwrap_or_default();
                doc["gates"] = serde_json::to_value(&gates).unwrap_or_default();
                crate::report::out(format!("{doc}\n"));
            }
            // A terminal is redrawn in place; a log gets one block per tick.
            OutputFormat::Text if terminal => {
                crate::terminal::home_and_clear();
                crate::report::out(text);
            }
            OutputFormat::Text => crate::report::out(format!("--- {}\n{text}", fmt_ms(Clock::new().now_ms()))),
        }
        if let Some((_, code)) = ended {
            return Ok(code);
        }
        seen_active |= active;
        tokio::select! {
            _ = tokio::signal::ctrl_c() => return Ok(exit::OK),
            _ = tokio::time::sleep(every) => {}
        }
    }
}

/// The view `status` prints, the rollout state and the routes it was made from.
async fn snapshot(
    settings: &Settings,
    traffic: &AwsTraffic,
    ledger: Option<&mut Ledger<DynamoStore>>,
    counts: &tokio::sync::OnceCell<RequestCounts>,
) -> Result<(StatusReport, Option<RolloutState>, Vec<RouteLive>)> {
    let load = async {
        match ledger {
            Some(l) => Some(l.load().await.map(|s| s.cloned())),
            None => None,
        }
    };
    let (routes, state) = tokio::join!(traffic.read(), load);
    let routes = routes?;
    let views: Vec<RouteView> = routes.iter().map(|r| r.view()).collect();
    let clock = Clock::new();
    let mut recorded = None;
    let rollout = match state {
        None | Some(Ok(None)) => None,
        Some(Ok(Some(s))) => {
            let mut view = RolloutView::of(&s, clock.now_ms());
            view.position = Some(position(&s, &views, &settings.profile.rollout));
            recorded = Some(s);
            Some(serde_json::to_value(view).unwrap_or_default())
        }
        // Another profile's (of the same name): not this profile's to show.
        Some(Err(crate::rollout::ledger::LedgerError::Failed(e @ crate::error::Error::Profile(_)))) => return Err(e),
        Some(Err(e)) => {
            tracing::warn!("cannot read the rollout state: {e}");
            Some(serde_json::json!({ "error": e.to_string() }))
        }
    };
    let mut reports: Vec<RouteReport> = routes.iter().map(RouteReport::from).collect();
    // The observed split and the safety net are read at once, after the routes they are about.
    let observed = async {
        let observe = settings.profile.observe?;
        let counts = counts.get_or_init(async || RequestCounts::new(&settings.aws, &routes)).await;
        // The newest published minutes: a minute still being published would skew the shares.
        Some(match counts.published(SystemTime::now(), observe.settle, observe.window, None).await {
            Ok(Published::Counted { minutes, counted }) => Ok((counted, minutes)),
            Ok(Published::Pending { first, absent_at }) => {
                Err(crate::error::Error::Other(Published::pending_detail(first, absent_at)))
            }
            Err(e) => Err(e),
        })
    };
    let net = async {
        let net = SafetyNet::of(&settings.aws, &settings.profile)?;
        Some(net.found(&routes).await.map(|found| (found, net.enabled)))
    };
    let (observed, net) = tokio::join!(observed, net);
    match observed {
        Some(Ok((counted, minutes))) => {
            for (report, c) in reports.iter_mut().zip(&counted) {
                report.observed = c.shares();
                report.observed_minutes = match (c.blue, c.green, report.observed) {
                    (Some(_), Some(_), Some(_)) => Some(minutes.label()),
                    (Some(_), Some(_), None) => Some(format!("no requests counted in {} UTC", minutes.label())),
                    _ => None,
                };
            }
        }
        Some(Err(e)) => tracing::warn!("cannot count requests for the observed split: {e}"),
        None => {}
    }
    let mut safety_net = Vec::new();
    match net {
        Some(Ok((found, enabled))) => {
            // The net belongs on the candidate's records while a rollout runs; any other is a
            // stray, which the next ending (or rollout) takes off.
            let candidate = recorded.as_ref().filter(|s| s.status.is_active()).map(|s| s.candidate);
            for f in found {
                let stray = !enabled || candidate != Some(f.side);
                let at = routes.iter().position(|r| r.route53().is_some() && r.index == f.route);
                if let Some(report) = at.and_then(|i| reports.get_mut(i)) {
                    report.safety_net = Some(SafetyNetView { side: f.side, health_check_id: f.id.clone(), stray });
                    safety_net.push(NetCheck { id: f.id, record: report.name.clone(), side: f.side, stray });
                }
            }
        }
        Some(Err(e)) if settings.profile.safety_net => {
            tracing::warn!("cannot list the safety net's health checks: {e}")
        }
        Some(Err(e)) => tracing::debug!("cannot look for the safety net's strays: {e}"),
        None => {}
    }
    let drift = StatusReport::disagreement(&reports);
    let report = StatusReport {
        profile: settings.profile.name.clone(),
        rollout_id: recorded.as_ref().map(|s| s.id.clone()),
        live: sole_side_of(&views),
        routes: reports,
        rollout,
        drift,
        safety_net,
    };
    Ok((report, recorded, routes))
}

/// This moment's reading of the rollout's gates (and its observed split), as the rollout reads them.
async fn readings(settings: &Settings, gates: &crate::gates::Gates, s: &RolloutState) -> Vec<Reading> {
    use crate::rollout::ports::Gates as _;
    let rules = Rules { stages: s.stages.clone(), ..settings.profile.rollout.clone() };
    let sides = (s.stable, s.candidate);
    let ctx = GateContext::at(&settings.profile.name, sides, &rules, &s.progress, Clock::new().now_ms(), None);
    gates.read(&ctx).await
}

/// How the rollout a watch saw running ended: the watch's last line and its exit code — the
/// code the `rollout` that drove it ends with (0 completed, 3 rolled back, 7 paused or held).
fn outcome(state: Option<&RolloutState>) -> (String, i32) {
    let why = |s: &RolloutState| s.reason.as_ref().map(|r| format!(": {r}")).unwrap_or_default();
    match state {
        Some(s) if s.status == Status::Completed => {
            (format!("the rollout ended completed: all traffic on {} (exit 0)", s.stable), exit::OK)
        }
        Some(s) if s.status == Status::Aborted => (
            format!("the rollout ended rolled back to {}{} (exit {})", s.stable, why(s), exit::ROLLED_BACK),
            exit::ROLLED_BACK,
        ),
        Some(s) if s.status == Status::Paused => (
            format!(
                "the rollout ended paused at stage {}/{}{} (exit {}; `cutover resume` releases it)",
                s.progress.stage,
                s.stages.len(),
                why(s),
                exit::HELD
            ),
            exit::HELD,
        ),
        Some(s) => (format!("the rollout is {} (exit {})", s.status, exit::OK), exit::OK),
        None => {
            (format!("the rollout state is gone: another rollout replaced it (exit {})", exit::LOCKED), exit::LOCKED)
        }
    }
}

/// One frame of `status --watch`: the status, the bake of the stage, each gate's reading; the
/// footer while the watch goes on (`more`), none on its last frame.
fn watch_frame(
    settings: &Settings,
    report: &StatusReport,
    state: Option<&RolloutState>,
    gates: Option<&[Reading]>,
    every: Duration,
    more: bool,
) -> String {
    let colour = crate::report::colour();
    let mut text = report.to_string();
    if let Some(s) = state.filter(|s| s.status.is_active()) {
        let rules = Rules { stages: s.stages.clone(), ..settings.profile.rollout.clone() };
        let now = Clock::new().now_ms();
        let bake = rules.bake_of(s.progress.stage);
        let secs = |ms: u64| humantime::format_duration(Duration::from_secs(ms / 1000)).to_string();
        match (s.progress.pass_since_ms, s.progress.hold_since_ms) {
            (Some(since), _) => text.push_str(&format!(
                "bake: {} of {} passed\n",
                secs(now.saturating_sub(since)),
                humantime::format_duration(bake)
            )),
            (None, Some(since)) => text.push_str(&format!(
                "held for {} (max_hold {})\n",
                secs(now.saturating_sub(since)),
                humantime::format_duration(rules.max_hold)
            )),
            (None, None) => text.push_str("bake: not started (the gates have not all passed yet)\n"),
        }
        for (gate, n) in &s.progress.fails {
            text.push_str(&format!(
                "  {gate}: failed {n} time(s) in a row (failure_threshold {})\n",
                rules.failure_threshold
            ));
        }
    }
    for r in gates.unwrap_or_default() {
        text.push_str(&format!("  gate {} {}: {}\n", r.gate, crate::report::verdict_word(r.verdict, colour), r.detail));
        if let Some(chart) = r.evidence.as_ref().and_then(|e| e.get("per_minute")).and_then(rate_chart) {
            text.push_str(&chart);
        }
    }
    if more {
        text.push_str(&format!("(every {}; Ctrl-C to stop)\n", humantime::format_duration(every)));
    }
    text
}

/// A judge's error rates per minute, both sides on one scale, one bar per minute (oldest first;
/// `·` a minute the side served nothing): what the verdict weighs, at a glance.
fn rate_chart(per_minute: &serde_json::Value) -> Option<String> {
    const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    let minutes = per_minute.as_array().filter(|m| !m.is_empty())?;
    let rates = |side: &str| -> Vec<Option<f64>> {
        minutes.iter().map(|m| m.get(side).and_then(|r| r.as_f64()).filter(|r| r.is_finite() && *r >= 0.0)).collect()
    };
    let (candidate, stable) = (rates("candidate"), rates("stable"));
    let top = candidate.iter().chain(&stable).flatten().fold(0.0_f64, |a, b| a.max(*b));
    let row = |rates: &[Option<f64>]| -> String {
        rates
            .iter()
            .map(|r| match r {
                None => '·',
                Some(_) if top == 0.0 => BARS[0],
                Some(r) => BARS[((r / top) * (BARS.len() - 1) as f64).round() as usize],
            })
            .collect()
    };
    Some(format!(
        "    error rate per minute (top {:.3} %)\n    candidate {}\n    stable    {}\n",
        top * 100.0,
        row(&candidate),
        row(&stable)
    ))
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

#[cfg(test)]
mod chart_tests {
    use super::rate_chart;

    #[test]
    fn a_judges_minutes_chart_on_one_scale_and_a_silent_minute_is_a_dot() {
        let minutes = serde_json::json!([
            {"minute": 60, "candidate": 0.02, "stable": 0.01},
            {"minute": 120, "candidate": null, "stable": 0.0},
            {"minute": 180, "candidate": 0.04, "stable": 0.01},
        ]);
        let chart = rate_chart(&minutes).unwrap();
        assert!(chart.contains("top 4.000 %"), "{chart}");
        assert!(chart.contains("candidate ▅·█"), "{chart}");
        assert!(chart.contains("stable    ▃▁▃"), "{chart}");
        assert_eq!(rate_chart(&serde_json::json!([])), None);
    }
}
