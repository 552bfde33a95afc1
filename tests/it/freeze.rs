//! Change freezes (`freeze` gates) on the emulator and the kit: an SSM Change Calendar the kit
//! serves from its document (GetCalendarState, as AWS answers it), and inline windows. Time passes
//! on the kit's clock (30 times as fast), and cutover runs on the same clock under libfaketime, so a
//! calendar closing "three minutes from now" closes three kit-minutes into the test.

use std::time::SystemTime;

use crate::emulator::unique;
use crate::fixtures::Aws;
use crate::kit::{kit, on_kit, secs, until};
use crate::proxy::{Clock, Config, Proxy};
use crate::{World, json};

/// A front ALB whose listener forwards to a blue and a green target group.
pub(crate) struct Front {
    pub(crate) listener: String,
    pub(crate) blue: String,
    pub(crate) green: String,
}

impl Front {
    pub(crate) async fn new(w: &World) -> Front {
        let (vpc, subnets) = w.aws.network().await;
        let (lb, _, _) = w.aws.load_balancer(&unique("fz"), &subnets, &[]).await;
        let blue = w.aws.target_group(&unique("fzb"), &vpc, &["10.0.1.7"]).await;
        let green = w.aws.target_group(&unique("fzg"), &vpc, &["10.0.2.7"]).await;
        let listener = w.aws.listener(&lb, 80, Aws::forward(&[(&blue, 100), (&green, 0)], None), &[]).await;
        Front { listener, blue, green }
    }

    /// (blue, green) weights of the listener.
    pub(crate) async fn weights(&self, w: &World) -> (i32, i32) {
        let fw = w.aws.forward_weights(&self.listener, None).await;
        let get = |arn: &str| fw.iter().find(|(a, _)| a == arn).map(|(_, w)| *w).unwrap();
        (get(&self.blue), get(&self.green))
    }

    /// A profile of this front: `rollout` is the `[rollout]` table's body, `rest` what follows it
    /// (`[state]`, gates).
    pub(crate) fn profile(&self, rollout: &str, rest: &str) -> String {
        format!(
            "[[alb]]\nlistener = \"{}\"\nblue = \"{}\"\ngreen = \"{}\"\n\n[rollout]\n{rollout}\n{rest}",
            self.listener, self.blue, self.green
        )
    }
}

/// A `[state]` table of its own, created with `state init`.
fn state_table(w: &World, front: &Front) -> String {
    let table = unique("freeze-state-");
    let section = format!("[state]\ntable = \"{table}\"\n");
    w.profile("init", &front.profile("", &section));
    let (out, _) = crate::expect(w.cutover().args(["-p", "init", "state", "init"]), 0);
    assert!(out.contains("created state table"), "{out}");
    section
}

/// A time as cutover prints it: UTC, to the second.
fn utc(t: SystemTime) -> String {
    let secs = t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs() as i64;
    jiff::Timestamp::from_second(secs).unwrap().strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// `t` as a local time in `tz`, as a `[[gate.window]]` `start` gives it.
fn local(t: SystemTime, tz: &str) -> String {
    let secs = t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs() as i64;
    let civil = jiff::tz::TimeZone::get(tz).unwrap().to_datetime(jiff::Timestamp::from_second(secs).unwrap());
    civil.strftime("%Y-%m-%dT%H:%M:%S").to_string()
}

/// Runs `cutover -p svc -o json ARGS` on the kit's clock; it must exit `code`. Its JSON document.
#[track_caller]
fn expect_json(got: (i32, String, String), code: i32) -> serde_json::Value {
    let (got, out, err) = got;
    assert_eq!(got, code, "exit code\n--- stdout:\n{out}\n--- stderr:\n{err}");
    json(&out)
}

/// The audit trail's actions, oldest first.
fn actions(history: &serde_json::Value) -> Vec<String> {
    let mut a: Vec<String> =
        history["entries"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap().to_string()).collect();
    a.reverse();
    a
}

/// `advance` on the kit's clock, called again 5 kit-seconds later (at most 4 times) while it says
/// the stage is still baking: a process started under load reads the kit's time a few seconds
/// late (libfaketime counts from the process's start, its speed from then on).
async fn past_the_bake(clock: &Clock, w: &World, kit: &Proxy, advance: &[&str]) -> serde_json::Value {
    for _ in 0..4 {
        let doc = expect_json(on_kit(w, kit, advance, 30).await, 0);
        if !(doc["action"] == "not-yet" && doc["message"].as_str().is_some_and(|m| m.contains(", baked "))) {
            return doc;
        }
        until(clock, clock.now() + secs(5)).await;
    }
    expect_json(on_kit(w, kit, advance, 30).await, 0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_calendar_closing_at_stage_2_holds_it_advance_says_frozen_until_rollout_ends_held_and_rollback_goes_through()
{
    let (clock, kit, w) = kit(Config { clock: Clock::scaled(30.0), ..Config::default() }).await;
    let front = Front::new(&w).await;
    let state = state_table(&w, &front);
    // The calendar closes 3 kit-minutes from now, for an hour.
    let start = clock.now();
    let (closes, opens) = (start + secs(180), start + secs(3600));
    let calendar = unique("prod-freeze-");
    w.aws.change_calendar(&calendar, &[(closes, opens)]).await;
    let gate = format!("[[gate]]\ntype = \"freeze\"\ncalendars = [\"{calendar}\"]\n");
    let rollout = "stages = [10, 50, 100]\nbake = \"1m\"\npoll = \"5s\"\nmax_hold = \"1m\"\n";
    w.profile("svc", &front.profile(rollout, &format!("{state}\n{gate}")));
    let advance = ["-p", "svc", "-o", "json", "advance"];

    // Stage 1 at once; stage 2 once it has baked: each bake ends before the closing.
    let doc = expect_json(on_kit(&w, &kit, &advance, 30).await, 0);
    assert_eq!(doc["action"], "started", "{doc}");
    assert_eq!(front.weights(&w).await, (90, 10));
    until(&clock, start + secs(70)).await;
    let doc = past_the_bake(&clock, &w, &kit, &advance).await;
    assert_eq!(doc["action"], "advanced", "{doc}");
    assert_eq!(front.weights(&w).await, (50, 50));

    // Stage 2 has baked, and the calendar is still OPEN: but stage 3's bake would cross the
    // closing, so it does not start (look-ahead).
    until(&clock, start + secs(150)).await;
    let doc = past_the_bake(&clock, &w, &kit, &advance).await;
    let message = doc["message"].as_str().unwrap();
    assert_eq!(doc["action"], "not-yet", "{doc}");
    assert!(message.starts_with(&format!("frozen until {} at stage 2/3", utc(opens))), "{message}");
    assert!(message.contains(&format!("closes at {}, before the next stage's bake", utc(closes))), "{message}");
    let reading = doc["readings"].as_array().unwrap().iter().find(|r| r["gate"] == "freeze#1").unwrap().clone();
    assert_eq!(reading["verdict"], "frozen", "{reading}");
    assert_eq!(reading["until"], utc(opens), "{reading}");
    assert_eq!(front.weights(&w).await, (50, 50));

    // Closed: still held, longer than max_hold — `advance` keeps saying so and exits 0.
    until(&clock, closes + secs(45)).await;
    let doc = expect_json(on_kit(&w, &kit, &advance, 30).await, 0);
    let message = doc["message"].as_str().unwrap();
    assert_eq!(doc["action"], "not-yet", "{doc}");
    assert!(message.contains(&format!("is CLOSED until {}", utc(opens))), "{message}");
    assert!(message.starts_with(&format!("frozen until {}", utc(opens))), "{message}");
    assert_eq!(front.weights(&w).await, (50, 50));

    // `rollout` takes the rollout over, bakes stage 2 again, and ends held past max_hold with
    // traffic where it is.
    let (code, out, err) = on_kit(&w, &kit, &["-p", "svc", "-o", "json", "rollout"], 60).await;
    assert_eq!(code, 7, "held by the freeze\n{out}\n{err}");
    let doc = json(&out);
    assert_eq!(doc["outcome"], "held", "{doc}");
    let reason = doc["reason"].as_str().unwrap();
    assert!(reason.starts_with("frozen for 1m") && reason.contains("CLOSED"), "{reason}");
    assert!(err.contains("FROZEN at stage 2, held at its weight"), "{err}");
    assert_eq!(front.weights(&w).await, (50, 50));

    // A rollback is never frozen.
    let doc = expect_json(on_kit(&w, &kit, &["-p", "svc", "-o", "json", "rollback"], 30).await, 0);
    assert_eq!(doc["action"], "rolled-back", "{doc}");
    assert_eq!(front.weights(&w).await, (100, 0));
    let history = expect_json(on_kit(&w, &kit, &["-p", "svc", "-o", "json", "history"], 30).await, 0);
    let actions = actions(&history);
    let seen = |a: &str| actions.iter().position(|x| x == a).unwrap_or_else(|| panic!("no {a} in {actions:?}"));
    assert!(seen("frozen") < seen("held") && seen("held") < seen("rollback"), "{actions:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stage_whose_bake_would_cross_a_deny_window_does_not_start_and_the_rollout_ends_held_before_it() {
    let (clock, kit, w) = kit(Config { clock: Clock::scaled(30.0), ..Config::default() }).await;
    let front = Front::new(&w).await;
    // A deny window given in local time, India's (UTC+05:30), from 200 kit-seconds from now.
    let start = clock.now();
    let closes = start + secs(200);
    let gate = format!(
        "[[gate]]\ntype = \"freeze\"\n[[gate.window]]\nkind = \"deny\"\nstart = \"{}\"\nduration = \"1h\"\ntz = \"Asia/Kolkata\"\n",
        local(closes, "Asia/Kolkata")
    );
    let rollout = "stages = [10, 50, 100]\nbake = \"2m\"\npoll = \"5s\"\nmax_hold = \"30s\"\n";
    w.profile("svc", &front.profile(rollout, &gate));
    // Stage 1's bake ends well before the window; stage 2's would end after it begins.
    let (code, out, err) = on_kit(&w, &kit, &["-p", "svc", "-o", "json", "rollout"], 60).await;
    assert_eq!(code, 7, "held\n{out}\n{err}");
    let ended = clock.now();
    assert!(ended < closes, "ended before the window began, so the look-ahead held it");
    let doc = json(&out);
    assert_eq!((doc["outcome"].as_str(), doc["stage"].as_u64()), (Some("held"), Some(1)), "{doc}");
    let reason = doc["reason"].as_str().unwrap();
    assert!(
        reason.contains(&format!("a freeze window closes at {}, before the next stage's bake would end", utc(closes))),
        "{reason}"
    );
    assert_eq!(front.weights(&w).await, (90, 10), "stage 2 never started");
    assert!(!err.contains("stage 2/3"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_override_of_a_freeze_moves_traffic_and_is_audited_with_the_caller() {
    let w = World::new().await;
    let front = Front::new(&w).await;
    let state = state_table(&w, &front);
    // A deny window from an hour ago for two hours: closed now.
    let now = SystemTime::now();
    let gate = format!(
        "[[gate]]\ntype = \"freeze\"\n[[gate.window]]\nkind = \"deny\"\nstart = \"{}\"\nduration = \"2h\"\n",
        local(now - secs(3600), "UTC")
    );
    let rollout = "stages = [10, 100]\nbake = \"1s\"\npoll = \"200ms\"\n";
    w.profile("svc", &front.profile(rollout, &format!("{state}\n{gate}")));
    let (out, _) = crate::expect(w.cutover().args(["-p", "svc", "-o", "json", "advance"]), 0);
    let doc = json(&out);
    let opens = utc(now - secs(3600) + secs(7200));
    assert_eq!(doc["action"], "not-yet", "{doc}");
    assert!(
        doc["message"].as_str().unwrap().starts_with(&format!("frozen until {opens} before the first shift")),
        "{doc}"
    );
    assert_eq!(front.weights(&w).await, (100, 0));

    let reason = "INC-4711: the fix for the outage";
    let (out, _) = crate::expect(w.cutover().args(["-p", "svc", "advance", "--override-freeze", reason]), 0);
    assert!(out.starts_with("advance: stage 1/2: green at 10%"), "{out}");
    assert_eq!(front.weights(&w).await, (90, 10));

    let (out, _) = crate::expect(w.cutover().args(["-p", "svc", "-o", "json", "history"]), 0);
    let history = json(&out);
    let entry = history["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "freeze-overridden")
        .unwrap_or_else(|| panic!("no freeze-overridden entry: {history}"))
        .clone();
    let actor = entry["actor"].as_str().unwrap();
    assert!(actor.starts_with("arn:aws:") && actor.contains(crate::proxy::IAM_ACCOUNT), "the caller: {entry}");
    // The reason in the caller's words; who acted is the actor field, not repeated in `why`.
    assert_eq!(entry["reason"], reason, "{entry}");
    assert!(!entry["why"].as_str().unwrap().contains(actor), "{entry}");
    assert_eq!(actions(&history), ["started", "frozen", "freeze-overridden", "stage"], "{history}");

    // The override was for that call: the next one reads the freeze again.
    let (out, _) = crate::expect(w.cutover().args(["-p", "svc", "-o", "json", "advance"]), 0);
    let doc = json(&out);
    let reading = doc["readings"].as_array().unwrap().iter().find(|r| r["gate"] == "freeze#1").unwrap().clone();
    assert_eq!((reading["verdict"].as_str(), reading["until"].as_str()), (Some("frozen"), Some(opens.as_str())));
    assert_eq!(front.weights(&w).await, (90, 10));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_calendar_that_cannot_be_read_holds_and_never_lets_a_stage_through() {
    // GetCalendarState answers 500 every time. cutover retries each call up to 8 times over some
    // 20 s: on the kit's clock at x30 that is under a second.
    let config = Config {
        clock: Clock::scaled(30.0),
        server_error: 1.0,
        fault_operations: vec!["GetCalendarState".into()],
        ..Config::default()
    };
    let (_, kit, w) = kit(config).await;
    let front = Front::new(&w).await;
    let calendar = unique("freeze-");
    w.aws.change_calendar(&calendar, &[]).await;
    let gate = format!("[[gate]]\ntype = \"freeze\"\ncalendars = [\"{calendar}\"]\n");
    let rollout = "stages = [50, 100]\nbake = \"1m\"\npoll = \"10s\"\nmax_hold = \"2m\"\n";
    w.profile("svc", &front.profile(rollout, &gate));

    let (code, out, err) = on_kit(&w, &kit, &["-p", "svc", "-o", "json", "rollout"], 60).await;
    assert_eq!(code, 7, "held\n{out}\n{err}");
    let reason = json(&out)["reason"].as_str().unwrap().to_string();
    assert!(reason.contains("cannot be read") && reason.contains("fails closed"), "{reason}\n{err}");
    assert_eq!(front.weights(&w).await, (100, 0), "no traffic moved");
    let failed =
        kit.calls().iter().filter(|c| c.operation == "GetCalendarState" && c.fault == Some("server-error")).count();
    assert!(failed >= 8, "the calendar was asked, and failed each time: {failed}");

    // A shift by hand toward the candidate is held the same way; nothing moves.
    let (code, out, err) = on_kit(&w, &kit, &["-p", "svc", "set", "green=20"], 60).await;
    assert_eq!(code, 7, "{out}\n{err}");
    assert!(err.contains("cannot be read") && err.contains("nothing was changed"), "{err}");
    assert_eq!(front.weights(&w).await, (100, 0));

    // The calendar answers again (OPEN): the same rollout goes through.
    kit.set(|c| c.server_error = 0.0);
    let (code, out, err) = on_kit(&w, &kit, &["-p", "svc", "rollout"], 60).await;
    assert_eq!(code, 0, "{out}\n{err}");
    assert_eq!(front.weights(&w).await, (0, 100));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_calendar_that_does_not_exist_is_refused_before_any_traffic_moves() {
    let w = World::new().await;
    let front = Front::new(&w).await;
    let missing = unique("no-such-freeze-");
    let gate = format!("[[gate]]\ntype = \"freeze\"\ncalendars = [\"{missing}\"]\n");
    w.profile("svc", &front.profile("stages = [50, 100]\nbake = \"1s\"\n", &gate));
    let (_, err) = crate::expect(w.cutover().args(["-p", "svc", "rollout"]), 2);
    assert!(err.contains(&format!("gate `freeze#1`: change calendar {missing} cannot be used")), "{err}");
    assert_eq!(front.weights(&w).await, (100, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn iam_policy_allows_get_calendar_state_on_the_calendars_and_validate_describes_the_freeze() {
    let w = World::new().await;
    let front = Front::new(&w).await;
    let state = state_table(&w, &front);
    let calendar = unique("freeze-");
    w.aws.change_calendar(&calendar, &[]).await;
    let other = format!("arn:aws:ssm:eu-west-1:{}:document/global-freeze", crate::proxy::IAM_ACCOUNT);
    // A weekly freeze of 64 hours, four times, from ten days from now.
    let first = crate::proxy::clock::minute_of(SystemTime::now() + secs(10 * 86_400));
    let gate = format!(
        "[[gate]]\ntype = \"freeze\"\ncalendars = [\"{calendar}\", \"{other}\"]\n[[gate.window]]\nkind = \"deny\"\nstart = \"{}\"\nduration = \"64h\"\nrrule = \"FREQ=WEEKLY;COUNT=4\"\ntz = \"Europe/Berlin\"\n",
        local(first, "Europe/Berlin")
    );
    let rollout = "stages = [10, 100]\nbake = \"1s\"\npoll = \"200ms\"\n";
    w.profile("svc", &front.profile(rollout, &format!("{state}\n{gate}")));

    let (out, _) = crate::expect(w.cutover().args(["-p", "svc", "iam-policy"]), 0);
    let policy = json(&out);
    let statements = policy["Statement"].as_array().unwrap();
    let freeze = statements
        .iter()
        .find(|s| s["Action"].as_array().is_some_and(|a| a.iter().any(|x| x == "ssm:GetCalendarState")))
        .unwrap_or_else(|| panic!("no ssm:GetCalendarState: {policy}"));
    let mut resources: Vec<&str> = freeze["Resource"].as_array().unwrap().iter().map(|r| r.as_str().unwrap()).collect();
    resources.sort_unstable();
    let mine = format!("arn:aws:ssm:us-west-2:{}:document/{calendar}", crate::proxy::IAM_ACCOUNT);
    assert_eq!(resources, [other.as_str(), mine.as_str()], "{freeze}");

    // The printed policy is enough: the kit's IAM lets the calendar be read, and the rollout starts.
    let allowed = crate::emulator::proxy(Config { iam_policy: Some(policy.clone()), ..Config::default() });
    let mut w = w;
    w.aws = Aws::new(&allowed.endpoint).await;
    let only_mine = format!("[[gate]]\ntype = \"freeze\"\ncalendars = [\"{calendar}\"]\n");
    w.profile("svc", &front.profile(rollout, &format!("{state}\n{only_mine}")));
    let (out, err) = crate::expect(w.cutover().args(["-p", "svc", "-o", "json", "advance"]), 0);
    assert_eq!(json(&out)["action"], "started", "{out}\n{err}");
    assert_eq!(front.weights(&w).await, (90, 10));
    // Without it, the calendar cannot be read: frozen.
    let mut without = policy.clone();
    without["Statement"].as_array_mut().unwrap().retain(|s| s["Sid"] != freeze["Sid"]);
    let denied = crate::emulator::proxy(Config { iam_policy: Some(without), ..Config::default() });
    w.aws = Aws::new(&denied.endpoint).await;
    let (out, _) = crate::expect(w.cutover().args(["-p", "svc", "-o", "json", "advance"]), 0);
    let doc = json(&out);
    let reading = doc["readings"].as_array().unwrap().iter().find(|r| r["gate"] == "freeze#1").unwrap().clone();
    assert_eq!(reading["verdict"], "frozen", "{doc}");
    assert!(reading["detail"].as_str().unwrap().contains("AccessDenied"), "{reading}");
    assert_eq!(front.weights(&w).await, (90, 10));

    // `validate` says what the freeze will do.
    w.profile("full", &front.profile(rollout, &gate));
    let (out, _) = crate::expect(w.cutover().args(["-p", "full", "validate"]), 0);
    let line = out.lines().find(|l| l.starts_with("  freeze#1 (freeze): ")).unwrap_or_else(|| panic!("{out}"));
    for said in [
        format!("change calendars {calendar}, {other} (read before every shift)"),
        format!("deny window from {} Europe/Berlin for 64h, every week, 4 times", &local(first, "Europe/Berlin")[..16]),
        format!("the windows are open now, closing at {}", utc(first)),
        "a stage starts only if its bake ends before a closing; rollbacks are never frozen".into(),
    ] {
        assert!(line.contains(&said), "{said}\n{line}");
    }
}
