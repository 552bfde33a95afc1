//! IAM for the emulator kit's proxy: every call checked against one identity policy, as AWS
//! evaluates it — the action (`service:Operation`, wildcards), the resource the action is
//! authorised on (the ARN of the zone, change, listener, rule, alarm, table, topic or cluster the
//! call names; `*` for actions without resource-level permissions), the Route53 record-set
//! condition keys, and explicit denies.
//!
//! moto has IAM enforcement of its own (`INITIAL_NO_AUTH_ACTION_COUNT`), but 5.2.5 authorises
//! every call on the resource `*` (its `access_control.py` says so: "TODO add support for the
//! Resource and Condition parts"): a statement scoped to an ARN never grants there, so a
//! least-privilege policy cannot be tried on it. The kit evaluates the policy instead.

use std::collections::BTreeMap;

use serde_json::Value;

/// What a call asks IAM for.
#[derive(Clone, Debug, PartialEq)]
pub struct Request {
    /// `route53:ChangeResourceRecordSets`.
    pub action: String,
    /// The ARN the action is authorised on, or `*`.
    pub resource: String,
    /// Condition keys and their values (multi-valued keys hold several).
    pub context: BTreeMap<String, Vec<String>>,
}

/// Whether `policy` allows `request`: an Allow statement matches and no Deny does.
pub fn allows(policy: &Value, request: &Request) -> bool {
    evaluate(policy, |s| matches_statement(s, request))
}

/// IAM's rule over a document's statements that `matches`: allowed when an Allow matches and no
/// Deny does.
fn evaluate(policy: &Value, matches: impl Fn(&Value) -> bool) -> bool {
    let statements: Vec<&Value> = match &policy["Statement"] {
        Value::Array(a) => a.iter().collect(),
        s @ Value::Object(_) => vec![s],
        _ => Vec::new(),
    };
    let mut allowed = false;
    for s in statements.into_iter().filter(|s| matches(s)) {
        match s["Effect"].as_str() {
            Some("Deny") => return false,
            Some("Allow") => allowed = true,
            _ => {}
        }
    }
    allowed
}

fn strings(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => vec![s.clone()],
        Value::Array(a) => a.iter().filter_map(|x| x.as_str().map(str::to_string)).collect(),
        _ => Vec::new(),
    }
}

fn matches_statement(s: &Value, r: &Request) -> bool {
    let action = match (s.get("Action"), s.get("NotAction")) {
        (Some(a), _) => strings(a).iter().any(|p| glob(&p.to_ascii_lowercase(), &r.action.to_ascii_lowercase())),
        (None, Some(n)) => !strings(n).iter().any(|p| glob(&p.to_ascii_lowercase(), &r.action.to_ascii_lowercase())),
        (None, None) => false,
    };
    let resource = match (s.get("Resource"), s.get("NotResource")) {
        (Some(a), _) => strings(a).iter().any(|p| glob(p, &r.resource)),
        (None, Some(n)) => !strings(n).iter().any(|p| glob(p, &r.resource)),
        (None, None) => false,
    };
    action && resource && conditions_hold(s.get("Condition"), &r.context)
}

/// IAM's wildcards: `*` any run of characters, `?` one.
pub fn glob(pattern: &str, s: &str) -> bool {
    let (p, s): (Vec<char>, Vec<char>) = (pattern.chars().collect(), s.chars().collect());
    let (mut pi, mut si, mut star, mut mark) = (0, 0, None, 0);
    while si < s.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == s[si]) {
            pi += 1;
            si += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = si;
            pi += 1;
        } else if let Some(st) = star {
            pi = st + 1;
            mark += 1;
            si = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

/// The condition operators the kit knows; any other makes the statement not match (a policy the
/// kit cannot judge grants nothing).
fn conditions_hold(condition: Option<&Value>, context: &BTreeMap<String, Vec<String>>) -> bool {
    let Some(Value::Object(ops)) = condition else { return true };
    for (op, keys) in ops {
        let Value::Object(keys) = keys else { return false };
        let (set, base) = match op.split_once(':') {
            Some((q, b)) => (Some(q), b),
            None => (None, op.as_str()),
        };
        let test: fn(&str, &str) -> bool = match base {
            "StringEquals" => |p, v| p == v,
            "StringLike" => |p, v| glob(p, v),
            "StringEqualsIgnoreCase" => |p, v| p.eq_ignore_ascii_case(v),
            "ArnEquals" => |p, v| p == v,
            "ArnLike" => |p, v| glob(p, v),
            _ => return false,
        };
        for (key, want) in keys {
            let want = strings(want);
            let have = context.get(key).cloned().unwrap_or_default();
            let one = |v: &String| want.iter().any(|p| test(p, v));
            let ok = match set {
                // Every value in the request is allowed (vacuously true for none).
                Some("ForAllValues") => have.iter().all(one),
                Some("ForAnyValue") => have.iter().any(one),
                None => have.len() == 1 && one(&have[0]),
                Some(_) => false,
            };
            if !ok {
                return false;
            }
        }
    }
    true
}

/// Route53's normalised record name for IAM conditions: lower case, no trailing dot, every
/// character but a-z, 0-9, `-`, `_` and `.` as a `\ooo` octal escape.
pub fn normalized_record_name(name: &str) -> String {
    let name = name.replace("\\052", "*").to_ascii_lowercase();
    let name = name.trim_end_matches('.');
    let mut out = String::new();
    for c in name.chars() {
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

/// What IAM sees of one call: `service` is the signing name (`monitoring` is CloudWatch),
/// `params` the query protocol's form, `json` the JSON protocol's body, `path` the REST path,
/// `records` a Route53 batch's (action, name, type) changes.
pub struct Call<'a> {
    pub service: &'a str,
    pub operation: &'a str,
    pub path: &'a str,
    pub params: &'a [(String, String)],
    pub json: Option<&'a Value>,
    pub region: &'a str,
    pub account: &'a str,
    pub records: &'a [(String, String, String)],
}

/// The request a call makes of IAM.
pub fn request_of(call: &Call) -> Request {
    let Call { service, operation, path, params, json, region, account, records: record_changes } = *call;
    let prefix = match service {
        "monitoring" => "cloudwatch",
        s => s,
    };
    let param = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let segment = |after: &str| path.split(after).nth(1).and_then(|r| r.split('/').next()).map(str::to_string);
    let mut context = BTreeMap::new();
    let resource = match (prefix, operation) {
        ("route53", "ChangeResourceRecordSets") => {
            let mut names: Vec<String> = record_changes.iter().map(|(_, n, _)| normalized_record_name(n)).collect();
            let mut actions: Vec<String> = record_changes.iter().map(|(a, _, _)| a.clone()).collect();
            let mut types: Vec<String> = record_changes.iter().map(|(_, _, t)| t.clone()).collect();
            for v in [&mut names, &mut actions, &mut types] {
                v.sort();
                v.dedup();
            }
            context.insert("route53:ChangeResourceRecordSetsNormalizedRecordNames".into(), names);
            context.insert("route53:ChangeResourceRecordSetsActions".into(), actions);
            context.insert("route53:ChangeResourceRecordSetsRecordTypes".into(), types);
            segment("/hostedzone/").map(|z| format!("arn:aws:route53:::hostedzone/{z}"))
        }
        ("route53", "GetChange") => segment("/change/").map(|c| format!("arn:aws:route53:::change/{c}")),
        ("route53", "CreateHealthCheck" | "ListHealthChecks") => None,
        ("route53", "GetHealthCheckStatus" | "GetHealthCheck" | "DeleteHealthCheck") => {
            segment("/healthcheck/").map(|h| format!("arn:aws:route53:::healthcheck/{h}"))
        }
        // Tags of a health check: its ARN (`/2013-04-01/tags/healthcheck/ID`).
        ("route53", "ChangeTagsForResource" | "ListTagsForResource") => {
            segment("/tags/healthcheck/").map(|h| format!("arn:aws:route53:::healthcheck/{h}"))
        }
        ("route53", "ListTagsForResources") => None,
        ("route53", "ListHostedZonesByName") => None,
        ("route53", _) => segment("/hostedzone/").map(|z| format!("arn:aws:route53:::hostedzone/{z}")),
        ("elasticloadbalancing", "ModifyListener") => param("ListenerArn"),
        ("elasticloadbalancing", "ModifyRule") => param("RuleArn"),
        ("cloudwatch", "DescribeAlarmHistory") => {
            // A composite alarm's history is returned only to a permission scoped to `*`.
            let composite = params.iter().any(|(k, v)| k.starts_with("AlarmTypes.member.") && v == "CompositeAlarm");
            match (param("AlarmName"), composite) {
                (Some(name), false) => Some(format!("arn:aws:cloudwatch:{region}:{account}:alarm:{name}")),
                _ => None,
            }
        }
        ("dynamodb", _) => {
            if let Some(keys) = json.map(leading_keys) {
                context.insert("dynamodb:LeadingKeys".into(), keys);
            }
            json.and_then(|j| j["TableName"].as_str()).map(|t| format!("arn:aws:dynamodb:{region}:{account}:table/{t}"))
        }
        // A Change Calendar by name or ARN (the kit checks the first one named).
        ("ssm", "GetCalendarState") => json.and_then(|j| j["CalendarNames"][0].as_str()).map(|c| {
            if c.starts_with("arn:") { c.to_string() } else { format!("arn:aws:ssm:{region}:{account}:document/{c}") }
        }),
        ("cloudformation", "DescribeStackResources") => {
            param("PhysicalResourceId").map(|p| super::cloudformation::stack_arn_of(&p, region, account))
        }
        ("sns", "Publish") => param("TopicArn"),
        ("sts", "AssumeRole") => param("RoleArn"),
        ("eks", "DescribeCluster") => {
            segment("/clusters/").map(|c| format!("arn:aws:eks:{region}:{account}:cluster/{c}"))
        }
        _ => None,
    };
    Request { action: format!("{prefix}:{operation}"), resource: resource.unwrap_or_else(|| "*".into()), context }
}

/// `dynamodb:LeadingKeys` of a DynamoDB request: the partition key values it names — the `pk`
/// of its `Key` or `Item`, or the value a Query's key condition gives `pk`.
fn leading_keys(json: &Value) -> Vec<String> {
    let mut keys: Vec<String> =
        ["Key", "Item"].iter().filter_map(|k| json[*k]["pk"]["S"].as_str().map(String::from)).collect();
    if let Some(condition) = json["KeyConditionExpression"].as_str() {
        let placeholder = condition.split("pk = ").nth(1).and_then(|r| r.split_whitespace().next());
        if let Some(value) = placeholder.and_then(|p| json["ExpressionAttributeValues"][p]["S"].as_str()) {
            keys.push(value.to_string());
        }
    }
    keys
}

/// The requests a call makes of IAM: one, or for DynamoDB's TransactWriteItems one per item —
/// IAM evaluates a transaction's Put, Update, Delete and ConditionCheck as PutItem, UpdateItem,
/// DeleteItem and ConditionCheckItem on their tables (there is no TransactWriteItems action).
pub fn requests_of(call: &Call) -> Vec<Request> {
    if call.service != "dynamodb" || call.operation != "TransactWriteItems" {
        return vec![request_of(call)];
    }
    let items = call.json.and_then(|j| j["TransactItems"].as_array()).cloned().unwrap_or_default();
    items
        .iter()
        .filter_map(|item| {
            let (kind, body) = item.as_object()?.iter().next()?;
            let action = match kind.as_str() {
                "Put" => "PutItem",
                "Update" => "UpdateItem",
                "Delete" => "DeleteItem",
                "ConditionCheck" => "ConditionCheckItem",
                _ => return None,
            };
            let table = body["TableName"].as_str()?;
            Some(Request {
                action: format!("dynamodb:{action}"),
                resource: format!("arn:aws:dynamodb:{}:{}:table/{table}", call.region, call.account),
                context: BTreeMap::from([("dynamodb:LeadingKeys".to_string(), leading_keys(body))]),
            })
        })
        .collect()
}

/// Whether a role's trust policy lets `caller_account` assume it, with `external_id` as the call
/// gave it: an Allow statement for `sts:AssumeRole` naming the account (its root, its id, or `*`)
/// whose conditions hold (`sts:ExternalId`), and no Deny.
pub fn trusts(trust: &Value, caller_account: &str, external_id: Option<&str>) -> bool {
    let mut context = BTreeMap::new();
    if let Some(id) = external_id {
        context.insert("sts:ExternalId".to_string(), vec![id.to_string()]);
    }
    // Who the kit's caller is to IAM: moto's user for the tests' credentials.
    context.insert("aws:PrincipalArn".to_string(), vec![format!("arn:aws:iam::{caller_account}:user/moto")]);
    evaluate(trust, |s| {
        let action = strings(&s["Action"]).iter().any(|a| glob(&a.to_ascii_lowercase(), "sts:assumerole"));
        let principal = match &s["Principal"] {
            Value::String(p) => p == "*",
            p => strings(&p["AWS"])
                .iter()
                .any(|a| a == "*" || a == caller_account || a.ends_with(&format!(":iam::{caller_account}:root"))),
        };
        action && principal && conditions_hold(s.get("Condition"), &context)
    })
}

/// Calls every identity may make.
pub fn always_allowed(action: &str) -> bool {
    // STS answers GetCallerIdentity whatever the policy says.
    action == "sts:GetCallerIdentity"
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_trust_policy_names_the_account_and_may_ask_for_an_external_id() {
        let trust = json!({"Statement": [{"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::123456789012:root"},
            "Action": "sts:AssumeRole", "Condition": {"StringEquals": {"sts:ExternalId": "x1"}}}]});
        assert!(trusts(&trust, "123456789012", Some("x1")));
        assert!(!trusts(&trust, "123456789012", Some("x2")));
        assert!(!trusts(&trust, "123456789012", None));
        assert!(!trusts(&trust, "999999999999", Some("x1")));
        let open = json!({"Statement": {"Effect": "Allow", "Principal": {"AWS": "123456789012"}, "Action": "sts:*"}});
        assert!(trusts(&open, "123456789012", None));
    }

    #[test]
    fn wildcards_and_scoping() {
        assert!(glob("arn:aws:route53:::hostedzone/*", "arn:aws:route53:::hostedzone/Z1"));
        assert!(!glob("arn:aws:route53:::hostedzone/Z1", "*"));
        assert!(glob("*", "*"));
        assert!(glob("elasticloadbalancing:Describe*", "elasticloadbalancing:DescribeRules"));
        assert_eq!(normalized_record_name("*.Api.Example.com."), "\\052.api.example.com");
    }

    #[test]
    fn a_record_name_condition_allows_only_its_names() {
        let policy = json!({"Statement": [{"Effect": "Allow", "Action": "route53:ChangeResourceRecordSets",
            "Resource": "arn:aws:route53:::hostedzone/Z1",
            "Condition": {"ForAllValues:StringEquals": {"route53:ChangeResourceRecordSetsNormalizedRecordNames": ["api.example.com"]}}}]});
        let req = |name: &str| {
            request_of(&Call {
                service: "route53",
                operation: "ChangeResourceRecordSets",
                path: "/2013-04-01/hostedzone/Z1/rrset/",
                params: &[],
                json: None,
                region: "us-east-1",
                account: "1",
                records: &[("UPSERT".into(), name.into(), "A".into())],
            })
        };
        assert!(allows(&policy, &req("API.example.com.")));
        assert!(!allows(&policy, &req("www.example.com.")));
    }
}
