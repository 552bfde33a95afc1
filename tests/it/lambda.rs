//! The Lambda runner, against a Lambda Runtime API served here as AWS documents it
//! (`/2018-06-01/runtime/invocation/next`, `…/{id}/response`, `…/{id}/error`): the binary started
//! with `AWS_LAMBDA_RUNTIME_API` and no arguments advances a rollout for a scheduler event, and a
//! stage a gate rolled back is a failed invocation.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response};

use crate::emulator::unique;
use crate::scenario::{Front, Gate, Profile, Rollout};
use crate::{World, expect, wait_until};

/// What a Lambda Runtime API was told: (`response` or `error`, request id, body).
pub(crate) type Told = Arc<Mutex<Vec<(String, String, serde_json::Value)>>>;
/// Events waiting to be invoked, numbered.
pub(crate) type Queue = Arc<Mutex<VecDeque<(usize, serde_json::Value)>>>;

/// A Lambda Runtime API (as AWS documents it) on a free loopback port; each invocation's deadline
/// is `deadline` after it is handed out.
pub(crate) async fn runtime_api(deadline: std::time::Duration) -> (String, Queue, Told) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let (queue, told): (Queue, Told) = (Arc::default(), Arc::default());
    let (q, t) = (queue.clone(), told.clone());
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { continue };
            let (queue, told) = (q.clone(), t.clone());
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                    let (queue, told) = (queue.clone(), told.clone());
                    async move {
                        let path = req.uri().path().to_string();
                        let body = req.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
                        if path == "/2018-06-01/runtime/invocation/next" {
                            let (i, event) = loop {
                                let next = queue.lock().unwrap().pop_front();
                                match next {
                                    Some(e) => break e,
                                    None => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
                                }
                            };
                            let ms =
                                std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis()
                                    + deadline.as_millis();
                            return Ok::<_, Infallible>(
                                Response::builder()
                                    .header("lambda-runtime-aws-request-id", format!("req-{i}"))
                                    .header("lambda-runtime-deadline-ms", ms.to_string())
                                    .header(
                                        "lambda-runtime-invoked-function-arn",
                                        "arn:aws:lambda:us-west-2:123456789012:function:cutover",
                                    )
                                    .header("lambda-runtime-trace-id", "Root=1-00000000-000000000000000000000000")
                                    .body(Full::new(Bytes::from(event.to_string())))
                                    .unwrap(),
                            );
                        }
                        let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
                        if let ["2018-06-01", "runtime", "invocation", id, kind] = parts.as_slice() {
                            let doc = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
                            told.lock().unwrap().push((kind.to_string(), id.to_string(), doc));
                        }
                        Ok(Response::builder().status(202).body(Full::new(Bytes::from_static(b"{}"))).unwrap())
                    }
                });
                let io = hyper_util::rt::TokioIo::new(stream);
                let _ = hyper::server::conn::http1::Builder::new().serve_connection(io, service).await;
            });
        }
    });
    (addr, queue, told)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduler_events_advance_a_rollout_and_a_rolled_back_stage_fails_the_invocation() {
    let w = World::new().await;
    let front = Front::new(&w.aws).await;
    let alarm = unique("lam-green-");
    w.aws.alarm(&alarm).await;
    let rollout = Rollout::new(&[10.0, 50.0, 100.0]).bake("1h").failure_threshold(1);
    w.write(
        "lam",
        &Profile::new().alb(front.route()).rollout(rollout).state(&unique("lam-")).gate(Gate::alarm(&[&alarm])),
    );
    expect(w.cutover().args(["-p", "lam", "state", "init"]), 0);

    // Two schedule ticks: the first starts the rollout; before the second the alarm fires.
    let advance = serde_json::json!({"command": "advance", "profile": "lam", "to": "green"});
    let (api, queue, told) = runtime_api(std::time::Duration::from_secs(120)).await;
    queue.lock().unwrap().push_back((0, advance.clone()));
    let mut function = w.std_cutover();
    function
        .env("AWS_LAMBDA_RUNTIME_API", &api)
        .env("AWS_LAMBDA_FUNCTION_NAME", "cutover")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        // The function's configuration: its profile, and events may name the side.
        .env("CUTOVER_PROFILE", "lam")
        .env("CUTOVER_LAMBDA_ALLOW_TO", "true")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    let mut child = tokio::process::Command::from(function).kill_on_drop(true).spawn().unwrap();

    wait_until(60, "the first invocation's answer", || async { !told.lock().unwrap().is_empty() }).await;
    let (kind, id, doc) = told.lock().unwrap()[0].clone();
    assert_eq!((kind.as_str(), id.as_str()), ("response", "req-0"), "{doc}");
    assert_eq!(doc["command"], "advance", "the command's own JSON result: {doc}");
    let weights = front.weights().await;
    assert_eq!(weights.1, 10, "stage 1 is live: {weights:?}");

    // The alarm fires; then the schedule's next tick.
    w.aws.set_alarm(&alarm, "ALARM").await;
    queue.lock().unwrap().push_back((1, advance));
    wait_until(60, "the second invocation's answer", || async { told.lock().unwrap().len() >= 2 }).await;
    let (kind, id, doc) = told.lock().unwrap()[1].clone();
    child.kill().await.ok();
    assert_eq!((kind.as_str(), id.as_str()), ("error", "req-1"), "a rolled-back stage fails the invocation: {doc}");
    let message = doc["errorMessage"].as_str().unwrap_or_default();
    assert!(message.contains("exited 3"), "{doc}");
    assert_eq!(front.weights().await, (100, 0));
}
