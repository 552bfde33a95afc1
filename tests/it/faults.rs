//! The promises under AWS's weather, through the kit's proxy with AWS-like latency and faults:
//! a rollback fired at writes in flight wins every race; a rollout completes through a throttle
//! storm; a rollout killed at any moment leaves every route at a split cutover wrote, and the next
//! run finishes it.
//!
//! Each lane has routes, a state table and a proxy of its own, and runs its cases one after the
//! other; lanes run in parallel. Randomness (which write to aim at, when to fire, when to kill)
//! comes from seeds, so a failing case can be run again.

use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::emulator::{proxy, unique};
use crate::fixtures::Aws;
use crate::proxy::{App, Call, Clock, Config, Latency, Proxy, Publish, percent_decode};
use crate::scenario::{Front, Gate, Observe, Profile, Records, Rollout};
use crate::{World, expect, finish, run, wait_until};

/// Routes of both kinds (the front ALB's default action; a weighted alias pair to the two
/// ingress ALBs, whose listeners forward to the front's target groups) and a state table.
struct Rig {
    w: World,
    front: Front,
    pair: Records,
    table: String,
}

impl Rig {
    async fn new() -> Rig {
        Rig::on(World::new().await).await
    }

    /// The rig in `w`'s emulator (the kit's, for one).
    async fn on(w: World) -> Rig {
        let front = Front::new(&w.aws).await;
        let (blue_lb, blue_dns, lb_zone) = w.aws.load_balancer(&unique("fib"), &front.subnets, &[]).await;
        let (green_lb, green_dns, _) = w.aws.load_balancer(&unique("fig"), &front.subnets, &[]).await;
        w.aws.listener(&blue_lb, 80, Aws::forward(&[(&front.blue, 1)], None), &[]).await;
        w.aws.listener(&green_lb, 80, Aws::forward(&[(&front.green, 1)], None), &[]).await;
        let pair = Records::alias_to(&w.aws, (100, 0), (&blue_dns, &green_dns), &lb_zone).await;
        let rig = Rig { w, front, pair, table: unique("faults-") };
        rig.write("init", rig.profile(None, "30s"));
        expect(rig.w.cutover().args(["-p", "init", "state", "init"]), 0);
        rig
    }

    /// Both routes, `rollout`, the state table with a lease of `lease`.
    fn profile(&self, rollout: Option<Rollout>, lease: &str) -> Profile {
        let p = Profile::new().route53(self.pair.route()).alb(self.front.route()).state_leased(&self.table, lease);
        match rollout {
            Some(r) => p.rollout(r),
            None => p,
        }
    }

    fn write(&self, name: &str, profile: Profile) {
        self.w.write(name, &profile);
    }

    /// (ALB blue, ALB green, Route53 blue, Route53 green), read around any proxy.
    async fn weights(&self) -> (i64, i64, i64, i64) {
        let (ab, ag) = self.front.weights().await;
        let (rb, rg) = self.pair.weights().await;
        (i64::from(ab), i64::from(ag), rb, rg)
    }

    /// `cutover` talking to AWS through `proxy`.
    fn cutover(&self, proxy: &Proxy) -> std::process::Command {
        let mut cmd = self.w.std_cutover();
        cmd.env("AWS_ENDPOINT_URL", &proxy.endpoint).stdout(Stdio::piped()).stderr(Stdio::piped());
        cmd
    }

    /// The rollout of profile `name` completed: all traffic on green, and recorded so.
    async fn assert_completed(&self, name: &str, what: &str) {
        assert_eq!(self.weights().await, (0, 100, 0, 100), "{what}");
        let status = self.json(&["-p", name, "-o", "json", "status"]);
        assert_eq!(status["rollout"]["status"], "completed", "{what}");
        assert_eq!(status["live"], "green", "{what}");
    }

    fn json(&self, args: &[&str]) -> serde_json::Value {
        let (out, _) = expect(self.w.cutover().args(args), 0);
        crate::json(&out)
    }
}

/// Waits until the proxy has nothing in flight: every write sent has landed or was refused.
async fn settled(proxy: &Proxy) {
    wait_until(30, "the calls in flight to end", || async { proxy.in_flight() == 0 }).await;
}

/// Whether a write gives green (its target group, or its weighted record set) any traffic.
fn raises_green(call: &Call, green_tg: &str) -> bool {
    match call.operation.as_str() {
        "ModifyListener" | "ModifyRule" => {
            let pairs: Vec<(String, String)> = call
                .body
                .split('&')
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| (percent_decode(k), percent_decode(v)))
                .collect();
            pairs.iter().filter(|(k, v)| k.ends_with(".TargetGroupArn") && v == green_tg).any(|(k, _)| {
                let weight = format!("{}Weight", k.trim_end_matches("TargetGroupArn"));
                pairs.iter().any(|(k2, v2)| *k2 == weight && v2.parse::<i64>().unwrap_or(0) > 0)
            })
        }
        "ChangeResourceRecordSets" => {
            let doc = roxmltree::Document::parse(&call.body).expect("a change batch");
            doc.descendants().filter(|n| n.tag_name().name() == "Change").any(|c| {
                let text = |node: roxmltree::Node, name: &str| {
                    node.descendants()
                        .find(|n| n.tag_name().name() == name)
                        .and_then(|n| n.text())
                        .unwrap_or("")
                        .to_string()
                };
                let action = text(c, "Action");
                (action == "CREATE" || action == "UPSERT")
                    && text(c, "SetIdentifier") == "green"
                    && text(c, "Weight").parse::<i64>().unwrap_or(0) > 0
            })
        }
        _ => false,
    }
}

/// AWS-like round trips: 10–40 ms a call, writes 100–300 ms (in flight until they land).
fn aws_latency(seed: u64) -> Config {
    Config {
        seed,
        latency: Latency::between(Duration::from_millis(10), Duration::from_millis(40)),
        write_latency: Some(Latency::between(Duration::from_millis(100), Duration::from_millis(300))),
        ..Config::default()
    }
}

/// Stages 10, 50, 100 baked `bake`, polled every `poll`, no DNS floor.
fn stages(bake: &str, poll: &str) -> Rollout {
    Rollout::new(&[10.0, 50.0, 100.0]).bake(bake).poll(poll).dns_ttl("0s")
}

/// One lane of races: a rollout, and `rollback` fired at one of its first writes while it is in
/// flight, at a seeded moment. Returns how many of the rollout's writes toward green landed after
/// the rollback was fired (the races that really were races).
async fn race_lane(lane: u64, races: u64) -> usize {
    let rig = Rig::new().await;
    let proxy = proxy(aws_latency(lane));
    let mut late = 0;
    for race in 0..races {
        let seed = lane * 1000 + race;
        let mut rng = fastrand::Rng::with_seed(seed);
        // One of stage 1's or stage 2's writes (two each: the Route53 batch and the listener).
        let target = rng.u64(1..=4);
        let delay = Duration::from_millis(rng.u64(0..250));
        let name = format!("race{race}");
        rig.write(&name, rig.profile(Some(stages("300ms", "50ms").max_hold("30s")), "10s"));
        assert_eq!(rig.weights().await, (100, 0, 100, 0), "race {seed} starts from blue");

        let base = proxy.writes_started();
        let rollout = rig.cutover(&proxy).args(["-p", &name, "rollout"]).spawn().unwrap();
        wait_until(30, "the aimed-at write to be in flight", || async { proxy.writes_started() >= base + target })
            .await;
        tokio::time::sleep(delay).await;
        let fired = Instant::now();
        let rollback = rig.cutover(&proxy).args(["-p", &name, "rollback"]).spawn().unwrap();
        let (code, rb_out, rb_err) = finish(rollback, 60).await;
        let returned = Instant::now();
        assert_eq!(code, 0, "race {seed}: rollback exits 0\n{rb_out}\n{rb_err}");
        let (code, out, err) = finish(rollout, 60).await;
        assert_eq!(code, 5, "race {seed}: the rollout exits 5\n{out}\n{err}");
        settled(&proxy).await;
        // Everything a failure needs to be understood: both runs' words and every write.
        let story = || {
            let writes: Vec<String> = proxy
                .calls()
                .iter()
                .filter(|c| c.is_write())
                .map(|c| {
                    let at = |t: Option<Instant>| {
                        t.map(|t| format!("{:+}ms", t.duration_since(fired).as_millis() as i64)).unwrap_or("-".into())
                    };
                    format!(
                        "  {} {} applied={} landed {} green↑={}",
                        c.id,
                        c.operation,
                        c.applied,
                        at(c.forwarded),
                        raises_green(c, &rig.front.green)
                    )
                })
                .collect();
            format!(
                "rollback returned {}ms after it was fired\n--- rollback:\n{rb_out}{rb_err}--- rollout:\n{err}--- writes:\n{}",
                returned.duration_since(fired).as_millis(),
                writes.join("\n")
            )
        };

        let calls = proxy.calls();
        let landed_after = |t: Instant| {
            calls
                .iter()
                .filter(|c| c.is_write() && c.applied && c.forwarded.is_some_and(|f| f > t))
                .filter(|c| raises_green(c, &rig.front.green))
                .count()
        };
        assert_eq!(
            landed_after(returned),
            0,
            "race {seed}: a write raising green landed after rollback returned\n{}",
            story()
        );
        late += landed_after(fired);
        assert_eq!(rig.weights().await, (100, 0, 100, 0), "race {seed}: all traffic on blue\n{}", story());
        let status = rig.json(&["-p", &name, "-o", "json", "status"]);
        assert_eq!(status["rollout"]["status"], "aborted", "race {seed}");
        assert_eq!(status["live"], "blue", "race {seed}");
        proxy.clear();
    }
    late
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rollback_wins_every_race_against_writes_in_flight() {
    let lanes = futures::future::join_all((1..=4).map(|lane| race_lane(lane, 5))).await;
    let late: usize = lanes.iter().sum();
    eprintln!("20 races; rollout writes toward green that landed after the rollback was fired: {late}");
    assert!(late > 0, "no race had a write landing after the rollback started: the test does not aim right");
}

/// A whole rollout with half of all calls throttled: the SDK retries, and what still fails is
/// tried again at the next poll.
async fn storm(seed: u64) -> (usize, usize) {
    let rig = Rig::new().await;
    let alarm = unique("storm-green-");
    rig.w.aws.alarm(&alarm).await;
    rig.w.aws.alarm(&alarm.replace("green", "blue")).await;
    let profile = rig
        .profile(Some(stages("300ms", "100ms").max_hold("2m")), "30s")
        .gate(Gate::alarm(&[&alarm.replace("green", "{side}")]))
        .gate(Gate::target_health());
    rig.write("storm", profile);
    let proxy = proxy(Config {
        seed,
        latency: Latency::between(Duration::from_millis(5), Duration::from_millis(20)),
        throttle: 0.5,
        ..Config::default()
    });
    let child = rig.cutover(&proxy).args(["-p", "storm", "rollout"]).spawn().unwrap();
    let (code, out, err) = finish(child, 400).await;
    assert_eq!(code, 0, "seed {seed}: the rollout completes through the storm\n{out}\n{err}");
    rig.assert_completed("storm", &format!("seed {seed}")).await;
    let calls = proxy.calls();
    (calls.len(), calls.iter().filter(|c| c.fault == Some("throttling")).count())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rollout_completes_through_a_throttle_storm() {
    let runs = futures::future::join_all((11..=15).map(storm)).await;
    for (seed, (calls, throttled)) in (11..=15).zip(&runs) {
        eprintln!("seed {seed}: {throttled} of {calls} calls throttled");
        assert!(*throttled * 10 >= *calls * 4, "seed {seed}: the storm throttled {throttled} of {calls}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_observed_split_and_the_safety_net_hold_through_aws_like_latency_and_throttling() {
    // The kit: AWS-like latency, a fifth of the calls throttled, the load balancers' minutes
    // published a minute late, health checks evaluated from the alarms (whose states the test
    // keeps); cutover on its clock at ×20.
    let config = Config {
        clock: Clock::scaled(20.0),
        metrics: Some(Publish::After { delay: Duration::from_secs(60), jitter: Duration::from_secs(15) }),
        health_checks: Some(Duration::from_secs(30)),
        ..aws_latency(21)
    };
    let (_, kit, w) = crate::kit::kit(config).await;
    let rig = Rig::on(w).await;
    // The set-up made, a fifth of the calls throttled from now on.
    kit.set(|c| c.throttle = 0.2);
    let alarm = unique("seen-green-");
    rig.w.aws.alarm(&alarm).await;
    rig.w.aws.alarm(&alarm.replace("green", "blue")).await;
    // Clients of both routes: the record's resolve it (following its weights and the alias's
    // TTL), the ALB's follow its listener's weights.
    kit.clients().start(App::dns("dns", &rig.pair.zone_id, &rig.pair.record, 20.0), None);
    kit.clients().start(App::load_balancer("alb", &rig.front.lb, 20.0), None);
    let rollout = Rollout::new(&[10.0, 50.0, 100.0]).bake("1m").poll("10s").max_hold("20m").safety_net(true);
    let profile = rig
        .profile(Some(rollout), "1m")
        .gate(Gate::alarm(&[&alarm.replace("green", "{side}")]))
        .observe(Observe::new().tolerance(5.0));
    rig.write("seen", profile);
    let mut cmd = rig.cutover(&kit);
    cmd.envs(kit.clock().faketime_env().expect("libfaketime"));
    let child = cmd.args(["-p", "seen", "-o", "json", "rollout"]).spawn().unwrap();
    // The test reads the records around the kit (its own reads are not throttled).
    let direct = Records { aws: Aws::new(crate::emulator::endpoint()).await, ..rig.pair.clone() };
    let ((code, out, err), checks) = watch_checks(&direct, child, 240).await;
    kit.set(|c| c.throttle = 0.0);
    let writes: Vec<String> = kit
        .calls()
        .iter()
        .filter(|c| c.is_write())
        .map(|c| format!("{} {} applied={} fault={:?}: {}", c.operation, c.status, c.applied, c.fault, c.body))
        .collect();
    assert_eq!(code, 0, "{out}\n{err}\nwrites:\n{}", writes.join("\n"));
    assert_eq!(rig.weights().await, (0, 100, 0, 100));
    assert!(err.contains("observe PASS") && err.contains("10% intended"), "{err}");
    // The net rode on the green record during the rollout, and is gone: off the records, deleted.
    assert!(!checks.is_empty(), "no health check was seen on the green record during the rollout");
    let left: Vec<String> = rig.w.aws.health_checks().await.into_iter().map(|(id, _)| id).collect();
    for id in &checks {
        assert!(!left.contains(id), "health check {id} was left behind");
    }
    for side in ["blue", "green"] {
        assert_eq!(rig.pair.health_check(side).await, None);
    }
    let calls = kit.calls();
    let throttled = calls.iter().filter(|c| c.fault == Some("throttling")).count();
    let counted = calls.iter().filter(|c| c.operation == "GetMetricData").count();
    eprintln!("{throttled} of {} calls throttled; {counted} GetMetricData calls", calls.len());
    assert!(throttled > 0, "the proxy throttled nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stage_write_that_timed_out_but_landed_is_not_undone_when_the_safety_net_is_tried_again() {
    let rig = Rig::new().await;
    let alarm = unique("late-");
    rig.w.aws.alarm(&alarm).await;
    // Writes take 2 s, the write window is 1 s (half the 2 s lease): stage 1's write times out
    // at cutover, and lands all the same.
    let proxy = proxy(Config { write_latency: Some(Latency::fixed(Duration::from_secs(2))), ..Config::default() });
    let rollout = Rollout::new(&[10.0, 100.0]).bake("1s").poll("200ms").max_hold("1m").safety_net(true).dns_ttl("0s");
    let profile = Profile::new()
        .route53(rig.pair.route())
        .rollout(rollout)
        .gate(Gate::alarm(&[&alarm]))
        .state_leased(&rig.table, "2s");
    rig.write("late", profile);
    let child = rig.cutover(&proxy).args(["-p", "late", "rollout"]).spawn().unwrap();
    // The net's write, then stage 1's: once that one is on its way, writes are quick again.
    wait_until(30, "stage 1's write to be sent", || async { proxy.writes_started() >= 2 }).await;
    proxy.set(|c| c.write_latency = Some(Latency::fixed(Duration::from_millis(50))));
    let (code, out, err) = finish(child, 60).await;
    let calls = proxy.calls();
    let writes: Vec<String> = calls
        .iter()
        .filter(|c| c.is_write())
        .map(|c| format!("{} {} applied={}: {}", c.operation, c.status, c.applied, c.body))
        .collect();
    assert_eq!(code, 0, "{out}\n{err}\nwrites:\n{}", writes.join("\n"));
    assert!(err.contains("timed out"), "stage 1's write timed out at cutover: {err}");
    assert_eq!(rig.pair.weights().await, (0, 100));
    // One health check for the net: trying the attachment again found it on the record.
    let made = calls.iter().filter(|c| c.operation == "CreateHealthCheck" && c.applied).count();
    assert_eq!(made, 1, "{}", writes.join("\n"));
    for side in ["blue", "green"] {
        assert_eq!(rig.pair.health_check(side).await, None);
    }
}

/// Every health check seen on the records until `child` exits (at most `secs`), and its exit.
async fn watch_checks(pair: &Records, child: std::process::Child, secs: u64) -> ((i32, String, String), Vec<String>) {
    let mut child = child;
    let mut checks = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(secs);
    while child.try_wait().unwrap().is_none() && Instant::now() < deadline {
        for side in ["blue", "green"] {
            if let Some(id) = pair.health_check(side).await
                && !checks.contains(&id)
            {
                checks.push(id);
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    (finish(child, 30).await, checks)
}

/// Where in a rollout (stages 10, 50, 100 over two routes: two writes a stage) a kill lands.
#[derive(Clone, Copy, Debug)]
enum Moment {
    /// The rollout recorded and its lease taken, before any write: a webhook gate holds it
    /// before the first shift.
    Held,
    /// While stage `n`'s first write is in flight.
    InFlight(usize),
    /// While stage `n` bakes, both its writes landed.
    Baking(usize),
    /// Stage `n`'s zone written, its listener's write throttled and waiting to be tried again:
    /// the routes at two stages.
    Throttled(usize),
}

/// One kill: a rollout killed with SIGKILL at `moment`; every route must hold a split cutover
/// wrote (the one the moment aims at, where it decides it), and the next run must finish the
/// rollout without `--force`.
async fn kill_at(lane: u64, moment: Moment) -> String {
    use wiremock::matchers::method;
    use wiremock::{Mock, MockServer, ResponseTemplate};

    let rig = Rig::new().await;
    // Some calls throttled: a route's write then waits out the SDK's backoff while the other
    // route's has landed — the window in which a kill leaves the routes at two stages.
    let proxy = proxy(Config { throttle: 0.15, ..aws_latency(100 + lane) });
    // Bakes of 700 ms: every kill lands while the rollout runs, never after it has ended.
    let mut profile = rig.profile(Some(stages("700ms", "50ms").max_hold("30s")), "1s");
    let hook = MockServer::start().await;
    if let Moment::Held = moment {
        Mock::given(method("POST")).respond_with(ResponseTemplate::new(500)).mount(&hook).await;
        profile = profile.gate(Gate::webhook(&format!("{}/confirm", hook.uri())));
    }
    rig.write("kill", profile);
    let written = [(100, 0), (90, 10), (50, 50), (0, 100)];
    let mut child = rig.cutover(&proxy).args(["-p", "kill", "rollout"]).spawn().unwrap();
    let mut rng = fastrand::Rng::with_seed(lane);
    let landed = |op: Option<&str>| {
        proxy.calls().iter().filter(|c| c.is_write() && c.applied && op.is_none_or(|o| c.operation == o)).count()
    };
    match moment {
        Moment::Held => {
            let asked = || async { hook.received_requests().await.map(|r| r.len()).unwrap_or(0) >= 2 };
            wait_until(30, "the webhook to hold the rollout", asked).await;
        }
        Moment::InFlight(stage) => {
            // The stage before has landed and baking takes 700 ms: the next write is this stage's.
            wait_until(30, "the stage before to land", || async { landed(None) >= 2 * (stage - 1) }).await;
            let before = proxy.writes_started();
            wait_until(30, "the stage's write to be sent", || async { proxy.writes_started() > before }).await;
            // Writes take 100–300 ms, landing at a random point of it.
            tokio::time::sleep(Duration::from_millis(rng.u64(0..100))).await;
        }
        Moment::Baking(stage) => {
            wait_until(30, "the stage's writes to land", || async { landed(None) >= 2 * stage }).await;
            tokio::time::sleep(Duration::from_millis(rng.u64(50..400))).await;
        }
        Moment::Throttled(stage) => {
            wait_until(30, "the stage before to land", || async { landed(None) >= 2 * (stage - 1) }).await;
            let from = Instant::now();
            proxy.set(|c| (c.throttle, c.fault_operations) = (1.0, vec!["ModifyListener".into()]));
            let throttled = || {
                proxy
                    .calls()
                    .iter()
                    .any(|c| c.operation == "ModifyListener" && c.fault == Some("throttling") && c.started > from)
            };
            wait_until(30, "the zone written and the listener throttled", || async {
                throttled() && landed(Some("ChangeResourceRecordSets")) >= stage
            })
            .await;
        }
    }
    let _ = child.kill();
    let status = child.wait().unwrap();
    assert!(!status.success(), "kill {moment:?}: the rollout ended by itself before its kill");
    settled(&proxy).await;
    proxy.set(|c| (c.throttle, c.fault_operations) = (0.15, Vec::new()));
    let (ab, ag, rb, rg) = rig.weights().await;
    assert!(
        written.contains(&(ab, ag)) && written.contains(&(rb, rg)),
        "kill {moment:?} ({status}): a split cutover never writes: alb {ab}:{ag}, route53 {rb}:{rg}"
    );
    match moment {
        Moment::Held => assert_eq!((ab, ag, rb, rg), (100, 0, 100, 0), "no write before the first shift"),
        Moment::Throttled(n) => {
            assert_eq!(((rb, rg), (ab, ag)), (written[n], written[n - 1]), "the routes at two stages")
        }
        _ => {}
    }

    // The next run, once the killed run's lease has run out, finishes without --force.
    hook.reset().await;
    Mock::given(method("POST")).respond_with(ResponseTemplate::new(200)).mount(&hook).await;
    wait_until(20, "the killed run's lease to run out", || async {
        let (code, out, _) = run(rig.w.cutover().args(["-p", "kill", "-o", "json", "status"]));
        code == 0 && crate::json(&out)["rollout"]["lease_holder"].is_null()
    })
    .await;
    let next = rig.cutover(&proxy).args(["-p", "kill", "rollout"]).spawn().unwrap();
    let (code, out, err) = finish(next, 60).await;
    assert_eq!(code, 0, "kill {moment:?}: the next run converges\n{out}\n{err}");
    rig.assert_completed("kill", &format!("kill {moment:?}")).await;
    let first = err.lines().next().unwrap_or(out.lines().next().unwrap_or_default());
    format!("kill {moment:?}: alb {ab}:{ag}, route53 {rb}:{rg}; next run: {first}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rollout_killed_at_any_moment_leaves_a_split_cutover_wrote_and_the_next_run_finishes_it() {
    // Each moment a kill can meet, in a lane of its own: held before any write; a stage's writes
    // in flight; the routes at two stages (one written, the other throttled); a bake; the last
    // stage's writes in flight.
    let moments = [
        Moment::Held,
        Moment::InFlight(1),
        Moment::Throttled(1),
        Moment::Baking(1),
        Moment::InFlight(2),
        Moment::Throttled(2),
        Moment::InFlight(3),
    ];
    let kills = futures::future::join_all(moments.into_iter().zip(1..).map(|(m, lane)| kill_at(lane, m))).await;
    eprintln!("{}", kills.join("\n"));
}

/// What a refusal must leave as it was: the state item (its version moves on any write), the
/// audit trail, and every record set and forward action the profile names.
async fn snapshot(
    rig: &Rig,
    profile: &str,
) -> (serde_json::Value, usize, Vec<aws_sdk_route53::types::ResourceRecordSet>, Vec<(String, i32)>) {
    let status = rig.json(&["-p", profile, "-o", "json", "status"]);
    let history = rig.json(&["-p", profile, "-o", "json", "history", "--limit", "1000"]);
    (
        status["rollout"].clone(),
        history["entries"].as_array().unwrap().len(),
        rig.w.aws.record_sets(&rig.pair.zone_id, &rig.pair.record).await,
        rig.w.aws.forward_weights(&rig.front.listener, None).await,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_refusal_leaves_the_state_the_audit_trail_and_every_record_untouched() {
    let rig = Rig::new().await;
    let rollout = || Some(stages("1h", "50ms"));

    // Before any rollout: a gate naming an alarm that does not exist (exit 2).
    rig.write("fresh", rig.profile(rollout(), "30s").gate(Gate::alarm(&["no-such-{side}"])));
    let before = snapshot(&rig, "fresh").await;
    assert!(before.0.is_null(), "no rollout recorded yet");
    for cmd in [&["rollout"][..], &["advance"][..]] {
        let (_, err) = expect(rig.w.cutover().args(["-p", "fresh"]).args(cmd), 2);
        assert!(err.contains("no-such-green"), "{err}");
        assert_eq!(snapshot(&rig, "fresh").await, before, "{cmd:?} refused, and wrote nothing");
    }

    // A rollout in progress, its run killed: the lease is still held (exit 5 for everyone).
    rig.write("held", rig.profile(rollout(), "1h"));
    let mut child = rig
        .w
        .std_cutover()
        .args(["-p", "held", "rollout"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_until(30, "the first stage", || async { rig.weights().await == (90, 10, 90, 10) }).await;
    child.kill().unwrap();
    child.wait().unwrap();
    let before = snapshot(&rig, "held").await;
    let refusals: [(&[&str], i32, &str); 6] = [
        (&["rollout"], 5, "another run holds"),
        (&["advance"], 5, "another run holds"),
        (&["promote"], 5, "another run holds"),
        (&["set", "green=50", "--no-gates"], 5, "would fight it"),
        (&["set", "purple=50"], 2, "unknown side"),
        (&["rollout", "--to", "blue"], 5, "another run holds"),
    ];
    for (args, code, says) in refusals {
        let (_, err) = expect(rig.w.cutover().args(["-p", "held"]).args(args), code);
        assert!(err.contains(says), "{args:?}: {err}");
        assert_eq!(snapshot(&rig, "held").await, before, "{args:?} refused, and wrote nothing");
    }

    // A rollout whose run died and whose lease ran out, but the live split is not what it
    // recorded: drift (exit 6).
    rig.write("drifted", rig.profile(rollout(), "1s"));
    let mut child = rig
        .w
        .std_cutover()
        .args(["-p", "drifted", "rollout"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_until(30, "the rollout to take over", || async {
        let (code, out, _) = run(rig.w.cutover().args(["-p", "drifted", "-o", "json", "status"]));
        code == 0 && !serde_json::from_str::<serde_json::Value>(&out).unwrap()["rollout"]["lease_holder"].is_null()
    })
    .await;
    child.kill().unwrap();
    child.wait().unwrap();
    wait_until(20, "the lease to run out", || async {
        rig.json(&["-p", "drifted", "-o", "json", "status"])["rollout"]["lease_holder"].is_null()
    })
    .await;
    rig.front.set_weights(70, 30).await;
    let before = snapshot(&rig, "drifted").await;
    for args in [&["rollout"][..], &["advance"][..], &["promote"][..]] {
        let (_, err) = expect(rig.w.cutover().args(["-p", "drifted"]).args(args), 6);
        assert!(err.contains("drift") && err.contains("live 70:30"), "{args:?}: {err}");
        assert_eq!(snapshot(&rig, "drifted").await, before, "{args:?} refused, and wrote nothing");
    }
}
