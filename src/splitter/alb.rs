//! The ALB splitter: the weighted forward action of a listener's default action or of a listener
//! rule, between a blue and a green target group.
//!
//! ModifyListener / ModifyRule replace the whole action list, so a write sends back every action
//! exactly as read with only the two weights changed: other actions, other target groups of the
//! forward config, its stickiness config; a rule's conditions and priority are not sent and stay.
//! Listeners and rules owned by the AWS Load Balancer Controller are refused: it would revert the
//! edit on its next reconcile.

use std::collections::BTreeMap;

use aws_sdk_elasticloadbalancingv2::Client;
use aws_sdk_elasticloadbalancingv2::types::{Action, ActionTypeEnum, Listener, Rule};
use futures::{StreamExt, TryStreamExt, stream};

use serde::Deserialize;

use super::kind::{Build, Change, LbAccess, Read, RequestSource, Splitter, SplitterKind, Written};
use crate::error::{Error, Result};
use crate::iam::{Scope, Statement};
use crate::model::{Role, RouteKind, Side, Weights};
use crate::profile::fields::{Bad, Key, bad, bad_hint, non_empty, role};
use crate::rollout::ports::WriteGuard;

/// The kind: weighted forward actions, weights 0–999.
pub const KIND: RouteKind = RouteKind::new("alb", 999);

/// ALB weighted forward actions (`[[alb]]`).
pub struct Alb;

/// An `[[alb]]` table.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Section {
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

impl SplitterKind for Alb {
    const KIND: RouteKind = KIND;
    /// ELB has no conditional write: every write is preceded by a read, so a hand edit is seen.
    const CONDITIONAL: bool = false;
    type Section = Section;
    type Route = AlbRoute;
    type Snapshot = Snapshot;
    type Edit = std::convert::Infallible;
    type Splitter = AlbSplitter;

    fn check(r: Section, at: &Key, earlier: &[AlbRoute]) -> std::result::Result<AlbRoute, Bad> {
        let listener = r.listener.trim().to_string();
        if !is_listener_ref(&listener) {
            return Err(bad_hint(
                at.at("listener"),
                format!("`{listener}` is neither a listener ARN nor LOAD_BALANCER:PORT"),
                "a listener ARN (arn:aws:elasticloadbalancing:REGION:ACCOUNT:listener/app/NAME/ID/ID) or the load balancer's name and the listener's port, e.g. \"front:443\"",
            ));
        }
        let rule = match r.rule.trim() {
            "default" => RuleRef::Default,
            arn if arn.starts_with("arn:") && arn.contains(":listener-rule/") => RuleRef::Arn(arn.to_string()),
            other => {
                return Err(bad_hint(
                    at.at("rule"),
                    format!("`{other}` is neither \"default\" nor a listener rule ARN"),
                    "\"default\" edits the listener's default action; a rule ARN edits that rule",
                ));
            }
        };
        non_empty(&at.at("blue"), &r.blue)?;
        non_empty(&at.at("green"), &r.green)?;
        if r.blue == r.green {
            return Err(bad(at.at("green"), format!("blue and green name the same target group `{}`", r.blue)));
        }
        let route = AlbRoute {
            listener,
            rule,
            blue: r.blue.trim().to_string(),
            green: r.green.trim().to_string(),
            owner_ok: r.owner_ok,
            role: role(at, r.role_arn, r.external_id)?,
        };
        if earlier.iter().any(|a| a.listener == route.listener && a.rule == route.rule) {
            return Err(bad(at.at("rule"), "the same listener action is listed twice"));
        }
        Ok(route)
    }

    fn identity(route: &AlbRoute) -> String {
        match &route.rule {
            RuleRef::Default => format!("{} default", route.listener),
            RuleRef::Arn(rule) => rule.clone(),
        }
    }

    fn role(route: &AlbRoute) -> Option<&Role> {
        route.role.as_ref()
    }

    /// The route's own load balancer, by the target groups it names, with the route's role.
    fn load_balancer(route: &AlbRoute, _side_role: Option<&Role>) -> Option<(Option<Role>, LbAccess)> {
        Some((route.role.clone(), LbAccess::ByTargetGroups))
    }

    fn splitter(env: &Build<'_>, routes: Vec<AlbRoute>) -> AlbSplitter {
        AlbSplitter::new(env, routes)
    }

    fn describe(s: &Snapshot, to: Weights, _edit: Option<&std::convert::Infallible>) -> Vec<String> {
        describe_change(s, to)
    }

    fn request_source(s: &Snapshot, side: Side) -> Option<RequestSource> {
        Some(RequestSource::TargetGroup {
            target_group_arn: match side {
                Side::Blue => s.blue_arn.clone(),
                Side::Green => s.green_arn.clone(),
            },
            load_balancer_arn: load_balancer_arn(&s.listener_arn)?,
        })
    }

    fn policy(routes: &[&AlbRoute], scope: &Scope<'_>) -> Vec<Statement> {
        let mut s = Vec::new();
        if routes.is_empty() {
            return s;
        }
        // ELBv2 describes have no resource-level permissions. The owner check reads the tags of
        // the listener, its load balancer and the rule.
        let mut reads = vec!["elasticloadbalancing:DescribeListeners", "elasticloadbalancing:DescribeTags"];
        if routes.iter().any(|a| matches!(a.rule, RuleRef::Arn(_))) {
            reads.push("elasticloadbalancing:DescribeRules");
        }
        if routes.iter().any(|a| !a.listener.starts_with("arn:")) {
            // A listener named LOAD_BALANCER:PORT.
            reads.push("elasticloadbalancing:DescribeLoadBalancers");
        }
        s.push(Statement::new("LoadBalancersRead", &reads, ["*".to_string()]));
        let (arn, region, account) = (scope.arn(), scope.region, scope.account);
        if routes.iter().any(|a| !a.owner_ok) {
            // Which stack made a listener or rule: authorised on the stack that made it.
            s.push(Statement::new(
                "OwnerStacksRead",
                &["cloudformation:DescribeStackResources"],
                [format!("{arn}cloudformation:{region}:{account}:stack/*/*")],
            ));
        }
        if scope.read_only {
            return s;
        }
        let listener_arn = |l: &str| -> String {
            if l.starts_with("arn:") {
                l.to_string()
            } else {
                let name = l.rsplit_once(':').map(|(n, _)| n).unwrap_or(l);
                format!("{arn}elasticloadbalancing:{region}:{account}:listener/app/{name}/*")
            }
        };
        let listeners: Vec<String> =
            routes.iter().filter(|a| a.rule == RuleRef::Default).map(|a| listener_arn(&a.listener)).collect();
        let rules: Vec<String> = routes
            .iter()
            .filter_map(|a| match &a.rule {
                RuleRef::Arn(r) => Some(r.clone()),
                RuleRef::Default => None,
            })
            .collect();
        if !listeners.is_empty() {
            s.push(Statement::new("AlbShiftListenerWeights", &["elasticloadbalancing:ModifyListener"], listeners));
        }
        if !rules.is_empty() {
            s.push(Statement::new("AlbShiftRuleWeights", &["elasticloadbalancing:ModifyRule"], rules));
        }
        s
    }
}

/// Tag keys the AWS Load Balancer Controller puts on what it owns: its cluster tag, and the stack
/// of the Ingress (or IngressGroup), Service or Gateway API Gateway it made the resource for.
pub const CONTROLLER_TAGS: [&str; 4] =
    ["elbv2.k8s.aws/cluster", "ingress.k8s.aws/stack", "service.k8s.aws/stack", "gateway.k8s.aws/stack"];
/// The tag CloudFormation puts on what a stack made: an update of the stack puts the template's
/// weights back.
pub const CLOUDFORMATION_TAG: &str = "aws:cloudformation:stack-name";
/// DescribeTags accepts at most 20 ARNs a call; listeners and rules are described as many at once.
const BATCH: usize = 20;
const READ_PARALLELISM: usize = 4;

/// Listener and rule edits in flight at once, at first: one wave covers most profiles.
const WRITES_AT_FIRST: usize = 25;
/// The most edits in flight at once (ELB's token buckets hold a few dozen requests).
const WRITES_AT_MOST: usize = 50;

/// How many edits may be in flight: additive increase, multiplicative decrease. It grows by one
/// for each edit answered without throttling, and halves when ELB throttled an attempt since the
/// last answer (the SDK retries the throttled attempt itself, with backoff).
struct Window {
    size: usize,
    throttled: u64,
}

impl Window {
    fn new() -> Window {
        Window { size: WRITES_AT_FIRST, throttled: crate::aws::elb_throttled() }
    }

    fn after_write(&mut self) {
        let now = crate::aws::elb_throttled();
        if now > self.throttled {
            self.throttled = now;
            self.size = (self.size / 2).max(1);
        } else {
            self.size = (self.size + 1).min(WRITES_AT_MOST);
        }
    }
}

/// Tags of a resource, as (key, value) pairs.
type Tags = Vec<(String, String)>;

/// Listeners and rules as described, by ARN.
#[derive(Default)]
struct Described {
    listeners: BTreeMap<String, Listener>,
    rules: BTreeMap<String, Rule>,
}

/// What a write needs of a route: the full action list as read and where the weights sit in it.
#[derive(Clone, Debug)]
pub struct Snapshot {
    pub listener_arn: String,
    pub rule_arn: Option<String>,
    pub actions: Vec<Action>,
    /// Index of the forward action in `actions`.
    pub forward: usize,
    pub blue_arn: String,
    pub green_arn: String,
}

pub struct AlbSplitter {
    client: Client,
    /// CloudFormation, asked which stack made a listener or rule.
    stacks: aws_sdk_cloudformation::Client,
    routes: Vec<AlbRoute>,
    /// The routes with every listener as an ARN, and checked for controller ownership: done by
    /// the first read, so a later read only describes the actions again.
    checked: tokio::sync::OnceCell<Vec<AlbRoute>>,
    accepted: super::kind::Accepted,
}

/// A listener or rule a CloudFormation stack made: the stack's next update (or drift
/// remediation) writes the template's weights back over a rollout's.
fn cloudformation_owned(arn: &str, stack: &str, tagged: bool) -> Error {
    let how = if tagged { format!("tag {CLOUDFORMATION_TAG}") } else { "DescribeStackResources".to_string() };
    Error::refused_hint(
        format!(
            "`{arn}` belongs to CloudFormation stack `{}` ({how}): the stack's next update would put the template's weights back",
            crate::terminal::one_line(stack)
        ),
        concat!(
            "keep the weights out of the template's reach, then set `owner_ok = true` on this [[alb]] route: ",
            "in CloudFormation, leave the stack alone during a cutover or give the forward action's weights from ",
            "parameters you update afterwards; in Terraform (no such tag, but the same risk), ",
            "`lifecycle { ignore_changes = [default_action] }` on the listener (`[action]` on a listener rule)",
        ),
    )
}

/// What a route edits: its listener (the default action) or its rule.
fn edited_arn(r: &AlbRoute) -> String {
    match &r.rule {
        RuleRef::Default => r.listener.clone(),
        RuleRef::Arn(rule) => rule.clone(),
    }
}

/// The load balancer ARN a listener or rule ARN belongs to.
pub fn load_balancer_arn(arn: &str) -> Option<String> {
    // arn:aws:elasticloadbalancing:R:A:listener/app/NAME/LBID/LID[/RULEID]
    let (prefix, rest) = arn.split_once(":listener/").or_else(|| arn.split_once(":listener-rule/"))?;
    let parts: Vec<&str> = rest.split('/').collect();
    (parts.len() >= 3).then(|| format!("{prefix}:loadbalancer/{}/{}/{}", parts[0], parts[1], parts[2]))
}

/// The listener ARN a rule ARN belongs to.
fn listener_of_rule(rule_arn: &str) -> Option<String> {
    let (prefix, rest) = rule_arn.split_once(":listener-rule/")?;
    let parts: Vec<&str> = rest.split('/').collect();
    (parts.len() == 5).then(|| format!("{prefix}:listener/{}", parts[..4].join("/")))
}

/// `tg-blue` out of `arn:…:targetgroup/tg-blue/abc123`.
pub fn target_group_name(arn: &str) -> &str {
    arn.split_once(":targetgroup/").map(|(_, r)| r.split('/').next().unwrap_or(r)).unwrap_or(arn)
}

/// `front` out of a listener ARN.
fn load_balancer_name(arn: &str) -> &str {
    arn.split_once(":listener/")
        .or_else(|| arn.split_once(":listener-rule/"))
        .and_then(|(_, r)| r.split('/').nth(1))
        .unwrap_or(arn)
}

impl AlbSplitter {
    pub fn new(env: &Build<'_>, routes: Vec<AlbRoute>) -> AlbSplitter {
        let (sdk, accepted) = (env.sdk, env.accepted.clone());
        AlbSplitter {
            client: crate::client!(aws_sdk_elasticloadbalancingv2, sdk),
            stacks: crate::client!(aws_sdk_cloudformation, sdk),
            routes,
            checked: tokio::sync::OnceCell::new(),
            accepted,
        }
    }

    async fn describe_listener(&self, arn: &str) -> Result<Listener> {
        let out = self.client.describe_listeners().listener_arns(arn).send().await.map_err(|e| {
            if e.as_service_error().is_some_and(|s| s.is_listener_not_found_exception()) {
                Error::refused_hint(
                    format!("listener `{arn}` not found"),
                    "check `listener` in the profile: `aws elbv2 describe-listeners --load-balancer-arn …`",
                )
            } else {
                crate::aws::error(format!("DescribeListeners {arn}"), e)
            }
        })?;
        out.listeners
            .unwrap_or_default()
            .into_iter()
            .next()
            .ok_or_else(|| Error::refused(format!("listener `{arn}` not found")))
    }

    async fn describe_rule(&self, arn: &str) -> Result<Rule> {
        let out = self.client.describe_rules().rule_arns(arn).send().await.map_err(|e| {
            if e.as_service_error().is_some_and(|s| s.is_rule_not_found_exception()) {
                Error::refused_hint(
                    format!("listener rule `{arn}` not found"),
                    "check `rule` in the profile: `aws elbv2 describe-rules --listener-arn …`",
                )
            } else {
                crate::aws::error(format!("DescribeRules {arn}"), e)
            }
        })?;
        out.rules
            .unwrap_or_default()
            .into_iter()
            .next()
            .ok_or_else(|| Error::refused(format!("listener rule `{arn}` not found")))
    }

    /// Tags of every ARN, 20 per DescribeTags call.
    async fn tags(&self, arns: Vec<String>) -> Result<BTreeMap<String, Tags>> {
        let batches: Vec<Vec<String>> = arns.chunks(BATCH).map(<[String]>::to_vec).collect();
        let found: Vec<Vec<(String, Tags)>> = stream::iter(batches)
            .map(|batch| async move {
                let out = self
                    .client
                    .describe_tags()
                    .set_resource_arns(Some(batch))
                    .send()
                    .await
                    .map_err(|e| crate::aws::error("DescribeTags", e))?;
                Ok::<_, Error>(
                    out.tag_descriptions
                        .unwrap_or_default()
                        .into_iter()
                        .map(|d| {
                            let tags = d
                                .tags
                                .unwrap_or_default()
                                .into_iter()
                                .map(|t| (t.key.unwrap_or_default(), t.value.unwrap_or_default()))
                                .collect();
                            (d.resource_arn.unwrap_or_default(), tags)
                        })
                        .collect(),
                )
            })
            .buffer_unordered(READ_PARALLELISM)
            .try_collect()
            .await?;
        Ok(found.into_iter().flatten().collect())
    }

    /// The listener's ARN: as given, or looked up from `LOAD_BALANCER_NAME:PORT` — then with the
    /// listener as that lookup described it.
    async fn listener_arn(&self, listener: &str) -> Result<(String, Option<Listener>)> {
        if listener.starts_with("arn:") {
            return Ok((listener.to_string(), None));
        }
        let (name, port) = listener
            .rsplit_once(':')
            .and_then(|(n, p)| Some((n, p.parse::<i32>().ok()?)))
            .ok_or_else(|| Error::refused(format!("`{listener}` is neither a listener ARN nor LOAD_BALANCER:PORT")))?;
        let lbs = self.client.describe_load_balancers().names(name).send().await.map_err(|e| {
            if e.as_service_error().is_some_and(|s| s.is_load_balancer_not_found_exception()) {
                Error::refused_hint(
                    format!("load balancer `{name}` not found"),
                    "check `listener` in the profile: `aws elbv2 describe-load-balancers`",
                )
            } else {
                crate::aws::error(format!("DescribeLoadBalancers {name}"), e)
            }
        })?;
        let lb_arn = lbs
            .load_balancers
            .unwrap_or_default()
            .into_iter()
            .find_map(|lb| lb.load_balancer_arn)
            .ok_or_else(|| Error::refused(format!("load balancer `{name}` not found")))?;
        let listeners = self
            .client
            .describe_listeners()
            .load_balancer_arn(&lb_arn)
            .send()
            .await
            .map_err(|e| crate::aws::error(format!("DescribeListeners of {name}"), e))?
            .listeners
            .unwrap_or_default();
        let ports: Vec<String> = listeners.iter().filter_map(|l| l.port.map(|p| p.to_string())).collect();
        let found = listeners.into_iter().find(|l| l.port == Some(port));
        found.and_then(|l| Some((l.listener_arn.clone()?, Some(l)))).ok_or_else(|| {
            Error::refused_hint(
                format!(
                    "load balancer `{name}` has no listener on port {port} (ports: {})",
                    if ports.is_empty() { "none".into() } else { ports.join(", ") }
                ),
                "check `listener` in the profile",
            )
        })
    }

    /// Listener ARNs for `LOAD_BALANCER:PORT` names (no call for an ARN), and rules checked
    /// against their listener; with the listeners the lookups described.
    async fn resolve(&self) -> Result<(Vec<AlbRoute>, BTreeMap<String, Listener>)> {
        let found: Vec<(AlbRoute, Option<Listener>)> = stream::iter(self.routes.iter())
            .map(|r| async move {
                let (listener, described) = self.listener_arn(&r.listener).await?;
                Ok::<_, Error>((AlbRoute { listener, ..r.clone() }, described))
            })
            .buffered(READ_PARALLELISM)
            .try_collect()
            .await?;
        let mut known = BTreeMap::new();
        let mut resolved = Vec::new();
        for (route, described) in found {
            if let Some(l) = described {
                known.insert(route.listener.clone(), l);
            }
            resolved.push(route);
        }
        for r in &resolved {
            if let RuleRef::Arn(arn) = &r.rule
                && listener_of_rule(arn).as_deref() != Some(r.listener.as_str())
            {
                return Err(Error::refused_hint(
                    format!("rule `{arn}` does not belong to listener `{}`", r.listener),
                    "a rule ARN carries its listener's id: take both from `aws elbv2 describe-rules --listener-arn …`",
                ));
            }
        }

        Ok((resolved, known))
    }

    /// Refuses any route whose load balancer, listener or rule the AWS Load Balancer Controller
    /// owns (its tags).
    async fn check_owner(&self, resolved: &[AlbRoute]) -> Result<()> {
        let owned_by = |r: &AlbRoute| {
            let mut arns = vec![r.listener.clone()];
            arns.extend(load_balancer_arn(&r.listener));
            if let RuleRef::Arn(a) = &r.rule {
                arns.push(a.clone());
            }
            arns
        };
        let mut arns: Vec<String> = resolved.iter().flat_map(owned_by).collect();
        arns.sort();
        arns.dedup();
        // What each route edits (its listener's default action, or its rule), asked of
        // CloudFormation beside the tags, unless the route says the stack cannot put weights back.
        let mut edited: Vec<String> = resolved.iter().filter(|r| !r.owner_ok).map(edited_arn).collect();
        edited.sort();
        edited.dedup();
        let (tags, stacks) = tokio::join!(self.tags(arns), self.stacks_of(edited));
        let tags = tags?;
        for r in resolved {
            for arn in owned_by(r) {
                let tags_of_arn = tags.get(&arn).map(Vec::as_slice).unwrap_or_default();
                if let Some((k, v)) = tags_of_arn.iter().find(|(k, _)| CONTROLLER_TAGS.contains(&k.as_str())) {
                    return Err(Error::refused_hint(
                        format!(
                            "`{arn}` is managed by the AWS Load Balancer Controller (tag {k}={v}): it would revert a weight change on its next reconcile"
                        ),
                        "shift between the ingress ALBs with [[route53]] weighted records instead, or use an ALB you own whose target groups are fed by TargetGroupBinding",
                    ));
                }
                // What the route edits: the listener (its default action) or the rule. A load
                // balancer made by a stack whose listener is not is no stack's weights.
                let edited = match &r.rule {
                    RuleRef::Default => arn == r.listener,
                    RuleRef::Arn(rule) => arn == *rule,
                };
                // The stack tag is the fast path; without it, CloudFormation's own answer.
                let stack = tags_of_arn.iter().find(|(k, _)| k == CLOUDFORMATION_TAG);
                if let (true, false, Some((_, stack))) = (edited, r.owner_ok, stack) {
                    return Err(cloudformation_owned(&arn, stack, true));
                }
            }
        }
        let stacks = stacks?;
        for r in resolved.iter().filter(|r| !r.owner_ok) {
            let arn = edited_arn(r);
            if let Some(Some(stack)) = stacks.get(&arn) {
                return Err(cloudformation_owned(&arn, stack, false));
            }
        }
        Ok(())
    }

    /// The stack that made each of `arns`, as CloudFormation says it: DescribeStackResources with
    /// the ARN as `PhysicalResourceId` answers the resources of the stack that made it (a
    /// ValidationError when none did). A resource its stack left behind on deletion
    /// (`DELETE_SKIPPED`) or deleted is no stack's.
    async fn stacks_of(&self, arns: Vec<String>) -> Result<BTreeMap<String, Option<String>>> {
        stream::iter(arns)
            .map(|arn| async move {
                match self.stacks.describe_stack_resources().physical_resource_id(&arn).send().await {
                    Ok(out) => {
                        let stack = out
                            .stack_resources()
                            .iter()
                            .find(|r| {
                                r.physical_resource_id() == Some(arn.as_str())
                                    && !matches!(
                                        r.resource_status().map(|s| s.as_str()),
                                        Some("DELETE_COMPLETE" | "DELETE_SKIPPED")
                                    )
                            })
                            .map(|r| r.stack_name().unwrap_or("an unnamed stack").to_string());
                        Ok((arn, stack))
                    }
                    Err(e) if e.as_service_error().and_then(|s| s.meta().code()) == Some("ValidationError") => {
                        Ok((arn, None))
                    }
                    Err(e) => Err(crate::aws::error(format!("CloudFormation DescribeStackResources of {arn}"), e)),
                }
            })
            .buffer_unordered(READ_PARALLELISM)
            .try_collect()
            .await
    }

    /// Describes every listener and rule the routes edit, in as few calls as the API allows:
    /// listeners 20 ARNs a call; rules by ARN 20 a call, or all rules of a listener at once
    /// when several routes edit rules of that listener. Listeners in `known` (described a moment
    /// ago, when their `LOAD_BALANCER:PORT` was looked up) are not described again.
    async fn describe(&self, routes: &[AlbRoute], known: BTreeMap<String, Listener>) -> Result<Described> {
        let mut listener_arns: Vec<String> = routes
            .iter()
            .filter(|r| r.rule == RuleRef::Default && !known.contains_key(&r.listener))
            .map(|r| r.listener.clone())
            .collect();
        listener_arns.sort();
        listener_arns.dedup();
        let mut rules_of: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        for r in routes {
            if let RuleRef::Arn(a) = &r.rule {
                rules_of.entry(r.listener.as_str()).or_default().push(a.clone());
            }
        }
        let mut found = Described { listeners: known, ..Described::default() };
        for batch in listener_arns.chunks(BATCH) {
            match self.client.describe_listeners().set_listener_arns(Some(batch.to_vec())).send().await {
                Ok(out) => {
                    for l in out.listeners.unwrap_or_default() {
                        found.listeners.insert(l.listener_arn.clone().unwrap_or_default(), l);
                    }
                }
                // One at a time, to name the one that is missing.
                Err(e) if e.as_service_error().is_some_and(|s| s.is_listener_not_found_exception()) => {
                    for arn in batch {
                        found.listeners.insert(arn.clone(), self.describe_listener(arn).await?);
                    }
                }
                Err(e) => return Err(crate::aws::error("DescribeListeners", e)),
            }
        }
        for (listener, rules) in rules_of {
            let by_listener = rules.len() > 1;
            let fetched: Vec<Rule> = if by_listener {
                self.rules_of_listener(listener).await?
            } else {
                let mut all = Vec::new();
                for batch in rules.chunks(BATCH) {
                    match self.client.describe_rules().set_rule_arns(Some(batch.to_vec())).send().await {
                        Ok(out) => all.extend(out.rules.unwrap_or_default()),
                        Err(e) if e.as_service_error().is_some_and(|s| s.is_rule_not_found_exception()) => {
                            for arn in batch {
                                all.push(self.describe_rule(arn).await?);
                            }
                        }
                        Err(e) => return Err(crate::aws::error("DescribeRules", e)),
                    }
                }
                all
            };
            for r in fetched {
                found.rules.insert(r.rule_arn.clone().unwrap_or_default(), r);
            }
            for arn in &rules {
                if !found.rules.contains_key(arn) {
                    return Err(Error::refused_hint(
                        format!("listener rule `{arn}` not found"),
                        "check `rule` in the profile: `aws elbv2 describe-rules --listener-arn …`",
                    ));
                }
            }
        }
        Ok(found)
    }

    /// Every rule of a listener, page by page.
    async fn rules_of_listener(&self, listener: &str) -> Result<Vec<Rule>> {
        let mut rules = Vec::new();
        let mut marker: Option<String> = None;
        for _ in 0..1000 {
            let out = self
                .client
                .describe_rules()
                .listener_arn(listener)
                .page_size(400)
                .set_marker(marker.clone())
                .send()
                .await
                .map_err(|e| {
                    if e.as_service_error().is_some_and(|s| s.is_listener_not_found_exception()) {
                        Error::refused(format!("listener `{listener}` not found"))
                    } else {
                        crate::aws::error(format!("DescribeRules of {listener}"), e)
                    }
                })?;
            rules.extend(out.rules.unwrap_or_default());
            match out.next_marker {
                Some(m) if !m.is_empty() && Some(&m) != marker.as_ref() => marker = Some(m),
                _ => return Ok(rules),
            }
        }
        Ok(rules)
    }

    /// Builds one route from its described listener or rule, and checks its forward action.
    fn build_route(index: usize, route: &AlbRoute, found: &Described) -> Result<Read<Snapshot>> {
        let lb = load_balancer_name(&route.listener);
        let (rule_arn, actions, name) = match &route.rule {
            RuleRef::Default => {
                let l = found
                    .listeners
                    .get(&route.listener)
                    .ok_or_else(|| Error::refused(format!("listener `{}` not found", route.listener)))?;
                let port = l.port.map(|p| p.to_string()).unwrap_or_default();
                (None, l.default_actions.clone().unwrap_or_default(), format!("{lb}/listener:{port}/default"))
            }
            RuleRef::Arn(arn) => {
                let r =
                    found.rules.get(arn).ok_or_else(|| Error::refused(format!("listener rule `{arn}` not found")))?;
                let prio = r.priority.clone().unwrap_or_default();
                (Some(arn.clone()), r.actions.clone().unwrap_or_default(), format!("{lb}/rule:{prio}"))
            }
        };
        let where_ = match &rule_arn {
            Some(r) => format!("rule `{r}`"),
            None => format!("the default action of listener `{}`", route.listener),
        };
        let forward = actions.iter().position(|a| a.r#type == Some(ActionTypeEnum::Forward)).ok_or_else(|| {
            Error::refused_hint(
                format!("{where_} has no forward action"),
                "cutover shifts the weights of a forward action between two target groups",
            )
        })?;
        let groups: Vec<(String, u32)> = {
            let a = &actions[forward];
            match a.forward_config.as_ref().and_then(|f| f.target_groups.as_ref()) {
                Some(tgs) if !tgs.is_empty() => tgs
                    .iter()
                    .filter_map(|t| Some((t.target_group_arn.clone()?, t.weight.unwrap_or(1).max(0) as u32)))
                    .collect(),
                _ => a.target_group_arn.iter().map(|arn| (arn.clone(), 1)).collect(),
            }
        };
        let find = |side: Side| -> Result<(String, u32)> {
            let want = route.target_group(side);
            groups.iter().find(|(arn, _)| arn == want || target_group_name(arn) == want).cloned().ok_or_else(|| {
                Error::refused_hint(
                    format!(
                        "target group `{want}` ({side}) is not in the forward action of {where_} (it forwards to: {})",
                        groups.iter().map(|(a, _)| target_group_name(a)).collect::<Vec<_>>().join(", ")
                    ),
                    "add both target groups to the forward action (the candidate at weight 0) before a cutover",
                )
            })
        };
        let (blue_arn, blue_w) = find(Side::Blue)?;
        let (green_arn, green_w) = find(Side::Green)?;
        Ok(Read {
            index,
            name,
            weights: Weights::new(blue_w, green_w),
            snapshot: Snapshot {
                listener_arn: route.listener.clone(),
                rule_arn,
                actions,
                forward,
                blue_arn,
                green_arn,
            },
        })
    }

    /// One listener or rule edit, and the route as ELB answers it: ModifyListener and ModifyRule
    /// return the listener or rule as modified, which is the read-back. ALB has no conditional
    /// write: a rollout's claim (deadline) bounds when it may still be sent.
    async fn write_one(&self, c: &Change<Alb>, guard: WriteGuard) -> Result<Read<Snapshot>> {
        let s = &c.read.snapshot;
        let actions = rewrite_actions(s, c.to);
        let timeouts = match guard.deadline.map(crate::aws::timeouts_until) {
            None => None,
            Some(Some(t)) => Some(aws_sdk_elasticloadbalancingv2::config::Builder::default().timeout_config(t)),
            Some(None) => {
                return Err(Error::Aws {
                    action: format!("modifying {}", c.read.name),
                    message: "the write's claim ran out before it was sent".into(),
                    transient: true,
                });
            }
        };
        let mut answered = Described::default();
        match &s.rule_arn {
            None => {
                let request =
                    self.client.modify_listener().listener_arn(&s.listener_arn).set_default_actions(Some(actions));
                let sent = match timeouts {
                    Some(t) => request.customize().config_override(t).send().await,
                    None => request.send().await,
                };
                let out = sent.map_err(|e| crate::aws::error(format!("ModifyListener {}", s.listener_arn), e))?;
                for l in out.listeners.unwrap_or_default() {
                    answered.listeners.insert(l.listener_arn.clone().unwrap_or_default(), l);
                }
            }
            Some(rule) => {
                let request = self.client.modify_rule().rule_arn(rule).set_actions(Some(actions));
                let sent = match timeouts {
                    Some(t) => request.customize().config_override(t).send().await,
                    None => request.send().await,
                };
                let out = sent.map_err(|e| crate::aws::error(format!("ModifyRule {rule}"), e))?;
                for r in out.rules.unwrap_or_default() {
                    answered.rules.insert(r.rule_arn.clone().unwrap_or_default(), r);
                }
            }
        }
        tracing::info!(route = %c.read.name, blue = c.to.blue, green = c.to.green, "alb weights written");
        self.accepted.note();
        let route = self
            .checked
            .get()
            .and_then(|routes| routes.get(c.read.index))
            .ok_or_else(|| Error::Other(format!("{} was written before it was read", c.read.name)))?;
        if let Ok(after) = AlbSplitter::build_route(c.read.index, route, &answered) {
            return Ok(after);
        }
        // An answer without the listener or rule: described again.
        let found = self.describe(std::slice::from_ref(route), BTreeMap::new()).await?;
        AlbSplitter::build_route(c.read.index, route, &found)
    }
}

/// The action list as read, with the blue and green weights of the forward action replaced.
fn rewrite_actions(s: &Snapshot, to: Weights) -> Vec<Action> {
    let mut actions = s.actions.clone();
    for a in &mut actions {
        // DescribeRules never returns an OIDC client secret; this keeps the one in place.
        if let Some(oidc) = a.authenticate_oidc_config.as_mut()
            && oidc.client_secret.is_none()
        {
            oidc.use_existing_client_secret = Some(true);
        }
    }
    let fwd = &mut actions[s.forward];
    if let Some(cfg) = fwd.forward_config.as_mut()
        && let Some(tgs) = cfg.target_groups.as_mut()
    {
        for t in tgs.iter_mut() {
            match t.target_group_arn.as_deref() {
                Some(arn) if arn == s.blue_arn => t.weight = Some(to.blue as i32),
                Some(arn) if arn == s.green_arn => t.weight = Some(to.green as i32),
                _ => {}
            }
        }
        // With several target groups the forward config alone names them.
        if tgs.len() > 1 {
            fwd.target_group_arn = None;
        }
    }
    actions
}

impl Splitter<Alb> for AlbSplitter {
    async fn read(&self) -> Result<Vec<Read<Snapshot>>> {
        if self.routes.is_empty() {
            return Ok(Vec::new());
        }
        // The first read checks ownership beside describing the routes: nothing is written
        // before both have answered.
        let found = match self.checked.get() {
            Some(routes) => self.describe(routes, BTreeMap::new()).await?,
            None => {
                let (resolved, known) = self.resolve().await?;
                let (owner, found) = tokio::join!(self.check_owner(&resolved), self.describe(&resolved, known));
                owner?;
                let found = found?;
                let _ = self.checked.set(resolved);
                found
            }
        };
        let routes = self.checked.get().expect("set above");
        routes.iter().enumerate().map(|(i, r)| AlbSplitter::build_route(i, r, &found)).collect()
    }

    /// Each listener or rule edit is its own call (ELB has no batch): they run side by side,
    /// as many at once as ELB takes without throttling — see [`Window`].
    async fn write(&self, changes: &[Change<Alb>], guard: WriteGuard) -> Vec<Written<Alb>> {
        let mut todo = changes.iter();
        let mut window = Window::new();
        let mut running = futures::stream::FuturesUnordered::new();
        let mut outcomes = Vec::new();
        loop {
            while running.len() < window.size {
                let Some(c) = todo.next() else { break };
                running.push(async move {
                    let result = self.write_one(c, guard).await.map(|after| vec![after]);
                    Written { changes: vec![c.clone()], result }
                });
            }
            let Some(done) = running.next().await else { break };
            window.after_write();
            outcomes.push(done);
        }
        outcomes
    }
}

/// The edit a change would send, for `--dry-run`.
fn describe_change(s: &Snapshot, to: Weights) -> Vec<String> {
    let call = match &s.rule_arn {
        Some(rule) => format!("ModifyRule {rule}"),
        None => format!("ModifyListener {} (default action)", s.listener_arn),
    };
    let mut parts = Vec::new();
    let mut kept = Vec::new();
    if let Some(tgs) = s.actions[s.forward].forward_config.as_ref().and_then(|f| f.target_groups.as_ref()) {
        for t in tgs {
            let arn = t.target_group_arn.as_deref().unwrap_or_default();
            let w = t.weight.unwrap_or(1);
            if arn == s.blue_arn {
                parts.push(format!("{} {w} → {}", target_group_name(arn), to.blue));
            } else if arn == s.green_arn {
                parts.push(format!("{} {w} → {}", target_group_name(arn), to.green));
            } else {
                kept.push(format!("{} {w}", target_group_name(arn)));
            }
        }
    }
    let mut line = format!("{call}: forward {}", parts.join(", "));
    if !kept.is_empty() {
        line.push_str(&format!("; kept: {}", kept.join(", ")));
    }
    if let Some(st) =
        s.actions[s.forward].forward_config.as_ref().and_then(|f| f.target_group_stickiness_config.as_ref())
        && st.enabled == Some(true)
    {
        line.push_str(&format!("; stickiness kept ({}s)", st.duration_seconds.unwrap_or_default()));
    }
    if s.actions.len() > 1 {
        line.push_str(&format!("; {} other action(s) kept", s.actions.len() - 1));
    }
    vec![line]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arns_derive() {
        let l = "arn:aws:elasticloadbalancing:us-west-2:1:listener/app/front/abc/def";
        let r = "arn:aws:elasticloadbalancing:us-west-2:1:listener-rule/app/front/abc/def/123";
        assert_eq!(
            load_balancer_arn(l).unwrap(),
            "arn:aws:elasticloadbalancing:us-west-2:1:loadbalancer/app/front/abc"
        );
        assert_eq!(
            load_balancer_arn(r).unwrap(),
            "arn:aws:elasticloadbalancing:us-west-2:1:loadbalancer/app/front/abc"
        );
        assert_eq!(listener_of_rule(r).unwrap(), l);
        assert_eq!(load_balancer_name(l), "front");
        assert_eq!(target_group_name("arn:aws:elasticloadbalancing:us-west-2:1:targetgroup/tg-blue/0a1b"), "tg-blue");
        assert_eq!(target_group_name("tg-blue"), "tg-blue");
    }
}
