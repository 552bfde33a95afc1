//! `cutover iam-policy`: the least-privilege IAM policy a profile needs — the exact actions, each
//! scoped to the zone, listener, rule, alarm, table and topic the profile names wherever the
//! action supports resource-level permissions. `--read-only` allows `status` and `validate` only.

use std::collections::BTreeSet;

use serde::Serialize;
use serde_json::{Value, json};

use crate::model::{RouteKind, Side};
use crate::profile::{AlbRoute, Gate, GateKind, Profile, Role, Route53Route, RuleRef, is_zone_id};

/// The policy document, printed as JSON whatever `-o` says (it is meant for IAM).
#[derive(Debug, Serialize)]
pub struct Policy {
    #[serde(rename = "Version")]
    pub version: &'static str,
    #[serde(rename = "Statement")]
    pub statement: Vec<Value>,
}

impl std::fmt::Display for Policy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "{}", serde_json::to_string_pretty(self).map_err(|_| std::fmt::Error)?)
    }
}

fn stmt(sid: &str, actions: &[&str], resources: Vec<String>) -> Value {
    let mut r: Vec<String> = resources.into_iter().collect::<BTreeSet<_>>().into_iter().collect();
    if r.is_empty() {
        r.push("*".into());
    }
    json!({ "Sid": sid, "Effect": "Allow", "Action": actions, "Resource": r })
}

/// The partition of a region's ARNs: `aws`, `aws-cn` (China), `aws-us-gov` (GovCloud), …
pub fn partition(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "aws-cn"
    } else if region.starts_with("us-gov-") {
        "aws-us-gov"
    } else if region.starts_with("us-isob-") {
        "aws-iso-b"
    } else if region.starts_with("us-iso-") {
        "aws-iso"
    } else {
        "aws"
    }
}

/// A record name as Route53 matches it in `route53:ChangeResourceRecordSetsNormalizedRecordNames`:
/// lower case, no trailing dot, and every character but a-z, 0-9, `-`, `_` and `.` as a
/// three-digit octal escape (`*` → `\052`).
pub fn normalized_record_name(name: &str) -> String {
    let name = name.replace("\\052", "*").to_ascii_lowercase();
    let mut out = String::new();
    for c in name.trim_end_matches('.').chars() {
        if c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.') {
            out.push(c);
        } else {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("\\{b:03o}"));
            }
        }
    }
    out
}

/// The caller's policy for `profile` in `region`, account `account` (`*` when unknown): the
/// resources without `role_arn`, the state table, topic and profile object, and `sts:AssumeRole`
/// on each role the profile names.
pub fn policy(profile: &Profile, region: &str, account: &str, read_only: bool) -> Policy {
    let mut policy = policy_for(profile, None, region, account, read_only);
    let roles: Vec<String> = profile.roles().into_iter().map(|r| r.arn.clone()).collect();
    if !roles.is_empty() {
        policy.statement.push(stmt("AssumeTheProfilesRoles", &["sts:AssumeRole"], roles));
    }
    policy
}

/// What a role needs: the policy of its own resources, and the trust policy letting the caller's
/// account assume it (with the external id, when the profile gives one).
#[derive(Debug, Serialize)]
pub struct RolePolicy {
    pub role_arn: String,
    pub account: String,
    pub policy: Policy,
    pub trust_policy: Value,
}

/// Every policy a profile with roles needs: the caller's, and each role's.
#[derive(Debug, Serialize)]
pub struct Policies {
    pub caller: Policy,
    pub roles: Vec<RolePolicy>,
}

impl std::fmt::Display for Policies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "{}", serde_json::to_string_pretty(self).map_err(|_| std::fmt::Error)?)
    }
}

/// The caller's policy and each role's, for a profile naming roles; `caller_account` is the
/// caller's account (`*` when unknown).
pub fn policies(profile: &Profile, region: &str, caller_account: &str, read_only: bool) -> Policies {
    let p = partition(region);
    let roles = profile
        .roles()
        .into_iter()
        .map(|role| {
            // Never `*` when STS did not say who the caller is: that would trust every account.
            let account = if caller_account == "*" { "CALLER_ACCOUNT_ID" } else { caller_account };
            let principal = format!("arn:{p}:iam::{account}:root");
            let mut trust = json!({
                "Effect": "Allow",
                "Principal": { "AWS": principal },
                "Action": "sts:AssumeRole",
            });
            if let Some(id) = &role.external_id {
                trust["Condition"] = json!({ "StringEquals": { "sts:ExternalId": id } });
            }
            RolePolicy {
                role_arn: role.arn.clone(),
                account: role.account().to_string(),
                policy: policy_for(profile, Some(role), region, role.account(), read_only),
                trust_policy: json!({ "Version": "2012-10-17", "Statement": [trust] }),
            }
        })
        .collect();
    Policies { caller: policy(profile, region, caller_account, read_only), roles }
}

/// The statements for the resources of one account: those of `of` (a role), or the caller's own
/// (`None`). A resource is in a role's account when it names the role; what cutover finds through
/// a route (its target groups, the load balancer an alias points at, their request counts) is
/// read with [`Profile::load_balancer_role`].
fn policy_for(profile: &Profile, of: Option<&Role>, region: &str, account: &str, read_only: bool) -> Policy {
    let mut s = Vec::new();
    let p = partition(region);
    let here = |role: &Option<Role>| role.as_ref() == of;
    let gates: Vec<&Gate> = profile.gates.iter().filter(|g| here(&g.role)).collect();
    let route53: Vec<&Route53Route> = profile.route53.iter().filter(|r| here(&r.role)).collect();
    let alb: Vec<&AlbRoute> = profile.alb.iter().filter(|r| here(&r.role)).collect();
    let placed: Vec<&str> = [(Side::Blue, &profile.sides.blue), (Side::Green, &profile.sides.green)]
        .into_iter()
        .filter(|(side, _)| profile.sides.role(*side) == of)
        .filter_map(|(_, eks)| eks.as_ref())
        .map(|e| e.cluster.as_str())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    // Load balancers read here for the routes (target groups, an alias's load balancer). Only an
    // A or AAAA record can alias a load balancer.
    let lb_here = |kind: RouteKind| {
        let indices: Vec<usize> = match kind {
            crate::splitter::route53::KIND => profile
                .route53
                .iter()
                .enumerate()
                .filter(|(_, r)| matches!(r.rtype.as_str(), "A" | "AAAA"))
                .map(|(i, _)| i)
                .collect(),
            crate::splitter::alb::KIND => (0..profile.alb.len()).collect(),
            _ => Vec::new(),
        };
        indices.into_iter().any(|i| Side::ALL.iter().any(|s| profile.load_balancer_role(kind, i, *s) == of))
    };
    let (alias_lbs_here, target_groups_here) =
        (lb_here(crate::splitter::route53::KIND), lb_here(crate::splitter::alb::KIND));
    let can_alias = profile.route53.iter().any(|r| matches!(r.rtype.as_str(), "A" | "AAAA"));
    let target_health =
        |g: &Gate| matches!(g.kind, GateKind::TargetHealth { .. }) && (g.role.is_none() || g.role.as_ref() == of);
    let target_health_here = !read_only
        && profile.gates.iter().any(|g| target_health(g) && (g.role.is_some() || alias_lbs_here || target_groups_here));

    if !route53.is_empty() {
        let zones: Vec<String> = route53
            .iter()
            .map(|r| {
                if is_zone_id(&r.zone) {
                    format!("arn:{p}:route53:::hostedzone/{}", r.zone.trim_start_matches("/hostedzone/"))
                } else {
                    format!("arn:{p}:route53:::hostedzone/*")
                }
            })
            .collect();
        if route53.iter().any(|r| !is_zone_id(&r.zone)) {
            // Finding a zone by name has no resource-level permission.
            s.push(stmt("Route53FindZones", &["route53:ListHostedZonesByName"], vec!["*".into()]));
        }
        // A zone given by id is not looked up: its listing says whether it exists.
        s.push(stmt("Route53Read", &["route53:ListResourceRecordSets"], zones.clone()));
        if !read_only {
            let names: BTreeSet<String> = route53
                .iter()
                .flat_map(|r| std::iter::once(r.record.clone()).chain(r.preview.clone()))
                .map(|n| normalized_record_name(&n))
                .collect();
            let mut w = stmt("Route53ChangeOnlyTheseRecords", &["route53:ChangeResourceRecordSets"], zones);
            w["Condition"] = json!({
                "ForAllValues:StringEquals": { "route53:ChangeResourceRecordSetsNormalizedRecordNames": names }
            });
            s.push(w);
            s.push(stmt("Route53WaitForChanges", &["route53:GetChange"], vec![format!("arn:{p}:route53:::change/*")]));
        }
    }

    if !placed.is_empty() {
        let clusters = placed.iter().map(|c| format!("arn:{p}:eks:{region}:{account}:cluster/{c}")).collect();
        s.push(stmt("SidesClusters", &["eks:DescribeCluster"], clusters));
    }
    // ELBv2 describes have no resource-level permissions.
    let mut elb_reads: BTreeSet<&str> = BTreeSet::new();
    if !alb.is_empty() {
        // The owner check reads the tags of the listener, its load balancer and the rule.
        elb_reads.extend(["elasticloadbalancing:DescribeListeners", "elasticloadbalancing:DescribeTags"]);
    }
    if alb.iter().any(|a| matches!(a.rule, RuleRef::Arn(_))) {
        elb_reads.insert("elasticloadbalancing:DescribeRules");
    }
    if alb.iter().any(|a| !a.listener.starts_with("arn:")) {
        // A listener named LOAD_BALANCER:PORT.
        elb_reads.insert("elasticloadbalancing:DescribeLoadBalancers");
    }
    if !placed.is_empty() {
        // The ingress ALBs of each side, found by the controller's tags.
        elb_reads.extend(["elasticloadbalancing:DescribeLoadBalancers", "elasticloadbalancing:DescribeTags"]);
    }
    // Request counts (`[observe]`, which `status` shows too; a gate's `min_requests`) of a
    // Route53 route are read at the load balancer its alias points at, found by DNS name.
    // They are counted in the load balancers' accounts, whichever gate asks.
    let counts_requests = (profile.observe.is_some()
        || !read_only && profile.gates.iter().any(|g| g.min_requests.is_some()))
        && (alias_lbs_here || target_groups_here);
    if counts_requests && alias_lbs_here {
        elb_reads.insert("elasticloadbalancing:DescribeLoadBalancers");
    }
    if target_health_here {
        elb_reads.insert("elasticloadbalancing:DescribeTargetHealth");
        // A Route53 route's candidate load balancer, found by its alias's DNS name, and its target
        // groups: by a gate of this role for every route, by a gate without one where the
        // alias's load balancer is. (An ALB route names its target groups.)
        let alias_lookup =
            profile.gates.iter().any(|g| target_health(g) && if g.role.is_some() { can_alias } else { alias_lbs_here });
        if alias_lookup {
            elb_reads
                .extend(["elasticloadbalancing:DescribeLoadBalancers", "elasticloadbalancing:DescribeTargetGroups"]);
        }
    }
    if !elb_reads.is_empty() {
        let actions: Vec<&str> = elb_reads.into_iter().collect();
        s.push(stmt("LoadBalancersRead", &actions, vec!["*".into()]));
    }
    if !alb.is_empty() && !read_only {
        let listener_arn = |l: &str| -> String {
            if l.starts_with("arn:") {
                l.to_string()
            } else {
                let name = l.rsplit_once(':').map(|(n, _)| n).unwrap_or(l);
                format!("arn:{p}:elasticloadbalancing:{region}:{account}:listener/app/{name}/*")
            }
        };
        let listeners: Vec<String> =
            alb.iter().filter(|a| a.rule == RuleRef::Default).map(|a| listener_arn(&a.listener)).collect();
        let rules: Vec<String> = alb
            .iter()
            .filter_map(|a| match &a.rule {
                RuleRef::Arn(r) => Some(r.clone()),
                RuleRef::Default => None,
            })
            .collect();
        if !listeners.is_empty() {
            s.push(stmt("AlbShiftListenerWeights", &["elasticloadbalancing:ModifyListener"], listeners));
        }
        if !rules.is_empty() {
            s.push(stmt("AlbShiftRuleWeights", &["elasticloadbalancing:ModifyRule"], rules));
        }
    }

    if !read_only && gates.iter().any(|g| matches!(g.kind, GateKind::Alarm { .. })) {
        // DescribeAlarms has no resource-level permission; DescribeAlarmHistory returns a
        // composite alarm's history only to a permission scoped to `*`, and whether a named alarm
        // is composite is not in the profile.
        s.push(stmt("GateAlarms", &["cloudwatch:DescribeAlarms", "cloudwatch:DescribeAlarmHistory"], vec!["*".into()]));
    }
    // Route53 health checks are read as their `AWS/Route53` `HealthCheckStatus` metric; request
    // counts as `AWS/ApplicationELB` `RequestCount`.
    let metric_gates =
        gates.iter().any(|g| matches!(g.kind, GateKind::Metric { .. } | GateKind::Route53HealthCheck { .. }));
    if counts_requests || !read_only && metric_gates {
        s.push(stmt("GateMetrics", &["cloudwatch:GetMetricData"], vec!["*".into()]));
    }
    if profile.safety_net && !route53.is_empty() {
        // The safety net's health checks: created, listed (to find this profile's by name; also
        // for `status`) and deleted. CreateHealthCheck and ListHealthChecks have no resource-level
        // permission; attaching one to a record is the ChangeResourceRecordSets above.
        if read_only {
            s.push(stmt("SafetyNetRead", &["route53:ListHealthChecks"], vec!["*".into()]));
        } else {
            s.push(stmt("SafetyNetFind", &["route53:CreateHealthCheck", "route53:ListHealthChecks"], vec!["*".into()]));
            s.push(stmt(
                "SafetyNetDelete",
                &["route53:DeleteHealthCheck"],
                vec![format!("arn:{p}:route53:::healthcheck/*")],
            ));
        }
    }

    if of.is_some() {
        // The state table, the topic and the profile object are the caller's.
        return Policy { version: "2012-10-17", statement: s };
    }
    if let Some(state) = &profile.state {
        let table = format!("arn:{p}:dynamodb:{region}:{account}:table/{}", state.table);
        if read_only {
            s.push(stmt("StateRead", &["dynamodb:GetItem", "dynamodb:Query"], vec![table]));
        } else {
            s.push(stmt(
                "State",
                &[
                    "dynamodb:GetItem",
                    "dynamodb:PutItem",
                    "dynamodb:Query",
                    "dynamodb:CreateTable",
                    "dynamodb:DescribeTable",
                ],
                vec![table],
            ));
        }
    }
    if let (Some(topic), false) = (&profile.notify.sns_topic_arn, read_only) {
        s.push(stmt("Notify", &["sns:Publish"], vec![topic.clone()]));
    }
    if let Some(object) = profile.path.to_str().and_then(|path| path.strip_prefix("s3://")) {
        // The profile itself, read from S3 by every command (`-p s3://…`).
        s.push(stmt("ProfileObject", &["s3:GetObject"], vec![format!("arn:{p}:s3:::{object}")]));
    }
    Policy { version: "2012-10-17", statement: s }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_role_is_trusted_by_the_callers_account_never_by_everyone() {
        let text = "[[route53]]\nzone = \"Z0123456789ABCDEFGHIJ\"\nrecord = \"api.example.com.\"\nblue = \"b\"\ngreen = \"g\"\nrole_arn = \"arn:aws:iam::111111111111:role/net\"\n[state]\ntable = \"cutover-state\"\n";
        let p = Profile::parse(std::path::Path::new("t.toml"), text).unwrap();
        let unknown = serde_json::to_value(policies(&p, "us-west-2", "*", false)).unwrap();
        let trust = &unknown["roles"][0]["trust_policy"]["Statement"][0];
        assert_eq!(trust["Principal"]["AWS"], "arn:aws:iam::CALLER_ACCOUNT_ID:root", "{unknown}");
        let known = serde_json::to_value(policies(&p, "us-west-2", "123456789012", false)).unwrap();
        assert_eq!(
            known["roles"][0]["trust_policy"]["Statement"][0]["Principal"]["AWS"],
            "arn:aws:iam::123456789012:root"
        );
        // The state table is the caller's; the zone the role's.
        assert!(
            known["caller"].to_string().contains("dynamodb:PutItem")
                && !known["caller"].to_string().contains("route53:")
        );
        let role = known["roles"][0]["policy"].to_string();
        assert!(role.contains("route53:ChangeResourceRecordSets") && !role.contains("dynamodb:"), "{role}");
    }

    #[test]
    fn the_record_name_condition_is_normalised_and_arns_follow_the_partition() {
        let text = "[[route53]]\nzone = \"Z0123456789ABCDEFGHIJ\"\nrecord = \"*.Api.example.com.\"\nblue = \"b\"\ngreen = \"g\"\n";
        let p = Profile::parse(std::path::Path::new("t.toml"), text).unwrap();
        let policy = serde_json::to_value(policy(&p, "cn-north-1", "111122223333", false)).unwrap().to_string();
        assert!(policy.contains(r#""\\052.api.example.com""#), "{policy}");
        assert!(policy.contains("arn:aws-cn:route53:::hostedzone/Z0123456789ABCDEFGHIJ"), "{policy}");
        assert!(!policy.contains("arn:aws:"), "{policy}");
        assert_eq!(partition("us-gov-west-1"), "aws-us-gov");
        assert_eq!(normalized_record_name("A_b-1.Example.COM."), "a_b-1.example.com");
    }
}
