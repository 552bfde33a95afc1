//! The emulator kit's proxy: an HTTP server between the SDK and moto that makes the emulator
//! behave like AWS where cutover relies on it.
//!
//! - **Latency**, fixed or jittered, per call (writes may get their own); concurrent calls overlap.
//!   A write lands at a random point within its latency — it is in flight before that — and lands
//!   even when the client gives up or dies meanwhile, as a request AWS has received does.
//! - **Faults**, AWS-shaped per protocol and drawn from a seeded generator: throttling (Route53's
//!   REST-XML `Throttling` / `PriorRequestNotComplete`, the query protocol's `Throttling` "Rate
//!   exceeded", DynamoDB's `ThrottlingException`), 5xx, and dropped connections (before or after
//!   the call was applied).
//! - **Route53 change semantics** (on by default): a batch is checked against the zone as AWS
//!   does — a DELETE must match the live record set exactly, a CREATE must not find one — and
//!   applied whole or not at all. moto checks neither (and refuses a CREATE it has seen before,
//!   whatever its SetIdentifier), so without this a compare-and-swap batch cannot be tested.
//! - **Route53 propagation** (`route53_insync_after`): a change answers `PENDING` and GetChange
//!   turns `INSYNC` only after a delay, as on AWS (moto answers `INSYNC` at once).
//! - **Alias targets must exist** (on by default): a CREATE or UPSERT of an alias to a load
//!   balancer that does not exist, or whose canonical zone is not the alias's, is refused with
//!   AWS's `InvalidChangeBatch`; so is an alias to a record of the same zone that is not there.
//! - **CloudWatch alarms** (on by default, `proxy_cloudwatch.rs`): a new alarm starts in
//!   `INSUFFICIENT_DATA`; DescribeAlarmHistory is served from the state changes the kit saw.
//! - **IAM** (`iam_policy`, `proxy_iam.rs`): every call checked against one identity policy —
//!   action, resource, Route53's record-name conditions — and refused with AWS's AccessDenied.
//! - **A log** of every call: service, operation, when it started, reached moto and ended, the
//!   status, the fault injected, and the body of writes.
//!
//! The tests start it in-process ([`Proxy::start`]); `cargo run --example proxy` runs it in front
//! of a moto server for the demo and the benchmarks.

#![allow(dead_code)]

#[path = "proxy_cloudformation.rs"]
pub mod cloudformation;
#[path = "proxy_cloudwatch.rs"]
mod cloudwatch;
#[path = "proxy_iam.rs"]
pub mod iam;
#[path = "proxy_s3.rs"]
pub mod s3;

use std::collections::HashMap;
use std::io::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::http::request::Parts;
use hyper::{Request, Response, StatusCode};

/// How long a call takes: uniform between `min` and `max`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Latency {
    pub min: Duration,
    pub max: Duration,
}

impl Latency {
    pub const ZERO: Latency = Latency { min: Duration::ZERO, max: Duration::ZERO };

    pub fn fixed(d: Duration) -> Latency {
        Latency { min: d, max: d }
    }

    pub fn between(min: Duration, max: Duration) -> Latency {
        Latency { min, max: max.max(min) }
    }

    /// `40ms`, or `30ms..50ms`.
    pub fn parse(s: &str) -> Result<Latency, String> {
        let ms = |t: &str| {
            let t = t.trim();
            let n = t.strip_suffix("ms").map(|n| n.parse::<u64>().map(Duration::from_millis));
            let n = n.or_else(|| t.strip_suffix('s').map(|n| n.parse::<u64>().map(Duration::from_secs)));
            match n {
                Some(Ok(d)) => Ok(d),
                _ => Err(format!("`{t}` is not a duration like 40ms")),
            }
        };
        match s.split_once("..") {
            Some((a, b)) => Ok(Latency::between(ms(a)?, ms(b)?)),
            None => Ok(Latency::fixed(ms(s)?)),
        }
    }

    fn draw(&self, rng: &mut fastrand::Rng) -> Duration {
        let span = self.max.saturating_sub(self.min).as_micros() as u64;
        self.min + Duration::from_micros(if span == 0 { 0 } else { rng.u64(0..=span) })
    }
}

/// What the proxy does to calls.
#[derive(Clone, Debug)]
pub struct Config {
    pub seed: u64,
    /// Every call's latency.
    pub latency: Latency,
    /// Writes' latency (ChangeResourceRecordSets, ModifyListener, ModifyRule), if other.
    pub write_latency: Option<Latency>,
    /// Share of calls throttled.
    pub throttle: f64,
    /// Share of calls answered with a 5xx.
    pub server_error: f64,
    /// Share of calls whose connection is dropped without an answer (half before, half after the
    /// call was applied).
    pub drop: f64,
    /// Faults only for these services (`route53`, `elasticloadbalancing`, `dynamodb`, …); every
    /// service when empty.
    pub fault_services: Vec<String>,
    /// Faults only for these operations (`GetChange`, …); every operation when empty.
    pub fault_operations: Vec<String>,
    /// Route53 ChangeResourceRecordSets checked and applied as AWS does.
    pub route53_semantics: bool,
    /// A Route53 change answers PENDING and turns INSYNC this long after it was accepted; `None`:
    /// as the emulator answers (INSYNC at once).
    pub route53_insync_after: Option<Duration>,
    /// Route53 refuses an alias whose target does not exist.
    pub alias_targets_checked: bool,
    /// CloudWatch: new alarms start in INSUFFICIENT_DATA; DescribeAlarmHistory served by the kit.
    pub cloudwatch_semantics: bool,
    /// Every call checked against this identity policy (account `123456789012`).
    pub iam_policy: Option<serde_json::Value>,
    /// Roles of other accounts, by ARN, when `iam_policy` is set: a call made with credentials
    /// from AssumeRole is checked against its role's policy (a role not here is allowed nothing),
    /// and AssumeRole itself against the role's trust policy.
    pub roles: std::collections::BTreeMap<String, RoleIam>,
    /// AssumeRole's credentials expire this long after they are handed out (STS: the session's
    /// `DurationSeconds`, 1 h by default); `None`: as the emulator says.
    pub assumed_for: Option<Duration>,
}

/// A role's identity policy and trust policy.
#[derive(Clone, Debug)]
pub struct RoleIam {
    pub policy: serde_json::Value,
    pub trust: serde_json::Value,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            seed: 1,
            latency: Latency::ZERO,
            write_latency: None,
            throttle: 0.0,
            server_error: 0.0,
            drop: 0.0,
            fault_services: Vec::new(),
            fault_operations: Vec::new(),
            route53_semantics: true,
            route53_insync_after: None,
            alias_targets_checked: true,
            cloudwatch_semantics: true,
            iam_policy: None,
            roles: std::collections::BTreeMap::new(),
            assumed_for: None,
        }
    }
}

/// One call, as the proxy saw it.
#[derive(Clone, Debug)]
pub struct Call {
    pub id: u64,
    /// `route53`, `elasticloadbalancing`, `dynamodb`, `monitoring`, `sts`, …
    pub service: String,
    pub operation: String,
    pub started: Instant,
    /// When the call reached the emulator: for a write, when it landed.
    pub forwarded: Option<Instant>,
    /// When the emulator answered it: `answered - forwarded` is the emulator's own time.
    pub answered: Option<Instant>,
    pub ended: Instant,
    /// The status answered; 0 when the connection was dropped.
    pub status: u16,
    /// Whether the emulator applied it (it was forwarded and answered 2xx).
    pub applied: bool,
    /// The fault injected: `throttling`, `server-error`, `drop-before`, `drop-after`.
    pub fault: Option<&'static str>,
    /// The request body, for writes and AssumeRole.
    pub body: String,
}

impl Call {
    pub fn is_write(&self) -> bool {
        is_write(&self.operation)
    }
}

fn is_write(operation: &str) -> bool {
    matches!(operation, "ChangeResourceRecordSets" | "ModifyListener" | "ModifyRule")
}

/// A running proxy; dropping it stops it.
pub struct Proxy {
    pub endpoint: String,
    shared: Arc<Shared>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

struct Shared {
    upstream: String,
    config: Mutex<Config>,
    rng: Mutex<fastrand::Rng>,
    calls: Mutex<Vec<Call>>,
    next_id: AtomicU64,
    /// Writes received so far.
    writes_started: AtomicU64,
    /// Calls received and not yet answered or dropped.
    in_flight: AtomicU64,
    client: reqwest::Client,
    /// Route53 changes of one zone are checked and applied one at a time (AWS serialises them too).
    zones: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Route53 changes accepted: id → when they turn INSYNC.
    changes: Mutex<HashMap<String, Instant>>,
    /// Credentials AssumeRole handed out: access key id → role ARN.
    assumed: Mutex<HashMap<String, String>>,
    log: Option<Mutex<std::fs::File>>,
    start: Instant,
}

/// The connection is dropped without an answer.
#[derive(Debug)]
struct Dropped;

impl std::fmt::Display for Dropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped by the proxy")
    }
}

impl std::error::Error for Dropped {}

type Answer = Response<Full<Bytes>>;

impl Proxy {
    /// A proxy on a free loopback port in front of `upstream`, on a thread of its own.
    pub fn start(upstream: &str, config: Config) -> Proxy {
        Proxy::start_on("127.0.0.1:0", upstream, config, None).expect("start the proxy")
    }

    /// A proxy on `addr` (loopback only), logging calls as JSON lines to `log` if given.
    pub fn start_on(addr: &str, upstream: &str, config: Config, log: Option<std::fs::File>) -> std::io::Result<Proxy> {
        let listener = std::net::TcpListener::bind(addr)?;
        let local = listener.local_addr()?;
        if !local.ip().is_loopback() {
            return Err(std::io::Error::other("the proxy listens on loopback only"));
        }
        listener.set_nonblocking(true)?;
        let shared = Arc::new(Shared {
            upstream: upstream.trim_end_matches('/').to_string(),
            rng: Mutex::new(fastrand::Rng::with_seed(config.seed)),
            config: Mutex::new(config),
            calls: Mutex::new(Vec::new()),
            next_id: AtomicU64::new(1),
            writes_started: AtomicU64::new(0),
            in_flight: AtomicU64::new(0),
            client: reqwest::Client::builder().pool_max_idle_per_host(64).build().expect("http client"),
            zones: Mutex::new(HashMap::new()),
            changes: Mutex::new(HashMap::new()),
            assumed: Mutex::new(HashMap::new()),
            log: log.map(Mutex::new),
            start: Instant::now(),
        });
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let s = shared.clone();
        std::thread::Builder::new().name("emulator-proxy".into()).spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("proxy runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("proxy listener");
                let accept = async {
                    loop {
                        let Ok((stream, _)) = listener.accept().await else { continue };
                        let s = s.clone();
                        tokio::spawn(async move {
                            let io = hyper_util::rt::TokioIo::new(stream);
                            let service = hyper::service::service_fn(move |req| handle(s.clone(), req));
                            let _ = hyper::server::conn::http1::Builder::new().serve_connection(io, service).await;
                        });
                    }
                };
                tokio::select! {
                    _ = accept => {}
                    _ = stop_rx => {}
                }
            });
        })?;
        Ok(Proxy { endpoint: format!("http://{local}"), shared, _stop: stop_tx })
    }

    /// Changes what the proxy does from now on.
    pub fn set(&self, edit: impl FnOnce(&mut Config)) {
        edit(&mut self.shared.config.lock().unwrap());
    }

    /// Every call so far.
    pub fn calls(&self) -> Vec<Call> {
        self.shared.calls.lock().unwrap().clone()
    }

    /// How many writes have been received so far (answered or not).
    pub fn writes_started(&self) -> u64 {
        self.shared.writes_started.load(Ordering::SeqCst)
    }

    /// How many calls are under way (received, not yet answered or dropped) — including those
    /// whose client has gone.
    pub fn in_flight(&self) -> u64 {
        self.shared.in_flight.load(Ordering::SeqCst)
    }

    /// Forgets the calls logged so far.
    pub fn clear(&self) {
        self.shared.calls.lock().unwrap().clear();
    }
}

/// What one call will meet.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Fault {
    Throttling,
    ServerError,
    DropBefore,
    DropAfter,
}

impl Fault {
    fn name(self) -> &'static str {
        match self {
            Fault::Throttling => "throttling",
            Fault::ServerError => "server-error",
            Fault::DropBefore => "drop-before",
            Fault::DropAfter => "drop-after",
        }
    }
}

async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> Result<Answer, Dropped> {
    let started = Instant::now();
    let (parts, body) = req.into_parts();
    let body = body.collect().await.map_err(|_| Dropped)?.to_bytes();
    let service = service_of(&parts);
    let operation = operation_of(&service, &parts, &body);
    let write = is_write(&operation);
    let (latency, landing, fault, config) = {
        let config = shared.config.lock().unwrap();
        let mut rng = shared.rng.lock().unwrap();
        let latency = match (write, config.write_latency) {
            (true, Some(l)) => l.draw(&mut rng),
            _ => config.latency.draw(&mut rng),
        };
        // Where in its latency the call reaches the emulator.
        let landing = latency.mul_f64(rng.f64());
        let faulty = (config.fault_services.is_empty() || config.fault_services.contains(&service))
            && (config.fault_operations.is_empty() || config.fault_operations.contains(&operation));
        let r = rng.f64();
        let fault = if !faulty {
            None
        } else if r < config.throttle {
            Some(Fault::Throttling)
        } else if r < config.throttle + config.server_error {
            Some(Fault::ServerError)
        } else if r < config.throttle + config.server_error + config.drop {
            Some(if rng.bool() { Fault::DropBefore } else { Fault::DropAfter })
        } else {
            None
        };
        (latency, landing, fault, config.clone())
    };
    let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
    if write {
        shared.writes_started.fetch_add(1, Ordering::SeqCst);
    }
    shared.in_flight.fetch_add(1, Ordering::SeqCst);
    let (tx, rx) = tokio::sync::oneshot::channel();
    // The call goes on in a task of its own: a client that gives up does not stop it landing.
    let s = shared.clone();
    tokio::spawn(async move {
        tokio::time::sleep(landing).await;
        let mut forwarded = None;
        let mut answered = None;
        let answer: Result<Answer, Dropped> = match fault {
            Some(Fault::Throttling) => Ok(error_answer(&service, &operation, id, true)),
            Some(Fault::ServerError) => Ok(error_answer(&service, &operation, id, false)),
            Some(Fault::DropBefore) => Err(Dropped),
            None | Some(Fault::DropAfter) => match denied(&s, &config, &service, &operation, &parts, &body) {
                Some(refusal) => Ok(refusal),
                None => {
                    forwarded = Some(Instant::now());
                    let answer = apply(&s, &config, &service, &operation, &parts, &body).await;
                    answered = Some(Instant::now());
                    if fault == Some(Fault::DropAfter) { Err(Dropped) } else { Ok(answer) }
                }
            },
        };
        let status = answer.as_ref().map(|a| a.status().as_u16()).unwrap_or(0);
        let applied = forwarded.is_some()
            && match &answer {
                Ok(a) => a.status().is_success(),
                // Dropped after the emulator answered: applied when the emulator accepted it.
                Err(_) => true,
            };
        tokio::time::sleep(latency.saturating_sub(landing)).await;
        let body = if write || operation == "AssumeRole" {
            String::from_utf8_lossy(&body).into_owned()
        } else {
            String::new()
        };
        let call = Call {
            id,
            service,
            operation,
            started,
            forwarded,
            answered,
            ended: Instant::now(),
            status,
            applied,
            fault: fault.map(Fault::name),
            body,
        };
        log_line(&s, &call);
        s.calls.lock().unwrap().push(call);
        s.in_flight.fetch_sub(1, Ordering::SeqCst);
        let _ = tx.send(answer);
    });
    rx.await.map_err(|_| Dropped)?
}

fn log_line(shared: &Shared, call: &Call) {
    let Some(file) = &shared.log else { return };
    let ms = |t: Instant| t.duration_since(shared.start).as_secs_f64() * 1000.0;
    let line = serde_json::json!({
        "id": call.id,
        "service": call.service,
        "operation": call.operation,
        "start_ms": ms(call.started),
        "forwarded_ms": call.forwarded.map(ms),
        "answered_ms": call.answered.map(ms),
        "end_ms": ms(call.ended),
        "status": call.status,
        "applied": call.applied,
        "fault": call.fault,
    });
    let _ = writeln!(file.lock().unwrap(), "{line}");
}

/// The service a request is signed for (SigV4's credential scope), e.g. `route53`.
fn service_of(parts: &Parts) -> String {
    credential_scope(parts).get(3).cloned().unwrap_or_else(|| "unknown".into())
}

/// A request's SigV4 credential scope: access key id, date, region, service, `aws4_request`.
fn credential_scope(parts: &Parts) -> Vec<String> {
    parts
        .headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|a| a.split("Credential=").nth(1))
        .map(|c| c.split(',').next().unwrap_or(c).split('/').map(str::to_string).collect())
        .unwrap_or_default()
}

/// The API operation of a request, by protocol: the query protocol's `Action`, the JSON
/// protocol's `X-Amz-Target`, or Route53's and EKS's REST paths.
fn operation_of(service: &str, parts: &Parts, body: &Bytes) -> String {
    if let Some(target) = parts.headers.get("x-amz-target").and_then(|v| v.to_str().ok()) {
        return target.rsplit('.').next().unwrap_or(target).to_string();
    }
    if let Some((_, action)) = form_params(body).into_iter().find(|(k, _)| k == "Action") {
        return action;
    }
    let path = parts.uri.path().trim_end_matches('/');
    let method = parts.method.as_str();
    let name = match (service, method) {
        ("route53", "POST") if path.ends_with("/rrset") => "ChangeResourceRecordSets",
        ("route53", "GET") if path.ends_with("/rrset") => "ListResourceRecordSets",
        ("route53", "GET") if path.contains("/change/") => "GetChange",
        ("route53", "GET") if path.ends_with("/hostedzonesbyname") => "ListHostedZonesByName",
        ("route53", "GET") if path.ends_with("/status") => "GetHealthCheckStatus",
        ("route53", "POST") if path.ends_with("/healthcheck") => "CreateHealthCheck",
        ("route53", "GET") if path.ends_with("/healthcheck") => "ListHealthChecks",
        ("route53", "DELETE") if path.contains("/healthcheck/") => "DeleteHealthCheck",
        ("route53", "GET") if path.contains("/healthcheck/") => "GetHealthCheck",
        ("route53", "GET") if path.contains("/hostedzone/") => "GetHostedZone",
        ("route53", "POST") if path.ends_with("/hostedzone") => "CreateHostedZone",
        ("eks", "GET") if path.starts_with("/clusters/") => "DescribeCluster",
        _ => return format!("{method} {path}"),
    };
    name.to_string()
}

/// A call refused by the kit's IAM, as AWS refuses it; `None` when allowed (or no policy is set).
/// A call with credentials from AssumeRole is checked against its role's policy, in its account.
fn denied(
    shared: &Shared,
    config: &Config,
    service: &str,
    operation: &str,
    parts: &Parts,
    body: &Bytes,
) -> Option<Answer> {
    let caller_policy = config.iam_policy.as_ref()?;
    let (akid, _) = scope_of(parts);
    let role = shared.assumed.lock().unwrap().get(&akid).cloned();
    let (policy, account, user) = match &role {
        Some(arn) => {
            let account = role_account(arn).to_string();
            let name = arn.rsplit('/').next().unwrap_or(arn);
            let user = format!("arn:aws:sts::{account}:assumed-role/{name}/kit");
            (config.roles.get(arn).map(|r| &r.policy), account, user)
        }
        None => (Some(caller_policy), IAM_ACCOUNT.to_string(), format!("arn:aws:iam::{IAM_ACCOUNT}:user/cutover-kit")),
    };
    let params = form_params(body);
    let json: Option<serde_json::Value> = serde_json::from_slice(body).ok();
    let records: Vec<(String, String, String)> = if operation == "ChangeResourceRecordSets" {
        let text = String::from_utf8_lossy(body).into_owned();
        roxmltree::Document::parse(&text)
            .map(|doc| {
                doc.descendants()
                    .filter(|n| n.tag_name().name() == "Change")
                    .filter_map(|c| {
                        let set = c.children().find(|x| x.tag_name().name() == "ResourceRecordSet")?;
                        Some((child_text(c, "Action")?, child_text(set, "Name")?, child_text(set, "Type")?))
                    })
                    .collect()
            })
            .unwrap_or_default()
    } else {
        Vec::new()
    };
    let (_, region) = scope_of(parts);
    let requests = iam::requests_of(&iam::Call {
        service,
        operation,
        path: parts.uri.path(),
        params: &params,
        json: json.as_ref(),
        region: &region,
        account: &account,
        records: &records,
    });
    let refused = |r: &iam::Request| !iam::always_allowed(&r.action) && !policy.is_some_and(|p| iam::allows(p, r));
    let message = match requests.into_iter().find(refused) {
        Some(request) => format!(
            "User: {user} is not authorized to perform: {} on resource: {} because no identity-based policy allows the {} action",
            request.action, request.resource, request.action
        ),
        None => {
            // AssumeRole also needs the role's trust.
            let arn = params
                .iter()
                .find(|(k, _)| k == "RoleArn")
                .map(|(_, v)| v.clone())
                .filter(|_| operation == "AssumeRole")?;
            let external_id = params.iter().find(|(k, _)| k == "ExternalId").map(|(_, v)| v.as_str());
            let trust = config.roles.get(&arn).map(|r| &r.trust)?;
            if iam::trusts(trust, IAM_ACCOUNT, external_id) {
                return None;
            }
            format!("User: {user} is not authorized to perform: sts:AssumeRole on resource: {arn}")
        }
    };
    let (status, content_type, body) = match service {
        "dynamodb" => (
            400,
            "application/x-amz-json-1.0",
            serde_json::json!({"__type": "com.amazon.coral.service#AccessDeniedException", "message": message})
                .to_string(),
        ),
        "eks" => (403, "application/json", serde_json::json!({"message": message}).to_string()),
        _ => {
            return Some(xml_error(
                403,
                if service == "sns" { "AuthorizationError" } else { "AccessDenied" },
                &message,
            ));
        }
    };
    let mut answer = Response::new(Full::new(Bytes::from(body)));
    *answer.status_mut() = StatusCode::from_u16(status).unwrap();
    answer.headers_mut().insert("content-type", content_type.parse().unwrap());
    if service == "eks" {
        answer.headers_mut().insert("x-amzn-errortype", "AccessDeniedException".parse().unwrap());
    }
    Some(answer)
}

/// The account the kit's IAM names in ARNs (moto's default account).
pub const IAM_ACCOUNT: &str = "123456789012";

/// The account of a role ARN (`arn:aws:iam::ACCOUNT:role/NAME`), as moto acts in it.
fn role_account(arn: &str) -> &str {
    arn.split(':').nth(4).unwrap_or(IAM_ACCOUNT)
}

/// A call the kit lets through: to the emulator, with AWS's semantics where moto's differ.
async fn apply(
    shared: &Shared,
    config: &Config,
    service: &str,
    operation: &str,
    parts: &Parts,
    body: &Bytes,
) -> Answer {
    if let Some(answer) = s3::answer(service, parts).or_else(|| cloudformation::answer(service, operation, parts, body))
    {
        return answer;
    }
    match (service, operation) {
        ("sts", "AssumeRole") => {
            // Which role the handed-out access key acts as, for the kit's IAM.
            let answer = forward(shared, parts, body.clone()).await;
            let (head, answer_body) = answer.into_parts();
            let bytes = answer_body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
            let text = String::from_utf8_lossy(&bytes);
            let key = text.split("<AccessKeyId>").nth(1).and_then(|r| r.split('<').next());
            let role = form_params(body).into_iter().find(|(k, _)| k == "RoleArn").map(|(_, v)| v);
            if let (Some(key), Some(role), true) = (key, role, head.status.is_success()) {
                shared.assumed.lock().unwrap().insert(key.to_string(), role);
            }
            let mut text = text.into_owned();
            if let (Some(d), Some(start), Some(end)) =
                (config.assumed_for, text.find("<Expiration>"), text.find("</Expiration>"))
            {
                let at = aws_smithy_types::DateTime::from(std::time::SystemTime::now() + d);
                let at = at.fmt(aws_smithy_types::date_time::Format::DateTime).unwrap_or_default();
                text.replace_range(start + "<Expiration>".len()..end, &at);
            }
            Response::from_parts(head, Full::new(Bytes::from(text)))
        }
        ("route53", "ChangeResourceRecordSets") => {
            let answer = if config.route53_semantics {
                route53_change(shared, parts, body, config.alias_targets_checked).await
            } else {
                forward(shared, parts, body.clone()).await
            };
            match config.route53_insync_after {
                Some(after) if answer.status().is_success() => pending(shared, answer, Some(after)).await,
                _ => answer,
            }
        }
        ("route53", "GetChange") => {
            let answer = forward(shared, parts, body.clone()).await;
            pending(shared, answer, None).await
        }
        ("monitoring", _) if config.cloudwatch_semantics => cloudwatch::call(shared, parts, operation, body).await,
        _ => forward(shared, parts, body.clone()).await,
    }
}

/// A Route53 ChangeInfo answered `PENDING` until its change is due INSYNC: a new change (`after`
/// given) is due then; a GetChange answer is rewritten while its change is not yet due.
async fn pending(shared: &Shared, answer: Answer, after: Option<Duration>) -> Answer {
    let (head, body) = answer.into_parts();
    let bytes = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let id = text
        .split("<Id>")
        .nth(1)
        .and_then(|r| r.split("</Id>").next())
        .map(|i| i.trim_start_matches("/change/").to_string())
        .unwrap_or_default();
    let due = {
        let mut changes = shared.changes.lock().unwrap();
        if let Some(after) = after {
            changes.insert(id.clone(), Instant::now() + after);
        }
        changes.get(&id).copied()
    };
    let text = match due {
        Some(due) if Instant::now() < due => text.replace("<Status>INSYNC</Status>", "<Status>PENDING</Status>"),
        _ => text,
    };
    let mut answer = Response::from_parts(head, Full::new(Bytes::from(text)));
    answer.headers_mut().remove("content-length");
    answer
}

/// The query protocol's form (or a URL's query), decoded.
fn form_params(body: &[u8]) -> Vec<(String, String)> {
    let Ok(text) = std::str::from_utf8(body) else { return Vec::new() };
    if text.trim_start().starts_with('<') || text.trim_start().starts_with('{') {
        return Vec::new();
    }
    text.split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

/// Form/URL decoding (`%2F`, `+`).
pub fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                match std::str::from_utf8(&bytes[i + 1..i + 3]).ok().and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub(crate) fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// (access key id, region) of a request's SigV4 credential scope.
fn scope_of(parts: &Parts) -> (String, String) {
    let scope = credential_scope(parts);
    (
        scope.first().cloned().unwrap_or_else(|| "test".into()),
        scope.get(2).cloned().unwrap_or_else(|| "us-east-1".into()),
    )
}

/// The emulator's answer to a query-protocol call the kit makes itself, as `akid` in `region`
/// (the emulator checks no signature); `None` when it fails.
async fn upstream_query(shared: &Shared, akid: &str, service: &str, region: &str, form: &str) -> Option<String> {
    let response = shared
        .client
        .post(format!("{}/", shared.upstream))
        .header("content-type", "application/x-www-form-urlencoded")
        .header(
            "authorization",
            format!("AWS4-HMAC-SHA256 Credential={akid}/20260101/{region}/{service}/aws4_request, SignedHeaders=host, Signature=kit"),
        )
        .body(form.to_string())
        .send()
        .await
        .ok()?;
    if !response.status().is_success() {
        return None;
    }
    response.text().await.ok()
}

/// The request as it came, to the emulator; its answer as it came back.
async fn forward(shared: &Shared, parts: &Parts, body: Bytes) -> Answer {
    let url = format!("{}{}", shared.upstream, parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/"));
    let mut request = shared.client.request(parts.method.clone(), url);
    for (k, v) in &parts.headers {
        if !matches!(k.as_str(), "host" | "content-length" | "connection" | "transfer-encoding") {
            request = request.header(k, v);
        }
    }
    match request.body(body).send().await {
        Ok(resp) => {
            let status = resp.status();
            let headers = resp.headers().clone();
            let bytes = resp.bytes().await.unwrap_or_default();
            let mut answer = Response::new(Full::new(bytes));
            *answer.status_mut() = status;
            for (k, v) in &headers {
                if !matches!(k.as_str(), "content-length" | "connection" | "transfer-encoding") {
                    answer.headers_mut().insert(k, v.clone());
                }
            }
            answer
        }
        Err(e) => {
            let mut answer = Response::new(Full::new(Bytes::from(format!("emulator unreachable: {e}"))));
            *answer.status_mut() = StatusCode::BAD_GATEWAY;
            answer
        }
    }
}

/// An AWS-shaped error of `service`: throttling (400) or a server error (500).
fn error_answer(service: &str, operation: &str, id: u64, throttling: bool) -> Answer {
    let request_id = format!("proxy-{id:08}");
    let (status, content_type, body) = match service {
        "dynamodb" => {
            let (status, kind, message) = if throttling {
                (400, "ThrottlingException", "Rate of requests exceeds the allowed throughput.")
            } else {
                (500, "InternalServerError", "Internal server error")
            };
            let body = format!(r#"{{"__type":"com.amazonaws.dynamodb.v20120810#{kind}","message":"{message}"}}"#);
            (status, "application/x-amz-json-1.0", body)
        }
        "eks" => {
            let (status, message) = if throttling { (429, "Rate exceeded") } else { (500, "Internal server error") };
            (status, "application/json", format!(r#"{{"message":"{message}"}}"#))
        }
        _ => {
            // Route53 (REST-XML) and the query protocol (ELBv2, CloudWatch, STS, SNS) share the
            // ErrorResponse shape.
            let (status, kind, code, message) = match (throttling, service, operation) {
                (true, "route53", "ChangeResourceRecordSets") if id.is_multiple_of(2) => (
                    400,
                    "Sender",
                    "PriorRequestNotComplete",
                    "The request was rejected because Route 53 was still processing a prior request.",
                ),
                (true, _, _) => (400, "Sender", "Throttling", "Rate exceeded"),
                (false, _, _) => (500, "Receiver", "InternalFailure", "An internal error occurred."),
            };
            let body = format!(
                "<?xml version=\"1.0\"?>\n<ErrorResponse><Error><Type>{kind}</Type><Code>{code}</Code><Message>{message}</Message></Error><RequestId>{request_id}</RequestId></ErrorResponse>"
            );
            (status, "text/xml", body)
        }
    };
    let mut answer = Response::new(Full::new(Bytes::from(body)));
    *answer.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    answer.headers_mut().insert("content-type", content_type.parse().unwrap());
    answer.headers_mut().insert("x-amzn-requestid", request_id.parse().unwrap());
    if service == "eks" {
        let kind = if throttling { "ThrottlingException" } else { "ServerException" };
        answer.headers_mut().insert("x-amzn-errortype", kind.parse().unwrap());
    }
    answer
}

// ---- Route53 change semantics ----------------------------------------------------------------

/// A record set's identity: name, type, SetIdentifier.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct SetKey {
    name: String,
    rtype: String,
    id: Option<String>,
}

/// The values AWS compares a DELETE against.
#[derive(Clone, Debug, PartialEq, Eq)]
struct SetValues {
    weight: Option<String>,
    ttl: Option<String>,
    records: Vec<String>,
    alias: Option<(String, String, String)>,
    health_check: Option<String>,
    region: Option<String>,
    failover: Option<String>,
}

fn child_text<'a>(node: roxmltree::Node<'a, 'a>, name: &str) -> Option<String> {
    node.children().find(|c| c.tag_name().name() == name).and_then(|c| c.text()).map(|t| t.trim().to_string())
}

fn dns_name(name: &str) -> String {
    let n = name.trim().replace("\\052", "*").to_ascii_lowercase();
    if n.ends_with('.') { n } else { format!("{n}.") }
}

/// A `ResourceRecordSet` element: its key, its values.
fn record_set(node: roxmltree::Node) -> (SetKey, SetValues) {
    let key = SetKey {
        name: dns_name(&child_text(node, "Name").unwrap_or_default()),
        rtype: child_text(node, "Type").unwrap_or_default(),
        id: child_text(node, "SetIdentifier"),
    };
    let mut records: Vec<String> = node
        .descendants()
        .filter(|n| n.tag_name().name() == "ResourceRecord")
        .filter_map(|n| child_text(n, "Value"))
        .collect();
    records.sort();
    let alias = node.children().find(|c| c.tag_name().name() == "AliasTarget").map(|a| {
        (
            child_text(a, "HostedZoneId").unwrap_or_default(),
            dns_name(&child_text(a, "DNSName").unwrap_or_default()),
            child_text(a, "EvaluateTargetHealth").unwrap_or_default().to_ascii_lowercase(),
        )
    });
    let values = SetValues {
        weight: child_text(node, "Weight"),
        ttl: child_text(node, "TTL"),
        records,
        alias,
        health_check: child_text(node, "HealthCheckId"),
        region: child_text(node, "Region"),
        failover: child_text(node, "Failover"),
    };
    (key, values)
}

fn invalid_change_batch(message: &str) -> Answer {
    xml_error(400, "InvalidChangeBatch", &format!("[{message}]"))
}

/// A sender's error in the shape Route53 and the query protocol share.
fn xml_error(status: u16, code: &str, message: &str) -> Answer {
    let body = format!(
        "<?xml version=\"1.0\"?>\n<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code><Message>{}</Message></Error><RequestId>proxy</RequestId></ErrorResponse>",
        xml_escape(message)
    );
    let mut answer = Response::new(Full::new(Bytes::from(body)));
    *answer.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
    answer.headers_mut().insert("content-type", "text/xml".parse().unwrap());
    answer
}

fn describe(key: &SetKey) -> String {
    match &key.id {
        Some(id) => format!("[name='{}', type='{}', set-identifier='{id}']", key.name, key.rtype),
        None => format!("[name='{}', type='{}']", key.name, key.rtype),
    }
}

/// ChangeResourceRecordSets as AWS applies it: every change checked in order against the zone
/// (a DELETE must match the live set's values, a CREATE must not find one), all or nothing; then
/// handed to the emulator as the UPSERTs and DELETEs that give the same zone.
async fn route53_change(shared: &Shared, parts: &Parts, body: &Bytes, check_alias: bool) -> Answer {
    let path = parts.uri.path();
    let zone = path.split("/hostedzone/").nth(1).and_then(|r| r.split('/').next()).unwrap_or_default().to_string();
    let lock = shared.zones.lock().unwrap().entry(zone.clone()).or_default().clone();
    let _one_at_a_time = lock.lock().await;

    let text = String::from_utf8_lossy(body).into_owned();
    let Ok(doc) = roxmltree::Document::parse(&text) else {
        return forward(shared, parts, body.clone()).await;
    };
    // (action, key, values, the ResourceRecordSet element as sent)
    let mut changes: Vec<(String, SetKey, SetValues, String)> = Vec::new();
    for change in doc.descendants().filter(|n| n.tag_name().name() == "Change") {
        let action = child_text(change, "Action").unwrap_or_default();
        let Some(set) = change.children().find(|c| c.tag_name().name() == "ResourceRecordSet") else { continue };
        let (key, values) = record_set(set);
        changes.push((action, key, values, text[set.range()].to_string()));
    }

    // The zone as it is, for the names the batch touches: listed name by name for a few, the
    // whole zone at once for many. A zone that cannot be read to check the batch is a server
    // error, as AWS answers when it cannot serve — never the batch applied without its checks.
    let mut names: Vec<(String, String)> =
        changes.iter().map(|(_, k, _, _)| (k.name.clone(), k.rtype.clone())).collect();
    names.sort();
    names.dedup();
    let mut zone_now: HashMap<SetKey, SetValues> = HashMap::new();
    if names.len() <= 3 {
        for (name, rtype) in &names {
            match list_sets(shared, parts, &zone, Some((name, rtype))).await {
                Some(sets) => zone_now.extend(sets),
                None => return error_answer("route53", "ChangeResourceRecordSets", 0, false),
            }
        }
    } else {
        match list_sets(shared, parts, &zone, None).await {
            Some(sets) => {
                zone_now.extend(sets.into_iter().filter(|(k, _)| names.contains(&(k.name.clone(), k.rtype.clone()))))
            }
            None => return error_answer("route53", "ChangeResourceRecordSets", 0, false),
        }
    }

    // Apply in order to a working copy; remember the XML each key ends with.
    let mut work: HashMap<SetKey, Option<(SetValues, String)>> =
        zone_now.iter().map(|(k, v)| (k.clone(), Some((v.clone(), String::new())))).collect();
    let mut order: Vec<SetKey> = Vec::new();
    for (action, key, values, xml) in &changes {
        if !order.contains(key) {
            order.push(key.clone());
        }
        let current = work.get(key).cloned().flatten();
        match action.as_str() {
            "DELETE" => match current {
                None => {
                    return invalid_change_batch(&format!(
                        "Tried to delete resource record set {} but it was not found",
                        describe(key)
                    ));
                }
                Some((live, _)) if live != *values => {
                    return invalid_change_batch(&format!(
                        "Tried to delete resource record set {} but the values provided do not match the current values",
                        describe(key)
                    ));
                }
                Some(_) => {
                    work.insert(key.clone(), None);
                }
            },
            "CREATE" => {
                if current.is_some() {
                    return invalid_change_batch(&format!(
                        "Tried to create resource record set {} but it already exists",
                        describe(key)
                    ));
                }
                work.insert(key.clone(), Some((values.clone(), xml.clone())));
            }
            _ => {
                work.insert(key.clone(), Some((values.clone(), xml.clone())));
            }
        }
    }

    // Every alias written must have a target, checked as AWS checks it.
    if check_alias {
        for (action, key, values, _) in &changes {
            let Some(alias) = &values.alias else { continue };
            if action == "DELETE" {
                continue;
            }
            if let Some(problem) = alias_problem(shared, parts, &zone, key, alias, &work).await {
                return invalid_change_batch(&problem);
            }
        }
    }

    // The same end state, as the emulator applies it right.
    let mut out = String::new();
    for key in &order {
        match work.get(key).cloned().flatten() {
            Some((_, xml)) if !xml.is_empty() => {
                out.push_str(&format!("<Change><Action>UPSERT</Action>{xml}</Change>"));
            }
            Some(_) => {}
            None => {
                let deleted = changes.iter().rev().find(|(a, k, _, _)| a == "DELETE" && k == key).map(|c| c.3.clone());
                if let Some(xml) = deleted {
                    out.push_str(&format!("<Change><Action>DELETE</Action>{xml}</Change>"));
                }
            }
        }
    }
    let rewritten = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><ChangeResourceRecordSetsRequest xmlns=\"https://route53.amazonaws.com/doc/2013-04-01/\"><ChangeBatch><Changes>{out}</Changes></ChangeBatch></ChangeResourceRecordSetsRequest>"
    );
    forward(shared, parts, Bytes::from(rewritten)).await
}

/// Why AWS would refuse an alias of `key` to `alias` (zone id, DNS name, evaluate health): a load
/// balancer that does not exist or lies in another canonical zone, a record of this zone that is
/// not there. Other targets (CloudFront, S3, API Gateway, …) are let through.
async fn alias_problem(
    shared: &Shared,
    parts: &Parts,
    zone: &str,
    key: &SetKey,
    alias: &(String, String, String),
    work: &HashMap<SetKey, Option<(SetValues, String)>>,
) -> Option<String> {
    let (target_zone, dns, _) = alias;
    let shown = dns.clone();
    let not_found = || {
        format!(
            "Tried to create an alias that targets {shown}, type {} in zone {target_zone}, but that target was not found",
            key.rtype
        )
    };
    let bare = dns.trim_start_matches("dualstack.").trim_end_matches('.').to_string();
    if bare.ends_with(".elb.amazonaws.com") || bare.contains(".elb.") {
        let region = bare.split('.').find(|l| {
            let parts: Vec<&str> = l.split('-').collect();
            parts.len() >= 3 && parts.last().is_some_and(|n| n.chars().all(|c| c.is_ascii_digit()))
        })?;
        // An alias may name a load balancer of another account: looked for in the zone's
        // account first, then in every account the kit has handed credentials for (and the
        // default one), as AWS finds it wherever it is.
        let (akid, _) = scope_of(parts);
        let mut keys = vec![akid.clone()];
        {
            let assumed = shared.assumed.lock().unwrap();
            let mut accounts: Vec<(String, String)> =
                assumed.iter().map(|(key, role)| (role_account(role).to_string(), key.clone())).collect();
            accounts.sort();
            accounts.dedup_by(|a, b| a.0 == b.0);
            keys.extend(accounts.into_iter().map(|(_, key)| key));
            keys.push("test".into());
        }
        keys.dedup();
        for akid in keys {
            match lb_in_account(shared, &akid, region, &bare).await {
                LbFound::Here(canonical) if !canonical.is_empty() && canonical != *target_zone => {
                    return Some(format!(
                        "Tried to create an alias that targets {shown}, type {} in zone {target_zone}, but the alias target name does not lie within the target zone",
                        key.rtype
                    ));
                }
                LbFound::Here(_) => return None,
                // An emulator that cannot answer does not refuse the change on the kit's account.
                LbFound::Unanswered => return None,
                LbFound::NotHere => {}
            }
        }
        return Some(not_found());
    }
    if target_zone == zone {
        let there = work.iter().any(|(k, v)| v.is_some() && k.name == *dns);
        if there {
            return None;
        }
        let listed = list_sets(shared, parts, zone, Some((dns, &key.rtype))).await?;
        return if listed.is_empty() { Some(not_found()) } else { None };
    }
    None
}

/// Whether a load balancer of DNS name `bare` is in the account `akid` acts in.
enum LbFound {
    /// Found, with its canonical hosted zone id.
    Here(String),
    NotHere,
    Unanswered,
}

async fn lb_in_account(shared: &Shared, akid: &str, region: &str, bare: &str) -> LbFound {
    let mut marker: Option<String> = None;
    for _ in 0..100 {
        let mut form = "Action=DescribeLoadBalancers&Version=2015-12-01&PageSize=400".to_string();
        if let Some(m) = &marker {
            form.push_str(&format!("&Marker={m}"));
        }
        let Some(text) = upstream_query(shared, akid, "elasticloadbalancing", region, &form).await else {
            return LbFound::Unanswered;
        };
        let Ok(doc) = roxmltree::Document::parse(&text) else { return LbFound::Unanswered };
        for lb in doc.descendants().filter(|n| n.tag_name().name() == "member" && child_text(*n, "DNSName").is_some()) {
            let lb_dns = child_text(lb, "DNSName").unwrap_or_default().to_ascii_lowercase();
            if lb_dns.trim_end_matches('.') == bare {
                return LbFound::Here(child_text(lb, "CanonicalHostedZoneId").unwrap_or_default());
            }
        }
        marker =
            doc.descendants().find(|n| n.tag_name().name() == "NextMarker").and_then(|n| n.text()).map(str::to_string);
        if marker.is_none() {
            break;
        }
    }
    LbFound::NotHere
}

/// The record sets of `name`/`rtype` in `zone` (or of the whole zone), as the emulator lists them,
/// page by page.
async fn list_sets(
    shared: &Shared,
    parts: &Parts,
    zone: &str,
    only: Option<(&str, &str)>,
) -> Option<Vec<(SetKey, SetValues)>> {
    let mut found = Vec::new();
    let mut start: Option<(String, String, Option<String>)> = only.map(|(n, t)| (n.to_string(), t.to_string(), None));
    for _ in 0..1000 {
        let mut url = format!("{}/2013-04-01/hostedzone/{zone}/rrset?maxitems=300", shared.upstream);
        if let Some((name, rtype, id)) = &start {
            url.push_str(&format!("&name={name}&type={rtype}"));
            if let Some(id) = id {
                url.push_str(&format!("&identifier={id}"));
            }
        }
        let mut request = shared.client.get(url);
        if let Some(auth) = parts.headers.get("authorization") {
            request = request.header("authorization", auth);
        }
        let response = request.send().await.ok()?;
        if !response.status().is_success() {
            return None;
        }
        let text = response.text().await.ok()?;
        let doc = roxmltree::Document::parse(&text).ok()?;
        let sets: Vec<(SetKey, SetValues)> =
            doc.descendants().filter(|n| n.tag_name().name() == "ResourceRecordSet").map(record_set).collect();
        let root = doc.root_element();
        if let Some((name, rtype)) = only {
            // Listed from the name on: the name's sets come first; one page holds them.
            found.extend(sets.into_iter().filter(|(k, _)| k.name == dns_name(name) && k.rtype == rtype));
            return Some(found);
        }
        found.extend(sets);
        if child_text(root, "IsTruncated").as_deref() != Some("true") {
            return Some(found);
        }
        let next = (
            child_text(root, "NextRecordName")?,
            child_text(root, "NextRecordType")?,
            child_text(root, "NextRecordIdentifier"),
        );
        if start.as_ref() == Some(&next) {
            return None;
        }
        start = Some(next);
    }
    None
}
