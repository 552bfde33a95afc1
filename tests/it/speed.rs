//! At the API floor, through the kit's proxy with AWS-like round trips (a Route53 change PENDING
//! until its GetChange): which calls a command makes and in what order, that Route53 never sees
//! more than five of cutover's calls a second, that ALB edits run side by side and survive ELB
//! throttling them, and that a stateful rollback's abort and audit line go out beside Route53's
//! propagation. Speed itself is benchmarked (`bench/floor.py`), not asserted here.

use std::time::Duration;

use crate::emulator::{proxy, unique};
use crate::fixtures::Aws;
use crate::proxy::{Call, Config, Latency};
use crate::scenario::{Front, Profile, Records, Rollout, mixed};
use crate::{World, expect};

/// AWS-like enough to order calls: a few milliseconds each, a change PENDING until asked again.
pub(crate) fn aws_like() -> Config {
    Config {
        latency: Latency::between(Duration::from_millis(5), Duration::from_millis(15)),
        route53_insync_after: Some(Duration::from_millis(1)),
        ..Config::default()
    }
}

pub(crate) fn ops<'a>(calls: &'a [Call], service: &str) -> Vec<&'a str> {
    let mut calls: Vec<&Call> = calls.iter().filter(|c| c.service == service).collect();
    calls.sort_by_key(|c| c.started);
    calls.into_iter().map(|c| c.operation.as_str()).collect()
}

fn first<'a>(calls: &'a [Call], operation: &str) -> &'a Call {
    calls
        .iter()
        .filter(|c| c.operation == operation)
        .min_by_key(|c| c.started)
        .unwrap_or_else(|| panic!("no {operation} among {:?}", calls.iter().map(|c| &c.operation).collect::<Vec<_>>()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollback_writes_after_one_read_and_confirms_with_get_change_alone() {
    let w = World::new().await;
    let kit = proxy(aws_like());
    let (pair, front) = mixed(&w.aws, 50).await;
    // The zone given by id.
    w.write("rb", &Profile::new().route53(pair.route_by_id()).alb(front.route()));
    expect(
        w.cutover().env("AWS_ENDPOINT_URL", &kit.endpoint).args(["-p", "rb", "rollback", "--to", "blue", "--yes"]),
        0,
    );

    assert_eq!(pair.weight("green").await, 0);
    assert_eq!(front.weights().await, (100, 0));
    let calls = kit.calls();
    // A zone given by id is not looked up; the change is the read-back (no second listing).
    assert_eq!(ops(&calls, "route53"), ["ListResourceRecordSets", "ChangeResourceRecordSets", "GetChange"]);
    let mut elb = ops(&calls, "elasticloadbalancing");
    elb.sort();
    assert_eq!(
        elb,
        ["DescribeListeners", "DescribeTags", "ModifyListener"],
        "ModifyListener's answer is the read-back"
    );
    // Both writes go out once the reads are in, and no sooner than all of them.
    let reads_done = ["ListResourceRecordSets", "DescribeListeners", "DescribeTags"].map(|op| first(&calls, op).ended);
    for write in ["ChangeResourceRecordSets", "ModifyListener"] {
        assert!(reads_done.iter().all(|r| first(&calls, write).started >= *r), "{write} waited for the reads");
    }
    // The owner-tag check went out beside the describe, not after it.
    assert!(first(&calls, "DescribeTags").started < first(&calls, "DescribeListeners").ended);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_records_in_a_big_zone_are_read_in_one_name_range() {
    let w = World::new().await;
    let kit = proxy(aws_like());
    let pair = Records::zone(&w.aws).await;
    // 400 other records around them, 30 weighted pairs named by the profile.
    let others: Vec<_> = (0..400)
        .map(|i| Aws::weighted_cname(&format!("svc{i:03}.{}", pair.zone), ("only", 1), 300, "x.example.com", None))
        .collect();
    w.aws.upsert(&pair.zone_id, others).await;
    let records: Vec<String> = (0..30).map(|i| format!("api{i:02}.{}", pair.zone)).collect();
    let sets = records
        .iter()
        .flat_map(|r| {
            [
                Aws::weighted_cname(r, ("blue", 100), 60, "blue.example.com", None),
                Aws::weighted_cname(r, ("green", 0), 60, "green.example.com", None),
            ]
        })
        .collect();
    w.aws.upsert(&pair.zone_id, sets).await;
    let profile = records
        .iter()
        .fold(Profile::new(), |p, r| p.route53(crate::scenario::Route53::new(&pair.zone_id, r).kind("CNAME")));
    w.write("many", &profile);
    expect(w.cutover().env("AWS_ENDPOINT_URL", &kit.endpoint).args(["-p", "many", "set", "green=25", "--yes"]), 0);

    for r in &records {
        assert_eq!(w.aws.weight(&pair.zone_id, r, "green").await, 25, "{r}");
    }
    // One listing from the first name past the last, one batch, one confirmation: the zone's
    // 400 other records are not paged through, and nothing is listed again after the write.
    assert_eq!(ops(&kit.calls(), "route53"), ["ListResourceRecordSets", "ChangeResourceRecordSets", "GetChange"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn route53_never_gets_more_than_five_of_cutovers_calls_a_second() {
    let w = World::new().await;
    let kit = proxy(aws_like());
    // Seven zones: seven listings, seven change batches and seven GetChanges, all wanted at once.
    let mut profile = Profile::new();
    let mut pairs = Vec::new();
    for _ in 0..7 {
        let pair = Records::cname(&w.aws, 60).await;
        profile = profile.route53(pair.route_by_id());
        pairs.push(pair);
    }
    w.write("zones", &profile);
    // Between cutover and the kit: when each request reached loopback, as the kernel stamped it —
    // what cutover's limiter let out, not when this busy test process got round to reading it.
    let tap = tap::Tap::start(&kit.endpoint);
    expect(w.cutover().env("AWS_ENDPOINT_URL", &tap.endpoint).args(["-p", "zones", "set", "green=25", "--yes"]), 0);

    for pair in &pairs {
        assert_eq!(pair.weight("green").await, 25);
    }
    // A listing, a batch and a GetChange per zone (another GetChange where the first found the
    // change still PENDING, which AWS-like latency allows now and then).
    let all = kit.calls();
    let calls = ops(&all, "route53");
    let count = |op: &str| calls.iter().filter(|c| **c == op).count();
    assert_eq!((count("ListResourceRecordSets"), count("ChangeResourceRecordSets")), (7, 7), "{calls:?}");
    assert!(count("GetChange") >= 7 && calls.len() == 14 + count("GetChange"), "{calls:?}");
    let requests = tap.requests();
    let mut sent: Vec<std::time::SystemTime> =
        requests.iter().filter(|(_, line)| line.contains(" /2013-04-01/")).map(|(at, _)| *at).collect();
    assert_eq!(sent.len(), calls.len(), "every Route53 request passed the tap: {requests:?}");
    sent.sort();
    let within = |a: &std::time::SystemTime, b: &std::time::SystemTime| {
        b.duration_since(*a).is_ok_and(|d| d < Duration::from_secs(1))
    };
    let peak = sent.iter().map(|s| sent.iter().filter(|t| within(s, t)).count()).max().unwrap();
    let ms = |t: &std::time::SystemTime| t.duration_since(sent[0]).unwrap_or_default().as_millis();
    let offsets: Vec<u128> = sent.iter().map(ms).collect();
    assert!(
        peak <= 5,
        "{peak} Route53 calls were sent within one second (AWS allows 5 a second per account); sent at ms {offsets:?}"
    );
}

/// A TCP relay that notes when each HTTP request's first bytes reached this machine's loopback,
/// by the kernel's receive timestamp (`SO_TIMESTAMPNS`): a write on loopback is stamped in the
/// sender's own system call, so the time is when cutover sent the request, however late this
/// process's threads read it.
mod tap {
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::os::fd::AsRawFd;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    /// (when it was sent, its request line).
    type Requests = Arc<Mutex<Vec<(SystemTime, String)>>>;

    pub struct Tap {
        pub endpoint: String,
        requests: Requests,
        stop: Arc<AtomicBool>,
    }

    impl Tap {
        /// A relay on a free loopback port to `upstream` (`http://127.0.0.1:PORT`).
        pub fn start(upstream: &str) -> Tap {
            let upstream = upstream.trim_start_matches("http://").trim_end_matches('/').to_string();
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            listener.set_nonblocking(true).unwrap();
            let endpoint = format!("http://{}", listener.local_addr().unwrap());
            let (requests, stop) = (Requests::default(), Arc::new(AtomicBool::new(false)));
            let (r, s) = (requests.clone(), stop.clone());
            std::thread::spawn(move || {
                while !s.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((client, _)) => relay(client, TcpStream::connect(&upstream).unwrap(), r.clone()),
                        Err(_) => std::thread::sleep(Duration::from_millis(2)),
                    }
                }
            });
            Tap { endpoint, requests, stop }
        }

        pub fn requests(&self) -> Vec<(SystemTime, String)> {
            self.requests.lock().unwrap().clone()
        }
    }

    impl Drop for Tap {
        fn drop(&mut self) {
            self.stop.store(true, Ordering::Relaxed);
        }
    }

    /// Copies both ways; a client's bytes after an answer (or first) begin a request.
    fn relay(client: TcpStream, upstream: TcpStream, requests: Requests) {
        client.set_nonblocking(false).unwrap();
        let on: libc::c_int = 1;
        // SAFETY: a valid socket and an int option of the right size.
        let set = unsafe {
            libc::setsockopt(
                client.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_TIMESTAMPNS,
                (&raw const on).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        assert_eq!(set, 0, "SO_TIMESTAMPNS");
        let answered = Arc::new(AtomicBool::new(true));
        let (mut down_from, mut down_to) = (upstream.try_clone().unwrap(), client.try_clone().unwrap());
        let a = answered.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 65536];
            while let Ok(n) = down_from.read(&mut buf) {
                if n == 0 || down_to.write_all(&buf[..n]).is_err() {
                    break;
                }
                a.store(true, Ordering::SeqCst);
            }
            let _ = down_to.shutdown(std::net::Shutdown::Both);
        });
        let mut up_to = upstream;
        std::thread::spawn(move || {
            let mut buf = [0u8; 65536];
            while let Some((n, at)) = receive(&client, &mut buf) {
                if answered.swap(false, Ordering::SeqCst) {
                    let line = String::from_utf8_lossy(&buf[..n]).lines().next().unwrap_or_default().to_string();
                    requests.lock().unwrap().push((at, line));
                }
                if up_to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
            let _ = up_to.shutdown(std::net::Shutdown::Both);
        });
    }

    /// One `recvmsg`: the bytes read and the kernel's timestamp of them; `None` at the end.
    fn receive(socket: &TcpStream, buf: &mut [u8]) -> Option<(usize, SystemTime)> {
        let mut iov = libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: buf.len() };
        let mut control = [0u64; 16];
        // SAFETY: a zeroed msghdr is valid; it points at live buffers of the lengths given.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = std::mem::size_of_val(&control) as _;
        // SAFETY: as above; the kernel writes at most the lengths given.
        let n = unsafe { libc::recvmsg(socket.as_raw_fd(), &mut msg, 0) };
        if n <= 0 {
            return None;
        }
        let mut at = None;
        // SAFETY: walking the control messages the kernel wrote, with the libc macros.
        unsafe {
            let mut c = libc::CMSG_FIRSTHDR(&msg);
            while !c.is_null() {
                if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_TIMESTAMPNS {
                    let ts: libc::timespec = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast());
                    at = Some(UNIX_EPOCH + Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32));
                }
                c = libc::CMSG_NXTHDR(&msg, c);
            }
        }
        Some((n as usize, at.expect("the kernel's receive timestamp")))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alb_edits_run_side_by_side_and_all_land_through_elb_throttling() {
    let w = World::new().await;
    let kit = proxy(Config { throttle: 0.3, fault_operations: vec!["ModifyRule".into()], seed: 13, ..aws_like() });
    let front = Front::spec(&w.aws).weights(1, 0).make().await;
    let listener = front.listener.clone();
    let mut rules = Vec::new();
    for i in 0..30 {
        rules.push(front.rule(&listener, i + 1, &format!("/r{i}/*"), &[]).await);
    }
    let profile = rules.iter().fold(Profile::new(), |p, r| p.alb(front.route().rule(r.as_str())));
    w.write("rules", &profile);
    expect(w.cutover().env("AWS_ENDPOINT_URL", &kit.endpoint).args(["-p", "rules", "set", "green=25", "--yes"]), 0);

    for r in &rules {
        assert_eq!(front.weights_at(&listener, Some(r)).await, (75, 25), "{r}");
    }
    let calls = kit.calls();
    let edits: Vec<&Call> = calls.iter().filter(|c| c.operation == "ModifyRule").collect();
    let throttled = edits.iter().filter(|c| c.fault == Some("throttling")).count();
    assert!(throttled > 0, "the proxy throttled some edits (seed 13)");
    // Side by side: more than one edit was in flight at once, never more than the first window.
    let in_flight = |at: std::time::Instant| edits.iter().filter(|c| c.started <= at && at < c.ended).count();
    let peak = edits.iter().map(|c| in_flight(c.started)).max().unwrap();
    assert!((2..=25).contains(&peak), "{peak} edits in flight at once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stateful_rollback_aborts_beside_route53s_propagation_with_its_audit_line_in_the_same_write() {
    let w = World::new().await;
    let kit = proxy(aws_like());
    let pair = Records::alias(&w.aws, (100, 0)).await;
    let rollout = Rollout::new(&[50.0, 100.0]).bake("1h").dns_ttl("0s");
    w.write("st", &Profile::new().route53(pair.route_by_id()).rollout(rollout).state(&unique("speed-")));
    expect(w.cutover().args(["-p", "st", "state", "init"]), 0);
    expect(w.cutover().args(["-p", "st", "advance", "--to", "green"]), 0);
    assert_eq!(pair.weight("green").await, 50);

    // Under exactly the policy `iam-policy` prints: the transaction's items are PutItems.
    let (printed, _) = expect(w.cutover().args(["-p", "st", "iam-policy"]), 0);
    let printed: serde_json::Value = serde_json::from_str(&printed).unwrap();
    kit.set(|c| c.iam_policy = Some(printed));
    kit.clear();
    expect(w.cutover().env("AWS_ENDPOINT_URL", &kit.endpoint).args(["-p", "st", "rollback", "--yes"]), 0);
    assert_eq!(pair.weight("green").await, 0);
    let calls = kit.calls();
    let abort = first(&calls, "TransactWriteItems");
    assert!(abort.started >= first(&calls, "ChangeResourceRecordSets").ended, "traffic first");
    assert!(abort.started < first(&calls, "GetChange").ended, "the abort went out beside GetChange");
    assert!(!calls.iter().any(|c| c.operation == "PutItem"), "the audit line went with the abort");

    let (out, _) = expect(w.cutover().args(["-p", "st", "-o", "json", "history"]), 0);
    let history: serde_json::Value = serde_json::from_str(&out).unwrap();
    let rollbacks = history["entries"]
        .as_array()
        .unwrap_or_else(|| panic!("{history}"))
        .iter()
        .filter(|e| e["action"] == "rollback")
        .count();
    assert_eq!(rollbacks, 1, "one line for the rollback: {history}");
    let (out, _) = expect(w.cutover().args(["-p", "st", "-o", "json", "status"]), 0);
    let status: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(status["rollout"]["status"], "aborted", "{status}");
}

/// Issue 26: a rollback of a `[state]` profile with no rollout recorded (traffic moved by hand)
/// read the state item again after the write, then wrote its audit line after that: two round
/// trips after the write. Its second read and its audit line now go out at once, beside
/// Route53's GetChange.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stateful_rollback_with_no_rollout_recorded_writes_its_audit_line_beside_route53s_propagation() {
    let w = World::new().await;
    let kit = proxy(aws_like());
    let pair = Records::alias(&w.aws, (50, 50)).await;
    let rollout = Rollout::new(&[50.0, 100.0]).bake("1h").dns_ttl("0s");
    w.write("nr", &Profile::new().route53(pair.route_by_id()).rollout(rollout).state(&unique("speed-")));
    expect(w.cutover().args(["-p", "nr", "state", "init"]), 0);
    let (printed, _) = expect(w.cutover().args(["-p", "nr", "iam-policy"]), 0);
    let printed: serde_json::Value = serde_json::from_str(&printed).unwrap();
    kit.set(|c| c.iam_policy = Some(printed));
    kit.clear();
    let (out, _) = expect(
        w.cutover().env("AWS_ENDPOINT_URL", &kit.endpoint).args(["-p", "nr", "rollback", "--to", "blue", "--yes"]),
        0,
    );
    assert!(out.contains("no rollout was recorded"), "{out}");
    assert_eq!(pair.weights().await, (100, 0));
    let calls = kit.calls();
    let change = first(&calls, "ChangeResourceRecordSets");
    let line = first(&calls, "PutItem");
    assert!(line.started >= change.ended, "traffic first");
    assert!(line.started < first(&calls, "GetChange").ended, "the audit line went out beside GetChange");
    let reads: Vec<&Call> = calls.iter().filter(|c| c.operation == "GetItem").collect();
    assert_eq!(reads.len(), 2, "one read before the write, one beside GetChange");
    assert!(reads.iter().all(|r| r.started < change.started || r.started < first(&calls, "GetChange").ended));
    assert_eq!(calls.iter().filter(|c| c.operation == "PutItem").count(), 1, "one audit line, written once");

    let (out, _) = expect(w.cutover().args(["-p", "nr", "-o", "json", "history"]), 0);
    let history: serde_json::Value = serde_json::from_str(&out).unwrap();
    let entries = history["entries"].as_array().unwrap_or_else(|| panic!("{history}"));
    assert_eq!(entries.iter().filter(|e| e["action"] == "rollback").count(), 1, "{history}");
}
