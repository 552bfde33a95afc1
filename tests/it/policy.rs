//! `cutover iam-policy`: every AWS call that real runs make on the emulator (recorded by the
//! SDK interceptor behind `CUTOVER_RECORD_CALLS`) is allowed by the printed policy.

use std::collections::BTreeSet;

use crate::emulator::unique;
use crate::fixtures::Aws;
use crate::{Pair, World, expect};

fn recorded(path: &std::path::Path) -> BTreeSet<String> {
    std::fs::read_to_string(path).unwrap_or_default().lines().map(str::to_string).collect()
}

fn allowed(policy: &serde_json::Value) -> BTreeSet<String> {
    policy["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["Action"].as_array().unwrap().clone())
        .map(|a| a.as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_printed_policy_covers_every_call_a_rollout_makes() {
    let w = World::new().await;
    let (vpc, subnets) = w.aws.network().await;
    let (lb, blue_dns, lb_zone) = w.aws.load_balancer(&unique("p"), &subnets, &[]).await;
    let blue = w.aws.target_group(&unique("pb"), &vpc, &["10.0.1.7"]).await;
    let green = w.aws.target_group(&unique("pg"), &vpc, &["10.0.2.7"]).await;
    let listener = w.aws.listener(&lb, 80, Aws::forward(&[(&blue, 100), (&green, 0)], None), &[]).await;
    let rule = w.aws.rule(&listener, 4, "/p/*", Aws::forward(&[(&blue, 100), (&green, 0)], None), &[]).await;
    let pair = Pair::new(&w, (100, 0), (&blue_dns, &blue_dns), &lb_zone).await;
    let id = unique("");
    for side in ["blue", "green"] {
        w.aws.alarm(&format!("pol-{side}-{id}")).await;
    }
    let profile = format!(
        "{}[[alb]]\nlistener = \"{listener}\"\nblue = \"{blue}\"\ngreen = \"{green}\"\n[[alb]]\nlistener = \"{listener}\"\nrule = \"{rule}\"\nblue = \"{blue}\"\ngreen = \"{green}\"\n\
         [rollout]\nstages = [50, 100]\nbake = \"200ms\"\npoll = \"100ms\"\nmax_hold = \"300ms\"\n\
         [[gate]]\ntype = \"alarm\"\nalarms = [\"pol-{{side}}-{id}\"]\n[[gate]]\ntype = \"target-health\"\n\
         [[gate]]\ntype = \"metric\"\nnamespace = \"Pol\"\nmetric = \"Errors\"\nmax = 1\n\
         [state]\ntable = \"{}\"\n[notify]\nsns_topic_arn = \"arn:aws:sns:us-west-2:123456789012:cutover-{id}\"\n",
        pair.route(),
        unique("pol-")
    );
    w.profile("svc", &profile);
    let calls = w.dir.path().join("calls.txt");
    let run = |args: &[&str], code: i32| {
        let mut cmd = w.cutover();
        cmd.env("CUTOVER_RECORD_CALLS", &calls).args(["-p", "svc"]).args(args);
        expect(&mut cmd, code);
    };
    run(&["state", "init"], 0);
    run(&["validate"], 0);
    run(&["set", "green=10", "--no-gates"], 0);
    run(&["rollback"], 2); // no rollout recorded yet: the side must be named
    run(&["rollback", "--to", "blue"], 0);
    // The metric gate has no data: held (exit 7, the rollout paused) — every gate was read.
    run(&["rollout"], 7);
    run(&["resume"], 0);
    run(&["advance"], 0);
    run(&["pause"], 0);
    run(&["promote", "--force"], 0);
    run(&["history"], 0);
    run(&["status"], 0);

    let made = recorded(&calls);
    for op in [
        "route53:ChangeResourceRecordSets",
        "elasticloadbalancing:ModifyListener",
        "elasticloadbalancing:ModifyRule",
        "cloudwatch:DescribeAlarms",
        "cloudwatch:GetMetricData",
        "dynamodb:PutItem",
    ] {
        assert!(made.contains(op), "the runs made {op}: {made:?}");
    }
    let (out, _) = expect(w.cutover().args(["-p", "svc", "iam-policy"]), 0);
    let policy: serde_json::Value = serde_json::from_str(&out).unwrap();
    let allow = allowed(&policy);
    // sts:GetCallerIdentity needs no permission.
    let missing: Vec<&String> = made.iter().filter(|c| !allow.contains(*c) && *c != "sts:GetCallerIdentity").collect();
    assert!(missing.is_empty(), "calls the policy does not allow: {missing:?}\n{out}");
    // Writes are scoped to what the profile names, never "*".
    for st in policy["Statement"].as_array().unwrap() {
        let actions: Vec<&str> = st["Action"].as_array().unwrap().iter().map(|a| a.as_str().unwrap()).collect();
        if actions
            .iter()
            .any(|a| a.contains("Modify") || a.contains("Change") || a.contains("Put") || a.contains("Publish"))
        {
            assert!(!st["Resource"].as_array().unwrap().iter().any(|r| r == "*"), "{st}");
        }
    }
    assert!(out.contains(&listener) && out.contains(&rule), "{out}");

    // The read-only policy covers status and validate, and allows no write.
    let ro_calls = w.dir.path().join("ro-calls.txt");
    for args in [["status"], ["validate"]] {
        let mut cmd = w.cutover();
        expect(cmd.env("CUTOVER_RECORD_CALLS", &ro_calls).args(["-p", "svc"]).args(args), 0);
    }
    let (out, _) = expect(w.cutover().args(["-p", "svc", "iam-policy", "--read-only"]), 0);
    let ro: serde_json::Value = serde_json::from_str(&out).unwrap();
    let allow = allowed(&ro);
    let missing: Vec<String> =
        recorded(&ro_calls).into_iter().filter(|c| !allow.contains(c) && c != "sts:GetCallerIdentity").collect();
    assert!(missing.is_empty(), "read-only misses {missing:?}\n{out}");
    assert!(!allow.iter().any(|a| a.contains("Modify") || a.contains("Change") || a.contains("PutItem")), "{out}");
}
