//! Profiles: one service's traffic split and how to roll it, read from `profiles/NAME.toml`.
//!
//! Parsing is strict: unknown keys are errors, and every error names the file and the key path
//! (`rollout.stages[2]`). A profile is parsed whole — routes, rollout, gates, state, notify — and
//! validated once into a [`Profile`], so nothing later has to second-guess it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

pub use crate::model::Role;
use crate::model::{Percent, RouteKind, Side};
pub use error::ProfileError;
pub use source::{ProfileSource, profile_from_s3};

mod error;
mod source;
pub use crate::rollout::decide::{OnFailure, Rules as Rollout};

/// A validated profile.
#[derive(Clone, Debug)]
pub struct Profile {
    /// The profile's name: its file stem.
    pub name: String,
    pub path: PathBuf,
    pub description: Option<String>,
    pub region: Option<String>,
    pub sides: Sides,
    pub route53: Vec<Route53Route>,
    pub alb: Vec<AlbRoute>,
    pub rollout: Rollout,
    /// `[rollout] safety_net`: while a rollout runs, the candidate's weighted records carry a
    /// Route53 health check on the alarm gates' alarms.
    pub safety_net: bool,
    /// `[rollout] dns_ttl`: how long clients may keep a DNS answer after a shift, in place of the
    /// Route53 records' own TTL (an ELB alias: 60 s).
    pub dns_ttl: Option<Duration>,
    pub gates: Vec<Gate>,
    /// `[observe]`: read both sides' request counts and hold a stage's bake until the observed
    /// share is the intended one.
    pub observe: Option<Observe>,
    pub state: Option<StateConfig>,
    pub notify: Notify,
}

/// `[observe]`: how the traffic clients actually send is compared with the configured split.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Observe {
    /// Percentage points the observed share may differ from the intended one.
    pub tolerance: f64,
    /// How far back request counts are summed (never before the stage began).
    pub window: Duration,
}

/// A gate's `min_requests`: "no data" is a pass once the candidate has served this many
/// requests over `window` (errors would have been reported).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MinRequests {
    pub count: u64,
    pub window: Duration,
}

/// Where each side runs, when the profile says.
#[derive(Clone, Debug, Default)]
pub struct Sides {
    pub blue: Option<EksSide>,
    pub green: Option<EksSide>,
    /// `[sides.X] role_arn`: the role for the side's cluster and load balancers, by
    /// [`Side::index`].
    pub roles: [Option<Role>; 2],
}

impl Sides {
    /// The role of `side`'s cluster and load balancers, when it has one.
    pub fn role(&self, side: Side) -> Option<&Role> {
        self.roles[side.index()].as_ref()
    }
}

/// One side's EKS namespace and the Ingress whose ALB serves it.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct EksSide {
    pub cluster: String,
    pub namespace: String,
    pub ingress: String,
}

/// A weighted record pair in one hosted zone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route53Route {
    /// Hosted zone name (`myapp.com.`) or id (`Z123…`).
    pub zone: String,
    /// Record name, fully qualified with a trailing dot.
    pub record: String,
    pub rtype: String,
    pub blue: String,
    pub green: String,
    pub preview: Option<String>,
    /// The role for the zone's calls (every route of one zone has the same).
    pub role: Option<Role>,
}

impl Route53Route {
    pub fn set_identifier(&self, side: Side) -> &str {
        match side {
            Side::Blue => &self.blue,
            Side::Green => &self.green,
        }
    }
}

/// Which forward action of a listener a route edits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RuleRef {
    /// The listener's default action.
    Default,
    /// A listener rule by ARN.
    Arn(String),
}

/// A weighted forward action between two target groups.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AlbRoute {
    /// Listener ARN, or `LOAD_BALANCER_NAME:PORT`.
    pub listener: String,
    pub rule: RuleRef,
    /// Target group name or ARN.
    pub blue: String,
    pub green: String,
    /// `owner_ok = true`: the listener or rule belongs to a CloudFormation stack, and its
    /// template is kept from reverting the weights (see the README).
    pub owner_ok: bool,
    /// The role for the listener's calls (and its target groups').
    pub role: Option<Role>,
}

impl AlbRoute {
    pub fn target_group(&self, side: Side) -> &str {
        match side {
            Side::Blue => &self.blue,
            Side::Green => &self.green,
        }
    }
}

/// A health gate. `{side}` in its strings is replaced by the candidate side when it is read.
#[derive(Clone, Debug, PartialEq)]
pub struct Gate {
    /// A label for output: the `name` key, or the gate's type and position.
    pub name: String,
    pub kind: GateKind,
    /// Alarm and metric gates: when "no data" counts as a pass.
    pub min_requests: Option<MinRequests>,
    /// The role the gate reads with. A target-health gate without one reads each route's target
    /// groups with that route's role.
    pub role: Option<Role>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum GateKind {
    TargetHealth { min_healthy: f64 },
    Alarm { alarms: Vec<String> },
    Metric { query: MetricQuery, period: Duration, window: Duration, max: Option<f64>, min: Option<f64> },
    Route53HealthCheck { health_check_id: String },
    Http { url: String, expect_status: u16, body_contains: Option<String>, timeout: Duration },
    Webhook { url: String, rollback: bool, timeout: Duration },
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

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateConfig {
    pub table: String,
    /// How long a run's lease lasts without renewal (a run renews it while baking).
    pub lease: Duration,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Notify {
    pub sns_topic_arn: Option<String>,
    pub webhook: Option<String>,
}

impl Profile {
    /// Every role the profile names, each once.
    pub fn roles(&self) -> Vec<&Role> {
        let mut roles: Vec<&Role> = self
            .route53
            .iter()
            .map(|r| &r.role)
            .chain(self.alb.iter().map(|a| &a.role))
            .chain(self.sides.roles.iter())
            .chain(self.gates.iter().map(|g| &g.role))
            .flatten()
            .collect();
        roles.sort();
        roles.dedup();
        roles
    }

    /// Where the profile names `role`: `route53[0].role_arn`, `sides.green.role_arn`, ….
    pub fn role_keys(&self, role: &Role) -> Vec<String> {
        let named = |r: &Option<Role>| r.as_ref() == Some(role);
        let mut keys: Vec<String> = Vec::new();
        keys.extend(
            self.route53.iter().enumerate().filter(|(_, r)| named(&r.role)).map(|(i, _)| format!("route53[{i}]")),
        );
        keys.extend(self.alb.iter().enumerate().filter(|(_, r)| named(&r.role)).map(|(i, _)| format!("alb[{i}]")));
        keys.extend(Side::ALL.iter().filter(|s| named(&self.sides.roles[s.index()])).map(|s| format!("sides.{s}")));
        keys.extend(self.gates.iter().enumerate().filter(|(_, g)| named(&g.role)).map(|(i, _)| format!("gate[{i}]")));
        keys.into_iter().map(|k| format!("{k}.role_arn")).collect()
    }

    /// The role of a route's own resources: its hosted zone, or its listener and target groups.
    pub fn route_role(&self, kind: RouteKind, index: usize) -> Option<&Role> {
        match kind {
            crate::splitter::route53::KIND => self.route53.get(index)?.role.as_ref(),
            crate::splitter::alb::KIND => self.alb.get(index)?.role.as_ref(),
            _ => None,
        }
    }

    /// The role a route's `side` load balancer is read with: an ALB route's own; for a Route53
    /// route, where the record's alias points — the side's role (`[sides.X] role_arn`), else the
    /// zone's (an alias most often names a load balancer of the zone's own account).
    pub fn load_balancer_role(&self, kind: RouteKind, index: usize, side: Side) -> Option<&Role> {
        match kind {
            crate::splitter::alb::KIND => self.route_role(kind, index),
            crate::splitter::route53::KIND => self.sides.role(side).or_else(|| self.route_role(kind, index)),
            _ => None,
        }
    }

    /// Reads and validates the profile at `path`.
    pub fn load(path: &Path) -> Result<Profile, ProfileError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| ProfileError::Read { path: path.to_path_buf(), source })?;
        Profile::parse(path, &text)
    }

    /// Parses and validates profile text; `path` is used for the name and in errors.
    pub fn parse(path: &Path, text: &str) -> Result<Profile, ProfileError> {
        let invalid = |key: String, message: String, hint: Option<String>| ProfileError::Invalid {
            path: path.to_path_buf(),
            key,
            message,
            hint,
        };
        let de = toml::Deserializer::parse(text).map_err(|e| invalid(String::new(), toml_message(&e, text), None))?;
        let raw: RawProfile = serde_path_to_error::deserialize(de).map_err(|e| {
            let key = e.path().to_string();
            let inner = e.into_inner();
            invalid(key, toml_message(&inner, text), None)
        })?;
        let name = path.file_stem().and_then(|s| s.to_str()).unwrap_or("profile").to_string();
        raw.validate(name, path).map_err(|Bad { key, message, hint }| invalid(key, message, hint))
    }
}

/// A toml error as one readable message, with the line when the parser knows it.
fn toml_message(e: &toml::de::Error, text: &str) -> String {
    let msg = e.message().trim().to_string();
    match e.span() {
        Some(span) => {
            let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
            format!("{msg} (line {line})")
        }
        None => msg,
    }
}

/// A validation failure before it is tied to a file.
struct Bad {
    key: String,
    message: String,
    hint: Option<String>,
}

fn bad(key: impl Into<String>, message: impl Into<String>) -> Bad {
    Bad { key: key.into(), message: message.into(), hint: None }
}

fn bad_hint(key: impl Into<String>, message: impl Into<String>, hint: impl Into<String>) -> Bad {
    Bad { key: key.into(), message: message.into(), hint: Some(hint.into()) }
}

// ---- the file format, as serde reads it ----

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProfile {
    description: Option<String>,
    region: Option<String>,
    sides: Option<RawSides>,
    #[serde(default)]
    route53: Vec<RawRoute53>,
    #[serde(default)]
    alb: Vec<RawAlb>,
    rollout: Option<RawRollout>,
    #[serde(default)]
    gate: Vec<RawGate>,
    observe: Option<RawObserve>,
    state: Option<RawState>,
    notify: Option<RawNotify>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSides {
    blue: Option<RawSide>,
    green: Option<RawSide>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSide {
    eks: Option<EksSide>,
    role_arn: Option<String>,
    external_id: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoute53 {
    zone: String,
    record: String,
    #[serde(rename = "type", default = "default_rtype")]
    rtype: String,
    blue: String,
    green: String,
    preview: Option<String>,
    role_arn: Option<String>,
    external_id: Option<String>,
}

fn default_rtype() -> String {
    "A".to_string()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAlb {
    listener: String,
    #[serde(default = "default_rule")]
    rule: String,
    blue: String,
    green: String,
    #[serde(default)]
    owner_ok: bool,
    role_arn: Option<String>,
    external_id: Option<String>,
}

fn default_rule() -> String {
    "default".to_string()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRollout {
    stages: Option<Vec<Percent>>,
    bake: Option<String>,
    poll: Option<String>,
    failure_threshold: Option<i64>,
    on_failure: Option<OnFailure>,
    max_hold: Option<String>,
    safety_net: Option<bool>,
    dns_ttl: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawObserve {
    tolerance: Option<f64>,
    window: Option<String>,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case", deny_unknown_fields)]
enum RawGate {
    TargetHealth {
        name: Option<String>,
        #[serde(default = "default_min_healthy")]
        min_healthy: f64,
        role_arn: Option<String>,
        external_id: Option<String>,
    },
    Alarm {
        name: Option<String>,
        alarms: Vec<String>,
        min_requests: Option<i64>,
        #[serde(default = "default_window")]
        window: String,
        role_arn: Option<String>,
        external_id: Option<String>,
    },
    Metric {
        name: Option<String>,
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
        role_arn: Option<String>,
        external_id: Option<String>,
    },
    Route53HealthCheck {
        name: Option<String>,
        health_check_id: String,
        role_arn: Option<String>,
        external_id: Option<String>,
    },
    Http {
        name: Option<String>,
        url: String,
        #[serde(default = "default_status")]
        expect_status: i64,
        body_contains: Option<String>,
        #[serde(default = "default_timeout")]
        timeout: String,
    },
    Webhook {
        name: Option<String>,
        url: String,
        #[serde(default)]
        rollback: bool,
        #[serde(default = "default_timeout")]
        timeout: String,
    },
}

fn default_min_healthy() -> f64 {
    1.0
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
fn default_status() -> i64 {
    200
}
fn default_timeout() -> String {
    "5s".to_string()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawState {
    table: String,
    lease: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNotify {
    sns_topic_arn: Option<String>,
    webhook: Option<String>,
}

// ---- validation ----

const RECORD_TYPES: &[&str] = &["A", "AAAA", "CNAME", "TXT", "MX", "SRV", "CAA", "NAPTR", "PTR", "SPF", "DS"];

fn duration(key: &str, value: &str) -> Result<Duration, Bad> {
    humantime::parse_duration(value.trim()).map_err(|e| {
        bad_hint(
            key,
            format!("`{value}` is not a duration ({e})"),
            "write durations like \"30s\", \"5m\" or \"1h 30m\"",
        )
    })
}

fn non_empty(key: &str, value: &str) -> Result<(), Bad> {
    if value.trim().is_empty() { Err(bad(key, "must not be empty")) } else { Ok(()) }
}

fn http_url(key: &str, url: &str) -> Result<(), Bad> {
    if url.starts_with("http://") || url.starts_with("https://") {
        Ok(())
    } else {
        Err(bad_hint(
            key,
            "must be an http:// or https:// URL",
            "for example \"https://{side}.preprod.myapp.com/health\"",
        ))
    }
}

/// `role_arn` and `external_id` at `prefix` (`route53[0]`): an IAM role ARN, and the external id
/// AssumeRole accepts (2–1224 characters of letters, digits and `+=,.@:/-`), only with a role.
fn role(prefix: &str, arn: Option<String>, external_id: Option<String>) -> Result<Option<Role>, Bad> {
    let key = |k: &str| if prefix.is_empty() { k.to_string() } else { format!("{prefix}.{k}") };
    let Some(arn) = arn.map(|a| a.trim().to_string()) else {
        return match external_id {
            Some(_) => Err(bad_hint(
                key("external_id"),
                "an external id is only used with `role_arn`",
                "add the role it is the external id of: role_arn = \"arn:aws:iam::111122223333:role/cutover\"",
            )),
            None => Ok(None),
        };
    };
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let well_formed = parts.len() == 6
        && parts[0] == "arn"
        && parts[1].starts_with("aws")
        && parts[2] == "iam"
        && parts[3].is_empty()
        && parts[4].len() == 12
        && parts[4].chars().all(|c| c.is_ascii_digit())
        && parts[5].strip_prefix("role/").is_some_and(|name| !name.is_empty() && !name.ends_with('/'));
    if !well_formed {
        return Err(bad_hint(
            key("role_arn"),
            format!("`{arn}` is not an IAM role ARN"),
            "arn:aws:iam::ACCOUNT:role/NAME, e.g. \"arn:aws:iam::111122223333:role/cutover\"",
        ));
    }
    if let Some(id) = &external_id {
        let ok =
            (2..=1224).contains(&id.len()) && id.chars().all(|c| c.is_ascii_alphanumeric() || "_+=,.@:/-".contains(c));
        if !ok {
            return Err(bad_hint(
                key("external_id"),
                "is not an external id STS accepts",
                "2–1224 characters of letters, digits and _+=,.@:/-",
            ));
        }
    }
    Ok(Some(Role { arn, external_id }))
}

/// A DNS name as Route53 returns it: lower case, with a trailing dot.
pub fn fqdn(name: &str) -> String {
    let n = name.trim().to_ascii_lowercase();
    if n.ends_with('.') { n } else { format!("{n}.") }
}

impl RawProfile {
    fn validate(self, name: String, path: &Path) -> Result<Profile, Bad> {
        if let Some(region) = &self.region {
            let ok =
                !region.is_empty() && region.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
            if !ok {
                return Err(bad_hint(
                    "region",
                    format!("`{region}` is not an AWS region"),
                    "for example \"us-west-2\"",
                ));
            }
        }
        let sides = match self.sides {
            None => Sides::default(),
            Some(s) => {
                let check = |side: &str, raw: &Option<RawSide>| -> Result<Option<EksSide>, Bad> {
                    let Some(eks) = raw.as_ref().and_then(|r| r.eks.clone()) else {
                        return Ok(None);
                    };
                    non_empty(&format!("sides.{side}.eks.cluster"), &eks.cluster)?;
                    non_empty(&format!("sides.{side}.eks.namespace"), &eks.namespace)?;
                    non_empty(&format!("sides.{side}.eks.ingress"), &eks.ingress)?;
                    Ok(Some(eks))
                };
                let blue = check("blue", &s.blue)?;
                let green = check("green", &s.green)?;
                if blue.is_some() && blue == green {
                    return Err(bad("sides.green.eks", "names the same namespace and ingress as the blue side"));
                }
                let side_role = |side: &str, raw: Option<RawSide>| match raw {
                    Some(r) => role(&format!("sides.{side}"), r.role_arn, r.external_id),
                    None => Ok(None),
                };
                let roles = [side_role("blue", s.blue)?, side_role("green", s.green)?];
                Sides { blue, green, roles }
            }
        };

        let mut route53 = Vec::new();
        for (i, r) in self.route53.into_iter().enumerate() {
            let key = |k: &str| format!("route53[{i}].{k}");
            non_empty(&key("zone"), &r.zone)?;
            non_empty(&key("record"), &r.record)?;
            non_empty(&key("blue"), &r.blue)?;
            non_empty(&key("green"), &r.green)?;
            if r.blue == r.green {
                return Err(bad_hint(
                    key("green"),
                    format!("blue and green name the same SetIdentifier `{}`", r.blue),
                    "each side is its own weighted record set, told apart by SetIdentifier",
                ));
            }
            let rtype = r.rtype.trim().to_ascii_uppercase();
            if !RECORD_TYPES.contains(&rtype.as_str()) {
                return Err(bad_hint(
                    key("type"),
                    format!("`{}` is not a Route53 record type", r.rtype),
                    format!("one of {}", RECORD_TYPES.join(", ")),
                ));
            }
            let record = fqdn(&r.record);
            let zone = r.zone.trim().to_string();
            if !is_zone_id(&zone) {
                let z = fqdn(&zone);
                if record != z && !record.ends_with(&format!(".{z}")) {
                    return Err(bad(key("record"), format!("`{record}` is not inside the zone `{z}`")));
                }
            }
            if let Some(p) = &r.preview {
                non_empty(&key("preview"), p)?;
                if fqdn(p) == record {
                    return Err(bad(key("preview"), "must be another name than the weighted record"));
                }
            }
            let route = Route53Route {
                zone: if is_zone_id(&zone) { zone } else { fqdn(&zone) },
                record,
                rtype,
                blue: r.blue,
                green: r.green,
                preview: r.preview.map(|p| fqdn(&p)),
                role: role(&format!("route53[{i}]"), r.role_arn, r.external_id)?,
            };
            if route53.contains(&route) {
                return Err(bad(key("record"), "the same record pair is listed twice"));
            }
            if let Some(other) = route53.iter().find(|o| o.zone == route.zone && o.role != route.role) {
                return Err(bad_hint(
                    key("role_arn"),
                    format!(
                        "the zone `{}` is given another role here than in an earlier [[route53]] route",
                        route.zone
                    ),
                    format!(
                        "a zone's records are written in one change batch, by one account: give every route of the zone the same role ({})",
                        other.role.as_ref().map(|r| format!("`{}`", r.arn)).unwrap_or_else(|| "none".into())
                    ),
                ));
            }
            route53.push(route);
        }

        let mut alb = Vec::new();
        for (i, r) in self.alb.into_iter().enumerate() {
            let key = |k: &str| format!("alb[{i}].{k}");
            let listener = r.listener.trim().to_string();
            if !is_listener_ref(&listener) {
                return Err(bad_hint(
                    key("listener"),
                    format!("`{listener}` is neither a listener ARN nor LOAD_BALANCER:PORT"),
                    "a listener ARN (arn:aws:elasticloadbalancing:REGION:ACCOUNT:listener/app/NAME/ID/ID) or the load balancer's name and the listener's port, e.g. \"front:443\"",
                ));
            }
            let rule = match r.rule.trim() {
                "default" => RuleRef::Default,
                arn if arn.starts_with("arn:") && arn.contains(":listener-rule/") => RuleRef::Arn(arn.to_string()),
                other => {
                    return Err(bad_hint(
                        key("rule"),
                        format!("`{other}` is neither \"default\" nor a listener rule ARN"),
                        "\"default\" edits the listener's default action; a rule ARN edits that rule",
                    ));
                }
            };
            non_empty(&key("blue"), &r.blue)?;
            non_empty(&key("green"), &r.green)?;
            if r.blue == r.green {
                return Err(bad(key("green"), format!("blue and green name the same target group `{}`", r.blue)));
            }
            let route = AlbRoute {
                listener,
                rule,
                blue: r.blue.trim().to_string(),
                green: r.green.trim().to_string(),
                owner_ok: r.owner_ok,
                role: role(&format!("alb[{i}]"), r.role_arn, r.external_id)?,
            };
            if alb.iter().any(|a: &AlbRoute| a.listener == route.listener && a.rule == route.rule) {
                return Err(bad(key("rule"), "the same listener action is listed twice"));
            }
            alb.push(route);
        }
        if route53.is_empty() && alb.is_empty() {
            return Err(bad_hint(
                "",
                "the profile has no routes",
                "add a [[route53]] or an [[alb]] table naming the traffic split",
            ));
        }

        let mut rollout = Rollout::default();
        let mut safety_net = false;
        let mut dns_ttl = None;
        if let Some(r) = self.rollout {
            safety_net = r.safety_net.unwrap_or(false);
            if let Some(t) = &r.dns_ttl {
                dns_ttl = Some(duration("rollout.dns_ttl", t)?);
            }
            if let Some(stages) = r.stages {
                if stages.is_empty() {
                    return Err(bad("rollout.stages", "must list at least one stage"));
                }
                for (i, w) in stages.iter().enumerate() {
                    if *w == Percent::ZERO {
                        return Err(bad(format!("rollout.stages[{i}]"), "a stage of 0 % moves no traffic"));
                    }
                    if i > 0 && *w <= stages[i - 1] {
                        return Err(bad_hint(
                            format!("rollout.stages[{i}]"),
                            format!("stages must be ascending ({w} after {})", stages[i - 1]),
                            "for example stages = [10, 25, 50, 100]",
                        ));
                    }
                }
                if *stages.last().expect("non-empty") != Percent::FULL {
                    return Err(bad_hint(
                        format!("rollout.stages[{}]", stages.len() - 1),
                        "the last stage must be 100",
                        "a rollout ends with all traffic on the candidate",
                    ));
                }
                // Every stage must be told apart from the others on every splitter of the profile:
                // a route's weights say which stage it is at.
                let kinds: Vec<RouteKind> = [
                    (crate::splitter::route53::KIND, !route53.is_empty()),
                    (crate::splitter::alb::KIND, !alb.is_empty()),
                ]
                .into_iter()
                .filter_map(|(k, used)| used.then_some(k))
                .collect();
                for kind in kinds {
                    let weights: Vec<_> = stages.iter().map(|&p| crate::weights::split(kind, Side::Green, p)).collect();
                    for i in 1..weights.len() {
                        if weights[..i].contains(&weights[i]) {
                            return Err(bad_hint(
                                format!("rollout.stages[{i}]"),
                                format!(
                                    "stage {} gives the same {kind} weights as an earlier stage ({}:{})",
                                    stages[i], weights[i].blue, weights[i].green
                                ),
                                "fractions below 0.4 % cannot all be told apart on Route53 (weights 0–255): use fewer or larger stages",
                            ));
                        }
                    }
                }
                rollout.stages = stages;
            }
            if let Some(b) = r.bake {
                rollout.bake = duration("rollout.bake", &b)?;
            }
            if let Some(p) = r.poll {
                rollout.poll = duration("rollout.poll", &p)?;
                if rollout.poll.is_zero() {
                    return Err(bad("rollout.poll", "must be longer than zero"));
                }
            }
            if let Some(t) = r.failure_threshold {
                if !(1..=1000).contains(&t) {
                    return Err(bad("rollout.failure_threshold", format!("{t} is outside 1–1000")));
                }
                rollout.failure_threshold = t as u32;
            }
            if let Some(o) = r.on_failure {
                rollout.on_failure = o;
            }
            if let Some(h) = r.max_hold {
                rollout.max_hold = duration("rollout.max_hold", &h)?;
            }
        }

        let mut gates = Vec::new();
        for (i, g) in self.gate.into_iter().enumerate() {
            let key = |k: &str| format!("gate[{i}].{k}");
            let min_requests = |count: Option<i64>, window: Duration| -> Result<Option<MinRequests>, Bad> {
                match count {
                    None => Ok(None),
                    Some(n) if n < 1 => Err(bad_hint(
                        key("min_requests"),
                        format!("{n} is not a request count"),
                        "at least 1: how many requests the candidate must have served for \"no data\" to mean no errors",
                    )),
                    Some(n) => Ok(Some(MinRequests { count: n as u64, window })),
                }
            };
            let gate_role =
                |arn: Option<String>, external_id: Option<String>| role(&format!("gate[{i}]"), arn, external_id);
            let (label, kind, min_requests, role) = match g {
                RawGate::TargetHealth { name, min_healthy, role_arn, external_id } => {
                    if !(0.0..=1.0).contains(&min_healthy) {
                        return Err(bad_hint(
                            key("min_healthy"),
                            format!("{min_healthy} is outside 0–1"),
                            "a fraction: 1.0 means every target healthy",
                        ));
                    }
                    (name, GateKind::TargetHealth { min_healthy }, None, gate_role(role_arn, external_id)?)
                }
                RawGate::Alarm { name, alarms, min_requests: count, window, role_arn, external_id } => {
                    if alarms.is_empty() {
                        return Err(bad(key("alarms"), "must name at least one alarm"));
                    }
                    for (j, a) in alarms.iter().enumerate() {
                        non_empty(&format!("gate[{i}].alarms[{j}]"), a)?;
                    }
                    let window = duration(&key("window"), &window)?;
                    if window < Duration::from_secs(60) {
                        return Err(bad_hint(
                            key("window"),
                            "must be at least 1m",
                            "ALB request counts are reported per minute",
                        ));
                    }
                    (name, GateKind::Alarm { alarms }, min_requests(count, window)?, gate_role(role_arn, external_id)?)
                }
                RawGate::Metric {
                    name,
                    namespace,
                    metric,
                    dimensions,
                    stat,
                    expression,
                    metrics,
                    period,
                    window,
                    max,
                    min,
                    min_requests: count,
                    role_arn,
                    external_id,
                } => {
                    let query = match (expression, namespace, metric) {
                        (Some(expression), None, None) => {
                            if metrics.is_empty() {
                                return Err(bad_hint(
                                    key("metrics"),
                                    "an expression needs the metrics it uses",
                                    "[[gate.metrics]] id = \"m1\", namespace = …, metric = …",
                                ));
                            }
                            MetricQuery::Expression { expression, metrics }
                        }
                        (None, Some(namespace), Some(metric)) => {
                            if !metrics.is_empty() {
                                return Err(bad(key("metrics"), "only used with `expression`"));
                            }
                            MetricQuery::Metric { namespace, metric, dimensions, stat }
                        }
                        _ => {
                            return Err(bad_hint(
                                key("expression"),
                                "give either `namespace` and `metric`, or `expression` with `metrics`",
                                "namespace = \"AWS/ApplicationELB\", metric = \"HTTPCode_Target_5XX_Count\"",
                            ));
                        }
                    };
                    if max.is_none() && min.is_none() {
                        return Err(bad_hint(
                            key("max"),
                            "a metric gate needs a threshold",
                            "`max` fails above it, `min` fails below it",
                        ));
                    }
                    let period = duration(&key("period"), &period)?;
                    let window = duration(&key("window"), &window)?;
                    // GetMetricData accepts these periods and no others.
                    let secs = period.as_secs();
                    if period.subsec_nanos() != 0
                        || !(matches!(secs, 1 | 5 | 10 | 20 | 30) || secs > 0 && secs % 60 == 0)
                    {
                        return Err(bad_hint(
                            key("period"),
                            "CloudWatch periods are 1, 5, 10, 20, 30 or 60 seconds, or a multiple of 60 seconds",
                            "for example \"1m\" (periods under a minute need high-resolution metrics)",
                        ));
                    }
                    if let MetricQuery::Expression { metrics, .. } = &query {
                        let mut seen = std::collections::BTreeSet::new();
                        for (j, m) in metrics.iter().enumerate() {
                            let id_key = format!("{}.metrics[{j}].id", key("").trim_end_matches('.'));
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
                            if m.id == crate::gates::RESULT_ID || !seen.insert(m.id.as_str()) {
                                return Err(bad(id_key, format!("`{}` is used twice (or by cutover)", m.id)));
                            }
                        }
                    }
                    if window < period {
                        return Err(bad(key("window"), "must be at least one period"));
                    }
                    let min_requests = min_requests(count, window.max(Duration::from_secs(60)))?;
                    (
                        name,
                        GateKind::Metric { query, period, window, max, min },
                        min_requests,
                        gate_role(role_arn, external_id)?,
                    )
                }
                RawGate::Route53HealthCheck { name, health_check_id, role_arn, external_id } => {
                    non_empty(&key("health_check_id"), &health_check_id)?;
                    (name, GateKind::Route53HealthCheck { health_check_id }, None, gate_role(role_arn, external_id)?)
                }
                RawGate::Http { name, url, expect_status, body_contains, timeout } => {
                    http_url(&key("url"), &url)?;
                    if !(100..=599).contains(&expect_status) {
                        return Err(bad(key("expect_status"), format!("{expect_status} is not an HTTP status")));
                    }
                    let timeout = duration(&key("timeout"), &timeout)?;
                    (
                        name,
                        GateKind::Http { url, expect_status: expect_status as u16, body_contains, timeout },
                        None,
                        None,
                    )
                }
                RawGate::Webhook { name, url, rollback, timeout } => {
                    http_url(&key("url"), &url)?;
                    let timeout = duration(&key("timeout"), &timeout)?;
                    (name, GateKind::Webhook { url, rollback, timeout }, None, None)
                }
            };
            let label = label.unwrap_or_else(|| format!("{}#{}", kind.type_name(), i + 1));
            gates.push(Gate { name: label, kind, min_requests, role });
        }
        if safety_net {
            if route53.is_empty() {
                return Err(bad_hint(
                    "rollout.safety_net",
                    "the safety net is a Route53 health check on the candidate's weighted records, and the profile has no [[route53]] route",
                    "drop `safety_net`, or add the weighted records as a [[route53]] route",
                ));
            }
            if !gates.iter().any(|g| matches!(g.kind, GateKind::Alarm { .. })) {
                return Err(bad_hint(
                    "rollout.safety_net",
                    "the safety net watches the alarm gates' alarms, and the profile has no alarm gate",
                    "add a [[gate]] of type = \"alarm\" naming the candidate's alarms (\"{side}\" becomes the candidate)",
                ));
            }
            // The health checks belong to the account that writes them into the records, and a
            // health check's alarm is named without an account: all must be one account.
            let zone_role = &route53[0].role;
            let (key, other) = match route53.iter().position(|r| r.role != *zone_role) {
                Some(i) => (format!("route53[{i}].role_arn"), "another [[route53]] route"),
                None => {
                    match gates.iter().position(|g| matches!(g.kind, GateKind::Alarm { .. }) && g.role != *zone_role) {
                        Some(i) => (format!("gate[{i}].role_arn"), "an alarm gate"),
                        None => (String::new(), ""),
                    }
                }
            };
            if !key.is_empty() {
                return Err(bad_hint(
                    key,
                    format!("`[rollout] safety_net` needs one account, and {other} names another role than route53[0]"),
                    "a Route53 health check watches an alarm of its own account and is attached by the zone's account: give the [[route53]] routes and the alarm gates the same role, or drop `safety_net`",
                ));
            }
        }
        let observe = match self.observe {
            None => None,
            Some(o) => {
                let tolerance = o.tolerance.unwrap_or(5.0);
                if !(tolerance > 0.0 && tolerance <= 100.0) {
                    return Err(bad_hint(
                        "observe.tolerance",
                        format!("{tolerance} is not a tolerance: more than 0 and at most 100 percentage points"),
                        "percentage points, e.g. 5: a stage at 25 % bakes once 20–30 % of requests reach the candidate",
                    ));
                }
                let window = match &o.window {
                    Some(w) => duration("observe.window", w)?,
                    None => Duration::from_secs(60),
                };
                if window < Duration::from_secs(60) {
                    return Err(bad_hint(
                        "observe.window",
                        "must be at least 1m",
                        "ALB request counts are reported per minute",
                    ));
                }
                Some(Observe { tolerance, window })
            }
        };

        let state = match self.state {
            None => None,
            Some(s) => {
                let ok = (3..=255).contains(&s.table.len())
                    && s.table.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
                if !ok {
                    return Err(bad_hint(
                        "state.table",
                        format!("`{}` is not a DynamoDB table name", s.table),
                        "3–255 characters of a-z, A-Z, 0-9, _ - .",
                    ));
                }
                let lease = match &s.lease {
                    Some(l) => duration("state.lease", l)?,
                    None => Duration::from_secs(60),
                };
                if lease < Duration::from_secs(1) {
                    return Err(bad("state.lease", "must be at least 1s"));
                }
                Some(StateConfig { table: s.table, lease })
            }
        };
        let notify = match self.notify {
            None => Notify::default(),
            Some(n) => {
                if let Some(arn) = &n.sns_topic_arn
                    && !(arn.starts_with("arn:") && arn.contains(":sns:"))
                {
                    return Err(bad("notify.sns_topic_arn", format!("`{arn}` is not an SNS topic ARN")));
                }
                if let Some(url) = &n.webhook {
                    http_url("notify.webhook", url)?;
                }
                Notify { sns_topic_arn: n.sns_topic_arn, webhook: n.webhook }
            }
        };

        Ok(Profile {
            name,
            path: path.to_path_buf(),
            description: self.description,
            region: self.region,
            sides,
            route53,
            alb,
            rollout,
            safety_net,
            dns_ttl,
            gates,
            observe,
            state,
            notify,
        })
    }
}

/// A listener ARN, or `LOAD_BALANCER_NAME:PORT`.
fn is_listener_ref(listener: &str) -> bool {
    if listener.starts_with("arn:") {
        return listener.contains(":listener/");
    }
    let Some((name, port)) = listener.rsplit_once(':') else {
        return false;
    };
    let name_ok = (1..=32).contains(&name.len())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    name_ok && port.parse::<u16>().is_ok_and(|p| p > 0)
}

/// A hosted zone id (`Z0123…` or `/hostedzone/Z0123…`) rather than a zone name.
pub fn is_zone_id(zone: &str) -> bool {
    let id = zone.trim_start_matches("/hostedzone/");
    !id.contains('.') && id.len() >= 5 && id.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
}

impl GateKind {
    pub fn type_name(&self) -> &'static str {
        match self {
            GateKind::TargetHealth { .. } => "target-health",
            GateKind::Alarm { .. } => "alarm",
            GateKind::Metric { .. } => "metric",
            GateKind::Route53HealthCheck { .. } => "route53-health-check",
            GateKind::Http { .. } => "http",
            GateKind::Webhook { .. } => "webhook",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Profile, String> {
        Profile::parse(Path::new("profiles/t.toml"), text).map_err(|e| e.to_string())
    }

    const MIN: &str = r#"
[[route53]]
zone = "myapp.com."
record = "api.myapp.com"
blue = "blue"
green = "green"
"#;

    #[test]
    fn minimal_profile_takes_defaults() {
        let p = parse(MIN).unwrap();
        assert_eq!(p.name, "t");
        assert_eq!(p.route53[0].record, "api.myapp.com.");
        assert_eq!(p.route53[0].rtype, "A");
        assert_eq!(p.rollout, Rollout::default());
    }

    #[test]
    fn metric_gates_take_only_periods_and_ids_cloudwatch_accepts() {
        let gate = |extra: &str| {
            format!("{MIN}\n[[gate]]\ntype = \"metric\"\nnamespace = \"N\"\nmetric = \"M\"\nmax = 1\n{extra}")
        };
        for ok in ["1s", "5s", "10s", "20s", "30s", "1m", "5m", "1h"] {
            parse(&gate(&format!("period = \"{ok}\"\nwindow = \"1h\"\n"))).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        for bad in ["7s", "45s", "90s", "1500ms"] {
            let err = parse(&gate(&format!("period = \"{bad}\"\nwindow = \"1h\"\n"))).unwrap_err();
            assert!(err.contains("gate[0].period") && err.contains("20, 30 or 60"), "{bad}: {err}");
        }
        let expr = |id: &str| {
            format!(
                "{MIN}\n[[gate]]\ntype = \"metric\"\nexpression = \"100 * x\"\nmax = 1\n\
                 [[gate.metrics]]\nid = \"{id}\"\nnamespace = \"N\"\nmetric = \"M\"\n"
            )
        };
        parse(&expr("m_1")).unwrap();
        for bad in ["M1", "1m", "m-1", "cutover_gate"] {
            let err = parse(&expr(bad)).unwrap_err();
            assert!(err.contains("gate[0].metrics[0].id"), "{bad}: {err}");
        }
    }

    #[test]
    fn roles_are_checked_where_they_are_written_and_a_zone_has_one() {
        const NET: &str = "arn:aws:iam::111111111111:role/net";
        const APP: &str = "arn:aws:iam::222222222222:role/team/app";
        let alb = "[[alb]]\nlistener = \"front:443\"\nblue = \"b\"\ngreen = \"g\"\n";
        let p = parse(&format!(
            "[[route53]]\nzone = \"myapp.com\"\nrecord = \"api.myapp.com\"\nblue = \"b\"\ngreen = \"g\"\nrole_arn = \"{NET}\"\nexternal_id = \"ops-42\"\n\n{alb}role_arn = \"{APP}\"\n\n[sides.green]\nrole_arn = \"{APP}\"\n\n[[gate]]\ntype = \"alarm\"\nalarms = [\"a\"]\nrole_arn = \"{APP}\"\n"
        ))
        .unwrap();
        let net = Role { arn: NET.into(), external_id: Some("ops-42".into()) };
        let app = Role { arn: APP.into(), external_id: None };
        assert_eq!(p.route53[0].role.as_ref(), Some(&net));
        assert_eq!(p.roles(), vec![&net, &app]);
        assert_eq!(app.account(), "222222222222");
        assert_eq!(p.role_keys(&app), ["alb[0].role_arn", "sides.green.role_arn", "gate[0].role_arn"]);
        // An alias's load balancer: the side's role, else the zone's; an ALB route's own.
        assert_eq!(p.load_balancer_role(crate::splitter::route53::KIND, 0, Side::Green), Some(&app));
        assert_eq!(p.load_balancer_role(crate::splitter::route53::KIND, 0, Side::Blue), Some(&net));
        assert_eq!(p.load_balancer_role(crate::splitter::alb::KIND, 0, Side::Blue), Some(&app));

        let err = parse(&format!("{MIN}external_id = \"x1\"\n")).unwrap_err();
        assert!(err.contains("route53[0].external_id") && err.contains("role_arn"), "{err}");
        for bad in ["arn:aws:iam::1111:role/x", "arn:aws:sts::111111111111:assumed-role/x/y", "net"] {
            let err = parse(&format!("{MIN}role_arn = \"{bad}\"\n")).unwrap_err();
            assert!(err.contains("route53[0].role_arn") && err.contains("not an IAM role ARN"), "{bad}: {err}");
        }
        let err = parse(&format!("{alb}role_arn = \"{NET}\"\nexternal_id = \"a b\"\n")).unwrap_err();
        assert!(err.contains("alb[0].external_id"), "{err}");
        let err = parse(&format!("{MIN}\n[[gate]]\ntype = \"http\"\nurl = \"https://x\"\nrole_arn = \"{NET}\"\n"))
            .unwrap_err();
        assert!(err.contains("gate[0]") && err.contains("role_arn"), "{err}");
        let err = parse(&format!(
            "{MIN}\n[[route53]]\nzone = \"myapp.com\"\nrecord = \"www.myapp.com\"\nblue = \"b\"\ngreen = \"g\"\nrole_arn = \"{NET}\"\n"
        ))
        .unwrap_err();
        assert!(err.contains("route53[1].role_arn") && err.contains("same role"), "{err}");
        let err = parse(&format!(
            "{MIN}\n[rollout]\nsafety_net = true\n\n[[gate]]\ntype = \"alarm\"\nalarms = [\"a\"]\nrole_arn = \"{NET}\"\n"
        ))
        .unwrap_err();
        assert!(err.contains("gate[0].role_arn") && err.contains("safety_net"), "{err}");
    }

    #[test]
    fn unknown_key_names_file_and_path() {
        let err = parse(&format!("{MIN}\n[rollout]\nstagez = [1]\n")).unwrap_err();
        assert!(err.contains("profiles/t.toml"), "{err}");
        assert!(err.contains("rollout"), "{err}");
        assert!(err.contains("stagez"), "{err}");
    }

    #[test]
    fn stages_must_ascend_and_end_at_100() {
        let err = parse(&format!("{MIN}\n[rollout]\nstages = [10, 50, 25, 100]\n")).unwrap_err();
        assert!(err.contains("rollout.stages[2]") && err.contains("ascending"), "{err}");
        let err = parse(&format!("{MIN}\n[rollout]\nstages = [10, 50]\n")).unwrap_err();
        assert!(err.contains("rollout.stages[1]") && err.contains("100"), "{err}");
        let err = parse(&format!("{MIN}\n[rollout]\nstages = [10, 150]\n")).unwrap_err();
        assert!(err.contains("rollout.stages[1]") && err.contains("outside"), "{err}");
        let p = parse(&format!("{MIN}\n[rollout]\nstages = [0.5, 10, 100]\n")).unwrap();
        assert_eq!(p.rollout.stages[0].to_string(), "0.5");
    }

    #[test]
    fn gate_fields_are_checked_per_type() {
        let err = parse(&format!("{MIN}\n[[gate]]\ntype = \"alarm\"\nalarm = [\"x\"]\n")).unwrap_err();
        assert!(err.contains("gate[0]") && err.contains("alarm"), "{err}");
        let err = parse(&format!("{MIN}\n[[gate]]\ntype = \"nope\"\n")).unwrap_err();
        assert!(err.contains("gate[0]") && err.contains("nope"), "{err}");
        let err = parse(&format!("{MIN}\n[[gate]]\ntype = \"http\"\nurl = \"ftp://x\"\n")).unwrap_err();
        assert!(err.contains("gate[0].url"), "{err}");
        let p = parse(&format!(
            "{MIN}\n[[gate]]\ntype = \"webhook\"\nurl = \"https://h/confirm\"\n[[gate]]\ntype = \"target-health\"\n"
        ))
        .unwrap();
        assert_eq!(p.gates[0].name, "webhook#1");
        assert_eq!(p.gates[1].kind, GateKind::TargetHealth { min_healthy: 1.0 });
    }

    #[test]
    fn observe_min_requests_and_the_safety_net_are_checked_where_they_are_written() {
        let p = parse(&format!("{MIN}\n[observe]\n")).unwrap();
        assert_eq!(p.observe, Some(Observe { tolerance: 5.0, window: Duration::from_secs(60) }));
        let err = parse(&format!("{MIN}\n[observe]\ntolerance = 0\n")).unwrap_err();
        assert!(err.contains("observe.tolerance") && err.contains("hint:"), "{err}");
        let err = parse(&format!("{MIN}\n[observe]\nwindow = \"30s\"\n")).unwrap_err();
        assert!(err.contains("observe.window") && err.contains("1m"), "{err}");

        let alarm = "[[gate]]\ntype = \"alarm\"\nalarms = [\"a-{side}\"]\n";
        let p = parse(&format!("{MIN}\n{alarm}min_requests = 50\n")).unwrap();
        let want = MinRequests { count: 50, window: Duration::from_secs(300) };
        assert_eq!(p.gates[0].min_requests, Some(want));
        let err = parse(&format!("{MIN}\n{alarm}min_requests = 0\n")).unwrap_err();
        assert!(err.contains("gate[0].min_requests"), "{err}");
        // Only gates that can read "no data" take it.
        let err = parse(&format!("{MIN}\n[[gate]]\ntype = \"target-health\"\nmin_requests = 5\n")).unwrap_err();
        assert!(err.contains("gate[0]") && err.contains("min_requests"), "{err}");

        let err = parse(&format!("{MIN}\n[rollout]\nsafety_net = true\n")).unwrap_err();
        assert!(err.contains("rollout.safety_net") && err.contains("alarm gate"), "{err}");
        let alb = "[[alb]]\nlistener = \"front:80\"\nblue = \"a\"\ngreen = \"b\"\n";
        let err = parse(&format!("{alb}[rollout]\nsafety_net = true\n{alarm}")).unwrap_err();
        assert!(err.contains("rollout.safety_net") && err.contains("[[route53]]"), "{err}");
        let p = parse(&format!("{MIN}\n[rollout]\nsafety_net = true\ndns_ttl = \"5s\"\n{alarm}")).unwrap();
        assert!(p.safety_net);
        assert_eq!(p.dns_ttl, Some(Duration::from_secs(5)));
    }

    #[test]
    fn profile_errors_read_as_they_are_snapshotted() {
        let errors = [
            format!("{MIN}\n[rollout]\nstages = [10, 50, 25, 100]\n"),
            format!("{MIN}\n[rollout]\nbake = \"five minutes\"\n"),
            format!("{MIN}\n[observe]\ntolerance = 0\n"),
            format!("{MIN}\n[rollout]\nsafety_net = true\n"),
            "[[route53]]\nzone = \"a.com\"\nrecord = \"api.b.com\"\nblue = \"b\"\ngreen = \"g\"\n".to_string(),
        ]
        .map(|text| parse(&text).unwrap_err())
        .join("\n---\n");
        insta::assert_snapshot!(errors);
    }

    #[test]
    fn bad_durations_name_their_key() {
        let err = parse(&format!("{MIN}\n[rollout]\nbake = \"five minutes\"\n")).unwrap_err();
        assert!(err.contains("rollout.bake") && err.contains("hint:"), "{err}");
    }

    #[test]
    fn a_profile_needs_a_route() {
        let err = parse("description = \"x\"\n").unwrap_err();
        assert!(err.contains("no routes"), "{err}");
    }

    #[test]
    fn alb_routes_need_listener_arns() {
        let err = parse("[[alb]]\nlistener = \"front\"\nblue = \"a\"\ngreen = \"b\"\n").unwrap_err();
        assert!(err.contains("alb[0].listener"), "{err}");
        let ok = parse(
            "[[alb]]\nlistener = \"arn:aws:elasticloadbalancing:us-west-2:1:listener/app/f/1/2\"\nblue = \"a\"\ngreen = \"b\"\n",
        )
        .unwrap();
        assert_eq!(ok.alb[0].rule, RuleRef::Default);
    }

    #[test]
    fn syntax_errors_say_the_line() {
        let err = parse("[[route53]]\nzone = \n").unwrap_err();
        assert!(err.contains("line 2"), "{err}");
    }

    #[test]
    fn record_outside_zone_is_refused() {
        let err =
            parse("[[route53]]\nzone = \"a.com\"\nrecord = \"api.b.com\"\nblue = \"b\"\ngreen = \"g\"\n").unwrap_err();
        assert!(err.contains("route53[0].record"), "{err}");
    }
}
