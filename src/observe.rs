//! Traffic as clients send it, not as it is configured: each side's requests on every route,
//! counted by the load balancers (`AWS/ApplicationELB` `RequestCount`, `Sum` per minute).
//!
//! An ALB route's sides are counted at their target groups behind the route's ALB (dimensions
//! `TargetGroup` and `LoadBalancer`); a Route53 alias route's sides at the load balancers their
//! records point at (`LoadBalancer`). A record that is no alias to a load balancer cannot be
//! observed. AWS reports `RequestCount` only for minutes with requests, so a series without
//! datapoints counts 0.
//!
//! Two readers use the counts: `[observe]` (the observed share of each route against the intended
//! one) and a gate's `min_requests` (enough traffic reached the candidate for "no data" to mean
//! "no errors").

use std::time::{Duration, SystemTime};

use aws_sdk_cloudwatch::Client;
use aws_sdk_cloudwatch::types::{Dimension, Metric, MetricDataQuery, MetricStat};
use aws_smithy_types::DateTime;
use tokio::sync::OnceCell;

use crate::error::{Error, Result};
use crate::model::Role;
use crate::model::{Percent, Reading, Shares, Side, Verdict, fmt_pct};
use crate::splitter::{RequestSource, RouteLive, same_dns};

/// `[observe]`: how the traffic clients actually send is compared with the configured split.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Observe {
    /// Percentage points the observed share may differ from the intended one.
    pub tolerance: f64,
    /// How far back request counts are summed (never before the stage began).
    pub window: Duration,
}

/// The observation's label among gate readings.
pub const OBSERVE: &str = "observe";
/// ALB metrics are published per minute.
const PERIOD: Duration = Duration::from_secs(60);
/// GetMetricData takes at most 500 queries a call.
const MAX_QUERIES: usize = 500;

/// One metric series: the account it is read in (see [`RequestCounts`]) and the dimensions of a
/// `RequestCount`.
type Series = (usize, Vec<(&'static str, String)>);

/// One route's requests per side over a window; `None` for a side that cannot be counted.
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
    /// The series of each route's sides, resolved once (aliases looked up by DNS name).
    series: OnceCell<Vec<[Option<Series>; 2]>>,
}

/// A load balancer's dimension value: `app/front/abc` of `arn:…:loadbalancer/app/front/abc`.
/// (A target group's is what follows the ARN's last colon: `targetgroup/tg/abc`.)
fn load_balancer_dimension(arn: &str) -> String {
    arn.split_once(":loadbalancer/").map(|(_, r)| r.to_string()).unwrap_or_else(|| arn.to_string())
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

    /// Whether any route's candidate can be counted at all.
    pub fn can_count(&self, side: Side) -> bool {
        self.routes.iter().any(|(_, s)| s[side.index()].is_some())
    }

    async fn series(&self) -> Result<&Vec<[Option<Series>; 2]>> {
        self.series.get_or_try_init(|| self.resolve()).await
    }

    /// Target groups are counted behind their ALB; an alias by the load balancer of its DNS name.
    async fn resolve(&self) -> Result<Vec<[Option<Series>; 2]>> {
        // The load balancers of each account an alias is counted in, listed once.
        let mut lbs = vec![Vec::new(); self.accounts.len()];
        for (i, (_, (_, elb))) in self.accounts.iter().enumerate() {
            let mut aliases = self.routes.iter().flat_map(|(_, s)| s.iter().flatten());
            if aliases.any(|(a, s)| *a == i && matches!(s, RequestSource::Alias(_))) {
                lbs[i] = crate::discover::all_load_balancers(elb).await?;
            }
        }
        let lb_of = |account: usize, dns: &str| {
            lbs[account]
                .iter()
                .find(|lb| lb.dns_name.as_deref().is_some_and(|d| same_dns(d, dns)))
                .and_then(|lb| lb.load_balancer_arn.clone())
        };
        Ok(self
            .routes
            .iter()
            .map(|(_, sources)| {
                sources.clone().map(|source| {
                    let (account, source) = source?;
                    let dimensions = match source {
                        RequestSource::TargetGroup { target_group_arn, load_balancer_arn } => vec![
                            ("LoadBalancer", load_balancer_dimension(&load_balancer_arn)),
                            ("TargetGroup", target_group_arn.rsplit(':').next().unwrap_or_default().to_string()),
                        ],
                        RequestSource::Alias(dns) => {
                            let arn = lb_of(account, &dns)?;
                            vec![("LoadBalancer", load_balancer_dimension(&arn))]
                        }
                    };
                    Some((account, dimensions))
                })
            })
            .collect())
    }

    /// Every route's requests per side, summed over `window` back from now (never before
    /// `not_before`, the start of the stage).
    pub async fn read(&self, window: Duration, not_before: Option<SystemTime>) -> Result<Vec<Counted>> {
        let series = self.series().await?;
        let unique = distinct(series.iter().flatten().flatten());
        let sums = self.sums(&unique, window, not_before).await?;
        let sum_of = |s: &Option<Series>| s.as_ref().map(|s| sums[unique.iter().position(|u| *u == s).unwrap_or(0)]);
        Ok(self
            .routes
            .iter()
            .zip(series)
            .map(|((name, _), [b, g])| Counted { name: name.clone(), blue: sum_of(b), green: sum_of(g) })
            .collect())
    }

    /// The requests `side` received over `window` (never before `not_before`), every distinct
    /// series counted once; `None` when no route can count that side.
    pub async fn total(&self, side: Side, window: Duration, not_before: Option<SystemTime>) -> Result<Option<f64>> {
        let series = self.series().await?;
        let unique = distinct(series.iter().filter_map(|s| s[side.index()].as_ref()));
        if unique.is_empty() {
            return Ok(None);
        }
        Ok(Some(self.sums(&unique, window, not_before).await?.iter().sum()))
    }

    /// The Sum of each series over the window: each account's series read with its client, the
    /// accounts at once.
    async fn sums(&self, series: &[&Series], window: Duration, not_before: Option<SystemTime>) -> Result<Vec<f64>> {
        let per_account = futures::future::try_join_all(self.accounts.iter().enumerate().map(|(a, (_, (cw, _)))| {
            let mine: Vec<&Series> = series.iter().copied().filter(|s| s.0 == a).collect();
            async move {
                if mine.is_empty() {
                    return Ok((a, Vec::new()));
                }
                Ok::<_, Error>((a, sums_in(cw, &mine, window, not_before).await?))
            }
        }))
        .await?;
        let mut sums = vec![0.0; series.len()];
        for (a, account_sums) in per_account {
            let positions = series.iter().enumerate().filter(|(_, s)| s.0 == a).map(|(i, _)| i);
            for (i, sum) in positions.zip(account_sums) {
                sums[i] = sum;
            }
        }
        Ok(sums)
    }
}

/// The Sum of each series (all of one account) over the window, in as few GetMetricData calls as
/// the series need.
async fn sums_in(
    cw: &Client,
    series: &[&Series],
    window: Duration,
    not_before: Option<SystemTime>,
) -> Result<Vec<f64>> {
    let now = SystemTime::now();
    let mut start = now - window;
    if let Some(t) = not_before
        && t > start
    {
        start = t;
    }
    // The end lies a period ahead: datapoints are bucketed by the minute they start, and the
    // current minute must be included.
    let end = now + PERIOD;
    let mut sums = vec![0.0; series.len()];
    for (chunk_no, chunk) in series.chunks(MAX_QUERIES).enumerate() {
        let queries: Vec<MetricDataQuery> = chunk
            .iter()
            .enumerate()
            .map(|(i, (_, dims))| {
                let dimensions = dims.iter().map(|(k, v)| Dimension::builder().name(*k).value(v).build()).collect();
                MetricDataQuery::builder()
                    .id(format!("r{}", chunk_no * MAX_QUERIES + i))
                    .metric_stat(
                        MetricStat::builder()
                            .metric(
                                Metric::builder()
                                    .namespace("AWS/ApplicationELB")
                                    .metric_name("RequestCount")
                                    .set_dimensions(Some(dimensions))
                                    .build(),
                            )
                            .period(PERIOD.as_secs() as i32)
                            .stat("Sum")
                            .build(),
                    )
                    .return_data(true)
                    .build()
            })
            .collect();
        let mut token: Option<String> = None;
        for _ in 0..20 {
            let out = cw
                .get_metric_data()
                .set_metric_data_queries(Some(queries.clone()))
                .start_time(DateTime::from(start))
                .end_time(DateTime::from(end))
                .set_next_token(token.take())
                .send()
                .await
                .map_err(|e| crate::aws::error("GetMetricData (RequestCount)", e))?;
            for r in out.metric_data_results.unwrap_or_default() {
                let Some(i) = r.id.as_deref().and_then(|id| id.strip_prefix('r')?.parse::<usize>().ok()) else {
                    continue;
                };
                if let Some(sum) = sums.get_mut(i) {
                    *sum += r.values.unwrap_or_default().iter().sum::<f64>();
                }
            }
            token = out.next_token.filter(|t| !t.is_empty());
            if token.is_none() {
                break;
            }
        }
    }
    Ok(sums)
}

/// The `[observe]` reading: every observable route's candidate share of the requests within
/// `tolerance` percentage points of `intended` passes; a route that lags, or that counted no
/// request while the candidate should have some, waits. Routes that cannot be observed are said
/// and do not hold the stage (the DNS TTL bounds their bake instead).
pub fn judge(counted: &[Counted], candidate: Side, intended: Percent, tolerance: f64, window: Duration) -> Reading {
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
                    let line =
                        format!("{}: {candidate} {}% observed, {}% intended", c.name, fmt_pct(got), fmt_pct(want));
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
        let seen: Vec<String> = seen.into_iter().chain(lagging).collect();
        let what = if seen.is_empty() { "no requests counted yet".to_string() } else { seen.join("; ") };
        return Reading::new(OBSERVE, Verdict::Pass, format!("{what}{blind_note}"));
    }
    if !lagging.is_empty() {
        return Reading::new(OBSERVE, Verdict::Wait, format!("{} (±{tolerance}){blind_note}", lagging.join("; ")));
    }
    if !quiet.is_empty() {
        return Reading::new(
            OBSERVE,
            Verdict::Wait,
            format!(
                "no requests counted in the last {} on {}: the shift is not verified yet{blind_note}",
                humantime::format_duration(window),
                quiet.join(", ")
            ),
        );
    }
    if seen.is_empty() {
        return Reading::new(OBSERVE, Verdict::Pass, format!("no route can be observed{blind_note}"));
    }
    Reading::new(OBSERVE, Verdict::Pass, format!("{}{blind_note}", seen.join("; ")))
}

/// Clients as the rollback protocol watches them leave a side: every route whose both sides are
/// counted, its shares over `window` since an instant.
pub struct Clients {
    pub counts: RequestCounts,
    pub window: Duration,
}

impl crate::rollout::restore::Clients for Clients {
    async fn shares_since(&self, since: SystemTime) -> std::result::Result<Vec<(String, Option<Shares>)>, String> {
        let counted = self.counts.read(self.window, Some(since)).await.map_err(|e| e.to_string())?;
        Ok(counted
            .into_iter()
            .filter(|c| c.blue.is_some() && c.green.is_some())
            .map(|c| {
                let shares = c.shares();
                (c.name, shares)
            })
            .collect())
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
        s.push(Statement::new("LoadBalancersRead", &["elasticloadbalancing:DescribeLoadBalancers"], ["*".to_string()]));
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
    use super::*;

    fn c(name: &str, blue: f64, green: f64) -> Counted {
        Counted { name: name.into(), blue: Some(blue), green: Some(green) }
    }

    const W: Duration = Duration::from_secs(60);

    #[test]
    fn a_shift_is_verified_once_the_observed_share_is_within_tolerance() {
        let ten: Percent = "10".parse().unwrap();
        let r = judge(&[c("api A", 1000.0, 0.0)], Side::Green, ten, 5.0, W);
        assert_eq!(r.verdict, Verdict::Wait, "{r:?}");
        assert!(r.detail.contains("green 0% observed, 10% intended"), "{r:?}");
        let r = judge(&[c("api A", 900.0, 95.0)], Side::Green, ten, 5.0, W);
        assert_eq!(r.verdict, Verdict::Pass, "{r:?}");
        assert!(r.detail.contains("green 9.548% observed"), "{r:?}");
        // One lagging route holds the stage whatever the others show.
        let r = judge(&[c("a", 90.0, 10.0), c("b", 100.0, 0.0)], Side::Green, ten, 5.0, W);
        assert_eq!(r.verdict, Verdict::Wait, "{r:?}");
        assert!(r.detail.starts_with("b:"), "{r:?}");
    }

    #[test]
    fn no_requests_during_a_stage_is_not_a_verified_shift_but_is_fine_before_one() {
        let r = judge(&[c("a", 0.0, 0.0)], Side::Green, "25".parse().unwrap(), 5.0, W);
        assert_eq!(r.verdict, Verdict::Wait, "{r:?}");
        assert!(r.detail.contains("no requests counted in the last 1m"), "{r:?}");
        let r = judge(&[c("a", 0.0, 0.0)], Side::Green, Percent::ZERO, 5.0, W);
        assert_eq!(r.verdict, Verdict::Pass, "{r:?}");
        // Before the first shift nothing is held: the candidate's share is only said.
        let r = judge(&[c("a", 97.0, 3.0)], Side::Green, Percent::ZERO, 2.0, W);
        assert_eq!(r.verdict, Verdict::Pass, "{r:?}");
        assert!(r.detail.contains("green 3% observed, 0% intended"), "{r:?}");
    }

    #[test]
    fn routes_that_cannot_be_observed_are_named_and_do_not_hold() {
        let blind = Counted { name: "txt".into(), blue: None, green: None };
        let r = judge(&[c("a", 75.0, 25.0), blind], Side::Green, "25".parse().unwrap(), 1.0, W);
        assert_eq!(r.verdict, Verdict::Pass, "{r:?}");
        assert!(r.detail.contains("not observable: txt"), "{r:?}");
    }

    #[test]
    fn dimensions_are_the_arns_suffixes() {
        assert_eq!(
            load_balancer_dimension("arn:aws:elasticloadbalancing:us-west-2:1:loadbalancer/app/front/abc"),
            "app/front/abc"
        );
    }
}
