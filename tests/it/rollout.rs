//! `cutover rollout` end to end: stages, gates read on the emulator, automatic rollback, holds.

use std::process::Stdio;

use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::emulator::unique;
use crate::fixtures::Aws;
use crate::scenario::{Front, Gate, Profile, Records, Rollout};
use crate::{World, expect, finish, wait_until};

/// A front ALB we own (green with two targets), blue 100 / green 0.
async fn front(w: &World) -> Front {
    Front::spec(&w.aws).green_ips(&["10.0.2.7", "10.0.2.8"]).make().await
}

/// Stages 10, 50, 100, polled every 100 ms, two failures in a row to fail, no DNS floor.
fn timing(bake: &str, max_hold: &str) -> Rollout {
    Rollout::new(&[10.0, 50.0, 100.0]).bake(bake).poll("100ms").failure_threshold(2).max_hold(max_hold).dns_ttl("0s")
}

/// The profile of the front's route with `rollout` and `gate`.
fn gated(f: &Front, rollout: Rollout, gate: Gate) -> Profile {
    Profile::new().alb(f.route()).rollout(rollout).gate(gate)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_green_moves_every_route_through_every_stage_to_100() {
    let w = World::new().await;
    let f = front(&w).await;
    let alarm = unique("al-green-");
    w.aws.alarm(&alarm).await;
    let pair = Records::alias(&w.aws, (100, 0)).await;
    let gate = Gate::alarm(&[&alarm.replace("green", "{side}")]);
    w.write("svc", &gated(&f, timing("300ms", "10s"), gate).route53(pair.route()));
    let (out, err) = expect(w.cutover().args(["-p", "svc", "rollout"]), 0);
    assert!(out.contains("rollout completed: all traffic on green"), "{out}");
    for stage in ["stage 1/3: green 10% applied", "stage 2/3: green 50% applied", "stage 3/3: green 100% applied"] {
        assert!(err.contains(stage), "missing {stage:?} in:\n{err}");
    }
    assert!(err.contains("gates before the first shift"), "{err}");
    assert_eq!(f.weights().await, (0, 100));
    assert_eq!(pair.weights().await, (0, 100));

    // Again: nothing to do.
    let (out, _) = expect(w.cutover().args(["-p", "svc", "rollout", "--to", "green"]), 0);
    assert!(out.contains("nothing to do"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alarm_flipping_to_alarm_at_the_first_stage_rolls_back_with_exit_3() {
    let w = World::new().await;
    let f = front(&w).await;
    let alarm = unique("al-");
    w.aws.alarm(&alarm).await;
    w.write("svc", &gated(&f, timing("60s", "60s"), Gate::alarm(&[&alarm])));
    let child = w
        .std_cutover()
        .args(["-p", "svc", "-o", "json", "rollout"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    wait_until(30, "the first stage to reach the listener", || async { f.weights().await == (90, 10) }).await;
    w.aws.set_alarm(&alarm, "ALARM").await;
    let (code, out, err) = finish(child, 30).await;
    assert_eq!(code, 3, "{out}\n{err}");
    assert_eq!(f.weights().await, (100, 0));
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(doc["outcome"], "rolled-back");
    assert_eq!(doc["stage"], 1);
    assert!(doc["reason"].as_str().unwrap().contains("in ALARM"), "{out}");
    assert!(err.contains("ROLLING BACK: all traffic to blue"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn insufficient_data_holds_then_exits_7_with_traffic_left_at_the_stage() {
    let w = World::new().await;
    let f = front(&w).await;
    let alarm = unique("al-");
    w.aws.alarm(&alarm).await;
    w.write("svc", &gated(&f, timing("60s", "1s"), Gate::alarm(&[&alarm])));
    let child =
        w.std_cutover().args(["-p", "svc", "rollout"]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();

    wait_until(30, "the first stage", || async { f.weights().await == (90, 10) }).await;
    w.aws.set_alarm(&alarm, "INSUFFICIENT_DATA").await;
    let (code, out, err) = finish(child, 30).await;
    assert_eq!(code, 7, "{out}\n{err}");
    assert!(out.contains("HELD at stage 1/3"), "{out}");
    assert!(err.contains("INSUFFICIENT_DATA"), "{err}");
    assert_eq!(f.weights().await, (90, 10), "traffic left at the stage");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_answering_500_holds_and_200_lets_the_rollout_finish() {
    let w = World::new().await;
    let f = front(&w).await;
    let hook = MockServer::start().await;
    Mock::given(method("POST")).and(path("/confirm")).respond_with(ResponseTemplate::new(500)).mount(&hook).await;
    let gate = Gate::webhook(&format!("{}/confirm?token=s3cret", hook.uri()));
    w.write("svc", &gated(&f, timing("200ms", "60s"), gate));
    let child =
        w.std_cutover().args(["-p", "svc", "rollout"]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();

    wait_until(30, "the webhook to be asked three times", || async {
        hook.received_requests().await.map(|r| r.len()).unwrap_or(0) >= 3
    })
    .await;
    assert_eq!(f.weights().await, (100, 0), "held before the first shift");
    let first: serde_json::Value = hook.received_requests().await.unwrap()[0].body_json().unwrap();
    assert_eq!(first["candidate"], "green");
    assert_eq!(first["stable"], "blue");
    assert_eq!(first["next_percent"], 10.0);

    hook.reset().await;
    Mock::given(method("POST")).and(path("/confirm")).respond_with(ResponseTemplate::new(200)).mount(&hook).await;
    let (code, out, err) = finish(child, 60).await;
    assert_eq!(code, 0, "{out}\n{err}");
    assert_eq!(f.weights().await, (0, 100));
    assert!(!err.contains("s3cret") && !out.contains("s3cret"), "a webhook token is never printed:\n{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopped_instance_targets_fail_target_health_and_get_no_traffic() {
    let w = World::new().await;
    let f = front(&w).await;
    // Green's target group: two EC2 instances, one stopped.
    let (green_tg, ids) = w.aws.instance_targets(&unique("ri"), &f.vpc, &f.subnets[0], 2).await;
    w.aws.stop_instances(&ids[..1]).await;
    let listener = f.listener.clone();
    w.aws.set_action(&listener, None, Aws::forward(&[(&f.blue, 100), (&green_tg, 0)], None)).await;
    let route = crate::scenario::AlbRoute::new(&listener, &f.blue, &green_tg);
    let gate = Gate::target_health().min_healthy(1.0);
    w.write("svc", &Profile::new().alb(route).rollout(timing("200ms", "10s")).gate(gate));
    let (out, err) = expect(w.cutover().args(["-p", "svc", "rollout"]), 3);
    assert!(out.contains("ROLLED BACK") && out.contains("before any traffic moved"), "{out}");
    assert!(err.contains("1/2 targets healthy"), "{err}");
    let fw = w.aws.forward_weights(&listener, None).await;
    assert_eq!(fw.iter().find(|(a, _)| *a == green_tg).unwrap().1, 0, "no write toward green");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_probe_of_the_candidate_gates_the_rollout() {
    let w = World::new().await;
    let f = front(&w).await;
    let probe = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/green/health"))
        .respond_with(ResponseTemplate::new(200).set_body_string("ok"))
        .mount(&probe)
        .await;
    let gate = Gate::http(&format!("{}/{{side}}/health", probe.uri())).body_contains("ok");
    w.write("svc", &gated(&f, timing("200ms", "10s"), gate));
    expect(w.cutover().args(["-p", "svc", "rollout"]), 0);
    assert_eq!(f.weights().await, (0, 100));

    // Back to blue: nothing serves /blue/health (404), so the rollout is refused.
    let (out, _) = expect(w.cutover().args(["-p", "svc", "rollout"]), 3);
    assert!(out.contains("404") || out.contains("expected 200"), "{out}");
    assert_eq!(f.weights().await, (0, 100));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_reads_the_gates_once_unless_told_not_to() {
    let w = World::new().await;
    let f = front(&w).await;
    let id = unique("");
    for side in ["blue", "green"] {
        w.aws.alarm(&format!("al-{side}-{id}")).await;
    }
    w.aws.set_alarm(&format!("al-green-{id}"), "ALARM").await;
    w.write("svc", &Profile::new().alb(f.route()).gate(Gate::alarm(&[&format!("al-{{side}}-{id}")])));
    let (_, err) = expect(w.cutover().args(["-p", "svc", "set", "green=10"]), 3);
    assert!(err.contains("not shifting traffic to green") && err.contains("in ALARM"), "{err}");
    assert_eq!(f.weights().await, (100, 0));
    expect(w.cutover().args(["-p", "svc", "set", "green=10", "--no-gates"]), 0);
    assert_eq!(f.weights().await, (90, 10));
    // Moving traffic away from the failing side needs no gate.
    expect(w.cutover().args(["-p", "svc", "set", "green=0"]), 0);
    assert_eq!(f.weights().await, (100, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_alarm_is_refused_before_any_write() {
    let w = World::new().await;
    let f = front(&w).await;
    w.write("svc", &Profile::new().alb(f.route()).gate(Gate::alarm(&["no-such-alarm-{side}"])));
    let (_, err) = expect(w.cutover().args(["-p", "svc", "rollout"]), 2);
    assert!(err.contains("no-such-alarm-green"), "{err}");
    assert_eq!(f.weights().await, (100, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_mid_rollout_rolls_back_by_default() {
    let w = World::new().await;
    let f = front(&w).await;
    w.write("svc", &Profile::new().alb(f.route()).rollout(timing("60s", "60s")));
    let child =
        w.std_cutover().args(["-p", "svc", "rollout"]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    wait_until(30, "the first stage", || async { f.weights().await == (90, 10) }).await;
    let pid = child.id().to_string();
    assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let (code, out, err) = finish(child, 30).await;
    assert_eq!(code, 3, "{out}\n{err}");
    assert!(out.contains("INTERRUPTED") || out.contains("interrupted"), "{out}");
    assert_eq!(f.weights().await, (100, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn target_health_follows_a_route53_alias_to_the_candidate_alb() {
    let w = World::new().await;
    let (vpc, subnets) = w.aws.network().await;
    let (blue_lb, blue_dns, lb_zone) = w.aws.load_balancer(&unique("ib"), &subnets, &[]).await;
    let (green_lb, green_dns, _) = w.aws.load_balancer(&unique("ig"), &subnets, &[]).await;
    let blue_tg = w.aws.target_group(&unique("ibt"), &vpc, &["10.0.1.9"]).await;
    let (green_tg, ids) = w.aws.instance_targets(&unique("igt"), &vpc, &subnets[0], 2).await;
    w.aws.listener(&blue_lb, 80, Aws::forward(&[(&blue_tg, 1)], None), &[]).await;
    w.aws.listener(&green_lb, 80, Aws::forward(&[(&green_tg, 1)], None), &[]).await;
    let dns = (format!("dualstack.{blue_dns}"), format!("dualstack.{green_dns}"));
    let pair = Records::alias_to(&w.aws, (100, 0), (&dns.0, &dns.1), &lb_zone).await;
    let profile = Profile::new().route53(pair.route()).rollout(timing("200ms", "10s")).gate(Gate::target_health());
    w.write("svc", &profile);

    // Healthy: the rollout goes through.
    w.write("check", &profile);
    let (out, _) = expect(w.cutover().args(["-p", "svc", "rollout", "--dry-run"]), 0);
    assert!(out.contains("target-health"), "{out}");

    // One of green's two instances stopped: green gets no traffic.
    w.aws.stop_instances(&ids[..1]).await;
    let (out, err) = expect(w.cutover().args(["-p", "svc", "rollout"]), 3);
    assert!(err.contains("1/2 targets healthy"), "{err}");
    assert!(out.contains("before any traffic moved"), "{out}");
    assert_eq!(pair.weight("green").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_metric_gate_waits_without_data_and_fails_above_max() {
    let w = World::new().await;
    let f = front(&w).await;
    let ns = format!("Test/{}", unique("ns"));
    let gate =
        Gate::metric(&ns, "Errors").dimension("Side", "{side}").stat("Maximum").period("1m").window("5m").max(10.0);
    w.write("svc", &gated(&f, timing("200ms", "500ms"), gate));

    // No datapoints: before the first shift the candidate has had no traffic to judge, so it gets
    // the first stage; there no datapoints is inconclusive: held (exit 7), traffic left at 10 %.
    let (out, err) = expect(w.cutover().args(["-p", "svc", "rollout"]), 7);
    assert!(err.contains("gates before the first shift: metric#1 PASS: no datapoints"), "{err}");
    assert!(err.contains("held at stage 1") && err.contains("no datapoints"), "{err}");
    assert!(out.contains("HELD at stage 1/3"), "{out}");
    assert_eq!(f.weights().await, (90, 10));
    expect(w.cutover().args(["-p", "svc", "rollback", "--to", "blue"]), 0);

    // A datapoint above max: fails, no traffic.
    w.aws.put_metric(&ns, "Errors", ("Side", "green"), 50.0).await;
    let (_, err) = expect(w.cutover().args(["-p", "svc", "rollout"]), 3);
    assert!(err.contains("50 above max 10"), "{err}");
    assert_eq!(f.weights().await, (100, 0));
}

/// Issue 26: the emulator re-seeded mid-rollout, the run ended with a report of the weights it
/// had written, not the live ones. A final report reads the live weights; a split this run did
/// not write is drift (exit 6), named with the live weights.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weights_moved_by_hand_during_the_last_bake_end_the_run_as_drift_naming_the_live_split() {
    let w = World::new().await;
    let f = front(&w).await;
    w.write("svc", &Profile::new().alb(f.route()).rollout(Rollout::new(&[100.0]).bake("5s").poll("100ms")));
    let child =
        w.std_cutover().args(["-p", "svc", "rollout"]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    wait_until(30, "the last stage", || async { f.weights().await == (0, 100) }).await;
    // Re-seeded by hand while the last stage bakes.
    f.set_weights(100, 0).await;
    let (code, out, err) = finish(child, 60).await;
    assert_eq!(code, 6, "drift\n{out}\n{err}");
    assert!(err.contains("live 100:0"), "the live weights are named: {err}");
    assert!(!out.contains("rollout completed"), "{out}");
    assert_eq!(f.weights().await, (100, 0), "nothing written over the hand-made split");
}

/// Issue 26: without `[state]`, a second `rollout` ran beside the first and `set green=50 -y`
/// was accepted mid-rollout. A lock file per profile keeps them out (exit 5, naming the pid);
/// `validate` and the run's first lines say runs on other machines are not excluded; `rollback`
/// is never locked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_state_a_second_run_on_this_machine_is_refused_naming_the_pid_and_rollback_is_not() {
    let w = World::new().await;
    let f = front(&w).await;
    w.write("svc", &Profile::new().alb(f.route()).rollout(timing("60s", "60s")));
    let (out, _) = expect(w.cutover().args(["-p", "svc", "validate"]), 0);
    assert!(out.contains("runs on other machines are not excluded"), "{out}");
    let mut child =
        w.std_cutover().args(["-p", "svc", "rollout"]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let pid = child.id();
    wait_until(30, "the first stage", || async { f.weights().await == (90, 10) }).await;

    let (_, err) = expect(w.cutover().args(["-p", "svc", "rollout"]), 5);
    assert!(err.contains(&format!("pid {pid}")) && err.contains("on this machine"), "{err}");
    let (_, err) = expect(w.cutover().args(["-p", "svc", "-y", "set", "green=50", "--no-gates"]), 5);
    assert!(err.contains(&format!("pid {pid}")), "{err}");
    assert_eq!(f.weights().await, (90, 10), "nothing moved by the refused runs");

    expect(w.cutover().args(["-p", "svc", "-y", "rollback", "--to", "blue"]), 0);
    assert_eq!(f.weights().await, (100, 0));
    // The run is killed (it would find traffic moved only at its next shift, a bake away).
    child.kill().unwrap();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("runs on other machines are not excluded"), "said at the start: {err}");

    // Its lock went with it, however it ended: the next run on this machine goes ahead.
    w.write("svc", &Profile::new().alb(f.route()).rollout(timing("0s", "60s")));
    expect(w.cutover().args(["-p", "svc", "rollout"]), 0);
    assert_eq!(f.weights().await, (0, 100));
}
