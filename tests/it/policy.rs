//! `cutover iam-policy`, tried as IAM tries it: every command runs through a proxy of the kit that
//! checks each call against exactly the printed policy (action, resource, Route53's record-name
//! condition), on a profile using every feature — `[sides]`, a preview record, every gate kind,
//! `[state]`, `[notify]`. Then the same commands run once per action with that one action taken
//! out: each run must show it (an exit code that differs, or the AccessDenied in what it prints).

use std::time::Duration;

use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::emulator::{proxy, unique};
use crate::fixtures::Aws;
use crate::proxy::Config;
use crate::scenario::{Front, Gate, Ingress, Notify, Profile, Records, Rollout};
use crate::{World, run};

/// Everything a profile of every feature names, in the emulator.
struct Estate {
    ingress: Ingress,
    records: Records,
    preview: String,
    front: Front,
    rule: String,
    id: String,
    topic: String,
    hooks: MockServer,
}

async fn estate(w: &World) -> Estate {
    let ingress = Ingress::new(&w.aws).await;
    let front = Front::new(&w.aws).await;
    let rule = front.rule(&front.listener, 4, "/p/*", &[]).await;
    let records = Records::zone(&w.aws).await;
    let id = unique("");
    for side in ["blue", "green"] {
        w.aws.alarm(&format!("pol-{side}-{id}")).await;
    }
    let topic = format!("cutover-{id}");
    crate::emulator::raw_answer("sns", "/", Some(&format!("Action=CreateTopic&Name={topic}&Version=2010-03-31"))).await;
    let hooks = MockServer::start().await;
    Mock::given(method("GET")).respond_with(ResponseTemplate::new(200)).mount(&hooks).await;
    Mock::given(method("POST")).respond_with(ResponseTemplate::new(200)).mount(&hooks).await;
    Estate { preview: format!("preprod.{}", records.zone), ingress, records, front, rule, id, topic, hooks }
}

impl Estate {
    fn profile(&self, table: &str) -> Profile {
        let (id, hooks) = (&self.id, self.hooks.uri());
        let rollout =
            Rollout::new(&[50.0, 100.0]).bake("200ms").poll("100ms").max_hold("2s").dns_ttl("0s").safety_net(true);
        let notify =
            Notify { sns_topic_arn: Some(format!("arn:aws:sns:us-west-2:123456789012:{}", self.topic)), webhook: None };
        Profile::new()
            .sides(self.ingress.sides())
            .route53(self.records.route().preview(self.preview.as_str()))
            .alb(self.front.route())
            .alb(self.front.route().rule(self.rule.as_str()))
            .rollout(rollout)
            .gate(Gate::alarm(&[&format!("pol-{{side}}-{id}")]))
            .gate(Gate::target_health().min_healthy(0.0))
            .gate(Gate::metric(&format!("Pol{id}"), &format!("Errors{id}")).max(1.0))
            .gate(Gate::route53_health_check(&format!("hc-{{side}}-{id}")))
            .gate(Gate::http(&format!("{hooks}/health")))
            .gate(Gate::webhook(&format!("{hooks}/confirm")))
            .state(table)
            .notify(notify)
    }

    /// All traffic on blue, the preview on blue, fresh gate data: the start of every run.
    async fn reset(&self, w: &World) {
        let ((b, lb_zone), (g, _)) = (&self.ingress.blue, &self.ingress.green);
        let record = &self.records.record;
        w.aws
            .upsert(
                &self.records.zone_id,
                vec![
                    Aws::weighted_alias(record, ("blue", 100), b, lb_zone, true),
                    Aws::weighted_alias(record, ("green", 0), g, lb_zone, true),
                    Aws::simple_alias(&self.preview, b, lb_zone),
                ],
            )
            .await;
        for rule in [None, Some(self.rule.as_str())] {
            w.aws.set_action(&self.front.listener, rule, self.front.forward(100, 0)).await;
        }
        for side in ["blue", "green"] {
            w.aws.put_metric(&format!("Pol{}", self.id), &format!("Errors{}", self.id), ("Side", side), 0.0).await;
            w.aws.health_check_status(&format!("hc-{side}-{}", self.id), 1.0).await;
        }
    }
}

/// Every command, in an order that takes a rollout through each state.
const COMMANDS: &[&[&str]] = &[
    &["state", "init"],
    &["validate"],
    &["status"],
    &["set", "green=10", "--no-gates"],
    &["rollback", "--to", "blue"],
    &["advance"],
    &["advance"],
    &["pause"],
    &["resume"],
    &["promote"],
    &["rollout", "--to", "blue"],
    &["rollback"],
    &["history"],
];

/// What a run's calls are checked against.
enum Iam<'a> {
    /// Nothing: every call allowed.
    Off,
    /// The policy `iam-policy` prints for the run's profile.
    Printed,
    /// That policy without one action.
    Without(&'a str),
}

/// Runs [`COMMANDS`] through the kit's proxy on a fresh state table, under `iam`; (exit code,
/// output) of each, up to the first that `stop` picks; and the policy printed.
async fn run_all(
    w: &World,
    e: &Estate,
    kit: &crate::proxy::Proxy,
    iam: Iam<'_>,
    stop: impl Fn(usize, i32, &str) -> bool,
) -> (Vec<(i32, String)>, serde_json::Value) {
    e.reset(w).await;
    let name = unique("svc");
    w.write(&name, &e.profile(&unique("pol-")));
    let (out, _) = crate::expect(w.cutover().args(["-p", &name, "iam-policy"]), 0);
    let printed: serde_json::Value = serde_json::from_str(&out).unwrap();
    let policy = match iam {
        Iam::Off => None,
        Iam::Printed => Some(printed.clone()),
        Iam::Without(action) => Some(without(&printed, action)),
    };
    kit.set(|c| c.iam_policy = policy);
    let mut seen = Vec::new();
    for (i, args) in COMMANDS.iter().enumerate() {
        let mut cmd = w.cutover();
        cmd.env("AWS_ENDPOINT_URL", &kit.endpoint).args(["-p", &name]).args(*args);
        let (code, out, err) = run(&mut cmd);
        let text = format!("$ cutover {}\n{out}{err}", args.join(" "));
        let end = stop(i, code, &text);
        seen.push((code, text));
        if end {
            break;
        }
    }
    (seen, printed)
}

fn actions(policy: &serde_json::Value) -> Vec<String> {
    policy["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["Action"].as_array().unwrap().clone())
        .map(|a| a.as_str().unwrap().to_string())
        .collect()
}

/// `policy` without `action` (a statement left with no action is dropped).
fn without(policy: &serde_json::Value, action: &str) -> serde_json::Value {
    let mut p = policy.clone();
    let statements: Vec<serde_json::Value> = p["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| {
            let mut s = s.clone();
            let left: Vec<serde_json::Value> =
                s["Action"].as_array().unwrap().iter().filter(|a| *a != action).cloned().collect();
            s["Action"] = serde_json::Value::Array(left.clone());
            (!left.is_empty()).then_some(s)
        })
        .collect();
    p["Statement"] = serde_json::Value::Array(statements);
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_command_runs_under_exactly_the_printed_policy_and_not_without_any_one_action() {
    let w = World::new().await;
    let e = estate(&w).await;
    // Route53 changes PENDING for a moment, so GetChange is called as on AWS.
    let kit = proxy(Config { route53_insync_after: Some(Duration::from_millis(150)), ..Config::default() });

    // Without IAM: what each command does.
    let (baseline, _) = run_all(&w, &e, &kit, Iam::Off, |_, _, _| false).await;
    let codes: Vec<i32> = baseline.iter().map(|(c, _)| *c).collect();
    assert_eq!(codes, vec![0; COMMANDS.len()], "every command succeeds without IAM:\n{baseline:#?}");

    // Under exactly the printed policy: the same, and nothing refused.
    kit.clear();
    let (under, policy) = run_all(&w, &e, &kit, Iam::Printed, |_, _, _| false).await;
    let out = serde_json::to_string_pretty(&policy).unwrap();
    for ((code, text), want) in under.iter().zip(&codes) {
        assert_eq!(code, want, "under the printed policy:\n{text}\n--- policy:\n{out}");
        assert!(!text.contains("not authorized"), "{text}\n--- policy:\n{out}");
    }
    let refused: Vec<String> =
        kit.calls().iter().filter(|c| c.status == 403).map(|c| format!("{}:{}", c.service, c.operation)).collect();
    assert!(refused.is_empty(), "calls refused under the printed policy: {refused:?}\n{out}");

    // Without any one action: some command shows it.
    for action in actions(&policy) {
        let needle = format!("not authorized to perform: {action}");
        let (seen, _) =
            run_all(&w, &e, &kit, Iam::Without(&action), |i, code, text| code != codes[i] || text.contains(&needle))
                .await;
        let shown = seen.iter().enumerate().any(|(i, (code, text))| *code != codes[i] || text.contains(&needle));
        assert!(shown, "a policy without {action} went unnoticed:\n{seen:#?}");
    }

    // The read-only policy runs status and validate, and allows no write.
    e.reset(&w).await;
    w.write("print", &e.profile("pol-print"));
    let (out, _) = crate::expect(w.cutover().args(["-p", "print", "iam-policy", "--read-only"]), 0);
    let ro: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(
        !actions(&ro).iter().any(|a| a.contains("Modify") || a.contains("Change") || a.contains("PutItem")),
        "{out}"
    );
    kit.set(|c| c.iam_policy = Some(ro.clone()));
    for args in [["status"], ["validate"]] {
        let mut cmd = w.cutover();
        cmd.env("AWS_ENDPOINT_URL", &kit.endpoint).args(["-p", "print"]).args(args);
        let (code, out, err) = run(&mut cmd);
        assert_eq!(code, 0, "{args:?} under the read-only policy:\n{out}{err}");
    }
}
