//! Seeds the local emulator with the demo environment that `profiles/demo.toml` describes, and
//! resets it to "all traffic on blue" when it is already there. Run by `localstack/demo.sh`:
//!
//! ```text
//! AWS_ENDPOINT_URL=http://127.0.0.1:4566 cargo run --example seed
//! ```
//!
//! It only ever talks to a loopback endpoint: seeding is for the emulator, never for real AWS.

#[path = "fixtures.rs"]
mod fixtures;

use fixtures::Aws;

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

    // `seed traffic SECONDS`: the demo's clients. Every half second, for at most SECONDS, the
    // requests they send are counted as the load balancers would count them (`RequestCount`):
    // split by the live weights of the record and of the front listener.
    if let [cmd, secs] = args.as_slice()
        && cmd == "traffic"
    {
        let secs: u64 = secs.parse().unwrap_or(120).min(3600);
        clients(&aws, std::time::Duration::from_secs(secs)).await;
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

/// Requests of the demo's simulated clients, as the load balancers count them, until `run` has
/// passed: 200 a tick through the record (to each side's ingress ALB by the record's weights) and
/// 200 through the front ALB (to its target groups by the listener's weights).
async fn clients(aws: &Aws, run: std::time::Duration) {
    let lbs = aws
        .elb
        .describe_load_balancers()
        .names("demo-blue-ingress")
        .names("demo-green-ingress")
        .names(FRONT)
        .send()
        .await
        .expect("the demo is seeded (DescribeLoadBalancers)");
    let arn = |name: &str| {
        lbs.load_balancers()
            .iter()
            .find(|l| l.load_balancer_name() == Some(name))
            .and_then(|l| l.load_balancer_arn())
            .expect("a demo load balancer")
            .to_string()
    };
    let (blue_ing, green_ing, front) = (arn("demo-blue-ingress"), arn("demo-green-ingress"), arn(FRONT));
    let listener = aws.elb.describe_listeners().load_balancer_arn(&front).send().await.expect("DescribeListeners");
    let listener = listener.listeners()[0].listener_arn().unwrap_or_default().to_string();
    let zone = aws.zone(ZONE).await;
    let share =
        |b: f64, g: f64, n: f64| if b + g > 0.0 { (n * b / (b + g), n * g / (b + g)) } else { (n / 2.0, n / 2.0) };
    let until = std::time::Instant::now() + run;
    while std::time::Instant::now() < until {
        let (rb, rg) = (aws.weight(&zone, RECORD, "blue").await, aws.weight(&zone, RECORD, "green").await);
        let (b, g) = share(rb as f64, rg as f64, 200.0);
        aws.requests(&blue_ing, None, b.round()).await;
        aws.requests(&green_ing, None, g.round()).await;
        let fw = aws.forward_weights(&listener, None).await;
        let (tb, tg) = (&fw[0], &fw[1]);
        let (b, g) = share(f64::from(tb.1), f64::from(tg.1), 200.0);
        aws.requests(&front, Some(&tb.0), b.round()).await;
        aws.requests(&front, Some(&tg.0), g.round()).await;
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
}
