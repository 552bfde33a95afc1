//! What moto hides: AWS behaviours the kit's proxy reproduces, each pinned here, with what
//! cutover does about them — Route53 changes that stay PENDING, aliases whose target must exist,
//! alarms that start in INSUFFICIENT_DATA and a DescribeAlarmHistory that answers for metric
//! alarms unless asked for composite ones, a GetChange that fails after its change was accepted,
//! a write refused part-way, a rollback whose other side's load balancer is gone.

use std::time::Duration;

use aws_sdk_cloudwatch::types::{AlarmType, StateValue};
use serde_json::json;

use crate::emulator::{proxy, unique};
use crate::fixtures::Aws;
use crate::proxy::Config;
use crate::scenario::{Front, Gate, Profile, Records, Rollout, elbs, mixed};
use crate::{World, expect, run};

/// Allow everything but `denied`.
fn all_but(denied: &str) -> serde_json::Value {
    json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "*", "Resource": "*"},
        {"Effect": "Deny", "Action": denied, "Resource": "*"},
    ]})
}

/// The mixed profile: a weighted pair on the shared load balancers (the zone named) and a front
/// ALB, `green` percent on green.
async fn mixed_profile(w: &World, green: i32) -> (Profile, Records, Front) {
    let (pair, front) = mixed(&w.aws, green).await;
    (Profile::new().route53(pair.route()).alb(front.route()), pair, front)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route53_change_stays_pending_for_a_while_and_set_waits_until_it_is_insync() {
    let w = World::new().await;
    let kit = proxy(Config { route53_insync_after: Some(Duration::from_millis(700)), ..Config::default() });
    let (profile, pair, _) = mixed_profile(&w, 0).await;
    w.write("svc", &profile);
    expect(w.cutover().env("AWS_ENDPOINT_URL", &kit.endpoint).args(["-p", "svc", "set", "green=25"]), 0);
    assert_eq!(pair.weight("green").await, 25);
    let polls = kit.calls().iter().filter(|c| c.operation == "GetChange").count();
    assert!(polls >= 2, "GetChange answered PENDING at first and was asked again: {polls} call(s)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn route53_refuses_an_alias_to_a_load_balancer_that_does_not_exist() {
    let w = World::new().await;
    let (_, _, lb_zone) = elbs().await;
    let zone_id = w.aws.zone(&format!("{}.test.", unique("z"))).await;
    let set = Aws::weighted_alias("api.x.test.", ("green", 0), "gone-1.us-west-2.elb.amazonaws.com", &lb_zone, true);
    let batch = aws_sdk_route53::types::ChangeBatch::builder()
        .changes(
            aws_sdk_route53::types::Change::builder()
                .action(aws_sdk_route53::types::ChangeAction::Upsert)
                .resource_record_set(set)
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    let err = w.aws.r53.change_resource_record_sets().hosted_zone_id(&zone_id).change_batch(batch).send().await;
    let err = err.expect_err("AWS refuses an alias to nothing");
    let text = format!("{}", aws_smithy_types::error::display::DisplayErrorContext(&err));
    assert!(text.contains("InvalidChangeBatch") && text.contains("target was not found"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_alarm_is_insufficient_data_and_its_history_answers_by_type_and_page() {
    let w = World::new().await;
    let (metric, composite) = (unique("hm-"), unique("hc-"));
    w.aws.new_alarm(&metric).await;
    let out = w.aws.cw.describe_alarms().alarm_names(&metric).send().await.unwrap();
    assert_eq!(out.metric_alarms()[0].state_value(), Some(&StateValue::InsufficientData));
    w.aws.composite_alarm(&composite, &format!("ALARM(\"{metric}\")")).await;
    for state in ["OK", "ALARM", "OK"] {
        w.aws.set_alarm(&metric, state).await;
        w.aws.set_alarm(&composite, state).await;
    }
    let history = |name: &str, types: Vec<AlarmType>| {
        w.aws
            .cw
            .describe_alarm_history()
            .alarm_name(name)
            .set_alarm_types((!types.is_empty()).then_some(types))
            .history_item_type(aws_sdk_cloudwatch::types::HistoryItemType::StateUpdate)
            .max_records(2)
            .send()
    };
    let m = history(&metric, vec![]).await.unwrap();
    assert_eq!(m.alarm_history_items().len(), 2, "one page of 2: {m:?}");
    assert!(m.next_token().is_some(), "three state changes, two a page: {m:?}");
    assert_eq!(m.alarm_history_items()[0].history_summary(), Some("Alarm updated from ALARM to OK"), "newest first");
    let c = history(&composite, vec![]).await.unwrap();
    assert!(c.alarm_history_items().is_empty(), "without AlarmTypes only metric alarms answer: {c:?}");
    let c = history(&composite, vec![AlarmType::CompositeAlarm]).await.unwrap();
    assert_eq!(c.alarm_history_items().len(), 2, "{c:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_composite_alarm_that_fired_and_recovered_between_two_advances_fails_the_stage() {
    let w = World::new().await;
    let (child, composite) = (unique("cc-green-"), unique("comp-"));
    w.aws.alarm(&child).await;
    // One composite alarm named for both sides: `{side}` is not in its name.
    w.aws.composite_alarm(&composite, &format!("ALARM(\"{child}\")")).await;
    let pair = Records::alias(&w.aws, (100, 0)).await;
    let rollout = Rollout::new(&[50.0, 100.0]).bake("1h").failure_threshold(1);
    let gate = Gate::alarm(&[&composite]);
    w.write("svc", &Profile::new().route53(pair.route()).rollout(rollout).gate(gate).state(&unique("comp-")));
    expect(w.cutover().args(["-p", "svc", "state", "init"]), 0);
    let (out, _) = expect(w.cutover().args(["-p", "svc", "advance"]), 0);
    assert!(out.contains("stage 1/2"), "{out}");
    assert_eq!(pair.weight("green").await, 50);
    // Between two calls of the schedule, the composite alarm fires and recovers.
    w.aws.set_alarm(&composite, "ALARM").await;
    w.aws.set_alarm(&composite, "OK").await;
    let (out, err) = expect(w.cutover().args(["-p", "svc", "advance"]), 3);
    assert!(format!("{out}{err}").contains("went into ALARM during the stage"), "{out}{err}");
    assert_eq!(pair.weight("green").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_accepted_route53_change_whose_get_change_fails_is_written_and_nothing_is_put_back() {
    let w = World::new().await;
    let kit = proxy(Config {
        route53_insync_after: Some(Duration::from_secs(30)),
        iam_policy: Some(all_but("route53:GetChange")),
        ..Config::default()
    });
    let (profile, pair, front) = mixed_profile(&w, 0).await;
    w.write("svc", &profile);
    let (out, err) =
        expect(w.cutover().env("AWS_ENDPOINT_URL", &kit.endpoint).args(["-p", "svc", "set", "green=25"]), 0);
    assert!(err.contains("propagation") && err.contains("unconfirmed"), "{out}{err}");
    assert_eq!(pair.weight("green").await, 25);
    assert_eq!(front.weights().await, (75, 25), "the other route is not put back");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_refused_part_way_is_put_back_as_read_back_but_never_off_the_stable_side() {
    let w = World::new().await;
    let kit = proxy(Config { iam_policy: Some(all_but("elasticloadbalancing:ModifyListener")), ..Config::default() });
    let (profile, pair, front) = mixed_profile(&w, 50).await;
    w.write("svc", &profile);
    let cutover = || {
        let mut c = w.cutover();
        c.env("AWS_ENDPOINT_URL", &kit.endpoint).args(["-p", "svc"]);
        c
    };
    // Toward the candidate: the Route53 route that moved is put back, and the read-back says so.
    let (out, err) = expect(cutover().args(["set", "green=75"]), 1);
    assert!(err.contains("traffic is as before"), "{out}{err}");
    assert_eq!(pair.weight("green").await, 50);
    assert_eq!(front.weights().await, (50, 50));
    // All on one side — what a rollback does: what moved stays moved; a human is told.
    let (out, err) = expect(cutover().args(["set", "blue=100"]), 4);
    assert!(err.contains("never undone") && err.contains("50:50"), "{out}{err}");
    assert_eq!(pair.weight("green").await, 0, "not put back toward green");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollback_whose_other_side_load_balancer_is_gone_moves_what_it_can_and_says_so() {
    let w = World::new().await;
    let (_, subnets) = w.aws.network().await;
    let (_, blue_dns, lb_zone) = w.aws.load_balancer(&unique("rb"), &subnets, &[]).await;
    let (green_arn, green_dns, _) = w.aws.load_balancer(&unique("rg"), &subnets, &[]).await;
    let pair = Records::alias_to(&w.aws, (50, 50), (&blue_dns, &green_dns), &lb_zone).await;
    let (b, g, _) = elbs().await;
    let other = format!("www.{}", pair.zone);
    w.aws
        .upsert(
            &pair.zone_id,
            vec![
                Aws::weighted_alias(&other, ("blue", 50), &b, &lb_zone, true),
                Aws::weighted_alias(&other, ("green", 50), &g, &lb_zone, true),
            ],
        )
        .await;
    w.write("svc", &Profile::new().route53(pair.route()).route53(crate::scenario::Route53::new(&pair.zone, &other)));
    // Green's ingress ALB is deleted (the namespace torn down, the Ingress re-created, …).
    w.aws.elb.delete_load_balancer().load_balancer_arn(&green_arn).send().await.unwrap();

    let (code, out, err) = run(w.cutover().args(["-p", "svc", "rollback", "--to", "blue"]));
    assert_eq!(code, 4, "{out}{err}");
    assert!(err.contains("alias target no longer exists") && err.contains(&green_dns.to_ascii_lowercase()), "{err}");
    // What could move has: blue's set of the stuck record, and the whole other record (same batch).
    assert_eq!(pair.weight("blue").await, 100);
    assert_eq!(pair.weight("green").await, 50, "its set cannot be written");
    assert_eq!(w.aws.weight(&pair.zone_id, &other, "blue").await, 100);
    assert_eq!(w.aws.weight(&pair.zone_id, &other, "green").await, 0);
}
