//! IAM statements as the parts of a profile contribute them: each splitter kind, gate kind and
//! feature says which actions it calls on which resources in one account ([`Scope`]), and
//! `cutover iam-policy` merges them into one policy per account.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use crate::model::Role;

/// One `Allow` statement.
#[derive(Clone, Debug, PartialEq)]
pub struct Statement {
    pub sid: String,
    /// In the order given, each once.
    pub actions: Vec<String>,
    /// Each once, sorted; none means `*`.
    pub resources: BTreeSet<String>,
    pub condition: Option<Value>,
}

impl Statement {
    pub fn new(sid: &str, actions: &[&str], resources: impl IntoIterator<Item = String>) -> Statement {
        let mut s =
            Statement { sid: sid.to_string(), actions: Vec::new(), resources: BTreeSet::new(), condition: None };
        s.add(actions, resources);
        s
    }

    /// With a `Condition` block.
    pub fn when(mut self, condition: Value) -> Statement {
        self.condition = Some(condition);
        self
    }

    fn add(&mut self, actions: &[&str], resources: impl IntoIterator<Item = String>) {
        for a in actions {
            if !self.actions.iter().any(|have| have == a) {
                self.actions.push(a.to_string());
            }
        }
        self.resources.extend(resources);
    }

    pub fn to_json(&self) -> Value {
        let mut resources: Vec<String> = self.resources.iter().cloned().collect();
        if resources.is_empty() {
            resources.push("*".into());
        }
        let mut s = json!({ "Sid": self.sid, "Effect": "Allow", "Action": self.actions, "Resource": resources });
        if let Some(c) = &self.condition {
            s["Condition"] = c.clone();
        }
        s
    }
}

/// Statements of one Sid (and condition) merged into one, where the first of them stood: the
/// describes every part needs of ELB become one `LoadBalancersRead`. A statement whose resources
/// include `*` keeps `*` alone.
pub fn merge(statements: Vec<Statement>) -> Vec<Statement> {
    let mut out: Vec<Statement> = Vec::new();
    for s in statements {
        match out.iter_mut().find(|o| o.sid == s.sid && o.condition == s.condition) {
            Some(o) => {
                let actions: Vec<&str> = s.actions.iter().map(String::as_str).collect();
                o.add(&actions, s.resources);
            }
            None => out.push(s),
        }
    }
    for s in &mut out {
        if s.resources.contains("*") {
            s.resources = BTreeSet::from(["*".to_string()]);
        }
    }
    out
}

/// The account a policy is for, and what the profile reads there.
#[derive(Clone, Debug)]
pub struct Scope<'a> {
    /// The role whose account this is; `None`: the caller's.
    pub of: Option<&'a Role>,
    pub region: &'a str,
    /// The account id (`*` when unknown).
    pub account: &'a str,
    pub partition: &'static str,
    /// `--read-only`: what `status` and `validate` call, nothing else.
    pub read_only: bool,
    /// A route's load balancer is read in this account, found by the DNS name a record aliases.
    pub alias_lbs_here: bool,
    /// A route's load balancer is read in this account, found by the target groups it names.
    pub target_group_lbs_here: bool,
    /// Some route aliases a load balancer, in whichever account.
    pub any_alias: bool,
}

impl Scope<'_> {
    /// Whether a resource of `role` is in this account.
    pub fn here(&self, role: Option<&Role>) -> bool {
        role == self.of
    }

    /// `arn:PARTITION:` — the start of every ARN here.
    pub fn arn(&self) -> String {
        format!("arn:{}:", self.partition)
    }
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
