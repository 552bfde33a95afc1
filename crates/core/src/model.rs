//! The shared nouns of cutover: the two sides, a percentage of traffic, a splitter's integer
//! weights, a route as the core sees it, and a gate's reading. No I/O and no SDK types: every layer
//! speaks these.

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

    /// 0 for blue, 1 for green: a side's place in a `[_; 2]` kept per side.
    pub fn index(self) -> usize {
        match self {
            Side::Blue => 0,
            Side::Green => 1,
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
pub(crate) const MILLI_FULL: u32 = 100_000;

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

/// A split asked for: `side` gets `percent` of the traffic, the other side the rest
/// (`green=25`, as `cutover set` takes it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Split {
    pub side: Side,
    pub percent: Percent,
}

impl fmt::Display for Split {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", self.side, self.percent)
    }
}

impl FromStr for Split {
    type Err = String;

    /// `green=25`, `BLUE=0.5%`; the error says what is wrong, with a hint line.
    fn from_str(s: &str) -> Result<Split, String> {
        let usage =
            |why: String| format!("invalid split `{s}`: {why}\nhint: write SIDE=PERCENT, e.g. `cutover set green=25`");
        let (side, pct) = s.split_once('=').ok_or_else(|| usage("missing `=`".into()))?;
        Ok(Split { side: side.parse().map_err(usage)?, percent: pct.parse().map_err(usage)? })
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

/// Both sides' share of traffic, in percent: configured (from weights) or observed (from requests).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Shares {
    pub blue: f64,
    pub green: f64,
}

impl Shares {
    pub fn get(self, side: Side) -> f64 {
        match side {
            Side::Blue => self.blue,
            Side::Green => self.green,
        }
    }

    /// The shares of two request counts; `None` when there were no requests.
    pub fn of_counts(blue: f64, green: f64) -> Option<Shares> {
        let total = blue + green;
        if total.is_nan() || total <= 0.0 {
            return None;
        }
        let pct = |n: f64| (n / total * 100_000.0).round() / 1000.0;
        Some(Shares { blue: pct(blue), green: pct(green) })
    }
}

impl From<Weights> for Shares {
    fn from(w: Weights) -> Shares {
        Shares { blue: w.percent(Side::Blue), green: w.percent(Side::Green) }
    }
}

impl fmt::Display for Shares {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "blue {:>5}% / green {:>5}%", fmt_pct(self.blue), fmt_pct(self.green))
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

/// The kind of splitter a route uses: its name (`route53`, `alb`: the profile's table and the
/// JSON's `kind`) and the largest weight it accepts. The kinds themselves live with the splitters;
/// the core only needs to tell them apart and to know their weight range.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RouteKind {
    name: &'static str,
    max_weight: u32,
}

impl RouteKind {
    /// A kind named `name` whose weights run from 0 to `max_weight` (at least 100: every whole
    /// percentage is a weight).
    pub const fn new(name: &'static str, max_weight: u32) -> RouteKind {
        assert!(max_weight >= 100, "a splitter's weights reach at least 100");
        RouteKind { name, max_weight }
    }

    pub fn name(self) -> &'static str {
        self.name
    }

    /// The largest weight this splitter accepts (weights start at 0).
    pub fn max_weight(self) -> u32 {
        self.max_weight
    }
}

impl fmt::Display for RouteKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name)
    }
}

impl Serialize for RouteKind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name)
    }
}

/// A role cutover assumes for one resource's calls (`role_arn`, optionally `external_id`): a
/// hosted zone in a network account, listeners in a workload account.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Role {
    pub arn: String,
    pub external_id: Option<String>,
}

impl Role {
    /// The role's account: `111122223333` of `arn:aws:iam::111122223333:role/cutover`.
    pub fn account(&self) -> &str {
        self.arn.split(':').nth(4).unwrap_or_default()
    }
}

/// The external id is a shared secret of the role's trust policy: never in a debug dump.
impl fmt::Debug for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Role")
            .field("arn", &self.arn)
            .field("external_id", &self.external_id.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// A route's split as the core sees it: its kind, a human name, and the live weights.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RouteView {
    pub kind: RouteKind,
    pub name: String,
    pub weights: Weights,
}

/// The side holding all traffic on every route, if one does.
pub fn sole_side_of(routes: &[RouteView]) -> Option<Side> {
    sole_side(routes.iter().map(|r| r.weights))
}

/// One gate's verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Pass,
    Fail,
    /// Inconclusive: no data, an alarm in INSUFFICIENT_DATA, a webhook that says not yet, a gate
    /// that could not be read this time.
    Wait,
    /// Not yet judgeable: the data it needs is not published yet (a CloudWatch minute that has
    /// not settled). Neither a pass nor a break of the passes so far.
    Pending,
    /// A calendar forbids moving traffic toward the candidate (a change freeze, outside a
    /// deployment window, or closing before the next stage's bake would end): the stage bakes on
    /// and holds at its weight; a rollback, a pause or a move toward the stable side never waits.
    Frozen,
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Verdict::Pass => "pass",
            Verdict::Fail => "fail",
            Verdict::Wait => "wait",
            Verdict::Pending => "pending",
            Verdict::Frozen => "frozen",
        })
    }
}

/// One gate's reading: its verdict and why.
///
/// As JSON: `{"gate", "verdict", "detail"}`, `"no_data": true` for a wait for want of data,
/// `"shadow": true` for a shadow gate's, and a gate's own evidence merged in (the judge's counts
/// and interval; its `verdict` — `inconclusive`, `no_data` — is the JSON's).
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct Reading {
    pub gate: String,
    pub verdict: Verdict,
    pub detail: String,
    /// A wait because the gate saw no data at all (no datapoint, an alarm in INSUFFICIENT_DATA):
    /// AWS reports nothing for a candidate without requests, so traffic decides what it means.
    #[serde(default)]
    pub no_data: bool,
    /// A shadow gate's (`shadow = true`): read, reported and audited, never acted on.
    #[serde(default)]
    pub shadow: bool,
    /// The gate's own evidence, as JSON fields of the reading.
    #[serde(default, skip)]
    pub evidence: Option<serde_json::Map<String, serde_json::Value>>,
}

impl Serialize for Reading {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let evidence = self.evidence.as_ref();
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("gate", &self.gate)?;
        match evidence.and_then(|e| e.get("verdict")) {
            Some(v) => m.serialize_entry("verdict", v)?,
            None => m.serialize_entry("verdict", &self.verdict)?,
        }
        m.serialize_entry("detail", &self.detail)?;
        if self.no_data {
            m.serialize_entry("no_data", &true)?;
        }
        if self.shadow || evidence.is_some() {
            m.serialize_entry("shadow", &self.shadow)?;
        }
        for (k, v) in
            evidence.into_iter().flatten().filter(|(k, _)| !matches!(k.as_str(), "verdict" | "gate" | "detail"))
        {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

impl Reading {
    pub fn new(gate: &str, verdict: Verdict, detail: impl Into<String>) -> Reading {
        Reading {
            gate: gate.to_string(),
            verdict,
            detail: detail.into(),
            no_data: false,
            shadow: false,
            evidence: None,
        }
    }

    /// A wait for want of data.
    pub fn no_data(gate: &str, detail: impl Into<String>) -> Reading {
        Reading { no_data: true, ..Reading::new(gate, Verdict::Wait, detail) }
    }

    /// Not judgeable yet: what it needs is not published.
    pub fn pending(gate: &str, detail: impl Into<String>) -> Reading {
        Reading::new(gate, Verdict::Pending, detail)
    }

    /// A calendar forbids the move now.
    pub fn frozen(gate: &str, detail: impl Into<String>) -> Reading {
        Reading::new(gate, Verdict::Frozen, detail)
    }
}

/// What keeps traffic from moving: every reading that is not a pass, said in one line, and
/// whether they only wait (none failed). `None` when every gate passed. A pending reading blocks
/// a one-off shift: what it needs is not known yet. Shadow gates' readings never block.
pub fn blocking(readings: &[Reading]) -> Option<(String, bool)> {
    let real: Vec<&Reading> = readings.iter().filter(|r| !r.shadow).collect();
    let why: Vec<String> = real
        .iter()
        .filter(|r| r.verdict != Verdict::Pass)
        .map(|r| format!("{} {}: {}", r.gate, r.verdict.to_string().to_uppercase(), r.detail))
        .collect();
    if why.is_empty() {
        return None;
    }
    Some((why.join("; "), real.iter().all(|r| r.verdict != Verdict::Fail)))
}

/// Two splitter kinds for the core's own tests, shaped like Route53's (weights 0–255) and an ALB's
/// (0–999).
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_parse_and_print_as_typed() {
        let s: Split = "green=25".parse().unwrap();
        assert_eq!((s.side, s.percent.to_string(), s.to_string()), (Side::Green, "25".into(), "green=25".into()));
        let s: Split = "BLUE=0.5%".parse().unwrap();
        assert_eq!((s.side, s.percent.to_string()), (Side::Blue, "0.5".into()));
        for bad in ["green", "red=5", "green=101", "green=-1", "green=x"] {
            let e = bad.parse::<Split>().unwrap_err();
            assert!(e.contains("invalid split") && e.contains("hint:"), "{bad}: {e}");
        }
    }
}

#[cfg(test)]
pub(crate) mod kinds {
    use super::RouteKind;
    pub const DNS: RouteKind = RouteKind::new("route53", 255);
    pub const LB: RouteKind = RouteKind::new("alb", 999);
}
