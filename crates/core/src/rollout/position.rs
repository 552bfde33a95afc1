//! Where the live split stands against a rollout's stages.
//!
//! cutover writes every route of a profile to the same stage, one route (or one Route53 zone
//! batch) at a time, each write atomic. So a run that dies part-way leaves each route either at
//! the stage it came from or at the stage it was writing: a position the next run can finish
//! without `--force`. Anything else was not written by this rollout.

use std::fmt;

use crate::model::{RouteKind, RouteView, Side, Weights};
use crate::rollout::decide::Rules;
use crate::weights::split;

/// The live split against a rollout toward `candidate`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Position {
    /// Every route at stage `k` (0: all traffic on the stable side).
    At(usize),
    /// Every route at stage `lo` or stage `hi`, both present: a write between them was cut short.
    Between { lo: usize, hi: usize },
    /// Some route's split is no stage of this rollout.
    Elsewhere,
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Position::At(0) => f.write_str("all traffic on the stable side"),
            Position::At(k) => write!(f, "stage {k}"),
            Position::Between { lo, hi } => write!(f, "between stage {lo} and stage {hi} (a write was cut short)"),
            Position::Elsewhere => f.write_str("no stage of this rollout"),
        }
    }
}

/// The weights of stage `k` (0: all traffic on the stable side) on a route of `kind`.
pub fn stage_weights(rules: &Rules, candidate: Side, kind: RouteKind, k: usize) -> Weights {
    split(kind, candidate, rules.percent(k))
}

/// The stages (0 to n) whose weights a route holds. Profiles refuse stages whose weights coincide
/// on a splitter, so there is at most one.
fn stage_of(rules: &Rules, candidate: Side, route: &RouteView) -> Option<usize> {
    (0..=rules.stages.len()).find(|&k| stage_weights(rules, candidate, route.kind, k) == route.weights)
}

/// Where `routes` stand against the stages toward `candidate`.
pub fn locate(routes: &[RouteView], rules: &Rules, candidate: Side) -> Position {
    let mut stages = Vec::with_capacity(routes.len());
    for r in routes {
        match stage_of(rules, candidate, r) {
            Some(k) => stages.push(k),
            None => return Position::Elsewhere,
        }
    }
    let (Some(&lo), Some(&hi)) = (stages.iter().min(), stages.iter().max()) else {
        return Position::Elsewhere;
    };
    if lo == hi {
        Position::At(lo)
    } else if stages.iter().all(|&k| k == lo || k == hi) {
        Position::Between { lo, hi }
    } else {
        Position::Elsewhere
    }
}

/// The side a rollout of split traffic is heading to, when only one reading makes sense: the side
/// toward which the live split is a stage, or between two adjacent stages.
pub fn heading(routes: &[RouteView], rules: &Rules) -> Option<Side> {
    let fits = |side: Side| match locate(routes, rules, side) {
        Position::At(k) => k > 0 && k < rules.stages.len(),
        Position::Between { lo, hi } => hi == lo + 1,
        Position::Elsewhere => false,
    };
    let sides: Vec<Side> = Side::ALL.into_iter().filter(|&s| fits(s)).collect();
    match sides.as_slice() {
        [one] => Some(*one),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> Rules {
        Rules { stages: ["10", "50", "100"].iter().map(|s| s.parse().unwrap()).collect(), ..Rules::default() }
    }

    fn routes(ws: &[(RouteKind, u32, u32)]) -> Vec<RouteView> {
        ws.iter().map(|&(kind, b, g)| RouteView { kind, name: "r".into(), weights: Weights::new(b, g) }).collect()
    }

    #[test]
    fn routes_at_one_stage_two_adjacent_stages_or_elsewhere() {
        let r = rules();
        let a = crate::model::kinds::LB;
        let d = crate::model::kinds::DNS;
        assert_eq!(locate(&routes(&[(a, 100, 0), (d, 100, 0)]), &r, Side::Green), Position::At(0));
        assert_eq!(locate(&routes(&[(a, 90, 10), (d, 90, 10)]), &r, Side::Green), Position::At(1));
        assert_eq!(locate(&routes(&[(a, 90, 10), (d, 50, 50)]), &r, Side::Green), Position::Between { lo: 1, hi: 2 });
        assert_eq!(locate(&routes(&[(a, 100, 0), (d, 90, 10)]), &r, Side::Green), Position::Between { lo: 0, hi: 1 });
        assert_eq!(locate(&routes(&[(a, 0, 100), (d, 0, 100)]), &r, Side::Green), Position::At(3));
        assert_eq!(locate(&routes(&[(a, 70, 30)]), &r, Side::Green), Position::Elsewhere);
        assert_eq!(
            locate(&routes(&[(a, 100, 0), (d, 90, 10), (a, 50, 50)]), &r, Side::Green),
            Position::Elsewhere,
            "three stages at once is no write of this rollout"
        );
        // Toward blue, 90:10 is no stage.
        assert_eq!(locate(&routes(&[(a, 90, 10)]), &r, Side::Blue), Position::Elsewhere);
    }

    #[test]
    fn a_split_heads_to_the_side_it_is_a_stage_of() {
        let r = rules();
        assert_eq!(heading(&routes(&[(crate::model::kinds::LB, 50, 50)]), &r), None, "50:50 is a stage both ways");
        assert_eq!(heading(&routes(&[(crate::model::kinds::LB, 90, 10)]), &r), Some(Side::Green));
        assert_eq!(heading(&routes(&[(crate::model::kinds::LB, 10, 90)]), &r), Some(Side::Blue));
        assert_eq!(heading(&routes(&[(crate::model::kinds::LB, 100, 0)]), &r), None);
    }
}
