//! `[sides]`: where each side runs (an EKS namespace behind the ingress ALB the AWS Load Balancer
//! Controller made for it). Before traffic moves, each side's cluster must be ACTIVE, and each
//! weighted alias record must point at its side's *current* ingress ALB — an ALB re-created under
//! a new name would otherwise receive a cutover aimed at a dead name.

use aws_config::SdkConfig;

use crate::discover::{active_cluster, discover};
use crate::error::{Error, Result};
use crate::profile::{EksSide, Profile};
use crate::split::Side;
use crate::splitter::{AliasTo, RouteKind, RouteLive, same_dns};

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

/// Checks the sides the profile places: clusters ACTIVE (for `active`), and the Route53 alias
/// records of every placed side. Returns the stale records.
pub async fn check(sdk: &SdkConfig, profile: &Profile, routes: &[RouteLive], active: &[Side]) -> Result<Vec<Stale>> {
    let mut stale = Vec::new();
    for side in Side::ALL {
        let Some(place) = eks(profile, side) else { continue };
        if active.contains(&side) {
            let client = crate::client!(aws_sdk_eks, sdk);
            active_cluster(&client, &place.cluster).await?;
        }
        let found = discover(sdk, &place.cluster, Some(&place.namespace), Some(&place.ingress)).await?;
        let lb = match found.load_balancers.as_slice() {
            [one] => one,
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
        for r in routes.iter().filter(|r| r.kind == RouteKind::Route53) {
            let Some(dns) = r.alias_dns(side) else { continue };
            if !same_dns(&dns, &lb.dns_name) {
                stale.push(Stale {
                    route: r.index,
                    name: r.name.clone(),
                    side,
                    points_at: dns,
                    should: AliasTo {
                        dns_name: lb.dns_name.clone(),
                        hosted_zone_id: lb.canonical_hosted_zone_id.clone(),
                    },
                });
            }
        }
    }
    Ok(stale)
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
