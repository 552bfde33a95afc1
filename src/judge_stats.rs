//! The judge's statistics: is the candidate side worse than the stable side, on the minutes both
//! served side by side? Plain counts in, a verdict out — no SDK, no I/O, no clock — so the `judge`
//! gate kind (which reads the counts from CloudWatch) and the benchmark (`bench/judge.rs`) run the
//! same code.
//!
//! # The method
//!
//! Every judged minute brings, per side, its requests, its errors (5xx and connection errors) and,
//! when latency is judged, its slow requests (slower than the SLO). Each metric is judged alone,
//! the same way; "errors" below stands for slow requests as well.
//!
//! **The ratio.** Let E be both sides' errors in a minute and π the candidate's *observed* share
//! of that minute's requests. If the candidate's error rate is r times the stable side's, the
//! candidate's share of E is Binomial(E, θ(r)), θ(r) = rπ / (rπ + 1 − π) (closely while error
//! rates are well below 1; see below for equal sides): the stable side's own rate cancels, so a
//! shared dependency failing both sides for a few minutes moves nothing. For any r₀ the
//! *e-process*
//!
//! ```text
//! M_t(r₀) = ∫ Π_{minutes m ≤ t} Binomial(x_m; E_m, θ_m(r)) / Binomial(x_m; E_m, θ_m(r₀)) dW(r)
//! ```
//!
//! (a likelihood ratio mixed over a prior W: ln r standard normal, integrated numerically to
//! full precision) is a nonnegative martingale with mean 1 when r₀ is the true ratio. By
//! Ville's inequality, P(M_t(r₀) ever reaches 1/α) ≤ α, so the ratios r₀ with M_t(r₀) < 1/α form a
//! *confidence sequence*: an interval that holds at every minute at once. Looking at it every poll
//! and every `advance` therefore costs nothing: there is no "peeking" to correct for. (When both
//! sides are equally good the candidate's errors are exactly hypergeometric given the minute's
//! requests and errors, which is dominated in convex order by the binomial (Hoeffding, 1963): the
//! guarantee against false fails is exact there, not an approximation.)
//!
//! **The rates.** Each side's error rate — the request-weighted mean over the judged minutes, even
//! when it changes from minute to minute — gets its own confidence sequence from the mixture of
//! exp(λS − N p₀ (e^λ − 1)) over e^λ ~ Gamma(1, 1) (S errors in N requests; closed form), which
//! is at most a nonnegative martingale for the true mean rate (since ln(1 + x) ≤ x).
//!
//! **The verdict.** α = 1 − `confidence`, split evenly over the metrics judged (Bonferroni);
//! within a metric, α/2 goes to the ratio and α/4 to each side's rate. With probability at least
//! 1 − α all of them hold at every minute together, so the true (stable rate s, candidate rate c)
//! lies in the region they leave. FAIL when every point of that region is worse by both the ratio
//! and the margin (c > ratio·s and c > s + margin); PASS when none is. So, over a whole stage
//! however often it is read, a candidate that is not worse fails with probability at most α, and
//! one that is worse passes with probability at most α. Otherwise the reading is undecided.
//!
//! **No data.** An undecided reading is NO_DATA when a candidate erring exactly at the stable
//! side's rate (the stable rate of each minute times the candidate's requests) would not have
//! passed either: the stable side has not yet predicted enough candidate errors to tell an equal
//! candidate from one worse by the ratio, whatever the candidate did. The bound is therefore the
//! test's own power, not a fixed count. At the defaults (1.5×, 0.05 points, 99 %) it is about 90
//! predicted candidate errors while the candidate takes a small share (about 150 at half the
//! traffic, where the stable side's own count is as uncertain), and, for a service with next to
//! no errors, the requests it takes to bound the candidate's rate under the margin (about 16,400
//! error-free requests). It is INCONCLUSIVE otherwise: the data could have cleared a good
//! candidate and did not. A FAIL is never held back as NO_DATA.
//!
//! **Warm-up.** Minutes that begin before the shift plus `warmup` are not judged; until one is,
//! the reading is PENDING.
//!
//! The model assumes the ratio is the same in every judged minute (the stable rate may vary) and
//! that requests err independently within a minute.

use std::fmt;
use std::time::Duration;

use serde::Serialize;

/// What one side served in one settled minute, as its load balancer counts it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Served {
    pub requests: u64,
    /// 5xx answers plus connection errors.
    pub errors: u64,
    /// Requests slower than the latency SLO (0 when latency is not judged).
    pub slow: u64,
}

/// One settled minute of both sides.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Minute {
    /// When the minute began, in milliseconds since the Unix epoch.
    pub start_ms: u64,
    pub candidate: Served,
    pub stable: Served,
}

/// How much worse than the stable side the candidate must credibly be to fail: by both.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Bound {
    /// The candidate's rate over the stable side's (at least 1).
    pub ratio: f64,
    /// The candidate's rate minus the stable side's, in percentage points (at least 0).
    pub margin: f64,
}

/// A judge as its profile section sets it (validated there: ratio ≥ 1, margin ≥ 0, 0 < confidence
/// < 1).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Settings {
    pub errors: Bound,
    /// Slow requests, judged the same way; `None` when the profile sets no latency SLO.
    pub latency: Option<Bound>,
    pub confidence: f64,
    pub warmup: Duration,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            errors: Bound { ratio: 1.5, margin: 0.05 },
            latency: None,
            confidence: 0.99,
            warmup: Duration::from_secs(120),
        }
    }
}

/// A judge's verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Credibly not worse than the stable side.
    Pass,
    /// Credibly worse, by the ratio and by the margin.
    Fail,
    /// Enough data to have cleared a candidate as good as the stable side, and it was not cleared.
    Inconclusive,
    /// Too few errors predicted on the candidate yet to tell.
    NoData,
    /// Still warming up: no minute judged yet.
    Pending,
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Verdict::Pass => "pass",
            Verdict::Fail => "fail",
            Verdict::Inconclusive => "inconclusive",
            Verdict::NoData => "no_data",
            Verdict::Pending => "pending",
        })
    }
}

/// One side's counts over the judged minutes.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Totals {
    pub requests: u64,
    /// Errors (slow requests for the latency metric).
    pub errors: u64,
    /// `errors / requests` as a fraction (0.001 is 0.1 %); 0 without requests.
    pub rate: f64,
}

/// The anytime-valid interval of the candidate's rate over the stable side's, at the level the
/// verdict uses: 1 − α/2 per metric (99.5 % at the defaults).
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Interval {
    pub low: f64,
    /// `None` (JSON `null`) while the data set no upper bound.
    pub high: Option<f64>,
}

/// One metric's reading.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Metric {
    pub verdict: Verdict,
    pub candidate: Totals,
    pub stable: Totals,
    pub ratio: Interval,
    /// The candidate errors the stable side's rate predicts for the candidate's requests.
    #[serde(skip)]
    pub predicted: f64,
}

/// A judge's reading: the verdict over all its metrics, and the evidence.
///
/// As JSON (the fields of the errors metric at the top, as DESIGN.md spells a judge reading):
/// `{"verdict", "candidate": {"requests", "errors", "rate"}, "stable": {...}, "ratio": {"low",
/// "high"}, "minutes"}`, and `"latency": {"verdict", "candidate", "stable", "ratio"}` when
/// latency is judged (its `errors` count slow requests). `Display` is the one-line evidence.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Reading {
    pub verdict: Verdict,
    /// Minutes judged (after the warm-up).
    pub minutes: u32,
    pub errors: Metric,
    pub latency: Option<Metric>,
}

impl Serialize for Reading {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Json<'a> {
            verdict: Verdict,
            candidate: &'a Totals,
            stable: &'a Totals,
            ratio: &'a Interval,
            minutes: u32,
            #[serde(skip_serializing_if = "Option::is_none")]
            latency: Option<&'a Metric>,
        }
        Json {
            verdict: self.verdict,
            candidate: &self.errors.candidate,
            stable: &self.errors.stable,
            ratio: &self.errors.ratio,
            minutes: self.minutes,
            latency: self.latency.as_ref(),
        }
        .serialize(serializer)
    }
}

impl fmt::Display for Reading {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.verdict == Verdict::Pending {
            return f.write_str("warming up: no minute judged yet");
        }
        write_metric(f, "errors", &self.errors)?;
        if let Some(latency) = &self.latency {
            f.write_str("; ")?;
            write_metric(f, "slow", latency)?;
        }
        let s = if self.minutes == 1 { "" } else { "s" };
        write!(f, "; {} minute{s} judged", self.minutes)
    }
}

fn write_metric(f: &mut fmt::Formatter<'_>, what: &str, m: &Metric) -> fmt::Result {
    write!(
        f,
        "{what} {} on the candidate ({}/{}) vs {} on stable ({}/{}), ratio {}",
        percent(m.candidate.rate),
        m.candidate.errors,
        m.candidate.requests,
        percent(m.stable.rate),
        m.stable.errors,
        m.stable.requests,
        interval(&m.ratio),
    )?;
    if m.verdict == Verdict::NoData {
        write!(f, " (stable's rate predicts {:.1} on the candidate: too few to judge)", m.predicted)?;
    }
    Ok(())
}

/// A rate as a percentage with about three significant digits.
fn percent(rate: f64) -> String {
    let p = rate * 100.0;
    let digits = match p {
        p if p == 0.0 || p >= 10.0 => 1,
        p if p >= 1.0 => 2,
        p if p >= 0.1 => 3,
        p if p >= 0.01 => 4,
        _ => 5,
    };
    format!("{p:.digits$} %")
}

fn ratio_number(r: f64) -> String {
    if r >= 100.0 {
        format!("{r:.0}")
    } else if r >= 10.0 {
        format!("{r:.1}")
    } else {
        format!("{r:.2}")
    }
}

fn interval(i: &Interval) -> String {
    match i.high {
        Some(high) => format!("{}–{}×", ratio_number(i.low), ratio_number(high)),
        None => format!("≥ {}×", ratio_number(i.low)),
    }
}

/// Judges the minutes that began at least `warmup` after the shift (`shifted_at_ms`, milliseconds
/// since the Unix epoch) and are settled; `minutes` are the minutes since the shift, both sides.
pub fn judge(settings: &Settings, shifted_at_ms: u64, minutes: &[Minute]) -> Reading {
    let from = shifted_at_ms.saturating_add(u64::try_from(settings.warmup.as_millis()).unwrap_or(u64::MAX));
    let judged: Vec<&Minute> = minutes.iter().filter(|m| m.start_ms >= from).collect();
    let metrics = 1 + usize::from(settings.latency.is_some());
    let alpha = (1.0 - settings.confidence) / metrics as f64;
    let errors = judge_metric(&cells(&judged, |s| s.errors), settings.errors, alpha);
    let latency = settings.latency.map(|bound| judge_metric(&cells(&judged, |s| s.slow), bound, alpha));
    let verdicts = [Some(errors.verdict), latency.map(|l| l.verdict)];
    let verdicts = verdicts.iter().flatten();
    let verdict = if verdicts.clone().any(|v| *v == Verdict::Fail) {
        Verdict::Fail
    } else if verdicts.clone().all(|v| *v == Verdict::Pass) {
        Verdict::Pass
    } else {
        // Undecided: say the most basic reason first.
        [Verdict::Pending, Verdict::NoData, Verdict::Inconclusive]
            .into_iter()
            .find(|w| verdicts.clone().any(|v| v == w))
            .unwrap_or(Verdict::Inconclusive)
    };
    Reading { verdict, minutes: u32::try_from(judged.len()).unwrap_or(u32::MAX), errors, latency }
}

/// One judged minute of one metric, as numbers: the NO_DATA check feeds predicted, fractional
/// counts through the same code.
#[derive(Clone, Copy, Debug)]
struct Cell {
    cand_n: f64,
    cand_x: f64,
    stab_n: f64,
    stab_x: f64,
}

fn cells(minutes: &[&Minute], count: impl Fn(&Served) -> u64) -> Vec<Cell> {
    minutes
        .iter()
        .map(|m| Cell {
            cand_n: m.candidate.requests as f64,
            cand_x: count(&m.candidate) as f64,
            stab_n: m.stable.requests as f64,
            stab_x: count(&m.stable) as f64,
        })
        .collect()
}

fn totals(requests: f64, errors: f64) -> Totals {
    Totals {
        requests: requests as u64,
        errors: errors as u64,
        rate: if requests > 0.0 { errors / requests } else { 0.0 },
    }
}

fn judge_metric(cells: &[Cell], bound: Bound, alpha: f64) -> Metric {
    let sum = |f: fn(&Cell) -> f64| cells.iter().map(f).sum::<f64>();
    let candidate = totals(sum(|c| c.cand_n), sum(|c| c.cand_x));
    let stable = totals(sum(|c| c.stab_n), sum(|c| c.stab_x));
    // What the candidate would have erred at the stable side's rate, minute by minute.
    let predicted: Vec<Cell> = cells
        .iter()
        .map(|c| Cell { cand_x: if c.stab_n > 0.0 { c.cand_n * c.stab_x / c.stab_n } else { 0.0 }, ..*c })
        .collect();
    let expected = predicted.iter().map(|c| c.cand_x).sum();
    if cells.is_empty() {
        let ratio = Interval { low: 0.0, high: None };
        return Metric { verdict: Verdict::Pending, candidate, stable, ratio, predicted: expected };
    }
    let found = assess(cells, bound, alpha);
    let verdict = match found.worse {
        Some(true) => Verdict::Fail,
        Some(false) => Verdict::Pass,
        None if assess(&predicted, bound, alpha).worse == Some(false) => Verdict::Inconclusive,
        None => Verdict::NoData,
    };
    let (low, high) = found.ratio;
    let ratio = Interval { low, high: high.is_finite().then_some(high) };
    Metric { verdict, candidate, stable, ratio, predicted: expected }
}

struct Assessment {
    /// Worse (`Some(true)`), not worse (`Some(false)`), or not decided, at the given α.
    worse: Option<bool>,
    /// The ratio's confidence sequence at this minute; the high end may be infinite.
    ratio: (f64, f64),
}

fn assess(cells: &[Cell], bound: Bound, alpha: f64) -> Assessment {
    let ratio = ratio_interval(cells, alpha / 2.0);
    let sum = |f: fn(&Cell) -> f64| cells.iter().map(f).sum::<f64>();
    let candidate = rate_interval(sum(|c| c.cand_x), sum(|c| c.cand_n), alpha / 4.0);
    let stable = rate_interval(sum(|c| c.stab_x), sum(|c| c.stab_n), alpha / 4.0);
    Assessment { worse: region(ratio, candidate, stable, bound), ratio }
}

/// Decides on the region of (stable rate s, candidate rate c) the three confidence sequences
/// leave: s within `stable`, c within `candidate`, c/s within `ratio`. `Some(true)` when every
/// point of it is worse (c > ratio·s and c > s + margin), `Some(false)` when none is.
fn region(ratio: (f64, f64), candidate: (f64, f64), stable: (f64, f64), bound: Bound) -> Option<bool> {
    let (r_lo, r_hi) = ratio;
    let (c_lo, c_hi) = candidate;
    let margin = bound.margin / 100.0;
    // The stable rates for which some candidate rate satisfies all three.
    let s_lo = if r_hi.is_finite() { stable.0.max(c_lo / r_hi) } else { stable.0 };
    let s_hi = if r_lo > 0.0 { stable.1.min(c_hi / r_lo) } else { stable.1 };
    if s_lo > s_hi {
        // The sequences disagree (a chance of at most α): decide nothing.
        return None;
    }
    // At a stable rate s the candidate's rate ranges over [lowest(s), highest(s)]; it is worse
    // above worst(s). All three are piecewise linear in s, so comparing them at the ends and the
    // kinks compares them everywhere.
    let lowest = |s: f64| c_lo.max(r_lo * s);
    let highest = |s: f64| if r_hi.is_finite() { c_hi.min(r_hi * s) } else { c_hi };
    let worst = |s: f64| (bound.ratio * s).max(s + margin);
    let kinks = [
        s_lo,
        s_hi,
        if r_lo > 0.0 { c_lo / r_lo } else { s_lo },
        if r_hi.is_finite() { c_hi / r_hi } else { s_lo },
        if bound.ratio > 1.0 { margin / (bound.ratio - 1.0) } else { s_lo },
    ];
    let points = kinks.into_iter().filter(|s| (s_lo..=s_hi).contains(s));
    if points.clone().all(|s| lowest(s) > worst(s)) {
        Some(true)
    } else if points.clone().all(|s| highest(s) <= worst(s)) {
        Some(false)
    } else {
        None
    }
}

/// Ratios beyond e^±12 (about 160,000×) are reported as 0 or unbounded.
const LN_RATIO_LIMIT: f64 = 12.0;

/// The confidence sequence of the ratio r at level 1 − α (see the module's documentation):
/// {r₀ : M_t(r₀) < 1/α}, an interval because the log-likelihood is concave in ln r.
fn ratio_interval(cells: &[Cell], alpha: f64) -> (f64, f64) {
    // Minutes where both sides served and someone erred; the others say nothing of r.
    let informative: Vec<(f64, f64, f64)> = cells
        .iter()
        .filter(|c| c.cand_n > 0.0 && c.stab_n > 0.0 && c.cand_x + c.stab_x > 0.0)
        .map(|c| (c.cand_x, c.cand_x + c.stab_x, (c.cand_n / c.stab_n).ln()))
        .collect();
    if informative.is_empty() {
        return (0.0, f64::INFINITY);
    }
    // ln Π Binomial(x; E, θ(e^β)) up to a constant, with its first two derivatives in β:
    // θ = σ(β + logit π), logit π = ln(n_c / n_s).
    let log_lik = |beta: f64| {
        informative.iter().fold((0.0, 0.0, 0.0), |(v, d1, d2), &(x, e, logit)| {
            let (softplus, sigma) = softplus_sigmoid(beta + logit);
            (v + x * (beta + logit) - e * softplus, d1 + x - e * sigma, d2 - e * sigma * (1.0 - sigma))
        })
    };
    // M_t(r₀) < 1/α ⇔ the log-likelihood at ln r₀ is above this floor.
    // ℓ' lies between minus the stable side's errors and the candidate's, which bounds where the
    // prior's slope can balance it.
    let candidate_errors: f64 = informative.iter().map(|m| m.0).sum();
    let stable_errors: f64 = informative.iter().map(|m| m.1 - m.0).sum();
    let floor = log_normal_mixture(log_lik, -stable_errors - 1.0, candidate_errors + 1.0) - (1.0 / alpha).ln();
    let above = |beta: f64| log_lik(beta).0 - floor;
    // The likelihood's peak (or the end it rises toward) is inside: it is at least the mixture.
    let slope = |b: f64| {
        let (_, d1, d2) = log_lik(b);
        (d1, d2)
    };
    let peak = zero_of_decreasing(slope, -LN_RATIO_LIMIT, LN_RATIO_LIMIT);
    if above(peak) <= 0.0 {
        // Only past the limits: all errors on one side by the tens of thousands.
        return if peak > 0.0 { (peak.exp(), f64::INFINITY) } else { (0.0, peak.exp()) };
    }
    let low = if above(-LN_RATIO_LIMIT) > 0.0 {
        0.0
    } else {
        let outside = |b: f64| {
            let (v, d1, _) = log_lik(b);
            (floor - v, -d1)
        };
        let edge = zero_of_decreasing(outside, -LN_RATIO_LIMIT, peak);
        (edge - OUTWARD).exp()
    };
    let high = if above(LN_RATIO_LIMIT) > 0.0 {
        f64::INFINITY
    } else {
        let inside = |b: f64| {
            let (v, d1, _) = log_lik(b);
            (v - floor, d1)
        };
        let edge = zero_of_decreasing(inside, peak, LN_RATIO_LIMIT);
        (edge + OUTWARD).exp()
    };
    (low, high)
}

/// Each end found is moved this far outward (in ln r), so the interval reported holds the
/// confidence sequence despite rounding.
const OUTWARD: f64 = 1e-7;

/// ln(1 + e^z) and 1 / (1 + e^-z) from one exponential, without overflow.
fn softplus_sigmoid(z: f64) -> (f64, f64) {
    let e = (-z.abs()).exp();
    let softplus = z.max(0.0) + e.ln_1p();
    let sigma = if z >= 0.0 { 1.0 / (1.0 + e) } else { e / (1.0 + e) };
    (softplus, sigma)
}

/// ln ∫ φ(β) e^ℓ(β) dβ for a concave ℓ (given with its first two derivatives) and the standard
/// normal density φ: the likelihood mixed over the prior. The integrand is log-concave with its
/// peak in [lo, hi]; it is summed by the trapezoid rule from the peak outward in steps of half
/// its width, until it falls below e^-36 of the peak — the mixture to numerical precision (on a
/// bell of that width the rule is exact to e^-70).
fn log_normal_mixture(log_lik: impl Fn(f64) -> (f64, f64, f64), lo: f64, hi: f64) -> f64 {
    let log_integrand = |b: f64| {
        let (v, d1, d2) = log_lik(b);
        (v - b * b / 2.0, d1 - b, d2 - 1.0)
    };
    let slope = |b: f64| {
        let (_, d1, d2) = log_integrand(b);
        (d1, d2)
    };
    let mode = zero_of_decreasing(slope, lo, hi);
    let (peak, _, curvature) = log_integrand(mode);
    let step = 0.5 / (-curvature).sqrt();
    let mut sum = 1.0;
    for direction in [-1.0, 1.0] {
        for k in 1..=4_000 {
            let below = log_integrand(mode + direction * k as f64 * step).0 - peak;
            if below < -36.0 {
                break;
            }
            sum += below.exp();
        }
    }
    peak + (sum * step).ln() - 0.5 * (2.0 * std::f64::consts::PI).ln()
}

/// Where a decreasing function (given with its derivative) crosses zero in [lo, hi], or the end
/// nearer to where it would: Newton's steps, bisection where they leave the bracket.
fn zero_of_decreasing(f: impl Fn(f64) -> (f64, f64), mut lo: f64, mut hi: f64) -> f64 {
    if f(lo).0 <= 0.0 {
        return lo;
    }
    if f(hi).0 >= 0.0 {
        return hi;
    }
    // Start from 0 (no difference between the sides) when the bracket holds it.
    let mut x = 0f64.clamp(lo, hi);
    for _ in 0..100 {
        let (v, slope) = f(x);
        if v > 0.0 {
            lo = x;
        } else {
            hi = x;
        }
        let newton = x - v / slope;
        let next = if slope < 0.0 && newton > lo && newton < hi { newton } else { (lo + hi) / 2.0 };
        if (next - x).abs() < 1e-10 || hi - lo < 1e-10 {
            return next;
        }
        x = next;
    }
    x
}

/// The confidence sequence at level 1 − α of a side's mean error rate, from `errors` (S) in
/// `requests` (N): {p₀ : L(p₀) < 1/α}, where L mixes exp(λS − N p₀ (e^λ − 1)) over e^λ ~
/// Gamma(1, 1) — in closed form, ln L = N p₀ + ln Γ(S + 1) − (S + 1) ln(N p₀ + 1). L is convex
/// in p₀ and smallest at S/N, where it is below 1, so the set is an interval holding S/N.
fn rate_interval(errors: f64, requests: f64, alpha: f64) -> (f64, f64) {
    if requests <= 0.0 {
        return (0.0, 1.0);
    }
    let threshold = (1.0 / alpha).ln();
    let gamma = ln_gamma(errors + 1.0);
    let inside = |p: f64| requests * p + gamma - (errors + 1.0) * (requests * p).ln_1p() < threshold;
    let p_hat = errors / requests;
    // Bisection: 60 halvings leave the ends exact to floating point; the outer end is kept.
    let edge = |mut inner: f64, mut outer: f64| {
        for _ in 0..60 {
            let mid = (inner + outer) / 2.0;
            if inside(mid) {
                inner = mid;
            } else {
                outer = mid;
            }
        }
        outer
    };
    let low = if inside(0.0) { 0.0 } else { edge(p_hat, 0.0) };
    let high = if inside(1.0) { 1.0 } else { edge(p_hat, 1.0) };
    (low, high)
}

/// ln Γ(x) for x > 0: Stirling's series once x is shifted to 7 or more.
pub fn ln_gamma(mut x: f64) -> f64 {
    let mut shift = 0.0;
    while x < 7.0 {
        shift += x.ln();
        x += 1.0;
    }
    let z = 1.0 / (x * x);
    let series = (((-z / 1680.0 + 1.0 / 1260.0) * z - 1.0 / 360.0) * z + 1.0 / 12.0) / x;
    (x - 0.5) * x.ln() - x + 0.5 * (2.0 * std::f64::consts::PI).ln() + series - shift
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: u64 = 60_000;
    const SHIFT: u64 = 1_700_000_000_000;

    fn served(requests: u64, errors: u64) -> Served {
        Served { requests, errors, slow: 0 }
    }

    /// `count` minutes from the end of the default warm-up on, each the same.
    fn series(count: u64, candidate: Served, stable: Served) -> Vec<Minute> {
        (0..count).map(|i| Minute { start_ms: SHIFT + (2 + i) * MINUTE, candidate, stable }).collect()
    }

    fn read(minutes: &[Minute]) -> Reading {
        judge(&Settings::default(), SHIFT, minutes)
    }

    // 1,000 requests a second, 5 % on the candidate: 3,000 and 57,000 requests a minute.

    #[test]
    fn a_candidate_as_good_as_stable_passes_with_the_ratio_interval_around_one() {
        let reading = read(&series(10, served(3_000, 30), served(57_000, 570)));
        assert_eq!(reading.verdict, Verdict::Pass, "{reading}");
        let Interval { low, high } = reading.errors.ratio;
        assert!(low < 1.0 && high.unwrap() > 1.0 && high.unwrap() <= 1.5, "{reading}");
        assert_eq!(reading.minutes, 10);
    }

    #[test]
    fn a_candidate_three_times_worse_fails_within_minutes() {
        let reading = read(&series(3, served(3_000, 90), served(57_000, 570)));
        assert_eq!(reading.verdict, Verdict::Fail, "{reading}");
        assert!(reading.errors.ratio.low > 1.5, "{reading}");
    }

    #[test]
    fn a_candidate_right_at_the_ratio_stays_inconclusive() {
        let reading = read(&series(30, served(3_000, 45), served(57_000, 570)));
        assert_eq!(reading.verdict, Verdict::Inconclusive, "{reading}");
        let Interval { low, high } = reading.errors.ratio;
        assert!(low < 1.5 && high.unwrap() > 1.5, "{reading}");
    }

    #[test]
    fn worse_by_the_ratio_but_not_by_the_margin_does_not_fail() {
        // 0.02 % vs 0.01 %: twice the errors, yet 0.01 points apart (the margin is 0.05).
        let reading = read(&series(60, served(100_000, 20), served(1_000_000, 100)));
        assert!(reading.errors.ratio.low > 1.5, "{reading}");
        assert_ne!(reading.verdict, Verdict::Fail, "{reading}");
    }

    #[test]
    fn too_few_predicted_errors_is_no_data() {
        // 100 requests a second, 1 % on the candidate, 0.1 % errors: 0.06 predicted a minute.
        let reading = read(&series(10, served(60, 0), served(5_940, 6)));
        assert_eq!(reading.verdict, Verdict::NoData, "{reading}");
        assert!(reading.to_string().contains("predicts 0.6 on the candidate"), "{reading}");
    }

    #[test]
    fn a_flagrant_failure_is_not_held_back_as_no_data() {
        let reading = read(&series(2, served(60, 20), served(5_940, 6)));
        assert_eq!(reading.verdict, Verdict::Fail, "{reading}");
    }

    #[test]
    fn a_candidate_exactly_as_good_as_stable_goes_from_no_data_straight_to_pass() {
        // 0.1 % on both sides, 3,000 and 57,000 requests: 3 predicted candidate errors a minute.
        let all = series(60, served(3_000, 3), served(57_000, 57));
        let verdicts: Vec<Verdict> = (1..=all.len()).map(|n| read(&all[..n]).verdict).collect();
        let first_pass = verdicts.iter().position(|v| *v == Verdict::Pass).expect("passes within the hour");
        assert!(verdicts[..first_pass].iter().all(|v| *v == Verdict::NoData), "{verdicts:?}");
        assert!(verdicts[first_pass..].iter().all(|v| *v == Verdict::Pass), "{verdicts:?}");
        // The bound of the module's documentation: ~90 predicted candidate errors at a 5 % share.
        let predicted = read(&all[..=first_pass]).errors.predicted;
        assert!((80.0..=100.0).contains(&predicted), "passed after {predicted} predicted errors");
    }

    #[test]
    fn a_service_without_errors_passes_once_the_candidate_is_bounded_under_the_margin() {
        let all = series(30, served(3_000, 0), served(57_000, 0));
        let first_pass = (1..=all.len()).find(|&n| read(&all[..n]).verdict == Verdict::Pass).expect("passes");
        assert!(read(&all[..first_pass - 1]).verdict == Verdict::NoData);
        // ~16,400 error-free candidate requests bound its rate under 0.05 points.
        assert_eq!(first_pass, 6, "passed after {first_pass} minutes");
    }

    #[test]
    fn both_sides_sick_together_does_not_fail() {
        // A shared dependency: 20 % errors on both sides.
        let reading = read(&series(10, served(3_000, 600), served(57_000, 11_400)));
        assert_eq!(reading.verdict, Verdict::Pass, "{reading}");
        // And a burst of it amid healthy minutes.
        let mut minutes = series(20, served(3_000, 30), served(57_000, 570));
        for m in &mut minutes[5..10] {
            (m.candidate.errors, m.stable.errors) = (900, 17_100);
        }
        let reading = read(&minutes);
        assert_ne!(reading.verdict, Verdict::Fail, "{reading}");
    }

    #[test]
    fn minutes_before_the_warm_up_ends_are_not_judged() {
        let bad = Minute { start_ms: SHIFT, candidate: served(3_000, 1_500), stable: served(57_000, 570) };
        let mut minutes = vec![bad, Minute { start_ms: SHIFT + MINUTE, ..bad }];
        assert_eq!(read(&minutes).verdict, Verdict::Pending);
        assert_eq!(read(&minutes).minutes, 0);
        assert_eq!(read(&minutes).to_string(), "warming up: no minute judged yet");
        minutes.extend(series(10, served(3_000, 30), served(57_000, 570)));
        let reading = read(&minutes);
        assert_eq!(reading.verdict, Verdict::Pass, "{reading}");
        assert_eq!((reading.minutes, reading.errors.candidate.errors), (10, 300));
        // Without the warm-up, the same minutes fail.
        let settings = Settings { warmup: Duration::ZERO, ..Settings::default() };
        assert_eq!(judge(&settings, SHIFT, &minutes).verdict, Verdict::Fail);
    }

    #[test]
    fn the_ratio_interval_shrinks_with_data_and_holds_the_true_ratio() {
        let all = series(30, served(3_000, 60), served(57_000, 570));
        let widths: Vec<f64> = (1..=all.len())
            .map(|n| {
                let Interval { low, high } = read(&all[..n]).errors.ratio;
                let high = high.expect("bounded");
                assert!(low < 2.0 && 2.0 < high, "{low}–{high} after {n} minutes");
                (high / low).ln()
            })
            .collect();
        assert!(widths.windows(2).all(|w| w[1] < w[0]), "{widths:?}");
        assert!(widths[29] < widths[0] / 3.0, "{widths:?}");
    }

    #[test]
    fn no_errors_at_all_leaves_the_ratio_unbounded() {
        let reading = read(&series(1, served(3_000, 0), served(57_000, 0)));
        assert_eq!(reading.errors.ratio, Interval { low: 0.0, high: None });
    }

    #[test]
    fn slow_requests_are_judged_too_and_either_metric_fails_the_reading() {
        let settings = Settings { latency: Some(Bound { ratio: 1.5, margin: 0.0 }), ..Settings::default() };
        let slow = |requests, errors, slow| Served { requests, errors, slow };
        let minutes: Vec<Minute> = series(5, slow(3_000, 30, 300), slow(57_000, 570, 570));
        let reading = judge(&settings, SHIFT, &minutes);
        assert_eq!(reading.verdict, Verdict::Fail, "{reading}");
        assert_eq!(reading.errors.verdict, Verdict::Pass, "{reading}");
        assert_eq!(reading.latency.map(|l| l.verdict), Some(Verdict::Fail), "{reading}");
        // An undecided metric holds back a pass: here latency has no data yet.
        let minutes = series(10, slow(3_000, 30, 0), slow(57_000, 570, 0));
        let reading = judge(&settings, SHIFT, &minutes);
        assert_eq!((reading.errors.verdict, reading.verdict), (Verdict::Pass, Verdict::NoData), "{reading}");
    }

    #[test]
    fn two_metrics_split_alpha_so_each_needs_more_evidence() {
        let minutes = series(4, served(3_000, 60), served(57_000, 570));
        let one = read(&minutes).errors.ratio;
        let settings = Settings { latency: Some(Bound { ratio: 1.5, margin: 0.0 }), ..Settings::default() };
        let two = judge(&settings, SHIFT, &minutes).errors.ratio;
        assert!(two.low < one.low && two.high.unwrap() > one.high.unwrap(), "{one:?} vs {two:?}");
    }

    #[test]
    fn the_reading_serializes_as_the_design_spells_it() {
        let reading = read(&series(3, served(3_000, 90), served(57_000, 570)));
        let json = serde_json::to_value(reading).unwrap();
        let keys: Vec<&str> = json.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys, ["verdict", "candidate", "stable", "ratio", "minutes"]);
        assert_eq!(json["verdict"], "fail");
        assert_eq!(json["candidate"], serde_json::json!({"requests": 9000, "errors": 270, "rate": 0.03}));
        assert_eq!(json["stable"]["errors"], 1710);
        assert!(json["ratio"]["low"].as_f64().unwrap() > 1.5);
        assert_eq!(json["minutes"], 3);
        let nothing = read(&series(1, served(3_000, 0), served(57_000, 0)));
        assert_eq!(serde_json::to_value(nothing).unwrap()["ratio"], serde_json::json!({"low": 0.0, "high": null}));
        assert_eq!(serde_json::to_value(Verdict::NoData).unwrap(), "no_data");
    }

    #[test]
    fn the_evidence_is_one_readable_line() {
        let reading = read(&series(3, served(3_000, 90), served(57_000, 570)));
        let Interval { low, high } = reading.errors.ratio;
        let text = reading.to_string();
        assert_eq!(
            text,
            format!(
                "errors 3.00 % on the candidate (270/9000) vs 1.00 % on stable (1710/171000), ratio {}–{}×; 3 minutes judged",
                ratio_number(low),
                ratio_number(high.unwrap())
            )
        );
    }

    #[test]
    fn the_mixture_is_integrated_to_numerical_precision() {
        // (candidate errors, both sides' errors, logit of the candidate's share) per minute.
        let cases: [&[(f64, f64, f64)]; 4] = [
            &[(60.0, 630.0, (3.0f64 / 57.0).ln()), (55.0, 600.0, (3.0f64 / 57.0).ln())],
            &[(0.0, 6.0, (1.0f64 / 99.0).ln())],
            &[(3.0, 3.0, 0.0), (2.0, 2.0, 0.0)],
            &[(900.0, 18_000.0, (5.0f64 / 95.0).ln()); 3],
        ];
        for minutes in cases {
            let log_lik = |b: f64| {
                minutes.iter().fold((0.0, 0.0, 0.0), |(v, d1, d2), &(x, e, logit)| {
                    let (softplus, sigma) = softplus_sigmoid(b + logit);
                    (v + x * (b + logit) - e * softplus, d1 + x - e * sigma, d2 - e * sigma * (1.0 - sigma))
                })
            };
            let x: f64 = minutes.iter().map(|m| m.0).sum();
            let e: f64 = minutes.iter().map(|m| m.1).sum();
            let fast = log_normal_mixture(log_lik, x - e - 1.0, x + 1.0);
            // A plain Riemann sum over ±20 in steps of 10^-4, against the same peak.
            let step = 1e-4;
            let grid = (0..400_000).map(|i| -20.0 + i as f64 * step);
            let values: Vec<f64> = grid.map(|b| log_lik(b).0 - b * b / 2.0).collect();
            let peak = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let sum: f64 = values.iter().map(|v| (v - peak).exp()).sum();
            let slow = peak + (sum * step).ln() - 0.5 * (2.0 * std::f64::consts::PI).ln();
            assert!((fast - slow).abs() < 1e-6, "{minutes:?}: {fast} vs {slow}");
        }
    }

    #[test]
    fn a_rate_interval_of_no_errors_ends_where_the_closed_form_says() {
        // S = 0: ln L(p) = Np − ln(1 + Np), which reaches ln(1/α) at Np ≈ 8.2 for α = 1/400.
        let (low, high) = rate_interval(0.0, 10_000.0, 1.0 / 400.0);
        assert_eq!(low, 0.0);
        let np = high * 10_000.0;
        assert!((np - np.ln_1p() - 400f64.ln()).abs() < 1e-9, "{np}");
        assert!((ln_gamma(0.5) - std::f64::consts::PI.sqrt().ln()).abs() < 1e-9);
        assert!((ln_gamma(10.0) - 362_880f64.ln()).abs() < 1e-9);
    }

    /// Poisson draws (Knuth's product of uniforms; fine for the small means used here).
    fn poisson(rng: &mut fastrand::Rng, mean: f64) -> u64 {
        let limit = (-mean).exp();
        let (mut k, mut product) = (0, rng.f64());
        while product > limit {
            k += 1;
            product *= rng.f64();
        }
        k
    }

    /// A/A stages read after every minute: the share of stages that ever fail, for the judge and,
    /// to show the check has teeth, for a fixed-sample z-test at the same level read as often.
    fn false_fails(confidence: f64, stages: usize, minutes: u64) -> (f64, f64) {
        let mut rng = fastrand::Rng::with_seed(24);
        let settings =
            Settings { errors: Bound { ratio: 1.0, margin: 0.0 }, confidence, warmup: Duration::ZERO, latency: None };
        let z = 1.2816; // one-sided 90 %
        let (mut judge_fails, mut naive_fails) = (0, 0);
        for _ in 0..stages {
            let share = 0.05 + 0.45 * rng.f64();
            let (rate, total) = (0.01 + 0.04 * rng.f64(), 500 + rng.u64(..2_000));
            let (mut series, mut judged, mut naive) = (Vec::new(), false, false);
            for m in 0..minutes {
                let n_c = (total as f64 * share) as u64;
                let n_s = total - n_c;
                let candidate = served(n_c, poisson(&mut rng, n_c as f64 * rate).min(n_c));
                let stable = served(n_s, poisson(&mut rng, n_s as f64 * rate).min(n_s));
                series.push(Minute { start_ms: SHIFT + m * MINUTE, candidate, stable });
                judged |= judge(&settings, SHIFT, &series).verdict == Verdict::Fail;
                // The two-proportion z-test on everything so far.
                let (xc, nc, xs, ns) = series.iter().fold((0.0, 0.0, 0.0, 0.0), |t, m| {
                    let (c, s) = (m.candidate, m.stable);
                    (t.0 + c.errors as f64, t.1 + c.requests as f64, t.2 + s.errors as f64, t.3 + s.requests as f64)
                });
                let pooled = (xc + xs) / (nc + ns);
                let se = (pooled * (1.0 - pooled) * (1.0 / nc + 1.0 / ns)).sqrt();
                naive |= se > 0.0 && (xc / nc - xs / ns) / se > z;
            }
            judge_fails += usize::from(judged);
            naive_fails += usize::from(naive);
        }
        (judge_fails as f64 / stages as f64, naive_fails as f64 / stages as f64)
    }

    #[test]
    fn reading_every_minute_of_equal_sides_fails_no_more_often_than_alpha() {
        // α = 10 %, the strictest bound (ratio 1, no margin), 150 stages read after each of 30
        // minutes. A fixed-sample test at the same level, read as often, fails far more often.
        let (judge, naive) = false_fails(0.90, 150, 30);
        assert!(judge <= 0.10, "the judge failed {:.1} % of equal stages", judge * 100.0);
        assert!(naive > 0.20, "the naive test failed only {:.1} %", naive * 100.0);
    }
}
