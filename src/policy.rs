//! `cutover iam-policy`: the least-privilege IAM policy a profile needs — the exact actions, each
//! scoped to the zone, listener, rule, alarm, table and topic the profile names wherever the
//! action supports resource-level permissions. `--read-only` allows `status` and `validate` only.

use std::collections::BTreeSet;

use serde::Serialize;
use serde_json::{Value, json};

use crate::gates::substitute;
use crate::model::Side;
use crate::profile::{GateKind, Profile, RuleRef, is_zone_id};

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

/// The policy for `profile` in `region`, account `account` (`*` when unknown).
pub fn policy(profile: &Profile, region: &str, account: &str, read_only: bool) -> Policy {
    let mut s = Vec::new();

    if !profile.route53.is_empty() {
        let zones: Vec<String> = profile
            .route53
            .iter()
            .map(|r| {
                if is_zone_id(&r.zone) {
                    format!("arn:aws:route53:::hostedzone/{}", r.zone.trim_start_matches("/hostedzone/"))
                } else {
                    "arn:aws:route53:::hostedzone/*".into()
                }
            })
            .collect();
        if profile.route53.iter().any(|r| !is_zone_id(&r.zone)) {
            // Finding a zone by name has no resource-level permission.
            s.push(stmt("Route53FindZones", &["route53:ListHostedZonesByName"], vec!["*".into()]));
        }
        s.push(stmt("Route53Read", &["route53:GetHostedZone", "route53:ListResourceRecordSets"], zones.clone()));
        if !read_only {
            let names: BTreeSet<String> = profile
                .route53
                .iter()
                .flat_map(|r| std::iter::once(r.record.clone()).chain(r.preview.clone()))
                .map(|n| n.trim_end_matches('.').to_string())
                .collect();
            let mut w = stmt("Route53ChangeOnlyTheseRecords", &["route53:ChangeResourceRecordSets"], zones);
            w["Condition"] = json!({
                "ForAllValues:StringEquals": { "route53:ChangeResourceRecordSetsNormalizedRecordNames": names }
            });
            s.push(w);
            s.push(stmt("Route53WaitForChanges", &["route53:GetChange"], vec!["arn:aws:route53:::change/*".into()]));
        }
    }

    let gates = &profile.gates;
    let target_health = gates.iter().any(|g| matches!(g.kind, GateKind::TargetHealth { .. }));
    if !profile.alb.is_empty() || (target_health && !read_only) {
        // ELBv2 describes have no resource-level permissions.
        let mut actions = vec![
            "elasticloadbalancing:DescribeListeners",
            "elasticloadbalancing:DescribeRules",
            "elasticloadbalancing:DescribeTags",
            "elasticloadbalancing:DescribeLoadBalancers",
        ];
        if target_health && !read_only {
            actions.extend(["elasticloadbalancing:DescribeTargetGroups", "elasticloadbalancing:DescribeTargetHealth"]);
        }
        s.push(stmt("LoadBalancersRead", &actions, vec!["*".into()]));
    }
    if !profile.alb.is_empty() && !read_only {
        let listener_arn = |l: &str| -> String {
            if l.starts_with("arn:") {
                l.to_string()
            } else {
                let name = l.rsplit_once(':').map(|(n, _)| n).unwrap_or(l);
                format!("arn:aws:elasticloadbalancing:{region}:{account}:listener/app/{name}/*")
            }
        };
        let listeners: Vec<String> =
            profile.alb.iter().filter(|a| a.rule == RuleRef::Default).map(|a| listener_arn(&a.listener)).collect();
        let rules: Vec<String> = profile
            .alb
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

    if !read_only {
        let both = |v: &str| Side::ALL.iter().map(|&side| substitute(v, side)).collect::<Vec<_>>();
        let alarms: Vec<String> = gates
            .iter()
            .filter_map(|g| match &g.kind {
                GateKind::Alarm { alarms } => Some(alarms.clone()),
                _ => None,
            })
            .flatten()
            .flat_map(|a| both(&a))
            .map(|a| format!("arn:aws:cloudwatch:{region}:{account}:alarm:{a}"))
            .collect();
        if !alarms.is_empty() {
            s.push(stmt("GateAlarmsNow", &["cloudwatch:DescribeAlarms"], vec!["*".into()]));
            s.push(stmt("GateAlarmHistory", &["cloudwatch:DescribeAlarmHistory"], alarms));
        }
        if gates.iter().any(|g| matches!(g.kind, GateKind::Metric { .. })) {
            s.push(stmt("GateMetrics", &["cloudwatch:GetMetricData"], vec!["*".into()]));
        }
        let checks: Vec<String> = gates
            .iter()
            .filter_map(|g| match &g.kind {
                GateKind::Route53HealthCheck { health_check_id } => Some(health_check_id.clone()),
                _ => None,
            })
            .flat_map(|id| both(&id))
            .map(|id| format!("arn:aws:route53:::healthcheck/{id}"))
            .collect();
        if !checks.is_empty() {
            s.push(stmt("GateHealthChecks", &["route53:GetHealthCheckStatus"], checks));
        }
    }

    if let Some(state) = &profile.state {
        let table = format!("arn:aws:dynamodb:{region}:{account}:table/{}", state.table);
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
    Policy { version: "2012-10-17", statement: s }
}
