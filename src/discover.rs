//! `cutover discover`: finds the ALBs the AWS Load Balancer Controller created for an EKS
//! cluster, from the tags it puts on them, after checking the cluster serves (ACTIVE, or UPDATING:
//! an upgrade keeps serving):
//! - an Ingress's: `elbv2.k8s.aws/cluster`, `ingress.k8s.aws/resource = LoadBalancer`,
//!   `ingress.k8s.aws/stack = NAMESPACE/INGRESS`;
//! - an IngressGroup's: the same, with `ingress.k8s.aws/stack = GROUP` (the group spans
//!   namespaces, so it is named by the group alone);
//! - a Gateway API Gateway's: `elbv2.k8s.aws/cluster`, `gateway.k8s.aws/stack = NAMESPACE/GATEWAY`.

use std::collections::BTreeMap;
use std::fmt;

use aws_config::SdkConfig;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::terminal::one_line;

/// DescribeTags takes at most 20 ARNs a call.
const TAG_BATCH: usize = 20;

#[derive(Clone, Debug, Serialize)]
pub struct Cluster {
    pub name: String,
    pub status: String,
    pub version: Option<String>,
    pub vpc_id: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct IngressAlb {
    pub name: String,
    pub arn: String,
    pub dns_name: String,
    pub canonical_hosted_zone_id: String,
    pub scheme: String,
    pub state: String,
    /// `NAMESPACE/INGRESS`, or an IngressGroup name.
    pub stack: String,
    pub namespace: Option<String>,
    pub ingress: Option<String>,
    pub target_groups: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct Discovery {
    pub cluster: Cluster,
    pub load_balancers: Vec<IngressAlb>,
}

impl fmt::Display for Discovery {
    /// What EKS and ELBv2 said, and nothing in place of what they did not say: an absent version,
    /// VPC, scheme or state is left out (the JSON has it as null or "").
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.cluster;
        let mut facts = vec![one_line(&c.status).into_owned()];
        facts.extend(c.version.as_deref().map(|v| format!("Kubernetes {}", one_line(v))));
        facts.extend(c.vpc_id.as_deref().map(|v| format!("VPC {}", one_line(v))));
        writeln!(f, "cluster {}: {}", one_line(&c.name), facts.join(", "))?;
        if self.load_balancers.is_empty() {
            return writeln!(f, "no ingress ALB of the AWS Load Balancer Controller found for it");
        }
        for lb in &self.load_balancers {
            let said: Vec<&str> =
                [lb.scheme.as_str(), lb.state.as_str()].into_iter().filter(|s| !s.is_empty()).collect();
            let said = if said.is_empty() { String::new() } else { format!(" ({})", said.join(", ")) };
            writeln!(f, "  {:<28} {:<24} {}{said}", lb.stack, lb.name, lb.dns_name)?;
            let zone = match lb.canonical_hosted_zone_id.as_str() {
                "" => String::new(),
                z => format!("hosted zone {z}; "),
            };
            let groups = if lb.target_groups.is_empty() { "none".to_string() } else { lb.target_groups.join(", ") };
            writeln!(f, "    {zone}target groups: {groups}")?;
        }
        Ok(())
    }
}

/// The cluster as EKS describes it; refused (exit 2) when it does not exist.
pub async fn describe_cluster(eks: &aws_sdk_eks::Client, name: &str) -> Result<Cluster> {
    let out = eks.describe_cluster().name(name).send().await.map_err(|e| {
        if e.as_service_error().is_some_and(|s| s.is_resource_not_found_exception()) {
            Error::refused_hint(format!("EKS cluster `{name}` not found"), "check the name: `aws eks list-clusters`")
        } else {
            crate::aws::error(format!("DescribeCluster {name}"), e)
        }
    })?;
    let c = out.cluster.ok_or_else(|| Error::refused(format!("EKS cluster `{name}` not found")))?;
    Ok(Cluster {
        name: name.to_string(),
        status: c.status.as_ref().map(|s| s.as_str().to_string()).unwrap_or_else(|| "UNKNOWN".into()),
        version: c.version,
        vpc_id: c.resources_vpc_config.and_then(|v| v.vpc_id),
    })
}

impl Cluster {
    /// Whether the cluster serves: ACTIVE, or UPDATING (a version or configuration upgrade keeps
    /// its workloads serving). CREATING, DELETING, FAILED and PENDING do not.
    pub fn serves(&self) -> bool {
        matches!(self.status.as_str(), "ACTIVE" | "UPDATING")
    }

    /// Held (exit 7) unless the cluster serves: no traffic is moved to it now, and a later run
    /// (the next `advance`) may find it serving. Not a usage error: the profile is right.
    pub fn require_active(&self) -> Result<()> {
        if self.serves() {
            return Ok(());
        }
        Err(Error::Gate {
            held: true,
            message: format!(
                "EKS cluster `{}` is {}, not ACTIVE or UPDATING: no traffic is moved to it\nhint: wait until `aws eks describe-cluster --name {} --query cluster.status` says ACTIVE",
                self.name, self.status, self.name
            ),
        })
    }
}

/// The cluster, refused (exit 2) when it does not exist or is not ACTIVE.
pub async fn active_cluster(eks: &aws_sdk_eks::Client, name: &str) -> Result<Cluster> {
    let cluster = describe_cluster(eks, name).await?;
    cluster.require_active()?;
    Ok(cluster)
}

impl IngressAlb {
    /// Whether this ALB serves `namespace` and `ingress` (each when given; an IngressGroup's stack
    /// is the group name).
    pub fn serves(&self, namespace: Option<&str>, ingress: Option<&str>) -> bool {
        match &self.namespace {
            Some(ns) => {
                namespace.is_none_or(|want| ns == want)
                    && ingress.is_none_or(|want| self.ingress.as_deref() == Some(want) || self.stack == want)
            }
            // An IngressGroup's ALB serves several namespaces: it is named by its group, and a
            // namespace alone does not pick it.
            None => match ingress {
                Some(want) => self.stack == want,
                None => namespace.is_none(),
            },
        }
    }
}

/// Every load balancer of the account and region, DescribeLoadBalancers page by page.
pub async fn all_load_balancers(
    elb: &aws_sdk_elasticloadbalancingv2::Client,
) -> Result<Vec<aws_sdk_elasticloadbalancingv2::types::LoadBalancer>> {
    let mut lbs = Vec::new();
    let mut marker: Option<String> = None;
    for _ in 0..1000 {
        let out = elb
            .describe_load_balancers()
            .page_size(400)
            .set_marker(marker.clone())
            .send()
            .await
            .map_err(|e| crate::aws::error("DescribeLoadBalancers", e))?;
        lbs.extend(out.load_balancers.unwrap_or_default());
        match out.next_marker {
            Some(m) if !m.is_empty() && Some(&m) != marker.as_ref() => marker = Some(m),
            _ => break,
        }
    }
    Ok(lbs)
}

/// Every ingress ALB the controller made for `cluster`, found by its tags (target groups not
/// read): DescribeLoadBalancers page by page, DescribeTags 20 ARNs a call.
pub async fn controller_albs(
    elb: &aws_sdk_elasticloadbalancingv2::Client,
    cluster: &Cluster,
) -> Result<Vec<IngressAlb>> {
    let mut lbs = all_load_balancers(elb).await?;
    if let Some(vpc) = &cluster.vpc_id {
        lbs.retain(|lb| lb.vpc_id.as_deref() == Some(vpc.as_str()));
    }

    let arns: Vec<String> = lbs.iter().filter_map(|lb| lb.load_balancer_arn.clone()).collect();
    let mut tags: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for batch in arns.chunks(TAG_BATCH) {
        let out = elb
            .describe_tags()
            .set_resource_arns(Some(batch.to_vec()))
            .send()
            .await
            .map_err(|e| crate::aws::error("DescribeTags", e))?;
        for d in out.tag_descriptions.unwrap_or_default() {
            let t = d
                .tags
                .unwrap_or_default()
                .into_iter()
                .filter_map(|t| Some((t.key?, t.value.unwrap_or_default())))
                .collect();
            tags.insert(d.resource_arn.unwrap_or_default(), t);
        }
    }

    let mut found = Vec::new();
    for lb in lbs {
        let arn = lb.load_balancer_arn.clone().unwrap_or_default();
        let Some(t) = tags.get(&arn) else { continue };
        if t.get("elbv2.k8s.aws/cluster") != Some(&cluster.name) {
            continue;
        }
        let ingress = t.get("ingress.k8s.aws/resource").map(String::as_str) == Some("LoadBalancer");
        let stack = match (ingress, t.get("ingress.k8s.aws/stack"), t.get("gateway.k8s.aws/stack")) {
            (true, Some(stack), _) => stack.clone(),
            (_, _, Some(stack)) => stack.clone(),
            _ => continue,
        };
        let (ns, ing) = match stack.split_once('/') {
            Some((n, i)) => (Some(n.to_string()), Some(i.to_string())),
            None => (None, None),
        };
        found.push(IngressAlb {
            name: lb.load_balancer_name.unwrap_or_default(),
            arn,
            dns_name: lb.dns_name.unwrap_or_default(),
            canonical_hosted_zone_id: lb.canonical_hosted_zone_id.unwrap_or_default(),
            scheme: lb.scheme.map(|s| s.as_str().to_string()).unwrap_or_default(),
            state: lb.state.and_then(|s| s.code).map(|c| c.as_str().to_string()).unwrap_or_default(),
            stack,
            namespace: ns,
            ingress: ing,
            target_groups: Vec::new(),
        });
    }
    found.sort_by(|a, b| a.stack.cmp(&b.stack).then(a.name.cmp(&b.name)));
    Ok(found)
}

/// Finds the controller's ingress ALBs of `cluster` (and `namespace`, `ingress` when given),
/// with their target groups, after checking the cluster is ACTIVE.
pub async fn discover(
    sdk: &SdkConfig,
    cluster: &str,
    namespace: Option<&str>,
    ingress: Option<&str>,
) -> Result<Discovery> {
    let eks = crate::client!(aws_sdk_eks, sdk);
    let elb = crate::client!(aws_sdk_elasticloadbalancingv2, sdk);
    let info = active_cluster(&eks, cluster).await?;
    let mut found = controller_albs(&elb, &info).await?;
    found.retain(|lb| lb.serves(namespace, ingress));
    for lb in &mut found {
        lb.target_groups = match elb.describe_target_groups().load_balancer_arn(&lb.arn).send().await {
            Ok(out) => out.target_groups.unwrap_or_default().into_iter().filter_map(|t| t.target_group_name).collect(),
            // No listener forwards anywhere yet (the emulator says so with an error).
            Err(e) if e.as_service_error().is_some_and(|s| s.is_target_group_not_found_exception()) => Vec::new(),
            Err(e) => return Err(crate::aws::error("DescribeTargetGroups", e)),
        };
    }
    Ok(Discovery { cluster: info, load_balancers: found })
}

/// A starting profile with Route53 weighted records between two namespaces' ingress ALBs.
pub fn starting_profile(d: &Discovery) -> Result<String> {
    let mut by_ns: BTreeMap<&str, &IngressAlb> = BTreeMap::new();
    for lb in &d.load_balancers {
        if let Some(ns) = lb.namespace.as_deref() {
            by_ns.entry(ns).or_insert(lb);
        }
    }
    if by_ns.len() != 2 {
        return Err(Error::refused_hint(
            format!("--write-profile needs the ingress ALBs of exactly two namespaces, found {}", by_ns.len()),
            "narrow it down with --ingress, or write the profile by hand from the list",
        ));
    }
    let mut it = by_ns.into_iter();
    let (blue_ns, blue) = it.next().expect("two");
    let (green_ns, green) = it.next().expect("two");
    let ingress = |lb: &IngressAlb| lb.ingress.clone().unwrap_or_default();
    Ok(format!(
        "# Written by `cutover discover --cluster {cluster}`: blue = namespace {blue_ns}, green = namespace {green_ns}.\n\
         # Set the hosted zone and record, then `cutover -p THIS validate`.\n\
         description = \"{cluster}: {blue_ns} / {green_ns}\"\n\n\
         [sides.blue]\neks = {{ cluster = \"{cluster}\", namespace = \"{blue_ns}\", ingress = \"{bi}\" }}\n\
         [sides.green]\neks = {{ cluster = \"{cluster}\", namespace = \"{green_ns}\", ingress = \"{gi}\" }}\n\n\
         # Weighted alias records: \"blue\" → {bd}, \"green\" → {gd} (hosted zone {hz}).\n\
         [[route53]]\nzone = \"example.com.\"\nrecord = \"app.example.com.\"\nblue = \"blue\"\ngreen = \"green\"\n\n\
         [rollout]\nstages = [10, 25, 50, 100]\nbake = \"5m\"\npoll = \"15s\"\n\n\
         [[gate]]\ntype = \"target-health\"\nmin_healthy = 1.0\n",
        cluster = d.cluster.name,
        bi = ingress(blue),
        gi = ingress(green),
        bd = blue.dns_name,
        gd = green.dns_name,
        hz = blue.canonical_hosted_zone_id,
    ))
}

#[cfg(test)]
mod tests {
    //! The emulator's clusters are ACTIVE the moment they exist, so the refusal of a cluster that
    //! is not is pinned here with the real API's answer, replayed through the SDK client.

    use aws_sdk_eks::operation::describe_cluster::DescribeClusterOutput;
    use aws_sdk_eks::types::{Cluster as EksCluster, ClusterStatus};
    use aws_smithy_mocks::{MockResponseInterceptor, RuleMode, create_mock_http_client, mock};

    use super::*;

    fn eks_answering(status: ClusterStatus) -> aws_sdk_eks::Client {
        let rule = mock!(aws_sdk_eks::Client::describe_cluster).then_output(move || {
            DescribeClusterOutput::builder()
                .cluster(EksCluster::builder().name("prod").status(status.clone()).version("1.31").build())
                .build()
        });
        let config = aws_sdk_eks::Config::builder()
            .behavior_version(aws_sdk_eks::config::BehaviorVersion::latest())
            .region(aws_sdk_eks::config::Region::new("us-west-2"))
            .credentials_provider(aws_sdk_eks::config::Credentials::new("a", "b", None, None, "replay"))
            .http_client(create_mock_http_client())
            .interceptor(MockResponseInterceptor::new().rule_mode(RuleMode::MatchAny).with_rule(&rule))
            .build();
        aws_sdk_eks::Client::from_conf(config)
    }

    #[tokio::test]
    async fn a_cluster_that_does_not_serve_is_held_and_one_updating_serves() {
        for status in [ClusterStatus::Creating, ClusterStatus::Failed, ClusterStatus::Deleting] {
            let err = active_cluster(&eks_answering(status.clone()), "prod").await.unwrap_err();
            assert_eq!(err.exit_code(), crate::exit::HELD, "{status:?}");
            assert!(err.to_string().contains(&format!("is {}, not ACTIVE or UPDATING", status.as_str())), "{err}");
        }
        for status in [ClusterStatus::Active, ClusterStatus::Updating] {
            let ok = active_cluster(&eks_answering(status), "prod").await.unwrap();
            assert_eq!(ok.version.as_deref(), Some("1.31"));
        }
    }
}
