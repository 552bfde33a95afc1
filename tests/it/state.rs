//! Shared rollout state on the emulator's DynamoDB: scheduled `advance`, on-call `rollback` that
//! wins every race, leases, drift, `promote`, `pause`/`resume`, `history`.

use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::emulator::unique;
use crate::scenario::{Front, Gate, Notify, Profile, Rollout};
use crate::{World, expect, finish, json, run, wait_until};

/// The front's route, stages 10/50/100 baked `bake` and polled every 100 ms, held at most 30 s,
/// on `table` with a lease of `lease`.
fn profile(f: &Front, table: &str, bake: &str, lease: &str) -> Profile {
    Profile::new()
        .alb(f.route())
        .rollout(Rollout::new(&[10.0, 50.0, 100.0]).bake(bake).poll("100ms").max_hold("30s"))
        .state_leased(table, lease)
}

/// A front ALB and profile `svc` with a state table of its own (made by `state init`), `extra`
/// added; the profile written.
async fn setup(bake: &str, lease: &str, extra: impl FnOnce(Profile) -> Profile) -> (World, Front, Profile) {
    let w = World::new().await;
    let f = Front::new(&w.aws).await;
    let svc = extra(profile(&f, &unique("state-"), bake, lease));
    w.write("svc", &svc);
    let (out, _) = expect(w.cutover().args(["-p", "svc", "state", "init", "--dry-run"]), 0);
    assert!(out.contains("would create state table"), "{out}");
    let (out, _) = expect(w.cutover().args(["-p", "svc", "state", "init"]), 0);
    assert!(out.contains("created state table"), "{out}");
    // Idempotent.
    let (out, _) = expect(w.cutover().args(["-p", "svc", "state", "init"]), 0);
    assert!(out.contains("already exists"), "{out}");
    (w, f, svc)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn advance_moves_one_stage_per_call_and_nothing_within_the_bake() {
    let (w, f, _) = setup("1s", "30s", |p| p).await;
    let (out, _) = expect(w.cutover().args(["-p", "svc", "-o", "json", "advance"]), 0);
    assert_eq!(json(&out)["action"], "started");
    assert_eq!(f.weights().await, (90, 10));

    // Within the bake: nothing moves.
    let (out, _) = expect(w.cutover().args(["-p", "svc", "-o", "json", "advance"]), 0);
    assert_eq!(json(&out)["action"], "not-yet", "{out}");
    assert_eq!(f.weights().await, (90, 10));

    // Called like a scheduler until done: each call moves at most one stage, in order.
    let mut seen = vec![(90, 10)];
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (out, _) = expect(w.cutover().args(["-p", "svc", "-o", "json", "advance"]), 0);
        let action = json(&out)["action"].as_str().unwrap().to_string();
        let now = f.weights().await;
        if now != *seen.last().unwrap() {
            seen.push(now);
        }
        if action == "completed" {
            break;
        }
        assert!(Instant::now() < deadline, "advance did not complete: {seen:?}");
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    assert_eq!(seen, vec![(90, 10), (50, 50), (0, 100)]);
    let (out, _) = expect(w.cutover().args(["-p", "svc", "-o", "json", "status"]), 0);
    let doc = json(&out);
    assert_eq!(doc["live"], "green", "the candidate became the stable side");
    assert_eq!(doc["rollout"]["status"], "completed");

    // Completed: later calls move nothing.
    let (out, _) = expect(w.cutover().args(["-p", "svc", "advance"]), 0);
    assert!(out.contains("nothing to do"), "{out}");
    assert_eq!(f.weights().await, (0, 100));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_without_a_side_restores_the_stable_side_and_later_advances_move_nothing() {
    let (w, f, _) = setup("60s", "30s", |p| p).await;
    expect(w.cutover().args(["-p", "svc", "advance"]), 0);
    assert_eq!(f.weights().await, (90, 10));

    let (out, _) = expect(w.cutover().args(["-p", "svc", "rollback"]), 0);
    assert!(out.contains("all traffic on blue") && out.contains("aborted"), "{out}");
    assert_eq!(f.weights().await, (100, 0));

    for _ in 0..3 {
        let (out, _) = expect(w.cutover().args(["-p", "svc", "advance"]), 0);
        assert!(out.contains("aborted: nothing to do"), "{out}");
        assert_eq!(f.weights().await, (100, 0));
    }
    // A running rollout is refused a start toward the aborted candidate? No: `rollout` starts anew
    // only when asked; the status says aborted.
    let (out, _) = expect(w.cutover().args(["-p", "svc", "-o", "json", "status"]), 0);
    assert_eq!(json(&out)["rollout"]["status"], "aborted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_during_a_running_rollout_wins_and_stays_won() {
    let (w, f, _) = setup("1s", "30s", |p| p).await;
    let child =
        w.std_cutover().args(["-p", "svc", "rollout"]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    wait_until(30, "the first stage", || async { f.weights().await == (90, 10) }).await;

    expect(w.cutover().args(["-p", "svc", "rollback"]), 0);
    // For three seconds afterwards — longer than a stage's bake — traffic never leaves blue.
    let until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < until {
        assert_eq!(f.weights().await, (100, 0), "a write toward the candidate after the rollback");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (code, out, err) = finish(child, 30).await;
    assert_eq!(code, 5, "the running rollout stops with exit 5\n{out}\n{err}");
    assert!(err.contains("aborted"), "{err}");
    assert_eq!(f.weights().await, (100, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_two_concurrent_rollouts_exactly_one_exits_5() {
    let (w, f, _) = setup("300ms", "30s", |p| p).await;
    let spawn = || {
        w.std_cutover().args(["-p", "svc", "rollout"]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap()
    };
    let (a, b) = (spawn(), spawn());
    let (ra, rb) = tokio::join!(finish(a, 60), finish(b, 60));
    let mut codes = vec![ra.0, rb.0];
    codes.sort();
    assert_eq!(codes, vec![0, 5], "\n{}\n{}\n{}\n{}", ra.1, ra.2, rb.1, rb.2);
    let loser = if ra.0 == 5 { &ra.2 } else { &rb.2 };
    assert!(loser.contains("another run") || loser.contains("changed under this run"), "{loser}");
    assert_eq!(f.weights().await, (0, 100));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_rollout_leaves_a_lease_that_expires_and_the_next_run_continues_from_the_live_stage() {
    let (w, f, svc) = setup("60s", "1s", |p| p).await;
    let mut child =
        w.std_cutover().args(["-p", "svc", "rollout"]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    wait_until(30, "the first stage", || async { f.weights().await == (90, 10) }).await;
    child.kill().unwrap();
    child.wait().unwrap();

    // The lease outlives the process for a moment, then expires.
    wait_until(20, "the lease to expire", || async {
        let (code, out, _) = run(w.cutover().args(["-p", "svc", "-o", "json", "status"]));
        code == 0 && json(&out)["rollout"]["lease_holder"].is_null()
    })
    .await;
    assert_eq!(f.weights().await, (90, 10), "nothing moved meanwhile");

    // The next run, with a short bake, continues from stage 1.
    let table = svc.state.as_ref().unwrap().table.clone();
    w.write("svc", &profile(&f, &table, "300ms", "1s"));
    let (out, err) = expect(w.cutover().args(["-p", "svc", "rollout"]), 0);
    assert!(err.contains("resuming at stage 1"), "{err}");
    assert!(out.contains("rollout completed"), "{out}");
    assert_eq!(f.weights().await, (0, 100));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drift_is_refused_with_exit_6() {
    let (w, f, _) = setup("60s", "30s", |p| p).await;
    expect(w.cutover().args(["-p", "svc", "advance"]), 0);
    // Someone changes the weights by hand.
    f.set_weights(70, 30).await;
    let (_, err) = expect(w.cutover().args(["-p", "svc", "advance"]), 6);
    assert!(err.contains("drift") && err.contains("live 70:30, recorded 90:10"), "{err}");
    let (_, err) = expect(w.cutover().args(["-p", "svc", "rollout"]), 6);
    assert!(err.contains("drift"), "{err}");
    assert_eq!(f.weights().await, (70, 30));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_lists_every_step_newest_first() {
    let (w, f, _) = setup("60s", "30s", |p| p).await;
    expect(w.cutover().env("CUTOVER_ACTOR", "alice").args(["-p", "svc", "advance"]), 0);
    expect(w.cutover().env("CUTOVER_ACTOR", "bob").args(["-p", "svc", "pause"]), 0);
    let (out, _) = expect(w.cutover().args(["-p", "svc", "advance"]), 0);
    assert!(out.contains("paused"), "{out}");
    expect(w.cutover().env("CUTOVER_ACTOR", "bob").args(["-p", "svc", "resume"]), 0);
    expect(w.cutover().env("CUTOVER_ACTOR", "carol").args(["-p", "svc", "rollback"]), 0);
    assert_eq!(f.weights().await, (100, 0));

    let (out, _) = expect(w.cutover().args(["-p", "svc", "-o", "json", "history"]), 0);
    let doc = json(&out);
    let actions: Vec<(&str, &str)> = doc["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["action"].as_str().unwrap(), e["actor_note"].as_str().unwrap()))
        .collect();
    // Who acted is the caller as STS says it; CUTOVER_ACTOR is a note beside it.
    assert!(doc["entries"].as_array().unwrap().iter().all(|e| e["actor"] == "arn:aws:sts::123456789012:user/moto"));
    assert_eq!(
        actions,
        vec![("rollback", "carol"), ("resume", "bob"), ("pause", "bob"), ("stage", "alice"), ("started", "alice")]
    );
    let rollback = &doc["entries"][0];
    assert_eq!(rollback["before"][0]["green"], 10);
    assert_eq!(rollback["after"][0]["green"], 0);
    let (out, _) = expect(w.cutover().args(["-p", "svc", "history"]), 0);
    assert!(out.contains("rollback") && out.contains("carol"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promote_makes_the_candidate_the_stable_side() {
    let (w, f, _) = setup("60s", "30s", |p| p).await;
    expect(w.cutover().args(["-p", "svc", "advance"]), 0);
    let (out, _) = expect(w.cutover().args(["-p", "svc", "promote"]), 0);
    assert!(out.contains("now the stable side"), "{out}");
    assert_eq!(f.weights().await, (0, 100));
    let (out, _) = expect(w.cutover().args(["-p", "svc", "-o", "json", "status"]), 0);
    let doc = json(&out);
    assert_eq!(doc["live"], "green");
    assert_eq!(doc["rollout"]["status"], "completed");
    // `rollback` now means green: the stable side.
    let (out, _) = expect(w.cutover().args(["-p", "svc", "rollback"]), 0);
    assert!(out.contains("all traffic is already on green"), "{out}");
    assert_eq!(f.weights().await, (0, 100));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_notification_never_stops_a_rollback() {
    let notify = Notify {
        sns_topic_arn: Some("arn:aws:sns:us-west-2:123456789012:no-such-topic".into()),
        webhook: Some("http://127.0.0.1:9/hook".into()),
    };
    let (w, f, _) = setup("60s", "30s", |p| p.notify(notify)).await;
    expect(w.cutover().args(["-p", "svc", "advance"]), 0);
    let (out, err) = expect(w.cutover().args(["-p", "svc", "rollback"]), 0);
    assert!(out.contains("all traffic on blue"), "{out}");
    assert!(err.contains("notification"), "the failure is said: {err}");
    assert_eq!(f.weights().await, (100, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_rollout_is_not_advanced_nor_run() {
    let (w, f, _) = setup("1s", "30s", |p| p).await;
    expect(w.cutover().args(["-p", "svc", "advance"]), 0);
    let (out, _) = expect(w.cutover().args(["-p", "svc", "pause", "--dry-run"]), 0);
    assert!(out.contains("would mark the rollout paused"), "{out}");
    let (out, _) = expect(w.cutover().args(["-p", "svc", "-o", "json", "status"]), 0);
    assert_eq!(json(&out)["rollout"]["status"], "progressing", "a dry run changes nothing");
    expect(w.cutover().args(["-p", "svc", "pause"]), 0);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (out, _) = expect(w.cutover().args(["-p", "svc", "advance"]), 0);
    assert!(out.contains("paused"), "{out}");
    let (_, err) = expect(w.cutover().args(["-p", "svc", "rollout"]), 7);
    assert!(err.contains("paused"), "{err}");
    assert_eq!(f.weights().await, (90, 10));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_state_table_unreachable_rollback_still_moves_traffic_and_says_so() {
    let (w, f, _) = setup("60s", "30s", |p| p).await;
    expect(w.cutover().args(["-p", "svc", "advance"]), 0);
    // Port 9 on loopback: nothing listens; DynamoDB calls fail at once.
    let down = |cmd: &mut assert_cmd::Command| {
        cmd.env("AWS_ENDPOINT_URL_DYNAMODB", "http://127.0.0.1:9");
    };
    let mut cmd = w.cutover();
    down(&mut cmd);
    let (_, err) = expect(cmd.args(["-p", "svc", "rollback", "--to", "blue"]), 4);
    assert!(err.contains("traffic is back on blue") && err.contains("NOT updated"), "{err}");
    assert_eq!(f.weights().await, (100, 0));

    // Without a side, the stable side is unknown: nothing moves, and it says what to type.
    f.set_weights(90, 10).await;
    let mut cmd = w.cutover();
    down(&mut cmd);
    let (_, err) = expect(cmd.args(["-p", "svc", "rollback"]), 4);
    assert!(err.contains("rollback --to SIDE"), "{err}");
    assert_eq!(f.weights().await, (90, 10));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_during_a_rollout_is_refused_and_force_aborts_the_rollout_audited() {
    let (w, f, _) = setup("60s", "30s", |p| p).await;
    let child =
        w.std_cutover().args(["-p", "svc", "rollout"]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    wait_until(30, "the first stage", || async { f.weights().await == (90, 10) }).await;

    let (_, err) = expect(w.cutover().args(["-p", "svc", "set", "green=50", "--no-gates"]), 5);
    assert!(err.contains("would fight it") && err.contains("--force"), "{err}");
    assert_eq!(f.weights().await, (90, 10), "refused: nothing moved");

    let (out, _) = expect(
        w.cutover().env("CUTOVER_ACTOR", "dave").args(["-p", "svc", "set", "green=50", "--no-gates", "--force"]),
        0,
    );
    assert!(out.contains("done"), "{out}");
    assert_eq!(f.weights().await, (50, 50));
    let (code, out, err) = finish(child, 30).await;
    assert_eq!(code, 5, "the rollout stops: it was aborted\n{out}\n{err}");
    assert!(err.contains("aborted"), "{err}");
    assert_eq!(f.weights().await, (50, 50), "the split set by hand stands");

    let (out, _) = expect(w.cutover().args(["-p", "svc", "-o", "json", "status"]), 0);
    assert_eq!(json(&out)["rollout"]["status"], "aborted");
    let (out, _) = expect(w.cutover().args(["-p", "svc", "-o", "json", "history"]), 0);
    let top = &json(&out)["entries"][0];
    assert_eq!((top["action"].as_str(), top["actor_note"].as_str()), (Some("set"), Some("dave")));
    assert!(top["why"].as_str().unwrap().contains("aborted"), "{top}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollback_with_nothing_to_do_changes_nothing_and_enters_nothing_in_the_audit_trail() {
    let (w, f, _) = setup("1s", "30s", |p| p).await;
    // A finished rollout: everything on blue, as recorded.
    expect(w.cutover().args(["-p", "svc", "advance"]), 0);
    expect(w.cutover().args(["-p", "svc", "rollback"]), 0);
    let (before, _) = expect(w.cutover().args(["-p", "svc", "-o", "json", "history"]), 0);
    let (out, _) = expect(w.cutover().args(["-p", "svc", "rollback"]), 0);
    assert!(out.contains("already on blue and no rollout is in progress: nothing to change"), "{out}");
    let (out, _) = expect(w.cutover().args(["-p", "svc", "rollback", "--to", "blue"]), 0);
    assert!(out.contains("nothing to change"), "{out}");
    let (after, _) = expect(w.cutover().args(["-p", "svc", "-o", "json", "history"]), 0);
    assert_eq!(json(&before)["entries"], json(&after)["entries"], "no audit entry for a rollback that did nothing");
    assert_eq!(f.weights().await, (100, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stable_side_unknown_is_one_refusal_whether_the_table_is_empty_or_missing() {
    let (w, f, _) = setup("1s", "30s", |p| p).await;
    // The table exists and holds no rollout of this profile.
    let (_, empty) = expect(w.cutover().args(["-p", "svc", "rollback"]), 2);
    assert!(empty.contains("stable side is unknown") && empty.contains("rollback --to blue"), "{empty}");
    // No such table.
    w.write("gone", &profile(&f, &unique("no-such-table-"), "1s", "30s"));
    let (_, missing) = expect(w.cutover().args(["-p", "gone", "rollback"]), 2);
    assert!(missing.contains("stable side is unknown") && missing.contains("not found"), "{missing}");
    assert!(missing.contains("rollback --to blue"), "{missing}");
    assert_eq!(f.weights().await, (100, 0));
}

/// Runs `cutover ARGS` on a pseudo-terminal (util-linux `script`), answering `answer` at its
/// prompt: (exit code, everything the terminal showed).
fn on_a_terminal(w: &World, args: &[&str], answer: &str) -> (i32, String) {
    on_a_terminal_with(w, args, answer, &[])
}

/// [`on_a_terminal`] with more environment variables.
fn on_a_terminal_with(w: &World, args: &[&str], answer: &str, env: &[(&str, &str)]) -> (i32, String) {
    use std::io::Write;
    let bin = assert_cmd::cargo::cargo_bin!("cutover");
    let line = std::iter::once(bin.display().to_string())
        .chain(args.iter().map(|a| a.to_string()))
        .map(|a| format!("'{}'", a.replace('\'', "'\\''")))
        .collect::<Vec<_>>()
        .join(" ");
    let cmd = w.std_cutover();
    let mut child = std::process::Command::new("script")
        .args(["-q", "-e", "-c", &line, "/dev/null"])
        .envs(cmd.get_envs().filter_map(|(k, v)| Some((k.to_owned(), v?.to_owned()))))
        .env_remove("NO_COLOR")
        .envs(env.iter().copied())
        .current_dir(cmd.get_current_dir().unwrap())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("util-linux `script` runs a command on a pseudo-terminal");
    child.stdin.take().unwrap().write_all(answer.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).replace('\r', ""))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_terminal_a_write_shows_its_plan_asks_naming_side_and_profile_then_says_what_it_did() {
    let (w, f, _) = setup("1h", "30s", |p| p).await;
    // No: the plan is a plan, the question names the side and the profile, nothing changes, exit 2.
    let (code, screen) = on_a_terminal(&w, &["-p", "svc", "set", "green=25", "--no-gates"], "n\n");
    assert_eq!(code, 2, "{screen}");
    assert!(screen.contains("will set green=25% on profile svc:"), "{screen}");
    assert!(screen.contains("move green to 25% on profile svc? [y/N]"), "{screen}");
    assert!(screen.contains("not confirmed: nothing changed"), "{screen}");
    assert!(!screen.contains("done in"), "nothing was done: {screen}");
    assert_eq!(f.weights().await, (100, 0));

    // Yes: done, and how long the writes took.
    let (code, screen) = on_a_terminal(&w, &["-p", "svc", "set", "green=25", "--no-gates"], "y\n");
    assert_eq!(code, 0, "{screen}");
    assert!(screen.contains("set green=25% on profile svc: done in"), "{screen}");
    assert_eq!(f.weights().await, (75, 25));

    // A rollback during a rollout says it will stop it.
    expect(w.cutover().args(["-p", "svc", "rollback", "--to", "blue"]), 0);
    expect(w.cutover().args(["-p", "svc", "advance"]), 0);
    let (code, screen) = on_a_terminal(&w, &["-p", "svc", "rollback"], "n\n");
    assert_eq!(code, 2, "{screen}");
    assert!(screen.contains("will move all traffic to blue on profile svc:"), "{screen}");
    assert!(
        screen.contains("move all traffic to blue on profile svc and stop the rollout in progress? [y/N]"),
        "{screen}"
    );
    assert_eq!(f.weights().await, (90, 10));
    let (code, screen) = on_a_terminal(&w, &["-p", "svc", "-y", "rollback"], "");
    assert_eq!(code, 0, "{screen}");
    assert!(!screen.contains("[y/N]"), "-y does not ask: {screen}");
    assert_eq!(f.weights().await, (100, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verdicts_are_coloured_on_a_terminal_unless_no_color_is_set() {
    let (w, f, _) = setup("0s", "30s", |p| p.gate(Gate::target_health())).await;
    let (code, screen) = on_a_terminal(&w, &["-p", "svc", "rollout"], "");
    assert_eq!(code, 0, "{screen}");
    assert!(screen.contains("\u{1b}[32mPASS\u{1b}[0m"), "PASS in green: {screen:?}");
    assert_eq!(f.weights().await, (0, 100));
    expect(w.cutover().args(["-p", "svc", "rollback", "--to", "blue"]), 0);
    let (code, screen) = on_a_terminal(&w, &["-p", "svc", "rollout"], "");
    assert_eq!(code, 0, "{screen}");
    assert!(screen.contains("\u{1b}[32mPASS"), "{screen:?}");
    expect(w.cutover().args(["-p", "svc", "rollback", "--to", "blue"]), 0);
    let (code, screen) = on_a_terminal_with(&w, &["-p", "svc", "rollout"], "", &[("NO_COLOR", "1")]);
    assert_eq!(code, 0, "{screen}");
    assert!(screen.contains("PASS") && !screen.contains("\u{1b}[32m"), "NO_COLOR: {screen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_watch_redraws_stage_bake_and_gates_until_the_rollout_ends() {
    use std::io::Read;
    let (w, f, _) = setup("1h", "30s", |p| p.gate(Gate::target_health())).await;
    expect(w.cutover().args(["-p", "svc", "advance"]), 0);
    assert_eq!(f.weights().await, (90, 10));
    let bin = assert_cmd::cargo::cargo_bin!("cutover");
    let cmd = w.std_cutover();
    let line = format!("'{}' -p svc status -w --interval 200ms", bin.display());
    let mut child = std::process::Command::new("script")
        .args(["-q", "-e", "-c", &line, "/dev/null"])
        .envs(cmd.get_envs().filter_map(|(k, v)| Some((k.to_owned(), v?.to_owned()))))
        .current_dir(cmd.get_current_dir().unwrap())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let screen = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let mut stdout = child.stdout.take().unwrap();
    let sink = screen.clone();
    let reader = std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0 {
                break;
            }
            sink.lock().unwrap().push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    let seen = |what: &'static str| {
        let screen = screen.clone();
        move || {
            let screen = screen.clone();
            async move { screen.lock().unwrap().contains(what) }
        }
    };
    wait_until(30, "a frame of the running rollout", seen("gate target-health#1")).await;
    wait_until(30, "a redraw", seen("\u{1b}[2J")).await;
    // The on-call engineer ends it: the watch shows the end and stops by itself.
    expect(w.cutover().args(["-p", "svc", "rollback"]), 0);
    let (code, _, err) = finish(child, 30).await;
    reader.join().unwrap();
    let screen = screen.lock().unwrap().replace('\r', "");
    // Issue 26: it exited 0 with "Ctrl-C to stop" on its last frame. It ends with the rollout's
    // outcome, exit 3 for a rollback, and a last line that says so.
    assert_eq!(code, 3, "{screen}\n{err}");
    for what in ["rollout: blue → green, progressing, stage 1/3 (green 10%)", "bake:", "\u{1b}[32mPASS", "aborted at"]
    {
        assert!(screen.contains(what), "missing {what:?} in:\n{screen}");
    }
    let last = screen.rsplit("\u{1b}[2J").next().unwrap();
    assert!(!last.contains("Ctrl-C to stop"), "the last frame:\n{last}");
    let line = last.trim_end().lines().last().unwrap_or_default();
    assert!(line.starts_with("the rollout ended rolled back to blue") && line.ends_with("(exit 3)"), "{line:?}");
}

/// Issue 26: a rollout paused from another process stopped (exit 7) but kept its lease, under
/// the pid of a process that had exited; after `resume`, the next `rollout` was refused (exit 5).
/// Every ending gives the lease back; `resume` says what will drive the rollout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollout_paused_from_another_process_gives_its_lease_back_and_after_resume_the_next_run_completes() {
    let (w, f, svc) = setup("60s", "30s", |p| p).await;
    let child =
        w.std_cutover().args(["-p", "svc", "rollout"]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    wait_until(30, "the first stage", || async { f.weights().await == (90, 10) }).await;
    expect(w.cutover().args(["-p", "svc", "pause"]), 0);
    let (code, out, err) = finish(child, 30).await;
    assert_eq!(code, 7, "the running rollout stops, paused\n{out}\n{err}");
    let (out, _) = expect(w.cutover().args(["-p", "svc", "-o", "json", "status"]), 0);
    assert!(json(&out)["rollout"]["lease_holder"].is_null(), "the lease is given back: {out}");

    let (out, _) = expect(w.cutover().args(["-p", "svc", "resume"]), 0);
    assert!(out.contains("nothing drives it yet"), "{out}");
    assert!(out.contains("`cutover rollout -p svc`") && out.contains("`advance`"), "{out}");
    assert_eq!(f.weights().await, (90, 10), "resume moves nothing");

    let table = svc.state.as_ref().unwrap().table.clone();
    w.write("svc", &profile(&f, &table, "300ms", "30s"));
    let (out, err) = expect(w.cutover().args(["-p", "svc", "rollout"]), 0);
    assert!(out.contains("rollout completed"), "{out}\n{err}");
    assert_eq!(f.weights().await, (0, 100));
}

/// Issue 26: `validate` printed "state table: cutover-state" and exit 0 for a table that did not
/// exist; `history` then failed. It checks the table and says how to create it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validate_refuses_a_state_table_that_does_not_exist_and_names_state_init() {
    let w = World::new().await;
    let f = Front::new(&w.aws).await;
    let table = unique("missing-");
    w.write("svc", &profile(&f, &table, "1s", "30s"));
    let (_, err) = expect(w.cutover().args(["-p", "svc", "validate"]), 2);
    assert!(err.contains(&format!("state table `{table}`")) && err.contains("not found"), "{err}");
    assert!(err.contains("cutover state init -p svc"), "{err}");
    expect(w.cutover().args(["-p", "svc", "state", "init"]), 0);
    let (out, _) = expect(w.cutover().args(["-p", "svc", "validate"]), 0);
    assert!(out.contains(&format!("state table: {table}")), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_rollout_id_names_the_rollout_in_status_every_result_and_its_history_with_the_rollback_reason() {
    let (w, f, _) = setup("60s", "30s", |p| p).await;
    let (out, _) = expect(w.cutover().args(["-p", "svc", "-o", "json", "advance"]), 0);
    let id = json(&out)["rollout_id"].as_str().expect("advance names the rollout it started").to_string();
    assert_eq!(id.len(), 16, "{id}");
    let (out, _) = expect(w.cutover().args(["-p", "svc", "-o", "json", "status"]), 0);
    let doc = json(&out);
    assert_eq!(doc["rollout_id"], id.as_str());
    assert_eq!(doc["rollout"]["id"], id.as_str());
    let (out, _) = expect(w.cutover().args(["-p", "svc", "status"]), 0);
    assert!(out.contains(&format!("  rollout id: {id}\n")), "{out}");

    // A reason too long, or empty, is refused before anything moves.
    let long = "x".repeat(501);
    let (_, err) = expect(w.cutover().args(["-p", "svc", "rollback", "--reason", &long]), 2);
    assert!(err.contains("at most 500"), "{err}");
    expect(w.cutover().args(["-p", "svc", "rollback", "--reason", "  "]), 2);
    assert_eq!(f.weights().await, (90, 10));

    // The reason is kept in the person's words, its control characters escaped.
    let said = "green 5xx on checkout\u{1b}]0;owned\u{7}";
    let (out, _) = expect(w.cutover().args(["-p", "svc", "-o", "json", "rollback", "--reason", said]), 0);
    let doc = json(&out);
    assert_eq!(doc["rollout_id"], id.as_str(), "{out}");
    assert_eq!(f.weights().await, (100, 0));

    let (out, _) = expect(w.cutover().args(["-p", "svc", "-o", "json", "history"]), 0);
    let entries = json(&out)["entries"].as_array().unwrap().clone();
    let actions: Vec<&str> = entries.iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(actions, vec!["rollback", "stage", "started"]);
    assert!(entries.iter().all(|e| e["rollout_id"] == id.as_str()), "{out}");
    let rollback = &entries[0];
    assert_eq!(rollback["reason"], "green 5xx on checkout\\x1b]0;owned\\x07");
    // Who acted is the actor field; the reason does not say it again.
    assert!(!rollback["why"].as_str().unwrap().contains("arn:"), "{rollback}");
    let (out, _) = expect(w.cutover().args(["-p", "svc", "history"]), 0);
    let line = out.lines().find(|l| l.contains("rollback")).unwrap();
    assert_eq!(line.matches("arn:aws:sts::123456789012:user/moto").count(), 1, "{line}");
    assert!(line.contains(&id) && line.contains("reason: green 5xx on checkout\\x1b]0;owned\\x07"), "{line}");
    assert!(!out.contains('\u{1b}'), "{out}");
}
