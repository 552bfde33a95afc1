//! `judge` gate: the candidate against the stable side, minute by minute, by statistics — on what
//! the load balancers already publish, per side, in the same settled minutes; no extra service.
//!
//! Each settled minute since the shift brings, per side: requests (`RequestCount`), errors
//! (`HTTPCode_Target_5XX_Count` + `TargetConnectionErrorCount`) and, with a latency SLO, requests
//! slower than it (from `TargetResponseTime`'s `PR(:slo)`). A Route53 route's sides are read at
//! the target groups their aliased ALBs route the record's host to, an ALB route's at its two
//! target groups — as `[observe]` counts them. (`HTTPCode_ELB_5XX_Count`, the ALB's own 5xx, is
//! published per load balancer only: it cannot be told apart per side on a shared ALB or between
//! the target groups of one listener, so it is not counted.)
//!
//! [`crate::judge_stats`] decides: an anytime-valid test of the candidate's error ratio against
//! the stable side's, so every poll and every `advance` may look. PASS when credibly not worse,
//! FAIL when credibly worse by the ratio and the margin, otherwise INCONCLUSIVE (a wait: the stage
//! keeps baking up to `max_hold`), NO_DATA while too few errors are predicted to tell, PENDING
//! through the warm-up and until a minute is published. The evidence — both rates, the ratio's
//! interval, requests, errors, minutes — is the reading's line and its JSON.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Deserialize;

use super::kind::{Checked, Env, GateCheck, GateContext, GateKind};
use crate::error::Result;
use crate::iam::{Scope, Statement};
use crate::judge_stats::{self, Bound, Minute, Served};
use crate::model::{Percent, Reading, Role, Side, Verdict};
use crate::observe::{RequestCounts, Settled, SideMinute, published_until, settled};
use crate::profile::fields::{self, Bad, Key, bad_hint, duration};

/// The `judge` gate kind.
pub struct Kind;

/// A `judge` gate's table.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Section {
    errors: Option<RawBound>,
    latency: Option<RawLatency>,
    confidence: Option<f64>,
    warmup: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBound {
    ratio: Option<f64>,
    margin: Option<f64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLatency {
    slo: String,
    ratio: Option<f64>,
}

/// A `judge` gate, checked.
#[derive(Clone, Debug, PartialEq)]
pub struct Spec {
    pub settings: judge_stats::Settings,
    /// Requests slower than this count as slow (with `latency`).
    pub slo: Option<Duration>,
}

/// How many minutes of both sides' error rates a reading carries, for `status --watch`'s chart.
const CHART_MINUTES: usize = 15;

fn ratio(key: String, value: Option<f64>, default: f64) -> std::result::Result<f64, Bad> {
    let r = value.unwrap_or(default);
    if !(r.is_finite() && (1.0..=100.0).contains(&r)) {
        return Err(bad_hint(
            key,
            format!("{r} is not a ratio of 1–100"),
            "1.5 fails a candidate credibly 1.5× as bad as the stable side",
        ));
    }
    Ok(r)
}

impl GateKind for Kind {
    const TYPE: &'static str = "judge";
    const AWS: bool = true;
    type Section = Section;
    type Spec = Spec;
    type Reader = Judge;

    fn check(g: Section, at: &Key) -> std::result::Result<Checked<Spec>, Bad> {
        let defaults = judge_stats::Settings::default();
        let errors = match g.errors {
            None => defaults.errors,
            Some(b) => {
                let margin = b.margin.unwrap_or(defaults.errors.margin);
                if !(margin.is_finite() && (0.0..=100.0).contains(&margin)) {
                    return Err(bad_hint(
                        at.at("errors.margin"),
                        format!("{margin} is not a margin of 0–100 percentage points"),
                        "0.05: a candidate must also be worse by 0.05 points of error rate to fail",
                    ));
                }
                Bound { ratio: ratio(at.at("errors.ratio"), b.ratio, defaults.errors.ratio)?, margin }
            }
        };
        let (latency, slo) = match g.latency {
            None => (None, None),
            Some(l) => {
                let slo = duration(&at.at("latency.slo"), &l.slo, fields::SLO)?;
                let r = ratio(at.at("latency.ratio"), l.ratio, defaults.errors.ratio)?;
                (Some(Bound { ratio: r, margin: 0.0 }), Some(slo))
            }
        };
        let confidence = g.confidence.unwrap_or(defaults.confidence);
        if !(confidence.is_finite() && confidence > 0.5 && confidence < 1.0) {
            return Err(bad_hint(
                at.at("confidence"),
                format!("{confidence} is not a confidence of more than 0.5 and less than 1"),
                "0.99: a candidate as good as the stable side fails at most 1 % of stages",
            ));
        }
        let warmup = match &g.warmup {
            Some(w) => duration(&at.at("warmup"), w, fields::WARMUP)?,
            None => defaults.warmup,
        };
        let settings = judge_stats::Settings { errors, latency, confidence, warmup };
        Ok(Checked::new(Spec { settings, slo }))
    }

    fn reader(spec: &Spec, env: &Env<'_>) -> Judge {
        Judge {
            name: env.name.to_string(),
            spec: spec.clone(),
            counts: RequestCounts::new(env.aws, env.routes),
            settle: env.settle,
        }
    }

    fn describe(spec: &Spec) -> Option<String> {
        let s = &spec.settings;
        let mut line = format!(
            "the candidate's errors (5xx and connection errors) against the stable side's, per settled minute: \
             FAIL when credibly {}× and {} points worse, PASS when credibly not, at {} % confidence, after a {} warm-up",
            s.errors.ratio,
            s.errors.margin,
            s.confidence * 100.0,
            humantime::format_duration(s.warmup)
        );
        if let (Some(l), Some(slo)) = (s.latency, spec.slo) {
            line.push_str(&format!(
                "; requests slower than {} the same way, FAIL at {}×",
                humantime::format_duration(slo),
                l.ratio
            ));
        }
        Some(line)
    }

    /// GetMetricData where the sides' load balancers are, and for an alias its load balancer and
    /// the target groups its rules route the record's host to.
    fn policy(_: &Spec, _: Option<&Role>, scope: &Scope<'_>) -> Vec<Statement> {
        crate::observe::policy(!scope.read_only, scope)
    }
}

/// Reads a `judge` gate.
pub struct Judge {
    name: String,
    spec: Spec,
    counts: RequestCounts,
    settle: Duration,
}

fn ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

impl Judge {
    /// Both sides' traffic in every minute since the shift that is settled and published on both
    /// sides' load balancers (`None` before the first is).
    async fn minutes(&self, ctx: &GateContext, shifted: SystemTime) -> Result<Option<Vec<Minute>>> {
        let now = SystemTime::now();
        let minutes = match settled(now, self.settle, Duration::from_secs(86_400), Some(shifted)) {
            Settled::Minutes(m) => m,
            Settled::Pending { .. } => return Ok(None),
        };
        let ((candidate, mut newest), (stable, newest_stable)) = tokio::try_join!(
            self.counts.side_minutes(ctx.candidate, &minutes, self.spec.slo),
            self.counts.side_minutes(ctx.stable, &minutes, self.spec.slo)
        )?;
        for (lb, n) in newest_stable {
            let slot = newest.entry(lb).or_default();
            *slot = (*slot).max(n);
        }
        let newest: Vec<Option<u64>> = newest.into_values().collect();
        let start = ms(minutes.start) / 1000;
        let end = published_until(start, ms(minutes.end) / 1000, ms(now) / 1000, self.settle, &newest);
        if end == start {
            return Ok(None);
        }
        let served = |m: Option<&SideMinute>| {
            let m = m.copied().unwrap_or_default();
            Served { requests: m.requests.round() as u64, errors: m.errors.round() as u64, slow: m.slow.round() as u64 }
        };
        Ok(Some(
            candidate
                .range(start..end)
                .map(|(start, c)| Minute {
                    start_ms: start * 1000,
                    candidate: served(Some(c)),
                    stable: served(stable.get(start)),
                })
                .collect(),
        ))
    }
}

impl GateCheck for Judge {
    async fn preflight(&self, _candidate: Side) -> Result<()> {
        self.counts.preflight(&Side::ALL).await
    }

    async fn read(&self, ctx: &GateContext) -> Reading {
        // Before the first shift the candidate serves nothing to judge.
        if ctx.current_percent == Percent::ZERO {
            return Reading::new(&self.name, Verdict::Pass, "no traffic on the candidate yet: nothing to judge");
        }
        // At 100 % the stable side serves nothing to compare with: the stages before were judged
        // against it, and the profile's absolute gates (alarms, metrics) guard the last bake.
        if ctx.current_percent == Percent::FULL {
            return Reading::new(
                &self.name,
                Verdict::Pass,
                format!(
                    "{} takes all traffic: no stable traffic to compare with (judged at the stages before)",
                    ctx.candidate
                ),
            );
        }
        let shifted = SystemTime::now().checked_sub(ctx.stage_age).unwrap_or(UNIX_EPOCH);
        let (minutes, published) = match self.minutes(ctx, shifted).await {
            Ok(Some(m)) => (m, true),
            Ok(None) => (Vec::new(), false),
            Err(e) => return Reading::new(&self.name, Verdict::Wait, format!("cannot read the sides' metrics: {e}")),
        };
        let judged = judge_stats::judge(&self.spec.settings, ms(shifted), &minutes);
        let (verdict, no_data) = match judged.verdict {
            judge_stats::Verdict::Pass => (Verdict::Pass, false),
            judge_stats::Verdict::Fail => (Verdict::Fail, false),
            judge_stats::Verdict::Inconclusive => (Verdict::Wait, false),
            judge_stats::Verdict::NoData => (Verdict::Wait, true),
            judge_stats::Verdict::Pending => (Verdict::Pending, false),
        };
        let mut evidence = match serde_json::to_value(judged) {
            Ok(serde_json::Value::Object(m)) => m,
            _ => serde_json::Map::new(),
        };
        // Both sides' error rate per minute, the newest last: what `status --watch` charts.
        let rate = |s: &Served| if s.requests == 0 { None } else { Some(s.errors as f64 / s.requests as f64) };
        let chart: Vec<serde_json::Value> = minutes
            .iter()
            .rev()
            .take(CHART_MINUTES)
            .rev()
            .map(|m| serde_json::json!({ "minute": m.start_ms / 1000, "candidate": rate(&m.candidate), "stable": rate(&m.stable) }))
            .collect();
        evidence.insert("per_minute".into(), serde_json::Value::Array(chart));
        // The reading's verdict word comes first in every line; the judge's own only where it
        // says more (a wait is NO_DATA or INCONCLUSIVE).
        let detail = match (published, verdict) {
            (false, _) => format!(
                "no minute since the shift is settled yet (a minute is read {}s after it ends)",
                self.settle.as_secs()
            ),
            (true, Verdict::Wait) => format!("{}: {judged}", judged.verdict.to_string().to_uppercase()),
            (true, _) => judged.to_string(),
        };
        Reading { no_data, evidence: Some(evidence), ..Reading::new(&self.name, verdict, detail) }
    }
}
