//! The command-line contract: finding profiles, profile errors, usage errors and exit codes.

use crate::{World, expect};

#[test]
fn every_shipped_profile_parses() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("profiles");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            cutover::profile::Profile::load(&path).unwrap_or_else(|e| panic!("{e}"));
            n += 1;
        }
    }
    assert!(n >= 1, "profiles/ holds at least the demo profile");
}

#[tokio::test]
async fn an_unknown_profile_lists_the_known_ones() {
    let w = World::new().await;
    w.profile("alpha", "[[route53]]\nzone = \"a.test.\"\nrecord = \"x.a.test.\"\nblue = \"b\"\ngreen = \"g\"\n");
    w.profile("beta", "[[route53]]\nzone = \"a.test.\"\nrecord = \"x.a.test.\"\nblue = \"b\"\ngreen = \"g\"\n");
    let (_, err) = expect(w.cutover().args(["-p", "gamma", "status"]), 2);
    assert!(err.contains("profile `gamma` not found") && err.contains("known: alpha, beta"), "{err}");
    let (_, err) = expect(w.cutover().args(["status"]), 2);
    assert!(err.contains("no profile given") && err.contains("CUTOVER_PROFILE"), "{err}");
}

#[tokio::test]
async fn an_invalid_profile_names_the_file_and_key_path_and_exits_2() {
    let w = World::new().await;
    let path = w.profile(
        "bad",
        "[[route53]]\nzone = \"a.test.\"\nrecord = \"x.a.test.\"\nblue = \"b\"\ngreen = \"g\"\n[rollout]\nstages = [10, 50, 25, 100]\n",
    );
    let (_, err) = expect(w.cutover().args(["-p", "bad", "set", "green=10"]), 2);
    assert!(
        err.contains("profiles/bad.toml") && err.contains("rollout.stages[2]") && err.contains("ascending"),
        "{err}"
    );

    w.profile("typo", "[[route53]]\nzone = \"a.test.\"\nrecords = \"x.a.test.\"\nblue = \"b\"\ngreen = \"g\"\n");
    let (out, err) = expect(w.cutover().args(["-p", "typo", "-o", "json", "validate"]), 2);
    assert!(err.contains("profiles/typo.toml") && err.contains("route53[0]") && err.contains("records"), "{err}");
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(doc["error"]["exit_code"], 2);

    // By path, and through CUTOVER_PROFILE.
    let (_, err) = expect(w.cutover().args(["-p", path.to_str().unwrap(), "validate"]), 2);
    assert!(err.contains("rollout.stages[2]"), "{err}");
    let (_, err) = expect(w.cutover().env("CUTOVER_PROFILE", "bad").args(["validate"]), 2);
    assert!(err.contains("rollout.stages[2]"), "{err}");
}

#[tokio::test]
async fn rollback_without_a_side_needs_the_state_table() {
    let w = World::new().await;
    w.profile("svc", "[[route53]]\nzone = \"a.test.\"\nrecord = \"x.a.test.\"\nblue = \"b\"\ngreen = \"g\"\n");
    let (_, err) = expect(w.cutover().args(["-p", "svc", "rollback"]), 2);
    assert!(err.contains("[state]") && err.contains("rollback --to blue"), "{err}");
}

#[tokio::test]
async fn usage_errors_exit_2() {
    let w = World::new().await;
    expect(w.cutover().args(["frobnicate"]), 2);
    expect(w.cutover().args(["-p", "x", "rollback", "--to", "purple"]), 2);
}

#[tokio::test]
async fn without_a_region_anywhere_the_command_is_refused_naming_where_one_goes() {
    let w = World::new().await;
    w.profile("noregion", "[[route53]]\nzone = \"x.test.\"\nrecord = \"api.x.test.\"\nblue = \"b\"\ngreen = \"g\"\n");
    let (out, err) = expect(w.cutover().env_remove("AWS_REGION").args(["-p", "noregion", "status"]), 2);
    assert!(out.is_empty(), "{out}");
    assert!(err.contains("no AWS region") && err.contains("noregion.toml") && err.contains("AWS_REGION"), "{err}");
    // The profile's region applies when the environment names none.
    w.profile("withregion", "region = \"eu-west-1\"\n[[route53]]\nzone = \"x.test.\"\nrecord = \"api.x.test.\"\nblue = \"b\"\ngreen = \"g\"\n");
    let (_, err) = expect(w.cutover().env_remove("AWS_REGION").args(["-p", "withregion", "status"]), 2);
    assert!(!err.contains("no AWS region") && err.contains("x.test."), "{err}");
}
