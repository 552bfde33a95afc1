//! CloudWatch metric data as AWS keeps and serves it, for the emulator kit's proxy (the switch
//! `Config::metrics`).
//!
//! - **Load balancers publish late, by the minute, only when there was traffic.** Datapoints of
//!   `AWS/ApplicationELB` and `AWS/NetworkELB` — the simulated clients' (`proxy_clients.rs`), or
//!   written with PutMetricData, which the kit takes as the load balancer's own publication — land
//!   in 60-second buckets that become visible only once published: minute M of one load balancer
//!   at M + 60 s + the publish delay + a jitter drawn per load balancer and minute (two load
//!   balancers publish at different moments). A minute without requests has no datapoint at all.
//!   Other namespaces' datapoints are visible as soon as they are put.
//! - **GetMetricData as AWS answers it**: StartTime rounded down to the minute (to the period
//!   below 60 s), buckets of `Period` from there, EndTime exclusive, only buckets with data, newest
//!   first unless `ScanBy` says otherwise; a metric is its namespace, name and every dimension
//!   (moto ignores the namespace once dimensions are given); statistics `SampleCount`, `Sum`,
//!   `Average`, `Minimum`, `Maximum`, percentiles `pNN.NN` and percentile ranks `PR(a:b)` (lower
//!   bound exclusive, upper inclusive) — percentiles only where every value is known (AWS: not
//!   from statistic sets, unless their minimum equals their maximum); metric math with `+ - * /`,
//!   numbers and parentheses (a function is refused rather than answered wrong).
//! - PutMetricData is also handed to moto, so its ListMetrics and GetMetricStatistics keep
//!   working; GetMetricStatistics is moto's (cutover never calls it).

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http_body_util::Full;
use hyper::Response;

use super::clock::{at_epoch, epoch, floor};
use super::{Answer, xml_error, xml_escape};

/// When a load balancer's minute becomes visible.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Publish {
    /// As it is counted: the current minute readable while it fills (what PutMetricData of every
    /// request would give; the demo runs so until `[observe]` judges settled minutes).
    Live,
    /// Minute M of a load balancer at M + 60 s + `delay` + a draw in `[0, jitter]` for that load
    /// balancer and minute. AWS documents no delay; 1–3 minutes is common.
    After { delay: Duration, jitter: Duration },
}

impl Publish {
    /// `live`, `90s`, or `60s..75s` (a delay and its jitter's upper end).
    pub fn parse(s: &str) -> Result<Publish, String> {
        if s == "live" {
            return Ok(Publish::Live);
        }
        let secs =
            |t: &str| humantime::parse_duration(t.trim()).map_err(|e| format!("`{t}` is not a duration like 60s: {e}"));
        match s.split_once("..") {
            Some((a, b)) => {
                let (delay, upto) = (secs(a)?, secs(b)?);
                Ok(Publish::After { delay, jitter: upto.saturating_sub(delay) })
            }
            None => Ok(Publish::After { delay: secs(s)?, jitter: Duration::ZERO }),
        }
    }

    /// When minute `minute` (epoch seconds of its start) of load balancer `lb` becomes visible.
    pub fn visible_at(&self, lb: &str, minute: i64) -> SystemTime {
        match *self {
            Publish::Live => SystemTime::UNIX_EPOCH,
            Publish::After { delay, jitter } => {
                let mut h: u64 = 0xcbf2_9ce4_8422_2325;
                for b in lb.bytes().chain(minute.to_le_bytes()) {
                    h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
                }
                let draw = fastrand::Rng::with_seed(h).f64();
                at_epoch(minute + 60) + delay + jitter.mul_f64(draw)
            }
        }
    }
}

/// The namespaces whose datapoints the load balancers publish.
pub const ELB_NAMESPACES: [&str; 2] = ["AWS/ApplicationELB", "AWS/NetworkELB"];

/// A metric: account, region, namespace, name and its dimensions (sorted by name).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SeriesKey {
    pub account: String,
    pub region: String,
    pub namespace: String,
    pub name: String,
    pub dimensions: Vec<(String, String)>,
}

impl SeriesKey {
    pub fn new<K: AsRef<str>, V: AsRef<str>>(
        account: &str,
        region: &str,
        namespace: &str,
        name: &str,
        dimensions: &[(K, V)],
    ) -> SeriesKey {
        let mut dimensions: Vec<(String, String)> =
            dimensions.iter().map(|(k, v)| (k.as_ref().to_string(), v.as_ref().to_string())).collect();
        dimensions.sort();
        SeriesKey {
            account: account.into(),
            region: region.into(),
            namespace: namespace.into(),
            name: name.into(),
            dimensions,
        }
    }

    fn dimension(&self, name: &str) -> Option<&str> {
        self.dimensions.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

/// What is known of some samples: a statistic set, and the values themselves where all are known.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Stats {
    pub count: f64,
    pub sum: f64,
    pub min: f64,
    pub max: f64,
    /// Every value, when each sample was given (percentiles need them).
    pub values: Vec<f64>,
    /// Whether `values` holds every sample.
    pub raw: bool,
}

impl Stats {
    /// No samples yet; values are kept as they come.
    pub fn empty() -> Stats {
        Stats { count: 0.0, sum: 0.0, min: f64::INFINITY, max: f64::NEG_INFINITY, values: Vec::new(), raw: true }
    }

    /// `n` samples of one value (a count: each request is a sample of 1).
    pub fn repeated(value: f64, n: f64) -> Stats {
        let mut s = Stats::empty();
        s.add_repeated(value, n);
        s
    }

    /// A statistic set, its values unknown.
    pub fn set(count: f64, sum: f64, min: f64, max: f64) -> Stats {
        Stats { count, sum, min, max, values: Vec::new(), raw: false }
    }

    pub fn add(&mut self, value: f64) {
        self.count += 1.0;
        self.sum += value;
        self.min = self.min.min(value);
        self.max = self.max.max(value);
        if self.raw {
            self.values.push(value);
        }
    }

    /// `n` samples of `value`, kept as a set (min = max, so percentiles still answer).
    pub fn add_repeated(&mut self, value: f64, n: f64) {
        if n <= 0.0 {
            return;
        }
        self.count += n;
        self.sum += value * n;
        self.min = self.min.min(value);
        self.max = self.max.max(value);
        self.raw = false;
        self.values.clear();
    }

    pub fn merge(&mut self, other: &Stats) {
        if other.count <= 0.0 {
            return;
        }
        let raw = self.raw && other.raw;
        self.count += other.count;
        self.sum += other.sum;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        if raw {
            self.values.extend_from_slice(&other.values);
        } else {
            self.values.clear();
        }
        self.raw = raw;
    }

    /// The statistic `stat` (`Sum`, `Average`, `p99`, `PR(:0.3)`, …); `None` when it cannot be
    /// had from what is known.
    pub fn statistic(&self, stat: &str) -> Option<f64> {
        if self.count <= 0.0 {
            return None;
        }
        match stat {
            "Sum" => return Some(self.sum),
            "SampleCount" => return Some(self.count),
            "Average" => return Some(self.sum / self.count),
            "Minimum" => return Some(self.min),
            "Maximum" => return Some(self.max),
            _ => {}
        }
        if let Some(p) = stat.strip_prefix('p').and_then(|p| p.parse::<f64>().ok()) {
            if !(0.0..=100.0).contains(&p) {
                return None;
            }
            if self.min == self.max {
                return Some(self.min);
            }
            if !self.raw {
                return None;
            }
            let mut v = self.values.clone();
            v.sort_by(f64::total_cmp);
            // Nearest rank.
            let rank = ((p / 100.0) * v.len() as f64).ceil().max(1.0) as usize;
            return v.get(rank - 1).copied();
        }
        if let Some(range) = stat.strip_prefix("PR(").and_then(|r| r.strip_suffix(')')) {
            let (lo, hi) = range.split_once(':')?;
            let bound = |b: &str| if b.is_empty() { Ok(None) } else { b.parse::<f64>().map(Some) };
            let (lo, hi) = (bound(lo).ok()?, bound(hi).ok()?);
            let inside = |v: f64| lo.is_none_or(|l| v > l) && hi.is_none_or(|h| v <= h);
            if self.raw {
                let n = self.values.iter().filter(|v| inside(**v)).count();
                return Some(100.0 * n as f64 / self.values.len().max(1) as f64);
            }
            if self.min == self.max {
                return Some(if inside(self.min) { 100.0 } else { 0.0 });
            }
            return None;
        }
        None
    }
}

/// What a load balancer counted of one minute of one series: (series, the minute's start in epoch
/// seconds, unit, samples).
pub type Counted = (SeriesKey, i64, &'static str, Stats);

/// Some samples of a series, stamped `at` (epoch seconds), readable from `visible`.
#[derive(Clone, Debug)]
struct Part {
    at: i64,
    visible: SystemTime,
    unit: Option<String>,
    stats: Stats,
    /// A load balancer's minute (updated in place while it is counted).
    published: bool,
}

/// Every datapoint the kit holds.
#[derive(Default)]
pub struct Store {
    series: HashMap<SeriesKey, Vec<Part>>,
}

impl Store {
    /// Samples put at `at`, visible from `visible`.
    pub fn put(&mut self, key: SeriesKey, at: SystemTime, unit: Option<String>, stats: Stats, visible: SystemTime) {
        self.series.entry(key).or_default().push(Part { at: epoch(at), visible, unit, stats, published: false });
    }

    /// Samples a load balancer counted in the minute starting at `minute` (epoch seconds), visible
    /// as `publish` says; added to what that minute holds already.
    pub fn publish(&mut self, key: SeriesKey, minute: i64, unit: &str, stats: &Stats, publish: &Publish) {
        let lb = key.dimension("LoadBalancer").unwrap_or_default().to_string();
        let parts = self.series.entry(key).or_default();
        match parts.iter_mut().rev().find(|p| p.published && p.at == minute) {
            Some(part) => part.stats.merge(stats),
            None => parts.push(Part {
                at: minute,
                visible: publish.visible_at(&lb, minute),
                unit: Some(unit.to_string()),
                stats: stats.clone(),
                published: true,
            }),
        }
    }

    /// The series' samples by bucket of `period` seconds from `start` up to `end` (exclusive), as
    /// visible `now`; only buckets with samples.
    pub fn buckets(
        &self,
        key: &SeriesKey,
        unit: Option<&str>,
        start: i64,
        end: i64,
        period: i64,
        now: SystemTime,
    ) -> BTreeMap<i64, Stats> {
        let mut out: BTreeMap<i64, Stats> = BTreeMap::new();
        let Some(parts) = self.series.get(key) else { return out };
        for p in parts {
            if p.at < start || p.at >= end || p.visible > now {
                continue;
            }
            if let (Some(want), Some(have)) = (unit, p.unit.as_deref())
                && want != have
            {
                continue;
            }
            let bucket = start + (p.at - start) / period * period;
            out.entry(bucket).or_insert_with(Stats::empty).merge(&p.stats);
        }
        out
    }

    /// How many series hold samples (for the kit's own accounting).
    pub fn len(&self) -> usize {
        self.series.len()
    }
}

/// The query protocol's list params `Prefix.member.N.Rest`, grouped by N (in order), each as its
/// `Rest` → value.
pub fn members<'a>(params: &'a [(String, String)], prefix: &str) -> Vec<Vec<(&'a str, &'a str)>> {
    let mut by: BTreeMap<usize, Vec<(&str, &str)>> = BTreeMap::new();
    let head = format!("{prefix}.member.");
    for (k, v) in params {
        let Some(rest) = k.strip_prefix(&head) else { continue };
        let (n, field) = rest.split_once('.').unwrap_or((rest, ""));
        if let Ok(n) = n.parse::<usize>() {
            by.entry(n).or_default().push((field, v.as_str()));
        }
    }
    by.into_values().collect()
}

fn field<'a>(fields: &[(&'a str, &'a str)], name: &str) -> Option<&'a str> {
    fields.iter().find(|(k, _)| *k == name).map(|(_, v)| *v)
}

/// The dimensions among `fields` under `prefix` (`…Dimensions.member.N.Name/Value`).
fn dimensions(fields: &[(&str, &str)], prefix: &str) -> Vec<(String, String)> {
    let head = format!("{prefix}.member.");
    let mut by: BTreeMap<usize, (Option<String>, Option<String>)> = BTreeMap::new();
    for (k, v) in fields {
        let Some((n, part)) = k.strip_prefix(&head).and_then(|r| r.split_once('.')) else { continue };
        let Ok(n) = n.parse::<usize>() else { continue };
        let entry = by.entry(n).or_default();
        match part {
            "Name" => entry.0 = Some(v.to_string()),
            "Value" => entry.1 = Some(v.to_string()),
            _ => {}
        }
    }
    by.into_values().filter_map(|(k, v)| Some((k?, v?))).collect()
}

/// A time in the query protocol (`2026-12-01T10:00:00Z`, fractions allowed).
pub fn parse_time(s: &str) -> Option<SystemTime> {
    let t = aws_smithy_types::DateTime::from_str(s, aws_smithy_types::date_time::Format::DateTime).ok()?;
    SystemTime::try_from(t).ok()
}

pub fn format_time(t: SystemTime) -> String {
    aws_smithy_types::DateTime::from(t).fmt(aws_smithy_types::date_time::Format::DateTime).unwrap_or_default()
}

/// PutMetricData into the store: each datum (Value, Values/Counts or StatisticValues), stamped
/// with its Timestamp or `now`. Datapoints of the load balancers' namespaces are taken as their
/// publication (visible as `publish` says).
pub fn put(
    store: &mut Store,
    params: &[(String, String)],
    account: &str,
    region: &str,
    now: SystemTime,
    publish: &Publish,
) {
    let namespace = params.iter().find(|(k, _)| k == "Namespace").map(|(_, v)| v.as_str()).unwrap_or_default();
    for datum in members(params, "MetricData") {
        let Some(name) = field(&datum, "MetricName") else { continue };
        let dims = dimensions(&datum, "Dimensions");
        let key = SeriesKey::new(account, region, namespace, name, &dims);
        let at = field(&datum, "Timestamp").and_then(parse_time).unwrap_or(now);
        let unit = field(&datum, "Unit").map(str::to_string);
        let num = |k: &str| field(&datum, k).and_then(|v| v.parse::<f64>().ok());
        let mut stats = Stats::empty();
        if let Some(v) = num("Value") {
            stats.add(v);
        }
        let values: Vec<(usize, f64)> = datum
            .iter()
            .filter_map(|(k, v)| {
                let n = k.strip_prefix("Values.member.")?.parse::<usize>().ok()?;
                Some((n, v.parse::<f64>().ok()?))
            })
            .collect();
        for (n, v) in values {
            let count = num(&format!("Counts.member.{n}")).unwrap_or(1.0);
            if count == 1.0 { stats.add(v) } else { stats.add_repeated(v, count) }
        }
        if let (Some(c), Some(s), Some(lo), Some(hi)) = (
            num("StatisticValues.SampleCount"),
            num("StatisticValues.Sum"),
            num("StatisticValues.Minimum"),
            num("StatisticValues.Maximum"),
        ) {
            stats.merge(&Stats::set(c, s, lo, hi));
        }
        if stats.count <= 0.0 {
            continue;
        }
        if ELB_NAMESPACES.contains(&namespace) {
            let minute = epoch(floor(at, 60));
            store.publish(key, minute, unit.as_deref().unwrap_or("None"), &stats, publish);
        } else {
            store.put(key, at, unit, stats, now);
        }
    }
}

/// One query of a GetMetricData call.
struct Query<'a> {
    id: &'a str,
    label: Option<&'a str>,
    return_data: bool,
    what: What<'a>,
}

enum What<'a> {
    Stat { key: SeriesKey, period: i64, stat: &'a str, unit: Option<&'a str> },
    Expression { text: &'a str },
}

/// GetMetricData answered from the store, as visible `now`.
pub fn get(store: &Store, params: &[(String, String)], account: &str, region: &str, now: SystemTime) -> Answer {
    let param = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let (Some(start), Some(end)) = (param("StartTime").and_then(parse_time), param("EndTime").and_then(parse_time))
    else {
        return xml_error(400, "ValidationError", "StartTime and EndTime are required");
    };
    let ascending = param("ScanBy") == Some("TimestampAscending");
    let mut queries = Vec::new();
    for q in members(params, "MetricDataQueries") {
        let Some(id) = field(&q, "Id") else {
            return xml_error(400, "ValidationError", "every query needs an Id");
        };
        let what = match field(&q, "Expression") {
            Some(text) => What::Expression { text },
            None => {
                let (Some(namespace), Some(name), Some(period), Some(stat)) = (
                    field(&q, "MetricStat.Metric.Namespace"),
                    field(&q, "MetricStat.Metric.MetricName"),
                    field(&q, "MetricStat.Period").and_then(|p| p.parse::<i64>().ok()),
                    field(&q, "MetricStat.Stat"),
                ) else {
                    return xml_error(400, "ValidationError", &format!("query {id}: a MetricStat or an Expression"));
                };
                if period <= 0 || (period >= 60 && period % 60 != 0) {
                    return xml_error(
                        400,
                        "InvalidParameterValue",
                        &format!("The value {period} for parameter MetricDataQueries.member.Period is not valid."),
                    );
                }
                let dims = dimensions(&q, "MetricStat.Metric.Dimensions");
                let key = SeriesKey::new(account, region, namespace, name, &dims);
                What::Stat { key, period, stat, unit: field(&q, "MetricStat.Unit") }
            }
        };
        let return_data = field(&q, "ReturnData") != Some("false");
        queries.push(Query { id, label: field(&q, "Label"), return_data, what });
    }
    // StartTime rounded down to the minute (to the period below a minute); buckets from there.
    let mut results: HashMap<&str, BTreeMap<i64, f64>> = HashMap::new();
    for q in &queries {
        if let What::Stat { key, period, stat, unit } = &q.what {
            let round = if *period < 60 { *period } else { 60 };
            let from = epoch(floor(start, round as u64));
            let series: BTreeMap<i64, f64> = store
                .buckets(key, *unit, from, epoch(end), *period, now)
                .into_iter()
                .filter_map(|(t, s)| Some((t, s.statistic(stat)?)))
                .collect();
            results.insert(q.id, series);
        }
    }
    for q in &queries {
        if let What::Expression { text } = q.what {
            match expression(text, &results) {
                Ok(Value::Series(s)) => {
                    results.insert(q.id, s);
                }
                Ok(Value::Scalar(v)) => {
                    results.insert(q.id, BTreeMap::from([(epoch(floor(start, 60)), v)]));
                }
                Err(e) => {
                    return xml_error(400, "ValidationError", &format!("query {}: {e}", q.id));
                }
            }
        }
    }
    let mut xml = String::from(
        "<GetMetricDataResponse xmlns=\"http://monitoring.amazonaws.com/doc/2010-08-01/\"><GetMetricDataResult><MetricDataResults>",
    );
    for q in queries.iter().filter(|q| q.return_data) {
        let series = results.get(q.id).cloned().unwrap_or_default();
        let mut points: Vec<(i64, f64)> = series.into_iter().collect();
        if !ascending {
            points.reverse();
        }
        let label = q.label.map(str::to_string).unwrap_or_else(|| match &q.what {
            What::Stat { key, .. } => key.name.clone(),
            What::Expression { .. } => q.id.to_string(),
        });
        xml.push_str(&format!(
            "<member><Id>{}</Id><Label>{}</Label><Timestamps>",
            xml_escape(q.id),
            xml_escape(&label)
        ));
        for (t, _) in &points {
            xml.push_str(&format!("<member>{}</member>", format_time(at_epoch(*t))));
        }
        xml.push_str("</Timestamps><Values>");
        for (_, v) in &points {
            xml.push_str(&format!("<member>{v}</member>"));
        }
        xml.push_str("</Values><StatusCode>Complete</StatusCode></member>");
    }
    xml.push_str("</MetricDataResults><Messages/></GetMetricDataResult><ResponseMetadata><RequestId>kit-metrics</RequestId></ResponseMetadata></GetMetricDataResponse>");
    let mut answer = Response::new(Full::new(Bytes::from(xml)));
    answer.headers_mut().insert("content-type", "text/xml".parse().unwrap());
    answer
}

/// A metric math value.
#[derive(Clone, Debug, PartialEq)]
enum Value {
    Series(BTreeMap<i64, f64>),
    Scalar(f64),
}

/// Metric math with `+ - * /`, numbers, query ids and parentheses; series are combined where both
/// have a datapoint.
fn expression(text: &str, series: &HashMap<&str, BTreeMap<i64, f64>>) -> Result<Value, String> {
    let tokens = tokenize(text)?;
    let mut pos = 0;
    let v = sum(&tokens, &mut pos, series)?;
    if pos != tokens.len() {
        return Err(format!("the kit's metric math does not read `{text}`"));
    }
    Ok(v)
}

#[derive(Clone, Debug, PartialEq)]
enum Token {
    Num(f64),
    Id(String),
    Op(char),
}

fn tokenize(text: &str) -> Result<Vec<Token>, String> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if "+-*/()".contains(c) {
            out.push(Token::Op(c));
            i += 1;
        } else if c.is_ascii_digit() || c == '.' {
            let s: String = chars[i..].iter().take_while(|c| c.is_ascii_digit() || **c == '.').collect();
            i += s.len();
            out.push(Token::Num(s.parse().map_err(|_| format!("`{s}` is not a number"))?));
        } else if c.is_ascii_alphabetic() {
            let s: String = chars[i..].iter().take_while(|c| c.is_ascii_alphanumeric() || **c == '_').collect();
            i += s.len();
            if chars.get(i) == Some(&'(') {
                return Err(format!("the kit's metric math has no function {s}()"));
            }
            out.push(Token::Id(s));
        } else {
            return Err(format!("the kit's metric math does not read `{c}`"));
        }
    }
    Ok(out)
}

fn sum(t: &[Token], pos: &mut usize, s: &HashMap<&str, BTreeMap<i64, f64>>) -> Result<Value, String> {
    let mut v = product(t, pos, s)?;
    while let Some(Token::Op(op @ ('+' | '-'))) = t.get(*pos) {
        *pos += 1;
        let r = product(t, pos, s)?;
        v = combine(v, r, *op);
    }
    Ok(v)
}

fn product(t: &[Token], pos: &mut usize, s: &HashMap<&str, BTreeMap<i64, f64>>) -> Result<Value, String> {
    let mut v = factor(t, pos, s)?;
    while let Some(Token::Op(op @ ('*' | '/'))) = t.get(*pos) {
        *pos += 1;
        let r = factor(t, pos, s)?;
        v = combine(v, r, *op);
    }
    Ok(v)
}

fn factor(t: &[Token], pos: &mut usize, s: &HashMap<&str, BTreeMap<i64, f64>>) -> Result<Value, String> {
    let token = t.get(*pos).cloned().ok_or("an expression ends too early")?;
    *pos += 1;
    match token {
        Token::Num(n) => Ok(Value::Scalar(n)),
        Token::Id(id) => s.get(id.as_str()).cloned().map(Value::Series).ok_or(format!("no query {id}")),
        Token::Op('-') => Ok(combine(Value::Scalar(0.0), factor(t, pos, s)?, '-')),
        Token::Op('(') => {
            let v = sum(t, pos, s)?;
            match t.get(*pos) {
                Some(Token::Op(')')) => {
                    *pos += 1;
                    Ok(v)
                }
                _ => Err("a `(` without its `)`".into()),
            }
        }
        Token::Op(c) => Err(format!("`{c}` where a value belongs")),
    }
}

fn combine(a: Value, b: Value, op: char) -> Value {
    let f = |x: f64, y: f64| match op {
        '+' => x + y,
        '-' => x - y,
        '*' => x * y,
        _ => x / y,
    };
    match (a, b) {
        (Value::Scalar(x), Value::Scalar(y)) => Value::Scalar(f(x, y)),
        (Value::Series(s), Value::Scalar(y)) => Value::Series(s.into_iter().map(|(t, x)| (t, f(x, y))).collect()),
        (Value::Scalar(x), Value::Series(s)) => Value::Series(s.into_iter().map(|(t, y)| (t, f(x, y))).collect()),
        (Value::Series(a), Value::Series(b)) => {
            Value::Series(a.into_iter().filter_map(|(t, x)| Some((t, f(x, *b.get(&t)?)))).collect())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statistics_of_samples() {
        let mut s = Stats::empty();
        for v in [0.1, 0.2, 0.3, 0.4, 1.0] {
            s.add(v);
        }
        assert_eq!(s.statistic("SampleCount"), Some(5.0));
        assert_eq!(s.statistic("p50"), Some(0.3));
        assert_eq!(s.statistic("p99"), Some(1.0));
        assert_eq!(s.statistic("PR(:0.3)"), Some(60.0));
        assert_eq!(s.statistic("PR(0.1:0.3)"), Some(40.0));
        let counts = Stats::repeated(1.0, 40.0);
        assert_eq!(counts.statistic("Sum"), Some(40.0));
        assert_eq!(counts.statistic("p90"), Some(1.0));
        assert_eq!(Stats::set(2.0, 3.0, 1.0, 2.0).statistic("p90"), None);
    }

    #[test]
    fn metric_math() {
        let a = BTreeMap::from([(0, 10.0), (60, 20.0)]);
        let b = BTreeMap::from([(0, 5.0)]);
        let s = HashMap::from([("a", a), ("b", b)]);
        assert_eq!(expression("100 * b / a", &s), Ok(Value::Series(BTreeMap::from([(0, 50.0)]))));
        assert_eq!(expression("-(a - 10)", &s), Ok(Value::Series(BTreeMap::from([(0, 0.0), (60, -10.0)]))));
        assert!(expression("SUM(METRICS())", &s).is_err());
    }
}
