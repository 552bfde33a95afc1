//! The local AWS emulator for the integration tests.
//!
//! `CUTOVER_TEST_ENDPOINT` points the tests at a running moto server. Without it, the first test
//! to need one starts moto server on a free loopback port (installing it into localstack/.venv on
//! first use) and shares it with every test of this process; the server watches its stdin and
//! exits when this process ends. Every test makes its own resources (unique names), so tests run
//! in parallel on one server.
//!
//! Tests talk to moto through the kit's proxy (`localstack/proxy.rs`): one shared proxy without
//! latency or faults, which gives Route53 changes AWS's semantics; tests of races, storms and
//! kills start proxies of their own with AWS-like latency and faults ([`proxy`]).

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::proxy::{Config, Proxy};

struct Server {
    endpoint: String,
    // Kept open for the life of the test process: closing it stops the server.
    _child: Option<Mutex<Child>>,
}

static SERVER: OnceLock<Server> = OnceLock::new();
static PROXY: OnceLock<Proxy> = OnceLock::new();

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The endpoint tests use, e.g. `http://127.0.0.1:45123`: the shared proxy in front of moto.
pub fn endpoint() -> &'static str {
    &PROXY.get_or_init(|| Proxy::start(moto(), Config::default())).endpoint
}

/// moto itself, behind every proxy.
pub fn moto() -> &'static str {
    &SERVER.get_or_init(start).endpoint
}

/// A proxy of one test's own in front of moto (latency, faults, a log of its calls).
pub fn proxy(config: Config) -> Proxy {
    Proxy::start(moto(), config)
}

fn start() -> Server {
    if let Ok(endpoint) = std::env::var("CUTOVER_TEST_ENDPOINT") {
        assert!(
            endpoint.starts_with("http://127.0.0.1:") || endpoint.starts_with("http://localhost:"),
            "CUTOVER_TEST_ENDPOINT must be a loopback address, not {endpoint}"
        );
        return Server { endpoint, _child: None };
    }
    let venv = Command::new(repo().join("localstack/venv.sh"))
        .stderr(Stdio::inherit())
        .output()
        .expect("run localstack/venv.sh");
    assert!(venv.status.success(), "localstack/venv.sh failed");
    let python = String::from_utf8(venv.stdout).expect("utf-8 path").trim().to_string();
    let port = TcpListener::bind("127.0.0.1:0").expect("bind a free port").local_addr().unwrap().port();
    let mut child = Command::new(python)
        .arg(repo().join("localstack/moto_server.py"))
        .args(["--port", &port.to_string(), "--watch-stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start moto server");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.contains("listening") {
                let _ = tx.send(());
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(60)).expect("moto server did not start within 60s");
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        assert!(Instant::now() < deadline, "moto server is not accepting connections on {addr}");
        std::thread::sleep(Duration::from_millis(50));
    }
    Server { endpoint: format!("http://{addr}"), _child: Some(Mutex::new(child)) }
}

/// A name no other test (or earlier run against the same emulator) uses, eleven characters
/// after `prefix`: of one length, so output that aligns columns by name lengths is the same from
/// run to run once the name is redacted (`snap.rs`).
pub fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed) % 10000;
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    format!("{prefix}{:04}{n:04}{:03x}", std::process::id() % 10000, nanos % 0xfff)
}

/// The emulator's raw answer to one call of `service` (`route53`, `elasticloadbalancing`, …):
/// GET `path`, or POST a query-protocol `form` to `/`. The emulator tells the service by the
/// credential scope and checks no signature. For stubs that must answer as the emulator does.
pub async fn raw_answer(service: &str, path: &str, form: Option<&str>) -> String {
    let client = reqwest::Client::new();
    let url = format!("{}{path}", endpoint());
    let request = match form {
        Some(form) => {
            client.post(url).header("content-type", "application/x-www-form-urlencoded").body(form.to_string())
        }
        None => client.get(url),
    };
    request
        .header("authorization", format!("AWS4-HMAC-SHA256 Credential=test/20260101/us-west-2/{service}/aws4_request, SignedHeaders=host, Signature=x"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}
