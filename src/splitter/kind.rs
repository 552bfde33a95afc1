//! What a splitter kind is: everything cutover knows of one way of splitting traffic, in one file
//! behind this trait — its profile table (serde) and the checks of it, the role its calls are made
//! with, how it reads and writes the weights of its routes in one account, whether those writes
//! are conditional, how a change reads in `--dry-run`, where a side's requests are counted, and
//! the IAM it needs. The registry (`splitter/mod.rs`) lists the kinds, one line each, and moves
//! every route of a profile together.

use std::time::Duration;

use aws_config::SdkConfig;
use serde::de::DeserializeOwned;

use crate::error::Result;
use crate::iam::{Scope, Statement};
use crate::model::{Role, RouteKind, Side, Weights};
use crate::profile::fields::{Bad, Key};
use crate::rollout::ports::WriteGuard;

/// A splitter kind.
pub trait SplitterKind: Sized + 'static {
    /// Its name (the profile's table, `[[route53]]`, and the JSON's `kind`) and weight range.
    const KIND: RouteKind;
    /// Whether a write fails whole when a route changed since it was read (a Route53
    /// compare-and-swap batch): then a run may write from the routes as its own last write left
    /// them, without reading again; otherwise every write is preceded by a read.
    const CONDITIONAL: bool;

    /// One table of the profile's array (`[[route53]]`), as serde reads it: `deny_unknown_fields`.
    type Section: DeserializeOwned;
    /// A route as the profile gives it, checked.
    type Route: Clone + std::fmt::Debug + PartialEq + Send + Sync;
    /// What a read keeps of a route for its write (everything a write must preserve).
    type Snapshot: Clone + std::fmt::Debug + Send + Sync;
    /// What a write may change besides the weights (Route53: an alias repointed, the preview
    /// record, a health check), in the same request.
    type Edit: Clone + std::fmt::Debug + Send + Sync;
    /// Reads and writes the routes of one account.
    type Splitter: Splitter<Self>;

    /// Checks one table at `at` (`route53[1]`), knowing the routes of the kind checked before it.
    fn check(section: Self::Section, at: &Key, earlier: &[Self::Route]) -> std::result::Result<Self::Route, Bad>;

    /// The role the route's own calls are made with.
    fn role(route: &Self::Route) -> Option<&Role>;

    /// What traffic the route moves, as the profile names it (`api.myapp.com. A in myapp.com.`):
    /// the state table records a profile's routes, and refuses another profile of the same name
    /// that moves other traffic.
    fn identity(route: &Self::Route) -> String;

    /// How the load balancer that serves `side` on this route is found, and the role it is read
    /// with (`side_role`: the side's `[sides.X] role_arn`); `None` when the route has none.
    fn load_balancer(route: &Self::Route, side_role: Option<&Role>) -> Option<(Option<Role>, LbAccess)>;

    /// The splitter of `routes` (all of one role), calling with `env.sdk`.
    fn splitter(env: &Build<'_>, routes: Vec<Self::Route>) -> Self::Splitter;

    /// The exact API changes a write would make, one line each (`--dry-run`, logs).
    fn describe(snapshot: &Self::Snapshot, to: Weights, edit: Option<&Self::Edit>) -> Vec<String>;

    /// Where `side`'s requests on this route are counted, if they can be.
    fn request_source(snapshot: &Self::Snapshot, side: Side) -> Option<RequestSource>;

    /// How long clients may keep going to a side after a shift (a DNS answer's TTL).
    fn dns_ttl(snapshot: &Self::Snapshot) -> Option<Duration> {
        let _ = snapshot;
        None
    }

    /// The IAM statements the kind's own calls need in the account of `scope`, for `routes`
    /// (those of the kind whose role is that account's).
    fn policy(routes: &[&Self::Route], scope: &Scope<'_>) -> Vec<Statement>;
}

/// What building a splitter is given.
pub struct Build<'a> {
    /// The configuration of the routes' role (or the caller's).
    pub sdk: &'a SdkConfig,
    /// The other accounts the routes' load balancers may be in (the sides' roles).
    pub lb_accounts: Vec<&'a SdkConfig>,
    pub accepted: Accepted,
}

/// How a route's load balancer is found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LbAccess {
    /// By the DNS name a record aliases (DescribeLoadBalancers).
    ByAlias,
    /// By the target groups the route names (their ARNs say the load balancer).
    ByTargetGroups,
}

/// Where one side's requests of a route are counted (`AWS/ApplicationELB` `RequestCount`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RequestSource {
    /// The side's target group behind the route's ALB.
    TargetGroup { target_group_arn: String, load_balancer_arn: String },
    /// The load balancer a weighted alias record points at, by DNS name: the requests of `host`
    /// (the record's name) there — the target groups its listener rules route that host to, or
    /// `target_group` when the profile names it.
    Alias { dns: String, host: String, target_group: Option<String> },
}

/// One route of a kind as read: its place among the profile's routes of the kind, a human name,
/// the weights, and the snapshot a write starts from.
#[derive(Clone, Debug)]
pub struct Read<S> {
    pub index: usize,
    pub name: String,
    pub weights: Weights,
    pub snapshot: S,
}

/// New weights (and edits) for one route of a kind, from the route as read.
#[derive(Debug)]
pub struct Change<K: SplitterKind> {
    pub read: Read<K::Snapshot>,
    pub to: Weights,
    pub edit: Option<K::Edit>,
}

impl<K: SplitterKind> Clone for Change<K> {
    fn clone(&self) -> Self {
        Change { read: self.read.clone(), to: self.to, edit: self.edit.clone() }
    }
}

/// One independent write of a kind (a Route53 change batch, one ALB listener or rule edit): the
/// changes it carried, and the routes as the write left them.
pub struct Written<K: SplitterKind> {
    pub changes: Vec<Change<K>>,
    pub result: Result<Vec<Read<K::Snapshot>>>,
}

/// Reads every route of its kind in one account, writes new weights and waits until applied.
#[allow(async_fn_in_trait)]
pub trait Splitter<K: SplitterKind> {
    /// Reads each route, refusing (exit 2) any the profile names wrongly. Makes no write.
    async fn read(&self) -> Result<Vec<Read<K::Snapshot>>>;
    /// Writes the changes and waits until the service has applied them; each element of the
    /// result is one independent write. `guard` says whether a conditional kind compares, and
    /// when no request may be sent any more.
    async fn write(&self, changes: &[Change<K>], guard: WriteGuard) -> Vec<Written<K>>;
}

/// How many writes (change batches, listener or rule edits) run at once.
pub const WRITE_PARALLELISM: usize = 8;

/// Counts the writes the services have accepted (a Route53 change batch accepted, an ALB edit
/// answered), so a caller can act the moment traffic is moving — a rollback marks the rollout
/// aborted while Route53 still propagates its change.
#[derive(Clone, Debug, Default)]
pub struct Accepted(pub(crate) std::sync::Arc<tokio::sync::watch::Sender<u64>>);

impl Accepted {
    pub fn note(&self) {
        self.0.send_modify(|n| *n += 1);
    }

    /// Changes each time a write is accepted from now on.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.0.subscribe()
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
