//! `metric` gate: a CloudWatch metric, or a metric-math expression over named metrics, read with
//! GetMetricData over the last `window` (never from before the current stage began) and compared
//! with `max` / `min`. Every datapoint in the window must be within bounds; no datapoint waits.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use aws_config::SdkConfig;
use aws_sdk_cloudwatch::Client;
use aws_sdk_cloudwatch::types::{Dimension, Metric as CwMetric, MetricDataQuery, MetricStat};
use aws_smithy_types::DateTime;

use super::{GateCheck, GateContext, RESULT_ID, Reading, Verdict, substitute};
use crate::model::Side;
use crate::profile::MetricQuery;

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
        .period(period.as_secs() as i32)
        .stat(stat)
        .build()
}

impl Metric {
    pub fn new(
        sdk: &SdkConfig,
        name: &str,
        query: MetricQuery,
        period: Duration,
        window: Duration,
        max: Option<f64>,
        min: Option<f64>,
    ) -> Metric {
        Metric {
            name: name.to_string(),
            client: crate::client!(aws_sdk_cloudwatch, sdk),
            query,
            period,
            window,
            max,
            min,
        }
    }

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
