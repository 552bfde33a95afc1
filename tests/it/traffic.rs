//! Traffic you can see: gates that know whether the candidate has traffic, the observed split
//! (`[observe]`), `rollback --wait`, DNS-aware bakes, the Route53 safety net. Request counts are
//! written into the emulator's CloudWatch as the load balancers publish them.

use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::emulator::unique;
use crate::scenario::{Front, Gate, Observe, Profile, Records, Rollout};
use crate::{World, expect, finish, json, wait_until};

/// Stages `stages` baked `bake`, polled every 100 ms, held at most `max_hold`.
fn rollout(stages: &[f64], bake: &str, max_hold: &str) -> Rollout {
    Rollout::new(stages).bake(bake).poll("100ms").max_hold(max_hold)
}

/// A metric gate on the candidate's 5xx count, which an ALB reports only when it is non-zero: a
/// healthy candidate reads "no data". (Its dimension is this test's own; nothing is ever written.)
fn errors_gate() -> Gate {
    Gate::metric("AWS/ApplicationELB", "HTTPCode_Target_5XX_Count")
        .name("5xx")
        .dimension("TargetGroup", &format!("{}-{{side}}", unique("tg5xx")))
        .stat("Sum")
        .max(0.0)
}

fn advance(w: &World) -> serde_json::Value {
    let (out, _) = expect(w.cutover().args(["-p", "svc", "-o", "json", "advance"]), 0);
    json(&out)
}

/// The reading of gate `name` in a result document.
fn reading<'a>(doc: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    doc["readings"].as_array().unwrap().iter().find(|r| r["gate"] == name).unwrap_or_else(|| panic!("{name}: {doc}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_candidate_passes_preflight_and_silence_passes_a_stage_only_with_enough_requests() {
    let w = World::new().await;
    let f = Front::new(&w.aws).await;
    let gate = errors_gate().min_requests(100);
    w.write(
        "svc",
        &Profile::new().alb(f.route()).rollout(rollout(&[10.0, 100.0], "0s", "1h")).gate(gate).state(&unique("state-")),
    );
    expect(w.cutover().args(["-p", "svc", "state", "init"]), 0);

    // Before the first shift the candidate has had no traffic: its "no data" does not block.
    let doc = advance(&w);
    assert_eq!(doc["action"], "started", "{doc}");
    assert_eq!(reading(&doc, "5xx")["verdict"], "pass", "{doc}");
    assert!(reading(&doc, "5xx")["detail"].as_str().unwrap().contains("no traffic has reached green yet"), "{doc}");
    assert_eq!(f.weights().await, (90, 10));

    // During the stage, silence proves nothing until enough requests reached the candidate.
    f.served(900.0, 40.0).await;
    let doc = advance(&w);
    assert_eq!(doc["action"], "not-yet", "{doc}");
    assert_eq!(reading(&doc, "5xx")["verdict"], "wait", "{doc}");
    assert!(reading(&doc, "5xx")["detail"].as_str().unwrap().contains("only 40 of min_requests 100"), "{doc}");
    assert_eq!(f.weights().await, (90, 10));

    // 120 requests and no error reported: the stage passes.
    f.served(900.0, 80.0).await;
    let doc = advance(&w);
    assert_eq!(doc["action"], "advanced", "{doc}");
    assert_eq!(reading(&doc, "5xx")["verdict"], "pass", "{doc}");
    assert!(reading(&doc, "5xx")["detail"].as_str().unwrap().contains("with 120 requests to green"), "{doc}");
    assert_eq!(f.weights().await, (0, 100));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_min_requests_an_idle_candidate_gets_its_first_stage_and_no_data_then_holds_it() {
    let w = World::new().await;
    let f = Front::new(&w.aws).await;
    w.write("svc", &Profile::new().alb(f.route()).rollout(rollout(&[10.0, 100.0], "0s", "1s")).gate(errors_gate()));
    let (out, err) = expect(w.cutover().args(["-p", "svc", "-o", "json", "rollout"]), 7);
    let doc = json(&out);
    assert_eq!(doc["outcome"], "held", "{out}");
    assert_eq!(doc["stage"], 1, "{out}");
    assert!(err.contains("gates before the first shift: 5xx PASS"), "{err}");
    assert!(doc["reason"].as_str().unwrap().contains("no datapoints"), "{out}");
    assert_eq!(f.weights().await, (90, 10));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stage_whose_observed_share_lags_holds_its_bake_and_proceeds_once_it_converges() {
    let w = World::new().await;
    let f = Front::new(&w.aws).await;
    let observe = Observe::new().tolerance(5.0).window("1m");
    w.write(
        "svc",
        &Profile::new()
            .alb(f.route())
            .rollout(rollout(&[10.0, 100.0], "0s", "1h"))
            .observe(observe)
            .state(&unique("state-")),
    );
    expect(w.cutover().args(["-p", "svc", "state", "init"]), 0);

    let doc = advance(&w);
    assert_eq!(doc["action"], "started", "{doc}");
    assert_eq!(f.weights().await, (90, 10));

    // The weights say 10 %, the clients do not (yet): the bake does not start.
    f.served(1000.0, 0.0).await;
    let doc = advance(&w);
    assert_eq!(doc["action"], "not-yet", "{doc}");
    let observed = reading(&doc, "observe");
    assert_eq!(observed["verdict"], "wait", "{doc}");
    assert!(observed["detail"].as_str().unwrap().contains("green 0% observed, 10% intended"), "{doc}");
    assert_eq!(f.weights().await, (90, 10));
    let (out, _) = expect(w.cutover().args(["-p", "svc", "-o", "json", "status"]), 0);
    let status = json(&out);
    assert_eq!(status["routes"][0]["observed"], serde_json::json!({"blue": 100.0, "green": 0.0}), "{out}");
    let (out, _) = expect(w.cutover().args(["-p", "svc", "status"]), 0);
    assert!(out.contains("observed: blue   100% / green     0% of requests"), "{out}");

    // Converged: 120 of 1120 requests (10.7 %) reached green.
    f.served(0.0, 120.0).await;
    let doc = advance(&w);
    assert_eq!(doc["action"], "advanced", "{doc}");
    assert_eq!(reading(&doc, "observe")["verdict"], "pass", "{doc}");
    assert_eq!(f.weights().await, (0, 100));

    // The last stage is observed too, over its own window (which starts within the second the
    // stage was reached: the emulator, like CloudWatch, does not split a second or a minute).
    f.served(0.0, 100_000.0).await;
    let doc = advance(&w);
    assert_eq!(doc["action"], "completed", "{doc}");
}

/// Writes `blue`/`green` requests every 100 ms until `child` exits (at most `secs`).
async fn serve_until_exit(
    f: &Front,
    child: std::process::Child,
    secs: u64,
    blue: f64,
    green: f64,
) -> (i32, String, String) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut child = child;
    while child.try_wait().unwrap().is_none() && Instant::now() < deadline {
        f.served(blue, green).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    finish(child, 5).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_observed_share_that_never_converges_ends_the_run_held_saying_intended_and_observed() {
    let w = World::new().await;
    let f = Front::new(&w.aws).await;
    let observe = Observe::new().tolerance(2.0).window("1m");
    w.write("svc", &Profile::new().alb(f.route()).rollout(rollout(&[10.0, 100.0], "0s", "1s")).observe(observe));
    let child = w
        .std_cutover()
        .args(["-p", "svc", "-o", "json", "rollout"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Clients keep going to blue (DNS caches, pinned connections): 3 % reach green.
    let (code, out, err) = serve_until_exit(&f, child, 30, 97.0, 3.0).await;
    assert_eq!(code, 7, "{out}\n{err}");
    let doc = json(&out);
    assert_eq!(doc["outcome"], "held", "{out}");
    let reason = doc["reason"].as_str().unwrap();
    // About 3 % (a reading may fall between the two sides' datapoints of one write).
    assert!(reason.contains("green ") && reason.contains("% observed, 10% intended (±2)"), "{out}");
    assert_eq!(f.weights().await, (90, 10));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_wait_returns_once_the_candidate_has_drained_and_is_refused_without_observe() {
    let w = World::new().await;
    let f = Front::new(&w.aws).await;
    w.write("plain", &Profile::new().alb(f.route()));
    let (_, err) = expect(w.cutover().args(["-p", "plain", "rollback", "--to", "blue", "--wait"]), 2);
    assert!(err.contains("[observe]") && err.contains("hint:"), "{err}");

    let observe = Observe::new().window("1m");
    w.write("svc", &Profile::new().alb(f.route()).rollout(rollout(&[10.0, 100.0], "0s", "1h")).observe(observe));
    expect(w.cutover().args(["-p", "svc", "set", "green=50", "--no-gates"]), 0);
    assert_eq!(f.weights().await, (50, 50));
    f.served(500.0, 500.0).await;
    let child = w
        .std_cutover()
        .args(["-p", "svc", "-o", "json", "rollback", "--to", "blue", "--wait", "--wait-timeout", "30s"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_until(30, "the rollback's write", || async { f.weights().await == (100, 0) }).await;
    // After the write the clients follow: a straggler or two still reach green.
    let (code, out, err) = serve_until_exit(&f, child, 30, 1000.0, 2.0).await;
    assert_eq!(code, 0, "{out}\n{err}");
    let doc = json(&out);
    assert!(doc["drain"]["drained_after_secs"].as_f64().is_some(), "{out}");
    assert!(doc["drain"]["observed_percent"].as_f64().unwrap() <= 1.0, "{out}");
    assert_eq!(f.weights().await, (100, 0));

    // Clients that do not follow (pinned connections, DNS cached past its TTL): a human must look.
    expect(w.cutover().args(["-p", "svc", "set", "green=50", "--no-gates"]), 0);
    let child = w
        .std_cutover()
        .args(["-p", "svc", "rollback", "--to", "blue", "--wait", "--wait-timeout", "1s"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (code, out, err) = serve_until_exit(&f, child, 30, 500.0, 500.0).await;
    assert_eq!(code, 4, "{out}\n{err}");
    assert!(err.contains("clients had not left green 1s after the rollback"), "{err}");
    assert_eq!(f.weights().await, (100, 0), "traffic is configured on blue all the same");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route53_stage_bakes_at_least_its_ttl_and_a_rollback_says_how_long_resolvers_may_lag() {
    let w = World::new().await;
    let r = Records::cname(&w.aws, 300).await;
    w.write(
        "svc",
        &Profile::new().route53(r.route()).rollout(rollout(&[10.0, 100.0], "0s", "1h")).state(&unique("state-")),
    );
    expect(w.cutover().args(["-p", "svc", "state", "init"]), 0);
    let doc = advance(&w);
    assert_eq!(doc["action"], "started", "{doc}");
    assert_eq!(r.weights().await, (90, 10));
    // bake = "0s", but resolvers keep the old answer for the records' 5-minute TTL.
    let doc = advance(&w);
    assert_eq!(doc["action"], "not-yet", "{doc}");
    assert!(doc["message"].as_str().unwrap().contains("of 5m (the records' DNS TTL)"), "{doc}");
    assert_eq!(r.weights().await, (90, 10));

    let (out, _) = expect(w.cutover().args(["-p", "svc", "rollback"]), 0);
    assert!(out.contains("resolvers may still send clients to green for up to 300s"), "{out}");
    assert_eq!(r.weights().await, (100, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alias_stage_bakes_the_elb_ttl_unless_the_observed_split_verifies_the_shift() {
    let w = World::new().await;
    let r = Records::own_albs(&w.aws).await;
    let base = Profile::new().route53(r.route()).rollout(rollout(&[10.0, 100.0], "0s", "1h")).state(&unique("state-"));
    w.write("svc", &base);
    expect(w.cutover().args(["-p", "svc", "state", "init"]), 0);
    assert_eq!(advance(&w)["action"], "started");
    let doc = advance(&w);
    assert!(doc["message"].as_str().unwrap().contains("of 1m (the records' DNS TTL)"), "{doc}");

    // With [observe], the clients' own split says when the shift has happened.
    w.write("svc", &base.observe(Observe::new().tolerance(5.0)));
    r.served(900.0, 100.0).await;
    let doc = advance(&w);
    assert_eq!(doc["action"], "advanced", "{doc}");
    assert!(reading(&doc, "observe")["detail"].as_str().unwrap().contains("green 10% observed, 10% intended"), "{doc}");
    assert_eq!(r.weights().await, (0, 100));
}

/// The health checks among `all` named with `prefix` (a profile's `cutover:<key>:`).
fn nets(all: &[(String, String)], prefix: &str) -> Vec<(String, String)> {
    all.iter().filter(|h| h.1.starts_with(prefix)).cloned().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_safety_net_is_attached_during_a_rollout_and_gone_after_every_ending() {
    let w = World::new().await;
    let r = Records::own_albs(&w.aws).await;
    let alarm = unique("net-");
    w.aws.alarm(&format!("{alarm}-green")).await;
    w.aws.alarm(&format!("{alarm}-blue")).await;
    // Green's record has a health check of its own: the net must combine with it, then give it back.
    let own = w.aws.http_health_check(&unique("own-")).await;
    let sets = w.aws.record_sets(&r.zone_id, &r.record).await;
    let mut green = sets.into_iter().find(|s| s.set_identifier.as_deref() == Some("green")).unwrap();
    green.health_check_id = Some(own.clone());
    w.aws.upsert(&r.zone_id, vec![green]).await;
    let netted = |bake: &str| {
        Profile::new()
            .route53(r.route())
            .rollout(rollout(&[10.0, 100.0], bake, "1h").safety_net(true).dns_ttl("0s"))
            .gate(Gate::alarm(&[&format!("{alarm}-{{side}}")]))
    };
    let table = unique("state-");
    w.write("svc", &netted("0s").state(&table));
    expect(w.cutover().args(["-p", "svc", "state", "init"]), 0);
    let green_check = async || r.health_check("green").await;
    let blue_check = async || r.health_check("blue").await;

    // A scheduled rollout: between two calls no cutover process is alive; Route53 watches.
    assert_eq!(advance(&w)["action"], "started");
    let attached = green_check().await.expect("a health check on the green record");
    let all = w.aws.health_checks().await;
    let name = &all.iter().find(|(id, _)| *id == attached).expect("the attached check exists").1;
    // `cutover:<profile key>:`: every health check this profile's runs make is named so.
    let prefix = name.splitn(3, ':').take(2).collect::<Vec<_>>().join(":") + ":";
    assert!(prefix.starts_with("cutover:"), "{name}");
    let ours = nets(&all, &prefix);
    assert!(ours.iter().any(|(id, _)| *id == attached), "{attached} among {ours:?}");
    assert_eq!(ours.len(), 2, "one alarm check and the calculated one combining it with the record's own: {ours:?}");
    let (out, _) = expect(w.cutover().args(["-p", "svc", "-o", "json", "status"]), 0);
    assert_eq!(json(&out)["routes"][0]["safety_net"]["side"], "green", "{out}");
    let (out, _) = expect(w.cutover().args(["-p", "svc", "status"]), 0);
    assert!(out.contains(&format!("safety net: health check {attached} on the green record")), "{out}");

    // Ending 1, a rollback: the record's own health check is back, cutover's are deleted.
    expect(w.cutover().args(["-p", "svc", "rollback"]), 0);
    assert_eq!(green_check().await, Some(own.clone()));
    assert_eq!(nets(&w.aws.health_checks().await, &prefix), vec![]);

    // Ending 2, completion.
    let (out, _) = expect(w.cutover().args(["-p", "svc", "-o", "json", "advance", "--to", "green"]), 0);
    assert_eq!(json(&out)["action"], "started", "{out}");
    assert!(green_check().await.is_some_and(|id| id != own));
    assert_eq!(advance(&w)["action"], "advanced");
    assert_eq!(advance(&w)["action"], "completed");
    assert_eq!(r.weights().await, (0, 100));
    assert_eq!(green_check().await, Some(own.clone()));
    assert_eq!(nets(&w.aws.health_checks().await, &prefix), vec![]);

    // Ending 3, an abort (`set --force` during a rollout back to blue, which had no check).
    let (out, _) = expect(w.cutover().args(["-p", "svc", "-o", "json", "advance", "--to", "blue"]), 0);
    assert_eq!(json(&out)["action"], "started", "{out}");
    assert!(blue_check().await.is_some());
    assert_eq!(nets(&w.aws.health_checks().await, &prefix).len(), 1, "one alarm, no own check: one health check");
    expect(w.cutover().args(["-p", "svc", "set", "green=100", "--force", "--no-gates"]), 0);
    assert_eq!(blue_check().await, None);
    assert_eq!(nets(&w.aws.health_checks().await, &prefix), vec![]);

    // Ending 4, a run killed mid-rollout: the net stays (that is its point) and the next run
    // cleans up.
    w.write("svc", &netted("1h").state(&table));
    let child = w
        .std_cutover()
        .args(["-p", "svc", "rollout", "--to", "blue"])
        .env("CUTOVER_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_until(30, "the first stage toward blue", || async { r.weights().await == (10, 90) }).await;
    let mut child = child;
    child.kill().unwrap();
    let _ = child.wait();
    assert!(blue_check().await.is_some(), "a killed run leaves the net in place");
    expect(w.cutover().args(["-p", "svc", "rollback"]), 0);
    assert_eq!(blue_check().await, None);
    assert_eq!(green_check().await, Some(own.clone()));
    assert_eq!(nets(&w.aws.health_checks().await, &prefix), vec![]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_says_how_a_finished_rollout_ended_and_when_routes_disagree() {
    let w = World::new().await;
    let f = Front::new(&w.aws).await;
    let r = Records::cname(&w.aws, 60).await;
    let rollout = Rollout::new(&[100.0]).bake("0s").dns_ttl("0s");
    w.write("svc", &Profile::new().alb(f.route()).route53(r.route()).rollout(rollout).state(&unique("state-")));
    expect(w.cutover().args(["-p", "svc", "state", "init"]), 0);
    assert_eq!(advance(&w)["action"], "started");
    assert_eq!(advance(&w)["action"], "completed");
    let (out, _) = expect(w.cutover().args(["-p", "svc", "status"]), 0);
    assert!(out.contains("live: green (all traffic)"), "{out}");
    assert!(
        out.contains("rollout: blue → green completed at") && out.contains("all traffic on green, now the stable side"),
        "{out}"
    );
    assert!(!out.contains("DRIFT"), "{out}");

    // Someone puts the ALB back by hand: the routes disagree, and status says so.
    f.set_weights(100, 0).await;
    let (out, _) = expect(w.cutover().args(["-p", "svc", "status"]), 0);
    assert!(out.contains("live: none"), "{out}");
    assert!(out.contains("DRIFT: the routes hold different splits"), "{out}");
    let (out, _) = expect(w.cutover().args(["-p", "svc", "-o", "json", "status"]), 0);
    assert!(json(&out)["drift"].as_str().is_some_and(|d| d.contains("different splits")), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_safety_net_is_gone_after_a_rollout_rolls_itself_back_and_after_promote() {
    let w = World::new().await;
    let r = Records::own_albs(&w.aws).await;
    let alarm = unique("netauto-");
    w.aws.alarm(&format!("{alarm}-green")).await;
    w.aws.alarm(&format!("{alarm}-blue")).await;
    let rollout = Rollout::new(&[10.0, 100.0]).bake("1h").poll("100ms").safety_net(true).dns_ttl("0s");
    let gate = Gate::alarm(&[&format!("{alarm}-{{side}}")]);
    w.write("svc", &Profile::new().route53(r.route()).rollout(rollout).gate(gate).state(&unique("state-")));
    expect(w.cutover().args(["-p", "svc", "state", "init"]), 0);
    let green_check = async || r.health_check("green").await;

    // The rollout's own rollback (a gate failed): the net comes off with it.
    let child =
        w.std_cutover().args(["-p", "svc", "rollout"]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    wait_until(30, "the first stage with the net on", || async {
        r.weights().await == (90, 10) && green_check().await.is_some()
    })
    .await;
    let attached = green_check().await.unwrap();
    w.aws.set_alarm(&format!("{alarm}-green"), "ALARM").await;
    let (code, out, err) = finish(child, 30).await;
    assert_eq!(code, 3, "{out}\n{err}");
    assert_eq!(r.weights().await, (100, 0));
    assert_eq!(green_check().await, None);
    assert!(!w.aws.health_checks().await.iter().any(|(id, _)| *id == attached), "{attached} was left behind");

    // `promote` ends a rollout too.
    w.aws.set_alarm(&format!("{alarm}-green"), "OK").await;
    let (out, _) = expect(w.cutover().args(["-p", "svc", "-o", "json", "advance", "--to", "green"]), 0);
    assert_eq!(json(&out)["action"], "started", "{out}");
    let attached = green_check().await.expect("the net on the green record");
    expect(w.cutover().args(["-p", "svc", "promote"]), 0);
    assert_eq!(r.weights().await, (0, 100));
    assert_eq!(green_check().await, None);
    assert!(!w.aws.health_checks().await.iter().any(|(id, _)| *id == attached), "{attached} was left behind");
}
