//! What commands print: each result is one struct that is both `Display` (text on stdout) and
//! `Serialize` (`-o json`: one JSON document on stdout). [`reporters`] render the progress of a
//! run on stderr.

pub mod reporters;

use std::fmt;

use serde::Serialize;

use crate::model::{Percent, Reading, RouteKind, RouteView, Side, Weights, fmt_pct};
use crate::profile::Profile;
use crate::rollout::ledger::{RolloutState, RouteWeights, Status, fmt_ms};
use crate::rollout::outcome::{End, Outcome};
use crate::splitter::{RouteChange, RouteLive};
use crate::terminal::one_line;
use crate::weights::choose_weights;

pub use crate::model::Shares;

/// Whether stderr takes colour: a terminal, and `NO_COLOR` unset or empty (no-color.org).
pub fn colour() -> bool {
    use std::io::IsTerminal;
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// A gate verdict as a terminal shows it: PASS green, FAIL red, WAIT (held) yellow.
pub fn verdict_word(v: crate::model::Verdict, colour: bool) -> String {
    let word = v.to_string().to_uppercase();
    if !colour {
        return word;
    }
    let code = match v {
        crate::model::Verdict::Pass => "32",
        crate::model::Verdict::Fail => "31",
        crate::model::Verdict::Wait => "33",
        crate::model::Verdict::Pending => "36",
        crate::model::Verdict::Frozen => "34",
    };
    format!("\u{1b}[{code}m{word}\u{1b}[0m")
}

/// Writes `text` to stdout. A closed stdout (`| head -1`) ends the output quietly: the reader has
/// what it wanted, and a traffic change is never failed over it.
pub fn out(text: impl fmt::Display) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    // Control characters of strings cutover did not write itself are escaped (crate::terminal).
    let text = text.to_string();
    if let Err(e) = write!(stdout, "{}", crate::terminal::clean(&text)).and_then(|()| stdout.flush())
        && e.kind() != std::io::ErrorKind::BrokenPipe
    {
        eprintln!("error: cannot write the result: {e}");
    }
}

/// One route's split.
#[derive(Clone, Debug, Serialize)]
pub struct RouteReport {
    pub kind: RouteKind,
    pub name: String,
    pub weights: Weights,
    pub percent: Shares,
    /// Route53 routes with a preview record: the side it points at (`null`: neither).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preview: Option<Option<Side>>,
    /// With `[observe]`: the shares of the requests each side received over the window; `null`
    /// without `[observe]`, for a route whose requests cannot be counted, or without requests.
    pub observed: Option<Shares>,
    /// With `[observe]`: the minutes the observed shares are of (`14:03–14:05`, UTC), or why
    /// there are none (nothing counted, nothing published yet).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub observed_minutes: Option<String>,
    /// A Route53 route's DNS TTL: clients may follow a change of its weights this late, so an
    /// observed split may lag the configured one by as much.
    #[serde(skip)]
    pub lag: Option<std::time::Duration>,
    /// With `[rollout] safety_net`: the Route53 health check cutover attached to a side's record.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub safety_net: Option<SafetyNetView>,
}

/// A safety-net health check attached to a record, as `status` shows it.
#[derive(Clone, Debug, Serialize)]
pub struct SafetyNetView {
    pub side: Side,
    pub health_check_id: String,
    /// Not where the net belongs: no rollout runs, the side is not its candidate, or the profile
    /// has `safety_net` off. The next ending (or rollout) takes it off.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub stray: bool,
}

/// A cutover health check on a record of the profile: `status -o json`'s `safety_net` list.
#[derive(Clone, Debug, Serialize)]
pub struct NetCheck {
    pub id: String,
    pub record: String,
    pub side: Side,
    pub stray: bool,
}

impl From<&RouteLive> for RouteReport {
    fn from(r: &RouteLive) -> RouteReport {
        RouteReport {
            kind: r.kind,
            name: r.name.clone(),
            weights: r.weights,
            percent: r.weights.into(),
            preview: r.route53().filter(|s| s.preview.is_some()).map(crate::splitter::route53::preview_side),
            observed: None,
            observed_minutes: None,
            lag: r.dns_ttl(),
            safety_net: None,
        }
    }
}

impl fmt::Display for RouteReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:<8}{:<44} {}  (weights {}:{})",
            self.kind.to_string(),
            self.name,
            self.percent,
            self.weights.blue,
            self.weights.green
        )?;
        match self.preview {
            Some(Some(side)) => write!(f, "\n          preview record → the {side} side")?,
            Some(None) => write!(f, "\n          preview record → neither side")?,
            None => {}
        }
        match (self.observed, &self.observed_minutes) {
            (Some(o), Some(m)) => {
                write!(f, "\n          observed: {o} of requests in {m} UTC")?;
                // What the clients did then, not what the weights say now: say so where they differ.
                let apart = Side::ALL.iter().any(|s| (o.get(*s) - self.percent.get(*s)).abs() > 1.0);
                if apart {
                    match self.lag {
                        Some(ttl) => write!(
                            f,
                            "\n          (what clients did then: they follow the weights up to the TTL, {}s, late)",
                            ttl.as_secs()
                        )?,
                        None => write!(f, "\n          (what clients did then, not what the weights say now)")?,
                    }
                }
            }
            (Some(o), None) => write!(f, "\n          observed: {o} of requests")?,
            (None, Some(why)) => write!(f, "\n          observed: {why}")?,
            (None, None) => {}
        }
        if let Some(n) = &self.safety_net {
            write!(f, "\n          safety net: health check {} on the {} record", n.health_check_id, n.side)?;
            if n.stray {
                write!(f, " (a stray: no rollout of this profile puts it there; the next ending takes it off)")?;
            }
        }
        Ok(())
    }
}

/// `cutover status`.
#[derive(Debug, Serialize)]
pub struct StatusReport {
    pub profile: String,
    /// The recorded rollout's id (null without a `[state]` table or a recorded rollout).
    pub rollout_id: Option<String>,
    /// The side holding all traffic on every route, or null while traffic is split.
    pub live: Option<Side>,
    pub routes: Vec<RouteReport>,
    /// The recorded rollout; null without a `[state]` table or a rollout. `{"error": …}` when the
    /// state could not be read.
    pub rollout: Option<serde_json::Value>,
    /// The routes of the profile hold different splits: no command leaves them so (a run was
    /// cut short, or someone changed one by hand).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drift: Option<String>,
    /// Every cutover health check found on the routes' records, strays included.
    pub safety_net: Vec<NetCheck>,
}

impl StatusReport {
    /// Whether the routes disagree, said in a sentence.
    pub fn disagreement(routes: &[RouteReport]) -> Option<String> {
        let first = routes.first()?;
        let differs = |r: &&RouteReport| (r.percent.green - first.percent.green).abs() > 0.5;
        routes.iter().any(|r| differs(&r)).then(|| {
            let splits: Vec<String> =
                routes.iter().map(|r| format!("{} green {}%", r.name, fmt_pct(r.percent.green))).collect();
            format!(
                "the routes hold different splits ({}): a run was cut short, or one was changed by hand",
                splits.join(", ")
            )
        })
    }
}

impl fmt::Display for StatusReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "profile {}", self.profile)?;
        match self.live {
            Some(side) => writeln!(f, "live: {side} (all traffic)")?,
            None => writeln!(f, "live: none — traffic is split between blue and green")?,
        }
        if let Some(d) = &self.drift {
            writeln!(f, "DRIFT: {d}")?;
        }
        for r in &self.routes {
            writeln!(f, "  {r}")?;
        }
        match &self.rollout {
            None => writeln!(f, "rollout: none")?,
            Some(r) if r.get("error").is_some() => {
                writeln!(f, "rollout: state unreadable: {}", r["error"].as_str().unwrap_or("?"))?
            }
            Some(r) => match serde_json::from_value::<RolloutView>(r.clone()) {
                Ok(view) => write!(f, "{view}")?,
                Err(_) => writeln!(f, "rollout: {r}")?,
            },
        }
        Ok(())
    }
}

/// The recorded rollout, as `status` and the state commands show it.
#[derive(Clone, Debug, Serialize, serde::Deserialize)]
pub struct RolloutView {
    /// Tells one rollout of the profile from the next: its audit entries carry it.
    #[serde(default)]
    pub id: String,
    pub stable: Side,
    pub candidate: Side,
    pub status: Status,
    pub stage: usize,
    pub stages: usize,
    pub percent: Percent,
    pub stage_reached_at: String,
    pub started_at: String,
    pub lease_holder: Option<String>,
    pub lease_expires_at: Option<String>,
    /// Writes claimed and possibly still landing.
    pub open_claims: usize,
    /// Where the live split stands against the rollout (`status` only): a stage, a write that was
    /// cut short (the next run finishes it), or drift.
    pub position: Option<String>,
    pub version: u64,
    pub reason: Option<String>,
    /// What makes the recorded rollout one no cutover could have written (`stage 99 of 2`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

impl RolloutView {
    pub fn of(s: &RolloutState, now_ms: u64) -> RolloutView {
        let lease = s.lease.as_ref().filter(|l| l.expires_ms > now_ms);
        RolloutView {
            id: s.id.clone(),
            stable: s.stable,
            candidate: s.candidate,
            status: s.status,
            stage: s.progress.stage,
            stages: s.stages.len(),
            percent: s.percent(),
            stage_reached_at: fmt_ms(s.progress.stage_reached_ms),
            started_at: fmt_ms(s.started_ms),
            lease_holder: lease.map(|l| l.holder.clone()),
            lease_expires_at: lease.map(|l| fmt_ms(l.expires_ms)),
            open_claims: s.open_claims(now_ms).count(),
            position: None,
            version: s.version,
            reason: s.reason.clone(),
            problem: s.problem_at(now_ms),
        }
    }
}

impl fmt::Display for RolloutView {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // An ended rollout's item already names the next one's sides: completed, the candidate
        // became the stable side; aborted, the stable side has all traffic back.
        match self.status {
            Status::Completed => writeln!(
                f,
                "rollout: {} → {} completed at {}: all traffic on {}, now the stable side",
                self.candidate, self.stable, self.stage_reached_at, self.stable
            )?,
            Status::Aborted => writeln!(
                f,
                "rollout: {} → {} aborted at {}: all traffic back on {}",
                self.stable, self.candidate, self.stage_reached_at, self.stable
            )?,
            Status::Progressing | Status::Paused => writeln!(
                f,
                "rollout: {} → {}, {}, stage {}/{} ({} {}%) since {}",
                self.stable,
                self.candidate,
                self.status,
                self.stage,
                self.stages,
                self.candidate,
                self.percent,
                self.stage_reached_at
            )?,
        }
        if !self.id.is_empty() {
            writeln!(f, "  rollout id: {}", one_line(&self.id))?;
        }
        if let Some(p) = &self.problem {
            writeln!(
                f,
                "  UNSOUND: {} (no cutover writes this; `cutover rollback` records a sound state)",
                one_line(p)
            )?;
        }
        if let Some(p) = &self.position {
            writeln!(f, "  traffic: {p}")?;
        }
        if let (Some(h), Some(until)) = (&self.lease_holder, &self.lease_expires_at) {
            writeln!(f, "  lease: {} until {until}", one_line(h))?;
        }
        if self.open_claims > 0 {
            writeln!(f, "  writes in flight: {}", self.open_claims)?;
        }
        if let Some(r) = &self.reason {
            writeln!(f, "  why: {}", one_line(r))?;
        }
        Ok(())
    }
}

/// The result of `cutover rollout`: where the run left things, for which profile, how long it took.
#[derive(Debug, Serialize)]
pub struct RolloutReport {
    pub profile: String,
    #[serde(flatten)]
    pub end: End,
    pub elapsed_secs: f64,
}

impl RolloutReport {
    pub fn new(profile: &str, end: End, elapsed_secs: f64) -> RolloutReport {
        RolloutReport { profile: profile.to_string(), end, elapsed_secs }
    }

    pub fn exit_code(&self) -> i32 {
        self.end.exit_code
    }
}

impl fmt::Display for RolloutReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let e = &self.end;
        let headline = match e.outcome {
            Outcome::Completed => format!("rollout completed: all traffic on {}", e.to),
            Outcome::NothingToDo => format!("nothing to do: all traffic is already on {}", e.to),
            Outcome::RolledBack => format!("ROLLED BACK: all traffic on {} again", e.from),
            Outcome::Paused => {
                format!("PAUSED at stage {}/{}: {} {}% (traffic left there)", e.stage, e.stages, e.to, e.percent)
            }
            Outcome::Held if e.stage == 0 => {
                format!("HELD before the first shift: all traffic still on {}", e.from)
            }
            Outcome::Held => {
                format!("HELD at stage {}/{}: {} {}% (traffic left there)", e.stage, e.stages, e.to, e.percent)
            }
            Outcome::Interrupted if e.percent == Percent::ZERO => {
                format!("INTERRUPTED: all traffic on {}", e.from)
            }
            Outcome::Interrupted => {
                format!("INTERRUPTED at stage {}/{}: {} {}% (traffic left there)", e.stage, e.stages, e.to, e.percent)
            }
        };
        writeln!(f, "{headline}  [profile {}, {:.1}s, exit {}]", self.profile, self.elapsed_secs, e.exit_code)?;
        if let Some(r) = &e.reason {
            writeln!(f, "  why: {r}")?;
        }
        for r in &e.routes {
            writeln!(f, "  {:<8}{:<44} {}", r.kind.to_string(), r.name, r.weights)?;
        }
        if !e.shadow.is_empty() {
            writeln!(f, "  shadow gates (read, never acted on):")?;
            for s in &e.shadow {
                writeln!(f, "    {} {} at stage {}: {}", s.gate, s.would, s.stage, s.reading)?;
            }
        }
        Ok(())
    }
}

/// The result of a state command (`advance`, `rollback`, `promote`, `pause`, `resume`): what
/// happened, in a sentence, and the state after.
#[derive(Debug, Serialize)]
pub struct StepReport {
    pub profile: String,
    pub command: &'static str,
    /// What was done.
    pub action: crate::rollout::outcome::Action,
    pub message: String,
    pub exit_code: i32,
    /// The split before, when this command moved traffic.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub before: Vec<RouteView>,
    pub routes: Vec<RouteView>,
    pub rollout: Option<RolloutView>,
    pub readings: Vec<Reading>,
    /// How long the traffic writes took, when the command made any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub elapsed_ms: Option<u128>,
    /// After a rollback: how long clients may still reach the other side.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drain: Option<Drain>,
    /// What the shadow gates would have done (`advance`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub shadow: Vec<crate::rollout::decide::Shadow>,
}

/// After a rollback: how long clients may still send traffic to the side it left, and — with
/// `rollback --wait` — when the observed traffic had really left it.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Drain {
    /// The side traffic was taken off.
    pub from: Option<Side>,
    /// Route53 routes that gave it traffic: the longest DNS TTL resolvers may still answer from.
    pub dns_ttl_secs: Option<u64>,
    /// `--wait`: seconds from the end of the writes until its observed share was at most 1 %.
    pub drained_after_secs: Option<f64>,
    /// `--wait`: its observed share of requests at the end (the highest of any route).
    pub observed_percent: Option<f64>,
}

impl fmt::Display for Drain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let side = self.from.map(|s| s.to_string()).unwrap_or_else(|| "the other side".into());
        if let Some(ttl) = self.dns_ttl_secs {
            writeln!(f, "  DNS: resolvers may still send clients to {side} for up to {ttl}s (the records' TTL)")?;
        }
        if let Some(secs) = self.drained_after_secs {
            let pct = self.observed_percent.map(fmt_pct).unwrap_or_else(|| "0".into());
            writeln!(f, "  traffic has left {side}: {pct}% of requests observed there, {secs:.1}s after the writes")?;
        }
        Ok(())
    }
}

impl fmt::Display for StepReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}: {}", self.command, self.message)?;
        if let Some(d) = &self.drain {
            write!(f, "{d}")?;
        }
        for r in &self.routes {
            match self.before.iter().find(|b| b.name == r.name && b.kind == r.kind) {
                // Two lines, to fit 100 columns: the route, then its move.
                Some(b) if b.weights != r.weights => {
                    writeln!(f, "  {:<8}{}\n          {}  →  {}", r.kind.to_string(), r.name, b.weights, r.weights)?
                }
                _ => writeln!(f, "  {:<8}{:<44} {}", r.kind.to_string(), r.name, r.weights)?,
            }
        }
        if let Some(r) = &self.rollout {
            write!(f, "{r}")?;
        }
        for s in &self.shadow {
            writeln!(f, "  shadow {} {} at stage {} (nothing done): {}", s.gate, s.would, s.stage, s.reading)?;
        }
        Ok(())
    }
}

/// `history` output.
#[derive(Debug, Serialize)]
pub struct HistoryReport {
    pub profile: String,
    pub entries: Vec<crate::state::AuditEntry>,
}

impl fmt::Display for HistoryReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.entries.is_empty() {
            return writeln!(f, "no cutovers recorded for profile {}", self.profile);
        }
        for e in &self.entries {
            let split =
                |w: &[RouteWeights]| w.first().map(|w| format!("{}:{}", w.blue, w.green)).unwrap_or_else(|| "-".into());
            write!(
                f,
                "{}  {:<16}  {:<12} {:>7} → {:<7} {}",
                one_line(&e.at),
                one_line(e.rollout_id.as_deref().unwrap_or("-")),
                one_line(&e.action),
                split(&e.before),
                split(&e.after),
                one_line(&e.actor)
            )?;
            if let Some(note) = &e.actor_note {
                write!(f, " (CUTOVER_ACTOR: {})", one_line(note))?;
            }
            if let Some(w) = &e.why {
                write!(f, "  ({})", one_line(w))?;
            }
            if let Some(r) = &e.reason {
                write!(f, "  reason: {}", one_line(r))?;
            }
            writeln!(f)?;
        }
        Ok(())
    }
}

/// One route's move, before and after.
#[derive(Debug, Serialize)]
pub struct RouteChangeReport {
    pub kind: RouteKind,
    pub name: String,
    pub before: RouteSplit,
    pub after: RouteSplit,
    /// Whether the weights give exactly the percentage asked for.
    pub exact: bool,
    /// The exact API edits (made, or with `--dry-run` that would be made).
    pub changes: Vec<String>,
}

#[derive(Clone, Copy, Debug, Serialize)]
pub struct RouteSplit {
    pub weights: Weights,
    pub percent: Shares,
}

impl From<Weights> for RouteSplit {
    fn from(w: Weights) -> RouteSplit {
        RouteSplit { weights: w, percent: w.into() }
    }
}

/// `cutover set` and `cutover rollback --to`.
#[derive(Debug, Serialize)]
pub struct ChangeReport {
    pub profile: String,
    pub command: &'static str,
    pub dry_run: bool,
    pub side: Side,
    pub percent: Percent,
    /// Whether any weight was (or with `--dry-run` would be) written.
    pub changed: bool,
    pub routes: Vec<RouteChangeReport>,
    /// The side holding all traffic afterwards, or null while split.
    pub live: Option<Side>,
    pub elapsed_ms: u128,
    /// `rollback`: how long clients may still reach the other side.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drain: Option<Drain>,
}

impl ChangeReport {
    pub fn new(
        profile: &str,
        command: &'static str,
        side: Side,
        percent: Percent,
        changes: &[RouteChange],
        dry_run: bool,
    ) -> ChangeReport {
        let routes: Vec<RouteChangeReport> = changes
            .iter()
            .map(|c| RouteChangeReport {
                kind: c.route.kind,
                name: c.route.name.clone(),
                before: c.route.weights.into(),
                after: c.to.into(),
                exact: c.exact,
                changes: c.describe(),
            })
            .collect();
        let after: Vec<Weights> = changes.iter().map(|c| c.to).collect();
        let live = crate::model::sole_side(after.iter().copied());
        ChangeReport {
            profile: profile.to_string(),
            command,
            dry_run,
            side,
            percent,
            changed: changes.iter().any(|c| !c.is_noop()),
            routes,
            live,
            elapsed_ms: 0,
            drain: None,
        }
    }
}

impl ChangeReport {
    /// The change as a plan, shown before it is made (and before a question): what will move,
    /// route by route. Nothing in it says "done".
    pub fn plan(&self) -> String {
        let what = if self.command == "rollback" {
            format!("move all traffic to {}", self.side)
        } else {
            format!("set {}={}%", self.side, self.percent)
        };
        let mut s = format!("will {what} on profile {}:\n", self.profile);
        for r in self.routes.iter().filter(|r| r.before.weights != r.after.weights) {
            s.push_str(&format!(
                "  {:<8}{}\n          {}  →  {}  (weights {}:{})\n",
                r.kind.to_string(),
                r.name,
                r.before.percent,
                r.after.percent,
                r.after.weights.blue,
                r.after.weights.green
            ));
        }
        s
    }
}

impl fmt::Display for ChangeReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = if self.command == "rollback" {
            format!("to {}", self.side)
        } else {
            format!("{}={}%", self.side, self.percent)
        };
        if !self.changed {
            writeln!(f, "{} {what} on profile {}: already there, nothing to change", self.command, self.profile)?;
        } else if self.dry_run {
            writeln!(
                f,
                "dry run: {} {what} on profile {} would make these changes (none made):",
                self.command, self.profile
            )?;
        } else {
            writeln!(
                f,
                "{} {what} on profile {}: done in {:.2}s",
                self.command,
                self.profile,
                self.elapsed_ms as f64 / 1000.0
            )?;
        }
        for r in &self.routes {
            write!(f, "  {:<8}{}\n          {}  →  {}", r.kind.to_string(), r.name, r.before.percent, r.after.percent)?;
            write!(f, "  (weights {}:{})", r.after.weights.blue, r.after.weights.green)?;
            if !r.exact {
                write!(f, "  closest to {}% the weights allow", self.percent)?;
            }
            writeln!(f)?;
            if self.dry_run {
                for c in &r.changes {
                    writeln!(f, "      {c}")?;
                }
            }
        }
        if let Some(side) = self.live {
            writeln!(f, "{} all traffic on {side}", if self.dry_run { "would leave" } else { "now:" })?;
        }
        if let Some(d) = &self.drain {
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

/// One stage of the rollout as the weights it would write.
#[derive(Debug, Serialize)]
pub struct StagePlan {
    pub percent: Percent,
    pub weights: Vec<StageWeights>,
}

#[derive(Debug, Serialize)]
pub struct StageWeights {
    pub kind: RouteKind,
    pub weights: Weights,
    pub exact: bool,
}

#[derive(Debug, Serialize)]
pub struct GateReport {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// `shadow = true`: read, reported and audited, never acted on.
    pub shadow: bool,
    /// What the gate will do, where its type and names do not say it (a judge's test, a freeze's
    /// windows).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plan: Option<String>,
}

/// `cutover validate`.
#[derive(Debug, Serialize)]
pub struct ValidateReport {
    pub profile: String,
    pub path: String,
    pub description: Option<String>,
    pub valid: bool,
    pub live: Option<Side>,
    pub routes: Vec<RouteReport>,
    /// Toward the side that is not live (green when traffic is split).
    pub candidate: Side,
    pub stages: Vec<StagePlan>,
    /// Each stage's bake: `bake`, or the DNS TTL a Route53 stage must cover when longer.
    pub bake_secs: u64,
    pub poll_secs: f64,
    pub gates: Vec<GateReport>,
    /// `[observe]`: the tolerance, in percentage points, of the observed split.
    pub observe_tolerance: Option<f64>,
    pub safety_net: bool,
    pub state_table: Option<String>,
    pub sns_topic_arn: Option<String>,
}

impl ValidateReport {
    pub fn new(profile: &Profile, routes: &[RouteLive], live: Option<Side>) -> ValidateReport {
        ValidateReport::new_toward(profile, routes, live, live.map(Side::other).unwrap_or(Side::Green))
    }

    /// The plan of a rollout toward `candidate`.
    pub fn new_toward(profile: &Profile, routes: &[RouteLive], live: Option<Side>, candidate: Side) -> ValidateReport {
        let mut kinds: Vec<RouteKind> = routes.iter().map(|r| r.kind).collect();
        kinds.dedup();
        let stages = profile
            .rollout
            .stages
            .iter()
            .map(|&p| StagePlan {
                percent: p,
                weights: kinds
                    .iter()
                    .map(|&k| {
                        let c = choose_weights(candidate, p, k.max_weight());
                        StageWeights { kind: k, weights: c.weights, exact: c.exact }
                    })
                    .collect(),
            })
            .collect();
        ValidateReport {
            profile: profile.name.clone(),
            path: profile.path.display().to_string(),
            description: profile.description.clone(),
            valid: true,
            live,
            routes: routes.iter().map(RouteReport::from).collect(),
            candidate,
            stages,
            bake_secs: profile
                .rollout
                .bake
                .max(crate::observe::dns_floor(routes, profile.observe.is_some(), profile.dns_ttl))
                .as_secs(),
            poll_secs: profile.rollout.poll.as_secs_f64(),
            gates: profile
                .gates
                .iter()
                .map(|g| GateReport {
                    name: g.name.clone(),
                    kind: g.spec.type_name(),
                    shadow: g.shadow,
                    plan: g.spec.describe(),
                })
                .collect(),
            observe_tolerance: profile.observe.map(|o| o.tolerance),
            safety_net: profile.safety_net,
            state_table: profile.state.as_ref().map(|s| s.table.clone()),
            sns_topic_arn: profile.notify.sns_topic_arn.clone(),
        }
    }
}

impl fmt::Display for ValidateReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "profile {} ({}) is valid", self.profile, self.path)?;
        if let Some(d) = &self.description {
            writeln!(f, "  {d}")?;
        }
        writeln!(f, "routes (every resource found, read-only):")?;
        for r in &self.routes {
            writeln!(f, "  {r}")?;
        }
        writeln!(
            f,
            "a rollout would move {} → {}, baking {} per stage, gates read every {}:",
            self.candidate.other(),
            self.candidate,
            humantime::format_duration(std::time::Duration::from_secs(self.bake_secs)),
            humantime::format_duration(std::time::Duration::from_secs_f64(self.poll_secs))
        )?;
        for (i, s) in self.stages.iter().enumerate() {
            write!(f, "  stage {}: {} {}%", i + 1, self.candidate, s.percent)?;
            for w in &s.weights {
                write!(
                    f,
                    "  {} {}:{}{}",
                    w.kind,
                    w.weights.blue,
                    w.weights.green,
                    if w.exact { "" } else { " (closest)" }
                )?;
            }
            writeln!(f)?;
        }
        if self.gates.is_empty() {
            writeln!(f, "gates: none")?;
        } else {
            writeln!(f, "gates:")?;
            for g in &self.gates {
                let shadow = if g.shadow { ", shadow: read and reported, never acted on" } else { "" };
                match &g.plan {
                    Some(plan) => writeln!(f, "  {} ({}{shadow}): {plan}", g.name, g.kind)?,
                    None => writeln!(f, "  {} ({}{shadow})", g.name, g.kind)?,
                }
            }
        }
        if let Some(t) = self.observe_tolerance {
            writeln!(f, "observed split: a stage bakes once every route's observed share is within ±{t} points")?;
        }
        if self.safety_net {
            writeln!(
                f,
                "safety net: while a rollout runs, the {} records carry a health check on the alarms",
                self.candidate
            )?;
        }
        match &self.state_table {
            Some(t) => writeln!(f, "state table: {t}")?,
            None => writeln!(f, "state: {}", crate::state::local_lock::NOT_ACROSS_MACHINES)?,
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    //! The wording people read, snapshotted (insta): a change of it shows up in review.

    use super::*;

    fn route(kind: RouteKind, name: &str, blue: u32, green: u32) -> RouteReport {
        let weights = Weights::new(blue, green);
        RouteReport {
            kind,
            name: name.into(),
            weights,
            percent: weights.into(),
            preview: None,
            observed: None,
            observed_minutes: None,
            lag: None,
            safety_net: None,
        }
    }

    fn rollout(status: Status, stable: Side, stage: usize) -> RolloutView {
        RolloutView {
            id: "5f3c9a1e0b7d2468".into(),
            stable,
            candidate: stable.other(),
            status,
            stage,
            stages: 4,
            percent: "25".parse().unwrap(),
            stage_reached_at: "2026-12-01T10:00:00Z".into(),
            started_at: "2026-12-01T09:50:00Z".into(),
            lease_holder: None,
            lease_expires_at: None,
            open_claims: 0,
            position: Some("at stage 2, as recorded".into()),
            version: 7,
            reason: None,
            problem: None,
        }
    }

    #[test]
    fn status_while_split_with_the_observed_share_and_the_safety_net() {
        let mut r53 = route(crate::splitter::route53::KIND, "api.myapp.com. A", 75, 25);
        r53.observed = Some(Shares { blue: 81.2, green: 18.8 });
        r53.observed_minutes = Some("14:03–14:05".into());
        r53.lag = Some(std::time::Duration::from_secs(60));
        r53.safety_net = Some(SafetyNetView { side: Side::Green, health_check_id: "0f1e2d3c".into(), stray: false });
        let alb = route(crate::splitter::alb::KIND, "front/listener:443/default", 75, 25);
        let report = StatusReport {
            profile: "myapp".into(),
            rollout_id: Some("5f3c9a1e0b7d2468".into()),
            live: None,
            drift: StatusReport::disagreement(&[r53.clone(), alb.clone()]),
            routes: vec![r53, alb],
            rollout: Some(serde_json::to_value(rollout(Status::Progressing, Side::Blue, 2)).unwrap()),
            safety_net: Vec::new(),
        };
        let text = report.to_string();
        for line in text.lines() {
            assert!(line.chars().count() <= 100, "wider than 100 columns: {line:?}");
        }
        insta::assert_snapshot!(text);
    }

    #[test]
    fn an_ended_rollout_says_how_it_ended() {
        let done = rollout(Status::Completed, Side::Green, 4).to_string();
        let aborted = rollout(Status::Aborted, Side::Blue, 0).to_string();
        insta::assert_snapshot!(format!("{done}{aborted}"));
    }

    #[test]
    fn a_rollback_says_how_long_clients_may_lag_and_when_they_left() {
        let d = Drain {
            from: Some(Side::Green),
            dns_ttl_secs: Some(60),
            drained_after_secs: Some(74.25),
            observed_percent: Some(0.4),
        };
        insta::assert_snapshot!(d.to_string());
    }
}
