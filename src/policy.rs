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

/// `state init`'s policy (`iam-policy --for state-init`): creating the `[state]` table and waiting
/// for it — kept out of the everyday policy, which reads and writes items only.
pub fn state_init_policy(profile: &Profile, region: &str, account: &str) -> Option<Policy> {
    let state = profile.state.as_ref()?;
    let table = format!("arn:{}:dynamodb:{region}:{account}:table/{}", partition(region), state.table);
    let s = Statement::new("StateInit", &["dynamodb:CreateTable", "dynamodb:DescribeTable"], [table]);
    Some(Policy { version: "2012-10-17", statement: vec![s.to_json()] })
}

/// Who may assume a role: the caller's account (`Principal`), and within it — when STS said who
/// the caller is — that role or user alone (`aws:PrincipalArn`). A role is matched by name at any
/// path (names are unique in an account; an assumed role's ARN does not carry its path).
pub fn trust_statement(partition: &str, caller_account: &str, caller_arn: Option<&str>) -> Value {
    // Never `*` when STS did not say who the caller is: that would trust every account.
    let account = if caller_account == "*" { "CALLER_ACCOUNT_ID" } else { caller_account };
    let mut trust = json!({
        "Effect": "Allow",
        "Principal": { "AWS": format!("arn:{partition}:iam::{account}:root") },
        "Action": "sts:AssumeRole",
    });
    let parts: Vec<&str> = caller_arn.unwrap_or_default().splitn(6, ':').collect();
    if let [_, _, service, _, acc, resource] = parts.as_slice()
        && *acc == account
    {
        let principal = match (*service, resource.split_once('/')) {
            ("sts", Some(("assumed-role", rest))) => rest.split('/').next().map(|role| {
                json!({ "ArnLike": { "aws:PrincipalArn": [
                    format!("arn:{partition}:iam::{account}:role/{role}"),
                    format!("arn:{partition}:iam::{account}:role/*/{role}"),
                ] } })
            }),
            ("iam" | "sts", Some(("user", user))) => Some(
                json!({ "ArnEquals": { "aws:PrincipalArn": format!("arn:{partition}:iam::{account}:user/{user}") } }),
            ),
            _ => None,
        };
        if let Some(condition) = principal {
            trust["Condition"] = condition;
        }
    }
    trust
}

/// What a role needs: the policy of its own resources, and the trust policy letting the caller
/// assume it (with the external id, when the profile gives one).
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
/// caller's account (`*` when unknown), `caller_arn` its identity as STS says it.
pub fn policies(
    profile: &Profile,
    region: &str,
    caller_account: &str,
    caller_arn: Option<&str>,
    read_only: bool,
) -> Policies {
    let p = partition(region);
    let roles = profile
        .roles()
        .into_iter()
        .map(|role| {
            let mut trust = trust_statement(p, caller_account, caller_arn);
            if let Some(id) = &role.external_id {
                let mut condition = trust["Condition"].take();
                if condition.is_null() {
                    condition = json!({});
                }
                condition["StringEquals"] = json!({ "sts:ExternalId": id });
                trust["Condition"] = condition;
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
            // Only this profile's items (its partition key); creating the table is `state init`'s
            // policy of its own (`--for state-init`).
            let table = format!("{arn}dynamodb:{region}:{account}:table/{}", state.table);
            let actions: &[&str] = if read_only {
                &["dynamodb:GetItem", "dynamodb:Query"]
            } else {
                &["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Query"]
            };
            s.push(
                Statement::new(if read_only { "StateRead" } else { "State" }, actions, [table])
                    .when(json!({ "ForAllValues:StringEquals": { "dynamodb:LeadingKeys": [profile.name.clone()] } })),
            );
        }
        if let (Some(topic), false) = (&profile.notify.sns_topic_arn, read_only) {
            s.push(Statement::new("Notify", &["sns:Publish"], [topic.clone()]));
        }
        if let Some(object) = profile.path.to_str().and_then(|path| path.strip_prefix("s3://")) {
            // The profile itself, read from S3 by every command (`-p s3://…`), from a bucket of
            // the expected owner only (`CUTOVER_PROFILE_BUCKET_OWNER`, else the caller's account).
            let owner = std::env::var("CUTOVER_PROFILE_BUCKET_OWNER")
                .ok()
                .map(|o| o.trim().to_string())
                .filter(|o| !o.is_empty())
                .unwrap_or_else(|| if account == "*" { "CALLER_ACCOUNT_ID".into() } else { account.to_string() });
            s.push(
                Statement::new("ProfileObject", &["s3:GetObject"], [format!("{arn}s3:::{object}")])
                    .when(json!({ "StringEquals": { "s3:ResourceAccount": owner } })),
            );
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
        let unknown = serde_json::to_value(policies(&p, "us-west-2", "*", None, false)).unwrap();
        let trust = &unknown["roles"][0]["trust_policy"]["Statement"][0];
        assert_eq!(trust["Principal"]["AWS"], "arn:aws:iam::CALLER_ACCOUNT_ID:root", "{unknown}");
        let known = serde_json::to_value(policies(&p, "us-west-2", "123456789012", None, false)).unwrap();
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
    fn a_trust_policy_names_the_callers_role_at_any_path_or_its_user_never_anyone_else() {
        let role = trust_statement("aws", "123456789012", Some("arn:aws:sts::123456789012:assumed-role/deploy/run-7"));
        assert_eq!(role["Principal"]["AWS"], "arn:aws:iam::123456789012:root");
        assert_eq!(
            role["Condition"]["ArnLike"]["aws:PrincipalArn"],
            json!(["arn:aws:iam::123456789012:role/deploy", "arn:aws:iam::123456789012:role/*/deploy"])
        );
        let user = trust_statement("aws-cn", "123456789012", Some("arn:aws-cn:iam::123456789012:user/ops/alice"));
        assert_eq!(user["Condition"]["ArnEquals"]["aws:PrincipalArn"], "arn:aws-cn:iam::123456789012:user/ops/alice");
        // Unknown, or of another account than STS said: the account alone (never `*`).
        let unknown = trust_statement("aws", "*", None);
        assert_eq!(unknown["Principal"]["AWS"], "arn:aws:iam::CALLER_ACCOUNT_ID:root");
        assert!(unknown.get("Condition").is_none());
        let odd = trust_statement("aws", "123456789012", Some("arn:aws:sts::999999999999:assumed-role/x/y"));
        assert!(odd.get("Condition").is_none());
    }

    #[test]
    fn the_state_is_scoped_to_the_profiles_items_and_creating_it_is_another_policy() {
        let text = "name = \"svc\"\n[[route53]]\nzone = \"Z0123456789ABCDEFGHIJ\"\nrecord = \"api.example.com.\"\nblue = \"b\"\ngreen = \"g\"\n[state]\ntable = \"cutover-state\"\n";
        let p = Profile::parse(std::path::Path::new("t.toml"), text).unwrap();
        let everyday = serde_json::to_value(policy(&p, "us-west-2", "111122223333", false)).unwrap();
        let state = everyday["Statement"].as_array().unwrap().iter().find(|s| s["Sid"] == "State").unwrap();
        assert_eq!(state["Action"], json!(["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Query"]));
        assert_eq!(state["Condition"]["ForAllValues:StringEquals"]["dynamodb:LeadingKeys"], json!(["svc"]));
        let init = serde_json::to_value(state_init_policy(&p, "us-west-2", "111122223333").unwrap()).unwrap();
        assert_eq!(init["Statement"][0]["Action"], json!(["dynamodb:CreateTable", "dynamodb:DescribeTable"]));
        assert_eq!(
            init["Statement"][0]["Resource"],
            json!(["arn:aws:dynamodb:us-west-2:111122223333:table/cutover-state"])
        );
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
