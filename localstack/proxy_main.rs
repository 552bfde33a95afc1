//! `cargo run --example proxy -- --port 4566 --upstream http://127.0.0.1:14566`: the emulator
//! kit's proxy in front of a running moto server (see `proxy.rs`). `up.sh` starts it with AWS's
//! Route53 change semantics and no latency; the benchmarks start it with AWS-like latency. Its
//! simulated clients are started over its control API (`POST /_kit/clients`; `seed traffic`).

#[path = "proxy.rs"]
mod proxy;

use clap::Parser;
use proxy::{Config, Latency, Proxy, Publish};

/// The emulator kit's proxy: AWS-like latency, faults and Route53 semantics in front of moto.
#[derive(Parser)]
struct Args {
    /// Loopback port to listen on.
    #[arg(long, default_value_t = 4566)]
    port: u16,
    /// The emulator behind it.
    #[arg(long)]
    upstream: String,
    /// Every call's latency: `40ms`, or a range `30ms..50ms`.
    #[arg(long, default_value = "0ms", value_parser = Latency::parse)]
    latency: Latency,
    /// Writes' latency (ChangeResourceRecordSets, ModifyListener, ModifyRule), if other.
    #[arg(long, value_parser = Latency::parse)]
    write_latency: Option<Latency>,
    /// Share of calls throttled (0–1).
    #[arg(long, default_value_t = 0.0)]
    throttle: f64,
    /// Share of calls answered with a 5xx (0–1).
    #[arg(long, default_value_t = 0.0)]
    server_errors: f64,
    /// Share of calls whose connection is dropped (0–1).
    #[arg(long, default_value_t = 0.0)]
    drops: f64,
    /// Seed of the latency and fault draws.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Append every call as a JSON line to this file.
    #[arg(long)]
    log: Option<std::path::PathBuf>,
    /// Pass Route53 changes to the emulator as they are (moto's semantics).
    #[arg(long)]
    raw_route53: bool,
    /// A Route53 change turns INSYNC this long after it was accepted (`2s`); at once when absent.
    #[arg(long, value_parser = Latency::parse)]
    route53_insync_after: Option<Latency>,
    /// The kit serves CloudWatch metric data, the load balancers' minutes published `live` (as
    /// counted) or a delay after each minute ends (`90s`, or `60s..75s` with jitter).
    #[arg(long, value_parser = Publish::parse)]
    metrics: Option<Publish>,
    /// Evaluate metric alarms every minute from the kit's metric data (needs --metrics).
    #[arg(long, requires = "metrics")]
    evaluate_alarms: bool,
    /// Evaluate Route53 health checks this often (`30s`); the simulated clients honour them.
    #[arg(long, value_parser = humantime::parse_duration)]
    health_checks: Option<std::time::Duration>,
}

fn main() {
    let a = Args::parse();
    if !(a.upstream.starts_with("http://127.0.0.1:") || a.upstream.starts_with("http://localhost:")) {
        eprintln!("proxy: the upstream must be a loopback emulator, not {}", a.upstream);
        std::process::exit(2);
    }
    let log = a.log.as_ref().map(|p| {
        std::fs::OpenOptions::new().create(true).append(true).open(p).unwrap_or_else(|e| {
            eprintln!("proxy: cannot open {}: {e}", p.display());
            std::process::exit(2)
        })
    });
    let config = Config {
        seed: a.seed,
        latency: a.latency,
        write_latency: a.write_latency,
        throttle: a.throttle,
        server_error: a.server_errors,
        drop: a.drops,
        route53_semantics: !a.raw_route53,
        route53_insync_after: a.route53_insync_after.map(|l| l.max),
        metrics: a.metrics,
        evaluate_alarms: a.evaluate_alarms,
        health_checks: a.health_checks,
        ..Config::default()
    };
    let proxy = match Proxy::start_on(&format!("127.0.0.1:{}", a.port), &a.upstream, config, log) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("proxy: cannot listen on 127.0.0.1:{}: {e}", a.port);
            std::process::exit(1);
        }
    };
    println!("proxy listening on {} in front of {}", proxy.endpoint, a.upstream);
    loop {
        std::thread::park();
    }
}
