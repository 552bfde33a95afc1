//! Health gates: what decides whether traffic may move on to the candidate.
//!
//! Every reading is **pass**, **fail** or **wait**. A gate kind lives in its own module behind one
//! interface ([`GateCheck`]); [`Gates`] holds the profile's gates, reads them all at once (in
//! parallel) and hands the readings to the engine. `{side}` in any of a gate's strings is replaced
//! by the candidate side before it is read.

mod alarm;
mod health_check;
mod http;
mod metric;
mod target_health;
mod webhook;

use aws_config::SdkConfig;

use crate::error::Result;
use crate::model::Side;
/// The GetMetricData query id of the series a metric gate judges; profiles' metric ids may not use it.
pub const RESULT_ID: &str = "cutover_gate";

pub use crate::model::{Reading, Verdict, blocking};
use crate::profile::{Gate, GateKind, Profile};
pub use crate::rollout::ports::GateContext;
use crate::splitter::RouteLive;

/// A gate kind: reads itself against the candidate.
#[allow(async_fn_in_trait)]
pub trait GateCheck {
    async fn read(&self, ctx: &GateContext) -> Reading;
}

/// The gates of one profile, ready to read.
pub struct Gates {
    gates: Vec<AnyGate>,
}

/// Every gate kind, closed by an enum.
enum AnyGate {
    TargetHealth(target_health::TargetHealth),
    Alarm(alarm::Alarm),
    Metric(metric::Metric),
    HealthCheck(health_check::HealthCheck),
    Http(http::Http),
    Webhook(webhook::Webhook),
}

impl AnyGate {
    async fn read(&self, ctx: &GateContext) -> Reading {
        match self {
            AnyGate::TargetHealth(g) => g.read(ctx).await,
            AnyGate::Alarm(g) => g.read(ctx).await,
            AnyGate::Metric(g) => g.read(ctx).await,
            AnyGate::HealthCheck(g) => g.read(ctx).await,
            AnyGate::Http(g) => g.read(ctx).await,
            AnyGate::Webhook(g) => g.read(ctx).await,
        }
    }
}

impl Gates {
    /// Builds the profile's gates. `routes` (as read) tell target-health gates where the
    /// candidate's target groups are.
    pub fn new(sdk: &SdkConfig, profile: &Profile, routes: &[RouteLive]) -> Gates {
        let http = reqwest::Client::builder()
            .user_agent(concat!("cutover/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_default();
        let gates = profile
            .gates
            .iter()
            .map(|Gate { name, kind }| match kind {
                GateKind::TargetHealth { min_healthy } => {
                    AnyGate::TargetHealth(target_health::TargetHealth::new(sdk, name, *min_healthy, routes))
                }
                GateKind::Alarm { alarms } => AnyGate::Alarm(alarm::Alarm::new(sdk, name, alarms.clone())),
                GateKind::Metric { query, period, window, max, min } => {
                    AnyGate::Metric(metric::Metric::new(sdk, name, query.clone(), *period, *window, *max, *min))
                }
                GateKind::Route53HealthCheck { health_check_id } => {
                    AnyGate::HealthCheck(health_check::HealthCheck::new(sdk, name, health_check_id))
                }
                GateKind::Http { url, expect_status, body_contains, timeout } => AnyGate::Http(http::Http {
                    name: name.clone(),
                    client: http.clone(),
                    url: url.clone(),
                    expect_status: *expect_status,
                    body_contains: body_contains.clone(),
                    timeout: *timeout,
                }),
                GateKind::Webhook { url, rollback, timeout } => AnyGate::Webhook(webhook::Webhook {
                    name: name.clone(),
                    client: http.clone(),
                    url: url.clone(),
                    rollback: *rollback,
                    timeout: *timeout,
                }),
            })
            .collect();
        Gates { gates }
    }

    pub fn is_empty(&self) -> bool {
        self.gates.is_empty()
    }

    /// Checks what can be checked before any traffic moves (alarms exist, target groups found),
    /// refusing with exit 2 when the profile names something that is not there.
    pub async fn preflight(&self, candidate: Side) -> Result<()> {
        for g in &self.gates {
            match g {
                AnyGate::Alarm(a) => a.preflight(candidate).await?,
                AnyGate::TargetHealth(t) => t.preflight(candidate).await?,
                _ => {}
            }
        }
        Ok(())
    }
}

/// All gates at once, in parallel: the rollout core's gate port.
impl crate::rollout::ports::Gates for Gates {
    async fn read(&self, ctx: &GateContext) -> Vec<Reading> {
        futures::future::join_all(self.gates.iter().map(|g| g.read(ctx))).await
    }
}

/// `{side}` replaced by the candidate.
pub fn substitute(s: &str, side: Side) -> String {
    s.replace("{side}", side.as_str())
}

/// A URL fit for logs: no user info, no query string (tokens live there).
pub fn redact_url(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let rest = rest.split(['?', '#']).next().unwrap_or(rest);
    let (host, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let host = host.rsplit_once('@').map(|(_, h)| h).unwrap_or(host);
    let had_query = url.contains('?');
    format!("{scheme}://{host}{path}{}", if had_query { "?…" } else { "" })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_their_secrets_in_logs() {
        assert_eq!(redact_url("https://user:pw@hooks.example.com/x?token=abc"), "https://hooks.example.com/x?…");
        assert_eq!(redact_url("http://127.0.0.1:8080/health"), "http://127.0.0.1:8080/health");
        assert_eq!(redact_url("https://h.example.com"), "https://h.example.com");
    }

    #[test]
    fn side_is_substituted() {
        assert_eq!(substitute("myapp-{side}-5xx", Side::Green), "myapp-green-5xx");
    }
}
