//! Waves: a train of three member profiles in three emulator regions (one moto serves every
//! region on one endpoint, keeping ALBs, alarms and tables per region as AWS does), driven by
//! `advance`, `rollout` and `rollback` on the wave profile; weights read back per region.

use crate::emulator::unique;
use crate::fixtures::Aws;
use crate::{World, expect, json, run};

const REGIONS: [&str; 3] = ["us-west-2", "eu-west-1", "ap-southeast-2"];

/// One wave's world: a front ALB in its region, its alarm, its member profile.
struct Region {
    aws: Aws,
    listener: String,
    blue: String,
    green: String,
    alarm: String,
}

impl Region {
    async fn new(w: &World, region: &str) -> Region {
        let aws = w.aws.in_region(region).await;
        let (vpc, subnets) = aws.network().await;
        let (lb, _, _) = aws.load_balancer(&unique("wv"), &subnets, &[]).await;
        let blue = aws.target_group(&unique("wvb"), &vpc, &["10.0.1.7"]).await;
        let green = aws.target_group(&unique("wvg"), &vpc, &["10.0.2.7"]).await;
        let listener = aws.listener(&lb, 80, Aws::forward(&[(&blue, 100), (&green, 0)], None), &[]).await;
        let alarm = unique("wave-5xx-");
        aws.alarm(&alarm).await;
        Region { aws, listener, blue, green, alarm }
    }

    /// (blue, green) of its listener, as the emulator has them.
    async fn weights(&self) -> (i32, i32) {
        let fw = self.aws.forward_weights(&self.listener, None).await;
        let get = |arn: &str| fw.iter().find(|(a, _)| a == arn).map(|(_, w)| *w).unwrap();
        (get(&self.blue), get(&self.green))
    }

    /// Its member profile: two stages, short bakes, one failed reading rolls it back.
    fn profile(&self, region: &str, table: &str) -> String {
        format!(
            "region = \"{region}\"\n\n[[alb]]\nlistener = \"{}\"\nblue = \"{}\"\ngreen = \"{}\"\n\n\
             [rollout]\nstages = [50, 100]\nbake = \"1s\"\npoll = \"200ms\"\nfailure_threshold = 1\n\n\
             [[gate]]\ntype = \"alarm\"\nalarms = [\"{}\"]\n\n[state]\ntable = \"{table}\"\n",
            self.listener, self.blue, self.green, self.alarm
        )
    }
}

/// Three regions with a member profile each (`wave-1` … `wave-3`, state tables created in their
/// regions), and the wave profile `global` over them.
async fn train(w: &World) -> Vec<Region> {
    let mut regions = Vec::new();
    for (i, region) in REGIONS.iter().enumerate() {
        let r = Region::new(w, region).await;
        let name = format!("wave-{}", i + 1);
        w.profile(&name, &r.profile(region, &unique("wave-state-")));
        // The member's own region (no AWS_REGION): its table is where the train will look.
        expect(w.cutover().env_remove("AWS_REGION").args(["-p", &name, "state", "init"]), 0);
        regions.push(r);
    }
    let table = unique("train-state-");
    w.profile(
        "global",
        &format!(
            "name = \"global\"\n[state]\ntable = \"{table}\"\n\n\
             [[wave]]\nprofile = \"wave-1\"\nbake_after = \"2s\"\n\n\
             [[wave]]\nprofile = \"wave-2\"\nbake_after = \"2s\"\n\n\
             [[wave]]\nprofile = \"wave-3\"\nbake_after = \"1s\"\n"
        ),
    );
    expect(w.cutover().args(["-p", "global", "state", "init"]), 0);
    regions
}

/// The waves' states as a train's JSON says them.
fn states(doc: &serde_json::Value) -> Vec<String> {
    doc["waves"].as_array().unwrap().iter().map(|w| w["state"].as_str().unwrap().to_string()).collect()
}

/// `advance -o json` on the train until `done` holds of its document (at most `calls` calls,
/// 200 ms apart); every call must exit 0. The last document.
async fn advance_until(
    w: &World,
    calls: usize,
    what: &str,
    done: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let mut last = serde_json::Value::Null;
    for _ in 0..calls {
        let (out, _) = expect(w.cutover().args(["-p", "global", "-o", "json", "advance", "--release", "v2"]), 0);
        last = json(&out);
        if done(&last) {
            return last;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    panic!("{what}: not after {calls} calls of advance; the last said\n{last:#}");
}

async fn all_weights(regions: &[Region]) -> Vec<(i32, i32)> {
    let mut out = Vec::new();
    for r in regions {
        out.push(r.weights().await);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_three_region_train_goes_wave_by_wave_halts_on_a_failure_in_wave_2_resumes_after_a_fix_and_rolls_all_back() {
    let w = World::new().await;
    let regions = train(&w).await;
    let (blue, green) = ((100, 0), (0, 100));

    // `validate` checks every member and prints the train in order.
    let (out, _) = expect(w.cutover().args(["-p", "global", "validate"]), 0);
    let (one, two, three) =
        (out.find("wave 1: wave-1").unwrap(), out.find("wave 2: wave-2").unwrap(), out.find("wave 3: wave-3"));
    assert!(one < two && three.is_some_and(|t| two < t), "{out}");

    // `iam-policy`: the union of the members' policies, and the train's own state item.
    let (out, _) = expect(w.cutover().args(["-p", "global", "iam-policy"]), 0);
    let policy = json(&out);
    let sids: Vec<&str> = policy["Statement"].as_array().unwrap().iter().filter_map(|s| s["Sid"].as_str()).collect();
    for wave in ["Wave1", "Wave2", "Wave3"] {
        assert!(sids.iter().any(|s| s.ends_with(wave)), "{wave} in {sids:?}");
    }
    assert!(sids.contains(&"TrainState"), "{sids:?}");
    for (r, region) in regions.iter().zip(REGIONS) {
        assert!(out.contains(&r.listener) && out.contains(region), "{region}'s listener in the policy:\n{out}");
    }

    // The first advance starts wave 1 at its first stage; nothing else moves.
    let (out, _) = expect(w.cutover().args(["-p", "global", "-o", "json", "advance", "--release", "v2"]), 0);
    let doc = json(&out);
    assert_eq!(states(&doc), ["progressing", "pending", "pending"], "{doc}");
    assert_eq!(doc["waves"][0]["release"], "v2", "{doc}");
    assert_eq!(all_weights(&regions).await, [(50, 50), blue, blue]);

    // Wave 1 completes; wave 2 waits for wave 1's bake after, its start time said.
    let doc = advance_until(&w, 40, "wave 1 completed", |d| states(d)[0] == "completed").await;
    assert_eq!(states(&doc), ["completed", "pending", "pending"], "{doc}");
    let completed = doc["waves"][0]["completed_at"].as_str().unwrap().to_string();
    let next = doc["waves"][1]["next_start"].as_str().unwrap().to_string();
    let at = |s: &str| humantime::parse_rfc3339(s).unwrap();
    assert_eq!(at(&next).duration_since(at(&completed)).unwrap().as_secs(), 2, "{doc}");
    assert_eq!(all_weights(&regions).await, [green, blue, blue]);

    // After the bake, wave 2 starts — not before its time.
    let doc = advance_until(&w, 60, "wave 2 started", |d| states(d)[1] == "progressing").await;
    let started = doc["waves"][1]["started_at"].as_str().unwrap();
    assert!(at(started) >= at(&next), "wave 2 started at {started}, before {next}");
    assert_eq!(all_weights(&regions).await, [green, (50, 50), blue]);

    // Wave 2's alarm goes off: wave 2 rolls back, the train halts (exit 3); wave 1 stays on green,
    // wave 3 is untouched.
    regions[1].aws.set_alarm(&regions[1].alarm, "ALARM").await;
    let (out, _) = expect(w.cutover().args(["-p", "global", "-o", "json", "advance", "--release", "v2"]), 3);
    let doc = json(&out);
    assert_eq!(doc["status"], "halted", "{doc}");
    assert_eq!(states(&doc), ["completed", "rolled_back", "halted"], "{doc}");
    assert_eq!(all_weights(&regions).await, [green, blue, blue]);

    // A scheduler's next tick does not run the failed wave again.
    let (out, _) = expect(w.cutover().args(["-p", "global", "-o", "json", "advance"]), 0);
    assert!(json(&out)["message"].as_str().unwrap().contains("halted at wave 2"), "{out}");
    let (out, _) = expect(w.cutover().args(["-p", "global", "-o", "json", "status"]), 0);
    let doc = json(&out);
    assert_eq!(states(&doc), ["completed", "rolled_back", "halted"], "{doc}");
    assert!(doc["waves"][2]["next_start"].is_null(), "a halted train says no start time: {doc}");
    assert_eq!(all_weights(&regions).await, [green, blue, blue]);

    // On call: `rollback` takes the newest wave back (it is back already) and keeps the train halted.
    let (out, _) = expect(w.cutover().args(["-p", "global", "-o", "json", "rollback"]), 0);
    let doc = json(&out);
    assert!(doc["message"].as_str().unwrap().contains("wave 2 (`wave-2`)"), "{doc}");
    assert_eq!(doc["status"], "halted", "{doc}");

    // The fix: the alarm clears. `resume` lets the next advance run wave 2 again …
    regions[1].aws.set_alarm(&regions[1].alarm, "OK").await;
    let (out, _) = expect(w.cutover().args(["-p", "global", "resume"]), 0);
    assert!(out.contains("runs wave 2 (`wave-2`) again"), "{out}");
    let (out, _) = expect(w.cutover().args(["-p", "global", "-o", "json", "advance", "--release", "v2"]), 0);
    assert_eq!(states(&json(&out)), ["completed", "progressing", "pending"], "{out}");
    assert_eq!(all_weights(&regions).await, [green, (50, 50), blue]);

    // … and `rollout` drives the train to its end: every region on green.
    let (out, err) = expect(w.cutover().args(["-p", "global", "-o", "json", "rollout", "--release", "v2"]), 0);
    let doc = json(&out);
    assert_eq!(doc["status"], "completed", "{doc}\n{err}");
    assert_eq!(states(&doc), ["completed", "completed", "completed"], "{doc}");
    assert_eq!(all_weights(&regions).await, [green, green, green]);
    assert!(err.contains("wave 3 (`wave-3`)"), "progress lines on stderr: {err}");

    // The audit trail of the train says what went where.
    let (out, _) = expect(w.cutover().args(["-p", "global", "-o", "json", "history", "--limit", "50"]), 0);
    let actions: Vec<String> =
        json(&out)["entries"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap().to_string()).collect();
    for want in ["wave-started", "wave-completed", "train-halted", "train-resumed", "train-completed"] {
        assert!(actions.iter().any(|a| a == want), "{want} in {actions:?}");
    }

    // `rollback --all-waves`: every region back on blue, newest first.
    let (out, _) = expect(
        w.cutover().args([
            "-p",
            "global",
            "-o",
            "json",
            "rollback",
            "--all-waves",
            "--reason",
            "INC-7: checkout errors",
        ]),
        0,
    );
    let doc = json(&out);
    let message = doc["message"].as_str().unwrap();
    let (w3, w1) = (message.find("wave 3").unwrap(), message.find("wave 1").unwrap());
    assert!(w3 < w1, "newest first: {message}");
    assert_eq!(doc["status"], "rolled_back", "{doc}");
    assert_eq!(states(&doc), ["rolled_back", "rolled_back", "rolled_back"], "{doc}");
    assert_eq!(all_weights(&regions).await, [blue, blue, blue]);
    // Each wave's own audit trail has the reason the caller gave.
    for member in ["wave-1", "wave-2", "wave-3"] {
        let (out, _) = expect(w.cutover().env_remove("AWS_REGION").args(["-p", member, "-o", "json", "history"]), 0);
        let said = json(&out)["entries"].as_array().unwrap().iter().any(|e| e["reason"] == "INC-7: checkout errors");
        assert!(said, "{member}: {out}");
    }
}

#[tokio::test]
async fn a_wave_profile_is_refused_with_routes_without_state_or_naming_a_missing_profile() {
    let w = World::new().await;
    let wave = "[[wave]]\nprofile = \"nowhere\"\nbake_after = \"1h\"\n";
    w.profile("mixed", &format!("[state]\ntable = \"t-1\"\n{wave}\n[[route53]]\nzone = \"a.com\"\n"));
    let (code, _, err) = run(w.cutover().args(["-p", "mixed", "status"]));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("`route53`") && err.contains("hint:"), "{err}");

    w.profile("stateless", wave);
    let (code, _, err) = run(w.cutover().args(["-p", "stateless", "advance"]));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("`state`") && err.contains("[state]"), "{err}");

    w.profile("missing", &format!("[state]\ntable = \"t-1\"\n{wave}"));
    let (code, _, err) = run(w.cutover().args(["-p", "missing", "validate"]));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("wave[0].profile") && err.contains("nowhere"), "{err}");

    // `--all-waves` and `--release` belong to wave profiles.
    w.profile("single", "[[route53]]\nzone = \"a.com\"\nrecord = \"api.a.com\"\nblue = \"b\"\ngreen = \"g\"\n");
    let (code, _, err) = run(w.cutover().args(["-p", "single", "rollback", "--all-waves"]));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("wave profiles"), "{err}");
}
