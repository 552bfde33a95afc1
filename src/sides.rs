//! `[sides]`: where each side runs (an EKS namespace behind the ingress ALB the AWS Load Balancer
//! Controller made for it). Before traffic moves, each side's cluster must be ACTIVE, and each
//! weighted alias record must point at its side's *current* ingress ALB — an ALB re-created under
//! a new name would otherwise receive a cutover aimed at a dead name.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::aws::Accounts;
use crate::discover::{IngressAlb, controller_albs, describe_cluster};
use crate::error::{Error, Result};
use crate::model::{Role, Side};
use crate::splitter::route53::{self, AliasTo, RecordEdit};
use crate::splitter::{AwsTraffic, Edit, RouteChange, RouteLive, same_dns};

/// Where each side runs, when the profile says.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Sides {
    pub blue: Option<EksSide>,
    pub green: Option<EksSide>,
    /// `[sides.X] role_arn`: the role for the side's cluster and load balancers, by
    /// [`Side::index`].
    pub roles: [Option<Role>; 2],
}

impl Sides {
    /// The role of `side`'s cluster and load balancers, when it has one.
    pub fn role(&self, side: Side) -> Option<&Role> {
        self.roles[side.index()].as_ref()
    }

    fn eks(&self, side: Side) -> Option<&EksSide> {
        match side {
            Side::Blue => self.blue.as_ref(),
            Side::Green => self.green.as_ref(),
        }
    }

    /// What reading the sides needs in the account of `scope`: each placed side's cluster, and
    /// its ingress ALBs found by the controller's tags.
    pub fn policy(&self, scope: &crate::iam::Scope<'_>) -> Vec<crate::iam::Statement> {
        use crate::iam::Statement;
        let clusters: std::collections::BTreeSet<&str> = Side::ALL
            .into_iter()
            .filter(|s| scope.here(self.role(*s)))
            .filter_map(|s| self.eks(s))
            .map(|e| e.cluster.as_str())
            .collect();
        if clusters.is_empty() {
            return Vec::new();
        }
        let (arn, region, account) = (scope.arn(), scope.region, scope.account);
        vec![
            Statement::new(
                "SidesClusters",
                &["eks:DescribeCluster"],
                clusters.iter().map(|c| format!("{arn}eks:{region}:{account}:cluster/{c}")),
            ),
            Statement::new(
                "LoadBalancersRead",
                &["elasticloadbalancing:DescribeLoadBalancers", "elasticloadbalancing:DescribeTags"],
                ["*".to_string()],
            ),
        ]
    }
}

/// One side's EKS namespace and the Ingress whose ALB serves it.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct EksSide {
    pub cluster: String,
    pub namespace: String,
    pub ingress: String,
}

/// A weighted record whose alias does not point at its side's ingress ALB.
#[derive(Clone, Debug)]
pub struct Stale {
    pub route: usize,
    pub name: String,
    pub side: Side,
    pub points_at: String,
    pub should: AliasTo,
}

/// Checks the sides the profile places: clusters ACTIVE for the sides in `active` (the ones
/// traffic moves to), and the Route53 alias records of every placed side. Each cluster is
/// described and its ALBs listed once, however many sides it holds. A side with `role_arn` is
/// looked up in that role's account. Returns the stale records.
pub async fn check(aws: &Accounts, sides: &Sides, routes: &[RouteLive], active: &[Side]) -> Result<Vec<Stale>> {
    let placed: Vec<(Side, &EksSide)> = Side::ALL.into_iter().filter_map(|s| Some((s, sides.eks(s)?))).collect();
    if placed.is_empty() {
        return Ok(Vec::new());
    }
    // A cluster by its account (the side's role) and name.
    let at = |side: Side, place: &'_ EksSide| -> (Option<&Role>, String) { (sides.role(side), place.cluster.clone()) };
    let mut clusters: BTreeMap<(Option<&Role>, String), Vec<IngressAlb>> = BTreeMap::new();
    for (side, place) in &placed {
        let key = at(*side, place);
        if clusters.contains_key(&key) {
            continue;
        }
        let sdk = aws.of(key.0);
        let eks_client = crate::client!(aws_sdk_eks, sdk);
        let elb = crate::client!(aws_sdk_elasticloadbalancingv2, sdk);
        let cluster = describe_cluster(&eks_client, &place.cluster).await?;
        if placed.iter().any(|(s, p)| at(*s, p) == key && active.contains(s)) {
            cluster.require_active()?;
        }
        let albs = controller_albs(&elb, &cluster).await?;
        clusters.insert(key, albs);
    }

    let mut stale = Vec::new();
    for (side, place) in placed {
        let found: Vec<&IngressAlb> = clusters[&at(side, place)]
            .iter()
            .filter(|lb| lb.serves(Some(&place.namespace), Some(&place.ingress)))
            .collect();
        let lb = match found.as_slice() {
            [one] => *one,
            [] => {
                return Err(Error::refused_hint(
                    format!(
                        "no ingress ALB of the {side} side found (cluster {}, namespace {}, ingress {})",
                        place.cluster, place.namespace, place.ingress
                    ),
                    format!(
                        "`cutover discover --cluster {} --namespace {}` lists what the controller made",
                        place.cluster, place.namespace
                    ),
                ));
            }
            many => {
                return Err(Error::refused(format!(
                    "{} ingress ALBs match the {side} side: {}",
                    many.len(),
                    many.iter().map(|l| l.name.as_str()).collect::<Vec<_>>().join(", ")
                )));
            }
        };
        for r in routes {
            let Some(dns) = r.route53().and_then(|s| route53::alias_dns(s, side)) else { continue };
            if !same_dns(&dns, &lb.dns_name) {
                stale.push(Stale {
                    route: r.index,
                    name: r.name.clone(),
                    side,
                    points_at: dns,
                    should: AliasTo {
                        // Route53's own form for an ALB alias (the console and ExternalDNS write
                        // it): the `dualstack.` name answers AAAA as well as A queries.
                        dns_name: dualstack(&lb.dns_name),
                        hosted_zone_id: lb.canonical_hosted_zone_id.clone(),
                    },
                });
            }
        }
    }
    Ok(stale)
}

/// `my-alb-1.us-west-2.elb.amazonaws.com` → `dualstack.my-alb-1.us-west-2.elb.amazonaws.com`.
fn dualstack(dns: &str) -> String {
    if dns.to_ascii_lowercase().starts_with("dualstack.") { dns.to_string() } else { format!("dualstack.{dns}") }
}

/// The refusal (exit 6) for stale records, naming both load balancers.
pub fn stale_error(stale: &[Stale]) -> Error {
    let mut message = String::from("drift: weighted records do not point at their side's current ingress ALB:");
    for s in stale {
        message.push_str(&format!(
            "\n  {} ({}): points at {}, the {} ingress ALB is {}",
            s.name, s.side, s.points_at, s.side, s.should.dns_name
        ));
    }
    Error::Drift {
        message,
        hint: Some("`--repoint` points them at the current ALB in the same change batch as the weights".into()),
    }
}

/// The changes that point `stale` alias records at their side's current ALB (`--repoint`),
/// added to `changes` (one per route) or as changes of their own; weights unchanged.
pub fn repoint(routes: &[RouteLive], changes: &mut Vec<RouteChange>, stale: Vec<Stale>) {
    for s in stale {
        let Some(r) = routes.iter().find(|r| r.route53().is_some() && r.index == s.route) else { continue };
        let i = match changes.iter().position(|c| c.route.route53().is_some() && c.route.index == s.route) {
            Some(i) => i,
            None => {
                changes.push(RouteChange::new(r, r.weights, true));
                changes.len() - 1
            }
        };
        let mut edit = match changes[i].edit.take() {
            Some(Edit::Route53(e)) => e,
            _ => RecordEdit::default(),
        };
        edit.repoint.push((s.side, s.should));
        changes[i].edit = Some(Edit::Route53(edit));
    }
}

/// Points every preview record at `side`'s alias target (one batch per zone); weights
/// unchanged. Says whether it wrote; a profile without preview records reads nothing.
pub async fn point_preview(traffic: &AwsTraffic, has_previews: bool, side: Side) -> Result<bool> {
    if !has_previews {
        return Ok(false);
    }
    let routes = traffic.read().await?;
    let changes: Vec<RouteChange> = routes
        .iter()
        .filter(|r| r.route53().is_some_and(|s| s.preview.is_some() && route53::preview_side(s) != Some(side)))
        .map(|r| RouteChange::edit(r, Edit::Route53(RecordEdit { preview_to: Some(side), ..RecordEdit::default() })))
        .collect();
    if changes.is_empty() {
        return Ok(false);
    }
    tracing::info!(%side, routes = changes.len(), "pointing preview records");
    traffic.apply(&routes, &changes, None).await.map(|_| true)
}
