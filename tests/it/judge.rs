//! The judge (`judge` gates) on the kit's realistic metrics: simulated clients resolving the
//! weighted records, both sides' load balancers publishing their minutes a minute late, cutover on
//! the kit's clock. And shadow gates: read, reported and audited, never acted on.

use std::time::Instant;

use crate::fixtures::Aws;
use crate::freeze::Front;
use crate::kit::{Lb, kit, on_kit, secs, until};
use crate::proxy::{App, Backend, Clock, Config};
use crate::scenario::Records;
use crate::{World, expect, json};

/// A weighted record to a blue and a green ALB, each with a target group of its own; all traffic
/// on blue.
async fn sides(w: &World) -> (Lb, Lb, Records) {
    let (blue, green) = (Lb::new(w, false).await, Lb::new(w, false).await);
    let pair = Records::alias_to(&w.aws, (100, 0), (&blue.dns, &green.dns), &blue.zone).await;
    (blue, green, pair)
}

/// The `[[route53]]` table of the pair, as a profile writes it.
fn route(pair: &Records) -> String {
    format!("[[route53]]\nzone = \"{}\"\nrecord = \"{}\"\nblue = \"blue\"\ngreen = \"green\"\n", pair.zone, pair.record)
}

/// The judge's reading among a document's `readings`.
fn judge_reading(doc: &serde_json::Value) -> serde_json::Value {
    doc["readings"]
        .as_array()
        .and_then(|r| r.iter().find(|r| r["gate"] == "judge#1"))
        .unwrap_or_else(|| panic!("no judge#1 reading: {doc}"))
        .clone()
}

/// A judge reading in JSON carries DESIGN's keys.
#[track_caller]
fn has_judge_keys(r: &serde_json::Value) {
    for side in ["candidate", "stable"] {
        for key in ["requests", "errors", "rate"] {
            assert!(r[side][key].is_number(), "{side}.{key}: {r}");
        }
    }
    assert!(r["ratio"]["low"].is_number() && r["ratio"].get("high").is_some(), "ratio: {r}");
    assert!(r["minutes"].is_u64() && r["shadow"].is_boolean(), "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_candidate_five_times_as_bad_as_stable_is_rolled_back_by_the_judge_which_says_why() {
    let (clock, kit, w) = kit(Config::realistic(Clock::scaled(40.0), secs(60))).await;
    let (blue, green, pair) = sides(&w).await;
    w.profile(
        "svc",
        &format!(
            "{}[rollout]\nstages = [10, 50, 100]\nbake = \"5m\"\npoll = \"10s\"\nfailure_threshold = 2\nmax_hold = \"30m\"\n\n[[gate]]\ntype = \"judge\"\n",
            route(&pair)
        ),
    );
    kit.clients().backend(&blue.tg, Backend::failing(0.01));
    kit.clients().backend(&green.tg, Backend::failing(0.05));
    kit.clients().start(App::dns("api", &pair.zone_id, &pair.record, 50.0), None);

    let (started, began) = (Instant::now(), clock.now());
    let (code, out, err) = on_kit(&w, &kit, &["-p", "svc", "-o", "json", "rollout"], 120).await;
    let ended = clock.now();
    assert_eq!(code, 3, "rolled back by the judge\n{out}\n{err}");
    assert_eq!(w.aws.weight(&pair.zone_id, &pair.record, "green").await, 0);
    let doc = json(&out);
    assert_eq!((doc["outcome"].as_str(), doc["stage"].as_u64()), (Some("rolled-back"), Some(1)), "{doc}");
    let reason = doc["reason"].as_str().unwrap();
    assert!(reason.starts_with("gate judge#1 failed at stage 1/3 (green 10%): errors"), "{reason}");
    let r = judge_reading(&doc);
    has_judge_keys(&r);
    assert_eq!((r["verdict"].as_str(), r["shadow"].as_bool()), (Some("fail"), Some(false)), "{r}");
    let rate = |side: &str| r[side]["rate"].as_f64().unwrap();
    assert!((0.03..=0.07).contains(&rate("candidate")) && (0.005..=0.015).contains(&rate("stable")), "{r}");
    assert!(r["ratio"]["low"].as_f64().unwrap() > 1.5, "credibly worse by the ratio: {r}");
    assert!(r["minutes"].as_u64().unwrap() >= 1 && r["candidate"]["requests"].as_u64().unwrap() > 0, "{r}");
    // It could not decide before its warm-up (2m) and the first settled minute after it (2m
    // more); it decided within a few minutes of that.
    let took = ended.duration_since(began).unwrap();
    assert!(took >= secs(240) && took <= secs(900), "{took:?} on the kit's clock");
    eprintln!("judge FAIL: rolled back after {took:?} of kit time, {:.1}s real", started.elapsed().as_secs_f64());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_candidate_as_good_as_stable_passes_the_judge_and_the_rollout_completes() {
    let (clock, kit, w) = kit(Config::realistic(Clock::scaled(40.0), secs(60))).await;
    let (blue, green, pair) = sides(&w).await;
    w.profile(
        "svc",
        &format!(
            "{}[rollout]\nstages = [50, 100]\nbake = \"1m\"\npoll = \"10s\"\nfailure_threshold = 2\nmax_hold = \"30m\"\n\n[[gate]]\ntype = \"judge\"\n",
            route(&pair)
        ),
    );
    // Both sides err at 2 %: a noisy service, and a candidate no worse than it.
    kit.clients().backend(&blue.tg, Backend::failing(0.02));
    kit.clients().backend(&green.tg, Backend::failing(0.02));
    kit.clients().start(App::dns("api", &pair.zone_id, &pair.record, 100.0), None);

    let (started, began) = (Instant::now(), clock.now());
    let (code, out, err) = on_kit(&w, &kit, &["-p", "svc", "-o", "json", "rollout"], 120).await;
    let took = clock.now().duration_since(began).unwrap();
    assert_eq!(code, 0, "completed\n{out}\n{err}");
    assert_eq!(json(&out)["outcome"], "completed");
    assert_eq!(w.aws.weight(&pair.zone_id, &pair.record, "green").await, 100);
    // The judge passed stage 1 on its evidence, after some minutes pending or without enough data.
    let pass = err.lines().find(|l| l.contains("judge#1 PASS: errors")).unwrap_or_else(|| panic!("{err}"));
    assert!(pass.contains("on the candidate") && pass.contains("judged"), "{pass}");
    assert!(err.contains("judge#1 PENDING"), "{err}");
    eprintln!("judge PASS: completed after {took:?} of kit time, {:.1}s real", started.elapsed().as_secs_f64());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_judge_says_pending_until_a_minute_is_published_and_reads_them_with_what_iam_policy_allows() {
    // The policy iam-policy prints, checked by the kit's IAM.
    let w = World::new().await;
    let (_, _, pair) = sides(&w).await;
    let table = crate::emulator::unique("judge-state-");
    let profile = format!(
        "{}[rollout]\nstages = [10, 100]\nbake = \"1m\"\npoll = \"10s\"\n\n[state]\ntable = \"{table}\"\n\n[[gate]]\ntype = \"judge\"\nerrors = {{ ratio = 2, margin = 0.1 }}\nconfidence = 0.95\nwarmup = \"1m\"\n",
        route(&pair)
    );
    w.profile("svc", &profile);
    expect(w.cutover().args(["-p", "svc", "state", "init"]), 0);
    let (out, _) = expect(w.cutover().args(["-p", "svc", "iam-policy"]), 0);
    let policy = json(&out);
    let statements = policy["Statement"].as_array().unwrap();
    let allows = |action: &str| {
        statements.iter().find(|s| s["Action"].as_array().is_some_and(|a| a.iter().any(|x| x == action))).cloned()
    };
    let metrics = allows("cloudwatch:GetMetricData").unwrap_or_else(|| panic!("no GetMetricData: {policy}"));
    assert!(allows("elasticloadbalancing:DescribeRules").is_some(), "where the sides' requests are: {policy}");
    let (out, _) = expect(w.cutover().args(["-p", "svc", "validate"]), 0);
    assert!(
        out.contains(
            "  judge#1 (judge): the candidate's errors (5xx and connection errors) against the stable side's, per settled \
             minute: FAIL when credibly 2× and 0.1 points worse, PASS when credibly not, at 95 % confidence, after a 1m warm-up\n"
        ),
        "{out}"
    );

    let config = Config { iam_policy: Some(policy.clone()), ..Config::realistic(Clock::scaled(30.0), secs(60)) };
    let (clock, kit, mut w2) = kit(config).await;
    w2.dir = w.dir;
    let (code, out, err) = on_kit(&w2, &kit, &["-p", "svc", "-o", "json", "advance"], 30).await;
    assert_eq!((code, json(&out)["action"].as_str()), (0, Some("started")), "{out}\n{err}");
    let shifted = clock.now();
    // Right after the shift no minute since it is published: pending.
    let (code, out, err) = on_kit(&w2, &kit, &["-p", "svc", "-o", "json", "advance"], 30).await;
    assert_eq!(code, 0, "{out}\n{err}");
    let r = judge_reading(&json(&out));
    assert_eq!(r["verdict"], "pending", "{r}");
    has_judge_keys(&r);
    assert_eq!((r["minutes"].as_u64(), r["candidate"]["requests"].as_u64()), (Some(0), Some(0)), "{r}");

    // Past the warm-up, a settled minute and the 5 minutes after which a minute without any
    // datapoint counts as one without requests (CloudWatch publishes nothing for an idle load
    // balancer): the judge reads both sides' minutes, and nobody sent a request: too little to
    // judge — a wait, which counts toward max_hold, never a pending that would hold forever.
    // (Called again, at most 4 times 30 kit-seconds apart, while still pending: a cutover
    // started under load reads the kit's clock a few seconds late.)
    until(&clock, shifted + secs(560)).await;
    let mut r = serde_json::Value::Null;
    for _ in 0..5 {
        let (code, out, err) = on_kit(&w2, &kit, &["-p", "svc", "-o", "json", "advance"], 30).await;
        assert_eq!(code, 0, "{out}\n{err}");
        r = judge_reading(&json(&out));
        if r["verdict"] != "pending" {
            break;
        }
        until(&clock, clock.now() + secs(30)).await;
    }
    assert_eq!(r["verdict"], "no_data", "{r}");
    assert!(r["minutes"].as_u64().unwrap() >= 1, "{r}");
    assert!(kit.calls().iter().any(|c| c.operation == "GetMetricData" && c.status == 200), "read with the policy");

    // Without GetMetricData the judge cannot read them, and says so.
    let mut without = policy.clone();
    without["Statement"].as_array_mut().unwrap().retain(|s| s["Sid"] != metrics["Sid"]);
    let config = Config { iam_policy: Some(without), ..Config::realistic(clock, secs(60)) };
    let denied = crate::emulator::proxy(config);
    w2.aws = Aws::new(&denied.endpoint).await;
    let (code, out, err) = on_kit(&w2, &denied, &["-p", "svc", "-o", "json", "advance"], 30).await;
    assert_eq!(code, 0, "{out}\n{err}");
    let r = judge_reading(&json(&out));
    let detail = r["detail"].as_str().unwrap();
    assert!(detail.contains("cannot read the sides' metrics") && detail.contains("AccessDenied"), "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_shadow_gate_changes_no_write_and_its_verdicts_are_listed_and_audited() {
    let kit = crate::emulator::proxy(Config::default());
    let mut w = World::new().await;
    w.aws = Aws::new(&kit.endpoint).await;
    let front = Front::new(&w).await;
    let id = crate::emulator::unique("");
    let (ok, sick) = (format!("ok-{id}"), format!("sick-{id}"));
    w.aws.alarm(&ok).await;
    w.aws.alarm(&sick).await;
    w.aws.set_alarm(&sick, "ALARM").await;
    let table = crate::emulator::unique("shadow-state-");
    let rollout = "stages = [10, 50, 100]\nbake = \"1s\"\npoll = \"200ms\"\nfailure_threshold = 1\n";
    let real = format!("[state]\ntable = \"{table}\"\n\n[[gate]]\ntype = \"alarm\"\nalarms = [\"{ok}\"]\n");
    let shadow = format!("{real}\n[[gate]]\ntype = \"alarm\"\nalarms = [\"{sick}\"]\nshadow = true\n");
    w.profile("plain", &front.profile(rollout, &real));
    w.profile("shadowed", &front.profile(rollout, &shadow));
    expect(w.cutover().args(["-p", "plain", "state", "init"]), 0);
    let (out, _) = expect(w.cutover().args(["-p", "shadowed", "validate"]), 0);
    assert!(out.contains("  alarm#1 (alarm)\n  alarm#2 (alarm, shadow: read and reported, never acted on)\n"), "{out}");

    // The traffic writes of a rollout, as the emulator received them.
    let writes = || -> Vec<(String, String)> {
        kit.calls().into_iter().filter(|c| c.is_write()).map(|c| (c.operation, c.body)).collect()
    };
    kit.clear();
    let (out, _) = expect(w.cutover().args(["-p", "plain", "-o", "json", "rollout"]), 0);
    let (plain, plain_writes) = (json(&out), writes());
    assert_eq!(front.weights(&w).await, (0, 100));
    assert_eq!(plain_writes.len(), 3, "one write a stage: {plain_writes:?}");

    // The same rollout from the same split, with a shadow gate whose alarm is in ALARM.
    w.aws.set_action(&front.listener, None, Aws::forward(&[(&front.blue, 100), (&front.green, 0)], None)).await;
    kit.clear();
    let (out, err) = expect(w.cutover().args(["-p", "shadowed", "-o", "json", "rollout"]), 0);
    let shadowed = json(&out);
    assert_eq!(writes(), plain_writes, "the same writes, same weights, same order");
    assert_eq!(front.weights(&w).await, (0, 100));
    for key in ["outcome", "stage", "exit_code"] {
        assert_eq!(shadowed[key], plain[key], "{key}");
    }
    // Its verdicts: at the end of the rollout, in its log, in the audit trail.
    let notes = shadowed["shadow"].as_array().unwrap();
    assert!(!notes.is_empty(), "{shadowed}");
    let note = &notes[0];
    assert_eq!((note["gate"].as_str(), note["would"].as_str()), (Some("alarm#2"), Some("would have rolled back")));
    assert!(note["reading"].as_str().unwrap().starts_with("FAIL:"), "{note}");
    assert!(err.contains("shadow alarm#2 would have rolled back at stage 0 (nothing done)"), "{err}");
    assert!(err.contains(&format!("alarm#1 PASS: 1 OK; alarm#2 (shadow) FAIL: in ALARM: {sick}")), "{err}");
    let reading = shadowed["readings"].as_array().unwrap().iter().find(|r| r["gate"] == "alarm#2").unwrap().clone();
    assert_eq!((reading["verdict"].as_str(), reading["shadow"].as_bool()), (Some("fail"), Some(true)), "{reading}");
    let (out, _) = expect(w.cutover().args(["-p", "shadowed", "-o", "json", "history"]), 0);
    let history = json(&out);
    let entries = history["entries"].as_array().unwrap();
    // Once a stage: a stage's failure streaks start afresh, a shadow's too.
    let mut shadows: Vec<&str> =
        entries.iter().filter(|e| e["action"] == "shadow").map(|e| e["why"].as_str().unwrap()).collect();
    shadows.reverse();
    assert_eq!(shadows.len(), 4, "{history}");
    for (stage, why) in shadows.iter().enumerate() {
        let said = format!("alarm#2 would have rolled back at stage {stage}: FAIL: in ALARM: {sick}");
        assert_eq!(*why, said, "{history}");
    }
    assert_eq!(notes.len(), 4, "the same, at the end of the rollout: {shadowed}");
    assert_eq!(entries[0]["action"], "completed", "{history}");
    // The text report lists them too (the way back to blue, with the alarm still in ALARM).
    let (text, _) = expect(w.cutover().args(["-p", "shadowed", "rollout"]), 0);
    assert!(text.starts_with("rollout completed: all traffic on blue"), "{text}");
    assert!(
        text.contains("shadow gates (read, never acted on):\n    alarm#2 would have rolled back at stage 0: FAIL"),
        "{text}"
    );
}
