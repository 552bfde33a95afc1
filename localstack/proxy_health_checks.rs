//! Route53 health checks as Route53 evaluates them, for the emulator kit's proxy (the switch
//! `Config::health_checks`; moto stores a check's type, drops its `AlarmIdentifier` and
//! `InsufficientDataHealthStatus`, and evaluates nothing).
//!
//! - Every CreateHealthCheck through the proxy is remembered with the configuration moto drops.
//! - Every `interval` of the kit's clock (Route53 checks every 30 s, or 10 s): a
//!   `CLOUDWATCH_METRIC` check is healthy while its alarm is `OK`, unhealthy while it is in
//!   `ALARM`, and while it is `INSUFFICIENT_DATA` as `InsufficientDataHealthStatus` says (`Healthy`,
//!   `Unhealthy`, or `LastKnownStatus` — healthy for a check that has never had data); a
//!   `CALCULATED` check is healthy while at least `HealthThreshold` of its children are; `Inverted`
//!   turns either over, `Disabled` keeps it healthy. Checks of other types (HTTP, …) are healthy:
//!   the kit probes no endpoint.
//! - Each evaluation publishes `AWS/Route53` `HealthCheckStatus` (1 or 0) in us-east-1, where
//!   Route53 publishes it, when the kit serves metric data.
//! - GetHealthCheckStatus answers the kit's verdict as three checkers report it; a `CALCULATED`
//!   check is refused, as AWS refuses it. DeleteHealthCheck of a check a calculated one uses is
//!   refused with `HealthCheckInUse`.
//! - The simulated clients (`proxy_clients.rs`) leave a record whose check is unhealthy.

use std::collections::{BTreeMap, HashMap};
use std::time::SystemTime;

use bytes::Bytes;
use http_body_util::Full;
use hyper::Response;

use super::metrics::format_time;
use super::{Answer, child_text, xml_error, xml_escape};

#[derive(Clone, Debug, PartialEq)]
pub enum Kind {
    Metric {
        region: String,
        alarm: String,
        insufficient: String,
    },
    Calculated {
        children: Vec<String>,
        threshold: usize,
    },
    /// An endpoint check (HTTP, TCP, …): the kit probes nothing.
    Other(String),
}

#[derive(Clone, Debug)]
pub struct Check {
    /// The access key it was made with (its account).
    pub akid: String,
    pub kind: Kind,
    pub inverted: bool,
    pub disabled: bool,
    /// The last verdict; `None` before the first evaluation.
    pub healthy: Option<bool>,
    pub checked: Option<SystemTime>,
    pub reason: String,
}

/// The checks made through the proxy, by id.
#[derive(Default)]
pub struct Registry {
    pub checks: BTreeMap<String, Check>,
    pub last: Option<SystemTime>,
}

impl Registry {
    /// Remembers the check CreateHealthCheck `request` made (`answer` carries its id).
    pub fn register(&mut self, akid: &str, request: &str, answer: &str) {
        let (Ok(req), Ok(ans)) = (roxmltree::Document::parse(request), roxmltree::Document::parse(answer)) else {
            return;
        };
        let Some(id) = ans.descendants().find(|n| n.has_tag_name("Id")).and_then(|n| n.text()) else { return };
        let Some(config) = req.descendants().find(|n| n.has_tag_name("HealthCheckConfig")) else { return };
        let text = |name: &str| child_text(config, name);
        let kind = match text("Type").as_deref() {
            Some("CLOUDWATCH_METRIC") => {
                let alarm = config.children().find(|c| c.has_tag_name("AlarmIdentifier"));
                Kind::Metric {
                    region: alarm.and_then(|a| child_text(a, "Region")).unwrap_or_default(),
                    alarm: alarm.and_then(|a| child_text(a, "Name")).unwrap_or_default(),
                    insufficient: text("InsufficientDataHealthStatus").unwrap_or_else(|| "LastKnownStatus".into()),
                }
            }
            Some("CALCULATED") => Kind::Calculated {
                children: config
                    .descendants()
                    .filter(|n| n.has_tag_name("ChildHealthCheck"))
                    .filter_map(|n| n.text().map(|t| t.trim().to_string()))
                    .collect(),
                threshold: text("HealthThreshold").and_then(|t| t.parse().ok()).unwrap_or(0),
            },
            other => Kind::Other(other.unwrap_or_default().to_string()),
        };
        self.checks.insert(
            id.trim().to_string(),
            Check {
                akid: akid.to_string(),
                kind,
                inverted: text("Inverted").as_deref() == Some("true"),
                disabled: text("Disabled").as_deref() == Some("true"),
                healthy: None,
                checked: None,
                reason: "not checked yet".into(),
            },
        );
    }

    /// How many checks made with access key `akid` are there.
    pub fn active(&self, akid: &str) -> usize {
        self.checks.values().filter(|c| c.akid == akid).count()
    }

    pub fn forget(&mut self, id: &str) {
        self.checks.remove(id);
    }

    /// The calculated check that uses `id`, if any (AWS refuses to delete it then).
    pub fn used_by(&self, id: &str) -> Option<String> {
        self.checks.iter().find_map(|(parent, c)| match &c.kind {
            Kind::Calculated { children, .. } if children.iter().any(|ch| ch == id) => Some(parent.clone()),
            _ => None,
        })
    }

    /// Whether check `id` is healthy as Route53 last saw it; `None`: not a check the kit knows
    /// (as healthy).
    pub fn healthy(&self, id: &str) -> Option<bool> {
        let c = self.checks.get(id)?;
        Some(c.healthy.unwrap_or(true))
    }

    /// The metric alarms the checks watch: (access key, region) → alarm names.
    pub fn alarms(&self) -> BTreeMap<(String, String), Vec<String>> {
        let mut out: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
        for c in self.checks.values() {
            if let Kind::Metric { region, alarm, .. } = &c.kind {
                out.entry((c.akid.clone(), region.clone())).or_default().push(alarm.clone());
            }
        }
        out
    }

    /// Evaluates every check at `now` from the alarms' states ((access key, region, name) →
    /// state; an alarm not found reads as insufficient data). Returns (id, access key, healthy)
    /// of every check, for the `HealthCheckStatus` metric.
    pub fn evaluate(
        &mut self,
        now: SystemTime,
        states: &HashMap<(String, String, String), String>,
    ) -> Vec<(String, String, bool)> {
        let ids: Vec<String> = self.checks.keys().cloned().collect();
        // Endpoint and metric checks first, then calculated ones (children first: a few passes).
        for id in &ids {
            let c = self.checks.get_mut(id).unwrap();
            let (healthy, reason) = match &c.kind {
                Kind::Metric { region, alarm, insufficient } => {
                    let state = states
                        .get(&(c.akid.clone(), region.clone(), alarm.clone()))
                        .map(String::as_str)
                        .unwrap_or("INSUFFICIENT_DATA");
                    match state {
                        "OK" => (true, format!("CloudWatch alarm {alarm} is OK")),
                        "ALARM" => (false, format!("CloudWatch alarm {alarm} is in ALARM")),
                        _ => match insufficient.as_str() {
                            "Healthy" => (true, format!("CloudWatch alarm {alarm} has insufficient data (Healthy)")),
                            "Unhealthy" => {
                                (false, format!("CloudWatch alarm {alarm} has insufficient data (Unhealthy)"))
                            }
                            _ => {
                                let last = c.healthy.map(|h| if c.inverted { !h } else { h }).unwrap_or(true);
                                (last, format!("CloudWatch alarm {alarm} has insufficient data (last known status)"))
                            }
                        },
                    }
                }
                Kind::Other(t) => (true, format!("{t} endpoint not probed by the kit")),
                Kind::Calculated { .. } => continue,
            };
            c.healthy = Some(if c.disabled { true } else { healthy != c.inverted });
            c.reason = reason;
            c.checked = Some(now);
        }
        for _ in 0..3 {
            for id in &ids {
                let Some(Kind::Calculated { children, threshold }) = self.checks.get(id).map(|c| c.kind.clone()) else {
                    continue;
                };
                let up = children.iter().filter(|ch| self.healthy(ch).unwrap_or(true)).count();
                let c = self.checks.get_mut(id).unwrap();
                let healthy = up >= threshold;
                c.healthy = Some(if c.disabled { true } else { healthy != c.inverted });
                c.reason = format!("{up} of {} child health checks healthy (threshold {threshold})", children.len());
                c.checked = Some(now);
            }
        }
        self.last = Some(now);
        self.checks.iter().map(|(id, c)| (id.clone(), c.akid.clone(), c.healthy.unwrap_or(true))).collect()
    }

    /// GetHealthCheckStatus of `id` as Route53 answers it; `None` for a check the kit does not know.
    pub fn status(&self, id: &str) -> Option<Answer> {
        let c = self.checks.get(id)?;
        if matches!(c.kind, Kind::Calculated { .. }) {
            return Some(xml_error(
                400,
                "InvalidInput",
                "GetHealthCheckStatus doesn't support calculated health checks: see HealthCheckStatus in CloudWatch",
            ));
        }
        let healthy = c.healthy.unwrap_or(true);
        let status = format!("{}: {}", if healthy { "Success" } else { "Failure" }, c.reason);
        let checked = format_time(c.checked.unwrap_or(SystemTime::UNIX_EPOCH));
        let mut xml = String::from(
            "<?xml version=\"1.0\"?>\n<GetHealthCheckStatusResponse xmlns=\"https://route53.amazonaws.com/doc/2013-04-01/\"><HealthCheckObservations>",
        );
        for (region, ip) in
            [("us-east-1", "15.177.2.10"), ("eu-west-1", "15.177.62.10"), ("ap-southeast-1", "15.177.82.10")]
        {
            xml.push_str(&format!(
                "<HealthCheckObservation><Region>{region}</Region><IPAddress>{ip}</IPAddress><StatusReport><Status>{}</Status><CheckedTime>{checked}</CheckedTime></StatusReport></HealthCheckObservation>",
                xml_escape(&status)
            ));
        }
        xml.push_str("</HealthCheckObservations></GetHealthCheckStatusResponse>");
        let mut answer = Response::new(Full::new(Bytes::from(xml)));
        answer.headers_mut().insert("content-type", "text/xml".parse().unwrap());
        Some(answer)
    }
}

/// AWS's refusal to delete a check a calculated one uses.
pub fn in_use(id: &str, parent: &str) -> Answer {
    xml_error(
        400,
        "HealthCheckInUse",
        &format!("The health check {id} is still referenced from calculated health check {parent}."),
    )
}
