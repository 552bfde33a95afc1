//! Health gates: what decides whether traffic may move on to the candidate.
//!
//! Every reading is **pass**, **fail** or **wait**. A gate kind is one file behind
//! [`kind::GateKind`] — its `[[gate]]` table, its checks, its reading and its IAM — listed once in
//! the registry below. [`Gate`] is a `[[gate]]` table checked; [`Gates`] holds the profile's gates,
//! reads them all at once (each kind's together, the kinds in parallel) and hands the readings to
//! the engine. `{side}` in any of a gate's strings is replaced by the candidate side before it is
//! read.

pub mod alarm;
pub mod freeze;
pub mod health_check;
pub mod http;
pub mod judge;
pub mod kind;
pub mod metric;
pub mod target_health;
pub mod webhook;

use std::time::{Duration, SystemTime};

use toml::Spanned;
use toml::de::DeValue;

use crate::aws::Accounts;
use crate::error::Result;
use crate::iam::{Scope, Statement};
use crate::model::{Percent, Reading, Role, Side, Verdict};
use crate::observe::{Observe, Published, RequestCounts, Settled, judge, settled};
use crate::profile::fields::{Bad, Key, bad, bad_hint, role, section};
pub use crate::rollout::ports::GateContext;
use crate::splitter::RouteLive;
use kind::{Env, GateCheck, GateKind};
pub use kind::{MinRequests, redact_url, substitute};

/// The registry: every gate kind, one line each — `Variant => kind type`.
macro_rules! gate_kinds {
    ($($Variant:ident => $Kind:ty),+ $(,)?) => {
        /// A gate's kind and its settings, checked.
        #[derive(Clone, Debug, PartialEq)]
        pub enum GateSpec {
            $($Variant(<$Kind as GateKind>::Spec),)+
        }

        /// Every gate kind's reader.
        enum AnyGate {
            $($Variant(<$Kind as GateKind>::Reader),)+
        }

        /// The gate kinds' `type`s.
        pub const TYPES: &[&str] = &[$(<$Kind as GateKind>::TYPE),+];

        impl GateSpec {
            /// `type = "…"`.
            pub fn type_name(&self) -> &'static str {
                match self {
                    $(GateSpec::$Variant(_) => <$Kind as GateKind>::TYPE,)+
                }
            }

            /// What the gate will do, in one line for `validate`.
            pub fn describe(&self) -> Option<String> {
                match self {
                    $(GateSpec::$Variant(s) => <$Kind>::describe(s),)+
                }
            }

            fn reader(&self, env: &Env<'_>) -> AnyGate {
                match self {
                    $(GateSpec::$Variant(s) => AnyGate::$Variant(<$Kind>::reader(s, env)),)+
                }
            }

            /// The IAM statements of the gate's reads in the account of `scope`.
            pub fn policy(&self, role: Option<&Role>, scope: &Scope<'_>) -> Vec<Statement> {
                match self {
                    $(GateSpec::$Variant(s) => <$Kind>::policy(s, role, scope),)+
                }
            }

            /// Checks the rest of a `[[gate]]` table of `type_name`; `Ok(None)` for no such type.
            /// The kinds that call no AWS API are told by `aws`.
            fn check(
                type_name: &str,
                rest: Spanned<DeValue<'_>>,
                at: &Key,
                text: &str,
            ) -> std::result::Result<Option<(GateSpec, Option<MinRequests>, bool)>, Bad> {
                $(
                    if type_name == <$Kind as GateKind>::TYPE {
                        let raw = section::<<$Kind as GateKind>::Section>(rest, at, text)?;
                        let checked = <$Kind>::check(raw, at)?;
                        return Ok(Some((GateSpec::$Variant(checked.spec), checked.min_requests, <$Kind as GateKind>::AWS)));
                    }
                )+
                Ok(None)
            }

            /// Whether the kind calls AWS (and so takes `role_arn`).
            fn calls_aws(type_name: &str) -> bool {
                $(if type_name == <$Kind as GateKind>::TYPE { return <$Kind as GateKind>::AWS; })+
                false
            }
        }

        impl AnyGate {
            async fn preflight(&self, candidate: Side) -> Result<()> {
                match self {
                    $(AnyGate::$Variant(g) => g.preflight(candidate).await,)+
                }
            }
        }

        /// Every gate, each kind's read together by the kind, in the gates' order.
        #[allow(non_snake_case)]
        async fn read_each(gates: &[AnyGate], ctx: &GateContext) -> Vec<Reading> {
            let ($($Variant,)+) = tokio::join!($(async {
                #[allow(unreachable_patterns)]
                let mine: Vec<(usize, &<$Kind as GateKind>::Reader)> = gates
                    .iter()
                    .enumerate()
                    .filter_map(|(i, g)| match g { AnyGate::$Variant(r) => Some((i, r)), _ => None })
                    .collect();
                if mine.is_empty() {
                    return Vec::new();
                }
                let readers: Vec<&<$Kind as GateKind>::Reader> = mine.iter().map(|(_, r)| *r).collect();
                let readings = <$Kind>::read_all(&readers, ctx).await;
                mine.into_iter().map(|(i, _)| i).zip(readings).collect::<Vec<(usize, Reading)>>()
            }),+);
            let mut all: Vec<(usize, Reading)> = Vec::new();
            $(all.extend($Variant);)+
            all.sort_by_key(|(i, _)| *i);
            all.into_iter().map(|(_, r)| r).collect()
        }
    };
}

gate_kinds! {
    TargetHealth => target_health::Kind,
    Alarm => alarm::Kind,
    Metric => metric::Kind,
    HealthCheck => health_check::Kind,
    Http => http::Kind,
    Webhook => webhook::Kind,
    Freeze => freeze::Kind,
    Judge => judge::Kind,
}

/// A health gate, as the profile gives it, checked.
#[derive(Clone, Debug, PartialEq)]
pub struct Gate {
    /// A label for output: the `name` key, or the gate's type and position (`alarm#2`).
    pub name: String,
    pub spec: GateSpec,
    /// When "no data" counts as a pass, for the kinds that can read no data.
    pub min_requests: Option<MinRequests>,
    /// The role the gate reads with. A target-health gate without one reads each route's target
    /// groups with that route's load balancers' role.
    pub role: Option<Role>,
    /// `shadow = true`: read, reported and audited, never acted on.
    pub shadow: bool,
}

impl Gate {
    /// Checks the `[[gate]]` table at position `i` of the profile `text`: its `type` picks the
    /// kind; `name` (and, for kinds that call AWS, `role_arn` and `external_id`) are every
    /// kind's; the rest is the kind's own.
    pub fn parse(i: usize, value: Spanned<DeValue<'_>>, text: &str) -> std::result::Result<Gate, Bad> {
        let at = Key::new(format!("gate[{i}]"));
        let span = value.span();
        let DeValue::Table(mut table) = value.into_inner() else {
            return Err(bad(at.path(), "a [[gate]] must be a table"));
        };
        let field = |table: &mut toml::de::DeTable<'_>, name: &str| -> std::result::Result<Option<String>, Bad> {
            table.remove(name).map(|v| section::<String>(v, &Key::new(at.at(name)), text)).transpose()
        };
        let Some(type_name) = field(&mut table, "type")? else {
            return Err(bad_hint(
                at.path(),
                "missing field `type`",
                format!("one of {}", TYPES.iter().map(|t| format!("\"{t}\"")).collect::<Vec<_>>().join(", ")),
            ));
        };
        let label = field(&mut table, "name")?;
        let shadow = match table.remove("shadow") {
            Some(v) => section::<bool>(v, &Key::new(at.at("shadow")), text)?,
            None => false,
        };
        let role = if GateSpec::calls_aws(&type_name) {
            let arn = field(&mut table, "role_arn")?;
            let external_id = field(&mut table, "external_id")?;
            role(&at, arn, external_id)?
        } else {
            None
        };
        let rest = Spanned::new(span, DeValue::Table(table));
        let Some((spec, min_requests, _)) = GateSpec::check(&type_name, rest, &at, text)? else {
            return Err(bad(
                at.path(),
                format!(
                    "unknown variant `{type_name}`, expected one of {}",
                    TYPES.iter().map(|t| format!("`{t}`")).collect::<Vec<_>>().join(", ")
                ),
            ));
        };
        let name = label.unwrap_or_else(|| format!("{}#{}", spec.type_name(), i + 1));
        Ok(Gate { name, spec, min_requests, role, shadow })
    }
}

/// The gates of one profile, ready to read, and what tells them whether the candidate has
/// traffic: its request counts (for `min_requests`) and the observed split (`[observe]`).
pub struct Gates {
    gates: Vec<AnyGate>,
    /// Per gate: when "no data" means "no errors" (`min_requests`).
    min_requests: Vec<Option<MinRequests>>,
    /// Per gate: a shadow's readings are marked so, never acted on.
    shadow: Vec<bool>,
    observe: Option<Observe>,
    /// Request counts of every route's sides; read only when `[observe]` or a silent gate with
    /// `min_requests` needs them.
    requests: RequestCounts,
    /// How long after a minute ends its counts are read as final (`[observe] settle`).
    settle: Duration,
    /// How long clients that find the candidate through DNS may keep an answer from before a
    /// shift: the observation skips the minutes before.
    dns_lag: Duration,
    /// `--override-freeze REASON`: a frozen reading lets the move through.
    override_freeze: Option<String>,
}

impl Gates {
    /// Builds the profile's gates. `routes` (as read) tell them where the candidate's target
    /// groups and load balancers are; a gate with a role reads with it. `dns_ttl`: the profile's
    /// `[rollout] dns_ttl`, how long clients really keep a DNS answer (else the records' TTL).
    pub fn new(
        aws: &Accounts,
        gates: &[Gate],
        observe: Option<Observe>,
        routes: &[RouteLive],
        dns_ttl: Option<Duration>,
    ) -> Gates {
        // Redirects are answers, never followed (`kind::redirect_of`).
        let http = reqwest::Client::builder()
            .user_agent(concat!("cutover/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default();
        let settle = observe.map(|o| o.settle).unwrap_or(crate::observe::DEFAULT_SETTLE);
        let readers = gates
            .iter()
            .map(|g| g.spec.reader(&Env { name: &g.name, role: g.role.as_ref(), aws, routes, http: &http, settle }))
            .collect();
        Gates {
            gates: readers,
            min_requests: gates.iter().map(|g| g.min_requests).collect(),
            shadow: gates.iter().map(|g| g.shadow).collect(),
            observe,
            requests: RequestCounts::new(aws, routes),
            settle,
            dns_lag: dns_lag(routes, dns_ttl),
            override_freeze: None,
        }
    }

    /// With `--override-freeze REASON`: calendars that forbid the move are overridden.
    pub fn overriding_freeze(self, reason: Option<String>) -> Gates {
        Gates { override_freeze: reason, ..self }
    }

    /// Frozen readings let through, when the command overrides the freeze; a move toward the
    /// stable side is never frozen (`toward_stable`).
    pub fn thaw(&self, readings: Vec<Reading>, toward_stable: bool) -> Vec<Reading> {
        readings
            .into_iter()
            .map(|r| match (&self.override_freeze, r.verdict) {
                (Some(reason), Verdict::Frozen) => Reading::new(
                    &r.gate,
                    Verdict::Pass,
                    format!("{} — overridden (--override-freeze: {reason})", r.detail),
                ),
                (None, Verdict::Frozen) if toward_stable => Reading::new(
                    &r.gate,
                    Verdict::Pass,
                    format!("{} — a move toward the stable side is never frozen", r.detail),
                ),
                _ => r,
            })
            .collect()
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
        // The candidate's requests in the settled minutes of the gate's window since the stage
        // began: a minute holding requests from before the stage does not count.
        let minutes = match settled(SystemTime::now(), self.settle, min.window, stage_start(ctx)) {
            Settled::Minutes(m) => m,
            Settled::Pending { first, at } => {
                let why = Settled::pending_detail(first, at);
                return Reading::pending(&reading.gate, format!("{}; min_requests {why}", reading.detail));
            }
        };
        let over = format!("in {} UTC", minutes.label());
        match self.requests.total(ctx.candidate, &minutes).await {
            Ok(Some(n)) if n >= min.count as f64 => Reading::new(
                &reading.gate,
                Verdict::Pass,
                format!(
                    "{}, with {n} requests to {} {over} (min_requests {}): no errors reported",
                    reading.detail, ctx.candidate, min.count
                ),
            ),
            Ok(Some(n)) => Reading::no_data(
                &reading.gate,
                format!(
                    "{}, and only {n} of min_requests {} requests reached {} {over}",
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
    ///
    /// Only settled minutes that began after the shift count — and, where clients find the
    /// candidate through DNS, after the records' TTL too (resolvers answer from before until it
    /// ends). Until such a minute is settled the reading is pending.
    async fn observation(&self, ctx: &GateContext) -> Option<Reading> {
        let observe = self.observe?;
        let from = stage_start(ctx).map(|t| t + self.dns_lag);
        Some(match self.requests.published(SystemTime::now(), observe.settle, observe.window, from).await {
            Ok(Published::Counted { minutes, counted }) => {
                judge(&counted, ctx.candidate, ctx.current_percent, observe.tolerance, &minutes)
            }
            Ok(Published::Pending { first, absent_at }) => {
                Reading::pending(crate::observe::OBSERVE, Published::pending_detail(first, absent_at))
            }
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
        if counts {
            let sides: &[Side] = if self.observe.is_some() { &Side::ALL } else { &[candidate] };
            self.requests.preflight(sides).await?;
        }
        for g in &self.gates {
            g.preflight(candidate).await?;
        }
        Ok(())
    }
}

/// All gates at once, in parallel: the rollout core's gate port.
impl crate::rollout::ports::Gates for Gates {
    async fn read(&self, ctx: &GateContext) -> Vec<Reading> {
        let gates = async {
            let readings = self.thaw(read_each(&self.gates, ctx).await, false);
            let readings = futures::future::join_all(
                readings.into_iter().zip(&self.min_requests).map(|(reading, min)| self.silence(reading, *min, ctx)),
            )
            .await;
            readings
                .into_iter()
                .zip(&self.shadow)
                .map(|(r, shadow)| Reading { shadow: *shadow, ..r })
                .collect::<Vec<_>>()
        };
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

/// How long clients that reach a side through DNS may keep an answer from before a shift: the
/// longest TTL of the routes counted at the load balancer a record aliases (`dns_ttl` when the
/// profile says how long clients really keep one); none when no route is steered by DNS.
fn dns_lag(routes: &[RouteLive], dns_ttl: Option<Duration>) -> Duration {
    let dns = routes.iter().filter(|r| {
        Side::ALL.iter().any(|s| matches!(r.request_source(*s), Some(crate::splitter::RequestSource::Alias { .. })))
    });
    let ttl = dns.filter_map(|r| r.dns_ttl()).max().unwrap_or_default();
    if ttl.is_zero() { ttl } else { dns_ttl.unwrap_or(ttl) }
}
