//! `route53-health-check` gate: GetHealthCheckStatus of one health check. Route53 itself counts
//! an endpoint healthy when more than 18 % of its checkers report success; so does this gate.

use aws_config::SdkConfig;
use aws_sdk_route53::Client;

use super::{GateCheck, GateContext, Reading, Verdict, substitute};

pub struct HealthCheck {
    name: String,
    client: Client,
    id: String,
}

impl HealthCheck {
    pub fn new(sdk: &SdkConfig, name: &str, id: &str) -> HealthCheck {
        HealthCheck { name: name.to_string(), client: crate::client!(aws_sdk_route53, sdk), id: id.to_string() }
    }
}

impl GateCheck for HealthCheck {
    async fn read(&self, ctx: &GateContext) -> Reading {
        let id = substitute(&self.id, ctx.candidate);
        let out = match self.client.get_health_check_status().health_check_id(&id).send().await {
            Ok(o) => o,
            Err(e) => {
                let verdict = if e.as_service_error().is_some_and(|s| s.is_no_such_health_check()) {
                    Verdict::Fail
                } else {
                    Verdict::Wait
                };
                let msg = aws_smithy_types::error::display::DisplayErrorContext(e).to_string();
                return Reading::new(&self.name, verdict, format!("health check {id}: {msg}"));
            }
        };
        let total = out.health_check_observations.len();
        if total == 0 {
            return Reading::new(&self.name, Verdict::Wait, format!("health check {id}: no observations yet"));
        }
        let ok = out
            .health_check_observations
            .iter()
            .filter(|o| {
                o.status_report.as_ref().and_then(|r| r.status.as_deref()).is_some_and(|s| s.starts_with("Success"))
            })
            .count();
        let verdict = if ok as f64 / total as f64 > 0.18 { Verdict::Pass } else { Verdict::Fail };
        Reading::new(&self.name, verdict, format!("health check {id}: {ok}/{total} checkers report success"))
    }
}
