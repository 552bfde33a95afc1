//! Sides, percentages and weights: the pure arithmetic of a traffic split.
//!
//! A percentage is kept exact (thousandths of a percent) and becomes a pair of integer weights within
//! the splitter's range: whole percentages as weights that sum to 100 (blue 75 / green 25) so that a
//! person reading the console reads percentages, fractions as the smallest exact pair (0.5 % →
//! 199:1), or the closest pair when none is exact. A split never has both weights at zero.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// One of the two environments traffic moves between.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    Blue,
    Green,
}

impl Side {
    pub const ALL: [Side; 2] = [Side::Blue, Side::Green];

    /// The side that is not this one.
    pub fn other(self) -> Side {
        match self {
            Side::Blue => Side::Green,
            Side::Green => Side::Blue,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Side::Blue => "blue",
            Side::Green => "green",
        }
    }
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Side {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "blue" => Ok(Side::Blue),
            "green" => Ok(Side::Green),
            other => Err(format!("unknown side `{other}` (expected `blue` or `green`)")),
        }
    }
}

/// A percentage of traffic from 0 to 100, exact to a thousandth of a percent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Percent(u32);

/// Thousandths of a percent in 100 %.
const MILLI_FULL: u32 = 100_000;

impl Percent {
    pub const ZERO: Percent = Percent(0);
    pub const FULL: Percent = Percent(MILLI_FULL);

    /// From thousandths of a percent; `None` above 100 %.
    pub fn from_milli(milli: u32) -> Option<Percent> {
        (milli <= MILLI_FULL).then_some(Percent(milli))
    }

    /// From a number such as `25` or `0.5`: between 0 and 100, at most three decimals.
    pub fn from_f64(value: f64) -> Result<Percent, String> {
        if !value.is_finite() || !(0.0..=100.0).contains(&value) {
            return Err(format!("percent {value} is outside 0–100"));
        }
        let milli = (value * 1000.0).round();
        if ((milli / 1000.0) - value).abs() > 1e-9 {
            return Err(format!("percent {value} has more than three decimals"));
        }
        Ok(Percent(milli as u32))
    }

    pub fn milli(self) -> u32 {
        self.0
    }

    pub fn as_f64(self) -> f64 {
        f64::from(self.0) / 1000.0
    }

    /// What is left for the other side.
    pub fn complement(self) -> Percent {
        Percent(MILLI_FULL - self.0)
    }
}

impl fmt::Display for Percent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let whole = self.0 / 1000;
        let frac = self.0 % 1000;
        if frac == 0 {
            write!(f, "{whole}")
        } else {
            let digits = format!("{frac:03}");
            write!(f, "{whole}.{}", digits.trim_end_matches('0'))
        }
    }
}

impl FromStr for Percent {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim().trim_end_matches('%').trim();
        let value: f64 =
            t.parse().map_err(|_| format!("`{s}` is not a percentage (expected a number from 0 to 100)"))?;
        Percent::from_f64(value)
    }
}

impl Serialize for Percent {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(self.as_f64())
    }
}

impl<'de> Deserialize<'de> for Percent {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Percent;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a percentage from 0 to 100 (e.g. 25 or 0.5)")
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Percent, E> {
                if (0..=100).contains(&v) {
                    Ok(Percent(v as u32 * 1000))
                } else {
                    Err(E::custom(format!("percent {v} is outside 0–100")))
                }
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Percent, E> {
                self.visit_i64(i64::try_from(v).unwrap_or(i64::MAX))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Percent, E> {
                Percent::from_f64(v).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

/// Integer weights of the two sides as a splitter stores them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Weights {
    pub blue: u32,
    pub green: u32,
}

impl Weights {
    pub fn new(blue: u32, green: u32) -> Weights {
        Weights { blue, green }
    }

    pub fn get(self, side: Side) -> u32 {
        match side {
            Side::Blue => self.blue,
            Side::Green => self.green,
        }
    }

    /// Weights with `side` at `weight` and the other side at `other`.
    pub fn with(side: Side, weight: u32, other: u32) -> Weights {
        match side {
            Side::Blue => Weights::new(weight, other),
            Side::Green => Weights::new(other, weight),
        }
    }

    /// The share of traffic `side` receives, in percent. Both weights at zero means equal
    /// shares (what Route53 does with an all-zero weighted set).
    pub fn percent(self, side: Side) -> f64 {
        let total = u64::from(self.blue) + u64::from(self.green);
        if total == 0 {
            return 50.0;
        }
        let share = u64::from(self.get(side)) as f64 / total as f64 * 100.0;
        (share * 1000.0).round() / 1000.0
    }

    /// The side that holds all traffic, if one does.
    pub fn sole_side(self) -> Option<Side> {
        match (self.blue, self.green) {
            (b, 0) if b > 0 => Some(Side::Blue),
            (0, g) if g > 0 => Some(Side::Green),
            _ => None,
        }
    }
}

impl fmt::Display for Weights {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "blue {}% / green {}% (weights {}:{})",
            fmt_pct(self.percent(Side::Blue)),
            fmt_pct(self.percent(Side::Green)),
            self.blue,
            self.green
        )
    }
}

/// The side holding all traffic on every one of `weights`, if one does (none for no weights).
pub fn sole_side(weights: impl IntoIterator<Item = Weights>) -> Option<Side> {
    let mut weights = weights.into_iter();
    let first = weights.next()?.sole_side()?;
    weights.all(|w| w.sole_side() == Some(first)).then_some(first)
}

/// A percentage read off weights, printed without needless decimals.
pub fn fmt_pct(value: f64) -> String {
    let s = format!("{value:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// Weights chosen for a requested percentage, and whether they are exact.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WeightChoice {
    pub weights: Weights,
    pub exact: bool,
}

/// The weights that give `side` `percent` of the traffic on a splitter whose weights run from 0
/// to `max` (Route53: 255, ALB: 999).
pub fn choose_weights(side: Side, percent: Percent, max: u32) -> WeightChoice {
    let (w, o) = weight_pair(percent.milli(), max);
    WeightChoice {
        weights: Weights::with(side, w, o),
        exact: u64::from(w) * u64::from(MILLI_FULL) == u64::from(percent.milli()) * (u64::from(w) + u64::from(o)),
    }
}

/// (weight of the side, weight of the other side) for `milli` thousandths of a percent.
fn weight_pair(milli: u32, max: u32) -> (u32, u32) {
    debug_assert!(max >= 100, "splitters allow weights up to at least 100");
    if milli == 0 {
        return (0, 100);
    }
    if milli == MILLI_FULL {
        return (100, 0);
    }
    if milli.is_multiple_of(1000) {
        let w = milli / 1000;
        return (w, 100 - w);
    }
    let m = u64::from(milli);
    let full = u64::from(MILLI_FULL);
    // Smallest exact pair: w / total == milli / 100000.
    for total in 2..=2 * u64::from(max) {
        if (m * total) % full == 0 {
            let w = m * total / full;
            let o = total - w;
            if w >= 1 && o >= 1 && w <= u64::from(max) && o <= u64::from(max) {
                return (w as u32, o as u32);
            }
        }
    }
    // No exact pair in range: the closest one that still gives both sides some traffic (a
    // fraction asked for never rounds to none, nor to all).
    let mut best = (1u64, u64::from(max));
    let mut best_err = (u64::MAX, 1u64); // error as a fraction num/den, compared exactly
    for total in 2..=2 * u64::from(max) {
        let w = ((m * total + full / 2) / full).clamp(1, total - 1);
        let o = total - w;
        if w > u64::from(max) || o > u64::from(max) {
            continue;
        }
        let num = (w * full).abs_diff(m * total);
        // num/total < best_num/best_den  <=>  num*best_den < best_num*total
        if u128::from(num) * u128::from(best_err.1) < u128::from(best_err.0) * u128::from(total) {
            best_err = (num, total);
            best = (w, o);
        }
    }
    (best.0 as u32, best.1 as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pct(s: &str) -> Percent {
        s.parse().unwrap()
    }

    #[test]
    fn whole_percentages_are_weights_that_sum_to_100() {
        for p in 0..=100u32 {
            let c = choose_weights(Side::Green, Percent::from_milli(p * 1000).unwrap(), 255);
            assert_eq!(c.weights, Weights::new(100 - p, p));
            assert!(c.exact);
        }
        let c = choose_weights(Side::Blue, pct("25"), 999);
        assert_eq!(c.weights, Weights::new(25, 75));
    }

    #[test]
    fn half_a_percent_is_the_smallest_exact_pair() {
        let c = choose_weights(Side::Green, pct("0.5"), 255);
        assert_eq!(c.weights, Weights::new(199, 1));
        assert!(c.exact);
        let c = choose_weights(Side::Green, pct("99.5"), 999);
        assert_eq!(c.weights, Weights::new(1, 199));
    }

    #[test]
    fn a_tenth_of_a_percent_is_exact_on_alb_and_closest_on_route53() {
        let alb = choose_weights(Side::Green, pct("0.1"), 999);
        assert_eq!(alb.weights, Weights::new(999, 1));
        assert!(alb.exact);
        let r53 = choose_weights(Side::Green, pct("0.1"), 255);
        assert!(!r53.exact);
        assert_eq!(r53.weights, Weights::new(255, 1), "closest pair that keeps some traffic");
    }

    #[test]
    fn weights_stay_in_range_and_never_both_zero() {
        for max in [255u32, 999] {
            for milli in (0..=100_000u32).step_by(137) {
                let c = choose_weights(Side::Green, Percent::from_milli(milli).unwrap(), max);
                assert!(c.weights.blue <= max && c.weights.green <= max, "{milli} {max}");
                assert!(c.weights.blue + c.weights.green > 0);
                if milli > 0 {
                    assert!(c.weights.green > 0, "a share asked for never rounds to none");
                }
                if milli < 100_000 {
                    assert!(c.weights.blue > 0, "a share short of all never rounds to all");
                }
                let got = c.weights.percent(Side::Green);
                // Never further off than the smallest share the splitter can express.
                let step = 100.0 / f64::from(max + 1);
                assert!((got - f64::from(milli) / 1000.0).abs() <= step + 1e-9, "{milli} {max} {got}");
            }
        }
    }

    #[test]
    fn percent_parsing_and_display() {
        assert_eq!(pct("25").to_string(), "25");
        assert_eq!(pct("0.5").to_string(), "0.5");
        assert_eq!(pct("12.345%").to_string(), "12.345");
        assert!("101".parse::<Percent>().is_err());
        assert!("-1".parse::<Percent>().is_err());
        assert!("0.0001".parse::<Percent>().is_err());
        assert!("abc".parse::<Percent>().is_err());
    }

    #[test]
    fn percent_of_weights() {
        assert_eq!(Weights::new(75, 25).percent(Side::Green), 25.0);
        assert_eq!(Weights::new(199, 1).percent(Side::Green), 0.5);
        assert_eq!(Weights::new(0, 0).percent(Side::Blue), 50.0);
        assert_eq!(Weights::new(0, 7).sole_side(), Some(Side::Green));
        assert_eq!(Weights::new(1, 7).sole_side(), None);
    }
}
