//! Reporters: render the rollout's events on stderr — plain timestamped lines (CI logs), JSON
//! lines (`--log-format json`, one object per line for CloudWatch Logs), or a live progress line on
//! a terminal.

use std::io::Write;
use std::time::{Duration, Instant};

use crate::model::Verdict;
use crate::rollout::events::{Event, Sink};

/// Plain lines with the time since the start; gate readings only when they change.
pub struct PlainReporter<W: Write> {
    out: W,
    start: Instant,
    seen: Seen,
}

impl<W: Write> PlainReporter<W> {
    pub fn new(out: W) -> Self {
        PlainReporter { out, start: Instant::now(), seen: Seen::new() }
    }

    fn line(&mut self, text: &str) {
        let t = self.start.elapsed().as_secs_f64();
        let _ = writeln!(self.out, "[{t:7.1}s] {}", crate::terminal::clean(text));
    }
}

/// What was last said, so that repeated readings are not said again.
#[derive(Default)]
struct Seen {
    gates: Vec<(String, Verdict, String)>,
    /// The stage a hold was last said for, until the stage bakes or moves.
    held: Option<usize>,
    /// Verdicts in colour (a terminal, without NO_COLOR).
    colour: bool,
}

impl Seen {
    fn new() -> Seen {
        Seen { colour: super::colour(), ..Seen::default() }
    }
}

/// What makes a reading worth a new line: its verdict and detail — for the observed split, whose
/// shares move every poll, its verdict only.
fn said(r: &crate::model::Reading) -> (String, Verdict, String) {
    let detail = if r.gate == crate::observe::OBSERVE { String::new() } else { r.detail.clone() };
    (r.gate.clone(), r.verdict, detail)
}

/// The text line of an event, or `None` when it is not worth a line.
fn describe(event: &Event, seen: &mut Seen) -> Option<String> {
    let Seen { gates: last_gates, held: last_held, colour } = seen;
    Some(match event {
        Event::Started { profile, from, to, stages, resume_at, routes, dns_ttl_secs } => {
            let stages: Vec<String> = stages.iter().map(|s| format!("{s}%")).collect();
            let mut s = format!(
                "rollout of profile {profile}: {from} → {to} in stages {} ({} route(s))",
                stages.join(" → "),
                routes.len()
            );
            match resume_at {
                Some(0) => s.push_str(", taking over before the first shift"),
                Some(stage) => s.push_str(&format!(", resuming at stage {stage}")),
                None => {}
            }
            if let Some(ttl) = dns_ttl_secs {
                s.push_str(&format!(
                    "; each stage bakes at least {ttl}s, the records' DNS TTL (resolvers answer from cache that long; [observe] verifies a shift instead)"
                ));
            }
            s
        }
        Event::GatesRead { stage, readings, fails } => {
            let now: Vec<(String, Verdict, String)> = readings.iter().map(said).collect();
            if now == *last_gates {
                return None;
            }
            *last_gates = now;
            let where_ = if *stage == 0 { "before the first shift".to_string() } else { format!("stage {stage}") };
            let parts: Vec<String> = readings
                .iter()
                .map(|r| {
                    let n = fails.get(&r.gate).copied().unwrap_or(0);
                    // A shadow gate's failures are never counted toward failure_threshold.
                    let count = if r.verdict == Verdict::Fail && !r.shadow {
                        format!(" ({n} in a row)")
                    } else {
                        String::new()
                    };
                    let shadow = if r.shadow { " (shadow)" } else { "" };
                    format!("{}{shadow} {}{count}: {}", r.gate, super::verdict_word(r.verdict, *colour), r.detail)
                })
                .collect();
            if parts.is_empty() {
                return None;
            }
            // One line while it fits 100 columns (with the timestamp); else a reading a line, the
            // first on the heading's line, the others under it.
            let line = format!("gates {where_}: {}", parts.join("; "));
            if line.chars().count() + 11 <= 100 {
                line
            } else {
                format!("gates {where_}: {}", parts.join(";\n           "))
            }
        }
        Event::Baking { .. } => {
            *last_held = None;
            return None;
        }
        Event::Held { stage, reason, left } => {
            // Once when a hold begins, not every poll: the gate lines say what changes.
            if *last_held == Some(*stage) {
                return None;
            }
            *last_held = Some(*stage);
            let where_ = if *stage == 0 { "before the first shift".to_string() } else { format!("at stage {stage}") };
            format!("held {where_} (max_hold in {}s): {reason}", left.as_secs())
        }
        Event::StageApplied { stage, stages, side, percent, routes, .. } => {
            // A new stage: its first reading is said whatever the last one was.
            *last_held = None;
            last_gates.clear();
            let w: Vec<String> =
                routes.iter().map(|r| format!("{} {}:{}", r.name, r.weights.blue, r.weights.green)).collect();
            format!("stage {stage}/{stages}: {side} {percent}% applied ({})", w.join(", "))
        }
        Event::StageResumed { stage, stages, side, percent } => {
            format!("stage {stage}/{stages}: {side} {percent}% is live; baking it again")
        }
        Event::StageBaked { stage, stages, percent } => format!("stage {stage}/{stages} ({percent}%) baked"),
        Event::RollingBack { to, reason } => format!("ROLLING BACK: all traffic to {to} ({reason})"),
        Event::Retrying { what, error } => format!("could not {what} this time, trying again: {error}"),
        Event::RolledBack { to, .. } => format!("rolled back: all traffic on {to}"),
        Event::Frozen { stage, reason } => {
            let where_ = if *stage == 0 { "before the first shift".to_string() } else { format!("at stage {stage}") };
            format!("FROZEN {where_}, held at its weight: {reason}")
        }
        Event::FreezeOverridden { reason, by, .. } => format!("change freeze overridden by {by}: {reason}"),
        Event::Shadow { note } => {
            format!("shadow {} {} at stage {} (nothing done): {}", note.gate, note.would, note.stage, note.reading)
        }
        Event::Halted { .. }
        | Event::Completed { .. }
        | Event::Rollback { .. }
        | Event::Set { .. }
        | Event::Promoted { .. }
        | Event::PauseChanged { .. } => return None,
        Event::Ended { outcome, reason } => match reason {
            Some(r) => format!("ended: {} — {r}", serde_json::to_value(outcome).ok()?.as_str()?),
            None => format!("ended: {}", serde_json::to_value(outcome).ok()?.as_str()?),
        },
    })
}

impl<W: Write> Sink for PlainReporter<W> {
    fn event(&mut self, event: &Event) {
        if let Some(text) = describe(event, &mut self.seen) {
            self.line(&text);
        }
    }
}

/// One JSON object per event, with a timestamp.
pub struct JsonReporter<W: Write> {
    out: W,
}

impl<W: Write> JsonReporter<W> {
    pub fn new(out: W) -> Self {
        JsonReporter { out }
    }
}

impl<W: Write> Sink for JsonReporter<W> {
    fn event(&mut self, event: &Event) {
        let mut v = serde_json::to_value(event).unwrap_or_default();
        if let Some(obj) = v.as_object_mut() {
            obj.insert(
                "ts".into(),
                serde_json::Value::String(humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string()),
            );
        }
        let _ = writeln!(self.out, "{v}");
    }
}

/// A live line on a terminal: stage, split, bake countdown and each gate's last reading; the
/// milestones scroll above it.
pub struct ProgressReporter {
    bar: indicatif::ProgressBar,
    seen: Seen,
    stage: String,
    gates: String,
}

impl ProgressReporter {
    pub fn new() -> ProgressReporter {
        let bar = indicatif::ProgressBar::new_spinner();
        bar.set_style(
            indicatif::ProgressStyle::with_template("{spinner} {elapsed_precise} {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
        );
        bar.enable_steady_tick(Duration::from_millis(120));
        ProgressReporter { bar, seen: Seen::new(), stage: "pre-checks".into(), gates: String::new() }
    }
}

impl Default for ProgressReporter {
    fn default() -> Self {
        Self::new()
    }
}

impl Sink for ProgressReporter {
    fn event(&mut self, event: &Event) {
        match event {
            Event::GatesRead { readings, .. } => {
                // The observed split is shown with its shares: it is what the live line is for.
                self.gates = readings
                    .iter()
                    .map(|r| {
                        if r.gate == crate::observe::OBSERVE {
                            format!("{} {} ({})", r.gate, r.verdict, r.detail)
                        } else {
                            format!("{} {}", r.gate, r.verdict)
                        }
                    })
                    .collect::<Vec<_>>()
                    .join(" · ");
            }
            Event::Baking { stage, remaining } => {
                self.stage = format!("stage {stage}: baking, {}s left", remaining.as_secs());
            }
            Event::Held { stage, left, .. } => {
                self.stage = format!("stage {stage}: HELD ({}s to max_hold)", left.as_secs());
            }
            Event::StageApplied { stage, stages, side, percent, .. } => {
                self.stage = format!("stage {stage}/{stages}: {side} {percent}%");
            }
            _ => {}
        }
        if let Some(line) = describe(event, &mut self.seen) {
            self.bar.println(crate::terminal::clean(&line));
        }
        if matches!(event, Event::Ended { .. }) {
            self.bar.finish_and_clear();
        } else {
            self.bar.set_message(crate::terminal::clean(&format!("{} | {}", self.stage, self.gates)).into_owned());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Reading;

    #[test]
    fn gate_readings_that_do_not_fit_100_columns_go_a_reading_a_line() {
        let mut out = Vec::new();
        {
            let mut r = PlainReporter::new(&mut out);
            let readings = (1..=4)
                .map(|i| Reading::new(&format!("alarm#{i}"), Verdict::Pass, format!("1 OK: myapp-green-check-{i}")))
                .collect();
            r.event(&Event::GatesRead { stage: 2, readings, fails: Default::default() });
        }
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("gates stage 2: alarm#1 PASS: 1 OK: myapp-green-check-1;\n"), "{text}");
        assert_eq!(text.lines().count(), 4, "{text}");
        for line in text.lines() {
            assert!(line.chars().count() <= 100, "{line:?}");
        }
    }
}
