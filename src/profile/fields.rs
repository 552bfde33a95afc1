//! What every profile section is checked with: a failure tied to its key path ([`Bad`]), key
//! paths ([`Key`]), the serde reading of one table with its path and line ([`section`]), and the
//! checks of values many sections share — durations, URLs, roles, DNS names.
//!
//! A leaf: the gate and splitter kinds check their own tables with it, and the profile (which
//! asks their registries) ties a [`Bad`] to the file.

use std::time::Duration;

use serde::de::DeserializeOwned;
use toml::Spanned;
use toml::de::DeValue;

use crate::model::Role;

/// A validation failure before it is tied to a file: the key path, what is wrong, and a hint.
#[derive(Debug)]
pub struct Bad {
    pub key: String,
    pub message: String,
    pub hint: Option<String>,
}

pub fn bad(key: impl Into<String>, message: impl Into<String>) -> Bad {
    Bad { key: key.into(), message: message.into(), hint: None }
}

pub fn bad_hint(key: impl Into<String>, message: impl Into<String>, hint: impl Into<String>) -> Bad {
    Bad { key: key.into(), message: message.into(), hint: Some(hint.into()) }
}

/// Where a table is in the profile (`gate[2]`, `route53[0]`), and so the paths of its keys.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Key(String);

impl Key {
    pub fn new(path: impl Into<String>) -> Key {
        Key(path.into())
    }

    /// The path of the table's key `name`: `gate[2].window`.
    pub fn at(&self, name: &str) -> String {
        if self.0.is_empty() { name.to_string() } else { format!("{}.{name}", self.0) }
    }

    /// The table's own path.
    pub fn path(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Reads one table (or array of tables) of the profile `text` as serde reads it, with
/// `deny_unknown_fields` as the type says: an error names the key path under `at` and the line.
pub fn section<T: DeserializeOwned>(value: Spanned<DeValue<'_>>, at: &Key, text: &str) -> Result<T, Bad> {
    let de = toml::de::ValueDeserializer::from(value);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let inner = e.path().to_string();
        let key = match inner.as_str() {
            "" | "." => at.path().to_string(),
            p if p.starts_with('[') => format!("{}{p}", at.path()),
            p => at.at(p),
        };
        bad(key, toml_message(e.inner(), text))
    })
}

/// A toml error as one readable message, with the line when the parser knows it.
pub fn toml_message(e: &toml::de::Error, text: &str) -> String {
    let msg = e.message().trim().to_string();
    match e.span() {
        Some(span) => {
            let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
            format!("{msg} (line {line})")
        }
        None => msg,
    }
}

/// The shortest and the longest a duration key may be: every duration of a profile is bounded, so
/// none can wrap a clock, overflow an instant or a cast, or make a wait that never ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bounds {
    pub min: Duration,
    pub max: Duration,
}

const fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

const fn within(min: Duration, max: Duration) -> Bounds {
    Bounds { min, max }
}

const DAY: u64 = 86_400;

/// `[rollout] bake`: 0 – 7 days.
pub const BAKE: Bounds = within(Duration::ZERO, secs(7 * DAY));
/// A `[[wave]]`'s `bake_after`: 0 – 14 days (Amazon bakes 12 hours after its first region).
pub const WAVE_BAKE: Bounds = within(Duration::ZERO, secs(14 * DAY));
/// `[rollout] poll`: 10 ms – 1 hour.
pub const POLL: Bounds = within(Duration::from_millis(10), secs(3600));
/// `[rollout] max_hold`: 0 – 7 days.
pub const MAX_HOLD: Bounds = within(Duration::ZERO, secs(7 * DAY));
/// `[rollout] dns_ttl`: 0 – 2 days (Route53's own TTLs reach 68 years; no client keeps one that long).
pub const DNS_TTL: Bounds = within(Duration::ZERO, secs(2 * DAY));
/// `[observe] window`: 1 minute (ALB request counts are per minute) – 1 day.
pub const OBSERVE_WINDOW: Bounds = within(secs(60), secs(DAY));
/// `[observe] settle`: 0 – 1 hour (AWS's ALB metrics are commonly 1–3 minutes late).
pub const SETTLE: Bounds = within(Duration::ZERO, secs(3600));
/// A `judge` gate's `warmup`: 0 – 1 hour.
pub const WARMUP: Bounds = within(Duration::ZERO, secs(3600));
/// A `judge` gate's `latency.slo`: 1 ms – 1 minute.
pub const SLO: Bounds = within(Duration::from_millis(1), secs(60));
/// A `freeze` window's `duration`: 1 minute – 366 days.
pub const FREEZE_WINDOW: Bounds = within(secs(60), secs(366 * DAY));
/// `[state] lease`: 1 second – 1 hour (a run renews it while it drives).
pub const LEASE: Bounds = within(secs(1), crate::rollout::record::MAX_LEASE);
/// `http` and `webhook` gates' `timeout`: 100 ms – 5 minutes.
pub const TIMEOUT: Bounds = within(Duration::from_millis(100), secs(300));
/// A `metric` gate's `period`: 1 second – 1 day (and one CloudWatch accepts).
pub const PERIOD: Bounds = within(secs(1), secs(DAY));
/// A `metric` gate's `window`: 1 second – 1 day.
pub const WINDOW: Bounds = within(secs(1), secs(DAY));
/// An `alarm` gate's `window` (its request count's, ALB counts are per minute): 1 minute – 1 day.
pub const REQUEST_WINDOW: Bounds = within(secs(60), secs(DAY));

/// A duration key, within `bounds`.
pub fn duration(key: &str, value: &str, bounds: Bounds) -> Result<Duration, Bad> {
    let d = humantime::parse_duration(value.trim()).map_err(|e| {
        bad_hint(
            key,
            format!("`{value}` is not a duration ({e})"),
            "write durations like \"30s\", \"5m\" or \"1h 30m\"",
        )
    })?;
    if d < bounds.min || d > bounds.max {
        let show = |d: Duration| if d.is_zero() { "0s".to_string() } else { humantime::format_duration(d).to_string() };
        return Err(bad_hint(
            key,
            format!("`{value}` is outside {} – {}", show(bounds.min), show(bounds.max)),
            format!("a duration from {} to {}", show(bounds.min), show(bounds.max)),
        ));
    }
    Ok(d)
}

/// A number that must be finite (not NaN, not infinite).
pub fn finite(key: &str, value: f64) -> Result<f64, Bad> {
    if value.is_finite() { Ok(value) } else { Err(bad(key, format!("{value} is not a finite number"))) }
}

pub fn non_empty(key: &str, value: &str) -> Result<(), Bad> {
    if value.trim().is_empty() { Err(bad(key, "must not be empty")) } else { Ok(()) }
}

/// An `http://` or `https://` URL with a host, as it parses once `{side}` is each side.
pub fn http_url(key: &str, url: &str) -> Result<(), Bad> {
    let refuse = |why: String| bad_hint(key, why, "for example \"https://{side}.preprod.myapp.com/health\"");
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(refuse("must be an http:// or https:// URL".into()));
    }
    for side in ["blue", "green"] {
        let parsed =
            reqwest::Url::parse(&url.replace("{side}", side)).map_err(|e| refuse(format!("is not a URL ({e})")))?;
        if parsed.host_str().is_none_or(str::is_empty) {
            return Err(refuse("names no host".into()));
        }
    }
    Ok(())
}

/// A DNS name as Route53 takes it: at most 253 bytes without the final dot (255 octets on the
/// wire), labels of 1–63 bytes, printable ASCII (Route53 writes other bytes as `\ooo` escapes).
pub fn dns_name(key: &str, name: &str) -> Result<(), Bad> {
    let n = name.trim().trim_end_matches('.');
    let refuse = |why: String| bad_hint(key, why, "a DNS name such as \"api.myapp.com.\"");
    if n.is_empty() {
        return Err(refuse("is not a DNS name".into()));
    }
    if n.len() > 253 {
        return Err(refuse(format!("is {} bytes long: a DNS name has at most 253", n.len())));
    }
    if let Some(label) = n.split('.').find(|l| l.is_empty() || l.len() > 63) {
        return Err(refuse(if label.is_empty() {
            "has an empty label (two dots in a row)".into()
        } else {
            format!("has a label of {} bytes: at most 63", label.len())
        }));
    }
    if let Some(c) = n.chars().find(|c| !c.is_ascii_graphic()) {
        return Err(refuse(format!("holds `{}`, which is not printable ASCII", c.escape_default())));
    }
    Ok(())
}

/// Whether `name` can be an AWS region (`us-west-2`): lower-case letters, digits and `-`, at most 32.
pub fn region_name(name: &str) -> bool {
    (1..=32).contains(&name.len()) && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// `role_arn` and `external_id` of the table at `at`: an IAM role ARN, and the external id
/// AssumeRole accepts (2–1224 characters of letters, digits and `+=,.@:/-`), only with a role.
pub fn role(at: &Key, arn: Option<String>, external_id: Option<String>) -> Result<Option<Role>, Bad> {
    let Some(arn) = arn.map(|a| a.trim().to_string()) else {
        return match external_id {
            Some(_) => Err(bad_hint(
                at.at("external_id"),
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
        && parts[5].strip_prefix("role/").is_some_and(role_path_and_name);
    if !well_formed {
        return Err(bad_hint(
            at.at("role_arn"),
            format!("`{arn}` is not an IAM role ARN"),
            "arn:aws:iam::ACCOUNT:role/NAME, e.g. \"arn:aws:iam::111122223333:role/cutover\"",
        ));
    }
    if let Some(id) = &external_id {
        let ok =
            (2..=1224).contains(&id.len()) && id.chars().all(|c| c.is_ascii_alphanumeric() || "_+=,.@:/-".contains(c));
        if !ok {
            return Err(bad_hint(
                at.at("external_id"),
                "is not an external id STS accepts",
                "2–1224 characters of letters, digits and _+=,.@:/-",
            ));
        }
    }
    Ok(Some(Role { arn, external_id }))
}

/// `[/path/]name` of a role ARN in IAM's characters: each part letters, digits and `+=,.@_-`, the
/// name at most 64 characters, the path at most 512.
fn role_path_and_name(rest: &str) -> bool {
    let iam = |part: &str| !part.is_empty() && part.chars().all(|c| c.is_ascii_alphanumeric() || "+=,.@_-".contains(c));
    let (path, name) = rest.rsplit_once('/').unwrap_or(("", rest));
    name.len() <= 64 && iam(name) && path.len() < 512 && (path.is_empty() || path.split('/').all(iam))
}

/// A DNS name as Route53 returns it: lower case, with a trailing dot.
pub fn fqdn(name: &str) -> String {
    let n = name.trim().to_ascii_lowercase();
    if n.ends_with('.') { n } else { format!("{n}.") }
}
