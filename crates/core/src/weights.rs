//! Percent ↔ each splitter's integer weights: the pure arithmetic of a traffic split.
//!
//! A percentage (exact to a thousandth) becomes a pair of integer weights within the splitter's
//! range: whole percentages as weights that sum to 100 (blue 75 / green 25) so that a person reading
//! the console reads percentages, fractions as the smallest exact pair (0.5 % → 199:1), or the
//! closest pair when none is exact. A split never has both weights at zero.

use crate::model::{MILLI_FULL, Percent, RouteKind, Side, Weights};

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

/// The weights that put `percent` of the traffic on `side` on a route of `kind`.
pub fn split(kind: RouteKind, side: Side, percent: Percent) -> Weights {
    choose_weights(side, percent, kind.max_weight()).weights
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
