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
use crate::{World, run};

/// Everything a profile of every feature names, in the emulator.
struct Estate {
    zone: String,
    zone_id: String,
    record: String,
    preview: String,
    ingress: (String, String, String),
    listener: String,
    rule: String,
    forward: (String, String),
    id: String,
    cluster: String,
    topic: String,
    hooks: MockServer,
}

async fn estate(w: &World) -> Estate {
    let (vpc, subnets) = w.aws.network().await;
    let cluster = unique("eks");
    w.aws.cluster(&cluster, &subnets).await;
    let tags = |stack| {
        [
            ("elbv2.k8s.aws/cluster", cluster.clone()),
            ("ingress.k8s.aws/resource", "LoadBalancer".to_string()),
            ("ingress.k8s.aws/stack", stack),
        ]
    };
    let mut ingress = Vec::new();
    for side in ["blue", "green"] {
        let t = tags(format!("{side}/app"));
        let t: Vec<(&str, &str)> = t.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (lb, dns, zone) = w.aws.load_balancer(&unique(&format!("i{side}")), &subnets, &t).await;
        let tg = w.aws.target_group(&unique(&format!("it{side}")), &vpc, &["10.0.1.9"]).await;
        w.aws.listener(&lb, 80, Aws::forward(&[(&tg, 1)], None), &[]).await;
        ingress.push((dns, zone));
    }
    let (front, _, _) = w.aws.load_balancer(&unique("front"), &subnets, &[]).await;
    let blue = w.aws.target_group(&unique("fb"), &vpc, &["10.0.1.7"]).await;
    let green = w.aws.target_group(&unique("fg"), &vpc, &["10.0.2.7"]).await;
    let listener = w.aws.listener(&front, 80, Aws::forward(&[(&blue, 100), (&green, 0)], None), &[]).await;
    let rule = w.aws.rule(&listener, 4, "/p/*", Aws::forward(&[(&blue, 100), (&green, 0)], None), &[]).await;
    let zone = format!("{}.test.", unique("z"));
    let zone_id = w.aws.zone(&zone).await;
    let id = unique("");
    for side in ["blue", "green"] {
        w.aws.alarm(&format!("pol-{side}-{id}")).await;
    }
    let topic = format!("cutover-{id}");
    crate::emulator::raw_answer("sns", "/", Some(&format!("Action=CreateTopic&Name={topic}&Version=2010-03-31"))).await;
    let hooks = MockServer::start().await;
    Mock::given(method("GET")).respond_with(ResponseTemplate::new(200)).mount(&hooks).await;
    Mock::given(method("POST")).respond_with(ResponseTemplate::new(200)).mount(&hooks).await;
    Estate {
        record: format!("api.{zone}"),
        preview: format!("preprod.{zone}"),
        zone,
        zone_id,
        ingress: (ingress[0].0.clone(), ingress[1].0.clone(), ingress[0].1.clone()),
        listener,
        rule,
        forward: (blue, green),
        id,
        cluster,
        topic,
        hooks,
    }
}

impl Estate {
    fn profile(&self, table: &str) -> String {
        let (id, c, hooks) = (&self.id, &self.cluster, self.hooks.uri());
        let (blue, green) = &self.forward;
        format!(
            "[sides.blue]\neks = {{ cluster = \"{c}\", namespace = \"blue\", ingress = \"app\" }}\n\
             [sides.green]\neks = {{ cluster = \"{c}\", namespace = \"green\", ingress = \"app\" }}\n\
             [[route53]]\nzone = \"{}\"\nrecord = \"{}\"\nblue = \"blue\"\ngreen = \"green\"\npreview = \"{}\"\n\
             [[alb]]\nlistener = \"{l}\"\nblue = \"{blue}\"\ngreen = \"{green}\"\n\
             [[alb]]\nlistener = \"{l}\"\nrule = \"{}\"\nblue = \"{blue}\"\ngreen = \"{green}\"\n\
             [rollout]\nstages = [50, 100]\nbake = \"200ms\"\npoll = \"100ms\"\nmax_hold = \"2s\"\ndns_ttl = \"0s\"\nsafety_net = true\n\
             [[gate]]\ntype = \"alarm\"\nalarms = [\"pol-{{side}}-{id}\"]\n\
             [[gate]]\ntype = \"target-health\"\nmin_healthy = 0.0\n\
             [[gate]]\ntype = \"metric\"\nnamespace = \"Pol{id}\"\nmetric = \"Errors{id}\"\nmax = 1\n\
             [[gate]]\ntype = \"route53-health-check\"\nhealth_check_id = \"hc-{{side}}-{id}\"\n\
             [[gate]]\ntype = \"http\"\nurl = \"{hooks}/health\"\n\
             [[gate]]\ntype = \"webhook\"\nurl = \"{hooks}/confirm\"\n\
             [state]\ntable = \"{table}\"\n\
             [notify]\nsns_topic_arn = \"arn:aws:sns:us-west-2:123456789012:{}\"\n",
            self.zone,
            self.record,
            self.preview,
            self.rule,
            self.topic,
            l = self.listener,
        )
    }

    /// All traffic on blue, the preview on blue, fresh gate data: the start of every run.
    async fn reset(&self, w: &World) {
        let (b, g, lb_zone) = &self.ingress;
        w.aws
            .upsert(
                &self.zone_id,
                vec![
                    Aws::weighted_alias(&self.record, ("blue", 100), b, lb_zone, true),
                    Aws::weighted_alias(&self.record, ("green", 0), g, lb_zone, true),
                    Aws::simple_alias(&self.preview, b, lb_zone),
                ],
            )
            .await;
        let (blue, green) = &self.forward;
        for rule in [None, Some(self.rule.as_str())] {
            w.aws.set_action(&self.listener, rule, Aws::forward(&[(blue, 100), (green, 0)], None)).await;
        }
        for side in ["blue", "green"] {
            w.aws.put_metric(&format!("Pol{}", self.id), &format!("Errors{}", self.id), ("Side", side), 0.0).await;
            w.aws.health_check_status(&format!("hc-{side}-{}", self.id), 1.0).await;
        }
    }
}

/// Every command, in an order that takes a rollout through each state. (`state init` has a
/// policy of its own, `iam-policy --for state-init`: `hostile::state_init_…` tries it.)
const COMMANDS: &[&[&str]] = &[
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
    w.profile(&name, &e.profile(&unique("pol-")));
    let (out, _) = crate::expect(w.cutover().args(["-p", &name, "iam-policy"]), 0);
    let printed: serde_json::Value = serde_json::from_str(&out).unwrap();
    let policy = match iam {
        Iam::Off => None,
        Iam::Printed => Some(printed.clone()),
        Iam::Without(action) => Some(without(&printed, action)),
    };
    kit.set(|c| c.iam_policy = None);
    let mut init = w.cutover();
    crate::expect(init.env("AWS_ENDPOINT_URL", &kit.endpoint).args(["-p", &name, "state", "init"]), 0);
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
    w.profile("print", &e.profile("pol-print"));
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
