//! The ALB splitter end to end: forward weights in the emulator, what a write keeps, what it
//! refuses, and profiles that mix Route53 and ALB routes.

use crate::emulator::unique;
use crate::fixtures::Aws;
use crate::scenario::{Front, Profile, Records};
use crate::snap::Redact;
use crate::{World, expect};

fn weight_of(weights: &[(String, i32)], arn: &str) -> i32 {
    weights.iter().find(|(a, _)| a == arn).map(|(_, w)| *w).unwrap_or_else(|| panic!("{arn} not in {weights:?}"))
}

/// The profile of one `[[alb]]` route on `listener` (an ARN or `LB:PORT`) and `rule`, naming the
/// front's target groups by name.
fn alb_profile(f: &Front, listener: &str, rule: &str) -> Profile {
    Profile::new().alb(f.route_by_name(listener).rule(rule))
}

#[tokio::test]
async fn default_action_keeps_stickiness_and_a_third_target_group() {
    let w = World::new().await;
    let f = Front::new(&w.aws).await;
    let third = w.aws.target_group(&unique("tx"), &f.vpc, &[]).await;
    let listener = f.listener.clone();
    w.aws.set_action(&listener, None, Aws::forward(&[(&f.blue, 100), (&f.green, 0), (&third, 5)], Some(300))).await;
    w.write("front", &alb_profile(&f, &listener, "default"));

    let (out, _) = expect(w.cutover().args(["-p", "front", "set", "green=25"]), 0);
    assert!(out.contains("alb"), "{out}");

    let weights = w.aws.forward_weights(&listener, None).await;
    assert_eq!(weight_of(&weights, &f.blue), 75);
    assert_eq!(weight_of(&weights, &f.green), 25);
    assert_eq!(weight_of(&weights, &third), 5, "the third target group keeps its weight");
    let actions = w.aws.actions(&listener, None).await;
    let sticky = actions[0].forward_config.as_ref().unwrap().target_group_stickiness_config.as_ref().unwrap();
    assert_eq!((sticky.enabled, sticky.duration_seconds), (Some(true), Some(300)), "stickiness kept");

    let (out, _) = expect(w.cutover().args(["-p", "front", "status", "-o", "json"]), 0);
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(doc["routes"][0]["kind"], "alb");
    assert_eq!(doc["routes"][0]["weights"], serde_json::json!({"blue": 75, "green": 25}));
}

#[tokio::test]
async fn a_rule_keeps_its_conditions_and_priority() {
    let w = World::new().await;
    let f = Front::new(&w.aws).await;
    let listener = f.listener.clone();
    w.aws.set_action(&listener, None, Aws::forward(&[(&f.blue, 1)], None)).await;
    let rule = f.rule(&listener, 17, "/api/*", &[]).await;
    w.write("api", &alb_profile(&f, &listener, &rule));

    expect(w.cutover().args(["-p", "api", "set", "green=0.1"]), 0);
    let weights = w.aws.forward_weights(&listener, Some(&rule)).await;
    assert_eq!((weight_of(&weights, &f.blue), weight_of(&weights, &f.green)), (999, 1), "0.1 % is exact on ALB");

    let r = w.aws.elb.describe_rules().rule_arns(&rule).send().await.unwrap().rules.unwrap().remove(0);
    assert_eq!(r.priority.as_deref(), Some("17"));
    let cond = &r.conditions.unwrap()[0];
    assert_eq!(cond.field.as_deref(), Some("path-pattern"));
    assert_eq!(cond.values.as_deref(), Some(&["/api/*".to_string()][..]));
    // The default action is not touched.
    let default = w.aws.forward_weights(&listener, None).await;
    assert_eq!(default, vec![(f.blue.clone(), 1)]);
}

#[tokio::test]
async fn a_listener_named_by_load_balancer_and_port_is_found() {
    let w = World::new().await;
    let f = Front::spec(&w.aws).port(8080).weights(0, 100).make().await;
    w.write("named", &alb_profile(&f, &format!("{}:8080", f.lb_name), "default"));
    expect(w.cutover().args(["-p", "named", "rollback", "--to", "blue"]), 0);
    assert_eq!(f.weights().await, (100, 0));

    w.write("noport", &alb_profile(&f, &format!("{}:9999", f.lb_name), "default"));
    let (_, err) = expect(w.cutover().args(["-p", "noport", "status"]), 2);
    insta::assert_snapshot!("refused-no-listener-on-the-port", Redact::new().names(f.names()).text(&err));
}

#[tokio::test]
async fn a_controller_owned_listener_is_refused_and_nothing_changes() {
    let w = World::new().await;
    let controller = [("elbv2.k8s.aws/cluster", "prod"), ("ingress.k8s.aws/stack", "green/myapp")];
    let f = Front::spec(&w.aws).lb_tags(&controller).make().await;
    w.write("owned", &alb_profile(&f, &f.listener, "default"));
    let (_, err) = expect(w.cutover().args(["-p", "owned", "set", "green=50"]), 2);
    insta::assert_snapshot!("refused-controller-owned-listener", Redact::new().names(f.names()).text(&err));
    assert_eq!(f.weights().await, (100, 0));

    // A rule carrying the controller's tags on an ALB we own is refused the same way.
    let g = Front::new(&w.aws).await;
    w.aws.set_action(&g.listener, None, Aws::forward(&[(&g.blue, 1)], None)).await;
    let rule = g.rule(&g.listener, 5, "/x/*", &[("ingress.k8s.aws/stack", "ns/app")]).await;
    w.write("owned-rule", &alb_profile(&g, &g.listener, &rule));
    let (_, err) = expect(w.cutover().args(["-p", "owned-rule", "set", "green=50"]), 2);
    let names = Redact::new().names(g.names()).name(&rule, "[rule]");
    insta::assert_snapshot!("refused-controller-owned-rule", names.text(&err));
}

#[tokio::test]
async fn a_listener_or_rule_of_a_cloudformation_stack_is_refused_unless_owner_ok() {
    let w = World::new().await;
    // The load balancer came from a stack too: that alone does not own the listener's weights.
    let stack = [("aws:cloudformation:stack-name", "front-prod")];
    let f = Front::spec(&w.aws).lb_tags(&stack).listener_tags(&stack).make().await;
    let listener = f.listener.clone();
    w.write("cfn", &alb_profile(&f, &listener, "default"));
    let (_, err) = expect(w.cutover().args(["-p", "cfn", "set", "green=50"]), 2);
    // The stack named, `owner_ok = true` to say it is looked after, a hint for Terraform too.
    insta::assert_snapshot!("refused-cloudformation-listener", Redact::new().names(f.names()).text(&err));
    assert_eq!(f.weights().await, (100, 0), "nothing moved");

    // Said to be looked after: it moves.
    w.write("cfn-ok", &Profile::new().alb(f.route_by_name(&listener).rule("default").owner_ok(true)));
    expect(w.cutover().args(["-p", "cfn-ok", "set", "green=50"]), 0);
    assert_eq!(f.weights().await, (50, 50));

    // A rule of a stack, on a listener of none, is refused the same way; the stack's load
    // balancer alone refuses nothing (the listener above moved once owner_ok said so, and this
    // one's default action is not edited).
    let l2 = f.listen(81, Aws::forward(&[(&f.blue, 1)], None), &[]).await;
    let rule = f.rule(&l2, 5, "/x/*", &stack).await;
    w.write("cfn-rule", &alb_profile(&f, &l2, &rule));
    let (_, err) = expect(w.cutover().args(["-p", "cfn-rule", "set", "green=50"]), 2);
    let names = Redact::new().names(f.names()).name(&rule, "[rule]").name(&l2, "[listener-81]");
    insta::assert_snapshot!("refused-cloudformation-rule", names.text(&err));
    let l3 = f.listen(82, f.forward(100, 0), &[]).await;
    w.write("cfn-lb", &alb_profile(&f, &l3, "default"));
    expect(w.cutover().args(["-p", "cfn-lb", "set", "green=50"]), 0);
}

#[tokio::test]
async fn a_target_group_not_in_the_action_is_refused_by_name() {
    let w = World::new().await;
    let f = Front::new(&w.aws).await;
    let listener = f.listener.clone();
    w.aws.set_action(&listener, None, Aws::forward(&[(&f.blue, 100)], None)).await;
    w.write("half", &alb_profile(&f, &listener, "default"));
    let (_, err) = expect(w.cutover().args(["-p", "half", "set", "green=10"]), 2);
    insta::assert_snapshot!("refused-target-group-not-in-the-action", Redact::new().names(f.names()).text(&err));
    assert_eq!(w.aws.forward_weights(&listener, None).await, vec![(f.blue.clone(), 100)]);
}

#[tokio::test]
async fn a_mixed_profile_moves_every_route_to_one_split() {
    let w = World::new().await;
    let f = Front::new(&w.aws).await;
    let listener = f.listener.clone();
    let rule = f.rule(&listener, 3, "/v2/*", &[]).await;
    let pair = Records::alias(&w.aws, (100, 0)).await;
    let profile = Profile::new()
        .route53(pair.route())
        .alb(f.route_by_name(&listener).rule("default"))
        .alb(f.route_by_name(&listener).rule(rule.as_str()));
    w.write("mixed", &profile);

    let (out, _) = expect(w.cutover().args(["-p", "mixed", "-o", "json", "set", "green=25"]), 0);
    let doc = crate::json(&out);
    assert_eq!(doc["routes"].as_array().unwrap().len(), 3);
    assert_eq!(pair.weight("green").await, 25);
    for r in [None, Some(rule.as_str())] {
        assert_eq!(f.weights_at(&listener, r).await, (75, 25));
    }

    // One bad route refuses them all: nothing moves.
    let only_blue = f.listen(81, Aws::forward(&[(&f.blue, 1)], None), &[]).await;
    w.write("mixed-bad", &profile.alb(f.route_by_name(&only_blue).rule("default")));
    let (_, err) = expect(w.cutover().args(["-p", "mixed-bad", "set", "green=50"]), 2);
    assert!(err.contains("is not in the forward action"), "{err}");
    assert_eq!(pair.weight("green").await, 25);
    assert_eq!(f.weights().await.1, 25);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_failing_part_way_puts_back_the_routes_already_written() {
    use wiremock::matchers::body_string_contains;
    use wiremock::{Mock, MockServer, ResponseTemplate};

    let w = World::new().await;
    let f = Front::new(&w.aws).await;
    let listener = f.listener.clone();
    let pair = Records::alias(&w.aws, (100, 0)).await;

    // ELBv2 answers reads as the emulator does, and refuses the write.
    let elb = MockServer::start().await;
    let enc = |s: &str| s.replace(':', "%3A").replace('/', "%2F");
    let describe = crate::emulator::raw_answer(
        "elasticloadbalancing",
        "/",
        Some(&format!("Action=DescribeListeners&Version=2015-12-01&ListenerArns.member.1={}", enc(&listener))),
    )
    .await;
    let tags = crate::emulator::raw_answer(
        "elasticloadbalancing",
        "/",
        Some(&format!(
            "Action=DescribeTags&Version=2015-12-01&ResourceArns.member.1={}&ResourceArns.member.2={}",
            enc(&listener),
            enc(&f.lb)
        )),
    )
    .await;
    Mock::given(body_string_contains("Action=DescribeListeners"))
        .respond_with(ResponseTemplate::new(200).set_body_string(describe))
        .mount(&elb)
        .await;
    Mock::given(body_string_contains("Action=DescribeTags"))
        .respond_with(ResponseTemplate::new(200).set_body_string(tags))
        .mount(&elb)
        .await;
    Mock::given(body_string_contains("Action=ModifyListener"))
        .respond_with(ResponseTemplate::new(400).set_body_string(
            "<ErrorResponse xmlns=\"http://elasticloadbalancing.amazonaws.com/doc/2015-12-01/\"><Error><Type>Sender</Type><Code>ValidationError</Code><Message>injected failure</Message></Error><RequestId>r</RequestId></ErrorResponse>",
        ))
        .mount(&elb)
        .await;

    w.write("mixed", &alb_profile(&f, &listener, "default").route53(pair.route()));
    let (_, err) = expect(
        w.cutover()
            .env("AWS_ENDPOINT_URL_ELASTIC_LOAD_BALANCING_V2", elb.uri())
            .args(["-p", "mixed", "set", "green=25"]),
        1,
    );
    assert!(err.contains("injected failure"), "{err}");
    assert!(err.contains("traffic is as before"), "{err}");
    // The Route53 route, written before the ALB write failed, is back where it was.
    assert_eq!(pair.weights().await, (100, 0));
}
