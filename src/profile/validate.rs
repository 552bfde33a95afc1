//! A profile checked whole, once, into a [`Profile`]: the file is parsed keeping every value's
//! place (so errors name the key path and the line), each splitter kind's table and each gate
//! are read and checked by their kinds, the profile's own sections here, and then what spans
//! sections (a profile has a route; every stage is told apart on every splitter; the safety net).

use std::path::Path;
use std::time::Duration;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::error::ProfileError;
use super::fields::{self, Bad, Key, bad, bad_hint, duration, http_url, non_empty, role, section, toml_message};
use super::raw::{KEYS, RawProfile, RawSide};
use super::{Profile, Rollout};
use crate::gates::Gate;
use crate::model::{Percent, Side};
use crate::notify::Notify;
use crate::observe::Observe;
use crate::sides::{EksSide, Sides};
use crate::splitter::{Routes, TABLES};
use crate::state::StateConfig;

impl Profile {
    /// Reads and validates the profile at `path`: a regular file of at most
    /// [`MAX_PROFILE_BYTES`](super::MAX_PROFILE_BYTES) of UTF-8 text.
    pub fn load(path: &Path) -> Result<Profile, ProfileError> {
        use std::io::Read;
        let read = |source| ProfileError::Read { path: path.to_path_buf(), source };
        let file = std::fs::File::open(path).map_err(read)?;
        // A device (`/dev/zero`), a pipe or a folder is no profile: refused before reading it.
        if !file.metadata().map_err(read)?.is_file() {
            return Err(read(std::io::Error::other("it is not a regular file")));
        }
        let mut bytes = Vec::new();
        file.take(super::MAX_PROFILE_BYTES + 1).read_to_end(&mut bytes).map_err(read)?;
        if bytes.len() as u64 > super::MAX_PROFILE_BYTES {
            return Err(super::too_big(path));
        }
        let text = String::from_utf8(bytes).map_err(|_| read(std::io::Error::other("it is not UTF-8 text")))?;
        Profile::parse(path, &text)
    }

    /// Parses and validates profile text; `path` is used for the name and in errors.
    pub fn parse(path: &Path, text: &str) -> Result<Profile, ProfileError> {
        let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("profile").to_string();
        checked(stem, path, text).map_err(|Bad { key, message, hint }| ProfileError::Invalid {
            path: path.to_path_buf(),
            key,
            message,
            hint,
        })
    }
}

/// Every top-level key the profile may have, in the order a message lists them.
fn known_keys() -> Vec<&'static str> {
    let mut keys = KEYS[..3].to_vec();
    keys.push("sides");
    keys.extend(TABLES);
    keys.extend(["rollout", "gate", "observe", "state", "notify"]);
    keys
}

fn checked(name: String, path: &Path, text: &str) -> Result<Profile, Bad> {
    let doc = DeTable::parse(text).map_err(|e| bad("", toml_message(&e, text)))?;
    let span = doc.span();
    let mut table = doc.into_inner();
    if let Some(key) = control_character(&table, "") {
        return Err(bad_hint(
            key,
            "holds a control character (an escape, a bell, a carriage return, …)",
            "profile text is printed on terminals and in logs: write it without control characters",
        ));
    }
    let known = known_keys();
    if let Some((key, _)) = table.iter().find(|(k, _)| !known.contains(&k.get_ref().as_ref())) {
        let line = text[..key.span().start.min(text.len())].matches('\n').count() + 1;
        return Err(bad(
            "",
            format!(
                "unknown field `{}`, expected one of {} (line {line})",
                key.get_ref(),
                known.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", ")
            ),
        ));
    }
    let routes = Routes::parse(&mut table, text)?;
    let gates = match table.remove("gate") {
        None => Vec::new(),
        Some(value) => {
            let span = value.span();
            match value.into_inner() {
                DeValue::Array(items) => {
                    items.into_iter().enumerate().map(|(i, g)| Gate::parse(i, g, text)).collect::<Result<_, _>>()?
                }
                other => {
                    let found = section::<Vec<toml::Value>>(Spanned::new(span, other), &Key::new("gate"), text);
                    return Err(found.err().unwrap_or_else(|| bad("gate", "must be an array of tables: [[gate]]")));
                }
            }
        }
    };
    let raw: RawProfile = section(Spanned::new(span, DeValue::Table(table)), &Key::new(""), text)?;
    raw.validate(name, path, routes, gates)
}

/// The key path of the first key or string of `table` (at `at`) holding a control character;
/// `description` may hold newlines and tabs.
fn control_character(table: &DeTable<'_>, at: &str) -> Option<String> {
    fn walk(value: &DeValue<'_>, at: &str, multiline: bool) -> Option<String> {
        match value {
            DeValue::String(s) => {
                s.chars().any(|c| c.is_control() && !(multiline && (c == '\n' || c == '\t'))).then(|| at.to_string())
            }
            DeValue::Array(items) => {
                items.iter().enumerate().find_map(|(i, v)| walk(v.get_ref(), &format!("{at}[{i}]"), false))
            }
            DeValue::Table(t) => control_character(t, at),
            _ => None,
        }
    }
    table.iter().find_map(|(k, v)| {
        let path = if at.is_empty() { k.get_ref().to_string() } else { format!("{at}.{}", k.get_ref()) };
        if k.get_ref().chars().any(char::is_control) {
            return Some(if at.is_empty() { String::new() } else { at.to_string() });
        }
        walk(v.get_ref(), &path, at.is_empty() && k.get_ref() == "description")
    })
}

/// `name`: the profile's identity in the state table (its partition key) and in the session
/// name of its roles — letters, digits, `.`, `_` and `-`, at most 64.
fn profile_name(name: &str) -> Result<String, Bad> {
    let ok = (1..=64).contains(&name.len()) && name.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
    if ok {
        Ok(name.to_string())
    } else {
        Err(bad_hint(
            "name",
            format!("`{name}` is not a profile name"),
            "1–64 letters, digits, `.`, `_` or `-`, e.g. name = \"myapp-prod\"",
        ))
    }
}

impl RawProfile {
    fn validate(self, stem: String, path: &Path, routes: Routes, gates: Vec<Gate>) -> Result<Profile, Bad> {
        let name = match &self.name {
            Some(n) => profile_name(n)?,
            None => stem,
        };
        if let Some(region) = &self.region {
            let ok = (1..=32).contains(&region.len())
                && region.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
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
                    Some(r) => role(&Key::new(format!("sides.{side}")), r.role_arn, r.external_id),
                    None => Ok(None),
                };
                let roles = [side_role("blue", s.blue)?, side_role("green", s.green)?];
                Sides { blue, green, roles }
            }
        };

        if routes.is_empty() {
            return Err(bad_hint(
                "",
                "the profile has no routes",
                format!(
                    "add a {} table naming the traffic split",
                    TABLES.iter().map(|t| format!("[[{t}]]")).collect::<Vec<_>>().join(" or an ")
                ),
            ));
        }

        let mut rollout = Rollout::default();
        let mut safety_net = false;
        let mut dns_ttl = None;
        if let Some(r) = self.rollout {
            safety_net = r.safety_net.unwrap_or(false);
            if let Some(t) = &r.dns_ttl {
                dns_ttl = Some(duration("rollout.dns_ttl", t, fields::DNS_TTL)?);
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
                for kind in routes.kinds() {
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
                rollout.bake = duration("rollout.bake", &b, fields::BAKE)?;
            }
            if let Some(p) = r.poll {
                rollout.poll = duration("rollout.poll", &p, fields::POLL)?;
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
                rollout.max_hold = duration("rollout.max_hold", &h, fields::MAX_HOLD)?;
            }
        }

        if safety_net {
            crate::safety_net::check(&routes, &gates)?;
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
                    Some(w) => duration("observe.window", w, fields::OBSERVE_WINDOW)?,
                    None => Duration::from_secs(60),
                };
                let settle = match &o.settle {
                    Some(w) => duration("observe.settle", w, fields::SETTLE)?,
                    None => crate::observe::DEFAULT_SETTLE,
                };
                Some(Observe { tolerance, window, settle })
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
                    Some(l) => duration("state.lease", l, fields::LEASE)?,
                    None => Duration::from_secs(60),
                };
                Some(StateConfig { table: s.table, lease })
            }
        };
        let notify = match self.notify {
            None => Notify::default(),
            Some(n) => {
                if let Some(arn) = &n.sns_topic_arn
                    && !(arn.starts_with("arn:") && arn.split(':').nth(2) == Some("sns") && arn.len() <= 1024)
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
            routes,
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
