//! `route53-health-check` gate: the health check's `AWS/Route53` `HealthCheckStatus` metric
//! (1 healthy, 0 unhealthy — Route53's own verdict over its checkers, calculated checks included),
//! read with GetMetricData in us-east-1, where Route53 publishes it. GetHealthCheckStatus is not
//! used: AWS documents it as not meant for production use, and it cannot read calculated checks.

use std::time::{Duration, SystemTime};

use aws_config::SdkConfig;
use aws_sdk_cloudwatch::Client;
use aws_sdk_cloudwatch::types::{Dimension, Metric, MetricDataQuery, MetricStat, ScanBy};
use aws_smithy_types::DateTime;

use super::{GateCheck, GateContext, Reading, Verdict, substitute};

/// The region Route53 publishes its health-check metrics in, whatever the profile's region.
pub const METRICS_REGION: &str = "us-east-1";
/// How far back the newest datapoint is looked for: Route53 publishes one a minute.
const LOOK_BACK: Duration = Duration::from_secs(300);

pub struct HealthCheck {
    name: String,
    client: Client,
    id: String,
}

impl HealthCheck {
    pub fn new(sdk: &SdkConfig, name: &str, id: &str) -> HealthCheck {
        let config = aws_sdk_cloudwatch::config::Builder::from(sdk)
            .region(aws_sdk_cloudwatch::config::Region::new(METRICS_REGION))
            .build();
        HealthCheck { name: name.to_string(), client: Client::from_conf(config), id: id.to_string() }
    }
}

impl GateCheck for HealthCheck {
    async fn read(&self, ctx: &GateContext) -> Reading {
        let id = substitute(&self.id, ctx.candidate);
        let now = SystemTime::now();
        let query = MetricDataQuery::builder()
            .id("status")
            .metric_stat(
                MetricStat::builder()
                    .metric(
                        Metric::builder()
                            .namespace("AWS/Route53")
                            .metric_name("HealthCheckStatus")
                            .dimensions(Dimension::builder().name("HealthCheckId").value(&id).build())
                            .build(),
                    )
                    .period(60)
                    // The worst minute: a check unhealthy at any point of it reads 0.
                    .stat("Minimum")
                    .build(),
            )
            .return_data(true)
            .build();
        let out = self
            .client
            .get_metric_data()
            .metric_data_queries(query)
            .start_time(DateTime::from(now - LOOK_BACK))
            .end_time(DateTime::from(now + Duration::from_secs(60)))
            .scan_by(ScanBy::TimestampDescending)
            .send()
            .await;
        let out = match out {
            Ok(o) => o,
            Err(e) => {
                let msg = aws_smithy_types::error::display::DisplayErrorContext(e).to_string();
                return Reading::new(&self.name, Verdict::Wait, format!("health check {id}: GetMetricData: {msg}"));
            }
        };
        // The newest datapoint decides.
        let newest = out
            .metric_data_results
            .unwrap_or_default()
            .into_iter()
            .flat_map(|r| {
                let times = r.timestamps.unwrap_or_default();
                r.values.unwrap_or_default().into_iter().zip(times).collect::<Vec<_>>()
            })
            .max_by_key(|(_, t)| (t.secs(), t.subsec_nanos()));
        match newest {
            None => Reading::new(
                &self.name,
                Verdict::Wait,
                format!(
                    "health check {id}: no HealthCheckStatus datapoint in the last {} (a new check reports within minutes)",
                    humantime::format_duration(LOOK_BACK)
                ),
            ),
            Some((v, _)) if v >= 1.0 => Reading::new(&self.name, Verdict::Pass, format!("health check {id}: healthy")),
            Some(_) => Reading::new(&self.name, Verdict::Fail, format!("health check {id}: unhealthy")),
        }
    }
}
