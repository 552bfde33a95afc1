//! The kit's other half, each behaviour shown through the SDK: load balancers' metrics published
//! by the minute, late, only with traffic, under both dimension sets (an NLB's in its own
//! namespace); simulated clients following weights, TTLs, stickiness and health as AWS serves
//! them; alarms evaluated from the clients' errors; Route53 health checks from their alarms. Every
//! test runs the kit's clock 30–60 times as fast; cutover, where it runs, runs on the same clock
//! under libfaketime.

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime};

use aws_sdk_cloudwatch::types::{ComparisonOperator, Dimension, HistoryItemType, Metric, MetricDataQuery, MetricStat};
use aws_sdk_route53::types::{
    AlarmIdentifier, AliasTarget, CloudWatchRegion, HealthCheckConfig, HealthCheckType, InsufficientDataHealthStatus,
    ResourceRecordSet, RrType,
};
use aws_smithy_types::DateTime;

use crate::emulator::{proxy, unique};
use crate::fixtures::Aws;
use crate::proxy::clock::minute_of;
use crate::proxy::{App, Backend, Clock, Config, Proxy, Publish};
use crate::scenario::{Gate, Profile, Records, Rollout};
use crate::{World, finish, wait_until};

/// A kit of this test's own, and a world whose SDK clients and cutover talk to it.
pub(crate) async fn kit(config: Config) -> (Clock, Proxy, World) {
    let clock = config.clock;
    let kit = proxy(config);
    let mut w = World::new().await;
    w.aws = Aws::new(&kit.endpoint).await;
    (clock, kit, w)
}

/// The kit's metric data, each minute readable as it is counted, on a clock `speed` times as fast.
pub(crate) fn live(speed: f64) -> Config {
    Config { clock: Clock::scaled(speed), metrics: Some(Publish::Live), ..Config::default() }
}

/// `cutover` on the kit's clock (libfaketime at its speed, from its time now).
pub(crate) fn cutover(w: &World, kit: &Proxy) -> std::process::Command {
    let mut cmd = w.std_cutover();
    cmd.envs(kit.clock().faketime_env().expect("libfaketime"));
    cmd
}

/// Runs `cutover ARGS` on the kit's clock to its end (at most `real` seconds).
pub(crate) async fn on_kit(w: &World, kit: &Proxy, args: &[&str], real: u64) -> (i32, String, String) {
    let child = cutover(w, kit)
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    finish(child, real).await
}

/// A listener rule of priority 10 forwarding host `host` to target group `tg`.
pub(crate) async fn host_rule(w: &World, listener: &str, host: &str, tg: &str) {
    w.aws
        .elb
        .create_rule()
        .listener_arn(listener)
        .priority(10)
        .conditions(
            aws_sdk_elasticloadbalancingv2::types::RuleCondition::builder().field("host-header").values(host).build(),
        )
        .actions(Aws::forward(&[(tg, 1)], None))
        .send()
        .await
        .expect("CreateRule");
}

/// Waits (real time, bounded) until the kit's clock reads `t`.
pub(crate) async fn until(clock: &Clock, t: SystemTime) {
    let deadline =
        Instant::now() + clock.real_time(t.duration_since(clock.now()).unwrap_or_default()) + Duration::from_secs(30);
    while clock.now() < t {
        assert!(Instant::now() < deadline, "the kit's clock did not reach {t:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// An ALB (or NLB) whose port-80 listener forwards to one target group of its own.
pub(crate) struct Lb {
    pub(crate) arn: String,
    pub(crate) dns: String,
    pub(crate) zone: String,
    pub(crate) tg: String,
    pub(crate) listener: String,
}

impl Lb {
    pub(crate) async fn new(w: &World, network: bool) -> Lb {
        let (vpc, subnets) = w.aws.network().await;
        let name = unique(if network { "n" } else { "a" });
        let out = w
            .aws
            .elb
            .create_load_balancer()
            .name(&name)
            .set_subnets(Some(subnets))
            .r#type(if network {
                aws_sdk_elasticloadbalancingv2::types::LoadBalancerTypeEnum::Network
            } else {
                aws_sdk_elasticloadbalancingv2::types::LoadBalancerTypeEnum::Application
            })
            .send()
            .await
            .expect("CreateLoadBalancer");
        let lb = out.load_balancers.unwrap().remove(0);
        let (arn, dns, zone) =
            (lb.load_balancer_arn.unwrap(), lb.dns_name.unwrap(), lb.canonical_hosted_zone_id.unwrap());
        if !network {
            let tg = w.aws.target_group(&unique("t"), &vpc, &["10.0.1.9"]).await;
            let listener = w.aws.listener(&arn, 80, Aws::forward(&[(&tg, 1)], None), &[]).await;
            return Lb { arn, dns, zone, tg, listener };
        }
        use aws_sdk_elasticloadbalancingv2::types::ProtocolEnum;
        let tg = w
            .aws
            .elb
            .create_target_group()
            .name(unique("t"))
            .protocol(ProtocolEnum::Tcp)
            .port(80)
            .vpc_id(&vpc)
            .send()
            .await
            .expect("CreateTargetGroup")
            .target_groups
            .unwrap()
            .remove(0)
            .target_group_arn
            .unwrap();
        let listener = w
            .aws
            .elb
            .create_listener()
            .load_balancer_arn(&arn)
            .protocol(ProtocolEnum::Tcp)
            .port(80)
            .default_actions(Aws::forward(&[(&tg, 1)], None))
            .send()
            .await
            .expect("CreateListener")
            .listeners
            .unwrap()
            .remove(0)
            .listener_arn
            .unwrap();
        Lb { arn, dns, zone, tg, listener }
    }

    /// The `LoadBalancer` dimension.
    pub(crate) fn dim(&self) -> String {
        self.arn.split_once(":loadbalancer/").unwrap().1.to_string()
    }

    pub(crate) fn tg_dim(&self) -> String {
        self.tg.rsplit(':').next().unwrap().to_string()
    }
}

/// (minute start, value) of one statistic of a metric over `[from, to)`, oldest first.
pub(crate) async fn datapoints(
    aws: &Aws,
    namespace: &str,
    metric: &str,
    dims: &[(&str, &str)],
    stat: &str,
    (from, to): (SystemTime, SystemTime),
) -> BTreeMap<SystemTime, f64> {
    let dimensions = dims.iter().map(|(k, v)| Dimension::builder().name(*k).value(*v).build()).collect();
    let query = MetricDataQuery::builder()
        .id("m")
        .metric_stat(
            MetricStat::builder()
                .metric(
                    Metric::builder().namespace(namespace).metric_name(metric).set_dimensions(Some(dimensions)).build(),
                )
                .period(60)
                .stat(stat)
                .build(),
        )
        .build();
    let out = aws
        .cw
        .get_metric_data()
        .metric_data_queries(query)
        .start_time(DateTime::from(from))
        .end_time(DateTime::from(to))
        .send()
        .await
        .expect("GetMetricData");
    let r = out.metric_data_results.unwrap_or_default().into_iter().next().expect("one result");
    r.timestamps().iter().map(|t| SystemTime::try_from(*t).unwrap()).zip(r.values().iter().copied()).collect()
}

/// Requests the kit's clients of `app` sent to destinations containing `dest`, and in all, over
/// `[from, to)` of the kit's clock.
pub(crate) fn served(kit: &Proxy, app: &str, dest: &str, (from, to): (SystemTime, SystemTime)) -> (u64, u64) {
    let all = kit.clients().served(app, from, to);
    let mine = all.iter().filter(|(d, _)| d.contains(dest)).map(|(_, n)| n).sum();
    (mine, all.values().sum())
}

pub(crate) fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// One load balancer's minutes with publish delay `delay` (jitter up to 15 s): a minute is seen
/// no earlier than its end + the delay, and the idle minute after it never.
async fn published_after(delay: u64) {
    let publish = Publish::After { delay: secs(delay), jitter: secs(15) };
    let (clock, kit, w) = kit(Config { metrics: Some(publish), ..live(60.0) }).await;
    let lb = Lb::new(&w, false).await;
    kit.clients().start(App::load_balancer("a", &lb.arn, 5.0), None);
    // Minute m is busy, m+1 idle, m+2 busy again.
    let m = minute_of(clock.now()) + secs(60);
    until(&clock, m + secs(55)).await;
    kit.clients().rate("a", 0.0);
    until(&clock, m + secs(125)).await;
    kit.clients().rate("a", 5.0);
    let dim = lb.dim();
    let window = (m - secs(300), m + secs(600));
    let mut first_seen = None;
    let mut seen = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !seen.contains_key(&(m + secs(120))) {
        assert!(Instant::now() < deadline, "minute m+2 never published (delay {delay}s)");
        seen = datapoints(&w.aws, "AWS/ApplicationELB", "RequestCount", &[("LoadBalancer", &dim)], "Sum", window).await;
        if first_seen.is_none() && seen.contains_key(&m) {
            first_seen = Some(clock.now());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let first_seen = first_seen.expect("minute m was published");
    let due = m + secs(60 + delay);
    assert!(first_seen >= due, "minute m seen {:?} before its delay ({delay}s)", due.duration_since(first_seen));
    let late = first_seen.duration_since(due).unwrap();
    assert!(late <= secs(15 + 10), "minute m seen {late:?} after its delay ({delay}s; jitter ≤ 15s)");
    assert!(!seen.contains_key(&(m + secs(60))), "an idle minute has no datapoint: {seen:?}");
    let (sent, _) = served(&kit, "a", &lb.tg, (m, m + secs(60)));
    assert!(sent > 200, "{sent}");
    assert_eq!(seen[&m], sent as f64, "the minute's RequestCount is what the clients sent in it");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_load_balancers_minute_is_published_only_after_its_delay_and_an_idle_minute_never() {
    futures::join!(published_after(60), published_after(120), published_after(180));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alb_publishes_per_load_balancer_and_per_target_group_and_its_own_5xx_per_load_balancer_only() {
    let (clock, kit, w) = kit(live(60.0)).await;
    let lb = Lb::new(&w, false).await;
    let backend = Backend { error_rate: 0.2, connection_errors: 0.1, ..Backend::default() }
        .latency(Duration::from_millis(100), Duration::from_millis(200));
    kit.clients().backend(&lb.tg, backend);
    kit.clients().start(App::load_balancer("a", &lb.arn, 20.0), None);
    let m = minute_of(clock.now()) + secs(60);
    // The minute's last requests are counted at the kit's next tick (a few seconds at ×60).
    until(&clock, m + secs(70)).await;
    let (dim, tg) = (lb.dim(), lb.tg_dim());
    let at_lb = [("LoadBalancer", dim.as_str())];
    let at_tg = [("LoadBalancer", dim.as_str()), ("TargetGroup", tg.as_str())];
    let window = (m, m + secs(60));
    let one = |points: BTreeMap<SystemTime, f64>| points.get(&m).copied();
    let mut read = BTreeMap::new();
    for (metric, stat) in [
        ("RequestCount", "Sum"),
        ("HTTPCode_Target_5XX_Count", "Sum"),
        ("HTTPCode_Target_2XX_Count", "Sum"),
        ("TargetConnectionErrorCount", "Sum"),
        ("TargetResponseTime", "SampleCount"),
        ("TargetResponseTime", "Average"),
        ("TargetResponseTime", "p99"),
        ("TargetResponseTime", "PR(:0.15)"),
        ("HTTPCode_ELB_5XX_Count", "Sum"),
    ] {
        let lb_value = one(datapoints(&w.aws, "AWS/ApplicationELB", metric, &at_lb, stat, window).await);
        let tg_value = one(datapoints(&w.aws, "AWS/ApplicationELB", metric, &at_tg, stat, window).await);
        read.insert((metric, stat), (lb_value, tg_value));
    }
    let (requests, _) = read[&("RequestCount", "Sum")];
    let requests = requests.expect("RequestCount per load balancer");
    assert!((1100.0..=1300.0).contains(&requests), "{requests}");
    for (what, (at_lb, at_tg)) in &read {
        if what.0 == "HTTPCode_ELB_5XX_Count" {
            assert!(at_lb.is_some_and(|v| v > 0.0), "{what:?}: {at_lb:?}");
            assert_eq!(*at_tg, None, "the load balancer's own 5xx has no TargetGroup dimension");
        } else {
            assert!(at_lb.is_some(), "{what:?} per load balancer");
            assert_eq!(at_lb, at_tg, "{what:?}: one target group, the same counts under both dimension sets");
        }
    }
    let v = |metric, stat| read[&(metric, stat)].0.unwrap();
    assert_eq!(
        v("HTTPCode_Target_2XX_Count", "Sum")
            + v("HTTPCode_Target_5XX_Count", "Sum")
            + v("TargetConnectionErrorCount", "Sum"),
        requests,
        "every request answered by a target or refused a connection"
    );
    assert_eq!(
        v("HTTPCode_ELB_5XX_Count", "Sum"),
        v("TargetConnectionErrorCount", "Sum"),
        "a refused connection is the ELB's 502"
    );
    let errors = v("HTTPCode_Target_5XX_Count", "Sum") / requests;
    assert!((0.12..=0.24).contains(&errors), "about 20% of the 90% connected: {errors}");
    assert_eq!(v("TargetResponseTime", "SampleCount"), requests - v("TargetConnectionErrorCount", "Sum"));
    let average = v("TargetResponseTime", "Average");
    assert!((0.14..=0.16).contains(&average), "{average}");
    assert!((0.19..=0.2).contains(&v("TargetResponseTime", "p99")));
    let under = v("TargetResponseTime", "PR(:0.15)");
    assert!((40.0..=60.0).contains(&under), "half the responses within 150 ms: {under}");
    // The namespace is part of the metric (moto would answer this query with the ALB's data).
    let elsewhere = datapoints(&w.aws, "AWS/NetworkELB", "RequestCount", &at_lb, "Sum", window).await;
    assert!(elsewhere.is_empty(), "{elsewhere:?}");
    // StartTime is rounded down to the minute: a start inside minute m still returns minute m.
    let inside =
        datapoints(&w.aws, "AWS/ApplicationELB", "RequestCount", &at_lb, "Sum", (m + secs(30), m + secs(60))).await;
    assert_eq!(inside.get(&m), Some(&requests), "{inside:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_nlb_publishes_flows_in_aws_network_elb_and_no_request_count() {
    let (clock, kit, w) = kit(live(60.0)).await;
    let nlb = Lb::new(&w, true).await;
    let pair = Records::zone(&w.aws).await;
    let set = ResourceRecordSet::builder()
        .name(&pair.record)
        .r#type(RrType::A)
        .alias_target(
            AliasTarget::builder()
                .hosted_zone_id(&nlb.zone)
                .dns_name(&nlb.dns)
                .evaluate_target_health(false)
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    w.aws.upsert(&pair.zone_id, vec![set]).await;
    kit.clients().start(App::dns("a", &pair.zone_id, &pair.record, 10.0), None);
    let m = minute_of(clock.now()) + secs(60);
    until(&clock, m + secs(70)).await;
    let dim = nlb.dim();
    let at_lb = [("LoadBalancer", dim.as_str())];
    let window = (m, m + secs(60));
    let flows = datapoints(&w.aws, "AWS/NetworkELB", "NewFlowCount", &at_lb, "Sum", window).await;
    let (sent, _) = served(&kit, "a", "", window);
    assert_eq!(flows.get(&m), Some(&(sent as f64)), "one flow per request: {flows:?}");
    for namespace in ["AWS/NetworkELB", "AWS/ApplicationELB"] {
        let requests = datapoints(&w.aws, namespace, "RequestCount", &at_lb, "Sum", window).await;
        assert!(requests.is_empty(), "{namespace}: {requests:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resolvers_follow_the_weights_once_their_ttl_ends_and_the_overstaying_share_later() {
    let (clock, kit, w) = kit(live(30.0)).await;
    let (blue, green) = (Lb::new(&w, false).await, Lb::new(&w, false).await);
    let pair = Records::alias_to(&w.aws, (100, 0), (&blue.dns, &green.dns), &blue.zone).await;
    w.write("svc", &Profile::new().route53(pair.route()).rollout(Rollout::new(&[100.0])));
    let app = App::dns("api", &pair.zone_id, &pair.record, 100.0).overstay(0.1, secs(300));
    kit.clients().start(app, None);
    until(&clock, clock.now() + secs(90)).await;

    let out = cutover(&w, &kit).args(["-p", "svc", "set", "green=100"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let set = clock.now();
    // Within the TTL most resolvers still answer blue…
    until(&clock, set + secs(15)).await;
    let (g, all) = served(&kit, "api", &green.tg, (set, set + secs(15)));
    assert!((g as f64) < 0.4 * all as f64, "green {g} of {all} in the first 15 s");
    // …after it, all but the overstaying tenth answer green…
    until(&clock, set + secs(95)).await;
    let (g, all) = served(&kit, "api", &green.tg, (set + secs(65), set + secs(95)));
    let share = g as f64 / all as f64;
    assert!((0.87..=0.93).contains(&share), "green {share} after the TTL, 10% of resolvers overstaying");
    // …and the overstaying ones once they let go too.
    until(&clock, set + secs(360)).await;
    let (g, all) = served(&kit, "api", &green.tg, (set + secs(330), set + secs(360)));
    assert_eq!(g, all, "every resolver on green after 5 minutes");
    // The load balancers count what the clients sent.
    let window = (minute_of(set) + secs(300), minute_of(set) + secs(360));
    let counted =
        datapoints(&w.aws, "AWS/ApplicationELB", "RequestCount", &[("LoadBalancer", &green.dim())], "Sum", window)
            .await;
    let (g, _) = served(&kit, "api", &green.tg, window);
    assert_eq!(counted.values().sum::<f64>(), g as f64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn route53_leaves_out_a_record_whose_health_check_fails_and_answers_all_when_none_is_healthy() {
    let (clock, kit, w) = kit(Config { health_checks: Some(secs(10)), ..live(30.0) }).await;
    let (blue, green) = (Lb::new(&w, false).await, Lb::new(&w, false).await);
    let pair = Records::zone(&w.aws).await;
    let mut checks = Vec::new();
    for side in ["blue", "green"] {
        let alarm = unique(&format!("hc-{side}-"));
        w.aws.alarm(&alarm).await;
        checks.push((alarm.clone(), metric_check(&w, &alarm).await));
    }
    let sets = vec![
        weighted(&pair.record, ("blue", 50), &blue, Some(&checks[0].1)),
        weighted(&pair.record, ("green", 50), &green, Some(&checks[1].1)),
    ];
    w.aws.upsert(&pair.zone_id, sets).await;
    kit.clients().start(App::dns("api", &pair.zone_id, &pair.record, 100.0).ttl(secs(20)), None);
    until(&clock, clock.now() + secs(40)).await;
    let t = clock.now();
    let (g, all) = served(&kit, "api", &green.tg, (t - secs(20), t));
    assert!((0.45..=0.55).contains(&(g as f64 / all as f64)), "both healthy: {g} of {all} on green");

    // Green's alarm fires: its check turns unhealthy within Route53's interval, and once the
    // resolvers' answers expire no client is sent to green.
    w.aws.set_alarm(&checks[1].0, "ALARM").await;
    let fired = clock.now();
    wait_until(30, "green's health check unhealthy", || async { kit.health_check(&checks[1].1) == Some(false) }).await;
    let unhealthy = clock.now();
    assert!(unhealthy.duration_since(fired).unwrap() <= secs(10 + 5), "within the 10 s interval");
    let status = w.aws.r53.get_health_check_status().health_check_id(&checks[1].1).send().await.unwrap();
    let report = status.health_check_observations()[0].status_report().unwrap().status().unwrap().to_string();
    assert!(report.starts_with("Failure") && report.contains("ALARM"), "{report}");
    until(&clock, unhealthy + secs(45)).await;
    let (g, all) = served(&kit, "api", &green.tg, (unhealthy + secs(25), unhealthy + secs(45)));
    assert!(all > 0 && g == 0, "green left out: {g} of {all}");

    // Both fail: Route53 answers as if both were healthy.
    w.aws.set_alarm(&checks[0].0, "ALARM").await;
    wait_until(30, "blue's health check unhealthy", || async { kit.health_check(&checks[0].1) == Some(false) }).await;
    let both = clock.now();
    until(&clock, both + secs(50)).await;
    let (g, all) = served(&kit, "api", &green.tg, (both + secs(25), both + secs(50)));
    assert!((0.4..=0.6).contains(&(g as f64 / all as f64)), "none healthy, all answered: {g} of {all}");
}

/// A weighted alias of `record` to `lb`, with a health check when given.
pub(crate) fn weighted(record: &str, (id, weight): (&str, i64), lb: &Lb, check: Option<&str>) -> ResourceRecordSet {
    let mut set = Aws::weighted_alias(record, (id, weight), &lb.dns, &lb.zone, false);
    set.health_check_id = check.map(String::from);
    set
}

/// A `CLOUDWATCH_METRIC` health check on `alarm` (us-west-2), healthy without data.
pub(crate) async fn metric_check(w: &World, alarm: &str) -> String {
    let config = HealthCheckConfig::builder()
        .r#type(HealthCheckType::CloudwatchMetric)
        .alarm_identifier(AlarmIdentifier::builder().region(CloudWatchRegion::UsWest2).name(alarm).build().unwrap())
        .insufficient_data_health_status(InsufficientDataHealthStatus::Healthy)
        .build()
        .unwrap();
    let out = w
        .aws
        .r53
        .create_health_check()
        .caller_reference(unique("kit-"))
        .health_check_config(config)
        .send()
        .await
        .expect("CreateHealthCheck");
    out.health_check.unwrap().id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alb_clients_follow_the_weights_and_sticky_ones_keep_their_target_group_until_the_duration_ends() {
    // (The kit binds a client for the duration from its first request, refreshed by none.)
    let (clock, kit, w) = kit(live(30.0)).await;
    let lb = Lb::new(&w, false).await;
    let (vpc, _) = w.aws.network().await;
    let green = w.aws.target_group(&unique("g"), &vpc, &["10.0.2.9"]).await;
    w.aws.set_action(&lb.listener, None, Aws::forward(&[(&lb.tg, 80), (&green, 20)], Some(120))).await;
    kit.clients().start(App::load_balancer("front", &lb.arn, 100.0).clients(200), None);
    until(&clock, clock.now() + secs(30)).await;
    let t = clock.now();
    let (g, all) = served(&kit, "front", &green, (t - secs(20), t));
    assert!((0.17..=0.23).contains(&(g as f64 / all as f64)), "{g} of {all} on green at 20%");

    // All weight to green: the clients bound to blue stay there while their stickiness lasts.
    w.aws.set_action(&lb.listener, None, Aws::forward(&[(&lb.tg, 0), (&green, 100)], Some(120))).await;
    let moved = clock.now();
    until(&clock, moved + secs(60)).await;
    let (g, all) = served(&kit, "front", &green, (moved + secs(20), moved + secs(60)));
    assert!((0.15..=0.3).contains(&(g as f64 / all as f64)), "sticky clients stay: {g} of {all} on green");
    until(&clock, moved + secs(170)).await;
    let (g, all) = served(&kit, "front", &green, (moved + secs(130), moved + secs(170)));
    assert_eq!(g, all, "every binding expired after 120 s");

    // Without stickiness a weight change applies to the next request.
    w.aws.set_action(&lb.listener, None, Aws::forward(&[(&lb.tg, 50), (&green, 50)], None)).await;
    let changed = clock.now();
    until(&clock, changed + secs(30)).await;
    let (g, all) = served(&kit, "front", &green, (changed + secs(10), changed + secs(30)));
    assert!((0.45..=0.55).contains(&(g as f64 / all as f64)), "{g} of {all}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_app_on_a_shared_alb_is_counted_at_the_load_balancer_and_its_own_target_group_only() {
    let (clock, kit, w) = kit(live(60.0)).await;
    // The shared ALB: the other app on the default action, ours on a host rule.
    let shared = Lb::new(&w, false).await;
    let (vpc, _) = w.aws.network().await;
    let ours = w.aws.target_group(&unique("o"), &vpc, &["10.0.3.9"]).await;
    let host = format!("{}.example.test", unique("api"));
    host_rule(&w, &shared.listener, &host, &ours).await;
    kit.clients().start(App::load_balancer("other", &shared.arn, 500.0 / 60.0).host("other.example.test"), None);
    kit.clients().start(App::load_balancer("ours", &shared.arn, 0.0).host(&host), None);
    let m = minute_of(clock.now()) + secs(60);
    until(&clock, m + secs(70)).await;
    let dim = shared.dim();
    let ours_dim = ours.rsplit(':').next().unwrap().to_string();
    let window = (m, m + secs(60));
    let at_lb =
        datapoints(&w.aws, "AWS/ApplicationELB", "RequestCount", &[("LoadBalancer", &dim)], "Sum", window).await;
    let at_ours = [("LoadBalancer", dim.as_str()), ("TargetGroup", ours_dim.as_str())];
    let mine = datapoints(&w.aws, "AWS/ApplicationELB", "RequestCount", &at_ours, "Sum", window).await;
    let others = at_lb.get(&m).copied().unwrap_or_default();
    assert!((499.0..=501.0).contains(&others), "the other app's 500 a minute, at the load balancer: {others}");
    assert!(mine.is_empty(), "none at our target group: {mine:?}");

    kit.clients().rate("ours", 1.0);
    let m2 = minute_of(clock.now()) + secs(60);
    until(&clock, m2 + secs(70)).await;
    let mine = datapoints(&w.aws, "AWS/ApplicationELB", "RequestCount", &at_ours, "Sum", (m2, m2 + secs(60))).await;
    assert!(mine.get(&m2).is_some_and(|n| (59.0..=61.0).contains(n)), "ours, by its host rule: {mine:?}");
}

/// A 5xx alarm on `lb`'s target group as a team would write it: Sum over a minute above
/// `threshold`, `m` of `n` periods, no data not breaching (an ALB publishes no zero).
pub(crate) async fn errors_alarm(w: &World, lb: &Lb, (m, n): (i32, i32), threshold: f64) -> String {
    let name = unique("errors-");
    w.aws
        .cw
        .put_metric_alarm()
        .alarm_name(&name)
        .namespace("AWS/ApplicationELB")
        .metric_name("HTTPCode_Target_5XX_Count")
        .dimensions(Dimension::builder().name("LoadBalancer").value(lb.dim()).build())
        .dimensions(Dimension::builder().name("TargetGroup").value(lb.tg_dim()).build())
        .statistic(aws_sdk_cloudwatch::types::Statistic::Sum)
        .period(60)
        .evaluation_periods(n)
        .datapoints_to_alarm(m)
        .threshold(threshold)
        .comparison_operator(ComparisonOperator::GreaterThanThreshold)
        .treat_missing_data("notBreaching")
        .send()
        .await
        .expect("PutMetricAlarm");
    name
}

pub(crate) async fn alarm_state(w: &World, name: &str) -> String {
    let out = w.aws.cw.describe_alarms().alarm_names(name).send().await.expect("DescribeAlarms");
    out.metric_alarms()[0].state_value().unwrap().as_str().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alarm_goes_to_alarm_from_the_clients_errors_once_they_are_published_and_says_why() {
    let (clock, kit, w) = kit(Config::realistic(Clock::scaled(60.0), secs(60))).await;
    let lb = Lb::new(&w, false).await;
    let alarm = errors_alarm(&w, &lb, (2, 2), 20.0).await;
    assert_eq!(alarm_state(&w, &alarm).await, "INSUFFICIENT_DATA", "a new alarm has not evaluated yet");
    kit.clients().start(App::load_balancer("a", &lb.arn, 10.0), None);
    // Healthy targets publish no 5xx: nothing breaches, the alarm is OK.
    wait_until(30, "the alarm OK", || async { alarm_state(&w, &alarm).await == "OK" }).await;

    let m = minute_of(clock.now()) + secs(60);
    until(&clock, m).await;
    kit.clients().backend(&lb.tg, Backend::failing(0.5));
    wait_until(60, "the alarm in ALARM", || async { alarm_state(&w, &alarm).await == "ALARM" }).await;
    let fired = clock.now();
    // Two failing minutes (m and m+1), each published a minute after it ended, evaluated at
    // the next minute.
    assert!(fired >= m + secs(120 + 60), "ALARM only once both minutes were published: {:?}", fired.duration_since(m));
    assert!(fired <= m + secs(120 + 60 + 60 + 10), "and at the evaluation after: {:?}", fired.duration_since(m));
    let history = w
        .aws
        .cw
        .describe_alarm_history()
        .alarm_name(&alarm)
        .history_item_type(HistoryItemType::StateUpdate)
        .send()
        .await
        .expect("DescribeAlarmHistory");
    let newest = &history.alarm_history_items()[0];
    assert_eq!(newest.history_summary(), Some("Alarm updated from OK to ALARM"));
    let data = newest.history_data().unwrap();
    assert!(data.contains("Threshold Crossed: 2 out of the last 2 datapoints"), "{data}");
    let at = SystemTime::try_from(*newest.timestamp().unwrap()).unwrap();
    assert!(at >= fired - secs(10) && at <= fired, "stamped on the kit's clock");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cloudwatch_metric_health_check_goes_unhealthy_with_its_alarm_and_the_clients_leave_its_record() {
    let (clock, kit, w) = kit(Config::realistic(Clock::scaled(60.0), secs(60))).await;
    let (blue, green) = (Lb::new(&w, false).await, Lb::new(&w, false).await);
    let alarm = errors_alarm(&w, &green, (1, 1), 10.0).await;
    let check = metric_check(&w, &alarm).await;
    let pair = Records::zone(&w.aws).await;
    let sets = vec![
        weighted(&pair.record, ("blue", 50), &blue, None),
        weighted(&pair.record, ("green", 50), &green, Some(&check)),
    ];
    w.aws.upsert(&pair.zone_id, sets).await;
    kit.clients().start(App::dns("api", &pair.zone_id, &pair.record, 50.0), None);
    until(&clock, clock.now() + secs(70)).await;
    kit.clients().backend(&green.tg, Backend::failing(0.5));
    wait_until(60, "green's health check unhealthy", || async { kit.health_check(&check) == Some(false) }).await;
    let unhealthy = clock.now();
    assert_eq!(alarm_state(&w, &alarm).await, "ALARM");
    let status = w.aws.r53.get_health_check_status().health_check_id(&check).send().await.unwrap();
    let report = status.health_check_observations()[0].status_report().unwrap().status().unwrap().to_string();
    assert!(report.starts_with("Failure"), "{report}");
    // Route53 publishes the check's status in us-east-1.
    let east = Aws::new(&kit.endpoint).await;
    let config = aws_sdk_cloudwatch::config::Builder::from(
        &aws_config::defaults(aws_config::BehaviorVersion::latest())
            .endpoint_url(&kit.endpoint)
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_cloudwatch::config::Credentials::new("test", "test", None, None, "kit"))
            .load()
            .await,
    )
    .build();
    let east = Aws { cw: aws_sdk_cloudwatch::Client::from_conf(config), ..east };
    let status = datapoints(
        &east,
        "AWS/Route53",
        "HealthCheckStatus",
        &[("HealthCheckId", &check)],
        "Minimum",
        (unhealthy - secs(120), unhealthy + secs(60)),
    )
    .await;
    assert_eq!(status.values().last(), Some(&0.0), "{status:?}");
    // Once the resolvers' answers (60 s) have expired, no client goes to green.
    until(&clock, unhealthy + secs(90)).await;
    let (g, all) = served(&kit, "api", &green.tg, (unhealthy + secs(65), unhealthy + secs(90)));
    assert!(all > 0 && g == 0, "the clients left green: {g} of {all}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_candidate_failing_at_its_first_stage_is_rolled_back_by_its_alarm_and_the_clients_leave_it_within_the_ttl() {
    let (clock, kit, w) = kit(Config::realistic(Clock::scaled(30.0), secs(60))).await;
    let (blue, green) = (Lb::new(&w, false).await, Lb::new(&w, false).await);
    let alarm = errors_alarm(&w, &green, (1, 1), 10.0).await;
    let pair = Records::alias_to(&w.aws, (100, 0), (&blue.dns, &green.dns), &blue.zone).await;
    let rollout = Rollout::new(&[10.0, 50.0, 100.0]).bake("10m").poll("10s").failure_threshold(1).max_hold("30m");
    w.write("svc", &Profile::new().route53(pair.route()).rollout(rollout).gate(Gate::alarm(&[&alarm])));
    kit.clients().backend(&green.tg, Backend::failing(0.5));
    kit.clients().start(App::dns("api", &pair.zone_id, &pair.record, 50.0), None);
    wait_until(30, "the alarm OK", || async { alarm_state(&w, &alarm).await == "OK" }).await;

    let (started, began) = (Instant::now(), clock.now());
    let child = cutover(&w, &kit)
        .args(["-p", "svc", "-o", "json", "rollout"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let (code, out, err) = finish(child, 120).await;
    let ended = clock.now();
    assert_eq!(code, 3, "rolled back by the alarm\n{out}\n{err}");
    assert!(err.contains("in ALARM"), "{err}");
    assert_eq!(w.aws.weight(&pair.zone_id, &pair.record, "green").await, 0);
    // The clients leave green within the TTL of the rollback.
    until(&clock, ended + secs(90)).await;
    let (g, all) = served(&kit, "api", &green.tg, (ended + secs(60), ended + secs(90)));
    assert!(all > 0 && (g as f64) <= 0.01 * all as f64, "the clients left green: {g} of {all}");
    eprintln!(
        "scaled-clock scenario (x30): rollout to rollback {:.0} s on the kit's clock, clients gone 90 s later; {:.1} s real",
        ended.duration_since(began).unwrap().as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
}
