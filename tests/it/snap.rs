//! What cutover prints, made stable for snapshots: every name a scenario made unique (ARNs, zone
//! ids, load balancer and table names) becomes a label, and times, durations, ports and process
//! ids become placeholders. Text and JSON alike: a JSON document's values are redacted by key
//! (durations, timestamps) and its strings as text.

use std::sync::LazyLock;

use regex::Regex;

/// The placeholders, in the order they are applied.
static PATTERNS: LazyLock<Vec<(Regex, &'static str)>> = LazyLock::new(|| {
    [
        // A progress line's time since the start: `[   12.3s]`.
        (r"\[\s*\d+\.\ds\]", "[ T ]"),
        // RFC 3339 times, and the dates and times `history` prints.
        (r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", "[TIME]"),
        (r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d( UTC)?", "[TIME]"),
        // Durations measured, not configured: `0.31s`, `140ms`, how long a stage has baked, how
        // long a hold may last yet.
        (r"inconclusive for [0-9hmsun ]+ \(max_hold\)", "inconclusive for [DUR] (max_hold)"),
        (r"\b\d+(h|m|s|ms)( \d+(h|m|s|ms|us|ns))+\b", "[DUR]"),
        (r"\b\d+\.\d+s\b", "[DUR]"),
        (r"\b\d+ms\b", "[DUR]"),
        (r"baked [0-9hms ]+ of", "baked [DUR] of"),
        (r"max_hold in \d+s", "max_hold in [DUR]"),
        // Loopback ports and process ids.
        (r"127\.0\.0\.1:\d+", "127.0.0.1:[PORT]"),
        // A lease holder: `ACTOR on HOST pid N #RUN`.
        (r"\bon \S+ pid \d+ #[0-9a-f]+", "on [HOST] pid [PID] #[RUN]"),
        (r"\bpid \d+", "pid [PID]"),
        // Ids of rollouts, audit entries, Route53 changes, health checks.
        (r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b", "[UUID]"),
        (r"\bC[0-9A-Z]{12,}\b", "[CHANGE]"),
        // A rollout's id (the state item's `id`), as results, `status` and `history` name it.
        (r"\b[0-9a-f]{16}\b", "[ROLLOUT]"),
    ]
    .into_iter()
    .map(|(re, to)| (Regex::new(re).unwrap(), to))
    .collect()
});

/// The keys of a JSON document whose values are times or durations.
fn timed(key: &str) -> bool {
    key.ends_with("_secs") || key.ends_with("_ms") || key.ends_with("_at") || key.contains("elapsed")
}

/// A normaliser for one scenario's output.
#[derive(Default, Clone)]
pub struct Redact {
    /// (unique value, label), longest first.
    names: Vec<(String, String)>,
}

impl Redact {
    pub fn new() -> Redact {
        Redact::default()
    }

    /// `value` is printed as `label`.
    pub fn name(mut self, value: &str, label: &str) -> Self {
        if !value.is_empty() {
            self.names.push((value.to_string(), label.to_string()));
            self.names.sort_by_key(|(v, _)| std::cmp::Reverse(v.len()));
        }
        self
    }

    /// Each (value, label).
    pub fn names<S: AsRef<str>>(self, names: impl IntoIterator<Item = (S, &'static str)>) -> Self {
        names.into_iter().fold(self, |r, (v, l)| r.name(v.as_ref(), l))
    }

    /// Text with every name labelled and every time, duration, port and pid a placeholder.
    pub fn text(&self, text: &str) -> String {
        let mut out = text.to_string();
        for (value, label) in &self.names {
            out = out.replace(value.as_str(), label);
            // Route53 and ELB print DNS names in lower case.
            out = out.replace(&value.to_ascii_lowercase(), label);
        }
        for (re, to) in PATTERNS.iter() {
            out = re.replace_all(&out, *to).into_owned();
        }
        out
    }

    /// A JSON document cutover printed, pretty, with times and durations by key and every string
    /// redacted as text.
    pub fn json(&self, out: &str) -> String {
        let mut doc = crate::json(out);
        self.value(&mut doc, "");
        serde_json::to_string_pretty(&doc).unwrap()
    }

    fn value(&self, v: &mut serde_json::Value, key: &str) {
        use serde_json::Value;
        match v {
            Value::Object(map) => map.iter_mut().for_each(|(k, v)| self.value(v, k)),
            Value::Array(items) => items.iter_mut().for_each(|v| self.value(v, key)),
            Value::Number(_) if timed(key) => *v = Value::String("[DUR]".into()),
            Value::String(s) => *v = Value::String(self.text(s)),
            _ => {}
        }
    }
}
