//! What commands print: each result is one struct that is both `Display` (text on stdout) and
//! `Serialize` (`-o json`: one JSON document on stdout).

use std::fmt;

use serde::Serialize;

use crate::profile::Profile;
use crate::split::{Percent, Side, Weights, choose_weights, fmt_pct};
use crate::splitter::{RouteChange, RouteKind, RouteLive};

/// Both sides' share of traffic, in percent.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Shares {
    pub blue: f64,
    pub green: f64,
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
}

impl From<&RouteLive> for RouteReport {
    fn from(r: &RouteLive) -> RouteReport {
        RouteReport {
            kind: r.kind,
            name: r.name.clone(),
            weights: r.weights,
            percent: r.weights.into(),
            preview: r.has_preview().then(|| r.preview_side()),
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
            Some(Some(side)) => write!(f, "  preview → {side}"),
            Some(None) => write!(f, "  preview → neither side"),
            None => Ok(()),
        }
    }
}

/// `cutover status`.
#[derive(Debug, Serialize)]
pub struct StatusReport {
    pub profile: String,
    /// The stable side: without rollout state, the side holding all traffic, or null while split.
    pub live: Option<Side>,
    pub routes: Vec<RouteReport>,
    /// The rollout's state; null without a `[state]` table or a rollout.
    pub rollout: Option<serde_json::Value>,
}

impl fmt::Display for StatusReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "profile {}", self.profile)?;
        match self.live {
            Some(side) => writeln!(f, "live: {side} (all traffic)")?,
            None => writeln!(f, "live: none — traffic is split between blue and green")?,
        }
        for r in &self.routes {
            writeln!(f, "  {r}")?;
        }
        match &self.rollout {
            None => writeln!(f, "rollout: none")?,
            Some(r) if r.get("error").is_some() => {
                writeln!(f, "rollout: state unreadable: {}", r["error"].as_str().unwrap_or("?"))?
            }
            Some(r) => {
                let s = |k: &str| r[k].as_str().map(str::to_string).unwrap_or_else(|| r[k].to_string());
                writeln!(
                    f,
                    "rollout: {} → {}, {}, stage {}/{} ({} {}%) since {}",
                    s("stable"),
                    s("candidate"),
                    s("status"),
                    s("stage"),
                    s("stages"),
                    s("candidate"),
                    s("percent"),
                    s("stage_reached_at")
                )?;
                if let Some(h) = r["lease_holder"].as_str() {
                    writeln!(f, "  lease: {h} until {}", s("lease_expires_at"))?;
                }
                if let Some(why) = r["reason"].as_str() {
                    writeln!(f, "  why: {why}")?;
                }
            }
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
        let live = crate::split::sole_side(after.iter().copied());
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
        }
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
            write!(f, "  {:<8}{:<44} {}  →  {}", r.kind.to_string(), r.name, r.before.percent, r.after.percent)?;
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
        match self.live {
            Some(side) => writeln!(f, "{} all traffic on {side}", if self.dry_run { "would leave" } else { "now:" }),
            None => Ok(()),
        }
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
    pub bake_secs: u64,
    pub poll_secs: f64,
    pub gates: Vec<GateReport>,
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
            bake_secs: profile.rollout.bake.as_secs(),
            poll_secs: profile.rollout.poll.as_secs_f64(),
            gates: profile
                .gates
                .iter()
                .map(|g| GateReport { name: g.name.clone(), kind: g.kind.type_name() })
                .collect(),
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
            writeln!(
                f,
                "gates: {}",
                self.gates.iter().map(|g| format!("{} ({})", g.name, g.kind)).collect::<Vec<_>>().join(", ")
            )?;
        }
        if let Some(t) = &self.state_table {
            writeln!(f, "state table: {t}")?;
        }
        Ok(())
    }
}
