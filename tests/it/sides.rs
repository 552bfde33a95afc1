//! `[sides]`: weighted records must point at their side's current ingress ALB (`--repoint`
//! fixes them), and the preview record follows the candidate.

use crate::emulator::unique;
use crate::fixtures::Aws;
use crate::{World, expect};

struct Placed {
    cluster: String,
    blue_dns: String,
    green_dns: String,
    zone: String,
    zone_id: String,
    record: String,
    /// The ALB the green record points at when it is not green's ingress ALB.
    stale: Option<String>,
}

/// A cluster with blue/app and green/app ingress ALBs, and a weighted pair whose green alias
/// points at the green ingress ALB, or with `stale` at another ALB (an old one of green's).
async fn placed(w: &World, stale: bool) -> Placed {
    let (_, subnets) = w.aws.network().await;
    let cluster = unique("eks");
    w.aws.cluster(&cluster, &subnets).await;
    let tags = |stack| {
        [
            ("elbv2.k8s.aws/cluster", cluster.as_str()),
            ("ingress.k8s.aws/resource", "LoadBalancer"),
            ("ingress.k8s.aws/stack", stack),
        ]
    };
    let (_, blue_dns, lb_zone) = w.aws.load_balancer(&unique("ib"), &subnets, &tags("blue/app")).await;
    let (_, green_dns, _) = w.aws.load_balancer(&unique("ig"), &subnets, &tags("green/app")).await;
    let zone = format!("{}.test.", unique("z"));
    let zone_id = w.aws.zone(&zone).await;
    let record = format!("api.{zone}");
    let stale = match stale {
        true => Some(w.aws.load_balancer(&unique("old-green-"), &subnets, &[]).await.1),
        false => None,
    };
    let green_target = stale.clone().unwrap_or_else(|| green_dns.clone());
    w.aws
        .upsert(
            &zone_id,
            vec![
                Aws::weighted_alias(&record, ("blue", 100), &blue_dns, &lb_zone, true),
                Aws::weighted_alias(&record, ("green", 0), &green_target, &lb_zone, true),
                Aws::simple_alias(&format!("preprod.{zone}"), &blue_dns, &lb_zone),
            ],
        )
        .await;
    Placed { cluster, blue_dns, green_dns, zone, zone_id, record, stale }
}

impl Placed {
    fn profile(&self, extra: &str) -> String {
        format!(
            "[sides.blue]\neks = {{ cluster = \"{c}\", namespace = \"blue\", ingress = \"app\" }}\n\
             [sides.green]\neks = {{ cluster = \"{c}\", namespace = \"green\", ingress = \"app\" }}\n\
             [[route53]]\nzone = \"{}\"\nrecord = \"{}\"\nblue = \"blue\"\ngreen = \"green\"\npreview = \"preprod.{}\"\n{extra}",
            self.zone,
            self.record,
            self.zone,
            c = self.cluster
        )
    }

    async fn alias(&self, w: &World, name: &str, set: Option<&str>) -> String {
        w.aws
            .record_sets(&self.zone_id, name)
            .await
            .into_iter()
            .find(|s| s.set_identifier.as_deref() == set)
            .and_then(|s| s.alias_target)
            .map(|a| a.dns_name)
            .unwrap()
    }

    async fn preview(&self, w: &World) -> String {
        self.alias(w, &format!("preprod.{}", self.zone), None).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_pointing_at_a_stale_alb_is_refused_and_repoint_fixes_it() {
    let w = World::new().await;
    let p = placed(&w, true).await;
    let stale = p.stale.clone().unwrap();
    let stale = stale.as_str();
    w.profile("svc", &p.profile(""));

    let (_, err) = expect(w.cutover().args(["-p", "svc", "validate"]), 6);
    assert!(err.contains(stale) && err.contains(&p.green_dns) && err.contains("--repoint"), "{err}");
    let (_, err) = expect(w.cutover().args(["-p", "svc", "set", "green=10"]), 6);
    assert!(err.contains(stale), "{err}");
    assert_eq!(w.aws.weight(&p.zone_id, &p.record, "green").await, 0);

    let (out, _) = expect(w.cutover().args(["-p", "svc", "set", "green=10", "--repoint", "--dry-run"]), 0);
    assert!(out.contains("repoint: the green record's alias"), "{out}");
    assert_eq!(p.alias(&w, &p.record, Some("green")).await, stale);

    expect(w.cutover().args(["-p", "svc", "set", "green=10", "--repoint"]), 0);
    assert_eq!(w.aws.weight(&p.zone_id, &p.record, "green").await, 10);
    let repointed = p.alias(&w, &p.record, Some("green")).await;
    assert!(crate::fixtures_same_dns(&repointed, &p.green_dns));
    assert!(repointed.starts_with("dualstack."), "Route53's form of an ALB alias: {repointed}");
    assert!(crate::fixtures_same_dns(&p.alias(&w, &p.record, Some("blue")).await, &p.blue_dns), "blue untouched");
    expect(w.cutover().args(["-p", "svc", "validate"]), 0);
    // The on-call rollback is never held up by placement checks.
    expect(w.cutover().args(["-p", "svc", "rollback", "--to", "blue"]), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_preview_record_follows_the_candidate_through_rollout_and_promote() {
    let w = World::new().await;
    let p = placed(&w, false).await;
    let table = unique("state-");
    w.profile(
        "svc",
        &p.profile(&format!(
            "[rollout]\nstages = [50, 100]\nbake = \"100ms\"\npoll = \"50ms\"\ndns_ttl = \"0s\"\n[state]\ntable = \"{table}\"\n"
        )),
    );
    expect(w.cutover().args(["-p", "svc", "state", "init"]), 0);
    assert!(crate::fixtures_same_dns(&p.preview(&w).await, &p.blue_dns));

    // A scheduled start points the preview at the candidate, green.
    expect(w.cutover().args(["-p", "svc", "advance"]), 0);
    assert!(crate::fixtures_same_dns(&p.preview(&w).await, &p.green_dns));
    let (out, _) = expect(w.cutover().args(["-p", "svc", "-o", "json", "status"]), 0);
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(doc["routes"][0]["preview"], "green");

    // Promoted: green is stable, the preview moves to the next candidate, blue.
    expect(w.cutover().args(["-p", "svc", "promote", "--force"]), 0);
    assert!(crate::fixtures_same_dns(&p.preview(&w).await, &p.blue_dns));

    // A whole rollout back to blue moves it along, and completing it swaps it to green.
    let (_, err) = expect(w.cutover().args(["-p", "svc", "rollout", "--to", "blue"]), 0);
    assert!(err.contains("stage 2/2"), "{err}");
    assert_eq!(w.aws.weight(&p.zone_id, &p.record, "blue").await, 100);
    assert!(crate::fixtures_same_dns(&p.preview(&w).await, &p.green_dns));

    // A rollback leaves it alone.
    expect(w.cutover().args(["-p", "svc", "advance", "--to", "green"]), 0);
    expect(w.cutover().args(["-p", "svc", "rollback"]), 0);
    assert_eq!(w.aws.weight(&p.zone_id, &p.record, "green").await, 0);
    assert!(crate::fixtures_same_dns(&p.preview(&w).await, &p.green_dns));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingress_group_and_gateway_albs_are_found_by_their_stack_and_are_the_controllers() {
    let w = World::new().await;
    let (vpc, subnets) = w.aws.network().await;
    let cluster = unique("eks");
    w.aws.cluster(&cluster, &subnets).await;
    // Blue: an IngressGroup's ALB (the stack is the group's name, in no one namespace).
    let group = [
        ("elbv2.k8s.aws/cluster", cluster.as_str()),
        ("ingress.k8s.aws/resource", "LoadBalancer"),
        ("ingress.k8s.aws/stack", "shop-blue"),
    ];
    let (_, blue_dns, lb_zone) = w.aws.load_balancer(&unique("gb"), &subnets, &group).await;
    // Green: a Gateway API Gateway's ALB.
    let gateway = [("elbv2.k8s.aws/cluster", cluster.as_str()), ("gateway.k8s.aws/stack", "green/shop-gw")];
    let (green_lb, green_dns, _) = w.aws.load_balancer(&unique("gg"), &subnets, &gateway).await;
    let pair = crate::Pair::new(&w, (100, 0), (&blue_dns, &green_dns), &lb_zone).await;
    w.profile(
        "svc",
        &format!(
            "[sides.blue]\neks = {{ cluster = \"{cluster}\", namespace = \"blue\", ingress = \"shop-blue\" }}\n\
             [sides.green]\neks = {{ cluster = \"{cluster}\", namespace = \"green\", ingress = \"shop-gw\" }}\n{}",
            pair.route()
        ),
    );
    expect(w.cutover().args(["-p", "svc", "validate"]), 0);
    expect(w.cutover().args(["-p", "svc", "set", "green=10"]), 0);
    let (out, _) = expect(w.cutover().args(["-o", "json", "discover", "--cluster", &cluster]), 0);
    let found: serde_json::Value = serde_json::from_str(&out).unwrap();
    let stacks: Vec<&str> =
        found["load_balancers"].as_array().unwrap().iter().map(|l| l["stack"].as_str().unwrap()).collect();
    assert_eq!(stacks, vec!["green/shop-gw", "shop-blue"], "{out}");

    // The Gateway's listener is the controller's: an [[alb]] route on it is refused.
    let blue_tg = w.aws.target_group(&unique("tb"), &vpc, &["10.0.1.5"]).await;
    let green_tg = w.aws.target_group(&unique("tg"), &vpc, &["10.0.2.5"]).await;
    let listener = w.aws.listener(&green_lb, 80, Aws::forward(&[(&blue_tg, 100), (&green_tg, 0)], None), &[]).await;
    w.profile("gw", &format!("[[alb]]\nlistener = \"{listener}\"\nblue = \"{blue_tg}\"\ngreen = \"{green_tg}\"\n"));
    let (_, err) = expect(w.cutover().args(["-p", "gw", "validate"]), 2);
    assert!(err.contains("gateway.k8s.aws/stack") || err.contains("elbv2.k8s.aws/cluster"), "{err}");
}
