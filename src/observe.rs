//! Traffic as clients send it, not as it is configured: each side's requests on every route,
//! counted by the load balancers (`AWS/ApplicationELB` `RequestCount`, `Sum` per minute).
//!
//! **Counted where the app's requests are.** An ALB route's sides are counted at their target
//! groups behind the route's ALB (dimensions `TargetGroup` and `LoadBalancer`). A Route53 alias
//! route's sides are counted at the target groups that the aliased ALB's listener rules route the
//! record's host to (or its default action's, when no rule names the host) — not the whole ALB,
//! which on a shared ALB (an IngressGroup) counts other apps' requests too. Where the rules cannot
//! tell the app's requests apart (a target group another host's rule uses too, or no rule and no
//! forward), counting is refused unless the profile names the target groups
//! (`[[route53]] target_groups`). An alias to a Network Load Balancer cannot be counted at all: NLBs
//! publish no `RequestCount` (`AWS/NetworkELB`). A record that is no alias cannot be observed.
//!
//! **Counted when AWS has published it.** Load balancers publish a minute's count a minute or more
//! after it ends, and only for minutes with requests. So only *settled* minutes are read — whole
//! minutes that ended at least `settle` ago — and a stage counts only the minutes that began after
//! its shift (plus the DNS TTL for records whose resolvers must expire). A minute not settled yet
//! makes a reading *pending*, which neither passes nor restarts a bake; a settled minute without a
//! datapoint counts 0 (AWS publishes nothing without requests).
//!
//! Two readers use the counts: `[observe]` (the observed share of each route against the intended
//! one) and a gate's `min_requests` (enough traffic reached the candidate for "no data" to mean
//! "no errors").

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_cloudwatch::Client;
use aws_sdk_cloudwatch::types::{Dimension, Metric, MetricDataQuery, MetricStat};
use aws_sdk_elasticloadbalancingv2::types::{LoadBalancer, LoadBalancerTypeEnum, Rule};
use aws_smithy_types::DateTime;
use tokio::sync::OnceCell;

use crate::error::{Error, Result};
use crate::model::{Percent, Reading, Role, Shares, Side, Verdict, fmt_pct};
use crate::splitter::{RequestSource, RouteLive, same_dns};

/// `[observe]`: how the traffic clients actually send is compared with the configured split.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Observe {
    /// Percentage points the observed share may differ from the intended one.
    pub tolerance: f64,
    /// How many settled minutes are summed (the newest ones, never before the stage began).
    pub window: Duration,
    /// How long after a minute ends its count is taken as published and final.
    pub settle: Duration,
}

/// How old a minute must be before it is judged, by default: a load balancer reports every 60
/// seconds, and a minute's datapoint is commonly published 1–3 minutes after it ends (AWS
/// documents no bound). A minute is judged once it is this old *and* published — see
/// [`published_until`] — so a longer delay makes a reading pending, never a zero.
pub const DEFAULT_SETTLE: Duration = Duration::from_secs(60);

/// How long past `settle` a minute a load balancer published nothing for is awaited before it is
/// read as a minute without requests (ALBs publish no zero datapoints).
pub const ABSENT_AFTER: Duration = Duration::from_secs(300);

/// The observation's label among gate readings.
pub const OBSERVE: &str = "observe";
/// ALB metrics are published per minute.
const PERIOD: Duration = Duration::from_secs(60);
/// GetMetricData takes at most 500 queries a call.
const MAX_QUERIES: usize = 500;

/// Whole minutes `[start, end)`, as CloudWatch buckets them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Minutes {
    pub start: SystemTime,
    pub end: SystemTime,
}

fn secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

/// `14:03` (UTC) of a minute.
fn hhmm(t: SystemTime) -> String {
    let s = secs(t) % 86_400;
    format!("{:02}:{:02}", s / 3600, s % 3600 / 60)
}

impl Minutes {
    pub fn count(&self) -> u64 {
        secs(self.end).saturating_sub(secs(self.start)) / 60
    }

    /// `14:03` for one minute, `14:03–14:05` for several (UTC, the last minute named).
    pub fn label(&self) -> String {
        let last = at(secs(self.end).saturating_sub(60));
        if self.count() <= 1 { hhmm(self.start) } else { format!("{}–{}", hhmm(self.start), hhmm(last)) }
    }
}

/// What can be counted at an instant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Settled {
    /// These minutes are settled.
    Minutes(Minutes),
    /// The first minute needed (`first`) is not settled before `at`.
    Pending { first: SystemTime, at: SystemTime },
}

impl Settled {
    /// What a pending reading says: `pending: minute 14:03 not yet published (read from
    /// 14:06:00 UTC)`.
    pub fn pending_detail(first: SystemTime, at: SystemTime) -> String {
        let s = secs(at) % 86_400;
        format!(
            "pending: minute {} not yet published (read from {:02}:{:02}:{:02} UTC)",
            hhmm(first),
            s / 3600,
            s % 3600 / 60,
            s % 60
        )
    }
}

/// The newest `window` of minutes settled at `now` — a minute is settled once it ended `settle`
/// ago — none that began before `from` (rounded up to a whole minute: a minute that began before
/// it holds requests from before).
pub fn settled(now: SystemTime, settle: Duration, window: Duration, from: Option<SystemTime>) -> Settled {
    let newest_end = secs(now).saturating_sub(settle.as_secs()) / 60 * 60;
    let window = window.as_secs().max(60).div_ceil(60) * 60;
    let mut start = newest_end.saturating_sub(window);
    if let Some(from) = from {
        let exact = from.duration_since(UNIX_EPOCH).map(|d| d.subsec_nanos() == 0).unwrap_or(true);
        let f = secs(from) + u64::from(!exact);
        start = start.max(f.div_ceil(60) * 60);
    }
    if start >= newest_end {
        return Settled::Pending { first: at(start), at: at(start + 60 + settle.as_secs()) };
    }
    Settled::Minutes(Minutes { start: at(start), end: at(newest_end) })
}

/// The end (seconds since the epoch, exclusive) of the newest minute in `[start, newest_end)` that
/// can be judged at `now`: every minute up to it is published on every load balancer read — it
/// has a datapoint for that minute or a later one (`newest`: each load balancer's newest minute
/// with one, over the series read there: a load balancer publishes a minute of all its target
/// groups at once), or another load balancer has already published the minute after it (load
/// balancers publish a minute or so apart) — or is `settle` + [`ABSENT_AFTER`] old, when a
/// missing datapoint means no request. `start` when none is: the reading is pending.
pub fn published_until(start: u64, newest_end: u64, now: u64, settle: Duration, newest: &[Option<u64>]) -> u64 {
    let witness = newest.iter().flatten().max().copied();
    let mut end = start;
    while end + 60 <= newest_end {
        let m = end;
        let absent = m + 60 + settle.as_secs() + ABSENT_AFTER.as_secs() <= now;
        let published = newest.iter().all(|f| f.is_some_and(|f| f >= m) || witness.is_some_and(|w| w >= m + 60));
        if !(absent || published) {
            break;
        }
        end += 60;
    }
    end
}

/// What `[observe]` can count at an instant: the newest `window` of published minutes, or none yet.
#[derive(Clone, Debug, PartialEq)]
pub enum Published {
    Counted {
        minutes: Minutes,
        counted: Vec<Counted>,
    },
    /// Minute `first` is not published yet; without a datapoint it is read as one without
    /// requests from `absent_at`.
    Pending {
        first: SystemTime,
        absent_at: SystemTime,
    },
}

impl Published {
    /// `pending: minute 14:03 not yet published (read as no requests from 14:10:00 UTC if none comes)`.
    pub fn pending_detail(first: SystemTime, absent_at: SystemTime) -> String {
        let s = secs(absent_at) % 86_400;
        format!(
            "pending: minute {} not yet published (without a datapoint by {:02}:{:02}:{:02} UTC it counts no request)",
            hhmm(first),
            s / 3600,
            s % 3600 / 60,
            s % 60
        )
    }
}

/// Each load balancer's newest minute with a datapoint among `series`' per-minute values: keyed
/// by (account, `LoadBalancer` dimension), for [`published_until`].
fn newest_by_load_balancer(
    series: &[&Series],
    values: &[std::collections::BTreeMap<u64, Vec<Option<f64>>>],
) -> std::collections::BTreeMap<(usize, String), Option<u64>> {
    let mut newest = std::collections::BTreeMap::new();
    for (s, v) in series.iter().zip(values) {
        let lb = s.1.iter().find(|(k, _)| *k == "LoadBalancer").map(|(_, v)| v.clone()).unwrap_or_default();
        let mine = v.iter().rev().find(|(_, v)| v.first().copied().flatten().is_some()).map(|(t, _)| *t);
        let slot: &mut Option<u64> = newest.entry((s.0, lb)).or_default();
        *slot = (*slot).max(mine);
    }
    newest
}

/// A sum of request counts: 0 (not Rust's -0 of an empty float sum, which prints as `-0`).
fn count(values: impl Iterator<Item = f64>) -> f64 {
    values.fold(0.0, |a, b| a + b)
}

/// One metric series: the account it is read in (see [`RequestCounts`]) and the dimensions of a
/// `RequestCount`.
type Series = (usize, Vec<(&'static str, String)>);

/// Where one side of a route is counted: the series summed, or why it cannot be.
#[derive(Clone, Debug)]
enum Counting {
    At(Vec<Series>),
    /// Not an alias to a load balancer (or its load balancer not found): not observable.
    Blind,
    /// Counting it would count the wrong requests, or none: refused with this reason.
    Refused(String),
}

/// One route's requests per side over some minutes; `None` for a side that cannot be counted.
#[derive(Clone, Debug, PartialEq)]
pub struct Counted {
    pub name: String,
    pub blue: Option<f64>,
    pub green: Option<f64>,
}

impl Counted {
    /// The shares of the requests both sides received; `None` when a side cannot be counted or
    /// no request was counted.
    pub fn shares(&self) -> Option<Shares> {
        Shares::of_counts(self.blue?, self.green?)
    }
}

/// Each series once (two routes may count at one load balancer), in the order first seen.
fn distinct<'a>(series: impl Iterator<Item = &'a Series>) -> Vec<&'a Series> {
    let mut unique: Vec<&Series> = Vec::new();
    for s in series {
        if !unique.contains(&s) {
            unique.push(s);
        }
    }
    unique
}

/// Where one side of a route is counted: the account (a place in [`RequestCounts`]'s accounts)
/// and the load balancer or target group.
type CountedAt = (usize, RequestSource);

/// Reads request counts of every route's sides.
pub struct RequestCounts {
    /// Each account a load balancer is counted in: the caller's, or a role's (CloudWatch keeps
    /// a load balancer's metrics in its own account).
    accounts: Vec<(Option<Role>, (Client, aws_sdk_elasticloadbalancingv2::Client))>,
    /// Per route: its name and where each side is counted.
    routes: Vec<(String, [Option<CountedAt>; 2])>,
    /// Where each route's sides are counted, resolved once (aliases looked up by DNS name, their
    /// listener rules read).
    series: OnceCell<Vec<[Counting; 2]>>,
}

/// A load balancer's dimension value: `app/front/abc` of `arn:…:loadbalancer/app/front/abc`.
fn load_balancer_dimension(arn: &str) -> String {
    arn.split_once(":loadbalancer/").map(|(_, r)| r.to_string()).unwrap_or_else(|| arn.to_string())
}

/// A target group's dimension value: `targetgroup/tg/abc`, what follows its ARN's last colon.
fn target_group_dimension(arn: &str) -> String {
    arn.rsplit(':').next().unwrap_or_default().to_string()
}

/// Whether `host` (lower case, no trailing dot) matches a listener rule's `host-header` value:
/// case-insensitive, `*` any run of characters, `?` one character.
fn host_matches(pattern: &str, host: &str) -> bool {
    fn glob(p: &[u8], h: &[u8]) -> bool {
        match (p.first(), h.first()) {
            (None, None) => true,
            (Some(b'*'), _) => glob(&p[1..], h) || (!h.is_empty() && glob(p, &h[1..])),
            (Some(b'?'), Some(_)) => glob(&p[1..], &h[1..]),
            (Some(a), Some(b)) if a.eq_ignore_ascii_case(b) => glob(&p[1..], &h[1..]),
            _ => false,
        }
    }
    glob(pattern.trim_end_matches('.').as_bytes(), host.as_bytes())
}

/// The hosts a rule's conditions name (`None`: the rule names no host, so it applies to every one).
fn rule_hosts(rule: &Rule) -> Option<Vec<String>> {
    let mut hosts: Option<Vec<String>> = None;
    for c in rule.conditions() {
        if c.field() != Some("host-header") {
            continue;
        }
        let values: Vec<String> = c
            .host_header_config()
            .map(|h| h.values().to_vec())
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| c.values().to_vec());
        hosts.get_or_insert_with(Vec::new).extend(values);
    }
    hosts
}

/// The target groups a rule forwards to.
fn rule_target_groups(rule: &Rule) -> Vec<String> {
    let mut tgs = Vec::new();
    for a in rule.actions() {
        if let Some(f) = a.forward_config() {
            tgs.extend(f.target_groups().iter().filter_map(|t| t.target_group_arn.clone()));
        }
        tgs.extend(a.target_group_arn.clone());
    }
    tgs.sort();
    tgs.dedup();
    tgs
}

/// The target groups of load balancer `lb` that receive `host`'s requests, as its listener rules
/// route them: those of every rule naming the host (or no host), else those of the default
/// actions. Refused where they cannot be told apart from other hosts' (a target group shared with
/// another host's rule), or where there are none.
fn host_target_groups(lb: &str, host: &str, rules: &[Rule]) -> std::result::Result<Vec<String>, String> {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    let (mut mine, mut others, mut defaults) = (Vec::new(), Vec::new(), Vec::new());
    for r in rules {
        let tgs = rule_target_groups(r);
        if r.is_default == Some(true) {
            defaults.extend(tgs);
            continue;
        }
        match rule_hosts(r) {
            Some(hosts) if !hosts.iter().any(|h| host_matches(h, &host)) => others.extend(tgs),
            _ => mine.extend(tgs),
        }
    }
    if mine.is_empty() {
        mine = defaults;
    }
    mine.sort();
    mine.dedup();
    if mine.is_empty() {
        return Err(format!("no listener rule of {lb} forwards host {host}, and its default action forwards nowhere"));
    }
    if let Some(shared) = mine.iter().find(|t| others.contains(t)) {
        return Err(format!(
            "target group {} of {lb} serves host {host} and other hosts' rules too: its requests cannot be told apart",
            crate::splitter::alb::target_group_name(shared)
        ));
    }
    Ok(mine)
}

impl RequestCounts {
    /// Each side's load balancer is read with its role ([`RouteLive::lb_role`]).
    pub fn new(aws: &crate::aws::Accounts, routes: &[RouteLive]) -> RequestCounts {
        let mut accounts = Vec::new();
        let mut account_of = |role: Option<&Role>| {
            aws.slot(&mut accounts, role, |sdk| {
                (crate::client!(aws_sdk_cloudwatch, sdk), crate::client!(aws_sdk_elasticloadbalancingv2, sdk))
            })
        };
        let routes = routes
            .iter()
            .map(|r| {
                let sources = Side::ALL.map(|s| {
                    let source = r.request_source(s)?;
                    Some((account_of(r.lb_role(s)), source))
                });
                (r.name.clone(), sources)
            })
            .collect();
        RequestCounts { accounts, routes, series: OnceCell::new() }
    }

    /// Whether any route's `side` may be counted (before the load balancers are looked up).
    pub fn can_count(&self, side: Side) -> bool {
        self.routes.iter().any(|(_, s)| s[side.index()].is_some())
    }

    /// Refuses (exit 2) counting that would count the wrong requests or none: an alias to an NLB,
    /// a shared ALB whose rules cannot tell the app's requests apart. `sides`: the sides counted.
    pub async fn preflight(&self, sides: &[Side]) -> Result<()> {
        let series = self.series().await?;
        for ((name, _), counting) in self.routes.iter().zip(series) {
            for side in sides {
                if let Counting::Refused(why) = &counting[side.index()] {
                    return Err(Error::refused_hint(
                        format!(
                            "`[observe]` and `min_requests` cannot count the {side} side's requests on {name}: {why}"
                        ),
                        "name the target group that serves each side with `target_groups = { blue = \"…\", green = \"…\" }` on the [[route53]] route, or drop `[observe]` and `min_requests` (a DNS-only rollout bakes at least the records' TTL)",
                    ));
                }
            }
        }
        Ok(())
    }

    async fn series(&self) -> Result<&Vec<[Counting; 2]>> {
        self.series.get_or_try_init(|| self.resolve()).await
    }

    /// Target groups are counted behind their ALB; an alias at the target groups its load
    /// balancer (found by DNS name) routes the record's host to.
    async fn resolve(&self) -> Result<Vec<[Counting; 2]>> {
        // The load balancers of each account an alias is counted in, listed once.
        let mut lbs: Vec<Vec<LoadBalancer>> = vec![Vec::new(); self.accounts.len()];
        for (i, (_, (_, elb))) in self.accounts.iter().enumerate() {
            let mut aliases = self.routes.iter().flat_map(|(_, s)| s.iter().flatten());
            if aliases.any(|(a, s)| *a == i && matches!(s, RequestSource::Alias { .. })) {
                lbs[i] = crate::discover::all_load_balancers(elb).await?;
            }
        }
        let mut rules_of: Rules = Default::default();
        let mut out = Vec::new();
        for (_, sources) in &self.routes {
            let mut per_side = [Counting::Blind, Counting::Blind];
            for side in Side::ALL {
                let Some((account, source)) = &sources[side.index()] else { continue };
                per_side[side.index()] = match source {
                    RequestSource::TargetGroup { target_group_arn, load_balancer_arn } => Counting::At(vec![(
                        *account,
                        vec![
                            ("LoadBalancer", load_balancer_dimension(load_balancer_arn)),
                            ("TargetGroup", target_group_dimension(target_group_arn)),
                        ],
                    )]),
                    RequestSource::Alias { dns, host, target_group } => {
                        let found =
                            lbs[*account].iter().find(|lb| lb.dns_name.as_deref().is_some_and(|d| same_dns(d, dns)));
                        match found {
                            None => Counting::Blind,
                            Some(lb) => {
                                self.alias_counting(*account, lb, host, target_group.as_deref(), &mut rules_of).await?
                            }
                        }
                    }
                };
            }
            out.push(per_side);
        }
        Ok(out)
    }

    /// Where a host's requests are counted on the load balancer its alias names.
    async fn alias_counting(
        &self,
        account: usize,
        lb: &LoadBalancer,
        host: &str,
        named: Option<&str>,
        rules_of: &mut Rules,
    ) -> Result<Counting> {
        let arn = lb.load_balancer_arn.clone().unwrap_or_default();
        let lb_name = lb.load_balancer_name.clone().unwrap_or_else(|| arn.clone());
        if lb.r#type.as_ref().is_some_and(|t| *t != LoadBalancerTypeEnum::Application) {
            let kind = lb.r#type.as_ref().map(|t| t.as_str().to_string()).unwrap_or_default();
            return Ok(Counting::Refused(format!(
                "the record aliases {lb_name}, a load balancer of type {kind}: only Application Load Balancers publish RequestCount (a Network Load Balancer publishes flows, in AWS/NetworkELB)"
            )));
        }
        let elb = &self.accounts[account].1.1;
        let dimension = load_balancer_dimension(&arn);
        let tgs = match named {
            Some(name) => {
                let out = if name.starts_with("arn:") {
                    elb.describe_target_groups().target_group_arns(name).send().await
                } else {
                    elb.describe_target_groups().names(name).send().await
                };
                let out = match out {
                    Ok(o) => o,
                    Err(e) if e.as_service_error().is_some_and(|s| s.is_target_group_not_found_exception()) => {
                        return Ok(Counting::Refused(format!("target group `{name}` (target_groups) not found")));
                    }
                    Err(e) => return Err(crate::aws::error(format!("DescribeTargetGroups {name}"), e)),
                };
                let Some(tg) = out.target_groups().iter().find(|t| t.load_balancer_arns().contains(&arn)) else {
                    return Ok(Counting::Refused(format!(
                        "target group `{name}` (target_groups) is not behind {lb_name}, which the record aliases"
                    )));
                };
                vec![tg.target_group_arn.clone().unwrap_or_default()]
            }
            None => {
                let key = (account, arn.clone());
                if !rules_of.contains_key(&key) {
                    rules_of.insert(key.clone(), rules(elb, &arn).await?);
                }
                match host_target_groups(&lb_name, host, &rules_of[&key]) {
                    Ok(tgs) => tgs,
                    Err(why) => return Ok(Counting::Refused(why)),
                }
            }
        };
        Ok(Counting::At(
            tgs.iter()
                .map(|tg| {
                    (account, vec![("LoadBalancer", dimension.clone()), ("TargetGroup", target_group_dimension(tg))])
                })
                .collect(),
        ))
    }

    /// Every route's requests per side over the newest `window` of minutes that are `settle` old
    /// and published (see [`published_until`]), none that began before `from` (rounded up to a
    /// whole minute) — in one GetMetricData call per account.
    pub async fn published(
        &self,
        now: SystemTime,
        settle: Duration,
        window: Duration,
        from: Option<SystemTime>,
    ) -> Result<Published> {
        let window = window.as_secs().max(60).div_ceil(60) * 60;
        // Far enough back for the window, the settle and a minute awaited as absent.
        let lookback = window + settle.as_secs().div_ceil(60) * 60 + ABSENT_AFTER.as_secs() + 120;
        let range = match settled(now, settle, Duration::from_secs(lookback), from) {
            Settled::Minutes(m) => m,
            Settled::Pending { first, .. } => {
                let absent_at = at(secs(first) + 60 + settle.as_secs() + ABSENT_AFTER.as_secs());
                return Ok(Published::Pending { first, absent_at });
            }
        };
        let series = self.series().await?;
        let unique = distinct(series.iter().flatten().filter_map(at_series).flatten());
        let per_series = self.per_series(&unique, &[("RequestCount", "Sum".into())], &range).await?;
        let newest: Vec<Option<u64>> = newest_by_load_balancer(&unique, &per_series).into_values().collect();
        let start = secs(range.start);
        let end = published_until(start, secs(range.end), secs(now), settle, &newest);
        if end == start {
            let absent_at = at(start + 60 + settle.as_secs() + ABSENT_AFTER.as_secs());
            return Ok(Published::Pending { first: range.start, absent_at });
        }
        let minutes = Minutes { start: at(end.saturating_sub(window).max(start)), end: at(end) };
        let sums: Vec<f64> =
            per_series.iter().map(|m| count(m.range(secs(minutes.start)..end).filter_map(|(_, v)| v[0]))).collect();
        let sum_of = |c: &Counting| {
            at_series(c).map(|all| count(all.iter().map(|s| sums[unique.iter().position(|u| *u == s).unwrap_or(0)])))
        };
        let counted = self
            .routes
            .iter()
            .zip(series)
            .map(|((name, _), [b, g])| Counted { name: name.clone(), blue: sum_of(b), green: sum_of(g) })
            .collect();
        Ok(Published::Counted { minutes, counted })
    }

    /// Per series of `series` (in that order), per minute of `minutes`, each metric's value where
    /// one was published: each account's series read with its client, the accounts at once.
    async fn per_series(
        &self,
        series: &[&Series],
        metrics: &[(&str, String)],
        minutes: &Minutes,
    ) -> Result<Vec<std::collections::BTreeMap<u64, Vec<Option<f64>>>>> {
        let per_account = futures::future::try_join_all(self.accounts.iter().enumerate().map(|(a, (_, (cw, _)))| {
            let mine: Vec<&Series> = series.iter().copied().filter(|s| s.0 == a).collect();
            async move {
                if mine.is_empty() {
                    return Ok((a, Vec::new()));
                }
                Ok::<_, Error>((a, per_minute(cw, &mine, metrics, minutes).await?))
            }
        }))
        .await?;
        let mut out = vec![std::collections::BTreeMap::new(); series.len()];
        for (a, values) in per_account {
            let positions = series.iter().enumerate().filter(|(_, s)| s.0 == a).map(|(i, _)| i);
            for (i, v) in positions.zip(values) {
                out[i] = v;
            }
        }
        Ok(out)
    }

    /// The requests `side` received over `minutes`, every distinct series counted once; `None`
    /// when no route can count that side.
    pub async fn total(&self, side: Side, minutes: &Minutes) -> Result<Option<f64>> {
        let series = self.series().await?;
        let unique = distinct(series.iter().filter_map(|s| at_series(&s[side.index()])).flatten());
        if unique.is_empty() {
            return Ok(None);
        }
        Ok(Some(count(self.sums(&unique, minutes).await?.into_iter())))
    }

    /// The Sum of each series over the minutes.
    async fn sums(&self, series: &[&Series], minutes: &Minutes) -> Result<Vec<f64>> {
        let values = self.per_series(series, &[("RequestCount", "Sum".into())], minutes).await?;
        Ok(values.iter().map(|m| count(m.values().filter_map(|v| v[0]))).collect())
    }
}

/// One side's traffic in one minute, as its load balancers publish it: requests, errors (5xx
/// answers of the targets and connections to them that failed) and requests slower than an SLO.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct SideMinute {
    pub requests: f64,
    pub errors: f64,
    pub slow: f64,
}

impl RequestCounts {
    /// `side`'s traffic in every minute of `minutes`, every route's series summed: a minute
    /// without a datapoint counted nothing (AWS publishes only non-zero counts) — once published:
    /// the second value is each load balancer's newest minute with requests, for
    /// [`published_until`] (merge both sides' by key: they may share one).
    /// `slo`: requests slower count as slow, from `TargetResponseTime`'s `PR(:slo)` — the share
    /// at most that slow. Keyed by the minute's start, seconds since the Unix epoch.
    pub async fn side_minutes(
        &self,
        side: Side,
        minutes: &Minutes,
        slo: Option<Duration>,
    ) -> Result<(std::collections::BTreeMap<u64, SideMinute>, std::collections::BTreeMap<(usize, String), Option<u64>>)>
    {
        let series = self.series().await?;
        let unique = distinct(series.iter().filter_map(|s| at_series(&s[side.index()])).flatten());
        let mut out: std::collections::BTreeMap<u64, SideMinute> = Default::default();
        let mut m = secs(minutes.start);
        while m < secs(minutes.end) {
            out.insert(m, SideMinute::default());
            m += 60;
        }
        let mut metrics: Vec<(&str, String)> = vec![
            ("RequestCount", "Sum".into()),
            ("HTTPCode_Target_5XX_Count", "Sum".into()),
            ("TargetConnectionErrorCount", "Sum".into()),
        ];
        if let Some(slo) = slo {
            metrics.push(("TargetResponseTime", format!("PR(:{})", slo.as_secs_f64())));
        }
        let values = self.per_series(&unique, &metrics, minutes).await?;
        let newest = newest_by_load_balancer(&unique, &values);
        // Per series: each minute's requests, then what counts against them.
        for per_series in values {
            for (minute, v) in per_series {
                let Some(slot) = out.get_mut(&minute) else { continue };
                let requests = v[0].unwrap_or(0.0);
                slot.requests += requests;
                slot.errors += v[1].unwrap_or(0.0) + v[2].unwrap_or(0.0);
                if let Some(Some(at_most)) = v.get(3) {
                    slot.slow += requests * (1.0 - (at_most / 100.0).clamp(0.0, 1.0));
                }
            }
        }
        Ok((out, newest))
    }
}

/// Per series (all of one account), per minute of `minutes`, the value of each metric (with its
/// statistic) where one was published.
async fn per_minute(
    cw: &Client,
    series: &[&Series],
    metrics: &[(&str, String)],
    minutes: &Minutes,
) -> Result<Vec<std::collections::BTreeMap<u64, Vec<Option<f64>>>>> {
    let mut out: Vec<std::collections::BTreeMap<u64, Vec<Option<f64>>>> = vec![Default::default(); series.len()];
    let ids: Vec<(usize, usize)> = (0..series.len()).flat_map(|s| (0..metrics.len()).map(move |m| (s, m))).collect();
    for chunk in ids.chunks(MAX_QUERIES) {
        let queries: Vec<MetricDataQuery> = chunk
            .iter()
            .map(|(s, m)| {
                let dims = &series[*s].1;
                let dimensions = dims.iter().map(|(k, v)| Dimension::builder().name(*k).value(v).build()).collect();
                MetricDataQuery::builder()
                    .id(format!("s{s}m{m}"))
                    .metric_stat(
                        MetricStat::builder()
                            .metric(
                                Metric::builder()
                                    .namespace("AWS/ApplicationELB")
                                    .metric_name(metrics[*m].0)
                                    .set_dimensions(Some(dimensions))
                                    .build(),
                            )
                            .period(PERIOD.as_secs() as i32)
                            .stat(&metrics[*m].1)
                            .build(),
                    )
                    .return_data(true)
                    .build()
            })
            .collect();
        let mut token: Option<String> = None;
        for _ in 0..50 {
            let answer = cw
                .get_metric_data()
                .set_metric_data_queries(Some(queries.clone()))
                .start_time(DateTime::from(minutes.start))
                .end_time(DateTime::from(minutes.end))
                .set_next_token(token.take())
                .send()
                .await
                .map_err(|e| crate::aws::error("GetMetricData (the load balancers' metrics)", e))?;
            for r in answer.metric_data_results.unwrap_or_default() {
                let Some((s, m)) = r.id.as_deref().and_then(|id| {
                    let (s, m) = id.strip_prefix('s')?.split_once('m')?;
                    Some((s.parse::<usize>().ok()?, m.parse::<usize>().ok()?))
                }) else {
                    continue;
                };
                let times = r.timestamps.unwrap_or_default();
                for (t, v) in times.iter().zip(r.values.unwrap_or_default()) {
                    let minute = u64::try_from(t.secs()).unwrap_or(0) / 60 * 60;
                    let slot = out[s].entry(minute).or_insert_with(|| vec![None; metrics.len()]);
                    slot[m] = Some(slot[m].unwrap_or(0.0) + v);
                }
            }
            token = answer.next_token.filter(|t| !t.is_empty());
            if token.is_none() {
                break;
            }
        }
    }
    Ok(out)
}

/// Each load balancer's listener rules, read once: by (account, load balancer ARN).
type Rules = std::collections::BTreeMap<(usize, String), Vec<Rule>>;

fn at_series(c: &Counting) -> Option<&Vec<Series>> {
    match c {
        Counting::At(s) => Some(s),
        Counting::Blind | Counting::Refused(_) => None,
    }
}

/// Every rule of every listener of a load balancer (default rules included).
async fn rules(elb: &aws_sdk_elasticloadbalancingv2::Client, lb: &str) -> Result<Vec<Rule>> {
    let listeners = elb
        .describe_listeners()
        .load_balancer_arn(lb)
        .send()
        .await
        .map_err(|e| crate::aws::error(format!("DescribeListeners {lb}"), e))?;
    let mut rules = Vec::new();
    for l in listeners.listeners() {
        let Some(arn) = l.listener_arn() else { continue };
        let mut marker: Option<String> = None;
        for _ in 0..100 {
            let out = elb
                .describe_rules()
                .listener_arn(arn)
                .set_marker(marker.clone())
                .send()
                .await
                .map_err(|e| crate::aws::error(format!("DescribeRules {arn}"), e))?;
            rules.extend(out.rules.unwrap_or_default());
            match out.next_marker {
                Some(m) if !m.is_empty() && Some(&m) != marker.as_ref() => marker = Some(m),
                _ => break,
            }
        }
    }
    Ok(rules)
}

/// The `[observe]` reading: every observable route's candidate share of the requests within
/// `tolerance` percentage points of `intended` passes; a route that lags, or that counted no
/// request while the candidate should have some, waits. Routes that cannot be observed are said
/// and do not hold the stage (the DNS TTL bounds their bake instead).
pub fn judge(counted: &[Counted], candidate: Side, intended: Percent, tolerance: f64, minutes: &Minutes) -> Reading {
    let over = format!(" in {} UTC", minutes.label());
    let want = intended.as_f64();
    let mut lagging = Vec::new();
    let mut quiet = Vec::new();
    let mut seen = Vec::new();
    let mut blind = Vec::new();
    for c in counted {
        match (c.blue, c.green) {
            (Some(_), Some(_)) => match c.shares() {
                Some(shares) => {
                    let got = shares.get(candidate);
                    let line = format!(
                        "{}: {candidate} {}% observed{over}, {}% intended",
                        c.name,
                        fmt_pct(got),
                        fmt_pct(want)
                    );
                    if (got - want).abs() > tolerance {
                        lagging.push(line);
                    } else {
                        seen.push(line);
                    }
                }
                None => quiet.push(c.name.clone()),
            },
            _ => blind.push(c.name.clone()),
        }
    }
    let blind_note = if blind.is_empty() { String::new() } else { format!(" (not observable: {})", blind.join(", ")) };
    if intended == Percent::ZERO {
        // Before the first shift there is no shift to verify: what is seen is said, nothing held.
        let still = !lagging.is_empty();
        let seen: Vec<String> = seen.into_iter().chain(lagging).collect();
        let mut what = if seen.is_empty() { "no requests counted yet".to_string() } else { seen.join("; ") };
        if still {
            // Clients of an earlier split (a rollback's, cached DNS answers) are still arriving.
            what.push_str(
                " (clients of an earlier split, which DNS caches keep for up to the records' TTL; not checked before the first shift)",
            );
        }
        return Reading::new(OBSERVE, Verdict::Pass, format!("{what}{blind_note}"));
    }
    if !lagging.is_empty() {
        return Reading::new(OBSERVE, Verdict::Wait, format!("{} (±{tolerance}){blind_note}", lagging.join("; ")));
    }
    if !quiet.is_empty() {
        return Reading::new(
            OBSERVE,
            Verdict::Wait,
            format!("no requests counted{over} on {}: the shift is not verified yet{blind_note}", quiet.join(", ")),
        );
    }
    if seen.is_empty() {
        return Reading::new(OBSERVE, Verdict::Pass, format!("no route can be observed{blind_note}"));
    }
    Reading::new(OBSERVE, Verdict::Pass, format!("{}{blind_note}", seen.join("; ")))
}

/// Clients as the rollback protocol watches them leave a side: every route whose both sides are
/// counted, its shares over the newest `window` of settled minutes since an instant.
pub struct Clients {
    pub counts: RequestCounts,
    pub observe: Observe,
}

impl crate::rollout::restore::Clients for Clients {
    async fn shares_since(
        &self,
        since: SystemTime,
    ) -> std::result::Result<Option<Vec<(String, Option<Shares>)>>, String> {
        let published = self.counts.published(SystemTime::now(), self.observe.settle, self.observe.window, Some(since));
        let counted = match published.await.map_err(|e| e.to_string())? {
            Published::Counted { counted, .. } => counted,
            Published::Pending { .. } => return Ok(None),
        };
        Ok(Some(
            counted
                .into_iter()
                .filter(|c| c.blue.is_some() && c.green.is_some())
                .map(|c| {
                    let shares = c.shares();
                    (c.name, shares)
                })
                .collect(),
        ))
    }
}

/// What counting requests needs in the account of `scope` (when the profile counts them:
/// `[observe]`, which `status` shows too, or a gate's `min_requests`): `RequestCount` read where
/// the routes' load balancers are, and for an alias the load balancer found by its DNS name.
pub fn policy(counts: bool, scope: &crate::iam::Scope<'_>) -> Vec<crate::iam::Statement> {
    use crate::iam::Statement;
    if !counts || !(scope.alias_lbs_here || scope.target_group_lbs_here) {
        return Vec::new();
    }
    let mut s = Vec::new();
    if scope.alias_lbs_here {
        // The aliased load balancer by its DNS name, and the target groups its listener rules
        // route the record's host to (or those the profile names).
        s.push(Statement::new(
            "LoadBalancersRead",
            &[
                "elasticloadbalancing:DescribeLoadBalancers",
                "elasticloadbalancing:DescribeListeners",
                "elasticloadbalancing:DescribeRules",
                "elasticloadbalancing:DescribeTargetGroups",
            ],
            ["*".to_string()],
        ));
    }
    s.push(Statement::new("GateMetrics", &["cloudwatch:GetMetricData"], ["*".to_string()]));
    s
}

/// How long every stage must bake for DNS: the longest TTL among the Route53 routes whose shift
/// the observed split does not verify — every one without `[observe]`, and with it the records
/// that are no alias to a load balancer (their requests cannot be counted). `[rollout] dns_ttl`
/// says how long clients really keep an answer (`dns_ttl`), where such a route exists.
pub fn dns_floor(routes: &[RouteLive], observed: bool, dns_ttl: Option<Duration>) -> Duration {
    let ttl = routes
        .iter()
        .filter(|r| !(observed && Side::ALL.iter().all(|s| r.request_source(*s).is_some())))
        .filter_map(|r| r.dns_ttl())
        .max()
        .unwrap_or_default();
    if ttl.is_zero() { ttl } else { dns_ttl.unwrap_or(ttl) }
}

#[cfg(test)]
mod tests {
    use aws_sdk_elasticloadbalancingv2::types::{
        Action, ActionTypeEnum, ForwardActionConfig, HostHeaderConditionConfig, RuleCondition, TargetGroupTuple,
    };

    use super::*;

    fn c(name: &str, blue: f64, green: f64) -> Counted {
        Counted { name: name.into(), blue: Some(blue), green: Some(green) }
    }

    /// 14:03 of some day, UTC.
    const T: u64 = 1_765_000_000 / 86_400 * 86_400 + 14 * 3600 + 3 * 60;

    fn m() -> Minutes {
        Minutes { start: at(T), end: at(T + 60) }
    }

    #[test]
    fn a_shift_is_verified_once_the_observed_share_is_within_tolerance() {
        let ten: Percent = "10".parse().unwrap();
        let r = judge(&[c("api A", 1000.0, 0.0)], Side::Green, ten, 5.0, &m());
        assert_eq!(r.verdict, Verdict::Wait, "{r:?}");
        assert!(r.detail.contains("green 0% observed in 14:03 UTC, 10% intended"), "{r:?}");
        let r = judge(&[c("api A", 900.0, 95.0)], Side::Green, ten, 5.0, &m());
        assert_eq!(r.verdict, Verdict::Pass, "{r:?}");
        assert!(r.detail.contains("green 9.548% observed"), "{r:?}");
        // One lagging route holds the stage whatever the others show.
        let r = judge(&[c("a", 90.0, 10.0), c("b", 100.0, 0.0)], Side::Green, ten, 5.0, &m());
        assert_eq!(r.verdict, Verdict::Wait, "{r:?}");
        assert!(r.detail.starts_with("b:"), "{r:?}");
    }

    #[test]
    fn no_requests_during_a_stage_is_not_a_verified_shift_but_is_fine_before_one() {
        let r = judge(&[c("a", 0.0, 0.0)], Side::Green, "25".parse().unwrap(), 5.0, &m());
        assert_eq!(r.verdict, Verdict::Wait, "{r:?}");
        assert!(r.detail.contains("no requests counted in 14:03 UTC"), "{r:?}");
        let r = judge(&[c("a", 0.0, 0.0)], Side::Green, Percent::ZERO, 5.0, &m());
        assert_eq!(r.verdict, Verdict::Pass, "{r:?}");
        // Before the first shift nothing is held: the candidate's share is only said.
        let r = judge(&[c("a", 97.0, 3.0)], Side::Green, Percent::ZERO, 2.0, &m());
        assert_eq!(r.verdict, Verdict::Pass, "{r:?}");
        assert!(r.detail.contains("green 3% observed in 14:03 UTC, 0% intended"), "{r:?}");
        // Clients of an earlier split (a rollback's) still arriving: said as such, not a PASS
        // that reads like a verified 0 %.
        assert!(
            r.detail.contains("clients of an earlier split") && r.detail.contains("not checked before the first shift"),
            "{r:?}"
        );
        let r = judge(&[c("a", 99.5, 0.5)], Side::Green, Percent::ZERO, 2.0, &m());
        assert!(!r.detail.contains("earlier split"), "within tolerance: {r:?}");
    }

    #[test]
    fn routes_that_cannot_be_observed_are_named_and_do_not_hold() {
        let blind = Counted { name: "txt".into(), blue: None, green: None };
        let r = judge(&[c("a", 75.0, 25.0), blind], Side::Green, "25".parse().unwrap(), 1.0, &m());
        assert_eq!(r.verdict, Verdict::Pass, "{r:?}");
        assert!(r.detail.contains("not observable: txt"), "{r:?}");
    }

    #[test]
    fn only_settled_minutes_that_began_after_the_shift_count() {
        let settle = Duration::from_secs(120);
        let w = Duration::from_secs(60);
        // A shift at 14:03:20: the first minute to count is 14:04, settled from 14:07:00.
        let shift = at(T + 20);
        let pending = settled(at(T + 60 + 60 + 119), settle, w, Some(shift));
        assert_eq!(pending, Settled::Pending { first: at(T + 60), at: at(T + 240) });
        let Settled::Pending { first, at: when } = pending else { unreachable!() };
        assert_eq!(
            Settled::pending_detail(first, when),
            "pending: minute 14:04 not yet published (read from 14:07:00 UTC)"
        );
        assert_eq!(
            settled(at(T + 240), settle, w, Some(shift)),
            Settled::Minutes(Minutes { start: at(T + 60), end: at(T + 120) })
        );
        // Later, the newest `window` of settled minutes, never one from before the shift.
        let later = settled(at(T + 600 + 30), settle, Duration::from_secs(180), Some(shift));
        assert_eq!(later, Settled::Minutes(Minutes { start: at(T + 300), end: at(T + 480) }));
        let long = settled(at(T + 300), settle, Duration::from_secs(3600), Some(shift));
        assert_eq!(long, Settled::Minutes(Minutes { start: at(T + 60), end: at(T + 180) }));
        // A shift on a minute's first second counts that minute.
        assert_eq!(
            settled(at(T + 180), settle, w, Some(at(T))),
            Settled::Minutes(Minutes { start: at(T), end: at(T + 60) })
        );
        assert_eq!(Minutes { start: at(T), end: at(T + 180) }.label(), "14:03–14:05");
    }

    #[test]
    fn a_minute_is_judged_once_published_on_every_load_balancer_or_long_enough_absent() {
        let settle = Duration::from_secs(60);
        // Minutes T, T+60, T+120 are settled at T+250 (T+180 ended 70 s ago).
        let (start, end, now) = (T, T + 180, T + 250);
        // Both load balancers have published T+60: T and T+60 are judged, T+120 waits.
        assert_eq!(published_until(start, end, now, settle, &[Some(T + 60), Some(T + 60)]), T + 120);
        // One has published only T (the other T+60): T+60 is not published there yet…
        assert_eq!(published_until(start, end, now, settle, &[Some(T), Some(T + 60)]), T + 60);
        // …but once the other has published the minute after it, it has had its turn.
        assert_eq!(published_until(start, end, now, settle, &[Some(T), Some(T + 120)]), T + 120);
        // Idle (no datapoint at all, nowhere): pending — a missing datapoint is not a zero…
        assert_eq!(published_until(start, end, now, settle, &[None, None]), start);
        // …until the minute is settle + ABSENT_AFTER old: then it counted no request.
        let late = T + 60 + 60 + ABSENT_AFTER.as_secs();
        assert_eq!(published_until(start, end, late, settle, &[None, None]), T + 60);
        // Nothing to count (no series): nothing to wait for.
        assert_eq!(published_until(start, end, now, settle, &[]), end);
    }

    fn rule(default: bool, hosts: &[&str], tgs: &[&str]) -> Rule {
        let forward = ForwardActionConfig::builder()
            .set_target_groups(Some(
                tgs.iter().map(|t| TargetGroupTuple::builder().target_group_arn(*t).build()).collect(),
            ))
            .build();
        let mut r = Rule::builder()
            .is_default(default)
            .actions(Action::builder().r#type(ActionTypeEnum::Forward).forward_config(forward).build());
        if !hosts.is_empty() {
            let cfg = HostHeaderConditionConfig::builder()
                .set_values(Some(hosts.iter().map(|h| h.to_string()).collect()))
                .build();
            r = r.conditions(RuleCondition::builder().field("host-header").host_header_config(cfg).build());
        }
        r.build()
    }

    #[test]
    fn a_hosts_requests_are_counted_at_the_target_groups_its_rules_route_it_to() {
        const A: &str = "arn:aws:elasticloadbalancing:r:1:targetgroup/app-a/1";
        const B: &str = "arn:aws:elasticloadbalancing:r:1:targetgroup/app-b/2";
        const D: &str = "arn:aws:elasticloadbalancing:r:1:targetgroup/default/3";
        // An IngressGroup: one rule per host, a default for the rest.
        let shared =
            [rule(false, &["api.example.com"], &[A]), rule(false, &["*.other.com"], &[B]), rule(true, &[], &[D])];
        assert_eq!(host_target_groups("lb", "API.example.com.", &shared), Ok(vec![A.to_string()]));
        assert_eq!(host_target_groups("lb", "x.other.com", &shared), Ok(vec![B.to_string()]));
        // No rule names the host: the default action's.
        assert_eq!(host_target_groups("lb", "www.example.com", &shared), Ok(vec![D.to_string()]));
        // One target group behind two hosts' rules: the hosts cannot be told apart.
        let both =
            [rule(false, &["api.example.com"], &[A]), rule(false, &["web.example.com"], &[A]), rule(true, &[], &[])];
        let err = host_target_groups("lb", "api.example.com", &both).unwrap_err();
        assert!(err.contains("app-a") && err.contains("cannot be told apart"), "{err}");
        // Nothing forwards the host.
        let none = [rule(false, &["web.example.com"], &[B]), rule(true, &[], &[])];
        assert!(host_target_groups("lb", "api.example.com", &none).unwrap_err().contains("forwards nowhere"));
        assert!(host_matches("*.EXAMPLE.com", "api.example.com") && host_matches("ap?.example.com", "api.example.com"));
        assert!(!host_matches("*.example.com", "example.com"));
    }

    #[test]
    fn dimensions_are_the_arns_suffixes() {
        assert_eq!(
            load_balancer_dimension("arn:aws:elasticloadbalancing:us-west-2:1:loadbalancer/app/front/abc"),
            "app/front/abc"
        );
        assert_eq!(
            target_group_dimension("arn:aws:elasticloadbalancing:us-west-2:1:targetgroup/tg/abc"),
            "targetgroup/tg/abc"
        );
    }
}
