//! The command-line contract: finding profiles, profile errors, usage errors and exit codes.

use crate::scenario::{AlbRoute, Profile, Records, Rollout, Route53};
use crate::snap::Redact;
use crate::{World, expect};

/// A profile of one route in a zone that need not exist.
fn somewhere() -> Profile {
    Profile::new().route53(Route53::new("a.test.", "x.a.test.").sets("b", "g"))
}

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
async fn a_profile_in_s3_runs_status_and_a_missing_one_names_its_bucket_and_key() {
    let w = World::new().await;
    let pair = Records::alias(&w.aws, (90, 10)).await;
    let bucket = crate::emulator::unique("profiles-");
    let profile = Profile::new().route53(pair.route());
    w.aws.object(&bucket, "cutover/myapp.toml", &profile.to_string()).await;
    let broken = profile.rollout(Rollout::new(&[50.0, 10.0]));
    w.aws.object(&bucket, "cutover/broken.toml", &broken.to_string()).await;

    let url = format!("s3://{bucket}/cutover/myapp.toml");
    let (out, _) = expect(w.cutover().args(["-p", &url, "-o", "json", "status"]), 0);
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(doc["profile"], "myapp", "named after the key's file: {doc}");
    assert_eq!(doc["routes"][0]["weights"]["green"], 10, "{doc}");
    // CUTOVER_PROFILE the same, with no checkout of the profiles anywhere.
    let (out, _) = expect(w.cutover().env("CUTOVER_PROFILE", &url).args(["status"]), 0);
    assert!(out.contains(&pair.record), "{out}");
    // What the profile needs to be read is in its policy.
    let (out, _) = expect(w.cutover().args(["-p", &url, "iam-policy"]), 0);
    assert!(
        out.contains("s3:GetObject") && out.contains(&format!("arn:aws:s3:::{bucket}/cutover/myapp.toml")),
        "{out}"
    );

    let (_, err) = expect(w.cutover().args(["-p", &format!("s3://{bucket}/cutover/nope.toml"), "status"]), 2);
    assert!(
        err.contains(&format!("bucket `{bucket}` has no key `cutover/nope.toml`")) && err.contains("hint:"),
        "{err}"
    );
    let (_, err) = expect(w.cutover().args(["-p", "s3://no-such-bucket-anywhere/x.toml", "status"]), 2);
    assert!(err.contains("no bucket `no-such-bucket-anywhere`"), "{err}");
    let (_, err) = expect(w.cutover().args(["-p", &format!("s3://{bucket}"), "status"]), 2);
    assert!(err.contains("names no object"), "{err}");
    // A bad profile in S3 names the object and the key path, as a file's would.
    let (_, err) = expect(w.cutover().args(["-p", &format!("s3://{bucket}/cutover/broken.toml"), "validate"]), 2);
    assert!(err.contains(&format!("s3://{bucket}/cutover/broken.toml")) && err.contains("rollout.stages"), "{err}");
}

#[tokio::test]
async fn an_unknown_profile_lists_the_known_ones() {
    let w = World::new().await;
    w.write("alpha", &somewhere());
    w.write("beta", &somewhere());
    let (_, unknown) = expect(w.cutover().args(["-p", "gamma", "status"]), 2);
    let (_, none) = expect(w.cutover().args(["status"]), 2);
    let r = Redact::new().name(&w.dir.path().display().to_string(), "[dir]");
    insta::assert_snapshot!("refused-unknown-profile", r.text(&format!("{unknown}---\n{none}")));
}

#[tokio::test]
async fn an_invalid_profile_names_the_file_and_key_path_and_exits_2() {
    let w = World::new().await;
    let path = w.write("bad", &somewhere().rollout(Rollout::new(&[10.0, 50.0, 25.0, 100.0])));
    let (_, bad) = expect(w.cutover().args(["-p", "bad", "set", "green=10"]), 2);

    w.profile("typo", "[[route53]]\nzone = \"a.test.\"\nrecords = \"x.a.test.\"\nblue = \"b\"\ngreen = \"g\"\n");
    let (out, typo) = expect(w.cutover().args(["-p", "typo", "-o", "json", "validate"]), 2);
    // The file, the key path and what is wrong there.
    insta::assert_snapshot!("refused-invalid-profiles", format!("{bad}---\n{typo}"));
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
    w.write("svc", &somewhere());
    let (_, err) = expect(w.cutover().args(["-p", "svc", "rollback"]), 2);
    assert!(err.contains("[state]") && err.contains("rollback --to blue"), "{err}");
}

#[tokio::test]
async fn usage_errors_exit_2() {
    let w = World::new().await;
    expect(w.cutover().args(["frobnicate"]), 2);
    expect(w.cutover().args(["-p", "x", "rollback", "--to", "purple"]), 2);
    // `--yes` belongs to the commands that ask; before the command (the documented synopsis) it
    // is taken, and ignored by the others.
    let (_, err) = expect(w.cutover().args(["-p", "x", "status", "--yes"]), 2);
    assert!(err.contains("unexpected argument '--yes'"), "{err}");
    let (_, err) = expect(w.cutover().args(["-p", "x", "--yes", "status"]), 2);
    assert!(err.contains("profile `x` not found"), "parsed, then refused for the profile: {err}");
    // `history --limit 0` would print nothing at all: refused, saying why.
    let (_, err) = expect(w.cutover().args(["-p", "x", "history", "--limit", "0"]), 2);
    assert!(err.contains("at least 1"), "{err}");
}

#[tokio::test]
async fn without_a_region_anywhere_the_command_is_refused_naming_where_one_goes() {
    let w = World::new().await;
    let route = Route53::new("x.test.", "api.x.test.").sets("b", "g");
    w.write("noregion", &Profile::new().route53(route.clone()));
    let (out, err) = expect(w.cutover().env_remove("AWS_REGION").args(["-p", "noregion", "status"]), 2);
    assert!(out.is_empty(), "{out}");
    let r = Redact::new().name(&w.dir.path().display().to_string(), "[dir]");
    insta::assert_snapshot!("refused-no-region", r.text(&err));
    // The profile's region applies when the environment names none.
    w.write("withregion", &Profile::new().region("eu-west-1").route53(route));
    let (_, err) = expect(w.cutover().env_remove("AWS_REGION").args(["-p", "withregion", "status"]), 2);
    assert!(!err.contains("no AWS region") && err.contains("x.test."), "{err}");
}

#[tokio::test]
async fn usage_errors_with_json_output_print_the_error_document_on_stdout() {
    let w = World::new().await;
    for args in [
        &["-o", "json", "frobnicate"][..],
        &["--output=json", "rollback", "--to", "purple"],
        &["-ojson", "set"],
        &["rollback", "--wait-timeout", "5m", "--output", "json"],
    ] {
        let (out, err) = expect(w.cutover().args(args), 2);
        let doc: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: {e}: {out:?}"));
        assert_eq!(doc["error"]["exit_code"], 2, "{args:?}");
        let message = doc["error"]["message"].as_str().unwrap();
        assert!(!message.is_empty() && !message.contains('\u{1b}'), "{args:?}: {message:?}");
        assert!(err.contains("error:") && err.contains("--help"), "clap's own words stay on stderr: {err}");
    }
    // Text output keeps stdout empty; help is no error.
    let (out, _) = expect(w.cutover().args(["frobnicate"]), 2);
    assert!(out.is_empty(), "{out}");
    let (out, _) = expect(w.cutover().args(["-o", "json", "--help"]), 0);
    assert!(out.contains("Usage:"), "{out}");
}

#[tokio::test]
async fn a_closed_pipe_ends_the_output_quietly() {
    let w = World::new().await;
    w.write("svc", &somewhere());
    for args in [&["-p", "svc", "iam-policy"][..], &["completions", "bash"], &["man"]] {
        // The reader is gone before cutover writes (`cutover … | head -0`).
        let mut child = w
            .std_cutover()
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {err}");
        assert!(!err.contains("panicked") && !err.contains("Broken pipe"), "{args:?}: {err}");
    }
}

#[tokio::test]
async fn completions_man_page_and_version_come_from_the_command_line_itself() {
    let w = World::new().await;
    for shell in ["bash", "zsh", "fish", "powershell"] {
        let (out, _) = expect(w.cutover().args(["completions", shell]), 0);
        assert!(out.contains("cutover") && out.contains("rollback") && out.contains("profiles-dir"), "{shell}: {out}");
    }
    let (out, _) = expect(w.cutover().args(["man"]), 0);
    assert!(out.contains(".TH cutover 1") && out.contains("rollback"), "{out}");
    let (out, _) = expect(w.cutover().args(["--version"]), 0);
    // `cutover 0.1.0 (0123456789ab, built 2026-12-01)`
    let inner = out.split_once('(').and_then(|(_, r)| r.split_once(')')).map(|(i, _)| i).unwrap_or_default();
    let (commit, built) = inner.split_once(", built ").unwrap_or_else(|| panic!("{out}"));
    assert!(!commit.is_empty() && built.len() == 10 && built.as_bytes()[4] == b'-', "{out}");
    expect(w.cutover().args(["completions", "tcsh"]), 2);
}

#[tokio::test]
async fn profiles_fall_back_to_the_users_config_folder_and_not_found_names_every_folder() {
    let w = World::new().await;
    let config = w.dir.path().join("config");
    let dir = config.join("cutover").join("profiles");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("mine.toml"), somewhere().rollout(Rollout::new(&[50.0, 25.0, 100.0])).to_string()).unwrap();
    // Found in $XDG_CONFIG_HOME/cutover/profiles (its error names that file).
    let (_, found) = expect(w.cutover().env("XDG_CONFIG_HOME", &config).args(["-p", "mine", "validate"]), 2);
    // Not found: every folder searched, and how to point elsewhere.
    let (_, missing) = expect(w.cutover().env("XDG_CONFIG_HOME", &config).args(["-p", "theirs", "validate"]), 2);
    // An explicit folder is the only one searched.
    let (_, elsewhere) = expect(
        w.cutover().env("XDG_CONFIG_HOME", &config).args(["--profiles-dir", "elsewhere", "-p", "mine", "validate"]),
        2,
    );
    let r = Redact::new().name(&w.dir.path().display().to_string(), "[dir]");
    insta::assert_snapshot!("profiles-in-the-config-folder", r.text(&format!("{found}---\n{missing}---\n{elsewhere}")));
}

#[tokio::test]
async fn an_endpoint_where_nothing_listens_fails_at_once_in_one_sentence_with_a_hint() {
    let w = World::new().await;
    w.write("svc", &somewhere());
    // A loopback port nothing listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let started = std::time::Instant::now();
    let (out, err) =
        expect(w.cutover().env("AWS_ENDPOINT_URL", &endpoint).args(["-p", "svc", "-o", "json", "status"]), 1);
    let took = started.elapsed();
    // One sentence, the call and the zone named, a hint.
    insta::assert_snapshot!("an-endpoint-where-nothing-listens", Redact::new().text(&err));
    assert!(!err.contains("DispatchFailure") && !err.contains("ConnectorError"), "no debug dumps: {err}");
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(doc["error"]["exit_code"], 1);
    // The SDK's 8 attempts with backoff took 10–15 s here; a refused connection is not retried.
    assert!(took < std::time::Duration::from_secs(5), "took {took:?}");
}

#[tokio::test]
async fn log_lines_carry_no_colour_codes_off_a_terminal() {
    let w = World::new().await;
    let pair = Records::alias(&w.aws, (100, 0)).await;
    w.write("svc", &Profile::new().route53(pair.route()));
    let (_, err) = expect(w.cutover().env("CUTOVER_LOG", "debug").args(["-p", "svc", "status"]), 0);
    assert!(err.contains("DEBUG"), "debug logs: {err}");
    assert!(!err.contains('\u{1b}'), "no escape codes in piped stderr: {err:?}");
    // `-v` says where the calls go.
    let (_, err) = expect(w.cutover().args(["-p", "svc", "-v", "status"]), 0);
    assert!(err.contains("talking to account 123456789012 in us-west-2 at http://127.0.0.1:"), "{err}");
}

#[tokio::test]
async fn with_json_logs_an_error_is_a_json_line_too() {
    let w = World::new().await;
    let (_, err) = expect(w.cutover().args(["--log-format", "json", "-p", "nope", "status"]), 2);
    let line: serde_json::Value =
        serde_json::from_str(err.lines().last().unwrap_or_default()).unwrap_or_else(|e| panic!("{e}: {err}"));
    assert_eq!(line["level"], "ERROR", "{err}");
    assert_eq!(line["exit_code"], 2, "{err}");
    assert!(line["message"].as_str().unwrap().contains("profile `nope` not found"), "{err}");
}

#[tokio::test]
async fn help_groups_global_options_lists_the_sides_and_ends_with_the_exit_codes() {
    let w = World::new().await;
    let (out, _) = expect(w.cutover().args(["rollback", "--help"]), 0);
    insta::assert_snapshot!("help-rollback", out);
    let (top, _) = expect(w.cutover().args(["--help"]), 0);
    insta::assert_snapshot!("help", top);
    let (_, err) = expect(w.cutover().args(["-p", "x", "rollout", "--to", "purple"]), 2);
    assert!(err.contains("[possible values: blue, green]"), "{err}");
}

#[tokio::test]
async fn a_missing_regional_resource_names_the_region_it_was_looked_up_in() {
    let w = World::new().await;
    let listener =
        "arn:aws:elasticloadbalancing:us-west-2:123456789012:listener/app/nope/0123456789abcdef/0123456789abcdef";
    w.write("svc", &Profile::new().alb(AlbRoute::new(listener, "a", "b")));
    let (_, err) = expect(w.cutover().args(["-p", "svc", "status"]), 2);
    assert!(err.contains("not found") && err.contains("(looked up in region us-west-2)"), "{err}");
}

/// Issue 26: `AWS_REGION=us-wset-2 cutover status` against an endpoint answering a bare 500 said
/// "error: elbv2 DescribeLoadBalancers demo-front: error" — no code, no status, no hint. The
/// error names the HTTP status and the endpoint, and the misspelt region as such.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_answering_a_bare_500_in_an_unknown_region_names_the_status_the_endpoint_and_the_region() {
    use wiremock::{Mock, MockServer, ResponseTemplate};
    let w = World::new().await;
    w.write("svc", &somewhere());
    let server = MockServer::start().await;
    Mock::given(wiremock::matchers::any()).respond_with(ResponseTemplate::new(500)).mount(&server).await;
    let (_, err) = expect(
        w.cutover().env("AWS_ENDPOINT_URL", server.uri()).env("AWS_REGION", "us-wset-2").args(["-p", "svc", "status"]),
        1,
    );
    assert!(err.contains("HTTP 500"), "the status: {err}");
    assert!(err.contains(&server.uri()) && err.contains("AWS_ENDPOINT_URL"), "the endpoint: {err}");
    assert!(err.contains("`us-wset-2`") && err.contains("not a known AWS region"), "the region: {err}");
    assert!(err.contains("did you mean `us-west-2`?"), "{err}");
    assert!(!err.trim_end().ends_with(": error"), "{err}");
}

#[tokio::test]
async fn region_flag_wins_over_aws_region_as_the_aws_clis_does() {
    let w = World::new().await;
    let f = crate::scenario::Front::new(&w.aws).await;
    w.write("svc", &Profile::new().alb(f.route()));
    expect(w.cutover().args(["-p", "svc", "status"]), 0);
    // The front is in us-west-2 (AWS_REGION): looked up elsewhere, it is not found — there.
    let (_, err) = expect(w.cutover().args(["-p", "svc", "--region", "eu-west-1", "status"]), 2);
    assert!(err.contains("(looked up in region eu-west-1)"), "{err}");
    // After the command too, and over AWS_REGION.
    expect(w.cutover().env("AWS_REGION", "eu-west-1").args(["-p", "svc", "status", "--region", "us-west-2"]), 0);
    let (_, err) = expect(w.cutover().args(["--region", "", "-p", "svc", "status"]), 2);
    assert!(err.contains("name a region"), "{err}");
}

#[tokio::test]
async fn a_read_typo_is_never_offered_a_write_and_words_from_other_tools_get_the_command_they_mean() {
    let w = World::new().await;
    // `get` is a read: clap alone offers `set`.
    let (_, err) = expect(w.cutover().args(["get"]), 2);
    assert!(!err.contains("'set'") && err.contains("`cutover status`"), "{err}");
    for read in ["show", "describe", "list"] {
        let (_, err) = expect(w.cutover().args([read]), 2);
        assert!(err.contains("`cutover status`") && !WRITE_WORDS.iter().any(|c| err.contains(c)), "{err}");
    }
    let (_, err) = expect(w.cutover().args(["logs"]), 2);
    assert!(err.contains("`cutover history`"), "{err}");
    let (_, err) = expect(w.cutover().args(["undo"]), 2);
    assert!(err.contains("`cutover rollback`"), "{err}");
    // A misspelt write is still offered (the on-call engineer typing fast).
    let (_, err) = expect(w.cutover().args(["rollbak"]), 2);
    assert!(err.contains("'rollback'"), "{err}");
    // With -o json, the error document as for every usage error.
    let (out, _) = expect(w.cutover().args(["-o", "json", "get"]), 2);
    assert_eq!(crate::json(&out)["error"]["exit_code"], 2, "{out}");
}

/// Writes as clap would quote them in a suggestion.
const WRITE_WORDS: [&str; 7] = ["'set'", "'rollout'", "'advance'", "'rollback'", "'promote'", "'pause'", "'resume'"];

#[tokio::test]
async fn abort_is_rollback_and_help_lists_rollback_and_status_first() {
    let w = World::new().await;
    let pair = Records::alias(&w.aws, (90, 10)).await;
    w.write("svc", &Profile::new().route53(pair.route()));
    let (out, _) = expect(w.cutover().args(["-p", "svc", "abort", "--to", "blue", "-y"]), 0);
    assert!(out.contains("rollback to blue"), "{out}");
    assert_eq!(pair.weights().await, (100, 0));
    let (top, _) = expect(w.cutover().args(["--help"]), 0);
    let commands: Vec<&str> = top
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take(2)
        .map(|l| l.split_whitespace().next().unwrap_or_default())
        .collect();
    assert_eq!(commands, ["rollback", "status"], "{top}");
    assert!(top.contains("[alias: abort]"), "{top}");
}

#[tokio::test]
async fn man_dir_writes_every_page_the_man_page_names_with_environment_exit_status_and_examples() {
    let w = World::new().await;
    let dir = w.dir.path().join("man1");
    let (out, _) = expect(w.cutover().args(["man", "--dir", dir.to_str().unwrap()]), 0);
    let written: Vec<&str> = out.lines().collect();
    assert!(written.len() > 10, "{out}");
    let references = regex::Regex::new(r"(?:\\fB)?(cutover(?:\\-[a-z]+)*)(?:\\fR)?\(1\)").unwrap();
    let mut named = std::collections::BTreeSet::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        for c in references.captures_iter(&text) {
            named.insert(c[1].replace("\\-", "-"));
        }
    }
    for page in ["cutover", "cutover-rollback", "cutover-status", "cutover-state-init"] {
        assert!(named.contains(page), "{page} is named: {named:?}");
    }
    for page in &named {
        assert!(dir.join(format!("{page}.1")).is_file(), "{page}(1) is named but not written: {out}");
    }
    let top = std::fs::read_to_string(dir.join("cutover.1")).unwrap();
    let (printed, _) = expect(w.cutover().args(["man"]), 0);
    assert_eq!(printed, top, "`man` prints the page `man --dir` writes");
    for heading in [".SH ENVIRONMENT", ".SH \"EXIT STATUS\"", ".SH EXAMPLES"] {
        assert!(top.contains(heading), "{heading}: {top}");
    }
    assert!(top.contains("CUTOVER_PROFILE") && top.contains("cutover \\-p myapp rollback"), "{top}");
    let rollback = std::fs::read_to_string(dir.join("cutover-rollback.1")).unwrap();
    assert!(rollback.contains("\\-\\-reason") && rollback.contains(".SH \"EXIT STATUS\""), "{rollback}");
}
