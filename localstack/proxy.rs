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
//! - **Route53 change semantics** (on by default, `proxy_route53.rs`): a batch is checked against the zone as AWS
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
//! - **CloudWatch metric data** (`metrics`, `proxy_metrics.rs`): load balancers' metrics published
//!   by the minute, late, only for minutes with requests; GetMetricData answered as AWS answers it.
//! - **Alarms evaluated** (`evaluate_alarms`, `proxy_alarms.rs`) once a minute from that data, as
//!   CloudWatch evaluates them (periods, datapoints to alarm, missing data).
//! - **Route53 health checks evaluated** (`health_checks`, `proxy_health_checks.rs`) from their
//!   alarms and children at Route53's interval; GetHealthCheckStatus answers.
//! - **Simulated clients** (`proxy_clients.rs`, [`Proxy::clients`]): apps whose clients resolve
//!   weighted records as resolvers do, follow ALB weights and stickiness, and reach target groups
//!   whose error rates and latencies a test sets; the load balancers count their requests.
//! - **The kit's clock** (`clock`, `proxy_clock.rs`): real, or faster and shared with the cutover
//!   processes under test through libfaketime, so a test waits seconds for CloudWatch's minutes.
//! - **IAM** (`iam_policy`, `proxy_iam.rs`): every call checked against one identity policy —
//!   action, resource, Route53's record-name conditions — and refused with AWS's AccessDenied.
//! - **A log** of every call: service, operation, when it started, reached moto and ended, the
//!   status, the fault injected, and the body of writes.
//!
//! The tests start it in-process ([`Proxy::start`]); `cargo run --example proxy` runs it in front
//! of a moto server for the demo and the benchmarks.

#![allow(dead_code)]

#[path = "proxy_alarms.rs"]
mod alarms;
#[path = "proxy_clients.rs"]
pub mod clients;
#[path = "proxy_clock.rs"]
pub mod clock;
#[path = "proxy_cloudformation.rs"]
pub mod cloudformation;
#[path = "proxy_cloudwatch.rs"]
mod cloudwatch;
#[path = "proxy_health_checks.rs"]
mod health_checks;
#[path = "proxy_iam.rs"]
pub mod iam;
#[path = "proxy_metrics.rs"]
pub mod metrics;
#[path = "proxy_route53.rs"]
mod route53;
#[path = "proxy_s3.rs"]
pub mod s3;
#[path = "proxy_ssm.rs"]
mod ssm;

pub use clients::{App, Backend, Clients};
pub use clock::Clock;
pub use metrics::Publish;

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
    /// The kit's time: metric timestamps, publishing, evaluations, the clients' TTLs.
    pub clock: Clock,
    /// The kit serves CloudWatch metric data (PutMetricData, GetMetricData) as AWS does, the load
    /// balancers' minutes published as this says; `None`: moto's metric data.
    pub metrics: Option<Publish>,
    /// Metric alarms made through the proxy evaluated every minute from the kit's metric data
    /// (needs `metrics`).
    pub evaluate_alarms: bool,
    /// Route53 health checks made through the proxy evaluated this often (Route53: 30 s or
    /// 10 s); GetHealthCheckStatus answered; the clients honour them. `None`: moto's.
    pub health_checks: Option<Duration>,
    /// Route53's limit of active health checks per account (200 by default on AWS): a
    /// CreateHealthCheck past it is refused with `TooManyHealthChecks`, counting the checks made
    /// through the proxy. `None`: no limit.
    pub health_check_quota: Option<usize>,
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
            clock: Clock::real(),
            metrics: None,
            evaluate_alarms: false,
            health_checks: None,
            health_check_quota: None,
        }
    }
}

impl Config {
    /// The kit as AWS behaves where CloudWatch and Route53 judge traffic: load balancers publish
    /// a minute `delay` after it ends, alarms are evaluated, health checks checked every 30 s —
    /// on `clock`.
    pub fn realistic(clock: Clock, delay: Duration) -> Config {
        Config {
            clock,
            metrics: Some(Publish::After { delay, jitter: Duration::ZERO }),
            evaluate_alarms: true,
            health_checks: Some(Duration::from_secs(30)),
            ..Config::default()
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
    /// The kit's metric data (`Config::metrics`).
    store: Mutex<metrics::Store>,
    /// Metric alarms made through this proxy, to evaluate.
    alarms: Mutex<alarms::Definitions>,
    /// Route53 health checks made through this proxy.
    health: Mutex<health_checks::Registry>,
    /// The simulated clients.
    clients: Mutex<Clients>,
    /// Wakes the kit's loop (clients started, the configuration changed).
    wake: tokio::sync::Notify,
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
            store: Mutex::new(metrics::Store::default()),
            alarms: Mutex::new(alarms::Definitions::new()),
            health: Mutex::new(health_checks::Registry::default()),
            clients: Mutex::new(Clients::default()),
            wake: tokio::sync::Notify::new(),
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
                tokio::spawn(kit(s.clone()));
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
        self.shared.wake.notify_one();
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

    /// The kit's clock.
    pub fn clock(&self) -> Clock {
        self.shared.config.lock().unwrap().clock
    }

    /// The simulated clients: start and stop apps, set target groups' backends, read what they
    /// sent. (Do not hold it across an await.)
    pub fn clients(&self) -> std::sync::MutexGuard<'_, Clients> {
        self.shared.wake.notify_one();
        self.shared.clients.lock().unwrap()
    }

    /// A Route53 health check's status as the kit last evaluated it (`None`: not one it knows).
    pub fn health_check(&self, id: &str) -> Option<bool> {
        self.shared.health.lock().unwrap().healthy(id)
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
    if parts.uri.path().starts_with("/_kit/") {
        return Ok(control(&shared, &parts, &body));
    }
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
        ("route53", "POST") if path.contains("/tags/healthcheck/") => "ChangeTagsForResource",
        ("route53", "GET") if path.contains("/tags/healthcheck/") => "ListTagsForResource",
        ("route53", "POST") if path.ends_with("/tags/healthcheck") => "ListTagsForResources",
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
        "ssm" => (
            400,
            "application/x-amz-json-1.1",
            serde_json::json!({"__type": "AccessDeniedException", "message": message}).to_string(),
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

/// The account an access key acts in: its role's, for credentials from AssumeRole.
fn account_of(shared: &Shared, akid: &str) -> String {
    shared.assumed.lock().unwrap().get(akid).map(|r| role_account(r).to_string()).unwrap_or_else(|| IAM_ACCOUNT.into())
}

// ---- the kit's own work: clients, publishing, evaluations -------------------------------------

/// How often the kit's loop runs (real time), and how often while it has nothing to do (no
/// clients, no evaluations): most proxies of a test run never use it.
const KIT_TICK: Duration = Duration::from_millis(50);
const KIT_IDLE: Duration = Duration::from_millis(500);
/// The clients read the configuration at most this often (real time): moto serves everyone.
const REFRESH_FLOOR: Duration = Duration::from_millis(250);

/// The kit's loop: the simulated clients' requests and what the load balancers count of them,
/// alarms evaluated at each minute of the kit's clock, health checks at their interval.
async fn kit(shared: Arc<Shared>) {
    let up = clients::Upstream::new(&shared.upstream);
    let mut known = clients::Known::default();
    let mut evaluated: Option<i64> = None;
    let mut unsent: Vec<metrics::Counted> = Vec::new();
    let mut sent = Instant::now();
    let mut tick = KIT_TICK;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(tick) => {}
            _ = shared.wake.notified() => {}
        }
        let (clock, publish, evaluate_alarms, health_every) = {
            let c = shared.config.lock().unwrap();
            (c.clock, c.metrics, c.evaluate_alarms, c.health_checks)
        };
        let idle = !evaluate_alarms && health_every.is_none() && unsent.is_empty();
        tick = if idle && shared.clients.lock().unwrap().is_empty() { KIT_IDLE } else { KIT_TICK };
        // The clients: the configuration they must read again, then their requests.
        let floor = REFRESH_FLOOR.mul_f64(clock.speed());
        let plans = shared.clients.lock().unwrap().due(clock.now(), floor);
        for plan in plans {
            if let Some(view) = clients::view(&up, &mut known, &plan).await {
                shared.clients.lock().unwrap().install(&plan.app, view);
            }
        }
        let points = {
            let health = shared.health.lock().unwrap();
            let healthy = |id: &str| if health_every.is_some() { health.healthy(id) } else { None };
            let mut c = shared.clients.lock().unwrap();
            c.advance(clock.now(), &healthy);
            c.take(IAM_ACCOUNT)
        };
        match publish {
            Some(publish) => {
                let mut store = shared.store.lock().unwrap();
                for (key, minute, unit, stats) in points {
                    store.publish(key, minute, unit, &stats, &publish);
                }
            }
            None => {
                unsent.extend(points);
                // Stamped when sent: often, so that few requests from before a shift are
                // stamped after it.
                if !unsent.is_empty() && sent.elapsed() >= Duration::from_millis(250) {
                    clients::put_to_emulator(&up, &merged(std::mem::take(&mut unsent)), clock.now()).await;
                    sent = Instant::now();
                }
            }
        }
        // Alarms, once a minute at the minute.
        let minute = clock::epoch(clock::minute_of(clock.now()));
        if evaluate_alarms && publish.is_some() && evaluated != Some(minute) {
            if evaluated.is_some() {
                evaluate_alarms_at(&shared, clock::at_epoch(minute), &clock).await;
            }
            evaluated = Some(minute);
        }
        // Health checks at their interval.
        if let Some(every) = health_every {
            let now = clock.now();
            let due = shared.health.lock().unwrap().last.is_none_or(|t| now >= t + every);
            if due {
                check_health(&shared, now, publish.is_some()).await;
            }
        }
    }
}

/// Datapoints of one series and minute added up.
fn merged(points: Vec<metrics::Counted>) -> Vec<metrics::Counted> {
    let mut by: std::collections::BTreeMap<(metrics::SeriesKey, i64), (&'static str, metrics::Stats)> =
        std::collections::BTreeMap::new();
    for (key, minute, unit, stats) in points {
        by.entry((key, minute)).or_insert_with(|| (unit, metrics::Stats::empty())).1.merge(&stats);
    }
    by.into_iter().map(|((key, minute), (unit, stats))| (key, minute, unit, stats)).collect()
}

/// Every alarm made through the proxy, evaluated at `at`; changes written to moto and the history.
async fn evaluate_alarms_at(shared: &Shared, at: std::time::SystemTime, clock: &Clock) {
    let defs: Vec<alarms::Definition> = shared.alarms.lock().unwrap().values().cloned().collect();
    if defs.is_empty() {
        return;
    }
    let mut wanted: std::collections::BTreeMap<(String, String), Vec<String>> = std::collections::BTreeMap::new();
    for d in &defs {
        wanted.entry((d.akid.clone(), d.region.clone())).or_default().push(d.name.clone());
    }
    let states = cloudwatch::states(shared, &wanted).await;
    for d in defs {
        let verdict = alarms::evaluate(&d, &shared.store.lock().unwrap(), at);
        let Some(new) = verdict.state else { continue };
        let key = (d.akid.clone(), d.region.clone(), d.name.clone());
        let Some(old) = states.get(&key) else { continue };
        if old != new {
            cloudwatch::set_state(
                shared,
                &d.akid,
                &d.region,
                &d.name,
                old,
                new,
                &verdict.reason,
                &verdict.data,
                clock.now(),
            )
            .await;
        }
    }
}

/// Every health check evaluated at `now` from its alarm's state; `HealthCheckStatus` published.
async fn check_health(shared: &Shared, now: std::time::SystemTime, publish: bool) {
    let wanted = shared.health.lock().unwrap().alarms();
    let states = cloudwatch::states(shared, &wanted).await;
    let verdicts = shared.health.lock().unwrap().evaluate(now, &states);
    if !publish {
        return;
    }
    let mut store = shared.store.lock().unwrap();
    for (id, akid, healthy) in verdicts {
        let key = metrics::SeriesKey::new(
            &account_of(shared, &akid),
            "us-east-1",
            "AWS/Route53",
            "HealthCheckStatus",
            &[("HealthCheckId", id.as_str())],
        );
        let mut stats = metrics::Stats::empty();
        stats.add(if healthy { 1.0 } else { 0.0 });
        store.put(key, now, Some("None".into()), stats, now);
    }
}

/// The kit's control API, for processes that drive the kit from outside (the demo's seed):
/// `POST /_kit/clients` `{"apps": [App…], "seconds": 300}` starts apps' clients (for that long);
/// `DELETE /_kit/clients` stops them all; `POST /_kit/backends` `{"TARGET GROUP": Backend…}` sets
/// how target groups answer; `GET /_kit/served?app=NAME&seconds=60` says what an app's clients
/// sent lately, per destination.
fn control(shared: &Shared, parts: &Parts, body: &Bytes) -> Answer {
    #[derive(serde::Deserialize)]
    struct Start {
        apps: Vec<App>,
        #[serde(default)]
        seconds: Option<f64>,
    }
    let json = |status: u16, v: serde_json::Value| {
        let mut a = Response::new(Full::new(Bytes::from(v.to_string())));
        *a.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
        a.headers_mut().insert("content-type", "application/json".parse().unwrap());
        a
    };
    let clock = shared.config.lock().unwrap().clock;
    let now = clock.now();
    shared.wake.notify_one();
    match (parts.method.as_str(), parts.uri.path()) {
        ("POST", "/_kit/clients") => match serde_json::from_slice::<Start>(body) {
            Ok(start) => {
                let until = start.seconds.map(|s| now + Duration::from_secs_f64(s.max(0.0)));
                let names: Vec<String> = start.apps.iter().map(|a| a.name.clone()).collect();
                let mut c = shared.clients.lock().unwrap();
                for app in start.apps {
                    c.start(app, until);
                }
                json(200, serde_json::json!({"started": names}))
            }
            Err(e) => json(400, serde_json::json!({"error": e.to_string()})),
        },
        ("DELETE", "/_kit/clients") => {
            shared.clients.lock().unwrap().stop(None);
            json(200, serde_json::json!({"stopped": true}))
        }
        ("POST", "/_kit/backends") => {
            match serde_json::from_slice::<std::collections::BTreeMap<String, Backend>>(body) {
                Ok(backends) => {
                    let mut c = shared.clients.lock().unwrap();
                    for (tg, b) in backends {
                        c.backend(&tg, b);
                    }
                    json(200, serde_json::json!({"ok": true}))
                }
                Err(e) => json(400, serde_json::json!({"error": e.to_string()})),
            }
        }
        ("GET", "/_kit/served") => {
            let q: Vec<(String, String)> = parts.uri.query().map(|q| form_params(q.as_bytes())).unwrap_or_default();
            let get = |k: &str| q.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
            let app = get("app").unwrap_or_default();
            let secs = get("seconds").and_then(|s| s.parse::<f64>().ok()).unwrap_or(60.0);
            let from = now - Duration::from_secs_f64(secs.max(0.0));
            let served = shared.clients.lock().unwrap().served(&app, from, now + Duration::from_secs(1));
            json(200, serde_json::json!({"app": app, "served": served}))
        }
        _ => json(
            404,
            serde_json::json!({"error": "the kit's control API: /_kit/clients, /_kit/backends, /_kit/served"}),
        ),
    }
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
                route53::change(shared, parts, body, config.alias_targets_checked).await
            } else {
                forward(shared, parts, body.clone()).await
            };
            match config.route53_insync_after {
                Some(after) if answer.status().is_success() => route53::pending(shared, answer, Some(after)).await,
                _ => answer,
            }
        }
        ("route53", "ListResourceRecordSets") if config.route53_semantics => route53::list(shared, parts, body).await,
        ("route53", "GetChange") => {
            let answer = forward(shared, parts, body.clone()).await;
            route53::pending(shared, answer, None).await
        }
        ("route53", "CreateHealthCheck") => {
            if let Some(quota) = config.health_check_quota {
                let (akid, _) = scope_of(parts);
                if shared.health.lock().unwrap().active(&akid) >= quota {
                    return xml_error(
                        400,
                        "TooManyHealthChecks",
                        "You have reached the maximum number of active health checks for an AWS account. To request a higher limit, create a case with the AWS Support Center.",
                    );
                }
            }
            let answer = forward(shared, parts, body.clone()).await;
            let (head, answer_body) = answer.into_parts();
            let bytes = answer_body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
            if head.status.is_success() {
                let (akid, _) = scope_of(parts);
                shared.health.lock().unwrap().register(
                    &akid,
                    &String::from_utf8_lossy(body),
                    &String::from_utf8_lossy(&bytes),
                );
            }
            Response::from_parts(head, Full::new(bytes))
        }
        ("route53", "DeleteHealthCheck") => {
            let id = parts.uri.path().trim_end_matches('/').rsplit('/').next().unwrap_or_default().to_string();
            let parent = shared.health.lock().unwrap().used_by(&id);
            if let (Some(parent), Some(_)) = (parent, config.health_checks) {
                return health_checks::in_use(&id, &parent);
            }
            let answer = forward(shared, parts, body.clone()).await;
            if answer.status().is_success() {
                shared.health.lock().unwrap().forget(&id);
            }
            answer
        }
        ("route53", "GetHealthCheckStatus") if config.health_checks.is_some() => {
            let path = parts.uri.path().trim_end_matches('/');
            let id = path.trim_end_matches("/status").rsplit('/').next().unwrap_or_default();
            let known = shared.health.lock().unwrap().status(id);
            match known {
                Some(answer) => answer,
                None => forward(shared, parts, body.clone()).await,
            }
        }
        ("monitoring", "GetMetricData") if config.metrics.is_some() => {
            let (akid, region) = scope_of(parts);
            let store = shared.store.lock().unwrap();
            metrics::get(&store, &form_params(body), &account_of(shared, &akid), &region, config.clock.now())
        }
        ("monitoring", "PutMetricData") if config.metrics.is_some() => {
            let answer = forward(shared, parts, body.clone()).await;
            if answer.status().is_success() {
                let (akid, region) = scope_of(parts);
                let publish = config.metrics.unwrap_or(Publish::Live);
                let mut store = shared.store.lock().unwrap();
                let now = config.clock.now();
                metrics::put(&mut store, &form_params(body), &account_of(shared, &akid), &region, now, &publish);
            }
            answer
        }
        ("monitoring", _) if config.cloudwatch_semantics => cloudwatch::call(shared, parts, operation, body).await,
        // moto neither keeps Change Calendars nor serves their state.
        ("ssm", "GetCalendarState") => ssm::calendar_state(shared, parts, body, config.clock.now()).await,
        ("ssm", "CreateDocument" | "GetDocument" | "DescribeDocument") => {
            ssm::document(shared, parts, operation, body).await
        }
        _ => forward(shared, parts, body.clone()).await,
    }
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

/// Form encoding of one value.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
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
    let up =
        clients::Upstream { http: shared.client.clone(), endpoint: shared.upstream.clone(), access_key: akid.into() };
    up.query(service, region, form).await
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

fn child_text<'a>(node: roxmltree::Node<'a, 'a>, name: &str) -> Option<String> {
    node.children().find(|c| c.tag_name().name() == name).and_then(|c| c.text()).map(|t| t.trim().to_string())
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
