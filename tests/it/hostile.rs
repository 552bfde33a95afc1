//! Hostile input and hostile invokers (issue 23): nothing that reaches cutover moves traffic it
//! should not, crashes it, or reads its secrets. Each test is what an attacker or a careless user
//! tried, and what they now see: a Lambda event that picks the profile or the side, a webhook
//! token in a URL, a profile bucket of another account, a gate that streams or redirects, bounds
//! past any sense, a state item no cutover wrote, two profiles of one name, control characters,
//! a listener a CloudFormation stack made without saying so in a tag.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper::{Request, Response};

use crate::emulator::{proxy, unique};
use crate::fixtures::Aws;
use crate::lambda::{Queue, Told, runtime_api};
use crate::proxy::Config;
use crate::{World, expect, run, wait_until};

// ---------------------------------------------------------------------------------------------
// What the tests stand on: an ALB route, a DynamoDB client, an HTTP server that answers as told,
// a Lambda Runtime API.

/// An ALB listener forwarding to a blue and a green target group, blue 100.
struct Alb {
    listener: String,
    blue: String,
    green: String,
}

impl Alb {
    async fn new(w: &World) -> Alb {
        let (vpc, subnets) = w.aws.network().await;
        let (lb, _, _) = w.aws.load_balancer(&unique("ho"), &subnets, &[]).await;
        let blue = w.aws.target_group(&unique("hb"), &vpc, &["10.0.1.5"]).await;
        let green = w.aws.target_group(&unique("hg"), &vpc, &["10.0.2.5"]).await;
        let listener = w.aws.listener(&lb, 80, Aws::forward(&[(&blue, 100), (&green, 0)], None), &[]).await;
        Alb { listener, blue, green }
    }

    fn route(&self) -> String {
        format!("[[alb]]\nlistener = \"{}\"\nblue = \"{}\"\ngreen = \"{}\"\n", self.listener, self.blue, self.green)
    }

    /// (blue, green) weights as the emulator has them.
    async fn weights(&self, w: &World) -> (i32, i32) {
        let all = w.aws.forward_weights(&self.listener, None).await;
        let of = |tg: &str| all.iter().find(|(a, _)| a == tg).map(|(_, w)| *w).unwrap_or(-1);
        (of(&self.blue), of(&self.green))
    }
}

async fn dynamodb(w: &World) -> aws_sdk_dynamodb::Client {
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(&w.aws.endpoint)
        .region(aws_config::Region::new("us-west-2"))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new("test", "test", None, None, "hostile"))
        .load()
        .await;
    aws_sdk_dynamodb::Client::new(&config)
}

/// Every item of `table`, as one text: what anyone reading the table sees.
async fn table_text(w: &World, table: &str) -> String {
    let out = dynamodb(w).await.scan().table_name(table).send().await.expect("Scan");
    format!("{:?}", out.items())
}

fn json(out: &str) -> serde_json::Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("not JSON ({e}):\n{out}"))
}

/// How a test server answers.
#[derive(Clone)]
enum Answer {
    Status(u16),
    Redirect(u16, String),
    /// 200 and a body that never ends.
    Endless,
    /// Never.
    Hang,
}

/// An HTTP server on a free loopback port, answering every request as told and keeping what it
/// was sent: (path, body).
struct Hook {
    base: String,
    seen: Arc<Mutex<Vec<(String, String)>>>,
}

type Body = http_body_util::combinators::BoxBody<Bytes, Infallible>;

async fn hook(answer: Answer) -> Hook {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let seen: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let s = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { continue };
            let (seen, answer) = (s.clone(), answer.clone());
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                    let (seen, answer) = (seen.clone(), answer.clone());
                    async move {
                        let path = req.uri().to_string();
                        let body = req.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
                        seen.lock().unwrap().push((path, String::from_utf8_lossy(&body).into_owned()));
                        let response: Response<Body> = match answer {
                            Answer::Status(code) => Response::builder()
                                .status(code)
                                .body(Full::new(Bytes::from_static(b"{}")).boxed())
                                .unwrap(),
                            Answer::Redirect(code, to) => Response::builder()
                                .status(code)
                                .header("location", to)
                                .body(Full::new(Bytes::new()).boxed())
                                .unwrap(),
                            Answer::Endless => {
                                let chunk = Bytes::from(vec![b'x'; 64 * 1024]);
                                let frames = futures::stream::repeat_with(move || Ok(Frame::data(chunk.clone())));
                                Response::builder().status(200).body(StreamBody::new(frames).boxed()).unwrap()
                            }
                            Answer::Hang => {
                                futures::future::pending::<()>().await;
                                unreachable!()
                            }
                        };
                        Ok::<_, Infallible>(response)
                    }
                });
                let io = hyper_util::rt::TokioIo::new(stream);
                let _ = hyper::server::conn::http1::Builder::new().serve_connection(io, service).await;
            });
        }
    });
    Hook { base, seen }
}

/// The function: this binary started by the Lambda runtime, with `env` as its configuration; its
/// log (stderr) collected.
fn function(w: &World, api: &str, env: &[(&str, &str)]) -> (tokio::process::Child, Arc<Mutex<String>>) {
    let mut f = w.std_cutover();
    f.env("AWS_LAMBDA_RUNTIME_API", api)
        .env("AWS_LAMBDA_FUNCTION_NAME", "cutover")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    for (k, v) in env {
        f.env(k, v);
    }
    let mut child = tokio::process::Command::from(f).kill_on_drop(true).spawn().unwrap();
    let log: Arc<Mutex<String>> = Arc::default();
    let (mut stderr, l) = (child.stderr.take().unwrap(), log.clone());
    tokio::spawn(async move {
        use tokio::io::AsyncReadExt;
        let mut buf = [0u8; 8192];
        while let Ok(n) = stderr.read(&mut buf).await {
            if n == 0 {
                break;
            }
            l.lock().unwrap().push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    (child, log)
}

/// Invokes the function with `event` (number `i`) and waits for what it answered.
async fn invoke(queue: &Queue, told: &Told, i: usize, event: serde_json::Value) -> (String, serde_json::Value) {
    queue.lock().unwrap().push_back((i, event));
    let id = format!("req-{i}");
    wait_until(90, &format!("invocation {i}'s answer"), || async {
        told.lock().unwrap().iter().any(|(_, r, _)| *r == id)
    })
    .await;
    let (kind, _, doc) = told.lock().unwrap().iter().find(|(_, r, _)| *r == id).cloned().unwrap();
    (kind, doc)
}

/// A profile over `alb` with a state table (made), `extra` appended.
async fn stateful(w: &World, name: &str, alb: &Alb, extra: &str) -> String {
    let table = unique("ho-");
    w.profile(
        name,
        &format!(
            "{}[state]\ntable = \"{table}\"\n[rollout]\nstages = [10, 50, 100]\nbake = \"1h\"\npoll = \"100ms\"\nfailure_threshold = 1\n{extra}",
            alb.route()
        ),
    );
    expect(w.cutover().args(["-p", name, "state", "init"]), 0);
    table
}

// ---------------------------------------------------------------------------------------------
// The Lambda runner.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lambda_event_picks_neither_the_profile_nor_the_side_and_a_failure_is_named_by_its_outcome() {
    let w = World::new().await;
    let alb = Alb::new(&w).await;
    let alarm = unique("ho-green-");
    w.aws.alarm(&alarm).await;
    stateful(&w, "lam", &alb, &format!("[[gate]]\ntype = \"alarm\"\nalarms = [\"{alarm}\"]\n")).await;
    std::fs::write(w.dir.path().join("elsewhere.toml"), "not = \"a profile\"\n").unwrap();
    let (api, queue, told) = runtime_api(Duration::from_secs(120)).await;
    let (mut child, _) = function(&w, &api, &[("CUTOVER_PROFILE", "lam")]);

    // The event names a file, a device, a bucket: refused, nothing read, nothing moved.
    for (i, profile) in ["../elsewhere.toml", "/dev/zero", "s3://attacker/x.toml", "elsewhere"].iter().enumerate() {
        let (kind, doc) = invoke(&queue, &told, i, serde_json::json!({"command": "advance", "profile": profile})).await;
        assert_eq!(kind, "error", "{profile}: {doc}");
        assert_eq!(doc["errorType"], "Cutover.Invalid", "{profile}: {doc}");
        assert!(doc["errorMessage"].as_str().unwrap().contains("CUTOVER_PROFILE"), "{doc}");
    }
    // The event names the side: refused unless the function allows it; traffic stays on blue.
    let (kind, doc) = invoke(&queue, &told, 10, serde_json::json!({"command": "rollback", "to": "green"})).await;
    assert_eq!((kind.as_str(), &doc["errorType"]), ("error", &serde_json::json!("Cutover.Invalid")), "{doc}");
    assert!(doc["errorMessage"].as_str().unwrap().contains("CUTOVER_LAMBDA_ALLOW_TO"), "{doc}");
    assert_eq!(alb.weights(&w).await, (100, 0));

    // The configured profile's tick starts the rollout (toward the side that is not live).
    let (kind, doc) = invoke(&queue, &told, 11, serde_json::json!({"command": "advance"})).await;
    assert_eq!(kind, "response", "{doc}");
    assert_eq!(alb.weights(&w).await, (90, 10));
    // The alarm fires: the next tick rolls back, a failure named for what happened.
    w.aws.set_alarm(&alarm, "ALARM").await;
    let (kind, doc) = invoke(&queue, &told, 12, serde_json::json!({"command": "advance"})).await;
    child.kill().await.ok();
    assert_eq!(kind, "error", "{doc}");
    assert_eq!(doc["errorType"], "Cutover.RolledBack", "{doc}");
    assert!(doc["errorMessage"].as_str().unwrap().contains("exited 3"), "{doc}");
    assert_eq!(alb.weights(&w).await, (100, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_stopped_at_the_deadline_has_streamed_its_log_and_an_overlapping_tick_is_a_result() {
    let w = World::new().await;
    let (slow_alb, busy_alb) = (Alb::new(&w).await, Alb::new(&w).await);
    // A webhook gate that never answers holds a tick at its first reading.
    let slow = hook(Answer::Hang).await;
    let gate = format!("[[gate]]\ntype = \"webhook\"\nurl = \"{}/confirm\"\ntimeout = \"4m\"\n", slow.base);
    stateful(&w, "tick", &slow_alb, &gate).await;
    stateful(&w, "busy", &busy_alb, "").await;
    // A deadline the tick's reads reach well within, even on a busy machine; its gate never answers.
    let (api, queue, told) = runtime_api(Duration::from_secs(15)).await;
    let (mut child, log) = function(
        &w,
        &api,
        &[("CUTOVER_PROFILES", "tick, busy"), ("CUTOVER_LAMBDA_ALLOW_TO", "true"), ("CUTOVER_LOG", "debug")],
    );

    // The runner stops the tick a second before the deadline: a failure, and what the command
    // logged until then is in the function's log.
    let event = serde_json::json!({"command": "advance", "profile": "tick", "to": "green"});
    let (kind, doc) = invoke(&queue, &told, 0, event).await;
    assert_eq!(kind, "error", "{doc}");
    assert_eq!(doc["errorType"], "Cutover.Failed", "{doc}");
    assert!(doc["errorMessage"].as_str().unwrap().contains("deadline"), "{doc}");
    assert!(!slow.seen.lock().unwrap().is_empty(), "the tick was reading its gate when it was stopped");
    // What the stopped command had logged is in the function's log.
    let logged = || async { log.lock().unwrap().lines().any(|l| l.contains("\"level\":\"DEBUG\"")) };
    wait_until(10, "the stopped command's log lines in the function's log", logged).await;
    assert_eq!(slow_alb.weights(&w).await, (100, 0));

    // A running rollout holds the lease; the schedule's tick finds it held: exit 5, a result.
    let mut rollout = w.std_cutover();
    rollout
        .args(["-p", "busy", "rollout", "--to", "green"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut running = rollout.spawn().unwrap();
    wait_until(60, "the rollout's first stage", || async { busy_alb.weights(&w).await == (90, 10) }).await;
    let (kind, doc) = invoke(&queue, &told, 1, serde_json::json!({"command": "advance", "profile": "busy"})).await;
    let _ = running.kill();
    let _ = running.wait();
    child.kill().await.ok();
    assert_eq!(kind, "response", "an overlapping tick is no failure: {doc}");
    assert_eq!(doc["error"]["exit_code"], 5, "{doc}");
    assert_eq!(busy_alb.weights(&w).await, (90, 10));
}

// ---------------------------------------------------------------------------------------------
// Secrets.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_token_and_an_external_id_reach_no_output_log_state_item_audit_line_or_notification() {
    let w = World::new().await;
    let alb = Alb::new(&w).await;
    let gate = hook(Answer::Status(500)).await;
    let slack = hook(Answer::Status(500)).await;
    // A gate of a role in another account, with an external id (the kit's moto keeps each
    // account's alarms apart).
    let role = "arn:aws:iam::222222222222:role/ho-gate";
    let alarm = unique("ho-alarm-");
    w.aws.assuming(role).await.alarm(&alarm).await;
    let table = stateful(
        &w,
        "sec",
        &alb,
        &format!(
            "max_hold = \"0s\"\n\
             [notify]\nwebhook = \"{}/services/T111/B111/NOTIFYSECRET\"\n\
             [[gate]]\ntype = \"webhook\"\nurl = \"{}/services/T000/B000/GATESECRET\"\n\
             [[gate]]\ntype = \"alarm\"\nalarms = [\"{alarm}\"]\nrole_arn = \"{role}\"\nexternal_id = \"extid-SECRET-42\"\n",
            slack.base, gate.base
        ),
    )
    .await;
    let clean = |what: &str, text: &str| {
        for secret in ["GATESECRET", "NOTIFYSECRET", "T000", "T111", "extid-SECRET-42"] {
            assert!(!text.contains(secret), "{what} shows {secret}:\n{text}");
        }
    };

    // The webhook says "not yet" past max_hold: held (exit 7), the rollout paused with the
    // reading as its reason — in every output mode, with the most verbose logs.
    let (out, err) = expect(w.cutover().args(["-p", "sec", "-o", "json", "-vvv", "advance", "--to", "green"]), 7);
    clean("advance -o json -vvv", &format!("{out}{err}"));
    assert!(out.contains(&gate.base.replace("http://", "")), "the host is told: {out}");
    let (out, err) = expect(w.cutover().args(["-p", "sec", "--log-format", "json", "advance"]), 0);
    clean("advance --log-format json", &format!("{out}{err}"));
    for args in [&["status"][..], &["-o", "json", "status"], &["history"], &["-o", "json", "history"]] {
        let (code, out, err) = run(w.cutover().args(["-p", "sec"]).args(args));
        assert_eq!(code, 0, "{args:?}: {out}{err}");
        clean(&format!("{args:?}"), &format!("{out}{err}"));
    }
    // The state item and the audit trail, as anyone reading the table sees them.
    let items = table_text(&w, &table).await;
    assert!(items.contains("not yet"), "the reason is recorded: {items}");
    clean("the state table", &items);
    // The notification: the text went out, without the token of either URL.
    wait_until(20, "the notification", || async { !slack.seen.lock().unwrap().is_empty() }).await;
    let sent: Vec<(String, String)> = slack.seen.lock().unwrap().clone();
    assert!(sent.iter().all(|(path, _)| path.contains("NOTIFYSECRET")), "it went to the configured URL");
    clean("the Slack text", &sent.iter().map(|(_, body)| body.clone()).collect::<String>());
    // And the gate's token did reach the gate: it was used, never shown.
    assert!(gate.seen.lock().unwrap().iter().any(|(path, _)| path.contains("GATESECRET")));
}

// ---------------------------------------------------------------------------------------------
// Profiles from S3, and profile files.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_profile_in_s3_comes_from_a_bucket_of_the_expected_owner_in_its_own_region_and_at_most_1_mib() {
    let w = World::new().await;
    let alb = Alb::new(&w).await;
    let profile = alb.route();
    let (mine, theirs, far, big) = (unique("ho-mine-"), unique("ho-theirs-"), unique("ho-far-"), unique("ho-big-"));
    for bucket in [&mine, &theirs, &far] {
        w.aws.object(bucket, "cutover/app.toml", &profile).await;
    }
    w.aws.object(&big, "cutover/app.toml", &format!("{profile}# {}\n", "x".repeat(2 * 1024 * 1024))).await;
    // Deleted and re-created by another account; and one in another region than the caller's.
    crate::proxy::s3::place(&theirs, "999999999999", "us-west-2");
    crate::proxy::s3::place(&far, "123456789012", "eu-west-1");
    let url = |b: &str| format!("s3://{b}/cutover/app.toml");

    expect(w.cutover().args(["-p", &url(&mine), "status"]), 0);
    let (_, err) = expect(w.cutover().args(["-p", &url(&theirs), "status"]), 2);
    assert!(err.contains("123456789012") && err.contains("ExpectedBucketOwner"), "{err}");
    let (_, err) = expect(
        w.cutover().env("CUTOVER_PROFILE_BUCKET_OWNER", "999999999999").args(["-p", &url(&theirs), "-v", "status"]),
        0,
    );
    assert!(!err.contains("error"), "{err}");
    let (_, err) = expect(w.cutover().args(["-p", &url(&far), "-v", "status"]), 0);
    assert!(err.contains("eu-west-1"), "the redirect is followed, and said: {err}");
    let (_, err) = expect(w.cutover().args(["-p", &url(&big), "status"]), 2);
    assert!(err.contains("larger than 1 MiB"), "{err}");

    // The printed policy reads the object from a bucket of that owner only.
    let (out, _) = expect(w.cutover().args(["-p", &url(&mine), "iam-policy"]), 0);
    let policy = json(&out);
    let object = policy["Statement"].as_array().unwrap().iter().find(|s| s["Sid"] == "ProfileObject").unwrap().clone();
    assert_eq!(object["Condition"]["StringEquals"]["s3:ResourceAccount"], "123456789012", "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_profile_file_is_a_regular_file_of_at_most_1_mib() {
    let w = World::new().await;
    let path = w.profile("huge", &format!("description = \"{}\"\n", "x".repeat(2 * 1024 * 1024)));
    let (_, err) = expect(w.cutover().args(["-p", path.to_str().unwrap(), "validate"]), 2);
    assert!(err.contains("larger than 1 MiB"), "{err}");
    let started = std::time::Instant::now();
    for not_a_file in ["/dev/zero", "/dev/urandom", "/tmp/"] {
        let (_, err) = expect(w.cutover().args(["-p", not_a_file, "validate"]), 2);
        assert!(err.contains("not a regular file") || err.contains("Is a directory"), "{not_a_file}: {err}");
    }
    assert!(started.elapsed() < Duration::from_secs(30), "nothing was read at length");
}

// ---------------------------------------------------------------------------------------------
// Gates and hooks.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gate_body_is_read_to_1_mib_and_a_redirect_is_an_answer_naming_its_host_never_followed() {
    let w = World::new().await;
    let alb = Alb::new(&w).await;
    let endless = hook(Answer::Endless).await;
    let elsewhere = hook(Answer::Status(200)).await;
    let target = format!("{}/steal", elsewhere.base.replace("127.0.0.1", "localhost"));
    let moved = hook(Answer::Redirect(307, target)).await;
    let found = hook(Answer::Redirect(302, "https://evil.example.test/x".into())).await;

    w.profile(
        "body",
        &format!(
            "{}[[gate]]\ntype = \"http\"\nurl = \"{}/health\"\nbody_contains = \"ok\"\ntimeout = \"30s\"\n",
            alb.route(),
            endless.base
        ),
    );
    let started = std::time::Instant::now();
    let (_, err) = expect(w.cutover().args(["-p", "body", "set", "green=10"]), 3);
    assert!(err.contains("larger than 1 MiB"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(30), "the body was not read on and on");

    w.profile("hooked", &format!("{}[[gate]]\ntype = \"webhook\"\nurl = \"{}/confirm\"\n", alb.route(), moved.base));
    let (_, err) = expect(w.cutover().args(["-p", "hooked", "set", "green=10"]), 7);
    assert!(err.contains("307 redirect to localhost (not followed)"), "{err}");
    w.profile("probed", &format!("{}[[gate]]\ntype = \"http\"\nurl = \"{}/health\"\n", alb.route(), found.base));
    let (_, err) = expect(w.cutover().args(["-p", "probed", "set", "green=10"]), 3);
    assert!(err.contains("302 redirect to evil.example.test (not followed)"), "{err}");
    assert!(elsewhere.seen.lock().unwrap().is_empty(), "the POST was not sent on to the Location");
    assert_eq!(alb.weights(&w).await, (100, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_duration_threshold_url_and_name_of_a_profile_is_bounded_and_checked() {
    let w = World::new().await;
    let route = "[[route53]]\nzone = \"myapp.com.\"\nrecord = \"api.myapp.com.\"\nblue = \"b\"\ngreen = \"g\"\n";
    let metric = "[[gate]]\ntype = \"metric\"\nnamespace = \"N\"\nmetric = \"M\"\n";
    let long = format!("{}.myapp.com.", "a".repeat(66_000));
    let label = format!("{}.myapp.com.", "a".repeat(64));
    let cases: Vec<(String, &str)> = vec![
        (format!("{route}[[gate]]\ntype = \"http\"\nurl = \"https://h/\"\ntimeout = \"0s\"\n"), "gate[0].timeout"),
        (
            format!("{route}[[gate]]\ntype = \"webhook\"\nurl = \"https://h/\"\ntimeout = \"500000000years\"\n"),
            "gate[0].timeout",
        ),
        (format!("{route}[state]\ntable = \"t-1\"\nlease = \"18446744000000000s\"\n"), "state.lease"),
        (format!("{route}{metric}max = 1\nperiod = \"4294967280s\"\nwindow = \"4294967280s\"\n"), "gate[0].period"),
        (format!("{route}[rollout]\nbake = \"500000000years\"\n"), "rollout.bake"),
        (format!("{route}[rollout]\npoll = \"0s\"\n"), "rollout.poll"),
        (format!("{route}[rollout]\nmax_hold = \"500000000years\"\n"), "rollout.max_hold"),
        (format!("{route}[rollout]\ndns_ttl = \"68years\"\n"), "rollout.dns_ttl"),
        (format!("{route}[observe]\nwindow = \"500000000years\"\n"), "observe.window"),
        (format!("{route}{metric}max = nan\n"), "gate[0].max"),
        (format!("{route}{metric}min = -inf\n"), "gate[0].min"),
        (format!("{route}[[gate]]\ntype = \"http\"\nurl = \"http://\"\n"), "gate[0].url"),
        (format!("{route}[[gate]]\ntype = \"http\"\nurl = \"http://a b/\"\n"), "gate[0].url"),
        (format!("{route}[notify]\nwebhook = \"https://\"\n"), "notify.webhook"),
        (
            format!("[[route53]]\nzone = \"myapp.com.\"\nrecord = \"{long}\"\nblue = \"b\"\ngreen = \"g\"\n"),
            "route53[0].record",
        ),
        (
            format!("[[route53]]\nzone = \"myapp.com.\"\nrecord = \"{label}\"\nblue = \"b\"\ngreen = \"g\"\n"),
            "route53[0].record",
        ),
        (format!("{route}role_arn = \"arn:aws:iam::111111111111:role/a b\"\n"), "route53[0].role_arn"),
        (format!("{route}role_arn = \"arn:aws:iam::111111111111:role/*\"\n"), "route53[0].role_arn"),
        (format!("description = \"myapp\\u001b]0;pwned\\u0007\\u001b[2J\"\n{route}"), "description"),
        (format!("name = \"../other\"\n{route}"), "name"),
    ];
    for (i, (text, key)) in cases.iter().enumerate() {
        let name = format!("bound{i}");
        w.profile(&name, text);
        let (code, out, err) = run(w.cutover().args(["-p", &name, "validate"]));
        assert_eq!(code, 2, "{key}: {out}{err}");
        assert!(err.contains(&format!("`{key}`")), "{key} is named:\n{err}");
        assert!(!err.contains('\u{1b}'), "no control character reaches the terminal:\n{err:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// Never panic.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn arguments_past_any_sense_are_usage_errors_never_a_panic() {
    use std::os::unix::ffi::OsStrExt;
    let w = World::new().await;
    let alb = Alb::new(&w).await;
    w.profile("args", &format!("{}[observe]\n", alb.route()));
    let not_utf8 = std::ffi::OsStr::from_bytes(b"\xff\xfeprofile");
    for args in [
        vec![std::ffi::OsStr::new("-p"), not_utf8, std::ffi::OsStr::new("status")],
        vec![std::ffi::OsStr::new("status"), not_utf8],
    ] {
        let (code, out, err) = run(w.cutover().args(&args));
        assert_eq!(code, 2, "{out}{err}");
    }
    let (code, out, err) = run(w.cutover().args([
        "-p",
        "args",
        "rollback",
        "--to",
        "blue",
        "--wait",
        "--wait-timeout",
        "500000000000years",
    ]));
    assert_eq!(code, 2, "{out}{err}");
    assert!(err.contains("--wait-timeout"), "{err}");
    let (code, _, err) = run(w.cutover().args(["-p", "args", "status", "--watch", "--interval", "0s"]));
    assert_eq!(code, 2, "{err}");
    assert_eq!(alb.weights(&w).await, (100, 0), "nothing moved");
}

/// A state item no cutover wrote — at stage 99 of 2, its lease and claims at the end of time, a
/// reason that would retitle and clear the terminal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_state_item_no_cutover_wrote_is_reported_and_rollback_still_restores_the_stable_side() {
    let w = World::new().await;
    let alb = Alb::new(&w).await;
    let table = stateful(&w, "odd", &alb, "").await;
    // Traffic is split, as a rollout would have left it.
    expect(w.cutover().args(["-p", "odd", "set", "green=10", "--no-gates"]), 0);
    let doc = serde_json::json!({
        "version": 7, "id": "x", "stable": "blue", "candidate": "green", "status": "progressing",
        "stages": [10, 100],
        "progress": {"stage": 99, "stage_reached_ms": u64::MAX, "fails": {}},
        "weights": [], "claims": [{"id": "c", "holder": "h", "kind": "forward", "stage": 1, "deadline_ms": u64::MAX - 1}],
        "lease": {"holder": "h\u{1b}]0;pwned\u{7}", "expires_ms": u64::MAX},
        "started_ms": u64::MAX, "updated_ms": 0, "reason": "\u{1b}[2Jcleared", "nonce": ""
    });
    dynamodb(&w)
        .await
        .put_item()
        .table_name(&table)
        .item("pk", AttributeValue::S("odd".into()))
        .item("sk", AttributeValue::S("STATE".into()))
        .item("version", AttributeValue::N("7".into()))
        .item("status", AttributeValue::S("progressing".into()))
        .item("doc", AttributeValue::S(doc.to_string()))
        .send()
        .await
        .unwrap();

    let (out, _) = expect(w.cutover().args(["-p", "odd", "-o", "json", "status"]), 0);
    assert!(json(&out)["rollout"]["problem"].as_str().unwrap().contains("stage 99 of 2"), "{out}");
    let (out, _) = expect(w.cutover().args(["-p", "odd", "status"]), 0);
    assert!(out.contains("stage 99 of 2") && !out.contains('\u{1b}') && out.contains("\\x1b]0;pwned"), "{out}");
    let (_, err) = expect(w.cutover().args(["-p", "odd", "advance"]), 1);
    assert!(err.contains("cannot be driven") && err.contains("cutover rollback"), "{err}");
    assert_eq!(alb.weights(&w).await, (90, 10), "advance moved nothing");

    // The break-glass command moves traffic whatever it found, and leaves a sound state behind.
    expect(w.cutover().args(["-p", "odd", "rollback"]), 0);
    assert_eq!(alb.weights(&w).await, (100, 0));
    let (out, _) = expect(w.cutover().args(["-p", "odd", "-o", "json", "status"]), 0);
    let rollout = &json(&out)["rollout"];
    assert_eq!(rollout["status"], "aborted", "{out}");
    assert!(rollout["problem"].is_null(), "{out}");
}

// ---------------------------------------------------------------------------------------------
// State and audit integrity.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_profiles_of_one_file_name_never_share_a_rollout() {
    let w = World::new().await;
    let (a, b) = (Alb::new(&w).await, Alb::new(&w).await);
    let table = unique("ho-");
    let body = |alb: &Alb, name: &str| {
        format!("{name}{}[rollout]\nstages = [10, 100]\nbake = \"1h\"\n[state]\ntable = \"{table}\"\n", alb.route())
    };
    for dir in ["p", "other"] {
        std::fs::create_dir_all(w.dir.path().join(dir)).unwrap();
    }
    std::fs::write(w.dir.path().join("p/base.toml"), body(&a, "")).unwrap();
    std::fs::write(w.dir.path().join("other/base.toml"), body(&b, "")).unwrap();
    expect(w.cutover().args(["-p", "p/base.toml", "state", "init"]), 0);
    expect(w.cutover().args(["-p", "p/base.toml", "advance", "--to", "green"]), 0);
    assert_eq!(a.weights(&w).await, (90, 10));

    // The other file of that name sees no rollout of its own, and may abort none.
    for args in
        [&["status"][..], &["history"], &["rollback"], &["rollback", "--to", "blue"], &["advance", "--to", "green"]]
    {
        let (code, out, err) = run(w.cutover().args(["-p", "other/base.toml"]).args(args));
        assert_eq!(code, 2, "{args:?}: {out}{err}");
        assert!(err.contains("p/base.toml") && err.contains("other/base.toml") && err.contains("name ="), "{err}");
    }
    assert_eq!(a.weights(&w).await, (90, 10), "the first profile's rollout stands");
    assert_eq!(b.weights(&w).await, (100, 0));
    // Named apart, each has its own.
    std::fs::write(w.dir.path().join("other/base.toml"), body(&b, "name = \"other-base\"\n")).unwrap();
    let (out, _) = expect(w.cutover().args(["-p", "other/base.toml", "-o", "json", "status"]), 0);
    assert!(json(&out)["rollout"].is_null(), "{out}");
    expect(w.cutover().args(["-p", "p/base.toml", "rollback"]), 0);
    assert_eq!(a.weights(&w).await, (100, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_trail_names_the_callers_arn_and_cutover_actor_only_beside_it() {
    let w = World::new().await;
    let alb = Alb::new(&w).await;
    stateful(&w, "who", &alb, "").await;
    expect(w.cutover().env("CUTOVER_ACTOR", "root\u{1b}[2J").args(["-p", "who", "advance", "--to", "green"]), 0);
    expect(w.cutover().env("CUTOVER_ACTOR", "alice").args(["-p", "who", "rollback"]), 0);
    let (out, _) = expect(w.cutover().args(["-p", "who", "-o", "json", "history"]), 0);
    let entries = json(&out)["entries"].as_array().unwrap().clone();
    assert!(entries.len() >= 2, "{out}");
    for e in &entries {
        assert_eq!(e["actor"], "arn:aws:sts::123456789012:user/moto", "the caller, as STS says: {e}");
    }
    assert_eq!(entries[0]["actor_note"], "alice", "{out}");
    assert!(entries.iter().any(|e| e["actor_note"] == "root\\x1b[2J"), "{out}");
    let (out, _) = expect(w.cutover().args(["-p", "who", "history"]), 0);
    assert!(
        out.contains("arn:aws:sts::123456789012:user/moto (CUTOVER_ACTOR: alice)") && !out.contains('\u{1b}'),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_state_policy_keeps_to_the_profiles_items_and_creating_the_table_has_a_policy_of_its_own() {
    let w = World::new().await;
    let alb = Alb::new(&w).await;
    let table = unique("ho-");
    let profile = |name: &str| {
        format!(
            "name = \"{name}\"\n{}[rollout]\nstages = [10, 100]\nbake = \"1h\"\n[state]\ntable = \"{table}\"\n",
            alb.route()
        )
    };
    w.profile("mine", &profile("mine"));
    w.profile("yours", &profile("yours"));
    let (out, _) = expect(w.cutover().args(["-p", "mine", "iam-policy"]), 0);
    let everyday = json(&out);
    assert!(!out.contains("CreateTable") && !out.contains("DescribeTable"), "{out}");
    let state = everyday["Statement"].as_array().unwrap().iter().find(|s| s["Sid"] == "State").unwrap().clone();
    assert_eq!(state["Condition"]["ForAllValues:StringEquals"]["dynamodb:LeadingKeys"], serde_json::json!(["mine"]));
    let (out, _) = expect(w.cutover().args(["-p", "mine", "iam-policy", "--for", "state-init"]), 0);
    let init = json(&out);
    assert!(out.contains("dynamodb:CreateTable") && !out.contains("PutItem"), "{out}");

    let kit = proxy(Config::default());
    let through = |args: &[&str]| {
        let mut cmd = w.cutover();
        cmd.env("AWS_ENDPOINT_URL", &kit.endpoint).args(args);
        run(&mut cmd)
    };
    kit.set(|c| c.iam_policy = Some(everyday.clone()));
    let (code, out, err) = through(&["-p", "mine", "state", "init"]);
    assert_ne!(code, 0, "{out}{err}");
    assert!(err.contains("dynamodb:CreateTable"), "{err}");
    kit.set(|c| c.iam_policy = Some(init.clone()));
    let (code, out, err) = through(&["-p", "mine", "state", "init"]);
    assert_eq!(code, 0, "{out}{err}");
    kit.set(|c| c.iam_policy = Some(everyday.clone()));
    let (code, out, err) = through(&["-p", "mine", "advance", "--to", "green"]);
    assert_eq!(code, 0, "{out}{err}");
    // Another profile's items in the same table are out of this policy's reach.
    let (code, out, err) = through(&["-p", "yours", "advance", "--to", "green"]);
    assert_ne!(code, 0, "{out}{err}");
    assert!(err.contains("dynamodb:GetItem"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_role_trusts_the_callers_identity_and_a_zone_by_name_keeps_to_the_record_types() {
    let w = World::new().await;
    w.profile(
        "trust",
        "[[route53]]\nzone = \"myapp.com.\"\nrecord = \"api.myapp.com.\"\ntype = \"AAAA\"\nblue = \"b\"\ngreen = \"g\"\n\
         role_arn = \"arn:aws:iam::111111111111:role/net\"\nexternal_id = \"x-42\"\n",
    );
    let (out, _) = expect(w.cutover().args(["-p", "trust", "iam-policy"]), 0);
    let p = json(&out);
    let trust = &p["roles"][0]["trust_policy"]["Statement"][0];
    assert_eq!(trust["Principal"]["AWS"], "arn:aws:iam::123456789012:root", "{out}");
    assert_eq!(trust["Condition"]["ArnEquals"]["aws:PrincipalArn"], "arn:aws:iam::123456789012:user/moto", "{out}");
    assert_eq!(trust["Condition"]["StringEquals"]["sts:ExternalId"], "x-42", "{out}");
    let change = p["roles"][0]["policy"]["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["Sid"] == "Route53ChangeOnlyTheseRecords")
        .unwrap()
        .clone();
    assert_eq!(change["Resource"], serde_json::json!(["arn:aws:route53:::hostedzone/*"]), "{out}");
    let only = &change["Condition"]["ForAllValues:StringEquals"];
    assert_eq!(only["route53:ChangeResourceRecordSetsRecordTypes"], serde_json::json!(["AAAA"]), "{out}");
    assert_eq!(only["route53:ChangeResourceRecordSetsNormalizedRecordNames"], serde_json::json!(["api.myapp.com"]));
}

// ---------------------------------------------------------------------------------------------
// CloudFormation ownership, as AWS really is.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listener_a_stack_made_without_tagging_it_is_refused_by_what_cloudformation_says() {
    let w = World::new().await;
    let (owned, free) = (Alb::new(&w).await, Alb::new(&w).await);
    let stack = unique("ho-stack-");
    crate::proxy::cloudformation::own(
        &stack,
        "us-west-2",
        "FrontListener",
        &owned.listener,
        "AWS::ElasticLoadBalancingV2::Listener",
    );
    w.profile("owned", &owned.route());
    w.profile("free", &free.route());

    let (_, err) = expect(w.cutover().args(["-p", "owned", "set", "green=10", "--no-gates"]), 2);
    assert!(err.contains(&stack) && err.contains("DescribeStackResources") && err.contains("owner_ok"), "{err}");
    assert_eq!(owned.weights(&w).await, (100, 0));
    expect(w.cutover().args(["-p", "free", "set", "green=10", "--no-gates"]), 0);
    assert_eq!(free.weights(&w).await, (90, 10));
    // The owner said the template cannot put weights back.
    w.profile("owned", &format!("{}owner_ok = true\n", owned.route()));
    expect(w.cutover().args(["-p", "owned", "set", "green=10", "--no-gates"]), 0);
    assert_eq!(owned.weights(&w).await, (90, 10));
    // The policy asks CloudFormation only for routes that do not say so.
    let (out, _) = expect(w.cutover().args(["-p", "free", "iam-policy"]), 0);
    assert!(out.contains("cloudformation:DescribeStackResources") && out.contains(":stack/*/*"), "{out}");
    let (out, _) = expect(w.cutover().args(["-p", "owned", "iam-policy"]), 0);
    assert!(!out.contains("cloudformation:"), "{out}");
}
