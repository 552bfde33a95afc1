//! Traffic splitters: where the blue/green weights live, and how they are read and written.
//!
//! A splitter kind is one file (`route53.rs`: weighted record pairs; `alb.rs`: ALB weighted
//! forward actions) behind [`kind::SplitterKind`], listed once in the registry below. The
//! registry gives the profile its tables ([`Routes`]), closes the kinds' snapshots and edits into
//! enums, and makes [`AwsTraffic`]: every route of one profile, moved together — read and checked
//! whole before any write, written (each kind's routes per account, Route53 routes of one hosted
//! zone in one atomic change batch), waited on until applied, read back. It is the rollout core's
//! [`Traffic`] port: a write there leaves each route at its old or its new split and says whether
//! trying again may help. `set` uses [`AwsTraffic::apply`], which puts back the routes already
//! written when a write fails part-way.

pub mod alb;
pub mod kind;
pub mod route53;

use toml::de::DeTable;

use crate::aws::Accounts;
use crate::error::{Error, Result};
use crate::iam::{Scope, Statement};
use crate::model::{Percent, Role, RouteKind, RouteView, Side, Weights};
use crate::profile::fields::{Bad, Key, section};
use crate::rollout::ports::{Traffic, TrafficError, WriteGuard};
use crate::weights::choose_weights;
pub use kind::{Accepted, LbAccess, RequestSource, SplitterKind, dns_key, same_dns};
use kind::{Build, Change, Read, Splitter as _};

/// The registry: every splitter kind, one line each — `table: Variant => kind type`. The table is
/// the profile's (`[[route53]]`) and must be the kind's name.
macro_rules! kinds {
    ($($field:ident: $Variant:ident => $Kind:ty),+ $(,)?) => {
        /// Every route of a profile, per kind, in the profile's order.
        #[derive(Clone, Debug, Default, PartialEq)]
        pub struct Routes {
            $(pub $field: Vec<<$Kind as SplitterKind>::Route>,)+
        }

        /// The profile's tables of routes, one per kind.
        pub const TABLES: &[&str] = &[$(stringify!($field)),+];

        /// What a read keeps of a route for its write, per kind.
        #[derive(Clone, Debug)]
        pub enum Snap {
            $($Variant(Box<<$Kind as SplitterKind>::Snapshot>),)+
        }

        /// What a write changes besides the weights, per kind.
        #[derive(Clone, Debug)]
        pub enum Edit {
            $($Variant(<$Kind as SplitterKind>::Edit),)+
        }

        impl Routes {
            /// Reads every kind's table out of the profile's top-level `table` (`text` for lines
            /// in errors), and checks each route.
            pub fn parse(table: &mut DeTable<'_>, text: &str) -> std::result::Result<Routes, Bad> {
                let mut routes = Routes::default();
                $(
                    if let Some(value) = table.remove(stringify!($field)) {
                        let at = Key::new(stringify!($field));
                        let raw: Vec<<$Kind as SplitterKind>::Section> = section(value, &at, text)?;
                        for (i, r) in raw.into_iter().enumerate() {
                            let at = Key::new(format!("{}[{i}]", stringify!($field)));
                            let route = <$Kind>::check(r, &at, &routes.$field)?;
                            routes.$field.push(route);
                        }
                    }
                )+
                Ok(routes)
            }

            pub fn is_empty(&self) -> bool {
                true $(&& self.$field.is_empty())+
            }

            /// The kinds the profile uses.
            pub fn kinds(&self) -> Vec<RouteKind> {
                let mut kinds = Vec::new();
                $(if !self.$field.is_empty() { kinds.push(<$Kind as SplitterKind>::KIND); })+
                kinds
            }

            /// What traffic every route moves, kind by kind, sorted: the profile's identity in
            /// the state table.
            pub fn identities(&self) -> Vec<String> {
                let mut all = Vec::new();
                $(all.extend(self.$field.iter().map(|r| format!("{} {}", stringify!($field), <$Kind>::identity(r))));)+
                all.sort();
                all
            }

            /// Every route's role, with where the profile gives it (`route53[0].role_arn`).
            pub fn roles(&self) -> Vec<(String, &Role)> {
                let mut roles = Vec::new();
                $(
                    for (i, r) in self.$field.iter().enumerate() {
                        if let Some(role) = <$Kind>::role(r) {
                            roles.push((format!("{}[{i}].role_arn", stringify!($field)), role));
                        }
                    }
                )+
                roles
            }

            /// Every route's load balancers, per side: the role each is read with, and how it is
            /// found. `sides`: the sides' roles, by [`Side::index`].
            pub fn load_balancers(&self, sides: &[Option<Role>; 2]) -> Vec<(Option<Role>, LbAccess)> {
                let mut lbs = Vec::new();
                $(
                    for r in &self.$field {
                        for side in Side::ALL {
                            lbs.extend(<$Kind>::load_balancer(r, sides[side.index()].as_ref()));
                        }
                    }
                )+
                lbs
            }

            /// What every kind's own calls need in the account of `scope`.
            pub fn policy(&self, scope: &Scope<'_>) -> Vec<Statement> {
                let mut statements = Vec::new();
                $(
                    let here: Vec<_> = self.$field.iter().filter(|r| scope.here(<$Kind>::role(r))).collect();
                    statements.extend(<$Kind>::policy(&here, scope));
                )+
                statements
            }
        }

        impl Snap {
            fn kind(&self) -> RouteKind {
                match self {
                    $(Snap::$Variant(_) => <$Kind as SplitterKind>::KIND,)+
                }
            }

            fn conditional(&self) -> bool {
                match self {
                    $(Snap::$Variant(_) => <$Kind as SplitterKind>::CONDITIONAL,)+
                }
            }

            fn request_source(&self, side: Side) -> Option<RequestSource> {
                match self {
                    $(Snap::$Variant(s) => <$Kind>::request_source(s, side),)+
                }
            }

            fn dns_ttl(&self) -> Option<std::time::Duration> {
                match self {
                    $(Snap::$Variant(s) => <$Kind>::dns_ttl(s),)+
                }
            }

            fn describe(&self, to: Weights, edit: Option<&Edit>) -> Vec<String> {
                match self {
                    $(Snap::$Variant(s) => {
                        #[allow(unreachable_patterns)]
                        let edit = edit.and_then(|e| match e { Edit::$Variant(e) => Some(e), _ => None });
                        <$Kind>::describe(s, to, edit)
                    })+
                }
            }
        }

        impl RouteLive {
            $(
                /// The route's snapshot, when it is of this kind.
                #[allow(unreachable_patterns)]
                pub fn $field(&self) -> Option<&<$Kind as SplitterKind>::Snapshot> {
                    match &self.raw {
                        Snap::$Variant(s) => Some(s),
                        _ => None,
                    }
                }
            )+
        }

        /// Every kind's splitters, one per account.
        struct Parts {
            $($field: Vec<Part<$Kind>>,)+
        }

        impl Parts {
            fn new(aws: &Accounts, routes: &Routes, sides: &[Option<Role>; 2], accepted: &Accepted) -> Parts {
                Parts { $($field: Part::group(aws, &routes.$field, sides, accepted),)+ }
            }

            /// Every route, read at once (`all`: also the kinds whose writes are conditional).
            async fn read(&self, all: bool) -> Result<Vec<RouteLive>> {
                let ($($field,)+) = tokio::join!($(async {
                    if !all && <$Kind as SplitterKind>::CONDITIONAL {
                        return Ok(Vec::new());
                    }
                    let read = futures::future::join_all(self.$field.iter().map(Part::read)).await;
                    let mut routes = Vec::new();
                    for r in read {
                        routes.extend(r?.into_iter().map(|(read, lb_roles)| RouteLive::of(read, lb_roles, |s| Snap::$Variant(Box::new(s)))));
                    }
                    Ok::<_, Error>(routes)
                }),+);
                let mut routes = Vec::new();
                $(routes.extend($field?);)+
                Ok(routes)
            }

            /// Writes `changes`, each kind's through its parts, all at once.
            async fn write(&self, changes: &[RouteChange], guard: WriteGuard) -> Vec<WriteOutcome> {
                let ($($field,)+) = tokio::join!($(async {
                    #[allow(unreachable_patterns)]
                    let mine: Vec<(Change<$Kind>, &RouteChange)> = changes
                        .iter()
                        .filter_map(|c| {
                            let Snap::$Variant(s) = &c.route.raw else { return None };
                            let edit = match &c.edit {
                                Some(Edit::$Variant(e)) => Some(e.clone()),
                                _ => None,
                            };
                            let read = Read { index: c.route.index, name: c.route.name.clone(), weights: c.route.weights, snapshot: s.as_ref().clone() };
                            Some((Change { read, to: c.to, edit }, c))
                        })
                        .collect();
                    let written = futures::future::join_all(self.$field.iter().map(|p| p.write(&mine, guard))).await;
                    written.into_iter().flatten().map(|(given, result)| WriteOutcome {
                        changes: given,
                        result: result.map(|reads| reads.into_iter().map(|(read, lb_roles)| RouteLive::of(read, lb_roles, |s| Snap::$Variant(Box::new(s)))).collect()),
                    }).collect::<Vec<_>>()
                }),+);
                let mut outcomes = Vec::new();
                $(outcomes.extend($field);)+
                outcomes
            }
        }
    };
}

kinds! {
    route53: Route53 => route53::Route53,
    alb: Alb => alb::Alb,
}

/// One route as read from AWS: its weights, and what a write needs to preserve everything else.
#[derive(Clone, Debug)]
pub struct RouteLive {
    /// Position among the profile's routes of this kind.
    pub index: usize,
    pub kind: RouteKind,
    /// A human name: `api.myapp.com. A` or `front/listener:443/default` / `front/rule:10`.
    pub name: String,
    pub weights: Weights,
    /// The role each side's load balancer is read with (its target groups, its request counts),
    /// by [`Side::index`].
    pub lb_roles: [Option<Role>; 2],
    pub(crate) raw: Snap,
}

impl RouteLive {
    fn of<S>(read: Read<S>, lb_roles: [Option<Role>; 2], wrap: impl FnOnce(S) -> Snap) -> RouteLive {
        let raw = wrap(read.snapshot);
        RouteLive { index: read.index, kind: raw.kind(), name: read.name, weights: read.weights, lb_roles, raw }
    }

    /// Whether writes of this route's kind are conditional.
    fn conditional(&self) -> bool {
        self.raw.conditional()
    }

    /// Where `side`'s requests on this route are counted: its target group on the route's ALB,
    /// or the load balancer its alias record points at. `None` where they cannot be.
    pub fn request_source(&self, side: Side) -> Option<RequestSource> {
        self.raw.request_source(side)
    }

    /// How long clients may keep going to a side after a shift (Route53 routes: the DNS TTL).
    pub fn dns_ttl(&self) -> Option<std::time::Duration> {
        self.raw.dns_ttl()
    }

    /// The role `side`'s load balancer is read with.
    pub fn lb_role(&self, side: Side) -> Option<&Role> {
        self.lb_roles[side.index()].as_ref()
    }

    pub fn view(&self) -> RouteView {
        RouteView { kind: self.kind, name: self.name.clone(), weights: self.weights }
    }
}

/// New weights for one route, and what else its write changes.
#[derive(Clone, Debug)]
pub struct RouteChange {
    pub route: RouteLive,
    pub to: Weights,
    /// Whether `to` is exactly the percentage asked for.
    pub exact: bool,
    /// What the write changes besides the weights, in the same request.
    pub edit: Option<Edit>,
}

impl RouteChange {
    /// `route` to `to`, and nothing else.
    pub fn new(route: &RouteLive, to: Weights, exact: bool) -> RouteChange {
        RouteChange { route: route.clone(), to, exact, edit: None }
    }

    /// `route` with its weights kept and `edit` made: a change that moves no traffic (an alias
    /// repointed, the preview record, a health check).
    pub fn edit(route: &RouteLive, edit: Edit) -> RouteChange {
        RouteChange { edit: Some(edit), ..RouteChange::new(route, route.weights, true) }
    }

    /// The route as this change would leave it.
    pub fn planned(&self) -> RouteView {
        RouteView { weights: self.to, ..self.route.view() }
    }

    pub fn is_noop(&self) -> bool {
        self.route.weights == self.to && self.edit.is_none()
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
        self.route.raw.describe(self.to, self.edit.as_ref())
    }
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

/// A route of a kind as read, numbered as in the profile, with its load balancers' roles.
type Profiled<K> = (Read<<K as SplitterKind>::Snapshot>, [Option<Role>; 2]);

/// The routes of one kind in one account (the caller's, or a role's), behind their own
/// splitter. The splitter numbers its routes from 0; `index` gives each its place among the
/// profile's routes of the kind, which is how every route is known outside.
struct Part<K: SplitterKind> {
    splitter: K::Splitter,
    index: Vec<usize>,
    /// Per route of the part: the role each side's load balancer is read with.
    lb_roles: Vec<[Option<Role>; 2]>,
}

impl<K: SplitterKind> Part<K> {
    /// The routes of `all` grouped by their role, each group behind a splitter of its account.
    fn group(aws: &Accounts, all: &[K::Route], sides: &[Option<Role>; 2], accepted: &Accepted) -> Vec<Part<K>> {
        let mut groups: Vec<(Option<&Role>, Vec<usize>)> = Vec::new();
        for (i, r) in all.iter().enumerate() {
            match groups.iter_mut().find(|(g, _)| *g == K::role(r)) {
                Some((_, index)) => index.push(i),
                None => groups.push((K::role(r), vec![i])),
            }
        }
        groups
            .into_iter()
            .map(|(role, index)| {
                // The sides' accounts, where a route's load balancers may be besides its own.
                let mut others: Vec<&Role> = sides.iter().flatten().filter(|s| Some(*s) != role).collect();
                others.dedup();
                let env = Build {
                    sdk: aws.of(role),
                    lb_accounts: others.into_iter().map(|s| aws.of(Some(s))).collect(),
                    accepted: accepted.clone(),
                };
                let routes: Vec<K::Route> = index.iter().map(|&i| all[i].clone()).collect();
                let lb_roles = routes
                    .iter()
                    .map(|r| {
                        Side::ALL
                            .map(|side| K::load_balancer(r, sides[side.index()].as_ref()).and_then(|(role, _)| role))
                    })
                    .collect();
                Part { splitter: K::splitter(&env, routes), index, lb_roles }
            })
            .collect()
    }

    /// A route as the splitter numbers it, numbered as in the profile, with its load balancers' roles.
    fn to_profile(&self, mut read: Read<K::Snapshot>) -> Profiled<K> {
        let roles = self.lb_roles.get(read.index).cloned().unwrap_or_default();
        read.index = self.index[read.index];
        (read, roles)
    }

    async fn read(&self) -> Result<Vec<Profiled<K>>> {
        Ok(self.splitter.read().await?.into_iter().map(|r| self.to_profile(r)).collect())
    }

    /// Writes the changes of this part's routes (of `changes`, all of the part's kind), and
    /// answers them numbered as in the profile, with the changes as given.
    async fn write(
        &self,
        changes: &[(Change<K>, &RouteChange)],
        guard: WriteGuard,
    ) -> Vec<(Vec<RouteChange>, Result<Vec<Profiled<K>>>)> {
        let mine: Vec<Change<K>> = changes
            .iter()
            .filter_map(|(c, _)| {
                let local = self.index.iter().position(|&i| i == c.read.index)?;
                let mut c = c.clone();
                c.read.index = local;
                Some(c)
            })
            .collect();
        if mine.is_empty() {
            return Vec::new();
        }
        let outcomes = self.splitter.write(&mine, guard).await;
        outcomes
            .into_iter()
            .map(|w| {
                let given: Vec<RouteChange> = w
                    .changes
                    .iter()
                    .filter_map(|c| {
                        let index = self.index[c.read.index];
                        changes.iter().find(|(g, _)| g.read.index == index).map(|(_, r)| (*r).clone())
                    })
                    .collect();
                (given, w.result.map(|reads| reads.into_iter().map(|r| self.to_profile(r)).collect()))
            })
            .collect()
    }
}

/// Every route of one profile, moved together.
pub struct AwsTraffic {
    /// Each kind's splitters, one per account: a role's routes are called with its credentials.
    parts: Parts,
    accepted: Accepted,
}

impl AwsTraffic {
    /// The splitters of `routes`; `sides` are the sides' roles (by [`Side::index`]), where the
    /// routes' load balancers may be read.
    pub fn new(aws: &Accounts, routes: &Routes, sides: &[Option<Role>; 2]) -> AwsTraffic {
        let accepted = Accepted::default();
        AwsTraffic { parts: Parts::new(aws, routes, sides, &accepted), accepted }
    }

    /// Changes each time a write is accepted from now on.
    pub fn accepted(&self) -> tokio::sync::watch::Receiver<u64> {
        self.accepted.subscribe()
    }

    /// Reads and checks every route (every kind at once). Any bad route refuses the whole profile.
    pub async fn read(&self) -> Result<Vec<RouteLive>> {
        self.parts.read(true).await
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
        self.parts.write(changes, guard).await
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

    fn accepted(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        Some(self.accepted.subscribe())
    }

    async fn read(&self) -> Result<Vec<RouteLive>, TrafficError> {
        AwsTraffic::read(self).await.map_err(traffic_error)
    }

    /// The routes of conditional kinds as this run's last write left them: the next write is a
    /// compare-and-swap, which the service refuses whole if a route changed since (Route53: a
    /// rollback, a hand edit). The others are read again: without a conditional write, only a
    /// read notices a hand edit.
    async fn reread(&self, last: &Vec<RouteLive>) -> Result<Vec<RouteLive>, TrafficError> {
        let mut routes: Vec<RouteLive> = last.iter().filter(|r| r.conditional()).cloned().collect();
        routes.extend(self.parts.read(false).await.map_err(traffic_error)?);
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
