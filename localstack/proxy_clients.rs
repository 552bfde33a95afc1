//! Simulated clients that follow the live configuration as AWS serves it, for the emulator kit.
//!
//! Each [`App`] is a population of clients sending `rate` requests a second:
//!
//! - **through DNS** (`Entry::Dns`): the clients share `resolvers`; each resolver caches one answer
//!   for the record's TTL (an alias answers with 60 s; `ttl` overrides), and a share of them
//!   (`overstay`) keeps it `overstay_for` instead — clients with pinned connections or caches that
//!   ignore TTLs. An expired resolver asks Route53, which answers as AWS documents: one record
//!   set, chosen by weight among the healthy ones with a weight (a set whose health check is
//!   unhealthy is left out; zero-weight sets only when every weighted one is unhealthy; every
//!   set, as if healthy, when none is). Answers are spread by smooth weighted round-robin, so the
//!   population's split follows the weights exactly, lagging by the TTL;
//! - **or straight at a load balancer** (`Entry::LoadBalancer`): other apps on a shared ALB.
//!
//! At the load balancer a request meets the listener (its port, or the lowest), the first rule by
//! priority whose `host-header` and `path-pattern` conditions match the app's host and path, else
//! the default action; a weighted forward action picks a target group by weight, or — stickiness
//! on — the client's target group while its binding lasts (stickiness wins over weights, as on
//! AWS). The target group's [`Backend`] (error rates and latency a test sets, changeable while
//! running) decides the answer. What the load balancer counts is what AWS publishes:
//! `AWS/ApplicationELB` `RequestCount`, `HTTPCode_Target_5XX_Count`, `HTTPCode_Target_2XX_Count`,
//! `TargetConnectionErrorCount` and `TargetResponseTime` under (`LoadBalancer`) and
//! (`TargetGroup`, `LoadBalancer`); `HTTPCode_ELB_5XX_Count` (and `_502_`/`_503_`) under
//! (`LoadBalancer`) only; an NLB's `NewFlowCount`, `ProcessedBytes` and `TCP_Target_Reset_Count`
//! in `AWS/NetworkELB` under (`LoadBalancer`), and no `RequestCount`. Zero is never published.
//!
//! The live configuration (record sets, load balancers, listeners, rules) is read from the
//! emulator every `refresh` of the kit's clock (at most every 250 ms real time); health from the
//! kit's Route53 health checks. Every request is also kept per second as ground truth
//! ([`Clients::served`]).

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use super::clock::{epoch, minute_of};
use super::metrics::{Counted, SeriesKey, Stats};
use super::route53::record_set;
use super::{child_text, encode};

/// How the clients reach the app.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Entry {
    /// They resolve `record` in hosted zone `zone_id` (type `rtype`, default A) and go to the load
    /// balancer the answer aliases.
    Dns {
        zone_id: String,
        record: String,
        #[serde(default = "a_record")]
        rtype: String,
    },
    /// They send to a load balancer they know (ARN or name).
    LoadBalancer { load_balancer: String },
}

fn a_record() -> String {
    "A".into()
}

/// One app's clients.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct App {
    pub name: String,
    pub entry: Entry,
    /// Requests a second, all clients together.
    pub rate: f64,
    /// The Host header (default: the record's name without its dot; for a load balancer, none).
    #[serde(default)]
    pub host: Option<String>,
    #[serde(default = "root")]
    pub path: String,
    /// The listener's port (default: the load balancer's lowest).
    #[serde(default)]
    pub port: Option<u16>,
    /// Distinct clients (for stickiness), spread over the resolvers.
    #[serde(default = "thousand")]
    pub clients: usize,
    #[serde(default = "hundred")]
    pub resolvers: usize,
    /// How long resolvers keep an answer (default: the record's TTL; an alias: 60 s).
    #[serde(default, with = "opt_secs")]
    pub ttl: Option<Duration>,
    /// Share of resolvers keeping answers `overstay_for` instead of the TTL.
    #[serde(default)]
    pub overstay: f64,
    #[serde(default = "ten_minutes", with = "secs")]
    pub overstay_for: Duration,
    /// How often the live configuration is read again (kit time).
    #[serde(default = "two_seconds", with = "secs")]
    pub refresh: Duration,
}

fn root() -> String {
    "/".into()
}
fn thousand() -> usize {
    1000
}
fn hundred() -> usize {
    100
}
fn ten_minutes() -> Duration {
    Duration::from_secs(600)
}
fn two_seconds() -> Duration {
    Duration::from_secs(2)
}

impl App {
    /// `rate` requests a second resolving `record` of zone `zone_id`.
    pub fn dns(name: &str, zone_id: &str, record: &str, rate: f64) -> App {
        App::new(name, Entry::Dns { zone_id: zone_id.into(), record: record.into(), rtype: a_record() }, rate)
    }

    /// `rate` requests a second straight at a load balancer (ARN or name).
    pub fn load_balancer(name: &str, load_balancer: &str, rate: f64) -> App {
        App::new(name, Entry::LoadBalancer { load_balancer: load_balancer.into() }, rate)
    }

    fn new(name: &str, entry: Entry, rate: f64) -> App {
        App {
            name: name.into(),
            entry,
            rate,
            host: None,
            path: root(),
            port: None,
            clients: thousand(),
            resolvers: hundred(),
            ttl: None,
            overstay: 0.0,
            overstay_for: ten_minutes(),
            refresh: two_seconds(),
        }
    }

    pub fn host(mut self, host: &str) -> App {
        self.host = Some(host.into());
        self
    }

    pub fn path(mut self, path: &str) -> App {
        self.path = path.into();
        self
    }

    pub fn ttl(mut self, ttl: Duration) -> App {
        self.ttl = Some(ttl);
        self
    }

    pub fn overstay(mut self, share: f64, for_: Duration) -> App {
        self.overstay = share;
        self.overstay_for = for_;
        self
    }

    pub fn resolvers(mut self, n: usize) -> App {
        self.resolvers = n.max(1);
        self
    }

    pub fn clients(mut self, n: usize) -> App {
        self.clients = n.max(1);
        self
    }

    pub fn refresh(mut self, every: Duration) -> App {
        self.refresh = every;
        self
    }
}

/// How a target group's targets answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Backend {
    /// Share of requests the targets answer with a 5xx.
    #[serde(default)]
    pub error_rate: f64,
    /// Share of requests the load balancer cannot connect for (it answers 502).
    #[serde(default)]
    pub connection_errors: f64,
    /// Each response's time, uniform in this range.
    #[serde(default = "latency_min", with = "secs")]
    pub latency_min: Duration,
    #[serde(default = "latency_max", with = "secs")]
    pub latency_max: Duration,
}

fn latency_min() -> Duration {
    Duration::from_millis(20)
}
fn latency_max() -> Duration {
    Duration::from_millis(60)
}

impl Default for Backend {
    fn default() -> Backend {
        Backend { error_rate: 0.0, connection_errors: 0.0, latency_min: latency_min(), latency_max: latency_max() }
    }
}

impl Backend {
    pub fn failing(error_rate: f64) -> Backend {
        Backend { error_rate, ..Backend::default() }
    }

    pub fn latency(mut self, min: Duration, max: Duration) -> Backend {
        self.latency_min = min;
        self.latency_max = max.max(min);
        self
    }
}

/// A Route53 record set as resolvers see it.
#[derive(Clone, Debug, PartialEq)]
pub struct RecordSet {
    pub id: Option<String>,
    pub weight: Option<i64>,
    /// The alias target's DNS name.
    pub alias: Option<String>,
    /// Else its first value (a CNAME to a load balancer is followed too).
    pub value: Option<String>,
    pub ttl: Option<u64>,
    pub health_check: Option<String>,
}

impl RecordSet {
    /// The name the answer sends clients to.
    fn target(&self) -> Option<&str> {
        self.alias.as_deref().or(self.value.as_deref())
    }
}

/// A forward action: target groups and weights, stickiness.
#[derive(Clone, Debug, PartialEq)]
pub struct Forward {
    /// Where the action is (listener or rule ARN): stickiness and round-robin are per action.
    pub key: String,
    pub groups: Vec<(String, i64)>,
    pub sticky: Option<Duration>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Rule {
    pub priority: i64,
    pub hosts: Vec<String>,
    pub paths: Vec<String>,
    pub forward: Option<Forward>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Listener {
    pub port: u16,
    pub default: Option<Forward>,
    pub rules: Vec<Rule>,
}

/// A load balancer as the clients meet it.
#[derive(Clone, Debug, PartialEq)]
pub struct LoadBalancer {
    pub arn: String,
    pub network: bool,
    pub listeners: Vec<Listener>,
}

impl LoadBalancer {
    /// Its `LoadBalancer` dimension: what follows `:loadbalancer/` in its ARN.
    pub fn dimension(&self) -> String {
        self.arn.split_once(":loadbalancer/").map(|(_, r)| r.to_string()).unwrap_or_else(|| self.arn.clone())
    }

    fn region(&self) -> String {
        self.arn.split(':').nth(3).unwrap_or("us-west-2").to_string()
    }
}

/// What an app's clients know of the live configuration.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct View {
    /// The record's sets (DNS entry).
    pub records: Vec<RecordSet>,
    /// Load balancers by DNS name (lower case, no dot, no `dualstack.`) and by ARN.
    pub by_dns: HashMap<String, String>,
    pub load_balancers: HashMap<String, LoadBalancer>,
    /// The load balancer of a `LoadBalancer` entry.
    pub direct: Option<String>,
}

struct Resolver {
    /// (the answer: the load balancer's DNS name, when it expires). An answer is what a resolver
    /// keeps: the record set may change or go meanwhile.
    answer: Option<(String, SystemTime)>,
    overstays: bool,
    answered: bool,
}

struct AppState {
    app: App,
    view: Option<View>,
    refreshed: Option<SystemTime>,
    resolvers: Vec<Resolver>,
    /// Smooth weighted round-robin state of Route53's answers, per record set.
    rr_sets: HashMap<String, f64>,
    /// And of weighted forward actions, per target group.
    rr_groups: HashMap<String, f64>,
    /// (client, forward action) → (target group, until).
    sticky: HashMap<(usize, String), (String, SystemTime)>,
    carry: f64,
    next_client: usize,
    /// Requests per kit second per destination (target group ARN, else load balancer ARN).
    served: BTreeMap<i64, HashMap<String, u64>>,
    until: Option<SystemTime>,
}

/// What the load balancers counted of one minute, at one load balancer and target group.
#[derive(Clone, Debug, Default)]
struct Counts {
    requests: f64,
    target_2xx: f64,
    target_5xx: f64,
    connection_errors: f64,
    elb_502: f64,
    elb_503: f64,
    latencies: Vec<f64>,
}

/// The clients of every app, their backends, and what they counted but not yet published.
pub struct Clients {
    apps: Vec<AppState>,
    backends: HashMap<String, Backend>,
    rng: fastrand::Rng,
    last: Option<SystemTime>,
    /// (minute, load balancer ARN, network, target group ARN) → counts.
    counts: HashMap<(i64, String, bool, Option<String>), Counts>,
}

impl Default for Clients {
    fn default() -> Clients {
        Clients::new(7)
    }
}

/// A configuration read the clients need: (app name, entry, load balancers it already knows).
pub struct Plan {
    pub app: String,
    pub entry: Entry,
}

impl Clients {
    pub fn new(seed: u64) -> Clients {
        Clients {
            apps: Vec::new(),
            backends: HashMap::new(),
            rng: fastrand::Rng::with_seed(seed),
            last: None,
            counts: HashMap::new(),
        }
    }

    /// Starts (or replaces) an app's clients, until `until` if given.
    pub fn start(&mut self, app: App, until: Option<SystemTime>) {
        self.apps.retain(|a| a.app.name != app.name);
        let n = app.resolvers.max(1);
        let overstaying = (app.overstay.clamp(0.0, 1.0) * n as f64).round() as usize;
        let resolvers =
            (0..n).map(|i| Resolver { answer: None, overstays: i < overstaying, answered: false }).collect();
        self.apps.push(AppState {
            app,
            view: None,
            refreshed: None,
            resolvers,
            rr_sets: HashMap::new(),
            rr_groups: HashMap::new(),
            sticky: HashMap::new(),
            carry: 0.0,
            next_client: 0,
            served: BTreeMap::new(),
            until,
        });
    }

    /// Stops an app's clients (all with `None`).
    pub fn stop(&mut self, name: Option<&str>) {
        self.apps.retain(|a| name.is_some_and(|n| a.app.name != n));
    }

    /// Changes an app's rate from now on.
    pub fn rate(&mut self, name: &str, rate: f64) {
        for a in self.apps.iter_mut().filter(|a| a.app.name == name) {
            a.app.rate = rate;
        }
    }

    /// How target group `target_group` (ARN, or name) answers from now on.
    pub fn backend(&mut self, target_group: &str, backend: Backend) {
        self.backends.insert(target_group.to_string(), backend);
    }

    pub fn is_empty(&self) -> bool {
        self.apps.is_empty()
    }

    /// The requests app `name` sent per destination (target group ARN, else load balancer ARN)
    /// in `[from, to)` of the kit's clock.
    pub fn served(&self, name: &str, from: SystemTime, to: SystemTime) -> BTreeMap<String, u64> {
        let mut out = BTreeMap::new();
        for a in self.apps.iter().filter(|a| a.app.name == name) {
            for (_, per) in a.served.range(epoch(from)..epoch(to)) {
                for (dest, n) in per {
                    *out.entry(dest.clone()).or_insert(0) += n;
                }
            }
        }
        out
    }

    /// The apps whose configuration is due to be read again at `now` (marked as read).
    pub fn due(&mut self, now: SystemTime, floor: Duration) -> Vec<Plan> {
        let mut plans = Vec::new();
        for a in &mut self.apps {
            let every = a.app.refresh.max(floor);
            if a.refreshed.is_none_or(|t| now.duration_since(t).unwrap_or_default() >= every) {
                a.refreshed = Some(now);
                plans.push(Plan { app: a.app.name.clone(), entry: a.app.entry.clone() });
            }
        }
        plans
    }

    pub fn install(&mut self, app: &str, view: View) {
        for a in self.apps.iter_mut().filter(|a| a.app.name == app) {
            a.view = Some(view.clone());
        }
    }

    /// The clients' requests up to `now`. `healthy` says a Route53 health check's status (`None`:
    /// not known to the kit — as healthy).
    pub fn advance(&mut self, now: SystemTime, healthy: &dyn Fn(&str) -> Option<bool>) {
        let last = self.last.replace(now).unwrap_or(now);
        let dt = now.duration_since(last).unwrap_or_default().as_secs_f64();
        self.apps.retain(|a| a.until.is_none_or(|u| now < u));
        let Clients { apps, backends, rng, counts, .. } = self;
        for a in apps.iter_mut() {
            let Some(view) = a.view.clone() else { continue };
            let want = a.app.rate.max(0.0) * dt + a.carry;
            let n = want.floor() as u64;
            a.carry = want - n as f64;
            for i in 0..n {
                let t = last + Duration::from_secs_f64(dt * (i as f64 + 0.5) / n as f64);
                let client = a.next_client % a.app.clients.max(1);
                a.next_client = a.next_client.wrapping_add(1);
                let Some(lb_arn) = a.load_balancer_for(client, t, &view, healthy) else { continue };
                let Some(lb) = view.load_balancers.get(&lb_arn) else { continue };
                let forward = a.forward_at(lb);
                let tg = forward.and_then(|f| a.target_group(client, t, f));
                let dest = tg.clone().unwrap_or_else(|| lb.arn.clone());
                *a.served.entry(epoch(t)).or_default().entry(dest).or_insert(0) += 1;
                let minute = epoch(minute_of(t));
                let c = counts.entry((minute, lb.arn.clone(), lb.network, tg.clone())).or_default();
                c.requests += 1.0;
                let Some(tg) = tg else {
                    if forward.is_some() {
                        // A forward action whose weights are all 0: the load balancer answers 503.
                        c.elb_503 += 1.0;
                    }
                    continue;
                };
                let backend = backend_of(backends, &tg);
                if rng.f64() < backend.connection_errors {
                    c.connection_errors += 1.0;
                    c.elb_502 += 1.0;
                } else if rng.f64() < backend.error_rate {
                    c.target_5xx += 1.0;
                    c.latencies.push(draw(rng, &backend));
                } else {
                    c.target_2xx += 1.0;
                    c.latencies.push(draw(rng, &backend));
                }
            }
            // Ground truth older than an hour of kit time is let go.
            let keep = epoch(now) - 3600;
            a.served = a.served.split_off(&keep);
        }
    }

    /// What the load balancers counted since the last call, as the datapoints AWS publishes:
    /// (series, minute, unit, samples); zero counts left out.
    pub fn take(&mut self, account: &str) -> Vec<Counted> {
        let mut out = Vec::new();
        for ((minute, lb, network, tg), c) in self.counts.drain() {
            let region = lb.split(':').nth(3).unwrap_or("us-west-2").to_string();
            let lb_dim = lb.split_once(":loadbalancer/").map(|(_, r)| r.to_string()).unwrap_or(lb.clone());
            let tg_dim = tg.as_ref().map(|t| t.rsplit(':').next().unwrap_or(t).to_string());
            let mut push = |namespace: &str, name: &str, per_tg: bool, unit: &'static str, stats: Stats| {
                if stats.count <= 0.0 {
                    return;
                }
                let key = SeriesKey::new(account, &region, namespace, name, &[("LoadBalancer", lb_dim.as_str())]);
                out.push((key, minute, unit, stats.clone()));
                if let (true, Some(tg)) = (per_tg, &tg_dim) {
                    let dims = [("LoadBalancer", lb_dim.as_str()), ("TargetGroup", tg.as_str())];
                    out.push((SeriesKey::new(account, &region, namespace, name, &dims), minute, unit, stats));
                }
            };
            let count = |n: f64| Stats::repeated(1.0, n);
            if network {
                let ns = "AWS/NetworkELB";
                push(ns, "NewFlowCount", false, "Count", count(c.requests));
                push(ns, "ProcessedBytes", false, "Bytes", Stats::repeated(1500.0, c.requests));
                push(ns, "TCP_Target_Reset_Count", false, "Count", count(c.target_5xx + c.connection_errors));
                continue;
            }
            let ns = "AWS/ApplicationELB";
            push(ns, "RequestCount", true, "Count", count(c.requests));
            push(ns, "HTTPCode_Target_2XX_Count", true, "Count", count(c.target_2xx));
            push(ns, "HTTPCode_Target_5XX_Count", true, "Count", count(c.target_5xx));
            push(ns, "TargetConnectionErrorCount", true, "Count", count(c.connection_errors));
            let mut times = Stats::empty();
            for l in &c.latencies {
                times.add(*l);
            }
            push(ns, "TargetResponseTime", true, "Seconds", times);
            push(ns, "HTTPCode_ELB_5XX_Count", false, "Count", count(c.elb_502 + c.elb_503));
            push(ns, "HTTPCode_ELB_502_Count", false, "Count", count(c.elb_502));
            push(ns, "HTTPCode_ELB_503_Count", false, "Count", count(c.elb_503));
        }
        out
    }
}

fn draw(rng: &mut fastrand::Rng, b: &Backend) -> f64 {
    let (lo, hi) = (b.latency_min.as_secs_f64(), b.latency_max.as_secs_f64().max(b.latency_min.as_secs_f64()));
    lo + (hi - lo) * rng.f64()
}

/// A target group's backend: by ARN, else by its name.
fn backend_of(backends: &HashMap<String, Backend>, tg: &str) -> Backend {
    if let Some(b) = backends.get(tg) {
        return b.clone();
    }
    let name = tg.split("targetgroup/").nth(1).and_then(|r| r.split('/').next()).unwrap_or(tg);
    backends.get(name).cloned().unwrap_or_default()
}

/// Picks by smooth weighted round-robin among `(key, weight)`; `None` when every weight is 0.
fn round_robin(state: &mut HashMap<String, f64>, pool: &[(String, f64)]) -> Option<usize> {
    let total: f64 = pool.iter().map(|(_, w)| w.max(0.0)).sum();
    if total <= 0.0 {
        return None;
    }
    let mut best: Option<(usize, f64)> = None;
    for (i, (k, w)) in pool.iter().enumerate() {
        let c = state.entry(k.clone()).or_insert(0.0);
        *c += w.max(0.0);
        if best.is_none_or(|(_, b)| *c > b) {
            best = Some((i, *c));
        }
    }
    let (i, _) = best?;
    *state.get_mut(&pool[i].0)? -= total;
    Some(i)
}

impl AppState {
    /// The load balancer a request of `client` at `t` reaches (resolving again when its
    /// resolver's answer has expired).
    fn load_balancer_for(
        &mut self,
        client: usize,
        t: SystemTime,
        view: &View,
        healthy: &dyn Fn(&str) -> Option<bool>,
    ) -> Option<String> {
        if let Some(direct) = &view.direct {
            return Some(direct.clone());
        }
        let r = client % self.resolvers.len().max(1);
        // A kept answer whose load balancer the record no longer names is asked again (as a
        // client whose connection fails would).
        let fresh = match &self.resolvers[r].answer {
            Some((dns, until)) if t < *until && view.by_dns.contains_key(dns) => Some(dns.clone()),
            _ => None,
        };
        let dns = match fresh {
            Some(dns) => dns,
            None => {
                let i = self.resolve(view, healthy)?;
                let ttl = self.app.ttl.unwrap_or_else(|| {
                    let set = &view.records[i];
                    match (&set.alias, set.ttl) {
                        (Some(_), _) | (None, None) => Duration::from_secs(60),
                        (None, Some(s)) => Duration::from_secs(s),
                    }
                });
                let n = self.resolvers.len().max(1);
                let resolver = &mut self.resolvers[r];
                let mut keep = if resolver.overstays { self.app.overstay_for.max(ttl) } else { ttl };
                if !resolver.answered {
                    // Resolvers did not all start at once: their first answers expire spread
                    // over the TTL.
                    keep = keep.mul_f64((r + 1) as f64 / n as f64);
                    resolver.answered = true;
                }
                let dns = bare_dns(view.records[i].target()?);
                resolver.answer = Some((dns.clone(), t + keep));
                dns
            }
        };
        view.by_dns.get(&dns).cloned()
    }

    /// Route53's answer for the record: one set, by weight among the healthy ones.
    fn resolve(&mut self, view: &View, healthy: &dyn Fn(&str) -> Option<bool>) -> Option<usize> {
        let sets = &view.records;
        if sets.len() == 1 && sets[0].weight.is_none() {
            return Some(0);
        }
        let is_healthy = |s: &RecordSet| s.health_check.as_deref().is_none_or(|id| healthy(id) != Some(false));
        let key = |i: usize| sets[i].id.clone().unwrap_or_else(|| i.to_string());
        let pool = |pred: &dyn Fn(&RecordSet) -> bool, zero: bool| -> Vec<(usize, f64)> {
            sets.iter()
                .enumerate()
                .filter(|(_, s)| pred(s))
                .filter(|(_, s)| (s.weight.unwrap_or(0) == 0) == zero)
                .map(|(i, s)| (i, if zero { 1.0 } else { s.weight.unwrap_or(0) as f64 }))
                .collect()
        };
        let mut candidates = pool(&is_healthy, false);
        if candidates.is_empty() {
            candidates = pool(&is_healthy, true);
        }
        if candidates.is_empty() {
            // Nothing healthy: Route53 answers as if every set were.
            candidates = pool(&|_| true, false);
            if candidates.is_empty() {
                candidates = pool(&|_| true, true);
            }
        }
        let keyed: Vec<(String, f64)> = candidates.iter().map(|(i, w)| (key(*i), *w)).collect();
        let pick = round_robin(&mut self.rr_sets, &keyed)?;
        Some(candidates[pick].0)
    }

    /// The forward action the app's requests meet at `lb`: the listener's first matching rule's,
    /// else its default.
    fn forward_at<'v>(&self, lb: &'v LoadBalancer) -> Option<&'v Forward> {
        let listener = match self.app.port {
            Some(p) => lb.listeners.iter().find(|l| l.port == p),
            None => lb.listeners.iter().min_by_key(|l| l.port),
        }?;
        let host = self.host();
        let mut rules: Vec<&Rule> = listener.rules.iter().collect();
        rules.sort_by_key(|r| r.priority);
        for rule in rules {
            let host_ok = rule.hosts.is_empty()
                || host
                    .as_deref()
                    .is_some_and(|h| rule.hosts.iter().any(|p| wildcard(&p.to_lowercase(), &h.to_lowercase())));
            let path_ok = rule.paths.is_empty() || rule.paths.iter().any(|p| wildcard(p, &self.app.path));
            if host_ok && path_ok && (!rule.hosts.is_empty() || !rule.paths.is_empty()) {
                return rule.forward.as_ref();
            }
        }
        listener.default.as_ref()
    }

    fn host(&self) -> Option<String> {
        self.app.host.clone().or_else(|| match &self.app.entry {
            Entry::Dns { record, .. } => Some(record.trim_end_matches('.').to_string()),
            Entry::LoadBalancer { .. } => None,
        })
    }

    /// The target group `client`'s request goes to: its sticky one while bound, else by weight.
    fn target_group(&mut self, client: usize, t: SystemTime, f: &Forward) -> Option<String> {
        let bind = (client, f.key.clone());
        if f.sticky.is_some()
            && let Some((tg, until)) = self.sticky.get(&bind)
            && t < *until
            && f.groups.iter().any(|(g, _)| g == tg)
        {
            return Some(tg.clone());
        }
        let pool: Vec<(String, f64)> = f.groups.iter().map(|(g, w)| (g.clone(), *w as f64)).collect();
        let i = round_robin(&mut self.rr_groups, &pool)?;
        let tg = f.groups[i].0.clone();
        if let Some(d) = f.sticky {
            self.sticky.insert(bind, (tg.clone(), t + d));
        }
        Some(tg)
    }
}

/// A DNS name as load balancers are looked up: lower case, no trailing dot, no `dualstack.`.
pub fn bare_dns(dns: &str) -> String {
    dns.trim().trim_end_matches('.').to_ascii_lowercase().trim_start_matches("dualstack.").to_string()
}

/// ELB's wildcards are IAM's: `*` any run of characters, `?` one.
fn wildcard(pattern: &str, text: &str) -> bool {
    super::iam::glob(pattern, text)
}

// ---- reading the live configuration ---------------------------------------------------------

/// Where the clients read the configuration: an emulator endpoint, with the test credentials.
#[derive(Clone)]
pub struct Upstream {
    pub http: reqwest::Client,
    pub endpoint: String,
    pub access_key: String,
}

impl Upstream {
    pub fn new(endpoint: &str) -> Upstream {
        Upstream {
            http: reqwest::Client::new(),
            endpoint: endpoint.trim_end_matches('/').into(),
            access_key: "test".into(),
        }
    }

    fn auth(&self, service: &str, region: &str) -> String {
        format!(
            "AWS4-HMAC-SHA256 Credential={}/20260101/{region}/{service}/aws4_request, SignedHeaders=host, Signature=kit",
            self.access_key
        )
    }

    /// A query-protocol call; its answer's text when it succeeded.
    pub async fn query(&self, service: &str, region: &str, form: &str) -> Option<String> {
        let response = self
            .http
            .post(format!("{}/", self.endpoint))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("authorization", self.auth(service, region))
            .body(form.to_string())
            .send()
            .await
            .ok()?;
        if !response.status().is_success() {
            return None;
        }
        response.text().await.ok()
    }

    async fn get(&self, service: &str, path: &str) -> Option<String> {
        let response = self
            .http
            .get(format!("{}{path}", self.endpoint))
            .header("authorization", self.auth(service, "us-east-1"))
            .send()
            .await
            .ok()?;
        if !response.status().is_success() {
            return None;
        }
        response.text().await.ok()
    }
}

/// Load balancers by DNS name and by name, listed once and again when one is not found.
#[derive(Default)]
pub struct Known {
    /// bare DNS name → (ARN, network)
    by_dns: HashMap<String, (String, bool)>,
    by_name: HashMap<String, (String, bool)>,
}

impl Known {
    async fn list(&mut self, up: &Upstream, region: &str) {
        let mut marker: Option<String> = None;
        for _ in 0..50 {
            let mut form = "Action=DescribeLoadBalancers&Version=2015-12-01&PageSize=400".to_string();
            if let Some(m) = &marker {
                form.push_str(&format!("&Marker={}", encode(m)));
            }
            let Some(text) = up.query("elasticloadbalancing", region, &form).await else { return };
            let Ok(doc) = roxmltree::Document::parse(&text) else { return };
            for lb in doc.descendants().filter(|n| n.has_tag_name("member") && child_text(*n, "DNSName").is_some()) {
                let arn = child_text(lb, "LoadBalancerArn").unwrap_or_default();
                let network = child_text(lb, "Type").as_deref() == Some("network");
                self.by_dns.insert(bare_dns(&child_text(lb, "DNSName").unwrap_or_default()), (arn.clone(), network));
                self.by_name.insert(child_text(lb, "LoadBalancerName").unwrap_or_default(), (arn, network));
            }
            marker =
                doc.descendants().find(|n| n.has_tag_name("NextMarker")).and_then(|n| n.text()).map(str::to_string);
            if marker.is_none() {
                return;
            }
        }
    }
}

/// What `plan`'s clients must know now: the record's sets and the load balancers they alias, or
/// the load balancer they send to; with each load balancer's listeners and rules.
pub async fn view(up: &Upstream, known: &mut Known, plan: &Plan) -> Option<View> {
    let mut view = View::default();
    let mut arns: Vec<(String, bool)> = Vec::new();
    match &plan.entry {
        Entry::Dns { zone_id, record, rtype } => {
            let name = if record.ends_with('.') { record.clone() } else { format!("{record}.") };
            let path = format!("/2013-04-01/hostedzone/{zone_id}/rrset?name={name}&type={rtype}&maxitems=300");
            let text = up.get("route53", &path).await?;
            let doc = roxmltree::Document::parse(&text).ok()?;
            for node in doc.descendants().filter(|n| n.has_tag_name("ResourceRecordSet")) {
                let (key, values) = record_set(node);
                if key.name != super::route53::dns_name(&name) || key.rtype != *rtype {
                    continue;
                }
                view.records.push(RecordSet {
                    id: key.id,
                    weight: values.weight.as_deref().and_then(|w| w.parse().ok()),
                    alias: values.alias.map(|(_, dns, _)| dns),
                    value: values.records.first().cloned(),
                    ttl: values.ttl.as_deref().and_then(|t| t.parse().ok()),
                    health_check: values.health_check,
                });
            }
            for dns in view.records.iter().filter_map(|r| r.target()).map(bare_dns).collect::<Vec<_>>() {
                // Only a load balancer's name is looked up (listing them all again when new).
                let Some(region) = super::route53::elb_region(&dns).map(str::to_string) else { continue };
                if !known.by_dns.contains_key(&dns) {
                    known.list(up, &region).await;
                }
                if let Some((arn, network)) = known.by_dns.get(&dns) {
                    view.by_dns.insert(dns.clone(), arn.clone());
                    arns.push((arn.clone(), *network));
                }
            }
        }
        Entry::LoadBalancer { load_balancer } => {
            let found = |k: &Known| {
                if load_balancer.starts_with("arn:") {
                    k.by_name.values().find(|(a, _)| a == load_balancer).cloned()
                } else {
                    k.by_name.get(load_balancer).cloned()
                }
            };
            if found(known).is_none() {
                let region = load_balancer.split(':').nth(3).unwrap_or("us-west-2").to_string();
                known.list(up, &region).await;
            }
            let (arn, network) = found(known)?;
            view.direct = Some(arn.clone());
            arns.push((arn, network));
        }
    }
    arns.sort();
    arns.dedup();
    for (arn, network) in arns {
        let lb = describe(up, &arn, network).await?;
        view.load_balancers.insert(arn, lb);
    }
    Some(view)
}

/// A load balancer's listeners, their default actions and rules.
async fn describe(up: &Upstream, arn: &str, network: bool) -> Option<LoadBalancer> {
    let region = arn.split(':').nth(3).unwrap_or("us-west-2").to_string();
    let form = format!("Action=DescribeListeners&Version=2015-12-01&LoadBalancerArn={}", encode(arn));
    let text = up.query("elasticloadbalancing", &region, &form).await?;
    let doc = roxmltree::Document::parse(&text).ok()?;
    let mut listeners = Vec::new();
    for l in doc.descendants().filter(|n| n.has_tag_name("member") && child_text(*n, "ListenerArn").is_some()) {
        let listener_arn = child_text(l, "ListenerArn").unwrap_or_default();
        let port = child_text(l, "Port").and_then(|p| p.parse().ok()).unwrap_or(80);
        let default = l.children().find(|c| c.has_tag_name("DefaultActions")).and_then(|a| forward(a, &listener_arn));
        let form = format!("Action=DescribeRules&Version=2015-12-01&ListenerArn={}", encode(&listener_arn));
        let mut rules = Vec::new();
        if let Some(text) = up.query("elasticloadbalancing", &region, &form).await
            && let Ok(doc) = roxmltree::Document::parse(&text)
        {
            for r in doc.descendants().filter(|n| n.has_tag_name("member") && child_text(*n, "RuleArn").is_some()) {
                let Some(priority) = child_text(r, "Priority").and_then(|p| p.parse::<i64>().ok()) else { continue };
                let rule_arn = child_text(r, "RuleArn").unwrap_or_default();
                let (mut hosts, mut paths) = (Vec::new(), Vec::new());
                if let Some(conditions) = r.children().find(|c| c.has_tag_name("Conditions")) {
                    for c in conditions.children().filter(|c| c.has_tag_name("member")) {
                        let values: Vec<String> = c
                            .descendants()
                            .filter(|v| v.has_tag_name("member") && v.parent() != Some(conditions))
                            .filter_map(|v| v.text().map(|t| t.trim().to_string()))
                            .filter(|v| !v.is_empty())
                            .collect();
                        match child_text(c, "Field").as_deref() {
                            Some("host-header") => hosts.extend(values),
                            Some("path-pattern") => paths.extend(values),
                            _ => {}
                        }
                    }
                }
                hosts.dedup();
                paths.dedup();
                let forward = r.children().find(|c| c.has_tag_name("Actions")).and_then(|a| forward(a, &rule_arn));
                rules.push(Rule { priority, hosts, paths, forward });
            }
        }
        listeners.push(Listener { port, default, rules });
    }
    Some(LoadBalancer { arn: arn.to_string(), network, listeners })
}

/// The forward action among `actions` (an `Actions`/`DefaultActions` element).
fn forward(actions: roxmltree::Node, key: &str) -> Option<Forward> {
    let action = actions
        .children()
        .filter(|c| c.has_tag_name("member"))
        .find(|a| child_text(*a, "Type").as_deref() == Some("forward"))?;
    let mut groups = Vec::new();
    let mut sticky = None;
    if let Some(config) = action.children().find(|c| c.has_tag_name("ForwardConfig")) {
        if let Some(tgs) = config.children().find(|c| c.has_tag_name("TargetGroups")) {
            for tg in tgs.children().filter(|c| c.has_tag_name("member")) {
                let arn = child_text(tg, "TargetGroupArn").unwrap_or_default();
                let weight = child_text(tg, "Weight").and_then(|w| w.parse().ok()).unwrap_or(1);
                groups.push((arn, weight));
            }
        }
        if let Some(s) = config.children().find(|c| c.has_tag_name("TargetGroupStickinessConfig"))
            && child_text(s, "Enabled").as_deref() == Some("true")
        {
            let secs = child_text(s, "DurationSeconds").and_then(|d| d.parse().ok()).unwrap_or(3600);
            sticky = Some(Duration::from_secs(secs));
        }
    }
    if groups.is_empty()
        && let Some(arn) = child_text(action, "TargetGroupArn")
    {
        groups.push((arn, 1));
    }
    Some(Forward { key: key.to_string(), groups, sticky })
}

/// PutMetricData of counted datapoints to an emulator without the kit's metrics (one datum per
/// series and flush, stamped `at`: sums are right, percentiles are not).
pub async fn put_to_emulator(up: &Upstream, points: &[Counted], at: SystemTime) {
    let mut by: BTreeMap<(String, String), Vec<&Counted>> = BTreeMap::new();
    for p in points {
        by.entry((p.0.region.clone(), p.0.namespace.clone())).or_default().push(p);
    }
    let stamp = super::metrics::format_time(at);
    for ((region, namespace), points) in by {
        for chunk in points.chunks(500) {
            let mut form = format!("Action=PutMetricData&Version=2010-08-01&Namespace={}", encode(&namespace));
            for (i, (key, _, unit, stats)) in chunk.iter().enumerate() {
                let m = format!("MetricData.member.{}", i + 1);
                let value = if *unit == "Seconds" { stats.sum / stats.count.max(1.0) } else { stats.sum };
                form.push_str(&format!(
                    "&{m}.MetricName={}&{m}.Value={value}&{m}.Unit={unit}&{m}.Timestamp={}",
                    encode(&key.name),
                    encode(&stamp)
                ));
                for (j, (k, v)) in key.dimensions.iter().enumerate() {
                    form.push_str(&format!(
                        "&{m}.Dimensions.member.{}.Name={}&{m}.Dimensions.member.{}.Value={}",
                        j + 1,
                        encode(k),
                        j + 1,
                        encode(v)
                    ));
                }
            }
            let _ = up.query("monitoring", &region, &form).await;
        }
    }
}

/// Durations as seconds (`1.5`) in the clients' JSON.
mod secs {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let secs = f64::deserialize(d)?;
        Duration::try_from_secs_f64(secs).map_err(serde::de::Error::custom)
    }
}

mod opt_secs {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_some(&d.as_secs_f64()),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        match Option::<f64>::deserialize(d)? {
            Some(secs) => Duration::try_from_secs_f64(secs).map(Some).map_err(serde::de::Error::custom),
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_as_elb_reads_them() {
        assert!(wildcard("*.example.com", "api.example.com"));
        assert!(wildcard("/api/*", "/api/v1"));
        assert!(wildcard("a?c", "abc"));
        assert!(!wildcard("*.example.com", "example.org"));
    }

    #[test]
    fn round_robin_follows_the_weights_exactly() {
        let mut state = HashMap::new();
        let pool = vec![("blue".to_string(), 90.0), ("green".to_string(), 10.0)];
        let green = (0..100).filter(|_| round_robin(&mut state, &pool) == Some(1)).count();
        assert_eq!(green, 10);
        assert_eq!(round_robin(&mut state, &[("x".into(), 0.0)]), None);
    }
}
