//! `metric` gate: a CloudWatch metric, or a metric-math expression over named metrics, read with
//! GetMetricData over the last `window` (never from before the current stage began) and compared
//! with `max` / `min`. Every datapoint in the window must be within bounds; no datapoint waits.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use aws_sdk_cloudwatch::Client;
use aws_sdk_cloudwatch::types::{Dimension, Metric as CwMetric, MetricDataQuery, MetricStat};
use aws_smithy_types::DateTime;
use serde::Deserialize;

use super::kind::{Checked, Env, GateCheck, GateContext, GateKind, min_requests, substitute};
use crate::iam::{Scope, Statement};
use crate::model::{Reading, Role, Side, Verdict};
use crate::profile::fields::{self, Bad, Key, bad, bad_hint, duration, finite};

/// The GetMetricData query id of the series a metric gate judges; profiles' metric ids may not use it.
pub const RESULT_ID: &str = "cutover_gate";

/// The `metric` gate kind.
pub struct Kind;

/// A `metric` gate's table.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Section {
    namespace: Option<String>,
    metric: Option<String>,
    #[serde(default)]
    dimensions: BTreeMap<String, String>,
    #[serde(default = "default_stat")]
    stat: String,
    expression: Option<String>,
    #[serde(default)]
    metrics: Vec<NamedMetric>,
    #[serde(default = "default_period")]
    period: String,
    #[serde(default = "default_window")]
    window: String,
    max: Option<f64>,
    min: Option<f64>,
    min_requests: Option<i64>,
}

fn default_stat() -> String {
    "Average".to_string()
}
fn default_period() -> String {
    "1m".to_string()
}
fn default_window() -> String {
    "5m".to_string()
}

/// A CloudWatch metric, or a metric-math expression over metrics named `m1`, `m2`, ….
#[derive(Clone, Debug, PartialEq)]
pub enum MetricQuery {
    Metric { namespace: String, metric: String, dimensions: BTreeMap<String, String>, stat: String },
    Expression { expression: String, metrics: Vec<NamedMetric> },
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NamedMetric {
    pub id: String,
    pub namespace: String,
    pub metric: String,
    #[serde(default)]
    pub dimensions: BTreeMap<String, String>,
    #[serde(default = "default_stat")]
    pub stat: String,
}

/// A `metric` gate, checked.
#[derive(Clone, Debug, PartialEq)]
pub struct Spec {
    pub query: MetricQuery,
    pub period: Duration,
    pub window: Duration,
    pub max: Option<f64>,
    pub min: Option<f64>,
}

impl GateKind for Kind {
    const TYPE: &'static str = "metric";
    const AWS: bool = true;
    type Section = Section;
    type Spec = Spec;
    type Reader = Metric;

    fn check(g: Section, at: &Key) -> std::result::Result<Checked<Spec>, Bad> {
        let query = match (g.expression, g.namespace, g.metric) {
            (Some(expression), None, None) => {
                if g.metrics.is_empty() {
                    return Err(bad_hint(
                        at.at("metrics"),
                        "an expression needs the metrics it uses",
                        "[[gate.metrics]] id = \"m1\", namespace = …, metric = …",
                    ));
                }
                MetricQuery::Expression { expression, metrics: g.metrics }
            }
            (None, Some(namespace), Some(metric)) => {
                if !g.metrics.is_empty() {
                    return Err(bad(at.at("metrics"), "only used with `expression`"));
                }
                MetricQuery::Metric { namespace, metric, dimensions: g.dimensions, stat: g.stat }
            }
            _ => {
                return Err(bad_hint(
                    at.at("expression"),
                    "give either `namespace` and `metric`, or `expression` with `metrics`",
                    "namespace = \"AWS/ApplicationELB\", metric = \"HTTPCode_Target_5XX_Count\"",
                ));
            }
        };
        if g.max.is_none() && g.min.is_none() {
            return Err(bad_hint(
                at.at("max"),
                "a metric gate needs a threshold",
                "`max` fails above it, `min` fails below it",
            ));
        }
        let period = duration(&at.at("period"), &g.period, fields::PERIOD)?;
        let window = duration(&at.at("window"), &g.window, fields::WINDOW)?;
        let max = g.max.map(|m| finite(&at.at("max"), m)).transpose()?;
        let min = g.min.map(|m| finite(&at.at("min"), m)).transpose()?;
        if let (Some(lo), Some(hi)) = (min, max)
            && lo > hi
        {
            return Err(bad(at.at("min"), format!("{lo} is above max {hi}: no datapoint could pass")));
        }
        // GetMetricData accepts these periods and no others.
        let secs = period.as_secs();
        if period.subsec_nanos() != 0 || !(matches!(secs, 1 | 5 | 10 | 20 | 30) || secs > 0 && secs % 60 == 0) {
            return Err(bad_hint(
                at.at("period"),
                "CloudWatch periods are 1, 5, 10, 20, 30 or 60 seconds, or a multiple of 60 seconds",
                "for example \"1m\" (periods under a minute need high-resolution metrics)",
            ));
        }
        if let MetricQuery::Expression { metrics, .. } = &query {
            let mut seen = std::collections::BTreeSet::new();
            for (j, m) in metrics.iter().enumerate() {
                let id_key = format!("{}[{j}].id", at.at("metrics"));
                let mut chars = m.id.chars();
                let well_formed = chars.next().is_some_and(|c| c.is_ascii_lowercase())
                    && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
                if !well_formed {
                    return Err(bad_hint(
                        id_key,
                        format!("`{}` is not an id GetMetricData accepts", m.id),
                        "start with a lowercase letter; then letters, digits and `_` only, e.g. \"m1\"",
                    ));
                }
                if m.id == RESULT_ID || !seen.insert(m.id.as_str()) {
                    return Err(bad(id_key, format!("`{}` is used twice (or by cutover)", m.id)));
                }
            }
        }
        if window < period {
            return Err(bad(at.at("window"), "must be at least one period"));
        }
        let min_requests = min_requests(at, g.min_requests, window.max(Duration::from_secs(60)))?;
        Ok(Checked { spec: Spec { query, period, window, max, min }, min_requests })
    }

    fn reader(spec: &Spec, env: &Env<'_>) -> Metric {
        Metric {
            name: env.name.to_string(),
            client: crate::client!(aws_sdk_cloudwatch, env.sdk()),
            query: spec.query.clone(),
            period: spec.period,
            window: spec.window,
            max: spec.max,
            min: spec.min,
        }
    }

    fn policy(_: &Spec, role: Option<&Role>, scope: &Scope<'_>) -> Vec<Statement> {
        metrics_policy(role, scope)
    }
}

/// GetMetricData, which has no resource-level permission: for the gates that read metrics.
pub fn metrics_policy(role: Option<&Role>, scope: &Scope<'_>) -> Vec<Statement> {
    if scope.read_only || !scope.here(role) {
        return Vec::new();
    }
    vec![Statement::new("GateMetrics", &["cloudwatch:GetMetricData"], ["*".to_string()])]
}

/// Reads a `metric` gate.
pub struct Metric {
    name: String,
    client: Client,
    query: MetricQuery,
    period: Duration,
    window: Duration,
    max: Option<f64>,
    min: Option<f64>,
}

fn metric_stat(
    namespace: &str,
    metric: &str,
    dims: &BTreeMap<String, String>,
    stat: &str,
    period: Duration,
    side: Side,
) -> MetricStat {
    let dimensions =
        dims.iter().map(|(k, v)| Dimension::builder().name(k).value(substitute(v, side)).build()).collect();
    MetricStat::builder()
        .metric(
            CwMetric::builder()
                .namespace(substitute(namespace, side))
                .metric_name(substitute(metric, side))
                .set_dimensions(Some(dimensions))
                .build(),
        )
        // At most a day (the profile's bounds): never past i32.
        .period(i32::try_from(period.as_secs()).unwrap_or(i32::MAX))
        .stat(stat)
        .build()
}

impl Metric {
    /// The queries; the one whose data decides has the id [`RESULT_ID`].
    fn queries(&self, side: Side) -> Vec<MetricDataQuery> {
        match &self.query {
            MetricQuery::Metric { namespace, metric, dimensions, stat } => vec![
                MetricDataQuery::builder()
                    .id(RESULT_ID)
                    .metric_stat(metric_stat(namespace, metric, dimensions, stat, self.period, side))
                    .return_data(true)
                    .build(),
            ],
            MetricQuery::Expression { expression, metrics } => {
                let mut q: Vec<MetricDataQuery> = metrics
                    .iter()
                    .map(|m| {
                        MetricDataQuery::builder()
                            .id(&m.id)
                            .metric_stat(metric_stat(
                                &m.namespace,
                                &m.metric,
                                &m.dimensions,
                                &m.stat,
                                self.period,
                                side,
                            ))
                            .return_data(false)
                            .build()
                    })
                    .collect();
                q.push(
                    MetricDataQuery::builder()
                        .id(RESULT_ID)
                        .expression(substitute(expression, side))
                        .return_data(true)
                        .build(),
                );
                q
            }
        }
    }
}

impl GateCheck for Metric {
    async fn read(&self, ctx: &GateContext) -> Reading {
        // The end lies a period ahead: CloudWatch buckets datapoints by period start, and the
        // current, still-open period must be included.
        let now = SystemTime::now();
        let window = self.window.min(ctx.stage_age.max(self.period));
        let start = now - window;
        let out = self
            .client
            .get_metric_data()
            .set_metric_data_queries(Some(self.queries(ctx.candidate)))
            .start_time(DateTime::from(start))
            .end_time(DateTime::from(now + self.period))
            .send()
            .await;
        let out = match out {
            Ok(o) => o,
            Err(e) => {
                let msg = aws_smithy_types::error::display::DisplayErrorContext(e).to_string();
                return Reading::new(&self.name, Verdict::Wait, format!("GetMetricData: {msg}"));
            }
        };
        let values: Vec<f64> = out
            .metric_data_results
            .unwrap_or_default()
            .into_iter()
            .filter(|r| r.id.as_deref() == Some(RESULT_ID))
            .flat_map(|r| r.values.unwrap_or_default())
            .collect();
        if values.is_empty() {
            return Reading::no_data(
                &self.name,
                format!("no datapoints in the last {}", humantime::format_duration(window)),
            );
        }
        let worst_high = values.iter().cloned().fold(f64::MIN, f64::max);
        let worst_low = values.iter().cloned().fold(f64::MAX, f64::min);
        if let Some(max) = self.max
            && worst_high > max
        {
            return Reading::new(&self.name, Verdict::Fail, format!("{worst_high} above max {max}"));
        }
        if let Some(min) = self.min
            && worst_low < min
        {
            return Reading::new(&self.name, Verdict::Fail, format!("{worst_low} below min {min}"));
        }
        Reading::new(
            &self.name,
            Verdict::Pass,
            format!("{} datapoints within bounds (high {worst_high}, low {worst_low})", values.len()),
        )
    }
}
