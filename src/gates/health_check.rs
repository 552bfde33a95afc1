//! `route53-health-check` gate: the health check's `AWS/Route53` `HealthCheckStatus` metric
//! (1 healthy, 0 unhealthy — Route53's own verdict over its checkers, calculated checks included),
//! read with GetMetricData in us-east-1, where Route53 publishes it. GetHealthCheckStatus is not
//! used: AWS documents it as not meant for production use, and it cannot read calculated checks.

use std::time::{Duration, SystemTime};

use aws_sdk_cloudwatch::Client;
use aws_sdk_cloudwatch::types::{Dimension, Metric, MetricDataQuery, MetricStat, ScanBy};
use aws_smithy_types::DateTime;
use serde::Deserialize;

use super::kind::{Checked, Env, GateCheck, GateContext, GateKind, substitute};
use crate::iam::{Scope, Statement};
use crate::model::{Reading, Role, Verdict};
use crate::profile::fields::{Bad, Key, non_empty};

/// The `route53-health-check` gate kind.
pub struct Kind;

/// A `route53-health-check` gate's table.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Section {
    health_check_id: String,
}

/// A `route53-health-check` gate, checked.
#[derive(Clone, Debug, PartialEq)]
pub struct Spec {
    /// `{side}` becomes the candidate.
    pub health_check_id: String,
}

impl GateKind for Kind {
    const TYPE: &'static str = "route53-health-check";
    const AWS: bool = true;
    type Section = Section;
    type Spec = Spec;
    type Reader = HealthCheck;

    fn check(g: Section, at: &Key) -> std::result::Result<Checked<Spec>, Bad> {
        non_empty(&at.at("health_check_id"), &g.health_check_id)?;
        Ok(Checked::new(Spec { health_check_id: g.health_check_id }))
    }

    fn reader(spec: &Spec, env: &Env<'_>) -> HealthCheck {
        HealthCheck::new(env.sdk(), env.name, &spec.health_check_id)
    }

    /// Route53 health checks are read as their `AWS/Route53` `HealthCheckStatus` metric.
    fn policy(_: &Spec, role: Option<&Role>, scope: &Scope<'_>) -> Vec<Statement> {
        super::metric::metrics_policy(role, scope)
    }
}

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
    pub fn new(sdk: &aws_config::SdkConfig, name: &str, id: &str) -> HealthCheck {
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
