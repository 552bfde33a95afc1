//! `[sides]`: where each side runs (an EKS namespace behind the ingress ALB the AWS Load Balancer
//! Controller made for it). Before traffic moves, each side's cluster must be ACTIVE, and each
//! weighted alias record must point at its side's *current* ingress ALB — an ALB re-created under
//! a new name would otherwise receive a cutover aimed at a dead name.

use std::collections::BTreeMap;

use crate::aws::Accounts;
use crate::discover::{IngressAlb, controller_albs, describe_cluster};
use crate::error::{Error, Result};
use crate::model::Side;
use crate::profile::{EksSide, Profile, Role};
use crate::splitter::{AliasTo, RouteLive, same_dns};

/// A weighted record whose alias does not point at its side's ingress ALB.
#[derive(Clone, Debug)]
pub struct Stale {
    pub route: usize,
    pub name: String,
    pub side: Side,
    pub points_at: String,
    pub should: AliasTo,
}

fn eks(profile: &Profile, side: Side) -> Option<&EksSide> {
    match side {
        Side::Blue => profile.sides.blue.as_ref(),
        Side::Green => profile.sides.green.as_ref(),
    }
}

/// Checks the sides the profile places: clusters ACTIVE for the sides in `active` (the ones
/// traffic moves to), and the Route53 alias records of every placed side. Each cluster is
/// described and its ALBs listed once, however many sides it holds. A side with `role_arn` is
/// looked up in that role's account. Returns the stale records.
pub async fn check(aws: &Accounts, profile: &Profile, routes: &[RouteLive], active: &[Side]) -> Result<Vec<Stale>> {
    let placed: Vec<(Side, &EksSide)> = Side::ALL.into_iter().filter_map(|s| Some((s, eks(profile, s)?))).collect();
    if placed.is_empty() {
        return Ok(Vec::new());
    }
    // A cluster by its account (the side's role) and name.
    let at = |side: Side, place: &'_ EksSide| -> (Option<&Role>, String) {
        (profile.sides.role(side), place.cluster.clone())
    };
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
        for r in routes.iter().filter(|r| r.kind == crate::splitter::route53::KIND) {
            let Some(dns) = r.alias_dns(side) else { continue };
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
