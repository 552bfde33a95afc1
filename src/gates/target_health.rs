//! `target-health` gate: the fraction of the candidate's registered targets that are healthy.
//!
//! ALB routes: the candidate target group of each route. Route53 routes: the load balancer the
//! candidate record's alias points at, and its target groups. No registered target fails (an ALB
//! with no healthy target fails open, sending traffic to every target). Targets still in
//! `initial` make a reading that would otherwise fail wait instead.

use std::collections::BTreeSet;

use aws_sdk_elasticloadbalancingv2::Client;
use aws_sdk_elasticloadbalancingv2::types::TargetHealthStateEnum;
use tokio::sync::OnceCell;

use serde::Deserialize;

use super::kind::{Checked, Env, GateCheck, GateContext, GateKind};
use crate::error::{Error, Result};
use crate::iam::{Scope, Statement};
use crate::model::{Reading, Role, Side, Verdict};
use crate::profile::fields::{Bad, Key, bad_hint};
use crate::splitter::{RequestSource, dns_key};

/// The `target-health` gate kind.
pub struct Kind;

/// A `target-health` gate's table.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Section {
    #[serde(default = "default_min_healthy")]
    min_healthy: f64,
}

fn default_min_healthy() -> f64 {
    1.0
}

/// A `target-health` gate, checked.
#[derive(Clone, Debug, PartialEq)]
pub struct Spec {
    /// The fraction of registered targets that must be healthy.
    pub min_healthy: f64,
}

impl GateKind for Kind {
    const TYPE: &'static str = "target-health";
    const AWS: bool = true;
    type Section = Section;
    type Spec = Spec;
    type Reader = TargetHealth;

    fn check(g: Section, at: &Key) -> std::result::Result<Checked<Spec>, Bad> {
        if !(0.0..=1.0).contains(&g.min_healthy) {
            return Err(bad_hint(
                at.at("min_healthy"),
                format!("{} is outside 0–1", g.min_healthy),
                "a fraction: 1.0 means every target healthy",
            ));
        }
        Ok(Checked::new(Spec { min_healthy: g.min_healthy }))
    }

    fn reader(spec: &Spec, env: &Env<'_>) -> TargetHealth {
        TargetHealth::new(env, spec.min_healthy)
    }

    /// DescribeTargetHealth where the candidate's target groups are read: with the gate's role
    /// for every route, else in each route's load balancers' account. A Route53 route's load
    /// balancer is found by its alias's DNS name, and its target groups with it.
    fn policy(_: &Spec, role: Option<&Role>, scope: &Scope<'_>) -> Vec<Statement> {
        let reads_here = match role {
            Some(_) => scope.here(role),
            None => scope.alias_lbs_here || scope.target_group_lbs_here,
        };
        if scope.read_only || !reads_here {
            return Vec::new();
        }
        let mut actions = vec!["elasticloadbalancing:DescribeTargetHealth"];
        let alias_lookup = if role.is_some() { scope.any_alias } else { scope.alias_lbs_here };
        if alias_lookup {
            actions.extend(["elasticloadbalancing:DescribeLoadBalancers", "elasticloadbalancing:DescribeTargetGroups"]);
        }
        vec![Statement::new("LoadBalancersRead", &actions, ["*".to_string()])]
    }
}

/// Reads a `target-health` gate.
pub struct TargetHealth {
    name: String,
    min_healthy: f64,
    /// One per account the candidate's target groups are in, by role.
    accounts: Vec<(Option<Role>, Account)>,
    /// Target groups of the candidate (by account), resolved once.
    groups: [OnceCell<Vec<(usize, String)>>; 2],
}

/// The target groups a gate reads in one account.
struct Account {
    client: Client,
    /// Per side: target group ARNs known from ALB routes, and alias DNS names of Route53 routes.
    known: [(Vec<String>, Vec<String>); 2],
}

impl TargetHealth {
    /// A gate with a role reads every target group with it; without, each route's target groups
    /// are read with the role of its load balancers ([`crate::splitter::RouteLive::lb_role`]).
    fn new(env: &Env<'_>, min_healthy: f64) -> TargetHealth {
        let mut accounts = Vec::new();
        for side in Side::ALL {
            for r in env.routes {
                let Some(source) = r.request_source(side) else { continue };
                let role = env.role.or_else(|| r.lb_role(side));
                let i = env.aws.slot(&mut accounts, role, |sdk| Account {
                    client: crate::client!(aws_sdk_elasticloadbalancingv2, sdk),
                    known: Default::default(),
                });
                let known = &mut accounts[i].1.known[side.index()];
                match source {
                    RequestSource::TargetGroup { target_group_arn, .. } => known.0.push(target_group_arn),
                    RequestSource::Alias { dns, .. } => known.1.push(dns),
                }
            }
        }
        TargetHealth { name: env.name.to_string(), min_healthy, accounts, groups: [OnceCell::new(), OnceCell::new()] }
    }

    async fn groups(&self, side: Side) -> Result<&Vec<(usize, String)>> {
        self.groups[side.index()].get_or_try_init(|| self.resolve(side)).await
    }

    /// Target groups of `side` in every account, each with its account's number.
    async fn resolve(&self, side: Side) -> Result<Vec<(usize, String)>> {
        let mut groups = Vec::new();
        for (i, (_, account)) in self.accounts.iter().enumerate() {
            groups.extend(self.resolve_in(account, side).await?.into_iter().map(|g| (i, g)));
        }
        Ok(groups)
    }

    /// Target groups of `side` in one account: those named by ALB routes, plus those of the load
    /// balancers Route53 aliases point at.
    async fn resolve_in(&self, account: &Account, side: Side) -> Result<Vec<String>> {
        let (tgs, dns) = &account.known[side.index()];
        let mut groups: BTreeSet<String> = tgs.iter().cloned().collect();
        if !dns.is_empty() {
            let wanted: BTreeSet<String> = dns.iter().map(|d| dns_key(d)).collect();
            let found: BTreeSet<String> = crate::discover::all_load_balancers(&account.client)
                .await?
                .into_iter()
                .filter(|lb| lb.dns_name.as_deref().map(dns_key).is_some_and(|d| wanted.contains(&d)))
                .filter_map(|lb| lb.load_balancer_arn)
                .collect();
            if found.is_empty() {
                return Err(Error::refused_hint(
                    format!(
                        "gate `{}`: no load balancer found for the {side} record's alias ({})",
                        self.name,
                        dns.join(", ")
                    ),
                    "target-health follows the weighted record's alias to its ALB, in the account of the side's `role_arn` (else the zone's): point the alias at an ALB there, or give the side (or the gate) the role of the ALB's account",
                ));
            }
            for lb in found {
                let out = account
                    .client
                    .describe_target_groups()
                    .load_balancer_arn(&lb)
                    .send()
                    .await
                    .map_err(|e| crate::aws::error("DescribeTargetGroups", e))?;
                groups.extend(out.target_groups.unwrap_or_default().into_iter().filter_map(|t| t.target_group_arn));
            }
        }
        Ok(groups.into_iter().collect())
    }
}

impl GateCheck for TargetHealth {
    async fn preflight(&self, side: Side) -> Result<()> {
        let groups = self.groups(side).await?;
        if groups.is_empty() {
            return Err(Error::refused(format!("gate `{}`: the {side} side has no target groups to read", self.name)));
        }
        Ok(())
    }

    async fn read(&self, ctx: &GateContext) -> Reading {
        let groups = match self.groups(ctx.candidate).await {
            Ok(g) => g,
            // Throttled or unreachable this time: no verdict on the candidate, read again next poll.
            Err(e) if e.is_transient() => return Reading::new(&self.name, Verdict::Wait, e.to_string()),
            Err(e) => return Reading::new(&self.name, Verdict::Fail, e.to_string()),
        };
        let reads = futures::future::join_all(
            groups
                .iter()
                .map(|(i, tg)| self.accounts[*i].1.client.describe_target_health().target_group_arn(tg).send()),
        )
        .await;
        let (mut total, mut healthy, mut initial) = (0usize, 0usize, 0usize);
        for ((_, tg), read) in groups.iter().zip(reads) {
            let out = match read {
                Ok(o) => o,
                Err(e) => {
                    let msg = aws_smithy_types::error::display::DisplayErrorContext(e).to_string();
                    return Reading::new(&self.name, Verdict::Wait, format!("DescribeTargetHealth {tg}: {msg}"));
                }
            };
            for d in out.target_health_descriptions.unwrap_or_default() {
                let state = d.target_health.and_then(|h| h.state);
                match state {
                    // Leaving on purpose: not counted either way.
                    Some(TargetHealthStateEnum::Draining) => continue,
                    Some(TargetHealthStateEnum::Healthy) => healthy += 1,
                    Some(TargetHealthStateEnum::Initial) => initial += 1,
                    _ => {}
                }
                total += 1;
            }
        }
        if total == 0 {
            return Reading::new(
                &self.name,
                Verdict::Fail,
                format!("no registered targets in {} target group(s)", groups.len()),
            );
        }
        let fraction = healthy as f64 / total as f64;
        let detail = format!("{healthy}/{total} targets healthy (min {:.0}%)", self.min_healthy * 100.0);
        if fraction >= self.min_healthy {
            Reading::new(&self.name, Verdict::Pass, detail)
        } else if (healthy + initial) as f64 / total as f64 >= self.min_healthy {
            Reading::new(&self.name, Verdict::Wait, format!("{detail}; {initial} still initial"))
        } else {
            Reading::new(&self.name, Verdict::Fail, detail)
        }
    }
}
