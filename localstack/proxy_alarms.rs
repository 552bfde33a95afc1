//! Metric alarms evaluated as CloudWatch evaluates them, from the kit's metric data (the switch
//! `Config::evaluate_alarms`, with `Config::metrics`; moto evaluates nothing).
//!
//! Every alarm made through the proxy with PutMetricAlarm on one metric (not metric math) is
//! evaluated once a minute of the kit's clock, at the minute: the evaluation range is the
//! `EvaluationPeriods` + 2 periods before that moment, of the data visible then (a load
//! balancer's last minutes are not published yet). As AWS documents it:
//!
//! - with at least `EvaluationPeriods` datapoints in the range, the most recent that many are
//!   judged: `ALARM` when at least `DatapointsToAlarm` breach the threshold, else `OK`;
//! - with fewer, the most recent `EvaluationPeriods` periods are judged with the missing ones
//!   filled as `TreatMissingData` says — `breaching`, `notBreaching`; `missing` and `ignore`
//!   count only the real datapoints;
//! - with none: `missing` (the default) → `INSUFFICIENT_DATA`, `ignore` → the state is kept,
//!   `breaching` → `ALARM`, `notBreaching` → `OK`.
//!
//! A change of state is written to moto with SetAlarmState and goes into the alarm's history
//! (DescribeAlarmHistory) with the reason and the datapoints judged, as AWS words them. Not
//! modelled: AWS's "premature transition" guard for data arriving late, anomaly-detection bands,
//! alarms on metric math.

use std::collections::BTreeMap;
use std::time::SystemTime;

use super::clock::{at_epoch, epoch};
use super::metrics::{SeriesKey, Store, members};

/// A metric alarm as PutMetricAlarm defined it.
#[derive(Clone, Debug, PartialEq)]
pub struct Definition {
    pub akid: String,
    pub region: String,
    pub name: String,
    pub metric: SeriesKey,
    /// `Statistic`, or `ExtendedStatistic` (`p99`).
    pub stat: String,
    pub unit: Option<String>,
    pub period: i64,
    pub evaluation_periods: usize,
    pub datapoints_to_alarm: usize,
    pub threshold: f64,
    pub comparison: String,
    pub treat_missing: String,
}

impl Definition {
    /// The alarm a PutMetricAlarm call defines; `None` for one the kit does not evaluate (metric
    /// math, anomaly bands).
    pub fn parse(params: &[(String, String)], account: &str, akid: &str, region: &str) -> Option<Definition> {
        let p = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        if p("Metrics.member.1.Id").is_some() || p("ThresholdMetricId").is_some() {
            return None;
        }
        let dims: Vec<(String, String)> = members(params, "Dimensions")
            .into_iter()
            .filter_map(|d| {
                let get = |k: &str| d.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string());
                Some((get("Name")?, get("Value")?))
            })
            .collect();
        let evaluation_periods: usize = p("EvaluationPeriods")?.parse().ok()?;
        Some(Definition {
            akid: akid.into(),
            region: region.into(),
            name: p("AlarmName")?,
            metric: SeriesKey::new(account, region, &p("Namespace")?, &p("MetricName")?, &dims),
            stat: p("Statistic").or_else(|| p("ExtendedStatistic"))?,
            unit: p("Unit"),
            period: p("Period")?.parse().ok()?,
            evaluation_periods,
            datapoints_to_alarm: p("DatapointsToAlarm").and_then(|d| d.parse().ok()).unwrap_or(evaluation_periods),
            threshold: p("Threshold")?.parse().ok()?,
            comparison: p("ComparisonOperator")?,
            treat_missing: p("TreatMissingData").unwrap_or_else(|| "missing".into()),
        })
    }

    fn breaches(&self, v: f64) -> bool {
        match self.comparison.as_str() {
            "GreaterThanThreshold" => v > self.threshold,
            "GreaterThanOrEqualToThreshold" => v >= self.threshold,
            "LessThanThreshold" => v < self.threshold,
            "LessThanOrEqualToThreshold" => v <= self.threshold,
            _ => false,
        }
    }

    fn relation(&self) -> &'static str {
        match self.comparison.as_str() {
            "GreaterThanThreshold" => "greater than",
            "GreaterThanOrEqualToThreshold" => "greater than or equal to",
            "LessThanThreshold" => "less than",
            _ => "less than or equal to",
        }
    }
}

/// An evaluation's outcome: the state, AWS's reason and its data (JSON).
#[derive(Clone, Debug, PartialEq)]
pub struct Verdict {
    /// `None`: the state is kept (`ignore` without data).
    pub state: Option<&'static str>,
    pub reason: String,
    pub data: String,
}

/// The alarm's state at `at` (a minute boundary), from the data visible then.
pub fn evaluate(def: &Definition, store: &Store, at: SystemTime) -> Verdict {
    let n = def.evaluation_periods.max(1);
    let range = n + 2;
    let end = epoch(at);
    let start = end - range as i64 * def.period;
    let buckets = store.buckets(&def.metric, def.unit.as_deref(), start, end, def.period, at);
    // Newest first: (period start, value).
    let real: Vec<(i64, f64)> = buckets.iter().rev().filter_map(|(t, s)| Some((*t, s.statistic(&def.stat)?))).collect();
    let stamp = |t: i64| super::metrics::format_time(at_epoch(t));
    let shown = |points: &[(i64, f64)]| {
        points.iter().map(|(t, v)| format!("{v} ({})", stamp(*t))).collect::<Vec<_>>().join(", ")
    };
    let data = |points: &[(i64, f64)]| {
        serde_json::json!({
            "version": "1.0",
            "queryDate": stamp(end),
            "startDate": stamp(start),
            "statistic": def.stat,
            "period": def.period,
            "recentDatapoints": points.iter().map(|(_, v)| *v).collect::<Vec<_>>(),
            "threshold": def.threshold,
            "evaluatedDatapoints": points.iter().map(|(t, v)| serde_json::json!({"timestamp": stamp(*t), "value": v})).collect::<Vec<_>>(),
        })
        .to_string()
    };
    if real.is_empty() {
        let (state, reason) = match def.treat_missing.as_str() {
            "breaching" => (
                Some("ALARM"),
                format!(
                    "Threshold Crossed: no datapoints were received for {n} periods and {n} missing datapoints were treated as [Breaching]."
                ),
            ),
            "notBreaching" => (
                Some("OK"),
                format!(
                    "Threshold Crossed: no datapoints were received for {n} periods and {n} missing datapoints were treated as [NonBreaching]."
                ),
            ),
            "ignore" => (None, "no datapoints: the state is kept (TreatMissingData ignore)".to_string()),
            _ => (
                Some("INSUFFICIENT_DATA"),
                format!(
                    "Insufficient Data: {n} datapoint{} {} unknown.",
                    if n == 1 { "" } else { "s" },
                    if n == 1 { "was" } else { "were" }
                ),
            ),
        };
        return Verdict { state, reason, data: data(&[]) };
    }
    let (judged, breaching, filled) = if real.len() >= n {
        let judged: Vec<(i64, f64)> = real[..n].to_vec();
        let b = judged.iter().filter(|(_, v)| def.breaches(*v)).count();
        (judged, b, 0)
    } else {
        // The most recent n periods; the missing ones filled per TreatMissingData.
        let periods: Vec<i64> = (0..n as i64).map(|k| end - (k + 1) * def.period).collect();
        let judged: Vec<(i64, f64)> = real.iter().filter(|(t, _)| periods.contains(t)).copied().collect();
        let missing = n - judged.len();
        let b = judged.iter().filter(|(_, v)| def.breaches(*v)).count();
        match def.treat_missing.as_str() {
            "breaching" => (judged, b + missing, missing),
            _ => (judged, b, 0),
        }
    };
    let m = def.datapoints_to_alarm.max(1);
    let state = if breaching >= m { "ALARM" } else { "OK" };
    let of = judged.len() + filled;
    let verb = if breaching == 1 { "was" } else { "were" };
    let reason = if state == "ALARM" {
        format!(
            "Threshold Crossed: {breaching} out of the last {of} datapoints [{}] {verb} {} the threshold ({}) (minimum {m} datapoint{} for OK -> ALARM transition).",
            shown(&judged),
            def.relation(),
            def.threshold,
            if m == 1 { "" } else { "s" }
        )
    } else {
        format!(
            "Threshold Crossed: {} datapoint{} [{}] {} not {} the threshold ({}).",
            judged.len() - breaching.min(judged.len()),
            if judged.len() - breaching.min(judged.len()) == 1 { "" } else { "s" },
            shown(&judged),
            if judged.len() - breaching.min(judged.len()) == 1 { "was" } else { "were" },
            def.relation(),
            def.threshold
        )
    };
    Verdict { state: Some(state), reason, data: data(&judged) }
}

/// The alarms of one proxy, by (access key, region, name).
pub type Definitions = BTreeMap<(String, String, String), Definition>;

#[cfg(test)]
mod tests {
    use super::super::metrics::{Publish, Stats};
    use super::*;

    fn def(n: usize, m: usize, treat: &str) -> Definition {
        Definition {
            akid: "test".into(),
            region: "us-west-2".into(),
            name: "a".into(),
            metric: SeriesKey::new(
                "1",
                "us-west-2",
                "AWS/ApplicationELB",
                "HTTPCode_Target_5XX_Count",
                &[("LoadBalancer", "app/x/1")],
            ),
            stat: "Sum".into(),
            unit: None,
            period: 60,
            evaluation_periods: n,
            datapoints_to_alarm: m,
            threshold: 10.0,
            comparison: "GreaterThanThreshold".into(),
            treat_missing: treat.into(),
        }
    }

    #[test]
    fn m_out_of_n_and_missing_data_as_documented() {
        let mut store = Store::default();
        let d = def(3, 2, "missing");
        let at = at_epoch(6000);
        assert_eq!(evaluate(&d, &store, at).state, Some("INSUFFICIENT_DATA"));
        assert_eq!(evaluate(&def(3, 2, "notBreaching"), &store, at).state, Some("OK"));
        assert_eq!(evaluate(&def(3, 2, "ignore"), &store, at).state, None);
        for (minute, errors) in [(5820, 20.0), (5880, 3.0), (5940, 30.0)] {
            store.publish(d.metric.clone(), minute, "Count", &Stats::repeated(1.0, errors), &Publish::Live);
        }
        let v = evaluate(&d, &store, at);
        assert_eq!(v.state, Some("ALARM"), "{v:?}");
        assert!(v.reason.contains("2 out of the last 3 datapoints"), "{v:?}");
        // Only two datapoints, the newest minute missing: breaching fills it.
        let mut store = Store::default();
        store.publish(d.metric.clone(), 5880, "Count", &Stats::repeated(1.0, 20.0), &Publish::Live);
        assert_eq!(evaluate(&d, &store, at).state, Some("OK"));
        assert_eq!(evaluate(&def(3, 2, "breaching"), &store, at).state, Some("ALARM"));
    }
}
