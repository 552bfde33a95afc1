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

use crate::error::Result;
use crate::model::Side;
/// The GetMetricData query id of the series a metric gate judges; profiles' metric ids may not use it.
pub const RESULT_ID: &str = "cutover_gate";

use crate::model::Percent;
pub use crate::model::{Reading, Verdict, blocking};
use crate::observe::{RequestCounts, judge};
use crate::profile::{Gate, GateKind, MinRequests, Observe, Profile};
pub use crate::rollout::ports::GateContext;
use crate::splitter::RouteLive;

/// A gate kind: reads itself against the candidate.
#[allow(async_fn_in_trait)]
pub trait GateCheck {
    async fn read(&self, ctx: &GateContext) -> Reading;
}

/// The gates of one profile, ready to read, and what tells them whether the candidate has
/// traffic: its request counts (for `min_requests`) and the observed split (`[observe]`).
pub struct Gates {
    gates: Vec<AnyGate>,
    /// Per gate: when "no data" means "no errors" (`min_requests`).
    min_requests: Vec<Option<MinRequests>>,
    observe: Option<Observe>,
    /// Request counts of every route's sides; read only when `[observe]` or a silent gate with
    /// `min_requests` needs them.
    requests: RequestCounts,
    /// Several alarm gates, all of one account: their alarms are described in one call.
    alarms_together: bool,
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
    /// A gate with `role_arn` reads with that role.
    pub fn new(aws: &crate::aws::Accounts, profile: &Profile, routes: &[RouteLive]) -> Gates {
        let http = reqwest::Client::builder()
            .user_agent(concat!("cutover/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_default();
        let gates = profile
            .gates
            .iter()
            .map(|Gate { name, kind, role, .. }| (name, kind, role.as_ref(), aws.of(role.as_ref())))
            .map(|(name, kind, role, sdk)| match kind {
                GateKind::TargetHealth { min_healthy } => AnyGate::TargetHealth(target_health::TargetHealth::new(
                    aws,
                    profile,
                    role,
                    name,
                    *min_healthy,
                    routes,
                )),
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
        let alarm_roles: Vec<_> =
            profile.gates.iter().filter(|g| matches!(g.kind, GateKind::Alarm { .. })).map(|g| &g.role).collect();
        Gates {
            gates,
            min_requests: profile.gates.iter().map(|g| g.min_requests).collect(),
            observe: profile.observe,
            requests: RequestCounts::new(aws, profile, routes),
            alarms_together: alarm_roles.len() > 1 && alarm_roles.iter().all(|r| *r == alarm_roles[0]),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.gates.is_empty() && self.observe.is_none()
    }

    /// What a reading of no data means, given the candidate's traffic. Before the first shift the
    /// candidate has no traffic to judge: no data does not block. During a stage, with
    /// `min_requests`, it passes once that many requests reached the candidate over the gate's
    /// window (AWS would have reported their errors), and waits below it. Without, it waits.
    async fn silence(&self, reading: Reading, min: Option<MinRequests>, ctx: &GateContext) -> Reading {
        if reading.verdict != Verdict::Wait || !reading.no_data {
            return reading;
        }
        if ctx.current_percent == Percent::ZERO {
            let detail =
                format!("{}; no traffic has reached {} yet, so there is none to judge", reading.detail, ctx.candidate);
            return Reading::new(&reading.gate, Verdict::Pass, detail);
        }
        let Some(min) = min else { return reading };
        let since = stage_start(ctx);
        let window = humantime::format_duration(min.window);
        match self.requests.total(ctx.candidate, min.window, since).await {
            Ok(Some(n)) if n >= min.count as f64 => Reading::new(
                &reading.gate,
                Verdict::Pass,
                format!(
                    "{}, with {n} requests to {} in the last {window} (min_requests {}): no errors reported",
                    reading.detail, ctx.candidate, min.count
                ),
            ),
            Ok(Some(n)) => Reading::no_data(
                &reading.gate,
                format!(
                    "{}, and only {n} of min_requests {} requests reached {} in the last {window}",
                    reading.detail, min.count, ctx.candidate
                ),
            ),
            Ok(None) => reading,
            Err(e) => {
                Reading::no_data(&reading.gate, format!("{}; the request count is unreadable: {e}", reading.detail))
            }
        }
    }

    /// The `[observe]` reading: the candidate's observed share on every route against the
    /// intended one.
    async fn observation(&self, ctx: &GateContext) -> Option<Reading> {
        let observe = self.observe?;
        let since = stage_start(ctx);
        Some(match self.requests.read(observe.window, since).await {
            Ok(counted) => judge(&counted, ctx.candidate, ctx.current_percent, observe.tolerance, observe.window),
            Err(e) => Reading::new(crate::observe::OBSERVE, Verdict::Wait, format!("cannot count requests: {e}")),
        })
    }

    /// Checks what can be checked before any traffic moves (alarms exist, target groups found),
    /// refusing with exit 2 when the profile names something that is not there.
    pub async fn preflight(&self, candidate: Side) -> Result<()> {
        let counts = self.observe.is_some() || self.min_requests.iter().any(Option::is_some);
        if counts && !self.requests.can_count(candidate) {
            return Err(crate::error::Error::refused_hint(
                format!(
                    "`[observe]` and `min_requests` count the {candidate} side's requests, and no route can count them"
                ),
                "requests are counted at an ALB route's target groups or at the load balancer a weighted alias record points at",
            ));
        }
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
        // Every alarm gate's alarms in one DescribeAlarms call (100 names a call), not one each.
        let alarm_gates: Vec<&alarm::Alarm> = self
            .gates
            .iter()
            .filter_map(|g| match g {
                AnyGate::Alarm(a) => Some(a),
                _ => None,
            })
            .collect();
        // The first alarm gate to read describes them all; the others wait on that answer, beside
        // the other gates' reads. (Alarms of several accounts are read by each gate itself.)
        let together = self.alarms_together;
        let states = tokio::sync::OnceCell::new();
        let describe = || async {
            let names = alarm_gates.iter().flat_map(|a| a.names(ctx.candidate)).collect();
            alarm::states_of(alarm_gates[0].client(), names).await.map_err(|e| e.to_string())
        };
        let gates = futures::future::join_all(self.gates.iter().zip(&self.min_requests).map(async |(g, min)| {
            let reading = match g {
                AnyGate::Alarm(a) if together => a.read_from(ctx, Some(states.get_or_init(describe).await)).await,
                other => other.read(ctx).await,
            };
            self.silence(reading, *min, ctx).await
        }));
        let (mut readings, observed) = tokio::join!(gates, self.observation(ctx));
        readings.extend(observed);
        readings
    }
}

/// When the current stage began: request counts never reach back before it. `None` before the
/// first shift (and for a one-off reading, such as `set`'s), where the whole window counts.
fn stage_start(ctx: &GateContext) -> Option<std::time::SystemTime> {
    if ctx.stage == 0 { None } else { std::time::SystemTime::now().checked_sub(ctx.stage_age) }
}

/// Replays of AWS answers through the SDK's own stack, for the tests of what cannot run on the
/// emulator.
#[cfg(test)]
pub(crate) mod replay {
    use aws_smithy_mocks::{MockResponseInterceptor, Rule, RuleMode, create_mock_http_client};

    /// A CloudWatch client whose calls are answered by `rules`.
    pub fn cloudwatch(rules: &[&Rule]) -> aws_sdk_cloudwatch::Client {
        let mut interceptor = MockResponseInterceptor::new().rule_mode(RuleMode::MatchAny);
        for r in rules {
            interceptor = interceptor.with_rule(r);
        }
        let config = aws_sdk_cloudwatch::Config::builder()
            .behavior_version(aws_sdk_cloudwatch::config::BehaviorVersion::latest())
            .region(aws_sdk_cloudwatch::config::Region::new("us-west-2"))
            .credentials_provider(aws_sdk_cloudwatch::config::Credentials::new("a", "b", None, None, "replay"))
            .http_client(create_mock_http_client())
            .interceptor(interceptor)
            .build();
        aws_sdk_cloudwatch::Client::from_conf(config)
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
