//! `[sides]`: weighted records must point at their side's current ingress ALB (`--repoint`
//! fixes them), and the preview record follows the candidate.

use crate::emulator::unique;
use crate::fixtures::Aws;
use crate::scenario::{AlbRoute, Ingress, Profile, Records, Rollout, Sides};
use crate::{World, expect};

struct Placed {
    ingress: Ingress,
    records: Records,
    /// The ALB the green record points at when it is not green's ingress ALB.
    stale: Option<String>,
}

/// A cluster with blue/app and green/app ingress ALBs, and a weighted pair whose green alias
/// points at the green ingress ALB, or with `stale` at another ALB (an old one of green's), and
/// a preview record on blue.
async fn placed(w: &World, stale: bool) -> Placed {
    let ingress = Ingress::new(&w.aws).await;
    let ((blue_dns, lb_zone), (green_dns, _)) = (&ingress.blue, &ingress.green);
    let stale = match stale {
        true => Some(w.aws.load_balancer(&unique("old-green-"), &ingress.subnets, &[]).await.1),
        false => None,
    };
    let green_target = stale.clone().unwrap_or_else(|| green_dns.clone());
    let records = Records::zone(&w.aws).await;
    w.aws
        .upsert(
            &records.zone_id,
            vec![
                Aws::weighted_alias(&records.record, ("blue", 100), blue_dns, lb_zone, true),
                Aws::weighted_alias(&records.record, ("green", 0), &green_target, lb_zone, true),
                Aws::simple_alias(&format!("preprod.{}", records.zone), blue_dns, lb_zone),
            ],
        )
        .await;
    Placed { ingress, records, stale }
}

impl Placed {
    /// `[sides]` and the route with its preview record.
    fn profile(&self) -> Profile {
        let route = self.records.route().preview(format!("preprod.{}", self.records.zone));
        Profile::new().sides(self.ingress.sides()).route53(route)
    }

    async fn alias(&self, w: &World, name: &str, set: Option<&str>) -> String {
        w.aws
            .record_sets(&self.records.zone_id, name)
            .await
            .into_iter()
            .find(|s| s.set_identifier.as_deref() == set)
            .and_then(|s| s.alias_target)
            .map(|a| a.dns_name)
            .unwrap()
    }

    async fn preview(&self, w: &World) -> String {
        self.alias(w, &format!("preprod.{}", self.records.zone), None).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_pointing_at_a_stale_alb_is_refused_and_repoint_fixes_it() {
    let w = World::new().await;
    let p = placed(&w, true).await;
    let stale = p.stale.clone().unwrap();
    let stale = stale.as_str();
    w.write("svc", &p.profile());

    let (_, err) = expect(w.cutover().args(["-p", "svc", "validate"]), 6);
    assert!(err.contains(stale) && err.contains(&p.ingress.green.0) && err.contains("--repoint"), "{err}");
    let (_, err) = expect(w.cutover().args(["-p", "svc", "set", "green=10"]), 6);
    assert!(err.contains(stale), "{err}");
    assert_eq!(w.aws.weight(&p.records.zone_id, &p.records.record, "green").await, 0);

    let (out, _) = expect(w.cutover().args(["-p", "svc", "set", "green=10", "--repoint", "--dry-run"]), 0);
    assert!(out.contains("repoint: the green record's alias"), "{out}");
    assert_eq!(p.alias(&w, &p.records.record, Some("green")).await, stale);

    expect(w.cutover().args(["-p", "svc", "set", "green=10", "--repoint"]), 0);
    assert_eq!(w.aws.weight(&p.records.zone_id, &p.records.record, "green").await, 10);
    let repointed = p.alias(&w, &p.records.record, Some("green")).await;
    assert!(crate::fixtures_same_dns(&repointed, &p.ingress.green.0));
    assert!(repointed.starts_with("dualstack."), "Route53's form of an ALB alias: {repointed}");
    assert!(
        crate::fixtures_same_dns(&p.alias(&w, &p.records.record, Some("blue")).await, &p.ingress.blue.0),
        "blue untouched"
    );
    expect(w.cutover().args(["-p", "svc", "validate"]), 0);
    // The on-call rollback is never held up by placement checks.
    expect(w.cutover().args(["-p", "svc", "rollback", "--to", "blue"]), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_preview_record_follows_the_candidate_through_rollout_and_promote() {
    let w = World::new().await;
    let p = placed(&w, false).await;
    let rollout = Rollout::new(&[50.0, 100.0]).bake("100ms").poll("50ms").dns_ttl("0s");
    w.write("svc", &p.profile().rollout(rollout).state(&unique("state-")));
    expect(w.cutover().args(["-p", "svc", "state", "init"]), 0);
    assert!(crate::fixtures_same_dns(&p.preview(&w).await, &p.ingress.blue.0));

    // A scheduled start points the preview at the candidate, green.
    expect(w.cutover().args(["-p", "svc", "advance"]), 0);
    assert!(crate::fixtures_same_dns(&p.preview(&w).await, &p.ingress.green.0));
    let (out, _) = expect(w.cutover().args(["-p", "svc", "-o", "json", "status"]), 0);
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(doc["routes"][0]["preview"], "green");

    // Promoted: green is stable, the preview moves to the next candidate, blue.
    expect(w.cutover().args(["-p", "svc", "promote", "--force"]), 0);
    assert!(crate::fixtures_same_dns(&p.preview(&w).await, &p.ingress.blue.0));

    // A whole rollout back to blue moves it along, and completing it swaps it to green.
    let (_, err) = expect(w.cutover().args(["-p", "svc", "rollout", "--to", "blue"]), 0);
    assert!(err.contains("stage 2/2"), "{err}");
    assert_eq!(w.aws.weight(&p.records.zone_id, &p.records.record, "blue").await, 100);
    assert!(crate::fixtures_same_dns(&p.preview(&w).await, &p.ingress.green.0));

    // A rollback leaves it alone.
    expect(w.cutover().args(["-p", "svc", "advance", "--to", "green"]), 0);
    expect(w.cutover().args(["-p", "svc", "rollback"]), 0);
    assert_eq!(w.aws.weight(&p.records.zone_id, &p.records.record, "green").await, 0);
    assert!(crate::fixtures_same_dns(&p.preview(&w).await, &p.ingress.green.0));
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
    let pair = Records::alias_to(&w.aws, (100, 0), (&blue_dns, &green_dns), &lb_zone).await;
    w.write("svc", &Profile::new().sides(Sides::eks(&cluster, ("shop-blue", "shop-gw"))).route53(pair.route()));
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
    w.write("gw", &Profile::new().alb(AlbRoute::new(&listener, &blue_tg, &green_tg)));
    let (_, err) = expect(w.cutover().args(["-p", "gw", "validate"]), 2);
    assert!(err.contains("gateway.k8s.aws/stack") || err.contains("elbv2.k8s.aws/cluster"), "{err}");
}
