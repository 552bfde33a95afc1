//! Traffic you can see: gates that know whether the candidate has traffic, the observed split
//! (`[observe]`), `rollback --wait`, DNS-aware bakes, the Route53 safety net. What counts requests
//! runs on the kit: its clients, their requests published by the minute, a minute late.

use std::process::Stdio;

use crate::emulator::unique;
use crate::kit::{Lb, cutover, kit, secs, until};
use crate::proxy::{App, Clock, Config, Proxy};
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
async fn an_alias_stage_bakes_the_elb_ttl() {
    let w = World::new().await;
    let r = Records::own_albs(&w.aws).await;
    let base = Profile::new().route53(r.route()).rollout(rollout(&[10.0, 100.0], "0s", "1h")).state(&unique("state-"));
    w.write("svc", &base);
    expect(w.cutover().args(["-p", "svc", "state", "init"]), 0);
    assert_eq!(advance(&w)["action"], "started");
    // An alias record's answer is cached for the ELB's 60 s; with `[observe]` the split the
    // clients produce is read too, but a minute after the shift is published well after 60 s
    // (`observed_…` below), so the TTL never decides there.
    let doc = advance(&w);
    assert_eq!(doc["action"], "not-yet", "{doc}");
    assert!(doc["message"].as_str().unwrap().contains("of 1m (the records' DNS TTL)"), "{doc}");
    assert_eq!(r.weights().await, (90, 10));
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

// ---------------------------------------------------------------------------------------------
// The observed split and request counts as AWS publishes them: the kit's clients, whose requests
// the load balancers count and publish by the minute, a minute late; cutover on the kit's clock,
// 30 times as fast as real time.

/// `cutover -o json ARGS` on the kit's clock: its exit code, JSON document and stderr.
async fn on_kit(w: &World, kit: &Proxy, args: &[&str]) -> (i32, serde_json::Value, String) {
    let child = cutover(w, kit)
        .args(["-o", "json"])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (code, out, err) = finish(child, 120).await;
    let doc = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: {e}: {out}\n{err}"));
    (code, doc, err)
}

/// Calls `advance` every 20 s of the kit's time while it answers "not yet" (at most `limit`
/// seconds of it): the (verdict, detail) of gate `gate` at each call, and the last result.
async fn advance_while_not_yet(
    clock: &Clock,
    w: &World,
    kit: &Proxy,
    gate: &str,
    limit: u64,
) -> (Vec<(String, String)>, serde_json::Value) {
    let deadline = clock.now() + secs(limit);
    let mut seen = Vec::new();
    loop {
        until(clock, clock.now() + secs(20)).await;
        let (code, doc, err) = on_kit(w, kit, &["-p", "svc", "advance"]).await;
        assert_eq!(code, 0, "{doc}\n{err}");
        // A call that only finishes what the one before began (its state write cut short) reads
        // no gate.
        let r = doc["readings"].as_array().and_then(|r| r.iter().find(|r| r["gate"] == gate));
        seen.push(match r {
            Some(r) => {
                (r["verdict"].as_str().unwrap_or("").to_string(), r["detail"].as_str().unwrap_or("").to_string())
            }
            None => (String::new(), doc["message"].as_str().unwrap_or("").to_string()),
        });
        if doc["action"] != "not-yet" {
            return (seen, doc);
        }
        assert!(clock.now() < deadline, "still not yet after {limit}s of the kit's time: {seen:#?}");
    }
}

/// The first number after `after` in `text`.
fn number_after(text: &str, after: &str) -> f64 {
    let rest = &text[text.find(after).unwrap_or_else(|| panic!("no {after:?} in {text}")) + after.len()..];
    let n: String = rest.trim_start().chars().take_while(|c| c.is_ascii_digit() || *c == '.').collect();
    n.parse().unwrap_or_else(|_| panic!("no number after {after:?} in {text}"))
}

/// A weighted record aliasing a blue and a green ALB of its own (each forwarding to a target
/// group of its own), all traffic on blue; its clients resolve it.
async fn dns_pair(w: &World) -> Records {
    let (blue, green) = (Lb::new(w, false).await, Lb::new(w, false).await);
    Records::alias_to(&w.aws, (100, 0), (&blue.dns, &green.dns), &blue.zone).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_candidate_passes_preflight_and_silence_passes_a_stage_only_with_enough_requests() {
    let (clock, kit, w) = kit(Config::realistic(Clock::scaled(30.0), secs(60))).await;
    let f = Front::new(&w.aws).await;
    // 2 requests a second through the ALB: green's 10 % is about 12 a minute.
    kit.clients().start(App::load_balancer("app", &f.lb, 2.0), None);
    let gate = errors_gate().min_requests(30);
    w.write(
        "svc",
        &Profile::new().alb(f.route()).rollout(rollout(&[10.0, 100.0], "0s", "1h")).gate(gate).state(&unique("state-")),
    );
    assert_eq!(on_kit(&w, &kit, &["-p", "svc", "state", "init"]).await.0, 0);

    // Before the first shift the candidate has had no traffic: its "no data" does not block.
    let (code, doc, err) = on_kit(&w, &kit, &["-p", "svc", "advance"]).await;
    assert_eq!((code, doc["action"].as_str()), (0, Some("started")), "{doc}\n{err}");
    assert_eq!(reading(&doc, "5xx")["verdict"], "pass", "{doc}");
    assert!(reading(&doc, "5xx")["detail"].as_str().unwrap().contains("no traffic has reached green yet"), "{doc}");
    assert_eq!(f.weights().await, (90, 10));

    // During the stage, silence proves nothing: pending until a minute is published, then
    // waiting while fewer than 30 requests reached green, then a pass.
    let (seen, doc) = advance_while_not_yet(&clock, &w, &kit, "5xx", 900).await;
    assert_eq!(doc["action"], "advanced", "{seen:#?}\n{doc}");
    let (last, before) = seen.split_last().unwrap();
    assert_eq!(last.0, "pass", "{seen:#?}");
    assert!(number_after(&last.1, "with") >= 30.0, "{seen:#?}");
    assert_eq!(
        before.first().map(|r| r.0.as_str()),
        Some("pending"),
        "nothing counted before a minute is published: {seen:#?}"
    );
    let waits: Vec<f64> = before.iter().filter(|r| r.0 == "wait").map(|r| number_after(&r.1, "only")).collect();
    assert!(!waits.is_empty(), "a wait for min_requests: {seen:#?}");
    assert!(waits.iter().all(|n| *n < 30.0) && waits.windows(2).all(|w| w[0] <= w[1]), "{seen:#?}");
    assert!(before.iter().all(|r| r.0 == "pending" || r.0 == "wait"), "{seen:#?}");
    assert_eq!(f.weights().await, (0, 100));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stage_whose_observed_share_lags_holds_its_bake_and_proceeds_once_it_converges() {
    let (clock, kit, w) = kit(Config::realistic(Clock::scaled(30.0), secs(60))).await;
    let r = dns_pair(&w).await;
    // Every resolver keeps its answer 5 minutes, past the alias's 60 s TTL: after a shift the
    // clients move over the next 5 minutes.
    kit.clients().start(App::dns("api", &r.zone_id, &r.record, 20.0).overstay(1.0, secs(300)), None);
    let observe = Observe::new().tolerance(2.0);
    w.write(
        "svc",
        &Profile::new()
            .route53(r.route())
            .rollout(rollout(&[10.0, 100.0], "0s", "1h"))
            .observe(observe)
            .state(&unique("state-")),
    );
    assert_eq!(on_kit(&w, &kit, &["-p", "svc", "state", "init"]).await.0, 0);
    let (code, doc, err) = on_kit(&w, &kit, &["-p", "svc", "advance"]).await;
    assert_eq!((code, doc["action"].as_str()), (0, Some("started")), "{doc}\n{err}");
    assert_eq!(r.weights().await, (90, 10));

    // The weights say 10 %, the clients do not (yet): the bake does not start.
    let (seen, doc) = advance_while_not_yet(&clock, &w, &kit, "observe", 1200).await;
    assert_eq!(doc["action"], "advanced", "{seen:#?}\n{doc}");
    let lagging: Vec<&(String, String)> = seen.iter().filter(|r| r.0 == "wait").collect();
    assert!(!lagging.is_empty(), "the lag was seen: {seen:#?}");
    for (_, detail) in &lagging {
        assert!(detail.contains("% observed in ") && detail.contains("10% intended (±2)"), "{detail}");
        assert!(number_after(detail, "green") < 8.0, "{detail}");
    }
    assert!(seen.iter().any(|r| r.0 == "pass"), "{seen:#?}");
    assert_eq!(r.weights().await, (0, 100));

    // The last stage is observed too: status shows the clients still on their way.
    let (code, status, _) = on_kit(&w, &kit, &["-p", "svc", "status"]).await;
    assert_eq!(code, 0, "{status}");
    assert!(status["routes"][0]["observed"]["green"].is_number(), "{status}");
    let (seen, doc) = advance_while_not_yet(&clock, &w, &kit, "observe", 1200).await;
    assert_eq!(doc["action"], "completed", "{seen:#?}\n{doc}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_observed_share_that_never_converges_ends_the_run_held_saying_intended_and_observed() {
    let (_, kit, w) = kit(Config::realistic(Clock::scaled(30.0), secs(60))).await;
    let r = dns_pair(&w).await;
    // 70 % of the resolvers keep their answer for an hour (DNS caches that ignore the TTL): about
    // 3 % reach green.
    kit.clients().start(App::dns("api", &r.zone_id, &r.record, 20.0).overstay(0.7, secs(3600)), None);
    let observe = Observe::new().tolerance(2.0);
    w.write("svc", &Profile::new().route53(r.route()).rollout(rollout(&[10.0, 100.0], "0s", "6m")).observe(observe));
    let (code, doc, err) = on_kit(&w, &kit, &["-p", "svc", "rollout"]).await;
    assert_eq!(code, 7, "{doc}\n{err}");
    assert_eq!(doc["outcome"], "held", "{doc}");
    let reason = doc["reason"].as_str().unwrap();
    assert!(reason.contains("% observed in ") && reason.contains("10% intended (±2)"), "{doc}");
    assert!(number_after(reason, "green") < 8.0, "{doc}");
    assert_eq!(r.weights().await, (90, 10));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_wait_returns_once_the_candidate_has_drained_and_is_refused_without_observe() {
    let (clock, kit, w) = kit(Config::realistic(Clock::scaled(30.0), secs(60))).await;
    let r = dns_pair(&w).await;
    w.write("plain", &Profile::new().route53(r.route()));
    let (code, doc, err) = on_kit(&w, &kit, &["-p", "plain", "rollback", "--to", "blue", "--wait"]).await;
    assert_eq!(code, 2, "{doc}");
    assert!(err.contains("[observe]") && err.contains("hint:"), "{err}");

    w.write(
        "svc",
        &Profile::new().route53(r.route()).rollout(rollout(&[10.0, 100.0], "0s", "1h")).observe(Observe::new()),
    );
    kit.clients().start(App::dns("api", &r.zone_id, &r.record, 20.0), None);
    assert_eq!(on_kit(&w, &kit, &["-p", "svc", "set", "green=50", "--no-gates", "-y"]).await.0, 0);
    assert_eq!(r.weights().await, (50, 50));
    until(&clock, clock.now() + secs(180)).await;
    // The clients follow the 60 s TTL: the minutes after the rollback's show green drained.
    let (code, doc, err) =
        on_kit(&w, &kit, &["-p", "svc", "rollback", "--to", "blue", "-y", "--wait", "--wait-timeout", "10m"]).await;
    assert_eq!(code, 0, "{doc}\n{err}");
    assert!(doc["drain"]["drained_after_secs"].as_f64().is_some(), "{doc}");
    assert!(doc["drain"]["observed_percent"].as_f64().unwrap() <= 1.0, "{doc}");
    assert_eq!(r.weights().await, (100, 0));

    // Clients that do not follow (DNS cached for an hour): a human must look.
    kit.clients().stop(Some("api"));
    assert_eq!(on_kit(&w, &kit, &["-p", "svc", "set", "green=50", "--no-gates", "-y"]).await.0, 0);
    kit.clients().start(App::dns("stuck", &r.zone_id, &r.record, 20.0).overstay(1.0, secs(3600)), None);
    until(&clock, clock.now() + secs(120)).await;
    let (code, doc, err) =
        on_kit(&w, &kit, &["-p", "svc", "rollback", "--to", "blue", "-y", "--wait", "--wait-timeout", "4m"]).await;
    assert_eq!(code, 4, "{doc}\n{err}");
    assert!(err.contains("clients had not left green 4m after the rollback"), "{err}");
    assert_eq!(r.weights().await, (100, 0), "traffic is configured on blue all the same");
}
