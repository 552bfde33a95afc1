//! What each command prints, as snapshots (`tests/it/snapshots/`): the text a person reads and
//! the JSON a pipeline parses, for `set`, `status`, `validate`, `rollback`, every `advance`
//! action, `pause`/`resume`/`promote`, `history`, a rollout's progress and its result (completed,
//! rolled back, held), `iam-policy`, and the refusals (exit 2, 5, 6) — with names, times,
//! durations, ports and pids redacted ([`Redact`]). A change of wording shows as a snapshot to
//! review (`cargo insta review`); nothing here depends on timing.

use std::process::Stdio;

use insta::assert_snapshot;

use crate::emulator::unique;
use crate::scenario::{AlbRoute, Front, Gate, Profile, Records, Rollout, elbs};
use crate::snap::Redact;
use crate::{World, expect, run, wait_until};

/// The labels of a front and a pair, and the shared load balancers the pair aliases.
async fn redact(w: &World, front: &Front, pair: Option<&Records>, table: Option<&str>) -> Redact {
    let (b, g, lb_zone) = elbs().await;
    let mut r = Redact::new()
        .names(front.names())
        .name(&b, "[elb-blue]")
        .name(&g, "[elb-green]")
        .name(&lb_zone, "[elb-zone]")
        .name(&w.dir.path().display().to_string(), "[dir]");
    if let Some(pair) = pair {
        r = r.names(pair.names());
    }
    if let Some(table) = table {
        r = r.name(table, "[table]");
    }
    r
}

/// `cutover -p svc ARGS` must exit `code`: (stdout, stderr).
fn svc(w: &World, args: &[&str], code: i32) -> (String, String) {
    expect(w.cutover().args(["-p", "svc"]).args(args), code)
}

/// Runs `cutover -p svc ARGS` for each (snapshot, ARGS, exit code), in order: what each printed
/// is that snapshot — its result, or its error on stderr when it exits non-zero with text output;
/// JSON redacted as JSON.
fn snap_each(w: &World, r: &Redact, runs: &[(&str, &[&str], i32)]) {
    for (name, args, code) in runs {
        let (out, err) = svc(w, args, *code);
        let text = match (args.iter().any(|a| *a == "json" || *a == "iam-policy"), *code) {
            (true, _) => r.json(&out),
            (false, 0) => r.text(&out),
            (false, _) => r.text(&err),
        };
        assert_snapshot!(*name, text);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_status_validate_and_rollback_to_a_side_print_the_same_words() {
    let w = World::new().await;
    let pair = Records::alias(&w.aws, (100, 0)).await;
    let front = Front::new(&w.aws).await;
    let rollout = Rollout::new(&[10.0, 50.0, 100.0]);
    w.write("svc", &Profile::new().route53(pair.route()).alb(front.route()).rollout(rollout));
    let r = redact(&w, &front, Some(&pair), None).await;

    snap_each(
        &w,
        &r,
        &[
            ("validate", &["validate"], 0),
            ("status-all-on-blue", &["status"], 0),
            ("set-dry-run", &["set", "green=25", "--dry-run"], 0),
            ("set", &["set", "green=25"], 0),
            ("set-json", &["-o", "json", "set", "green=50"], 0),
            ("status-split", &["status"], 0),
            ("status-split-json", &["-o", "json", "status"], 0),
            ("rollback-to-blue", &["rollback", "--to", "blue"], 0),
            ("rollback-to-blue-again-json", &["-o", "json", "rollback", "--to", "blue"], 0),
        ],
    );
    assert_eq!((pair.weights().await, front.weights().await), ((100, 0), (100, 0)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduled_rollout_prints_each_step_of_advance_and_the_on_call_commands() {
    let w = World::new().await;
    let pair = Records::alias(&w.aws, (100, 0)).await;
    let front = Front::new(&w.aws).await;
    let alarm = unique("out-");
    for side in ["blue", "green"] {
        w.aws.alarm(&format!("{alarm}-{side}")).await;
    }
    let table = unique("out-");
    let profile = |bake: &str| {
        Profile::new()
            .route53(pair.route())
            .alb(front.route())
            .rollout(Rollout::new(&[50.0, 100.0]).bake(bake).dns_ttl("0s"))
            .gate(Gate::alarm(&[&format!("{alarm}-{{side}}")]))
            .state(&table)
    };
    w.write("svc", &profile("1h"));
    let r = redact(&w, &front, Some(&pair), Some(&table)).await.name(&alarm, "[alarm]");

    snap_each(
        &w,
        &r,
        &[
            ("state-init", &["state", "init"], 0),
            ("iam-policy", &["iam-policy"], 0),
            ("advance-started", &["advance"], 0),
            ("advance-not-yet-json", &["-o", "json", "advance"], 0),
            ("advance-not-yet", &["advance"], 0),
            ("status-progressing", &["status"], 0),
            ("status-progressing-json", &["-o", "json", "status"], 0),
            // Refused while a rollout is progressing: exit 5, and the same as a JSON error.
            ("set-during-a-rollout-refused", &["set", "green=10", "--no-gates"], 5),
            ("set-during-a-rollout-refused-json", &["-o", "json", "set", "green=10", "--no-gates"], 5),
            ("pause", &["pause"], 0),
            ("advance-paused", &["advance"], 0),
            ("resume", &["resume"], 0),
            ("rollback", &["rollback"], 0),
            ("advance-aborted-json", &["-o", "json", "advance"], 0),
        ],
    );
    // Started anew and promoted; then, with nothing left, the last actions of `advance`.
    svc(&w, &["advance", "--to", "green"], 0);
    snap_each(
        &w,
        &r,
        &[
            ("promote-json", &["-o", "json", "promote"], 0),
            ("status-completed", &["status"], 0),
            ("advance-nothing-to-do", &["advance"], 0),
        ],
    );

    // Back to blue one stage per call: started, advanced, completed.
    w.write("svc", &profile("0s"));
    for action in ["started", "advanced", "completed"] {
        let (out, _) = svc(&w, &["-o", "json", "advance", "--to", "blue"], 0);
        assert_snapshot!(format!("advance-{action}-json"), r.json(&out));
    }
    snap_each(&w, &r, &[("history", &["history"], 0), ("history-json", &["-o", "json", "history", "--limit", "3"], 0)]);
    assert_eq!((pair.weights().await, front.weights().await), ((100, 0), (100, 0)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollout_prints_its_progress_and_result_completed_rolled_back_or_held() {
    let w = World::new().await;
    let front = Front::new(&w.aws).await;
    // A metric of its own name: moto matches a dimensioned query by name and dimensions alone.
    let (ns, errors) = (format!("Out/{}", unique("ns")), unique("Errors"));
    let r = redact(&w, &front, None, None).await.name(&ns, "[namespace]").name(&errors, "[metric]");
    let rollout = Rollout::new(&[50.0, 100.0]).bake("0s").poll("100ms").max_hold("1s");
    let with = |gate: Gate| Profile::new().alb(front.route()).rollout(rollout.clone()).gate(gate);

    // Completed: every stage applied and baked.
    w.write("svc", &with(Gate::target_health()));
    let (out, err) = svc(&w, &["rollout"], 0);
    assert_snapshot!("rollout-completed-progress", r.text(&err));
    assert_snapshot!("rollout-completed", r.text(&out));
    let (out, _) = svc(&w, &["-o", "json", "rollout", "--to", "blue"], 0);
    assert_snapshot!("rollout-completed-json", r.json(&out));

    // Held: no datapoint, so the candidate's first stage holds past max_hold (exit 7).
    let metric = Gate::metric(&ns, &errors).dimension("Side", "{side}").stat("Maximum").max(10.0);
    w.write("svc", &with(metric));
    let (out, err) = svc(&w, &["rollout"], 7);
    assert_snapshot!("rollout-held-progress", r.text(&err));
    assert_snapshot!("rollout-held", r.text(&out));
    svc(&w, &["rollback", "--to", "blue"], 0);

    // Rolled back before any traffic moved: a datapoint above max (exit 3).
    w.aws.put_metric(&ns, &errors, ("Side", "green"), 50.0).await;
    let (out, err) = svc(&w, &["rollout"], 3);
    assert_snapshot!("rollout-rolled-back-progress", r.text(&err));
    assert_snapshot!("rollout-rolled-back", r.text(&out));
    let (out, _) = svc(&w, &["-o", "json", "rollout"], 3);
    assert_snapshot!("rollout-rolled-back-json", r.json(&out));
    assert_eq!(front.weights().await, (100, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_say_why_with_exit_2_5_and_6() {
    let w = World::new().await;
    let front = Front::new(&w.aws).await;
    let table = unique("out-");
    let r = redact(&w, &front, None, Some(&table)).await;
    let rollout = Rollout::new(&[10.0, 50.0, 100.0]).bake("1h").poll("100ms");
    // A lease of a second: a killed run's runs out soon.
    w.write("svc", &Profile::new().alb(front.route()).rollout(rollout).state_leased(&table, "1s"));
    svc(&w, &["state", "init"], 0);

    // Exit 2: a profile that does not parse, a split that is none, a resource not there.
    w.write("bad", &Profile::new().alb(front.route()).rollout(Rollout::new(&[50.0, 10.0])));
    let (_, err) = expect(w.cutover().args(["-p", "bad", "validate"]), 2);
    assert_snapshot!("refused-invalid-profile", r.text(&err));
    snap_each(
        &w,
        &r,
        &[
            ("refused-invalid-split", &["set", "purple=10"], 2),
            ("refused-invalid-split-json", &["-o", "json", "set", "green=150"], 2),
        ],
    );
    w.write("half", &Profile::new().alb(AlbRoute::new(&front.listener, &front.blue, "no-such-tg")));
    let (_, err) = expect(w.cutover().args(["-p", "half", "status"]), 2);
    assert_snapshot!("refused-target-group-not-found", r.text(&err));

    // Exit 5: a running rollout holds the lease.
    let child =
        w.std_cutover().args(["-p", "svc", "rollout"]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    wait_until(30, "the first stage", || async { front.weights().await == (90, 10) }).await;
    snap_each(
        &w,
        &r,
        &[("refused-lease-held", &["advance"], 5), ("refused-lease-held-json", &["-o", "json", "rollout"], 5)],
    );
    let mut child = child;
    child.kill().unwrap();
    child.wait().unwrap();

    // Exit 6: the live split is not what the rollout recorded (the lease left to run out).
    front.set_weights(70, 30).await;
    wait_until(20, "the killed run's lease to run out", || async {
        let (code, out, _) = run(w.cutover().args(["-p", "svc", "-o", "json", "status"]));
        code == 0 && crate::json(&out)["rollout"]["lease_holder"].is_null()
    })
    .await;
    snap_each(
        &w,
        &r,
        &[
            ("refused-drift", &["advance"], 6),
            ("refused-drift-json", &["-o", "json", "promote"], 6),
            ("status-drift", &["status"], 0),
        ],
    );
    assert_eq!(front.weights().await, (70, 30));
}
