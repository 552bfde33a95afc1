//! Routes in other accounts (`role_arn`): the emulator keeps resources per account, and
//! credentials from AssumeRole act in the role's account — so a zone made in a "network" account
//! and a listener in a "workload" account are not found with the caller's own credentials.

use crate::emulator::{proxy, unique};
use crate::fixtures::Aws;
use crate::proxy::{Config, RoleIam};
use crate::{World, expect};

const NETWORK: &str = "arn:aws:iam::111111111111:role/cutover-network";
const WORKLOAD: &str = "arn:aws:iam::222222222222:role/cutover-workload";

/// A new hosted zone of the network account: its name, its id and the name of the pair's record.
async fn hub_zone(network: &Aws) -> (String, String, String) {
    let zone = format!("{}.test.", unique("hub"));
    let zone_id = network.zone(&zone).await;
    let record = format!("api.{zone}");
    (zone, zone_id, record)
}

/// A weighted CNAME pair in a zone of the network account and a listener forwarding to two
/// target groups in the workload account, all on blue.
struct HubAndSpoke {
    network: Aws,
    workload: Aws,
    zone: String,
    zone_id: String,
    record: String,
    listener: String,
    blue: String,
    green: String,
    lb_name: String,
    blue_name: String,
    green_name: String,
}

impl HubAndSpoke {
    async fn new(w: &World) -> HubAndSpoke {
        let network = w.aws.assuming(NETWORK).await;
        let workload = w.aws.assuming(WORKLOAD).await;
        let (zone, zone_id, record) = hub_zone(&network).await;
        network
            .upsert(
                &zone_id,
                vec![
                    Aws::weighted_cname(&record, ("blue", 100), 60, "blue.example.test", None),
                    Aws::weighted_cname(&record, ("green", 0), 60, "green.example.test", None),
                ],
            )
            .await;
        let (vpc, subnets) = workload.network().await;
        let lb_name = unique("spoke");
        let (lb, _, _) = workload.load_balancer(&lb_name, &subnets, &[]).await;
        let (blue_name, green_name) = (unique("tb"), unique("tg"));
        let blue = workload.target_group(&blue_name, &vpc, &["10.0.1.5"]).await;
        let green = workload.target_group(&green_name, &vpc, &["10.0.2.5"]).await;
        let listener = workload.listener(&lb, 80, Aws::forward(&[(&blue, 100), (&green, 0)], None), &[]).await;
        HubAndSpoke { network, workload, zone, zone_id, record, listener, blue, green, lb_name, blue_name, green_name }
    }

    /// The profile, each route with the given role (or none); the zone's role with an external id.
    fn profile(&self, zone_role: Option<&str>, alb_role: Option<&str>) -> String {
        let zone_role = zone_role.map(|r| format!("role_arn = \"{r}\"\nexternal_id = \"hub-7\"\n")).unwrap_or_default();
        let alb_role = alb_role.map(|r| format!("role_arn = \"{r}\"\n")).unwrap_or_default();
        format!(
            "[[route53]]\nzone = \"{}\"\nrecord = \"{}\"\ntype = \"CNAME\"\nblue = \"blue\"\ngreen = \"green\"\n{zone_role}\n\
             [[alb]]\nlistener = \"{}:80\"\nblue = \"{}\"\ngreen = \"{}\"\n{alb_role}\n\
             [rollout]\nstages = [50, 100]\nbake = \"0s\"\npoll = \"50ms\"\ndns_ttl = \"0s\"\n",
            self.zone, self.record, self.lb_name, self.blue_name, self.green_name,
        )
    }

    /// (Route53 blue:green, ALB blue:green), read in each resource's own account.
    async fn weights(&self) -> ((i64, i64), (i32, i32)) {
        let alb = self.workload.forward_weights(&self.listener, None).await;
        let of = |arn: &str| alb.iter().find(|(a, _)| a == arn).map(|(_, w)| *w).expect("a forward weight");
        (
            (
                self.network.weight(&self.zone_id, &self.record, "blue").await,
                self.network.weight(&self.zone_id, &self.record, "green").await,
            ),
            (of(&self.blue), of(&self.green)),
        )
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zone_in_one_account_and_an_alb_in_another_move_in_one_rollout_with_their_roles() {
    let w = World::new().await;
    let hub = HubAndSpoke::new(&w).await;

    // Without the workload role, the listener is looked for in the caller's account: not there.
    w.profile("spoke", &hub.profile(Some(NETWORK), None));
    let (_, err) = expect(w.cutover().args(["-p", "spoke", "status"]), 2);
    assert!(err.contains(&hub.lb_name) && err.contains("not found"), "{err}");
    // Without the network role, the zone is not found either.
    w.profile("hub", &hub.profile(None, Some(WORKLOAD)));
    let (_, err) = expect(w.cutover().args(["-p", "hub", "status"]), 2);
    assert!(err.contains(hub.zone.trim_end_matches('.')) && err.contains("not found"), "{err}");
    assert_eq!(hub.weights().await, ((100, 0), (100, 0)), "a refused run changes nothing");

    // With both roles, one rollout moves both accounts' routes. Its target-health gate names no
    // role: it reads the listener's target groups with the listener's.
    let gated = format!("{}\n[[gate]]\ntype = \"target-health\"\n", hub.profile(Some(NETWORK), Some(WORKLOAD)));
    w.profile("both", &gated);
    let kit = proxy(Config::default());
    let (out, err) =
        expect(w.cutover().env("AWS_ENDPOINT_URL", &kit.endpoint).args(["-p", "both", "rollout", "--to", "green"]), 0);
    assert_eq!(hub.weights().await, ((0, 100), (0, 100)), "{out}\n{err}");
    assert!(err.contains("target-health"), "the gate was read: {err}");
    // Each role is assumed once for the whole run, however many clients use it, under the
    // session name `cutover-PROFILE`, with the route's external id.
    let mut assumed: Vec<String> =
        kit.calls().into_iter().filter(|c| c.operation == "AssumeRole").map(|c| c.body).collect();
    assumed.sort();
    assert_eq!(assumed.len(), 2, "{assumed:?}");
    let network = assumed.iter().find(|b| b.contains("cutover-network")).expect("the network role assumed");
    assert!(network.contains("RoleSessionName=cutover-both") && network.contains("ExternalId=hub-7"), "{network}");
    let workload = assumed.iter().find(|b| b.contains("cutover-workload")).expect("the workload role assumed");
    assert!(workload.contains("RoleSessionName=cutover-both") && !workload.contains("ExternalId"), "{workload}");
    let (out, _) = expect(w.cutover().args(["-p", "both", "-o", "json", "status"]), 0);
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(doc["live"], "green", "{out}");
    let kinds: Vec<&str> = doc["routes"].as_array().unwrap().iter().filter_map(|r| r["kind"].as_str()).collect();
    assert_eq!(kinds, ["route53", "alb"], "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn iam_policy_prints_the_callers_policy_with_assume_role_and_each_roles_policy_and_trust() {
    let w = World::new().await;
    let hub = HubAndSpoke::new(&w).await;
    w.profile("both", &hub.profile(Some(NETWORK), Some(WORKLOAD)));
    let (out, _) = expect(w.cutover().args(["-p", "both", "iam-policy"]), 0);
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    let text = |v: &serde_json::Value| v.to_string();

    let caller = &doc["caller"];
    let assume =
        caller["Statement"].as_array().unwrap().iter().find(|s| s["Action"] == serde_json::json!(["sts:AssumeRole"]));
    let assume = assume.unwrap_or_else(|| panic!("no sts:AssumeRole statement: {out}"));
    assert_eq!(assume["Resource"], serde_json::json!([NETWORK, WORKLOAD]), "{out}");
    assert!(!text(caller).contains("route53:") && !text(caller).contains("elasticloadbalancing:"), "{out}");

    let roles = doc["roles"].as_array().expect("roles");
    let role = |arn: &str| roles.iter().find(|r| r["role_arn"] == arn).unwrap_or_else(|| panic!("{arn}: {out}"));
    let network = role(NETWORK);
    assert_eq!(network["account"], "111111111111");
    assert!(text(&network["policy"]).contains("route53:ChangeResourceRecordSets"), "{out}");
    assert!(!text(&network["policy"]).contains("elasticloadbalancing:"), "{out}");
    let trust = &network["trust_policy"]["Statement"][0];
    assert_eq!(trust["Principal"]["AWS"], "arn:aws:iam::123456789012:root", "{out}");
    assert_eq!(trust["Condition"]["StringEquals"]["sts:ExternalId"], "hub-7", "{out}");
    let workload = role(WORKLOAD);
    assert_eq!(workload["account"], "222222222222");
    let policy = text(&workload["policy"]);
    assert!(
        policy.contains("elasticloadbalancing:ModifyListener") && policy.contains(":222222222222:listener/app/"),
        "{out}"
    );
    assert!(!policy.contains("route53:"), "{out}");
    // The caller alone (as STS names it), not its whole account; no external id without one.
    let condition = &workload["trust_policy"]["Statement"][0]["Condition"];
    assert_eq!(condition["ArnEquals"]["aws:PrincipalArn"], "arn:aws:iam::123456789012:user/moto", "{out}");
    assert!(condition.get("StringEquals").is_none(), "{out}");
}

/// A change to the printed policies.
type Edit = Box<dyn FnOnce(&mut serde_json::Value)>;

/// The kit's IAM set to `policies` as `iam-policy` printed them (`edit` changes them first).
fn kit_with(policies: &serde_json::Value, edit: impl FnOnce(&mut serde_json::Value)) -> crate::proxy::Proxy {
    let mut policies = policies.clone();
    edit(&mut policies);
    let roles = policies["roles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let arn = r["role_arn"].as_str().unwrap().to_string();
            (arn, RoleIam { policy: r["policy"].clone(), trust: r["trust_policy"].clone() })
        })
        .collect();
    // A change PENDING until GetChange, as on AWS: the rollout waits on it.
    let insync = Some(std::time::Duration::from_millis(1));
    proxy(Config {
        iam_policy: Some(policies["caller"].clone()),
        roles,
        route53_insync_after: insync,
        ..Config::default()
    })
}

/// The statements of `policy` without those allowing `action`.
fn without(policy: &mut serde_json::Value, action: &str) {
    let statements = policy["Statement"].as_array_mut().unwrap();
    statements.retain(|s| !s["Action"].as_array().unwrap().iter().any(|a| a == action));
}

/// The hub and spoke with both roles and a target-health gate as profile `both`, and the
/// policies `iam-policy` prints for it.
async fn gated_hub(w: &World) -> (HubAndSpoke, serde_json::Value) {
    let hub = HubAndSpoke::new(w).await;
    let gated = format!("{}\n[[gate]]\ntype = \"target-health\"\n", hub.profile(Some(NETWORK), Some(WORKLOAD)));
    w.profile("both", &gated);
    let (out, _) = expect(w.cutover().args(["-p", "both", "iam-policy"]), 0);
    (hub, serde_json::from_str(&out).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cross_account_rollout_runs_under_exactly_the_printed_policies_and_each_part_is_needed() {
    let w = World::new().await;
    let (hub, policies) = gated_hub(&w).await;
    let role_index =
        |arn: &str| policies["roles"].as_array().unwrap().iter().position(|r| r["role_arn"] == arn).unwrap();
    let (network, workload) = (role_index(NETWORK), role_index(WORKLOAD));

    // Each part taken away in turn: the caller's AssumeRole, the trust's external id, a role's
    // write. Each run is refused, naming what is missing, and leaves traffic as it was — the
    // zone's half of a stage whose listener write was refused is put back.
    let refusals: [(&[&str], Edit); 3] = [
        (
            &["sts:AssumeRole on resource: arn:aws:iam::111111111111:role/cutover-network"],
            Box::new(|p| without(&mut p["caller"], "sts:AssumeRole")),
        ),
        (
            &["could not assume the role arn:aws:iam::111111111111:role/cutover-network (route53[0].role_arn)"],
            Box::new(move |p| {
                p["roles"][network]["trust_policy"]["Statement"][0]["Condition"]["StringEquals"]["sts:ExternalId"] =
                    "other".into()
            }),
        ),
        (
            &["AccessDenied", "elasticloadbalancing:ModifyListener", "traffic is as before the write"],
            Box::new(move |p| without(&mut p["roles"][workload]["policy"], "elasticloadbalancing:ModifyListener")),
        ),
    ];
    for (missing, edit) in refusals {
        let kit = kit_with(&policies, edit);
        let (code, out, err) = crate::run(
            w.cutover().env("AWS_ENDPOINT_URL", &kit.endpoint).args(["-p", "both", "rollout", "--to", "green"]),
        );
        assert_eq!(code, 1, "{missing:?}: {out}\n{err}");
        assert!(missing.iter().all(|m| err.contains(m)), "{missing:?}: {out}\n{err}");
        assert!(!err.contains("Error {") && !err.contains("Unhandled"), "one sentence, no debug dump: {err}");
        assert_eq!(hub.weights().await, ((100, 0), (100, 0)), "{missing:?}: {out}\n{err}");
    }

    let kit = kit_with(&policies, |_| {});
    let (out, err) =
        expect(w.cutover().env("AWS_ENDPOINT_URL", &kit.endpoint).args(["-p", "both", "rollout", "--to", "green"]), 0);
    assert_eq!(hub.weights().await, ((0, 100), (0, 100)), "{out}\n{err}");
    let denied: Vec<String> = kit.calls().into_iter().filter(|c| c.status == 403).map(|c| c.operation).collect();
    assert!(denied.is_empty(), "calls refused: {denied:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aliases_in_the_network_zone_to_workload_load_balancers_are_followed_with_the_sides_role() {
    let w = World::new().await;
    let network = w.aws.assuming(NETWORK).await;
    let workload = w.aws.assuming(WORKLOAD).await;
    // Each side's ingress ALB, with a target group behind a listener, in the workload account.
    let (vpc, subnets) = workload.network().await;
    let mut sides = Vec::new();
    for side in ["blue", "green"] {
        let (lb, dns, lb_zone) = workload.load_balancer(&unique(&format!("in{side}")), &subnets, &[]).await;
        let tg = workload.target_group(&unique(&format!("t{side}")), &vpc, &["10.0.3.5"]).await;
        workload.listener(&lb, 80, Aws::forward(&[(&tg, 1)], None), &[]).await;
        sides.push((dns, lb_zone));
    }
    let (zone, zone_id, record) = hub_zone(&network).await;
    // Route53 takes an alias to a load balancer of another account (the kit looks in every one).
    network
        .upsert(
            &zone_id,
            vec![
                Aws::weighted_alias(&record, ("blue", 100), &sides[0].0, &sides[0].1, true),
                Aws::weighted_alias(&record, ("green", 0), &sides[1].0, &sides[1].1, true),
            ],
        )
        .await;
    let profile = |sides_role: &str| {
        format!(
            "[[route53]]\nzone = \"{zone}\"\nrecord = \"{record}\"\nblue = \"blue\"\ngreen = \"green\"\nrole_arn = \"{NETWORK}\"\n\n\
             {sides_role}\
             [rollout]\nstages = [100]\nbake = \"0s\"\npoll = \"50ms\"\ndns_ttl = \"0s\"\n\n\
             [[gate]]\ntype = \"target-health\"\n"
        )
    };
    // Without a role for the sides, the aliases' load balancers are looked for in the zone's
    // account, and the gate finds none: nothing moves.
    w.profile("zone-only", &profile(""));
    let (code, out, err) = crate::run(w.cutover().args(["-p", "zone-only", "rollout", "--to", "green"]));
    assert_ne!(code, 0, "{out}\n{err}");
    assert!(err.contains("no load balancer found for the green record's alias"), "{out}\n{err}");
    assert_eq!(network.weight(&zone_id, &record, "green").await, 0);

    let sides_role = format!("[sides.blue]\nrole_arn = \"{WORKLOAD}\"\n[sides.green]\nrole_arn = \"{WORKLOAD}\"\n\n");
    w.profile("spoke", &profile(&sides_role));
    let (out, err) = expect(w.cutover().args(["-p", "spoke", "rollout", "--to", "green"]), 0);
    assert!(err.contains("1/1 targets healthy"), "{out}\n{err}");
    assert_eq!(network.weight(&zone_id, &record, "green").await, 100, "{out}\n{err}");
    assert_eq!(network.weight(&zone_id, &record, "blue").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollback_tells_a_dead_alias_target_by_looking_in_the_sides_account_too() {
    let w = World::new().await;
    let network = w.aws.assuming(NETWORK).await;
    let workload = w.aws.assuming(WORKLOAD).await;
    let (_, subnets) = workload.network().await;
    let (_, blue_dns, lb_zone) = workload.load_balancer(&unique("rb"), &subnets, &[]).await;
    let (green_arn, green_dns, _) = workload.load_balancer(&unique("rg"), &subnets, &[]).await;
    let (zone, zone_id, record) = hub_zone(&network).await;
    let other = format!("www.{zone}");
    let other_blue = workload.load_balancer(&unique("ob"), &subnets, &[]).await.1;
    let other_green = workload.load_balancer(&unique("og"), &subnets, &[]).await.1;
    network
        .upsert(
            &zone_id,
            vec![
                Aws::weighted_alias(&record, ("blue", 50), &blue_dns, &lb_zone, true),
                Aws::weighted_alias(&record, ("green", 50), &green_dns, &lb_zone, true),
                Aws::weighted_alias(&other, ("blue", 50), &other_blue, &lb_zone, true),
                Aws::weighted_alias(&other, ("green", 50), &other_green, &lb_zone, true),
            ],
        )
        .await;
    let route = |name: &str| {
        format!(
            "[[route53]]\nzone = \"{zone}\"\nrecord = \"{name}\"\nblue = \"blue\"\ngreen = \"green\"\nrole_arn = \"{NETWORK}\"\n"
        )
    };
    let sides = format!("[sides.blue]\nrole_arn = \"{WORKLOAD}\"\n[sides.green]\nrole_arn = \"{WORKLOAD}\"\n");
    w.profile("svc", &format!("{}{}{sides}", route(&record), route(&other)));
    // Green's ingress ALB is deleted; the other load balancers live on in the workload account,
    // where the zone's own account cannot see them.
    workload.elb.delete_load_balancer().load_balancer_arn(&green_arn).send().await.unwrap();

    let (code, out, err) = crate::run(w.cutover().args(["-p", "svc", "rollback", "--to", "blue"]));
    assert_eq!(code, 4, "{out}{err}");
    assert!(err.contains("alias target no longer exists") && err.contains(&green_dns.to_ascii_lowercase()), "{err}");
    assert!(!err.contains(&other_green.to_ascii_lowercase()), "a live load balancer is not called dead: {err}");
    assert_eq!(network.weight(&zone_id, &record, "blue").await, 100);
    assert_eq!(network.weight(&zone_id, &record, "green").await, 50, "its set cannot be written");
    assert_eq!(network.weight(&zone_id, &other, "blue").await, 100);
    assert_eq!(network.weight(&zone_id, &other, "green").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_role_whose_credentials_expire_during_a_rollout_is_assumed_again() {
    let w = World::new().await;
    let hub = HubAndSpoke::new(&w).await;
    // The session lasts 12 s; the SDK's cache takes credentials as expired 5–10 s early (a
    // buffer of 10 s, less a jitter of up to half), so each set serves at most 7 s of a rollout
    // that bakes two stages of at least 4 s, its target-health gate reading the workload role's
    // target groups all along.
    let profile = hub.profile(Some(NETWORK), Some(WORKLOAD)).replace("bake = \"0s\"", "bake = \"4s\"");
    w.profile("long", &format!("{profile}\n[[gate]]\ntype = \"target-health\"\n"));
    let kit = proxy(Config { assumed_for: Some(std::time::Duration::from_secs(12)), ..Config::default() });
    let (out, err) =
        expect(w.cutover().env("AWS_ENDPOINT_URL", &kit.endpoint).args(["-p", "long", "rollout", "--to", "green"]), 0);
    assert_eq!(hub.weights().await, ((0, 100), (0, 100)), "{out}\n{err}");
    let assumed =
        kit.calls().into_iter().filter(|c| c.operation == "AssumeRole" && c.body.contains("cutover-workload"));
    assert!(assumed.count() >= 2, "the workload role was assumed again once its credentials ran out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollback_across_two_accounts_assumes_both_roles_at_once_then_makes_the_usual_calls() {
    let w = World::new().await;
    let hub = HubAndSpoke::new(&w).await;
    w.profile("both", &hub.profile(Some(NETWORK), Some(WORKLOAD)));
    expect(w.cutover().args(["-p", "both", "set", "green=50", "--yes"]), 0);
    let kit = proxy(crate::speed::aws_like());
    expect(
        w.cutover().env("AWS_ENDPOINT_URL", &kit.endpoint).args(["-p", "both", "rollback", "--to", "blue", "--yes"]),
        0,
    );
    assert_eq!(hub.weights().await, ((100, 0), (100, 0)));
    let calls = kit.calls();
    // One AssumeRole per role, side by side: each account's reads wait on one round trip only.
    let assumed: Vec<&crate::proxy::Call> = calls.iter().filter(|c| c.operation == "AssumeRole").collect();
    assert_eq!(assumed.len(), 2, "{:?}", crate::speed::ops(&calls, "sts"));
    assert!(assumed[0].started < assumed[1].ended && assumed[1].started < assumed[0].ended, "both at once");
    assert_eq!(crate::speed::ops(&calls, "sts"), ["AssumeRole", "AssumeRole"], "no other STS call");
    assert_eq!(
        crate::speed::ops(&calls, "route53"),
        ["ListHostedZonesByName", "ListResourceRecordSets", "ChangeResourceRecordSets", "GetChange"]
    );
    let mut elb = crate::speed::ops(&calls, "elasticloadbalancing");
    elb.sort();
    assert_eq!(elb, ["DescribeListeners", "DescribeLoadBalancers", "DescribeTags", "ModifyListener"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_action_of_each_printed_role_policy_is_needed() {
    let w = World::new().await;
    let (_hub, policies) = gated_hub(&w).await;
    let mut unneeded = Vec::new();
    for (r, role) in policies["roles"].as_array().unwrap().iter().enumerate() {
        let actions: Vec<String> = role["policy"]["Statement"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|s| s["Action"].as_array().unwrap().iter().map(|a| a.as_str().unwrap().to_string()))
            .collect();
        for action in actions {
            let kit = kit_with(&policies, |p| {
                for s in p["roles"][r]["policy"]["Statement"].as_array_mut().unwrap() {
                    s["Action"].as_array_mut().unwrap().retain(|a| a != action.as_str());
                }
            });
            let mut rollout = w.cutover();
            rollout.env("AWS_ENDPOINT_URL", &kit.endpoint).args(["-p", "both", "rollout", "--to", "green"]);
            let (code, out, err) = crate::run(&mut rollout);
            let shown = err.contains("AccessDenied") && err.contains(&action) || out.contains(&action);
            if code == 0 && !shown {
                unneeded.push(format!("{}: {action}", role["role_arn"]));
            }
            // Back on blue for the next run, with the caller's own credentials.
            expect(w.cutover().args(["-p", "both", "set", "blue=100", "--yes"]), 0);
        }
    }
    assert!(unneeded.is_empty(), "printed but not needed by a rollout: {unneeded:#?}");
}
