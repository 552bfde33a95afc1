//! Seeds the local emulator with the demo environment that `profiles/demo.toml` describes, and
//! resets it to "all traffic on blue" when it is already there. Run by `localstack/demo.sh` and
//! `localstack/seed.sh` (never by `. localstack/env.sh`, which only points a shell at the emulator):
//!
//! ```text
//! ./localstack/seed.sh        # or: AWS_ENDPOINT_URL=http://127.0.0.1:4566 cargo run --example seed
//! ```
//!
//! It only ever talks to a loopback endpoint: seeding is for the emulator, never for real AWS.

#[path = "fixtures.rs"]
mod fixtures;
#[path = "proxy.rs"]
mod proxy;

use fixtures::Aws;
use proxy::App;

pub const ZONE: &str = "demo.cutover.test.";
pub const RECORD: &str = "api.demo.cutover.test.";
pub const FRONT: &str = "demo-front";
pub const PREVIEW: &str = "preprod.demo.cutover.test.";

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let endpoint = std::env::var("AWS_ENDPOINT_URL").unwrap_or_else(|_| "http://127.0.0.1:4566".into());
    let host = endpoint.trim_start_matches("http://").split([':', '/']).next().unwrap_or_default();
    if !["127.0.0.1", "localhost", "[::1]"].contains(&host) {
        eprintln!("seed: refusing to seed {endpoint}: only a local emulator on 127.0.0.1 is seeded");
        std::process::exit(2);
    }
    let aws = Aws::new(&endpoint).await;

    // `seed alarm NAME STATE`: flips a demo alarm (the demo uses it to show an automatic rollback).
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let [cmd, name, state] = args.as_slice()
        && cmd == "alarm"
    {
        aws.set_alarm(name, state).await;
        println!("alarm {name} → {state}");
        return;
    }

    // `seed traffic SECONDS`: the demo's clients, run by the kit's proxy for SECONDS (`seed
    // traffic stop` stops them): through the record as resolvers follow it, and at the front ALB
    // as its listener's weights send them; the load balancers count their requests.
    if let [cmd, secs] = args.as_slice()
        && cmd == "traffic"
    {
        if secs == "stop" {
            let _ = reqwest::Client::new().delete(format!("{endpoint}/_kit/clients")).send().await;
            return;
        }
        let secs: u64 = secs.parse().unwrap_or(120).min(3600);
        clients(&aws, &endpoint, std::time::Duration::from_secs(secs)).await;
        return;
    }

    // The two ingress ALBs, as the AWS Load Balancer Controller would have created them for the
    // blue and green namespaces of EKS cluster `demo`, and the front ALB that we own.
    let existing = aws.elb.describe_load_balancers().names(FRONT).send().await;
    let (blue_dns, green_dns, lb_zone, listener, tg_blue, tg_green) = match existing {
        Ok(out) if !out.load_balancers().is_empty() => {
            let front = out.load_balancers()[0].load_balancer_arn().unwrap().to_string();
            let listeners = aws.elb.describe_listeners().load_balancer_arn(&front).send().await.unwrap();
            let listener = listeners.listeners()[0].listener_arn().unwrap().to_string();
            let ingress = aws
                .elb
                .describe_load_balancers()
                .names("demo-blue-ingress")
                .names("demo-green-ingress")
                .send()
                .await
                .unwrap();
            let dns = |name: &str| {
                ingress.load_balancers().iter().find(|l| l.load_balancer_name() == Some(name)).unwrap().clone()
            };
            let (b, g) = (dns("demo-blue-ingress"), dns("demo-green-ingress"));
            let tgs = aws.elb.describe_target_groups().names("tg-blue").names("tg-green").send().await.unwrap();
            let tg = |name: &str| {
                tgs.target_groups()
                    .iter()
                    .find(|t| t.target_group_name() == Some(name))
                    .unwrap()
                    .target_group_arn()
                    .unwrap()
                    .to_string()
            };
            (
                b.dns_name().unwrap().to_string(),
                g.dns_name().unwrap().to_string(),
                b.canonical_hosted_zone_id().unwrap().to_string(),
                listener,
                tg("tg-blue"),
                tg("tg-green"),
            )
        }
        _ => {
            let (vpc, subnets) = aws.network().await;
            let controller = |ns: &'static str| {
                [
                    ("elbv2.k8s.aws/cluster", "demo"),
                    ("ingress.k8s.aws/resource", "LoadBalancer"),
                    ("ingress.k8s.aws/stack", if ns == "blue" { "blue/myapp" } else { "green/myapp" }),
                ]
            };
            let (blue_ing, blue_dns, lb_zone) =
                aws.load_balancer("demo-blue-ingress", &subnets, &controller("blue")).await;
            let (green_ing, green_dns, _) =
                aws.load_balancer("demo-green-ingress", &subnets, &controller("green")).await;
            // Each ingress ALB forwards to its namespace's pods (TargetGroupBinding-style IP targets).
            for (lb, name, ips) in [
                (&blue_ing, "k8s-blue-myapp", ["10.0.1.20", "10.0.1.21"]),
                (&green_ing, "k8s-green-myapp", ["10.0.2.20", "10.0.2.21"]),
            ] {
                let tg = aws.target_group(name, &vpc, &ips).await;
                aws.listener(lb, 80, Aws::forward(&[(&tg, 1)], None), &[]).await;
            }
            let tg_blue = aws.target_group("tg-blue", &vpc, &["10.0.1.10", "10.0.1.11"]).await;
            let tg_green = aws.target_group("tg-green", &vpc, &["10.0.2.10", "10.0.2.11"]).await;
            let (front, _, _) = aws.load_balancer(FRONT, &subnets, &[("team", "demo")]).await;
            let listener = aws.listener(&front, 80, Aws::forward(&[(&tg_blue, 100), (&tg_green, 0)], None), &[]).await;
            (blue_dns, green_dns, lb_zone, listener, tg_blue, tg_green)
        }
    };

    // The EKS cluster both namespaces run in (created once; the emulator makes it ACTIVE).
    let clusters = aws.eks.list_clusters().send().await.expect("ListClusters");
    if !clusters.clusters().iter().any(|c| c == "demo") {
        let (_, subnets) = aws.network().await;
        aws.cluster("demo", &subnets).await;
    }

    // CloudWatch alarms per side, in OK.
    for side in ["blue", "green"] {
        let name = format!("demo-{side}-5xx");
        aws.alarm(&name).await;
    }

    // All traffic on blue.
    aws.elb
        .modify_listener()
        .listener_arn(&listener)
        .default_actions(Aws::forward(&[(&tg_blue, 100), (&tg_green, 0)], None))
        .send()
        .await
        .expect("ModifyListener");
    let zone = aws.zone(ZONE).await;
    aws.upsert(
        &zone,
        vec![
            Aws::weighted_alias(RECORD, ("blue", 100), &blue_dns, &lb_zone, true),
            Aws::weighted_alias(RECORD, ("green", 0), &green_dns, &lb_zone, true),
            // The preprod hostname: the release under test, on the candidate side.
            Aws::simple_alias(PREVIEW, &green_dns, &lb_zone),
        ],
    )
    .await;

    println!("seeded the demo environment on {endpoint}:");
    println!("  hosted zone {ZONE} ({zone}): {RECORD} weighted alias blue=100 → {blue_dns}, green=0 → {green_dns}");
    println!("  front ALB {FRONT}, listener :80 forwarding tg-blue=100 / tg-green=0");
    println!("  {PREVIEW} alias → {green_dns} (the candidate)");
    println!("  EKS cluster demo (namespaces blue and green, ingress myapp)");
    println!("  alarms demo-blue-5xx, demo-green-5xx in OK");
}

/// The demo's clients for `run`: 100 requests a second through the record (its resolvers keep
/// answers 1 s, not the alias's 60 s, so the demo's stages are verified in seconds) and 100 at the
/// front ALB. The kit's proxy runs them (its control API); an emulator without the kit gets them
/// from this process, their counts written with PutMetricData.
async fn clients(aws: &Aws, endpoint: &str, run: std::time::Duration) {
    let zone = aws.zone(ZONE).await;
    // They read the live configuration every half second, as the old demo's clients did.
    let every = std::time::Duration::from_millis(500);
    let apps = vec![
        App::dns("api", &zone, RECORD, 100.0).ttl(std::time::Duration::from_secs(1)).refresh(every),
        App::load_balancer("front", FRONT, 100.0).refresh(every),
    ];
    let start = serde_json::json!({"apps": apps, "seconds": run.as_secs_f64()});
    let kit = reqwest::Client::new().post(format!("{endpoint}/_kit/clients")).json(&start).send().await;
    if kit.is_ok_and(|r| r.status().is_success()) {
        println!("the kit's clients: {} requests a second for {}s", 200, run.as_secs());
        return;
    }
    eprintln!("seed: {endpoint} is no kit proxy: the clients run here, their counts put with PutMetricData");
    let up = proxy::clients::Upstream::new(endpoint);
    let mut known = proxy::clients::Known::default();
    let mut c = proxy::Clients::default();
    for app in apps {
        c.start(app, None);
    }
    let until = std::time::Instant::now() + run;
    while std::time::Instant::now() < until {
        let now = std::time::SystemTime::now();
        for plan in c.due(now, std::time::Duration::from_secs(1)) {
            if let Some(view) = proxy::clients::view(&up, &mut known, &plan).await {
                c.install(&plan.app, view);
            }
        }
        c.advance(now, &|_| None);
        proxy::clients::put_to_emulator(&up, &c.take(proxy::IAM_ACCOUNT), now).await;
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
}
