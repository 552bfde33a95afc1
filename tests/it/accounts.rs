//! Routes in other accounts (`role_arn`): the emulator keeps resources per account, and
//! credentials from AssumeRole act in the role's account — so a zone made in a "network" account
//! and a listener in a "workload" account are not found with the caller's own credentials.

use crate::emulator::{proxy, unique};
use crate::fixtures::Aws;
use crate::proxy::{Config, RoleIam};
use crate::scenario::{Front, Gate, Profile, Records, Rollout, Route53, Sides};
use crate::{World, expect};

const NETWORK: &str = "arn:aws:iam::111111111111:role/cutover-network";
const WORKLOAD: &str = "arn:aws:iam::222222222222:role/cutover-workload";

/// A weighted CNAME pair in a zone of the network account and a listener forwarding to two
/// target groups in the workload account, all on blue.
struct HubAndSpoke {
    hub: Records,
    spoke: Front,
}

impl HubAndSpoke {
    async fn new(w: &World) -> HubAndSpoke {
        let network = w.aws.assuming(NETWORK).await;
        let workload = w.aws.assuming(WORKLOAD).await;
        let hub = Records::cname(&network, 60).await;
        let spoke = Front::new(&workload).await;
        HubAndSpoke { hub, spoke }
    }

    /// The profile, each route with the given role (or none); the zone's role with an external
    /// id; the listener named `LB:80` and its target groups by name.
    fn profile(&self, zone_role: Option<&str>, alb_role: Option<&str>) -> Profile {
        let mut zone = self.hub.route();
        if let Some(role) = zone_role {
            zone = zone.role_arn(role).external_id("hub-7");
        }
        let mut alb = self.spoke.route_by_name(&format!("{}:80", self.spoke.lb_name));
        if let Some(role) = alb_role {
            alb = alb.role_arn(role);
        }
        let rollout = Rollout::new(&[50.0, 100.0]).bake("0s").poll("50ms").dns_ttl("0s");
        Profile::new().route53(zone).alb(alb).rollout(rollout)
    }

    /// (Route53 blue:green, ALB blue:green), read in each resource's own account.
    async fn weights(&self) -> ((i64, i64), (i32, i32)) {
        (self.hub.weights().await, self.spoke.weights().await)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zone_in_one_account_and_an_alb_in_another_move_in_one_rollout_with_their_roles() {
    let w = World::new().await;
    let hub = HubAndSpoke::new(&w).await;

    // Without the workload role, the listener is looked for in the caller's account: not there.
    w.write("spoke", &hub.profile(Some(NETWORK), None));
    let (_, err) = expect(w.cutover().args(["-p", "spoke", "status"]), 2);
    assert!(err.contains(&hub.spoke.lb_name) && err.contains("not found"), "{err}");
    // Without the network role, the zone is not found either.
    w.write("hub", &hub.profile(None, Some(WORKLOAD)));
    let (_, err) = expect(w.cutover().args(["-p", "hub", "status"]), 2);
    assert!(err.contains(hub.hub.zone.trim_end_matches('.')) && err.contains("not found"), "{err}");
    assert_eq!(hub.weights().await, ((100, 0), (100, 0)), "a refused run changes nothing");

    // With both roles, one rollout moves both accounts' routes. Its target-health gate names no
    // role: it reads the listener's target groups with the listener's.
    w.write("both", &hub.profile(Some(NETWORK), Some(WORKLOAD)).gate(Gate::target_health()));
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
    w.write("both", &hub.profile(Some(NETWORK), Some(WORKLOAD)));
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

/// The hub and spoke with both roles and a target-health gate as profile `name`, and the
/// policies `iam-policy` prints for it.
async fn gated_hub(w: &World, name: &str) -> (HubAndSpoke, serde_json::Value) {
    let hub = HubAndSpoke::new(w).await;
    w.write(name, &hub.profile(Some(NETWORK), Some(WORKLOAD)).gate(Gate::target_health()));
    let (out, _) = expect(w.cutover().args(["-p", name, "iam-policy"]), 0);
    (hub, serde_json::from_str(&out).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cross_account_rollout_runs_under_exactly_the_printed_policies_and_each_part_is_needed() {
    let w = World::new().await;
    let (hub, policies) = gated_hub(&w, "both").await;
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
    // Route53 takes an alias to a load balancer of another account (the kit looks in every one).
    let records = Records::alias_to(&network, (100, 0), (&sides[0].0, &sides[1].0), &sides[0].1).await;
    let profile = Profile::new()
        .route53(records.route().role_arn(NETWORK))
        .rollout(Rollout::new(&[100.0]).bake("0s").poll("50ms").dns_ttl("0s"))
        .gate(Gate::target_health());
    // Without a role for the sides, the aliases' load balancers are looked for in the zone's
    // account, and the gate finds none: nothing moves.
    w.write("zone-only", &profile);
    let (code, out, err) = crate::run(w.cutover().args(["-p", "zone-only", "rollout", "--to", "green"]));
    assert_ne!(code, 0, "{out}\n{err}");
    assert!(err.contains("no load balancer found for the green record's alias"), "{out}\n{err}");
    assert_eq!(records.weight("green").await, 0);

    w.write("spoke", &profile.sides(Sides::role(WORKLOAD)));
    let (out, err) = expect(w.cutover().args(["-p", "spoke", "rollout", "--to", "green"]), 0);
    assert!(err.contains("1/1 targets healthy"), "{out}\n{err}");
    assert_eq!(records.weight("green").await, 100, "{out}\n{err}");
    assert_eq!(records.weight("blue").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollback_tells_a_dead_alias_target_by_looking_in_the_sides_account_too() {
    let w = World::new().await;
    let network = w.aws.assuming(NETWORK).await;
    let workload = w.aws.assuming(WORKLOAD).await;
    let (_, subnets) = workload.network().await;
    let (_, blue_dns, lb_zone) = workload.load_balancer(&unique("rb"), &subnets, &[]).await;
    let (green_arn, green_dns, _) = workload.load_balancer(&unique("rg"), &subnets, &[]).await;
    let records = Records::zone(&network).await;
    let (zone, zone_id, record) = (records.zone.clone(), records.zone_id.clone(), records.record.clone());
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
    let route = |name: &str| Route53::new(&zone, name).role_arn(NETWORK);
    w.write("svc", &Profile::new().route53(route(&record)).route53(route(&other)).sides(Sides::role(WORKLOAD)));
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
    let profile = hub.profile(Some(NETWORK), Some(WORKLOAD));
    let rollout = profile.rollout.clone().unwrap().bake("4s");
    w.write("long", &profile.rollout(rollout).gate(Gate::target_health()));
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
    w.write("both", &hub.profile(Some(NETWORK), Some(WORKLOAD)));
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

/// The actions of a policy.
fn actions_of(policy: &serde_json::Value) -> Vec<String> {
    let statements = policy["Statement"].as_array().unwrap();
    statements.iter().flat_map(|s| s["Action"].as_array().unwrap().iter().map(|a| a.as_str().unwrap().into())).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_action_of_each_printed_role_policy_is_needed() {
    // Each action of each role taken out in turn, a rollout under the rest: it must fail, or show
    // the action refused. The cases run in four lanes side by side, each a hub and spoke and a
    // profile of its own.
    const LANES: usize = 4;
    let w = World::new().await;
    let names: Vec<String> = (0..LANES).map(|l| format!("both{l}")).collect();
    let lanes = futures::future::join_all(names.iter().map(|name| async {
        let (hub, policies) = gated_hub(&w, name).await;
        // A gate that cannot be read waits: held past two seconds, the run ends (exit 7).
        let profile = hub.profile(Some(NETWORK), Some(WORKLOAD));
        let rollout = profile.rollout.clone().unwrap().max_hold("2s");
        w.write(name, &profile.rollout(rollout).gate(Gate::target_health()));
        (hub, policies)
    }))
    .await;
    let roles = lanes[0].1["roles"].as_array().unwrap();
    let cases: Vec<(String, String)> = roles
        .iter()
        .flat_map(|r| actions_of(&r["policy"]).into_iter().map(|a| (r["role_arn"].as_str().unwrap().to_string(), a)))
        .collect();
    let unneeded =
        futures::future::join_all(lanes.iter().zip(&names).enumerate().map(|(l, ((_hub, policies), name))| {
            let (w, mine) = (&w, cases.iter().skip(l).step_by(LANES));
            async move {
                let mut unneeded = Vec::new();
                for (role, action) in mine {
                    let kit = kit_with(policies, |p| {
                        let r = p["roles"].as_array_mut().unwrap().iter_mut().find(|r| r["role_arn"] == role.as_str());
                        for s in r.unwrap()["policy"]["Statement"].as_array_mut().unwrap() {
                            s["Action"].as_array_mut().unwrap().retain(|a| a != action.as_str());
                        }
                    });
                    let mut rollout = w.std_cutover();
                    rollout.env("AWS_ENDPOINT_URL", &kit.endpoint).args(["-p", name, "rollout", "--to", "green"]);
                    let (code, out, err) = crate::run_async(rollout).await;
                    let shown =
                        err.contains("AccessDenied") && err.contains(action.as_str()) || out.contains(action.as_str());
                    if code == 0 && !shown {
                        unneeded.push(format!("{role}: {action}"));
                    }
                    // Back on blue for the next run, with the caller's own credentials.
                    let mut back = w.std_cutover();
                    back.args(["-p", name, "set", "blue=100", "--yes"]);
                    let (code, out, err) = crate::run_async(back).await;
                    assert_eq!(code, 0, "{out}{err}");
                }
                unneeded
            }
        }))
        .await;
    let unneeded: Vec<String> = unneeded.into_iter().flatten().collect();
    assert!(unneeded.is_empty(), "printed but not needed by a rollout: {unneeded:#?}");
}
