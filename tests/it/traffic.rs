//! Traffic you can see: gates that know whether the candidate has traffic, the observed split
//! (`[observe]`), `rollback --wait`, DNS-aware bakes, the Route53 safety net. Request counts are
//! written into the emulator's CloudWatch as the load balancers publish them.

use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::emulator::unique;
use crate::fixtures::Aws;
use crate::{World, expect, finish, wait_until};

/// A front ALB we own whose listener forwards blue 100 / green 0, with a state table.
struct Front {
    lb: String,
    listener: String,
    blue: String,
    green: String,
    table: String,
}

impl Front {
    async fn new(w: &World) -> Front {
        let (vpc, subnets) = w.aws.network().await;
        let (lb, _, _) = w.aws.load_balancer(&unique("t"), &subnets, &[]).await;
        let blue = w.aws.target_group(&unique("tb"), &vpc, &["10.0.1.7"]).await;
        let green = w.aws.target_group(&unique("tg"), &vpc, &["10.0.2.7"]).await;
        let listener = w.aws.listener(&lb, 80, Aws::forward(&[(&blue, 100), (&green, 0)], None), &[]).await;
        Front { lb, listener, blue, green, table: unique("state-") }
    }

    fn route(&self) -> String {
        format!("[[alb]]\nlistener = \"{}\"\nblue = \"{}\"\ngreen = \"{}\"\n", self.listener, self.blue, self.green)
    }

    fn state(&self) -> String {
        format!("[state]\ntable = \"{}\"\n", self.table)
    }

    async fn weights(&self, w: &World) -> (i32, i32) {
        let fw = w.aws.forward_weights(&self.listener, None).await;
        let get = |arn: &str| fw.iter().find(|(a, _)| a == arn).map(|(_, w)| *w).unwrap();
        (get(&self.blue), get(&self.green))
    }

    /// Requests the ALB counted this minute at each side's target group.
    async fn served(&self, w: &World, blue: f64, green: f64) {
        w.aws.requests(&self.lb, Some(&self.blue), blue).await;
        w.aws.requests(&self.lb, Some(&self.green), green).await;
    }
}

fn rollout(stages: &str, bake: &str, max_hold: &str) -> String {
    format!("[rollout]\nstages = {stages}\nbake = \"{bake}\"\npoll = \"100ms\"\nmax_hold = \"{max_hold}\"\n")
}

/// A metric gate on the candidate's 5xx count, which an ALB reports only when it is non-zero: a
/// healthy candidate reads "no data". (Its dimension is this test's own; nothing is ever written.)
fn errors_gate(extra: &str) -> String {
    format!(
        "[[gate]]\nname = \"5xx\"\ntype = \"metric\"\nnamespace = \"AWS/ApplicationELB\"\nmetric = \"HTTPCode_Target_5XX_Count\"\ndimensions = {{ TargetGroup = \"{}-{{side}}\" }}\nstat = \"Sum\"\nmax = 0\n{extra}",
        unique("tg5xx")
    )
}

fn json(out: &str) -> serde_json::Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("{e}: {out}"))
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
    let f = Front::new(&w).await;
    let gate = errors_gate("min_requests = 100\n");
    w.profile("svc", &format!("{}{}{gate}{}", f.route(), rollout("[10, 100]", "0s", "1h"), f.state()));
    expect(w.cutover().args(["-p", "svc", "state", "init"]), 0);

    // Before the first shift the candidate has had no traffic: its "no data" does not block.
    let doc = advance(&w);
    assert_eq!(doc["action"], "started", "{doc}");
    assert_eq!(reading(&doc, "5xx")["verdict"], "pass", "{doc}");
    assert!(reading(&doc, "5xx")["detail"].as_str().unwrap().contains("no traffic has reached green yet"), "{doc}");
    assert_eq!(f.weights(&w).await, (90, 10));

    // During the stage, silence proves nothing until enough requests reached the candidate.
    f.served(&w, 900.0, 40.0).await;
    let doc = advance(&w);
    assert_eq!(doc["action"], "not-yet", "{doc}");
    assert_eq!(reading(&doc, "5xx")["verdict"], "wait", "{doc}");
    assert!(reading(&doc, "5xx")["detail"].as_str().unwrap().contains("only 40 of min_requests 100"), "{doc}");
    assert_eq!(f.weights(&w).await, (90, 10));

    // 120 requests and no error reported: the stage passes.
    f.served(&w, 900.0, 80.0).await;
    let doc = advance(&w);
    assert_eq!(doc["action"], "advanced", "{doc}");
    assert_eq!(reading(&doc, "5xx")["verdict"], "pass", "{doc}");
    assert!(reading(&doc, "5xx")["detail"].as_str().unwrap().contains("with 120 requests to green"), "{doc}");
    assert_eq!(f.weights(&w).await, (0, 100));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_min_requests_an_idle_candidate_gets_its_first_stage_and_no_data_then_holds_it() {
    let w = World::new().await;
    let f = Front::new(&w).await;
    w.profile("svc", &format!("{}{}{}", f.route(), rollout("[10, 100]", "0s", "1s"), errors_gate("")));
    let (out, err) = expect(w.cutover().args(["-p", "svc", "-o", "json", "rollout"]), 7);
    let doc = json(&out);
    assert_eq!(doc["outcome"], "held", "{out}");
    assert_eq!(doc["stage"], 1, "{out}");
    assert!(err.contains("gates before the first shift: 5xx PASS"), "{err}");
    assert!(doc["reason"].as_str().unwrap().contains("no datapoints"), "{out}");
    assert_eq!(f.weights(&w).await, (90, 10));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stage_whose_observed_share_lags_holds_its_bake_and_proceeds_once_it_converges() {
    let w = World::new().await;
    let f = Front::new(&w).await;
    let observe = "[observe]\ntolerance = 5\nwindow = \"1m\"\n";
    w.profile("svc", &format!("{}{}{observe}{}", f.route(), rollout("[10, 100]", "0s", "1h"), f.state()));
    expect(w.cutover().args(["-p", "svc", "state", "init"]), 0);

    let doc = advance(&w);
    assert_eq!(doc["action"], "started", "{doc}");
    assert_eq!(f.weights(&w).await, (90, 10));

    // The weights say 10 %, the clients do not (yet): the bake does not start.
    f.served(&w, 1000.0, 0.0).await;
    let doc = advance(&w);
    assert_eq!(doc["action"], "not-yet", "{doc}");
    let observed = reading(&doc, "observe");
    assert_eq!(observed["verdict"], "wait", "{doc}");
    assert!(observed["detail"].as_str().unwrap().contains("green 0% observed, 10% intended"), "{doc}");
    assert_eq!(f.weights(&w).await, (90, 10));
    let (out, _) = expect(w.cutover().args(["-p", "svc", "-o", "json", "status"]), 0);
    let status = json(&out);
    assert_eq!(status["routes"][0]["observed"], serde_json::json!({"blue": 100.0, "green": 0.0}), "{out}");
    let (out, _) = expect(w.cutover().args(["-p", "svc", "status"]), 0);
    assert!(out.contains("observed: blue   100% / green     0% of requests"), "{out}");

    // Converged: 120 of 1120 requests (10.7 %) reached green.
    f.served(&w, 0.0, 120.0).await;
    let doc = advance(&w);
    assert_eq!(doc["action"], "advanced", "{doc}");
    assert_eq!(reading(&doc, "observe")["verdict"], "pass", "{doc}");
    assert_eq!(f.weights(&w).await, (0, 100));

    // The last stage is observed too, over its own window (which starts within the second the
    // stage was reached: the emulator, like CloudWatch, does not split a second or a minute).
    f.served(&w, 0.0, 100_000.0).await;
    let doc = advance(&w);
    assert_eq!(doc["action"], "completed", "{doc}");
}

/// Writes `blue`/`green` requests every 100 ms until `child` exits (at most `secs`).
async fn serve_until_exit(
    w: &World,
    f: &Front,
    child: std::process::Child,
    secs: u64,
    blue: f64,
    green: f64,
) -> (i32, String, String) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut child = child;
    while child.try_wait().unwrap().is_none() && Instant::now() < deadline {
        f.served(w, blue, green).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    finish(child, 5).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_observed_share_that_never_converges_ends_the_run_held_saying_intended_and_observed() {
    let w = World::new().await;
    let f = Front::new(&w).await;
    let observe = "[observe]\ntolerance = 2\nwindow = \"1m\"\n";
    w.profile("svc", &format!("{}{}{observe}", f.route(), rollout("[10, 100]", "0s", "1s")));
    let child = w
        .std_cutover()
        .args(["-p", "svc", "-o", "json", "rollout"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Clients keep going to blue (DNS caches, pinned connections): 3 % reach green.
    let (code, out, err) = serve_until_exit(&w, &f, child, 30, 97.0, 3.0).await;
    assert_eq!(code, 7, "{out}\n{err}");
    let doc = json(&out);
    assert_eq!(doc["outcome"], "held", "{out}");
    let reason = doc["reason"].as_str().unwrap();
    // About 3 % (a reading may fall between the two sides' datapoints of one write).
    assert!(reason.contains("green ") && reason.contains("% observed, 10% intended (±2)"), "{out}");
    assert_eq!(f.weights(&w).await, (90, 10));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_wait_returns_once_the_candidate_has_drained_and_is_refused_without_observe() {
    let w = World::new().await;
    let f = Front::new(&w).await;
    w.profile("plain", &f.route());
    let (_, err) = expect(w.cutover().args(["-p", "plain", "rollback", "--to", "blue", "--wait"]), 2);
    assert!(err.contains("[observe]") && err.contains("hint:"), "{err}");

    let observe = "[observe]\nwindow = \"1m\"\n";
    w.profile("svc", &format!("{}{}{observe}", f.route(), rollout("[10, 100]", "0s", "1h")));
    expect(w.cutover().args(["-p", "svc", "set", "green=50", "--no-gates"]), 0);
    assert_eq!(f.weights(&w).await, (50, 50));
    f.served(&w, 500.0, 500.0).await;
    let child = w
        .std_cutover()
        .args(["-p", "svc", "-o", "json", "rollback", "--to", "blue", "--wait", "--wait-timeout", "30s"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_until(30, "the rollback's write", || async { f.weights(&w).await == (100, 0) }).await;
    // After the write the clients follow: a straggler or two still reach green.
    let (code, out, err) = serve_until_exit(&w, &f, child, 30, 1000.0, 2.0).await;
    assert_eq!(code, 0, "{out}\n{err}");
    let doc = json(&out);
    assert!(doc["drain"]["drained_after_secs"].as_f64().is_some(), "{out}");
    assert!(doc["drain"]["observed_percent"].as_f64().unwrap() <= 1.0, "{out}");
    assert_eq!(f.weights(&w).await, (100, 0));

    // Clients that do not follow (pinned connections, DNS cached past its TTL): a human must look.
    expect(w.cutover().args(["-p", "svc", "set", "green=50", "--no-gates"]), 0);
    let child = w
        .std_cutover()
        .args(["-p", "svc", "rollback", "--to", "blue", "--wait", "--wait-timeout", "1s"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (code, out, err) = serve_until_exit(&w, &f, child, 30, 500.0, 500.0).await;
    assert_eq!(code, 4, "{out}\n{err}");
    assert!(err.contains("clients had not left green 1s after the rollback"), "{err}");
    assert_eq!(f.weights(&w).await, (100, 0), "traffic is configured on blue all the same");
}

/// A weighted pair in a new zone: CNAMEs with `ttl` (no alias), or aliases to two load balancers
/// of this test's own (so their request counts are this test's alone).
struct Records {
    zone: String,
    zone_id: String,
    record: String,
    /// (blue, green) load balancer ARNs, for alias pairs.
    lbs: Option<(String, String)>,
}

impl Records {
    async fn cname(w: &World, ttl: i64) -> Records {
        let crate::Pair { zone, zone_id, record } = crate::Pair::zone(w).await;
        w.aws
            .upsert(
                &zone_id,
                vec![
                    Aws::weighted_cname(&record, ("blue", 100), ttl, "blue.example.test", None),
                    Aws::weighted_cname(&record, ("green", 0), ttl, "green.example.test", None),
                ],
            )
            .await;
        Records { zone, zone_id, record, lbs: None }
    }

    async fn alias(w: &World) -> Records {
        let (_, subnets) = w.aws.network().await;
        let (blue_arn, blue, lb_zone) = w.aws.load_balancer(&unique("db"), &subnets, &[]).await;
        let (green_arn, green, _) = w.aws.load_balancer(&unique("dg"), &subnets, &[]).await;
        let pair = crate::Pair::new(w, (100, 0), (&blue, &green), &lb_zone).await;
        Records { zone: pair.zone, zone_id: pair.zone_id, record: pair.record, lbs: Some((blue_arn, green_arn)) }
    }

    fn route(&self) -> String {
        format!(
            "[[route53]]\nzone = \"{}\"\nrecord = \"{}\"\ntype = \"{}\"\nblue = \"blue\"\ngreen = \"green\"\n",
            self.zone,
            self.record,
            if self.lbs.is_some() { "A" } else { "CNAME" }
        )
    }

    async fn weights(&self, w: &World) -> (i64, i64) {
        (
            w.aws.weight(&self.zone_id, &self.record, "blue").await,
            w.aws.weight(&self.zone_id, &self.record, "green").await,
        )
    }

    /// Requests each side's load balancer counted this minute.
    async fn served(&self, w: &World, blue: f64, green: f64) {
        let (b, g) = self.lbs.as_ref().expect("an alias pair");
        w.aws.requests(b, None, blue).await;
        w.aws.requests(g, None, green).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route53_stage_bakes_at_least_its_ttl_and_a_rollback_says_how_long_resolvers_may_lag() {
    let w = World::new().await;
    let r = Records::cname(&w, 300).await;
    let table = unique("state-");
    w.profile("svc", &format!("{}{}[state]\ntable = \"{table}\"\n", r.route(), rollout("[10, 100]", "0s", "1h")));
    expect(w.cutover().args(["-p", "svc", "state", "init"]), 0);
    let doc = advance(&w);
    assert_eq!(doc["action"], "started", "{doc}");
    assert_eq!(r.weights(&w).await, (90, 10));
    // bake = "0s", but resolvers keep the old answer for the records' 5-minute TTL.
    let doc = advance(&w);
    assert_eq!(doc["action"], "not-yet", "{doc}");
    assert!(doc["message"].as_str().unwrap().contains("of 5m (the records' DNS TTL)"), "{doc}");
    assert_eq!(r.weights(&w).await, (90, 10));

    let (out, _) = expect(w.cutover().args(["-p", "svc", "rollback"]), 0);
    assert!(out.contains("resolvers may still send clients to green for up to 300s"), "{out}");
    assert_eq!(r.weights(&w).await, (100, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alias_stage_bakes_the_elb_ttl_unless_the_observed_split_verifies_the_shift() {
    let w = World::new().await;
    let r = Records::alias(&w).await;
    let table = unique("state-");
    let base = format!("{}{}[state]\ntable = \"{table}\"\n", r.route(), rollout("[10, 100]", "0s", "1h"));
    w.profile("svc", &base);
    expect(w.cutover().args(["-p", "svc", "state", "init"]), 0);
    assert_eq!(advance(&w)["action"], "started");
    let doc = advance(&w);
    assert!(doc["message"].as_str().unwrap().contains("of 1m (the records' DNS TTL)"), "{doc}");

    // With [observe], the clients' own split says when the shift has happened.
    w.profile("svc", &format!("{base}[observe]\ntolerance = 5\n"));
    r.served(&w, 900.0, 100.0).await;
    let doc = advance(&w);
    assert_eq!(doc["action"], "advanced", "{doc}");
    assert!(reading(&doc, "observe")["detail"].as_str().unwrap().contains("green 10% observed, 10% intended"), "{doc}");
    assert_eq!(r.weights(&w).await, (0, 100));
}

/// The health checks among `all` named with `prefix` (a profile's `cutover:<key>:`).
fn nets(all: &[(String, String)], prefix: &str) -> Vec<(String, String)> {
    all.iter().filter(|h| h.1.starts_with(prefix)).cloned().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_safety_net_is_attached_during_a_rollout_and_gone_after_every_ending() {
    let w = World::new().await;
    let r = Records::alias(&w).await;
    let alarm = unique("net-");
    w.aws.alarm(&format!("{alarm}-green")).await;
    w.aws.alarm(&format!("{alarm}-blue")).await;
    // Green's record has a health check of its own: the net must combine with it, then give it back.
    let own = w.aws.http_health_check(&unique("own-")).await;
    let sets = w.aws.record_sets(&r.zone_id, &r.record).await;
    let mut green = sets.into_iter().find(|s| s.set_identifier.as_deref() == Some("green")).unwrap();
    green.health_check_id = Some(own.clone());
    w.aws.upsert(&r.zone_id, vec![green]).await;
    let table = unique("state-");
    w.profile(
        "svc",
        &format!(
            "{}{}safety_net = true\ndns_ttl = \"0s\"\n[[gate]]\ntype = \"alarm\"\nalarms = [\"{alarm}-{{side}}\"]\n[state]\ntable = \"{table}\"\n",
            r.route(),
            rollout("[10, 100]", "0s", "1h")
        ),
    );
    expect(w.cutover().args(["-p", "svc", "state", "init"]), 0);
    let green_check = async || w.aws.record_health_check(&r.zone_id, &r.record, "green").await;
    let blue_check = async || w.aws.record_health_check(&r.zone_id, &r.record, "blue").await;

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
    assert_eq!(r.weights(&w).await, (0, 100));
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
    w.profile(
        "svc",
        &format!(
            "{}{}safety_net = true\ndns_ttl = \"0s\"\n[[gate]]\ntype = \"alarm\"\nalarms = [\"{alarm}-{{side}}\"]\n[state]\ntable = \"{table}\"\n",
            r.route(),
            rollout("[10, 100]", "1h", "1h")
        ),
    );
    let child = w
        .std_cutover()
        .args(["-p", "svc", "rollout", "--to", "blue"])
        .env("CUTOVER_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_until(30, "the first stage toward blue", || async { r.weights(&w).await == (10, 90) }).await;
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
    let f = Front::new(&w).await;
    let r = Records::cname(&w, 60).await;
    let rollout = "[rollout]\nstages = [100]\nbake = \"0s\"\ndns_ttl = \"0s\"\n";
    w.profile("svc", &format!("{}{}{rollout}{}", f.route(), r.route(), f.state()));
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
    w.aws.set_action(&f.listener, None, Aws::forward(&[(&f.blue, 100), (&f.green, 0)], None)).await;
    let (out, _) = expect(w.cutover().args(["-p", "svc", "status"]), 0);
    assert!(out.contains("live: none"), "{out}");
    assert!(out.contains("DRIFT: the routes hold different splits"), "{out}");
    let (out, _) = expect(w.cutover().args(["-p", "svc", "-o", "json", "status"]), 0);
    assert!(json(&out)["drift"].as_str().is_some_and(|d| d.contains("different splits")), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_safety_net_is_gone_after_a_rollout_rolls_itself_back_and_after_promote() {
    let w = World::new().await;
    let r = Records::alias(&w).await;
    let alarm = unique("netauto-");
    w.aws.alarm(&format!("{alarm}-green")).await;
    w.aws.alarm(&format!("{alarm}-blue")).await;
    let table = unique("state-");
    let profile = |bake: &str| {
        format!(
            "{}[rollout]\nstages = [10, 100]\nbake = \"{bake}\"\npoll = \"100ms\"\nsafety_net = true\ndns_ttl = \"0s\"\n[[gate]]\ntype = \"alarm\"\nalarms = [\"{alarm}-{{side}}\"]\n[state]\ntable = \"{table}\"\n",
            r.route()
        )
    };
    w.profile("svc", &profile("1h"));
    expect(w.cutover().args(["-p", "svc", "state", "init"]), 0);
    let green_check = async || w.aws.record_health_check(&r.zone_id, &r.record, "green").await;

    // The rollout's own rollback (a gate failed): the net comes off with it.
    let child =
        w.std_cutover().args(["-p", "svc", "rollout"]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    wait_until(30, "the first stage with the net on", || async {
        r.weights(&w).await == (90, 10) && green_check().await.is_some()
    })
    .await;
    let attached = green_check().await.unwrap();
    w.aws.set_alarm(&format!("{alarm}-green"), "ALARM").await;
    let (code, out, err) = finish(child, 30).await;
    assert_eq!(code, 3, "{out}\n{err}");
    assert_eq!(r.weights(&w).await, (100, 0));
    assert_eq!(green_check().await, None);
    assert!(!w.aws.health_checks().await.iter().any(|(id, _)| *id == attached), "{attached} was left behind");

    // `promote` ends a rollout too.
    w.aws.set_alarm(&format!("{alarm}-green"), "OK").await;
    let (out, _) = expect(w.cutover().args(["-p", "svc", "-o", "json", "advance", "--to", "green"]), 0);
    assert_eq!(json(&out)["action"], "started", "{out}");
    let attached = green_check().await.expect("the net on the green record");
    expect(w.cutover().args(["-p", "svc", "promote"]), 0);
    assert_eq!(r.weights(&w).await, (0, 100));
    assert_eq!(green_check().await, None);
    assert!(!w.aws.health_checks().await.iter().any(|(id, _)| *id == attached), "{attached} was left behind");
}
