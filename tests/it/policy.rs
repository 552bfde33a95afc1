//! `cutover iam-policy`, tried as IAM tries it: every command runs through a proxy of the kit that
//! checks each call against exactly the printed policy (action, resource, Route53's record-name
//! condition), on a profile using every feature — `[sides]`, a preview record, every gate kind,
//! `[state]`, `[notify]`. Then, once per action, with that one action taken out: the first command
//! that called it runs again, after only the commands it needs, and must show it (an exit code
//! that is not 0, or the AccessDenied in what it prints); should it not, every command runs in
//! order. The cases run side by side, in lanes of their own estate and proxy.

use std::time::Duration;

use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::emulator::{proxy, unique};
use crate::fixtures::Aws;
use crate::proxy::{Call, Config, Proxy};
use crate::scenario::{Front, Gate, Ingress, Notify, Profile, Records, Rollout};
use crate::{World, run, run_async};

/// How many cases run side by side.
const LANES: usize = 4;

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

/// Every command, in an order that takes a rollout through each state; each with the commands
/// before it that make the state it needs. (`state init` has a policy of its own, `iam-policy
/// --for state-init`: it runs before each pass without IAM; `hostile::state_init_…` tries it.)
const COMMANDS: &[(&[&str], &[usize])] = &[
    (&["validate"], &[]),
    (&["status"], &[]),
    (&["set", "green=10", "--no-gates"], &[]),
    (&["rollback", "--to", "blue"], &[2]),
    (&["advance"], &[]),
    (&["advance"], &[4]),
    (&["pause"], &[4]),
    (&["resume"], &[4, 6]),
    (&["promote"], &[4]),
    (&["rollout", "--to", "blue"], &[4, 8]),
    (&["rollback"], &[4, 8, 9]),
    (&["history"], &[]),
];

/// What a run's calls are checked against.
enum Iam<'a> {
    /// The policy `iam-policy` prints for the run's profile.
    Printed,
    /// That policy without one action.
    Without(&'a str),
}

/// One command's exit code and output, and the calls it made.
struct Ran {
    code: i32,
    text: String,
    calls: Vec<Call>,
}

impl std::fmt::Debug for Ran {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "exit {}: {}", self.code, self.text)
    }
}

/// Runs the commands numbered `which` (of [`COMMANDS`]) through the kit's proxy on a fresh state
/// table, under `iam`, up to the first that `stop` picks; and the policy printed.
async fn run_all(
    w: &World,
    e: &Estate,
    kit: &Proxy,
    iam: Iam<'_>,
    which: &[usize],
    stop: impl Fn(i32, &str) -> bool,
) -> (Vec<Ran>, serde_json::Value) {
    e.reset(w).await;
    let name = unique("svc");
    w.write(&name, &e.profile(&unique("pol-")));
    let mut print = w.std_cutover();
    print.args(["-p", &name, "iam-policy"]);
    let (_, out, _) = run_async(print).await;
    let printed: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    let policy = match iam {
        Iam::Printed => printed.clone(),
        Iam::Without(action) => without(&printed, action),
    };
    kit.set(|c| c.iam_policy = None);
    let mut init = w.std_cutover();
    init.env("AWS_ENDPOINT_URL", &kit.endpoint).args(["-p", &name, "state", "init"]);
    let (code, _, err) = run_async(init).await;
    assert_eq!(code, 0, "state init: {err}");
    kit.set(|c| c.iam_policy = Some(policy));
    let mut seen = Vec::new();
    for &i in which {
        let args = COMMANDS[i].0;
        kit.clear();
        let mut cmd = w.std_cutover();
        cmd.env("AWS_ENDPOINT_URL", &kit.endpoint).args(["-p", &name]).args(args);
        let (code, out, err) = run_async(cmd).await;
        let text = format!("$ cutover {}\n{out}{err}", args.join(" "));
        let end = stop(code, &text);
        seen.push(Ran { code, text, calls: kit.calls() });
        if end {
            break;
        }
    }
    (seen, printed)
}

/// The IAM actions a call is authorised as (a transaction's items as their own writes).
fn actions_of(call: &Call) -> Vec<String> {
    let prefix = if call.service == "monitoring" { "cloudwatch" } else { call.service.as_str() };
    match call.operation.as_str() {
        "TransactWriteItems" => ["PutItem", "UpdateItem", "DeleteItem", "ConditionCheckItem"]
            .iter()
            .map(|a| format!("dynamodb:{a}"))
            .collect(),
        op => vec![format!("{prefix}:{op}")],
    }
}

/// Whether a run without `action` shows it missing: an exit code that is not 0, or the
/// AccessDenied in what it printed.
fn shows(action: &str, code: i32, text: &str) -> bool {
    code != 0 || text.contains(&format!("not authorized to perform: {action}"))
}

/// A run without `action`: the first command that called it under the printed policy (`first`),
/// after only the commands it needs; when that does not show it (or nothing called it), every
/// command in order. The runs, if none showed it.
async fn unnoticed(w: &World, e: &Estate, kit: &Proxy, action: &str, first: Option<usize>) -> Option<Vec<Ran>> {
    if let Some(k) = first {
        let which: Vec<usize> = COMMANDS[k].1.iter().copied().chain([k]).collect();
        let (seen, _) = run_all(w, e, kit, Iam::Without(action), &which, |code, text| shows(action, code, text)).await;
        if seen.iter().any(|r| shows(action, r.code, &r.text)) {
            return None;
        }
    }
    eprintln!("{action}: {first:?} did not show it alone; every command in order");
    let all: Vec<usize> = (0..COMMANDS.len()).collect();
    let (seen, _) = run_all(w, e, kit, Iam::Without(action), &all, |code, text| shows(action, code, text)).await;
    (!seen.iter().any(|r| shows(action, r.code, &r.text))).then_some(seen)
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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_command_runs_under_exactly_the_printed_policy_and_not_without_any_one_action() {
    let w = World::new().await;
    // Lanes, each an estate and a kit proxy of its own, run the cases side by side. Route53
    // changes PENDING for a moment, so GetChange is called as on AWS.
    let kit = || proxy(Config { route53_insync_after: Some(Duration::from_millis(150)), ..Config::default() });
    let lanes: Vec<(Estate, Proxy)> =
        futures::future::join_all((0..LANES).map(|_| async { (estate(&w).await, kit()) })).await;
    let (e, kit) = &lanes[0];

    // Under exactly the printed policy: every command succeeds, and nothing is refused.
    let all: Vec<usize> = (0..COMMANDS.len()).collect();
    let (under, policy) = run_all(&w, e, kit, Iam::Printed, &all, |_, _| false).await;
    let out = serde_json::to_string_pretty(&policy).unwrap();
    for ran in &under {
        assert_eq!(ran.code, 0, "under the printed policy:\n{}\n--- policy:\n{out}", ran.text);
        assert!(!ran.text.contains("not authorized"), "{}\n--- policy:\n{out}", ran.text);
    }
    let refused: Vec<String> = under
        .iter()
        .flat_map(|r| &r.calls)
        .filter(|c| c.status == 403)
        .map(|c| format!("{}:{}", c.service, c.operation))
        .collect();
    assert!(refused.is_empty(), "calls refused under the printed policy: {refused:?}\n{out}");

    // Without any one action: some command shows it. A case runs the first command that called
    // the action, after only the commands that command needs.
    let first =
        |action: &str| under.iter().position(|r| r.calls.iter().any(|c| actions_of(c).iter().any(|a| a == action)));
    let cases: Vec<(String, Option<usize>)> = actions(&policy)
        .into_iter()
        .map(|a| {
            let k = first(&a);
            (a, k)
        })
        .collect();
    let found = futures::future::join_all(lanes.iter().enumerate().map(|(l, (e, kit))| {
        let mine: Vec<&(String, Option<usize>)> = cases.iter().skip(l).step_by(LANES).collect();
        let w = &w;
        async move {
            let mut unnoticed_here = Vec::new();
            for (action, k) in mine {
                if let Some(seen) = unnoticed(w, e, kit, action, *k).await {
                    unnoticed_here.push(format!("a policy without {action} went unnoticed:\n{seen:#?}"));
                }
            }
            unnoticed_here
        }
    }))
    .await;
    let unnoticed: Vec<String> = found.into_iter().flatten().collect();
    assert!(unnoticed.is_empty(), "{}", unnoticed.join("\n"));

    // The read-only policy runs status and validate, and allows no write.
    e.reset(&w).await;
    w.write("print", &e.profile("pol-print"));
    let (out, _) = crate::expect(w.cutover().args(["-p", "print", "iam-policy", "--read-only"]), 0);
    let ro: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(
        !actions(&ro).iter().any(|a| a.contains("Modify") || a.contains("Change") || a.contains("PutItem")),
        "{out}"
    );
    // The table exists (validate checks it does).
    crate::expect(w.cutover().args(["-p", "print", "state", "init"]), 0);
    kit.set(|c| c.iam_policy = Some(ro.clone()));
    for args in [["status"], ["validate"]] {
        let mut cmd = w.cutover();
        cmd.env("AWS_ENDPOINT_URL", &kit.endpoint).args(["-p", "print"]).args(args);
        let (code, out, err) = run(&mut cmd);
        assert_eq!(code, 0, "{args:?} under the read-only policy:\n{out}{err}");
    }
}
