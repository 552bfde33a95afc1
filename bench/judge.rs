//! The judge's benchmark: simulated stages on the kit's model, judged minute by minute by the judge
//! (`cutover::judge_stats`) and, on the very same minutes, by a Flagger-style fixed threshold and a
//! Kayenta-style Mann-Whitney test. Prints markdown tables for the README.
//!
//!   cargo run --release --example judge_bench [STAGES]
//!
//! The model: requests arrive as a Poisson process (the rate in requests a second), the candidate
//! gets each with its weight's probability (so its observed share wanders around the weight), and
//! each request errs — or is slower than the SLO — independently at its side's rate. A stage is a
//! 2-minute warm-up then 30 judged minutes, every method reading after each settled minute. A shared
//! dependency failing makes 5–30 % of both sides' requests err for 3–10 minutes at a random point.
//! Every scenario has its own seed: the numbers are the same on every run and machine.

use std::time::Instant;

use cutover::judge_stats::{Bound, Minute, Served, Settings, Verdict, judge, ln_gamma};
use fastrand::Rng;

const WARMUP_MINUTES: u64 = 2;
const STAGE_MINUTES: u64 = 32;
const SHIFT_MS: u64 = 1_700_000_000_000;

#[derive(Clone, Copy)]
enum Traffic {
    /// Requests a second and candidate weight, fixed.
    Fixed(f64, f64),
    /// Each stage draws requests a second log-uniformly in 100–2,000 and the weight in 1–50 %.
    Spread,
}

#[derive(Clone, Copy)]
struct Scenario {
    traffic: Traffic,
    /// The stable side's error rate.
    errors: f64,
    /// The candidate's error rate over the stable side's.
    times: f64,
    /// A shared dependency fails both sides for a while.
    outage: bool,
    /// Slow requests (the stable side's share, the candidate's over it), judged too.
    slow: Option<(f64, f64)>,
    settings: Settings,
}

/// When each method first failed the stage (minutes since the shift), and the judge's pass and
/// last verdict.
#[derive(Clone, Copy, Default)]
struct Stage {
    judge: Option<u64>,
    judge_pass: Option<u64>,
    judge_last: Option<Verdict>,
    flagger_1: Option<u64>,
    flagger_5: Option<u64>,
    kayenta: Option<u64>,
}

fn main() {
    let stages: usize = std::env::args().nth(1).map_or(1_000, |s| s.parse().expect("STAGES is a number"));
    let began = Instant::now();
    let defaults = Settings::default();
    let with_latency = Settings { latency: Some(Bound { ratio: 1.5, margin: 0.0 }), ..defaults };
    let a_a =
        |traffic, errors, outage| Scenario { traffic, errors, times: 1.0, outage, slow: None, settings: defaults };
    let at_5 = Traffic::Fixed(1_000.0, 0.05);
    let a_b = |errors, times, settings| Scenario { traffic: at_5, errors, times, outage: false, slow: None, settings };

    let equal: Vec<(String, Scenario)> = vec![
        ("0.1 % errors".into(), a_a(Traffic::Spread, 0.001, false)),
        ("1 % errors".into(), a_a(Traffic::Spread, 0.01, false)),
        ("0.1 %, shared dependency fails both".into(), a_a(Traffic::Spread, 0.001, true)),
        ("1 %, shared dependency fails both".into(), a_a(Traffic::Spread, 0.01, true)),
        ("0.1 %, 100 rps at 1 %".into(), a_a(Traffic::Fixed(100.0, 0.01), 0.001, false)),
        ("0.1 %, 2,000 rps at 50 %".into(), a_a(Traffic::Fixed(2_000.0, 0.5), 0.001, false)),
        (
            "0.1 % errors and 1 % slow, both judged".into(),
            Scenario { slow: Some((0.01, 1.0)), settings: with_latency, ..a_a(Traffic::Spread, 0.001, false) },
        ),
    ];
    let worse: Vec<(String, Scenario)> = [0.001, 0.01]
        .into_iter()
        .flat_map(|errors| [2.0, 5.0, 10.0].map(|times| (errors, times)))
        .map(|(errors, times)| (format!("{} % → {times}×", errors * 100.0), a_b(errors, times, defaults)))
        .chain([0.001, 0.01].map(|errors| {
            (format!("{} % → 1.25× (inside the judge's bound)", errors * 100.0), a_b(errors, 1.25, defaults))
        }))
        .chain([(
            "1 % slow → 3× slow (errors equal at 0.1 %)".into(),
            Scenario { slow: Some((0.01, 3.0)), settings: with_latency, ..a_b(0.001, 1.0, defaults) },
        )])
        .collect();
    let bound = |ratio, margin, confidence| Settings { errors: Bound { ratio, margin }, confidence, ..defaults };
    let variants = [
        ("defaults: 1.5×, 0.05 points, 99 %; 5 % weight", defaults, 0.05),
        ("1.25×, 0.025 points, 99 %; 5 % weight", bound(1.25, 0.025, 0.99), 0.05),
        ("any increase (1×, 0 points), 99 %; 5 % weight", bound(1.0, 0.0, 0.99), 0.05),
        ("defaults at 95 %; 5 % weight", bound(1.5, 0.05, 0.95), 0.05),
        ("defaults; 10 % weight", defaults, 0.10),
        ("defaults; 20 % weight", defaults, 0.20),
    ];
    let sensitivity: Vec<(String, Scenario)> = variants
        .into_iter()
        .flat_map(|(name, settings, weight)| {
            [0.001, 0.01].map(|errors| {
                let traffic = Traffic::Fixed(1_000.0, weight);
                (name.to_string(), Scenario { traffic, ..a_b(errors, 2.0, settings) })
            })
        })
        .collect();

    let all: Vec<&(String, Scenario)> = equal.iter().chain(&worse).chain(&sensitivity).collect();
    let results: Vec<Vec<Stage>> = std::thread::scope(|scope| {
        let workers: Vec<_> =
            all.iter().enumerate().map(|(i, (_, s))| scope.spawn(move || run(s, stages, 24_000 + i as u64))).collect();
        workers.into_iter().map(|w| w.join().expect("a scenario ran")).collect()
    });
    let (equal_results, rest) = results.split_at(equal.len());
    let (worse_results, sensitivity_results) = rest.split_at(worse.len());

    println!(
        "`cargo run --release --example judge_bench{}`",
        if stages == 1_000 { String::new() } else { format!(" {stages}") }
    );
    println!();
    println!(
        "{} simulated stages a row: Poisson arrivals, the candidate's observed share around its weight, a 2-minute \
         warm-up then 30 judged minutes, every method reading after each settled minute. The judge at its defaults \
         (errors 1.5× and 0.05 points, 99 %, warm-up 2m); Flagger-style: the candidate's success rate ≥ 99 % each \
         minute, failing at the first failed check or at the fifth (Flagger's `threshold: 5`); Kayenta-style: a \
         Mann-Whitney test at 98 % of the two sides' per-minute error rates, judged on all minutes so far (the \
         High rule: the confidence interval's low end above 25 % of the estimate).",
        thousands(stages)
    );
    println!();
    println!("**Both sides equal** (A/A; 100–2,000 requests a second, weights 1–50 %, unless said): stages failed");
    println!();
    println!(
        "| both sides | judge | Flagger-style, 1 check | Flagger-style, 5 checks | Kayenta-style | judge passed (median minutes) / no_data / inconclusive at 32 min |"
    );
    println!("|---|---|---|---|---|---|");
    for ((name, scenario), stages) in equal.iter().zip(equal_results) {
        let judged_errors_only = scenario.slow.is_none();
        let other = |f: fn(&Stage) -> Option<u64>| {
            if judged_errors_only { pct(rate(stages, f, STAGE_MINUTES)) } else { "—".into() }
        };
        let last = |v| stages.iter().filter(|s| s.judge_last == Some(v)).count() as f64 / stages.len() as f64;
        println!(
            "| {name} | **{}** | {} | {} | {} | {} ({}) / {} / {} |",
            pct(rate(stages, |s| s.judge, STAGE_MINUTES)),
            other(|s| s.flagger_1),
            other(|s| s.flagger_5),
            other(|s| s.kayenta),
            pct(last(Verdict::Pass)),
            median(stages, |s| s.judge_pass),
            pct(last(Verdict::NoData)),
            pct(last(Verdict::Inconclusive)),
        );
    }
    println!();
    println!(
        "**Candidate worse** (A/B; 1,000 requests a second, 5 % weight): stages failed within 3 / 10 / 32 minutes \
         of the shift (median minutes to fail)"
    );
    println!();
    println!("| stable → candidate | judge | Flagger-style, 1 check | Flagger-style, 5 checks | Kayenta-style |");
    println!("|---|---|---|---|---|");
    for ((name, scenario), stages) in worse.iter().zip(worse_results) {
        let errors_only = scenario.slow.is_none();
        let cell = |f: fn(&Stage) -> Option<u64>| {
            format!(
                "{} / {} / {} ({})",
                pct(rate(stages, f, 3)),
                pct(rate(stages, f, 10)),
                pct(rate(stages, f, STAGE_MINUTES)),
                median(stages, f)
            )
        };
        let other = |f| if errors_only { cell(f) } else { "— (errors only)".into() };
        println!(
            "| {name} | **{}** | {} | {} | {} |",
            cell(|s| s.judge),
            other(|s| s.flagger_1),
            other(|s| s.flagger_5),
            other(|s| s.kayenta)
        );
    }
    println!();
    println!(
        "**What catching 2× takes** (1,000 requests a second): the judge's stages failed within 3 / 10 / 32 minutes \
         (median minutes to fail)"
    );
    println!();
    println!("| judge settings; candidate weight | 0.1 % → 2× | 1 % → 2× |");
    println!("|---|---|---|");
    for (pair, stages) in sensitivity.chunks(2).zip(sensitivity_results.chunks(2)) {
        let cell = |stages: &[Stage]| {
            let f = |s: &Stage| s.judge;
            format!(
                "{} / {} / {} ({})",
                pct(rate(stages, f, 3)),
                pct(rate(stages, f, 10)),
                pct(rate(stages, f, STAGE_MINUTES)),
                median(stages, f)
            )
        };
        println!("| {} | {} | {} |", pair[0].0, cell(&stages[0]), cell(&stages[1]));
    }
    println!();
    println!(
        "For scale: a single test at the end of a fixed window (one look, no peeking), 99 % sure of 1.5× and \
         catching 2× in 95 % of stages, needs {:.0} minutes of data at 0.1 % and {:.1} at 1 % (1,000 requests a \
         second, 5 % weight); the judge may look every minute and pays for it in minutes.",
        fixed_sample_minutes(1_000.0, 0.05, 0.001, 2.0, defaults.errors),
        fixed_sample_minutes(1_000.0, 0.05, 0.01, 2.0, defaults.errors),
    );
    eprintln!("{} stages in {:.1} s", all.len() * stages, began.elapsed().as_secs_f64());
}

/// Minutes of data a one-sided fixed-sample test of ln(ratio) (normal approximation) needs to tell
/// `times` from the bound (the ratio, or the margin over the stable rate where that is larger) at
/// 99 % with 95 % power.
fn fixed_sample_minutes(rps: f64, weight: f64, errors: f64, times: f64, bound: Bound) -> f64 {
    let (z_alpha, z_power): (f64, f64) = (2.326, 1.645);
    let worst = bound.ratio.max(1.0 + bound.margin / 100.0 / errors);
    let (candidate, stable) = (rps * 60.0 * weight * errors * times, rps * 60.0 * (1.0 - weight) * errors);
    (z_alpha + z_power).powi(2) * (1.0 / candidate + 1.0 / stable) / (times / worst).ln().powi(2)
}

fn thousands(n: usize) -> String {
    if n >= 1_000 { format!("{},{:03}", n / 1_000, n % 1_000) } else { n.to_string() }
}

fn pct(x: f64) -> String {
    if x == 0.0 { "0 %".into() } else { format!("{:.1} %", x * 100.0) }
}

/// The share of stages failed by `when` minutes after the shift.
fn rate(stages: &[Stage], f: impl Fn(&Stage) -> Option<u64>, when: u64) -> f64 {
    stages.iter().filter(|s| f(s).is_some_and(|t| t <= when)).count() as f64 / stages.len() as f64
}

/// The median minutes to the event, counting stages without it as never; "—" if most never had it.
fn median(stages: &[Stage], f: impl Fn(&Stage) -> Option<u64>) -> String {
    let mut times: Vec<u64> = stages.iter().map(|s| f(s).unwrap_or(u64::MAX)).collect();
    times.sort_unstable();
    match times[times.len() / 2] {
        u64::MAX => "—".into(),
        t => format!("{t} min"),
    }
}

fn run(scenario: &Scenario, stages: usize, seed: u64) -> Vec<Stage> {
    let mut rng = Rng::with_seed(seed);
    (0..stages).map(|_| stage(scenario, &mut rng)).collect()
}

fn stage(scenario: &Scenario, rng: &mut Rng) -> Stage {
    let (rps, weight) = match scenario.traffic {
        Traffic::Fixed(rps, weight) => (rps, weight),
        Traffic::Spread => ((100f64.ln() + rng.f64() * 20f64.ln()).exp(), 0.01 + 0.49 * rng.f64()),
    };
    // (first minute, minutes, share of requests failing) of a shared dependency's failure.
    let outage = scenario.outage.then(|| (WARMUP_MINUTES + rng.u64(0..20), rng.u64(3..=10), 0.05 + 0.25 * rng.f64()));
    let (slow, slow_times) = scenario.slow.unwrap_or((0.0, 1.0));
    let mut minutes: Vec<Minute> = Vec::new();
    let (mut candidate_rates, mut stable_rates) = (Vec::new(), Vec::new());
    let mut failed_checks = 0;
    let mut out = Stage::default();
    for m in 0..STAGE_MINUTES {
        let extra = outage.filter(|(from, len, _)| (*from..from + len).contains(&m)).map_or(0.0, |o| o.2);
        let err = |rate: f64| rate + extra * (1.0 - rate);
        let requests = rps * 60.0;
        let candidate = draw(rng, requests * weight, err(scenario.errors * scenario.times), slow * slow_times);
        let stable = draw(rng, requests * (1.0 - weight), err(scenario.errors), slow);
        minutes.push(Minute { start_ms: SHIFT_MS + m * 60_000, candidate, stable });
        if m < WARMUP_MINUTES {
            continue;
        }
        let now = m + 1;
        if out.judge.is_none() {
            let reading = judge(&scenario.settings, SHIFT_MS, &minutes);
            match reading.verdict {
                Verdict::Fail => out.judge = Some(now),
                Verdict::Pass => out.judge_pass = out.judge_pass.or(Some(now)),
                _ => {}
            }
            out.judge_last = Some(reading.verdict);
        }
        // Flagger: the candidate's success rate over the last minute, ≥ 99 %.
        if candidate.requests > 0 && (candidate.errors as f64) > 0.01 * candidate.requests as f64 {
            failed_checks += 1;
        }
        if failed_checks >= 1 {
            out.flagger_1 = out.flagger_1.or(Some(now));
        }
        if failed_checks >= 5 {
            out.flagger_5 = out.flagger_5.or(Some(now));
        }
        candidate_rates.push(candidate.errors as f64 / candidate.requests.max(1) as f64);
        stable_rates.push(stable.errors as f64 / stable.requests.max(1) as f64);
        if out.kayenta.is_none() && kayenta_high(&candidate_rates, &stable_rates) {
            out.kayenta = Some(now);
        }
    }
    out
}

/// One side's minute: errors, slow and fast answers as independent Poisson counts (a Poisson
/// stream of `mean` requests thinned by the error rate, then by the slow share).
fn draw(rng: &mut Rng, mean: f64, errors: f64, slow: f64) -> Served {
    let e = poisson(rng, mean * errors);
    let s = poisson(rng, mean * (1.0 - errors) * slow);
    let fast = poisson(rng, mean * (1.0 - errors) * (1.0 - slow));
    Served { requests: e + s + fast, errors: e, slow: s }
}

/// A Poisson draw: Knuth's product of uniforms for small means, Hörmann's PTRS (1993, as NumPy
/// draws) above.
fn poisson(rng: &mut Rng, mean: f64) -> u64 {
    if mean <= 0.0 {
        return 0;
    }
    if mean < 10.0 {
        let limit = (-mean).exp();
        let (mut k, mut product) = (0, rng.f64());
        while product > limit {
            k += 1;
            product *= rng.f64();
        }
        return k;
    }
    let (slam, loglam) = (mean.sqrt(), mean.ln());
    let b = 0.931 + 2.53 * slam;
    let a = -0.059 + 0.02483 * b;
    let inv_alpha = 1.1239 + 1.1328 / (b - 3.4);
    let vr = 0.9277 - 3.6224 / (b - 2.0);
    loop {
        let u = rng.f64() - 0.5;
        let v = rng.f64();
        let us = 0.5 - u.abs();
        let k = ((2.0 * a / us + b) * u + mean + 0.43).floor();
        if us >= 0.07 && v <= vr {
            return k as u64;
        }
        if k < 0.0 || (us < 0.013 && v > us) {
            continue;
        }
        if v.ln() + inv_alpha.ln() - (a / (us * us) + b).ln() <= -mean + k * loglam - ln_gamma(k + 1.0) {
            return k as u64;
        }
    }
}

/// Kayenta's Mann-Whitney classifier, as in its `MannWhitneyClassifier`: "High" when the
/// confidence interval (98 %) of the shift between the candidate's and the stable side's values
/// lies above 25 % of its Hodges-Lehmann estimate and the candidate's mean is at least the stable
/// side's. The interval's ends are order statistics of the pairwise differences (the normal
/// approximation of the rank-sum distribution).
fn kayenta_high(candidate: &[f64], stable: &[f64]) -> bool {
    let sorted = |v: &[f64]| {
        let mut v = v.to_vec();
        v.sort_by(f64::total_cmp);
        v
    };
    let (c, s) = (sorted(candidate), sorted(stable));
    if c == s || c.iter().chain(&s).all(|v| *v == c[0]) {
        return false;
    }
    let mut differences: Vec<f64> = c.iter().flat_map(|x| s.iter().map(move |y| x - y)).collect();
    differences.sort_by(f64::total_cmp);
    let (m, n) = (c.len() as f64, s.len() as f64);
    let z = 2.326_348; // two-sided 98 %
    let k = (m * n / 2.0 - z * (m * n * (m + n + 1.0) / 12.0).sqrt()).floor();
    if k < 1.0 {
        return false;
    }
    let lower = differences[k as usize - 1];
    let len = differences.len();
    let estimate =
        if len % 2 == 1 { differences[len / 2] } else { (differences[len / 2 - 1] + differences[len / 2]) / 2.0 };
    let (mean_c, mean_s) = (c.iter().sum::<f64>() / m, s.iter().sum::<f64>() / n);
    let deviation = if mean_s == 0.0 { 1.0 } else { mean_c / mean_s };
    lower > 0.25 * estimate.abs() && deviation >= 1.0
}
