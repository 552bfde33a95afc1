//! Verdicts on metrics as AWS publishes them (issue 22): by the minute, late, only with traffic,
//! shared with other apps — and the safety net as Route53 runs it. Every test runs on the kit's
//! realistic metrics, alarms, health checks and clients, cutover on the kit's clock (libfaketime),
//! 30–40 times as fast as real time.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_cloudwatch::types::{ComparisonOperator, Dimension, MetricDataQuery, MetricStat, Statistic};
use serde_json::Value;

use crate::emulator::unique;
use crate::fixtures::Aws;
use crate::kit::{Lb, alarm_state, cutover, errors_alarm, host_rule, kit, secs, served, until};
use crate::proxy::{App, Backend, Clock, Config, Proxy, Publish};
use crate::scenario::{AlbRoute, Gate, Observe, Profile, Records, Rollout, Route53};
use crate::{World, wait_until};

/// A run's JSON events (`--log-format json`), each with its `ts` on cutover's (the kit's) clock.
struct Run {
    code: i32,
    events: Vec<Value>,
    stderr: String,
}

impl Run {
    /// Events named `name` (`stage-applied`, `gates-read`, …) of `stage`, oldest first.
    fn of(&self, name: &str, stage: u64) -> Vec<&Value> {
        self.events.iter().filter(|e| e["event"] == name && e["stage"] == stage).collect()
    }

    /// The verdict of reading `gate` in a `gates-read` event.
    fn verdict<'a>(event: &'a Value, gate: &str) -> &'a str {
        event["readings"]
            .as_array()
            .and_then(|r| r.iter().find(|r| r["gate"] == gate))
            .and_then(|r| r["verdict"].as_str())
            .unwrap_or("")
    }
}

fn ts(event: &Value) -> SystemTime {
    humantime::parse_rfc3339(event["ts"].as_str().expect("ts")).expect("an RFC 3339 ts")
}

/// Runs `cutover ARGS` on the kit's clock in the background, its events and output in files (a
/// long rollout's events would fill a pipe), killing it after `real_secs`.
async fn run(w: &World, kit: &Proxy, args: &[&str], real_secs: u64) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let (out, err) = (dir.path().join("out"), dir.path().join("err"));
    let mut child = cutover(w, kit)
        .args(["--log-format", "json"])
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(real_secs);
    let code = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status.code().unwrap_or(-1);
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("cutover {args:?} did not exit within {real_secs}s\n{}", std::fs::read_to_string(&err).unwrap());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let stderr = std::fs::read_to_string(&err).unwrap();
    let events =
        stderr.lines().filter_map(|l| serde_json::from_str::<Value>(l).ok()).filter(|e| e.is_object()).collect();
    Run { code, events, stderr }
}

/// The start of the minute after `t` (or `t`, at a whole minute).
fn next_minute(t: SystemTime) -> SystemTime {
    let s = t.duration_since(UNIX_EPOCH).unwrap();
    let whole = s.as_secs().div_ceil(60) * 60;
    UNIX_EPOCH + Duration::from_secs(if s.subsec_nanos() > 0 && whole == s.as_secs() { whole + 60 } else { whole })
}

/// An ALB route of its own: one ALB whose listener forwards to blue (100) and green (0), its
/// clients sending `rate` requests a second.
async fn alb_route(w: &World, kit: &Proxy, rate: f64) -> (Lb, String) {
    let lb = Lb::new(w, false).await;
    let (vpc, _) = w.aws.network().await;
    let green = w.aws.target_group(&unique("g"), &vpc, &["10.0.2.9"]).await;
    w.aws.set_action(&lb.listener, None, Aws::forward(&[(&lb.tg, 100), (&green, 0)], None)).await;
    kit.clients().start(App::load_balancer("app", &lb.arn, rate), None);
    (lb, green)
}

const POLL: u64 = 10;

/// A default `[observe]` rollout with load balancer metrics published `delay` late (jitter up to
/// 15 s): each stage is verified once its first whole minute after the shift is published — not
/// before, and no later than shift + 60 s (the next whole minute) + 60 s (the minute) + delay +
/// jitter + one poll; a pending minute never restarts a bake.
async fn verified_as_published(delay: u64) {
    let publish = Publish::After { delay: secs(delay), jitter: secs(15) };
    let config = Config { metrics: Some(publish), ..Config::realistic(Clock::scaled(30.0), secs(delay)) };
    let (_, kit, w) = kit(config).await;
    let (lb, green) = alb_route(&w, &kit, 20.0).await;
    let rollout = Rollout::new(&[25.0, 100.0]).bake("2m").poll(format!("{POLL}s")).max_hold("20m");
    let profile = Profile::new().alb(AlbRoute::new(&lb.listener, &lb.tg, &green)).rollout(rollout);
    w.write("svc", &Profile { observe: Some(Observe::new()), ..profile });
    let run = run(&w, &kit, &["-p", "svc", "rollout"], 150).await;
    assert_eq!(run.code, 0, "delay {delay}s\n{}", run.stderr);
    assert_eq!(w.aws.forward_weights(&lb.listener, None).await, vec![(lb.tg.clone(), 0), (green.clone(), 100)]);
    for stage in [1, 2] {
        let applied = ts(run.of("stage-applied", stage)[0]);
        let reads: Vec<&Value> = run.of("gates-read", stage).into_iter().filter(|e| ts(e) >= applied).collect();
        let verified = reads.iter().find(|e| Run::verdict(e, "observe") == "pass").expect("verified");
        let at = ts(verified);
        // The first whole minute after the shift, published: not before…
        let earliest = next_minute(applied) + secs(60 + delay);
        assert!(
            at + secs(2) >= earliest,
            "delay {delay}s, stage {stage}: verified {:?} before its minute was published",
            earliest.duration_since(at)
        );
        // …and no later than its publication and a poll.
        let bound = secs(60 + 60 + delay + 15 + POLL + 5);
        let took = at.duration_since(applied).unwrap();
        assert!(took <= bound, "delay {delay}s, stage {stage}: verified {took:?} after the shift (bound {bound:?})");
        // Until then the reading was pending (no minute published), never a zero or a pass.
        let before: Vec<&str> = reads.iter().take_while(|e| ts(e) < at).map(|e| Run::verdict(e, "observe")).collect();
        assert!(before.contains(&"pending"), "delay {delay}s, stage {stage}: {before:?}");
        assert!(before.iter().all(|v| *v == "pending"), "delay {delay}s, stage {stage}: {before:?}");
        // From then on no reading stopped the bake: its countdown only went down.
        let after: Vec<&str> = reads.iter().filter(|e| ts(e) >= at).map(|e| Run::verdict(e, "observe")).collect();
        assert!(after.iter().all(|v| *v == "pass" || *v == "pending"), "delay {delay}s, stage {stage}: {after:?}");
        let left: Vec<u64> = run.of("baking", stage).iter().map(|e| e["remaining"].as_f64().unwrap() as u64).collect();
        assert!(left.windows(2).all(|w| w[1] <= w[0]), "delay {delay}s, stage {stage}: the bake restarted: {left:?}");
        eprintln!("delay {delay}s, stage {stage}: verified {}s after the shift", took.as_secs());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stage_is_verified_once_its_first_minute_is_published_with_publish_delays_of_60_120_and_180_s() {
    futures::join!(verified_as_published(60), verified_as_published(120), verified_as_published(180));
}

/// An alarm on `target_group` (of load balancer `lb_dim`)'s 5xx count that stays
/// INSUFFICIENT_DATA while nothing is published (`TreatMissingData` missing, the default).
async fn quiet_errors_alarm(w: &World, lb_dim: &str, target_group: &str) -> String {
    let name = unique("errors-");
    let tg_dim = target_group.rsplit(':').next().unwrap();
    w.aws
        .cw
        .put_metric_alarm()
        .alarm_name(&name)
        .namespace("AWS/ApplicationELB")
        .metric_name("HTTPCode_Target_5XX_Count")
        .dimensions(Dimension::builder().name("LoadBalancer").value(lb_dim).build())
        .dimensions(Dimension::builder().name("TargetGroup").value(tg_dim).build())
        .statistic(Statistic::Sum)
        .period(60)
        .evaluation_periods(1)
        .threshold(10.0)
        .comparison_operator(ComparisonOperator::GreaterThanThreshold)
        .send()
        .await
        .expect("PutMetricAlarm");
    name
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_shared_alb_another_apps_traffic_neither_meets_min_requests_nor_verifies_the_split() {
    let (clock, kit, w) = kit(Config::realistic(Clock::scaled(30.0), secs(60))).await;
    // Blue's ALB is the app's own; green's is shared: another app on its default action, the
    // app's host on a rule of its own.
    let blue = Lb::new(&w, false).await;
    let shared = Lb::new(&w, false).await;
    let (vpc, _) = w.aws.network().await;
    let green = w.aws.target_group(&unique("g"), &vpc, &["10.0.3.9"]).await;
    let records = Records::alias_to(&w.aws, (100, 0), (&blue.dns, &shared.dns), &blue.zone).await;
    let host = records.record.trim_end_matches('.').to_string();
    host_rule(&w, &shared.listener, &host, &green).await;
    kit.clients().start(App::load_balancer("other", &shared.arn, 500.0 / 60.0).host("other.example.test"), None);
    kit.clients().start(App::dns("api", &records.zone_id, &records.record, 0.0), None);
    let alarm = quiet_errors_alarm(&w, &shared.dim(), &green).await;
    let rollout = Rollout::new(&[50.0, 100.0]).bake("1m").poll("10s").max_hold("1h");
    let gate = Gate::alarm(&[&alarm]).min_requests(100).window("2m");
    let profile = Profile::new().route53(records.route()).rollout(rollout).gate(gate);
    w.write("svc", &Profile { observe: Some(Observe::new()), ..profile });

    let background = run(&w, &kit, &["-p", "svc", "rollout"], 150);
    let watch = async {
        // Ten minutes of the other app's 500 requests a minute and none of the app's: the
        // stage is not verified and min_requests is not met.
        wait_until(60, "stage 1 applied", || async { records.weight("green").await == 50 }).await;
        let applied = clock.now();
        until(&clock, applied + secs(10 * 60)).await;
        assert_eq!(records.weights().await, (50, 50), "held at stage 1");
        let (_, others) = served(&kit, "other", "", (applied, applied + secs(10 * 60)));
        assert!(others >= 4900, "the other app's traffic went on: {others}");
        // The app's clients arrive.
        kit.clients().rate("api", 20.0);
        applied
    };
    let (run, applied) = futures::join!(background, watch);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(records.weights().await, (0, 100));
    let quiet = applied + secs(10 * 60);
    let reads = run.of("gates-read", 1);
    let (silent, busy): (Vec<&&Value>, Vec<&&Value>) = reads.iter().partition(|e| ts(e) < quiet);
    assert!(silent.len() >= 20, "{}", silent.len());
    for e in &silent {
        assert_ne!(Run::verdict(e, "observe"), "pass", "{e}");
        assert_ne!(Run::verdict(e, "alarm#1"), "pass", "{e}");
    }
    let last = silent.last().unwrap();
    let observe = last["readings"].as_array().unwrap().iter().find(|r| r["gate"] == "observe").unwrap();
    assert!(observe["detail"].as_str().unwrap().contains("no requests counted"), "{observe}");
    let gate = last["readings"].as_array().unwrap().iter().find(|r| r["gate"] == "alarm#1").unwrap();
    assert!(gate["detail"].as_str().unwrap().contains("only 0 of min_requests 100"), "{gate}");
    let passed = busy.iter().find(|e| Run::verdict(e, "observe") == "pass" && Run::verdict(e, "alarm#1") == "pass");
    let passed = passed.expect("both passed once the app's target group served");
    let gate = passed["readings"].as_array().unwrap().iter().find(|r| r["gate"] == "alarm#1").unwrap();
    assert!(gate["detail"].as_str().unwrap().contains("min_requests 100"), "{gate}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alias_to_an_nlb_is_refused_by_observe_and_min_requests_and_bakes_at_least_its_ttl() {
    let (_, kit, w) = kit(Config::realistic(Clock::scaled(30.0), secs(60))).await;
    let (blue, green) = (Lb::new(&w, true).await, Lb::new(&w, true).await);
    let records = Records::alias_to(&w.aws, (100, 0), (&blue.dns, &green.dns), &blue.zone).await;
    let rollout = Rollout::new(&[50.0, 100.0]).bake("10s").poll("5s");
    let observed =
        Profile { observe: Some(Observe::new()), ..Profile::new().route53(records.route()).rollout(rollout.clone()) };
    w.write("observed", &observed);
    let alarm = unique("nlb-");
    w.aws.alarm(&alarm).await;
    w.write(
        "counted",
        &Profile::new().route53(records.route()).rollout(rollout.clone()).gate(Gate::alarm(&[&alarm]).min_requests(10)),
    );
    w.write("plain", &Profile::new().route53(records.route()).rollout(rollout));
    for profile in ["observed", "counted"] {
        kit.clear();
        let run = run(&w, &kit, &["-p", profile, "rollout"], 60).await;
        assert_eq!(run.code, 2, "{profile}\n{}", run.stderr);
        assert!(run.stderr.contains("a Network Load Balancer publishes flows, in AWS/NetworkELB"), "{}", run.stderr);
        assert!(run.stderr.contains("hint:"), "{}", run.stderr);
        assert_eq!(writes(&kit), Vec::<String>::new(), "{profile}");
        assert_eq!(records.weights().await, (100, 0));
    }
    let (code, out, err) = crate::run(cutover_cmd(&w, &kit).args(["-p", "plain", "validate"]));
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("baking 1m per stage"), "the records' DNS TTL bounds the bake: {out}");
}

/// `cutover ARGS` on the kit's clock, run without blocking the test's task.
async fn run_cmd(w: &World, kit: &Proxy, args: &[&str]) -> (i32, String, String) {
    let mut cmd = cutover(w, kit);
    cmd.args(args);
    crate::run_async(cmd).await
}

/// `cutover` on the kit's clock, as an assert_cmd command.
fn cutover_cmd(w: &World, kit: &Proxy) -> assert_cmd::Command {
    let mut cmd = assert_cmd::Command::from_std(cutover(w, kit));
    cmd.timeout(Duration::from_secs(60));
    cmd
}

/// The write calls the kit has seen (operation names), since it was last cleared.
fn writes(kit: &Proxy) -> Vec<String> {
    const WRITES: &[&str] = &[
        "ChangeResourceRecordSets",
        "CreateHealthCheck",
        "DeleteHealthCheck",
        "ChangeTagsForResource",
        "ModifyListener",
        "ModifyRule",
        "PutItem",
        "UpdateItem",
        "TransactWriteItems",
    ];
    kit.calls().into_iter().filter(|c| WRITES.contains(&c.operation.as_str())).map(|c| c.operation).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_safety_net_refuses_four_kinds_of_alarm_route53_cannot_watch_before_any_write() {
    // CloudWatch's semantics: a composite alarm is one (moto lists it among the metric alarms).
    let config = Config { cloudwatch_semantics: true, ..Config::realistic(Clock::scaled(30.0), secs(60)) };
    let (_, kit, w) = kit(config).await;
    let records = Records::own_albs(&w.aws).await;
    let base = unique("app-");
    let metric = || {
        aws_sdk_cloudwatch::types::Metric::builder()
            .namespace("AWS/ApplicationELB")
            .metric_name("HTTPCode_Target_5XX_Count")
            .build()
    };
    let put = |name: String| {
        w.aws
            .cw
            .put_metric_alarm()
            .alarm_name(name)
            .evaluation_periods(1)
            .threshold(1.0)
            .comparison_operator(ComparisonOperator::GreaterThanThreshold)
    };
    put(format!("{base}green-p99"))
        .namespace("AWS/ApplicationELB")
        .metric_name("TargetResponseTime")
        .extended_statistic("p99")
        .period(60)
        .send()
        .await
        .expect("p99 alarm");
    put(format!("{base}green-fast"))
        .namespace("AWS/ApplicationELB")
        .metric_name("RequestCount")
        .statistic(Statistic::Sum)
        .period(10)
        .send()
        .await
        .expect("10 s alarm");
    let stat = MetricStat::builder().metric(metric()).period(60).stat("Sum").build();
    put(format!("{base}green-ratio"))
        .metrics(MetricDataQuery::builder().id("e").expression("m * 2").return_data(true).build())
        .metrics(MetricDataQuery::builder().id("m").metric_stat(stat).return_data(false).build())
        .send()
        .await
        .expect("metric math alarm");
    let usable = format!("{base}green-5xx");
    put(usable.clone())
        .namespace("AWS/ApplicationELB")
        .metric_name("HTTPCode_Target_5XX_Count")
        .statistic(Statistic::Sum)
        .period(60)
        .send()
        .await
        .expect("usable alarm");
    w.aws
        .cw
        .put_composite_alarm()
        .alarm_name(format!("{base}green-composite"))
        .alarm_rule(format!("ALARM(\"{usable}\")"))
        .send()
        .await
        .expect("composite alarm");
    let alarms: Vec<String> =
        ["composite", "p99", "ratio", "fast", "5xx"].iter().map(|k| format!("{base}{{side}}-{k}")).collect();
    let alarms: Vec<&str> = alarms.iter().map(String::as_str).collect();
    let rollout = Rollout::new(&[50.0, 100.0]).bake("10s").poll("5s").safety_net(true).dns_ttl("0s");
    w.write("svc", &Profile::new().route53(records.route()).rollout(rollout).gate(Gate::alarm(&alarms)));
    kit.clear();
    let run = run(&w, &kit, &["-p", "svc", "rollout"], 60).await;
    assert_eq!(run.code, 2, "{}", run.stderr);
    for (alarm, why) in [
        ("composite", "a composite alarm"),
        ("p99", "an extended statistic"),
        ("ratio", "metric math"),
        ("fast", "its period is under a minute"),
    ] {
        let line = run
            .stderr
            .lines()
            .find(|l| l.contains(&format!("{base}green-{alarm}")))
            .unwrap_or_else(|| panic!("{alarm} not named\n{}", run.stderr));
        assert!(line.contains(why), "{alarm}: {line}");
    }
    assert!(!run.stderr.contains(&format!("{usable}:")), "the usable alarm is not refused\n{}", run.stderr);
    assert_eq!(writes(&kit), Vec::<String>::new());
    assert_eq!(records.weights().await, (100, 0));
}

/// The cutover health checks (CallerReference `cutover:<profile>…`) of a profile that exist, and
/// the record sets of `records` that carry a health check.
async fn leftovers(w: &World, profile: &str, records: &[&Records]) -> (Vec<String>, Vec<String>) {
    let out = w.aws.r53.list_health_checks().max_items(1000).send().await.expect("ListHealthChecks");
    let checks = out
        .health_checks()
        .iter()
        .filter(|c| c.caller_reference().starts_with(&format!("cutover:{profile}:")))
        .map(|c| c.id().to_string())
        .collect();
    let mut carried = Vec::new();
    for r in records {
        for side in ["blue", "green"] {
            if let Some(id) = r.health_check(side).await {
                carried.push(format!("{} {side}: {id}", r.record));
            }
        }
    }
    (checks, carried)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_profile_edited_mid_rollout_leaves_no_cutover_health_check_on_any_record() {
    let (_, kit, w) = kit(Config { cloudwatch_semantics: true, ..Config::default() }).await;
    let lanes = ["route-added", "zone-by-id", "net-off"].map(|edit| {
        let (w, kit, table) = (&w, &kit, unique("state-"));
        async move {
            let records = Records::own_albs(&w.aws).await;
            let other = Records::own_albs(&w.aws).await;
            let alarm = unique("net-");
            w.aws.alarm(&alarm).await;
            let name = unique("edit");
            let rollout = || Rollout::new(&[25.0, 100.0]).bake("1h").poll("5s").safety_net(true).dns_ttl("0s");
            let profile = |route: Route53, rollout: Rollout| {
                Profile::new().route53(route).rollout(rollout).gate(Gate::alarm(&[&alarm])).state(&table)
            };
            w.write(&name, &profile(records.route(), rollout()));
            let (code, _, err) = run_cmd(w, kit, &["-p", &name, "state", "init"]).await;
            assert_eq!(code, 0, "{edit}: {err}");
            let (code, _, err) = run_cmd(w, kit, &["-p", &name, "advance"]).await;
            assert_eq!(code, 0, "{edit}: {err}");
            assert_eq!(records.weights().await, (75, 25), "{edit}");
            assert!(records.health_check("green").await.is_some(), "{edit}: the net rides on green");
            // The edit, while the rollout is at stage 1.
            let edited = match edit {
                "route-added" => profile(records.route(), rollout()).route53(other.route()),
                "zone-by-id" => profile(records.route_by_id(), rollout()),
                _ => profile(records.route(), rollout().safety_net(false)),
            };
            w.write(&name, &edited);
            let (code, out, err) = run_cmd(w, kit, &["-p", &name, "rollback", "-y"]).await;
            assert_eq!(code, 0, "{edit}: {out}{err}");
            if edit == "net-off" {
                // The net is off now: the check found on the record is a stray, taken off with a warning.
                assert!(err.contains("`safety_net` is off, but the records carry cutover's health checks"), "{err}");
            }
            assert_eq!(records.weights().await, (100, 0), "{edit}");
            let (checks, carried) = leftovers(w, &name, &[&records, &other]).await;
            assert_eq!((checks, carried), (vec![], vec![]), "{edit}: cutover health checks left behind");
        }
    });
    let [a, b, c] = lanes;
    futures::join!(a, b, c);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_net_whose_second_check_fails_leaves_none_and_a_refusal_at_the_pre_shift_gates_writes_nothing() {
    // Route53's quota of active health checks: one left. (Alarms keep the states the test sets:
    // no evaluation from metrics.)
    let config = Config { health_check_quota: Some(1), cloudwatch_semantics: true, ..Config::default() };
    let (_, kit, w) = kit(config).await;
    let records = Records::own_albs(&w.aws).await;
    let (first, second) = (unique("net-a-"), unique("net-b-"));
    w.aws.alarm(&first).await;
    w.aws.alarm(&second).await;
    let rollout = Rollout::new(&[25.0, 100.0]).bake("10s").poll("5s").safety_net(true).dns_ttl("0s");
    // Two alarms: a check per alarm and a calculated one over both; the second is refused.
    w.write(
        "svc",
        &Profile::new().route53(records.route()).rollout(rollout.clone()).gate(Gate::alarm(&[&first, &second])),
    );
    for attempt in 1..=3 {
        let run = run(&w, &kit, &["-p", "svc", "rollout"], 60).await;
        assert_ne!(run.code, 0, "{}", run.stderr);
        assert!(run.stderr.contains("TooManyHealthChecks"), "{}", run.stderr);
        assert_eq!(records.weights().await, (100, 0), "no traffic moved without the net");
        let (checks, carried) = leftovers(&w, "svc", &[&records]).await;
        assert_eq!((checks, carried), (vec![], vec![]), "attempt {attempt}: what the build made is deleted");
    }
    let created = kit.calls().iter().filter(|c| c.operation == "CreateHealthCheck" && c.status == 201).count();
    assert_eq!(created, 3, "one check made (and deleted) per attempt: no leak grows");

    // A pre-shift gate that fails: nothing written, not even the net.
    w.aws.set_alarm(&first, "ALARM").await;
    kit.clear();
    let run = run(&w, &kit, &["-p", "svc", "rollout"], 60).await;
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert_eq!(writes(&kit), Vec::<String>::new(), "{}", run.stderr);
    assert_eq!(records.weights().await, (100, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_at_25_percent_while_the_candidates_alarm_fires_route53_sends_the_clients_away_within_ttl_and_interval()
{
    let config = Config { health_checks: Some(secs(10)), ..Config::realistic(Clock::scaled(30.0), secs(60)) };
    let (clock, kit, w) = kit(config).await;
    let (blue, green) = (Lb::new(&w, false).await, Lb::new(&w, false).await);
    let alarm = errors_alarm(&w, &green, (1, 1), 10.0).await;
    let records = Records::alias_to(&w.aws, (100, 0), (&blue.dns, &green.dns), &blue.zone).await;
    let rollout = Rollout::new(&[25.0, 100.0]).bake("1h").poll("10s").safety_net(true);
    w.write("svc", &Profile::new().route53(records.route()).rollout(rollout).gate(Gate::alarm(&[&alarm])));
    kit.clients().start(App::dns("api", &records.zone_id, &records.record, 50.0), None);
    wait_until(30, "the alarm OK", || async { alarm_state(&w, &alarm).await == "OK" }).await;

    let mut child = cutover(&w, &kit)
        .args(["-p", "svc", "rollout"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_until(60, "stage 1 live", || async { records.weight("green").await == 25 }).await;
    child.kill().unwrap();
    child.wait().unwrap();
    let check = records.health_check("green").await.expect("the net rides on green");
    until(&clock, clock.now() + secs(90)).await;
    let t = clock.now();
    let (g, all) = served(&kit, "api", &green.tg, (t - secs(30), t));
    assert!((0.18..=0.32).contains(&(g as f64 / all as f64)), "a quarter on green: {g} of {all}");

    // Green fails with no cutover process alive.
    kit.clients().backend(&green.tg, Backend::failing(0.5));
    wait_until(60, "green's alarm in ALARM", || async { alarm_state(&w, &alarm).await == "ALARM" }).await;
    let fired = clock.now();
    wait_until(30, "the net's check unhealthy", || async { kit.health_check(&check) == Some(false) }).await;
    let unhealthy = clock.now();
    assert!(unhealthy.duration_since(fired).unwrap() <= secs(10 + 5), "within Route53's 10 s interval");
    // Within the TTL of the answers (60 s) no client is sent to green.
    let gone = fired + secs(10 + 60 + 5);
    until(&clock, gone + secs(30)).await;
    let (g, all) = served(&kit, "api", &green.tg, (gone, gone + secs(30)));
    assert!(all > 0 && g == 0, "the clients left green within TTL + interval: {g} of {all}");
    assert_eq!(records.weights().await, (75, 25), "nothing moved the weights: Route53 did it");
}
