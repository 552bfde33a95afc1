//! Traffic splitters: where the blue/green weights live, and how they are read and written.
//!
//! Two kinds: weighted Route53 record pairs ([`route53`]) and ALB weighted forward actions
//! ([`alb`]). Both implement [`Splitter`]; [`AwsTraffic`] holds every route of one profile and
//! moves them together: it reads and checks all of them before any write, writes them (Route53
//! routes of one hosted zone in one atomic change batch), waits until the writes are applied and
//! reads back what it wrote. It is the rollout core's [`Traffic`] port: a write there leaves each
//! route at its old or its new split and says whether trying again may help. `set` uses
//! [`AwsTraffic::apply`], which puts back the routes already written when a write fails part-way.

pub mod alb;
pub mod route53;

use crate::aws::Accounts;
use crate::error::{Error, Result};
use crate::model::{Percent, RouteKind, RouteView, Side, Weights};
use crate::profile::{Profile, Role};
use crate::rollout::ports::{Traffic, TrafficError, WriteGuard};
use crate::weights::choose_weights;

/// How many writes (change batches, listener or rule edits) run at once.
pub const WRITE_PARALLELISM: usize = 8;

/// One route as read from AWS: its weights, and what a write needs to preserve everything else.
#[derive(Clone, Debug)]
pub struct RouteLive {
    /// Position among the profile's routes of this kind.
    pub index: usize,
    pub kind: RouteKind,
    /// A human name: `api.myapp.com. A` or `front/listener 443` / `front/rule 10`.
    pub name: String,
    pub weights: Weights,
    pub(crate) raw: Raw,
}

impl RouteLive {
    /// The target group ARN of `side`, for ALB routes.
    pub fn target_group(&self, side: Side) -> Option<String> {
        match &self.raw {
            Raw::Alb(s) => Some(match side {
                Side::Blue => s.blue_arn.clone(),
                Side::Green => s.green_arn.clone(),
            }),
            Raw::Route53(_) => None,
        }
    }

    /// The side the preview record points at (by alias target), if the route has one.
    pub fn preview_side(&self) -> Option<Side> {
        match &self.raw {
            Raw::Route53(s) => {
                let p = s.preview.as_ref()?.alias_target.as_ref()?;
                let same = |set: &aws_sdk_route53::types::ResourceRecordSet| {
                    set.alias_target.as_ref().is_some_and(|a| same_dns(&a.dns_name, &p.dns_name))
                };
                if same(&s.green) {
                    Some(Side::Green)
                } else if same(&s.blue) {
                    Some(Side::Blue)
                } else {
                    None
                }
            }
            Raw::Alb(_) => None,
        }
    }

    /// The health check `side`'s record set carries, for Route53 routes.
    pub fn health_check_id(&self, side: Side) -> Option<&str> {
        match &self.raw {
            Raw::Route53(s) => s.set(side).health_check_id.as_deref(),
            Raw::Alb(_) => None,
        }
    }

    /// Whether the route has a preview record.
    pub fn has_preview(&self) -> bool {
        matches!(&self.raw, Raw::Route53(s) if s.preview.is_some())
    }

    /// The DNS name `side`'s record set is an alias of, for Route53 alias routes.
    pub fn alias_dns(&self, side: Side) -> Option<String> {
        match &self.raw {
            Raw::Route53(s) => s.set(side).alias_target.as_ref().map(|a| a.dns_name.clone()),
            Raw::Alb(_) => None,
        }
    }

    /// Where `side`'s requests on this route are counted: its target group on the route's ALB,
    /// or the load balancer its alias record points at. `None` for a record that is no alias.
    pub fn request_source(&self, side: Side) -> Option<RequestSource> {
        match &self.raw {
            Raw::Alb(s) => Some(RequestSource::TargetGroup {
                target_group_arn: match side {
                    Side::Blue => s.blue_arn.clone(),
                    Side::Green => s.green_arn.clone(),
                },
                load_balancer_arn: alb::load_balancer_arn(&s.listener_arn)?,
            }),
            Raw::Route53(_) => self.alias_dns(side).map(RequestSource::Alias),
        }
    }

    /// How long resolvers may cache an answer of this route (Route53 routes): the longest TTL of
    /// its two record sets; an alias record answers with its target's TTL, 60 s for an ELB.
    pub fn dns_ttl(&self) -> Option<std::time::Duration> {
        match &self.raw {
            Raw::Route53(s) => [&s.blue, &s.green]
                .iter()
                .map(|set| match (&set.alias_target, set.ttl) {
                    (Some(_), _) => ALIAS_TTL,
                    (None, ttl) => std::time::Duration::from_secs(ttl.unwrap_or(0).max(0) as u64),
                })
                .max(),
            Raw::Alb(_) => None,
        }
    }

    pub fn view(&self) -> RouteView {
        RouteView { kind: self.kind, name: self.name.clone(), weights: self.weights }
    }
}

/// The TTL of an answer for an alias record to a load balancer.
pub const ALIAS_TTL: std::time::Duration = std::time::Duration::from_secs(60);

/// Where one side's requests of a route are counted (`AWS/ApplicationELB` `RequestCount`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RequestSource {
    /// The side's target group behind the route's ALB.
    TargetGroup { target_group_arn: String, load_balancer_arn: String },
    /// The load balancer a weighted alias record points at, by DNS name.
    Alias(String),
}

/// What a backend keeps of a route between reading and writing it.
#[derive(Clone, Debug)]
pub(crate) enum Raw {
    Route53(Box<route53::Snapshot>),
    Alb(Box<alb::Snapshot>),
}

/// New weights for one route.
#[derive(Clone, Debug)]
pub struct RouteChange {
    pub route: RouteLive,
    pub to: Weights,
    /// Whether `to` is exactly the percentage asked for.
    pub exact: bool,
    /// Route53: alias targets to set in the same change batch (`--repoint`), per side.
    pub repoint: Vec<(Side, AliasTo)>,
    /// Route53: point the route's preview record at this side's alias target, in the same batch.
    pub preview_to: Option<Side>,
    /// Route53: health checks to set on a side's record set (`None` removes it), in the same
    /// batch — the safety net.
    pub health_check: Vec<(Side, Option<String>)>,
}

/// Where an alias record should point: a load balancer's DNS name and canonical hosted zone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AliasTo {
    pub dns_name: String,
    pub hosted_zone_id: String,
}

impl RouteChange {
    /// `route` to `to`, and nothing else.
    pub fn new(route: &RouteLive, to: Weights, exact: bool) -> RouteChange {
        RouteChange { route: route.clone(), to, exact, repoint: Vec::new(), preview_to: None, health_check: Vec::new() }
    }

    /// `route` with its weights kept: the base of a change that moves no traffic (an alias
    /// repointed, the preview record, a health check).
    pub fn keep(route: &RouteLive) -> RouteChange {
        RouteChange::new(route, route.weights, true)
    }

    /// The route as this change would leave it.
    pub fn planned(&self) -> RouteView {
        RouteView { weights: self.to, ..self.route.view() }
    }

    pub fn is_noop(&self) -> bool {
        self.route.weights == self.to
            && self.repoint.is_empty()
            && self.preview_to.is_none()
            && self.health_check.is_empty()
    }

    /// Whether this change gives `side` a larger share of the route's traffic.
    pub fn raises(&self, side: Side) -> bool {
        self.to.percent(side) > self.route.weights.percent(side)
    }

    /// This change's route among `routes` (as read again).
    fn live<'a>(&self, routes: &'a [RouteLive]) -> Option<&'a RouteLive> {
        routes.iter().find(|r| r.kind == self.route.kind && r.index == self.route.index)
    }

    /// The exact API change this would make, one line per edit, for `--dry-run` and logs.
    pub fn describe(&self) -> Vec<String> {
        let mut lines = match &self.route.raw {
            Raw::Route53(s) => route53::describe_change(s, self.to),
            Raw::Alb(s) => alb::describe_change(s, self.to),
        };
        for (side, to) in &self.repoint {
            lines.push(format!(
                "repoint: the {side} record's alias → {} (zone {}), in the same change batch",
                to.dns_name, to.hosted_zone_id
            ));
        }
        if let Some(side) = self.preview_to {
            lines.push(format!("preview record → the {side} side's alias target, in the same change batch"));
        }
        for (side, id) in &self.health_check {
            lines.push(format!(
                "the {side} record's health check → {}, in the same change batch",
                id.as_deref().unwrap_or("none")
            ));
        }
        lines
    }
}

/// A splitter: reads every route of its kind, writes new weights and waits until applied.
#[allow(async_fn_in_trait)]
pub trait Splitter {
    /// Reads each route, refusing (exit 2) any the profile names wrongly. Makes no write.
    async fn read(&self) -> Result<Vec<RouteLive>>;
    /// Writes the changes (skipping no-ops) and waits until the service has applied them. Each
    /// element of the result is one independent write unit (a Route53 change batch, an ALB
    /// listener or rule), so a caller can tell what was written. `guard` says whether Route53
    /// batches compare (DELETE + CREATE of the sets as read) and when no request may be sent.
    async fn write(&self, changes: &[RouteChange], guard: WriteGuard) -> Vec<WriteOutcome>;
}

/// The outcome of one independent write (a Route53 change batch, one ALB action).
#[derive(Debug)]
pub struct WriteOutcome {
    /// The changes this write carried.
    pub changes: Vec<RouteChange>,
    /// The routes as the write left them, as the service answered or applied it whole (a Route53
    /// batch as sent; an ALB listener or rule as ModifyListener / ModifyRule return it).
    pub result: Result<Vec<RouteLive>>,
}

/// `routes` with the routes the successful writes answered put in place of their old selves.
fn merged(routes: &[RouteLive], outcomes: &[WriteOutcome]) -> Vec<RouteLive> {
    let mut after = routes.to_vec();
    for written in outcomes.iter().filter_map(|o| o.result.as_ref().ok()).flatten() {
        if let Some(r) = after.iter_mut().find(|r| r.kind == written.kind && r.index == written.index) {
            *r = written.clone();
        }
    }
    after
}

/// Counts the writes the services have accepted (a Route53 change batch accepted, an ALB edit
/// answered), so a caller can act the moment traffic is moving — a rollback marks the rollout
/// aborted while Route53 still propagates its change.
#[derive(Clone, Debug, Default)]
pub struct Accepted(std::sync::Arc<tokio::sync::watch::Sender<u64>>);

impl Accepted {
    fn note(&self) {
        self.0.send_modify(|n| *n += 1);
    }
}

/// The routes of one kind in one account (the caller's, or a role's), behind their own
/// splitter. The splitter numbers its routes from 0; `index` gives each its place among the
/// profile's routes of the kind, which is how every route is known outside.
struct Part<S> {
    splitter: S,
    index: Vec<usize>,
}

impl<S: Splitter> Part<S> {
    /// The routes of `all` grouped by their role, each group behind a splitter `make` builds.
    fn group<R: Clone>(
        all: &[R],
        role: impl Fn(&R) -> Option<&Role>,
        make: impl Fn(Option<&Role>, Vec<R>) -> S,
    ) -> Vec<Part<S>> {
        let mut groups: Vec<(Option<&Role>, Vec<usize>)> = Vec::new();
        for (i, r) in all.iter().enumerate() {
            match groups.iter_mut().find(|(g, _)| *g == role(r)) {
                Some((_, index)) => index.push(i),
                None => groups.push((role(r), vec![i])),
            }
        }
        groups
            .into_iter()
            .map(|(role, index)| Part { splitter: make(role, index.iter().map(|&i| all[i].clone()).collect()), index })
            .collect()
    }

    fn to_profile(&self, mut route: RouteLive) -> RouteLive {
        route.index = self.index[route.index];
        route
    }

    async fn read(&self) -> Result<Vec<RouteLive>> {
        Ok(self.splitter.read().await?.into_iter().map(|r| self.to_profile(r)).collect())
    }

    /// Writes the changes of this part's routes (of `changes`, all of the part's kind), and
    /// answers them numbered as in the profile.
    async fn write(&self, changes: &[RouteChange], guard: WriteGuard) -> Vec<WriteOutcome> {
        let mine: Vec<RouteChange> = changes
            .iter()
            .filter_map(|c| {
                let local = self.index.iter().position(|&i| i == c.route.index)?;
                let mut c = c.clone();
                c.route.index = local;
                Some(c)
            })
            .collect();
        if mine.is_empty() {
            return Vec::new();
        }
        let outcomes = self.splitter.write(&mine, guard).await;
        outcomes
            .into_iter()
            .map(|o| WriteOutcome {
                changes: o
                    .changes
                    .into_iter()
                    .map(|mut c| {
                        c.route = self.to_profile(c.route);
                        c
                    })
                    .collect(),
                result: o.result.map(|routes| routes.into_iter().map(|r| self.to_profile(r)).collect()),
            })
            .collect()
    }
}

/// Every route of one profile, moved together.
pub struct AwsTraffic {
    /// One splitter per account: a role's routes are called with its credentials.
    route53: Vec<Part<route53::Route53Splitter>>,
    alb: Vec<Part<alb::AlbSplitter>>,
    accepted: Accepted,
}

/// Every part's routes, read at once.
async fn read_parts<S: Splitter>(parts: &[Part<S>]) -> Result<Vec<RouteLive>> {
    let read = futures::future::join_all(parts.iter().map(Part::read)).await;
    let mut routes = Vec::new();
    for r in read {
        routes.extend(r?);
    }
    Ok(routes)
}

/// Every part's writes, at once; `changes` are all of the parts' kind.
async fn write_parts<S: Splitter>(parts: &[Part<S>], changes: &[RouteChange], guard: WriteGuard) -> Vec<WriteOutcome> {
    futures::future::join_all(parts.iter().map(|p| p.write(changes, guard))).await.into_iter().flatten().collect()
}

impl AwsTraffic {
    pub fn new(aws: &Accounts, profile: &Profile) -> AwsTraffic {
        let accepted = Accepted::default();
        AwsTraffic {
            route53: Part::group(
                &profile.route53,
                |r| r.role.as_ref(),
                |role, routes| {
                    // The sides' accounts, where an alias may point besides the zone's own.
                    let mut sides: Vec<&Role> = Side::ALL.iter().filter_map(|s| profile.sides.role(*s)).collect();
                    sides.dedup();
                    let alias_accounts: Vec<_> =
                        sides.into_iter().filter(|s| Some(*s) != role).map(|s| aws.of(Some(s))).collect();
                    route53::Route53Splitter::new(aws.of(role), &alias_accounts, routes, accepted.clone())
                },
            ),
            alb: Part::group(
                &profile.alb,
                |r| r.role.as_ref(),
                |role, routes| alb::AlbSplitter::new(aws.of(role), routes, accepted.clone()),
            ),
            accepted,
        }
    }

    /// Changes each time a write is accepted from now on.
    pub fn accepted(&self) -> tokio::sync::watch::Receiver<u64> {
        self.accepted.0.subscribe()
    }

    /// Reads and checks every route (both kinds at once). Any bad route refuses the whole profile.
    pub async fn read(&self) -> Result<Vec<RouteLive>> {
        let (r53, alb) = tokio::join!(read_parts(&self.route53), read_parts(&self.alb));
        let mut routes = r53?;
        routes.extend(alb?);
        Ok(routes)
    }

    /// Every route's split, without what a write needs.
    pub async fn read_views(&self) -> Result<Vec<RouteView>> {
        Ok(self.read().await?.iter().map(RouteLive::view).collect())
    }

    /// The changes that put `percent` of the traffic on `side` on every route.
    pub fn plan(routes: &[RouteLive], side: Side, percent: Percent) -> Vec<RouteChange> {
        routes
            .iter()
            .map(|r| {
                let choice = choose_weights(side, percent, r.kind.max_weight());
                RouteChange::new(r, choice.weights, choice.exact)
            })
            .collect()
    }

    /// Whether any route has a preview record.
    pub fn has_previews(&self) -> bool {
        self.route53.iter().any(|p| p.splitter.has_previews())
    }

    /// Points every preview record at `side`'s alias target (one batch per zone); weights
    /// unchanged. Says whether it wrote; a profile without preview records reads nothing.
    pub async fn point_preview(&self, side: Side) -> Result<bool> {
        if !self.has_previews() {
            return Ok(false);
        }
        let routes = self.read().await?;
        let changes: Vec<RouteChange> = routes
            .iter()
            .filter(|r| r.has_preview() && r.preview_side() != Some(side))
            .map(|r| RouteChange { preview_to: Some(side), ..RouteChange::keep(r) })
            .collect();
        if changes.is_empty() {
            return Ok(false);
        }
        tracing::info!(%side, routes = changes.len(), "pointing preview records");
        self.apply(&routes, &changes, None).await.map(|_| true)
    }

    /// Points alias records at their side's load balancer (`--repoint`); weights unchanged.
    pub async fn repoint(&self, fixes: &[(usize, Side, AliasTo)]) -> Result<()> {
        let routes = self.read().await?;
        let changes: Vec<RouteChange> = routes
            .iter()
            .filter(|r| r.kind == crate::splitter::route53::KIND)
            .filter_map(|r| {
                let repoint: Vec<(Side, AliasTo)> =
                    fixes.iter().filter(|(i, _, _)| *i == r.index).map(|(_, s, a)| (*s, a.clone())).collect();
                (!repoint.is_empty()).then(|| RouteChange { repoint, ..RouteChange::keep(r) })
            })
            .collect();
        if changes.is_empty() {
            return Ok(());
        }
        self.apply(&routes, &changes, None).await.map(|_| ())
    }

    /// Sets the health check of a side's record set on Route53 routes (the safety net), from the
    /// routes just read; weights unchanged. `fixes`: (route index, side, health check id or none).
    pub async fn set_health_checks(&self, routes: &[RouteLive], fixes: &[(usize, Side, Option<String>)]) -> Result<()> {
        let changes: Vec<RouteChange> = routes
            .iter()
            .filter(|r| r.kind == crate::splitter::route53::KIND)
            .filter_map(|r| {
                let health_check: Vec<(Side, Option<String>)> = fixes
                    .iter()
                    .filter(|(i, side, id)| *i == r.index && r.health_check_id(*side) != id.as_deref())
                    .map(|(_, s, id)| (*s, id.clone()))
                    .collect();
                (!health_check.is_empty()).then(|| RouteChange { health_check, ..RouteChange::keep(r) })
            })
            .collect();
        if changes.is_empty() {
            return Ok(());
        }
        self.apply(routes, &changes, None).await.map(|_| ())
    }

    /// Writes every change of `routes` (as read) and verifies what each write answered (see
    /// [`WriteOutcome::result`]). On a part-way failure, puts back the writes that went through —
    /// judged by reading every route back, never assumed: a write whose answer was lost may have
    /// landed, and one that landed needs no undo. Traffic is "as before" only
    /// when the read-back says so; otherwise [`Error::SplitUnknown`] lists every route's split.
    /// A route moved toward `stable` (the side a rollback restores) is never put back: that would
    /// take traffic off the side that is known to work.
    pub async fn apply(
        &self,
        routes: &[RouteLive],
        changes: &[RouteChange],
        stable: Option<Side>,
    ) -> Result<Vec<RouteLive>> {
        let todo: Vec<RouteChange> = changes.iter().filter(|c| !c.is_noop()).cloned().collect();
        let outcomes = self.write_all(&todo, WriteGuard::BLIND).await;
        let after = merged(routes, &outcomes);
        let (done, failed): (Vec<_>, Vec<_>) = outcomes.into_iter().partition(|o| o.result.is_ok());
        let uncertain = failed.iter().any(|o| o.result.as_ref().is_err_and(Error::is_transient));
        if let Some(first) = failed.into_iter().next() {
            let cause = first.result.expect_err("partitioned on error");
            if done.is_empty() && !uncertain {
                // Refused outright, nothing else written: nothing moved.
                return Err(cause);
            }
            return self.put_back(&todo, cause, stable).await;
        }
        match read_back(changes, &after) {
            ReadBack::AsWritten => {}
            ReadBack::Other(what) => {
                return Err(self.split_unknown(format!("{what} (did someone else change it?)")).await);
            }
            ReadBack::Vanished(what) => return Err(Error::Other(what)),
        }
        Ok(after)
    }

    /// After a write of `changes` failed with `cause`: reads every route, puts the ones found at
    /// their new split back to their old one, and reads again to say where traffic is.
    async fn put_back(&self, changes: &[RouteChange], cause: Error, stable: Option<Side>) -> Result<Vec<RouteLive>> {
        let now = match self.read().await {
            Ok(now) => now,
            Err(e) => return Err(self.split_unknown(format!("{cause}; the routes could not be read back: {e}")).await),
        };
        if matches!(read_back(changes, &now), ReadBack::AsWritten) {
            // Every write landed after all (an answer was lost on the way back).
            tracing::warn!("a write reported a failure ({cause}) but every route reads back as written");
            return Ok(now);
        }
        let toward_stable = |c: &RouteChange| stable.is_some_and(|s| c.raises(s));
        let landed: Vec<RouteChange> = changes
            .iter()
            .filter(|c| !toward_stable(c))
            .filter_map(|c| {
                let live = c.live(&now)?;
                (live.weights == c.to && c.to != c.route.weights).then(|| RouteChange::new(live, c.route.weights, true))
            })
            .collect();
        if !landed.is_empty() {
            tracing::warn!(routes = landed.len(), "a write failed part-way; putting back the routes already written");
            let undone = self.write_all(&landed, WriteGuard::BLIND).await;
            if let Some(e) = undone.into_iter().find_map(|o| o.result.err()) {
                return Err(self
                    .split_unknown(format!("{cause}; putting back the routes already written failed too: {e}"))
                    .await);
            }
        }
        let kept = changes.iter().any(|c| toward_stable(c) && c.live(&now).is_some_and(|r| r.weights == c.to));
        if let (true, Some(side)) = (kept, stable) {
            return Err(self
                .split_unknown(format!(
                    "{cause}; the routes already moved toward {side} (the stable side) were left there: a write toward the stable side is never undone"
                ))
                .await);
        }
        let before: Vec<RouteChange> =
            changes.iter().map(|c| RouteChange { to: c.route.weights, ..c.clone() }).collect();
        match self.read().await {
            Ok(after) if matches!(read_back(&before, &after), ReadBack::AsWritten) => {
                Err(cause.noted("(every route reads back at its split from before the write: traffic is as before)"))
            }
            Ok(_) => Err(self.split_unknown(format!("{cause}; the routes do not read back as before")).await),
            Err(e) => Err(self.split_unknown(format!("{cause}; the routes could not be read back: {e}")).await),
        }
    }

    async fn write_all(&self, changes: &[RouteChange], guard: WriteGuard) -> Vec<WriteOutcome> {
        let (r53, alb): (Vec<RouteChange>, Vec<RouteChange>) =
            changes.iter().cloned().partition(|c| c.route.kind == crate::splitter::route53::KIND);
        let (mut a, b) = tokio::join!(write_parts(&self.route53, &r53, guard), write_parts(&self.alb, &alb, guard));
        a.extend(b);
        a
    }

    /// An exit-4 error listing every route's live split, as far as it can be read.
    async fn split_unknown(&self, what: String) -> Error {
        let mut message = format!("{what}\ntraffic may be split unexpectedly; a human must look. Live now:");
        match self.read().await {
            Ok(routes) => {
                for r in routes {
                    message.push_str(&format!("\n  {} {}: {}", r.kind, r.name, r.weights));
                }
            }
            Err(e) => message.push_str(&format!("\n  (could not read the routes: {e})")),
        }
        Error::SplitUnknown { message }
    }
}

/// Two DNS names of one load balancer: case, trailing dot and `dualstack.` do not matter.
pub fn same_dns(a: &str, b: &str) -> bool {
    dns_key(a) == dns_key(b)
}

/// A load balancer's DNS name for comparing:
/// `dualstack.My-ALB-123.us-west-2.elb.amazonaws.com.` → `my-alb-123.us-west-2.elb.amazonaws.com`.
pub fn dns_key(dns: &str) -> String {
    let d = dns.trim_end_matches('.').to_ascii_lowercase();
    d.strip_prefix("dualstack.").map(str::to_string).unwrap_or(d)
}

/// The side holding all traffic on every route, if there is one.
pub fn sole_side(routes: &[RouteLive]) -> Option<Side> {
    crate::model::sole_side(routes.iter().map(|r| r.weights))
}

/// What the routes read back after a write say.
enum ReadBack {
    /// Every changed route holds the weights written.
    AsWritten,
    /// A route holds other weights (said in a sentence).
    Other(String),
    /// A route is gone.
    Vanished(String),
}

/// Compares the routes read back with the weights `changes` wrote.
fn read_back(changes: &[RouteChange], after: &[RouteLive]) -> ReadBack {
    for c in changes {
        match c.live(after) {
            Some(r) if r.weights == c.to => {}
            Some(r) => {
                return ReadBack::Other(format!(
                    "read back {} {} at weights {}:{} after writing {}:{}",
                    r.kind, r.name, r.weights.blue, r.weights.green, c.to.blue, c.to.green
                ));
            }
            None => return ReadBack::Vanished(format!("{} {} vanished after the write", c.route.kind, c.route.name)),
        }
    }
    ReadBack::AsWritten
}

/// A splitter's error, as the rollout core needs to know it: may another attempt succeed?
fn traffic_error(e: Error) -> TrafficError {
    match e {
        e if e.is_transient() => TrafficError::Transient(e.to_string()),
        Error::Drift { message, .. } => TrafficError::Conflict(message),
        e => TrafficError::Failed(e),
    }
}

impl Traffic for AwsTraffic {
    type Routes = Vec<RouteLive>;

    fn views(routes: &Vec<RouteLive>) -> Vec<RouteView> {
        routes.iter().map(RouteLive::view).collect()
    }

    async fn read(&self) -> Result<Vec<RouteLive>, TrafficError> {
        AwsTraffic::read(self).await.map_err(traffic_error)
    }

    /// Route53 routes as this run's last write left them: the next write is a compare-and-swap,
    /// which Route53 refuses whole if a set changed since (a rollback, a hand edit). ALB routes
    /// are described again: ELB has no conditional write, so only a read notices a hand edit.
    async fn reread(&self, last: &Vec<RouteLive>) -> Result<Vec<RouteLive>, TrafficError> {
        let mut routes: Vec<RouteLive> =
            last.iter().filter(|r| r.kind == crate::splitter::route53::KIND).cloned().collect();
        routes.extend(read_parts(&self.alb).await.map_err(traffic_error)?);
        Ok(routes)
    }

    /// Writes every route not yet at the split, in parallel (one batch per hosted zone), and
    /// answers the routes as the writes left them. A failure is not undone: the core reads again
    /// and decides.
    async fn write(
        &self,
        routes: &Vec<RouteLive>,
        side: Side,
        percent: Percent,
        guard: WriteGuard,
    ) -> Result<Vec<RouteLive>, TrafficError> {
        let changes: Vec<RouteChange> =
            AwsTraffic::plan(routes, side, percent).into_iter().filter(|c| !c.is_noop()).collect();
        if changes.is_empty() {
            return Ok(routes.clone());
        }
        let outcomes = self.write_all(&changes, guard).await;
        let after = merged(routes, &outcomes);
        let mut worst: Option<TrafficError> = None;
        for o in outcomes {
            if let Err(e) = o.result {
                let e = traffic_error(e);
                // A refusal for good outranks a conflict, which outranks a passing fault.
                let rank = |e: &TrafficError| match e {
                    TrafficError::Failed(_) => 2,
                    TrafficError::Conflict(_) => 1,
                    TrafficError::Transient(_) => 0,
                };
                if worst.as_ref().is_none_or(|w| rank(&e) > rank(w)) {
                    worst = Some(e);
                }
            }
        }
        if let Some(e) = worst {
            return Err(e);
        }
        match read_back(&changes, &after) {
            ReadBack::AsWritten => Ok(after),
            ReadBack::Other(what) => Err(TrafficError::Conflict(what)),
            ReadBack::Vanished(what) => Err(TrafficError::Failed(Error::Other(what))),
        }
    }
}
