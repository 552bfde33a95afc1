//! `cutover iam-policy`: the least-privilege IAM policy a profile needs — the exact actions, each
//! scoped to the zone, listener, rule, alarm, table and topic the profile names wherever the
//! action supports resource-level permissions. `--read-only` allows `status` and `validate` only.

use serde::Serialize;
use serde_json::{Value, json};

pub use crate::iam::partition;
use crate::iam::{Scope, Statement, merge};
use crate::model::Role;
use crate::profile::Profile;
use crate::splitter::LbAccess;

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

/// The caller's policy for `profile` in `region`, account `account` (`*` when unknown): the
/// resources without `role_arn`, the state table, topic and profile object, and `sts:AssumeRole`
/// on each role the profile names.
pub fn policy(profile: &Profile, region: &str, account: &str, read_only: bool) -> Policy {
    let mut policy = policy_for(profile, None, region, account, read_only);
    let roles: Vec<String> = profile.roles().into_iter().map(|r| r.arn.clone()).collect();
    if !roles.is_empty() {
        policy.statement.push(Statement::new("AssumeTheProfilesRoles", &["sts:AssumeRole"], roles).to_json());
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
/// read with the role of the route's load balancers. Every splitter kind, gate kind and feature
/// says what it needs; statements of one Sid are merged.
fn policy_for(profile: &Profile, of: Option<&Role>, region: &str, account: &str, read_only: bool) -> Policy {
    let lbs = profile.routes.load_balancers(&profile.sides.roles);
    let lbs_here = |access: LbAccess| lbs.iter().any(|(role, a)| role.as_ref() == of && *a == access);
    let scope = Scope {
        of,
        region,
        account,
        partition: partition(region),
        read_only,
        alias_lbs_here: lbs_here(LbAccess::ByAlias),
        target_group_lbs_here: lbs_here(LbAccess::ByTargetGroups),
        any_alias: lbs.iter().any(|(_, a)| *a == LbAccess::ByAlias),
    };
    let mut s = profile.routes.policy(&scope);
    s.extend(profile.sides.policy(&scope));
    let counts = profile.observe.is_some() || !read_only && profile.gates.iter().any(|g| g.min_requests.is_some());
    s.extend(crate::observe::policy(counts, &scope));
    for g in &profile.gates {
        s.extend(g.spec.policy(g.role.as_ref(), &scope));
    }
    s.extend(crate::safety_net::policy(profile, &scope));
    if of.is_none() {
        // The state table, the topic and the profile object are the caller's.
        let arn = scope.arn();
        if let Some(state) = &profile.state {
            let table = format!("{arn}dynamodb:{region}:{account}:table/{}", state.table);
            let actions: &[&str] = if read_only {
                &["dynamodb:GetItem", "dynamodb:Query"]
            } else {
                &[
                    "dynamodb:GetItem",
                    "dynamodb:PutItem",
                    "dynamodb:Query",
                    "dynamodb:CreateTable",
                    "dynamodb:DescribeTable",
                ]
            };
            s.push(Statement::new(if read_only { "StateRead" } else { "State" }, actions, [table]));
        }
        if let (Some(topic), false) = (&profile.notify.sns_topic_arn, read_only) {
            s.push(Statement::new("Notify", &["sns:Publish"], [topic.clone()]));
        }
        if let Some(object) = profile.path.to_str().and_then(|path| path.strip_prefix("s3://")) {
            // The profile itself, read from S3 by every command (`-p s3://…`).
            s.push(Statement::new("ProfileObject", &["s3:GetObject"], [format!("{arn}s3:::{object}")]));
        }
    }
    Policy { version: "2012-10-17", statement: merge(s).iter().map(Statement::to_json).collect() }
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
        assert_eq!(crate::splitter::route53::normalized_record_name("A_b-1.Example.COM."), "a_b-1.example.com");
    }
}
