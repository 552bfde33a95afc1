//! The command line, as clap reads it. Nothing here acts: [`crate::app`] does.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

use crate::model::{Side, Split};

/// The documented exit codes, at the foot of `--help`.
const EXIT_CODES: &str = "\
Exit codes:
  0  done (advance: also not yet time, nothing to do)
  1  unexpected error (an AWS call failed after retries, the endpoint is unreachable)
  2  bad usage or invalid profile, or a prompt answered no; nothing was changed
  3  a gate failed: traffic rolled back to the stable side (or never moved off it)
  4  traffic may be split unexpectedly: a human must look
  5  another run holds the rollout, or the rollout changed under this run
  6  drift: the live weights are not what the rollout state says
  7  held: a gate is inconclusive, or the rollout is paused";

/// Blue/green traffic cutover on AWS: weighted Route53 records and ALB target-group weights,
/// shifted in stages, gated on health, rolled back in seconds.
#[derive(Debug, Parser)]
#[command(
    name = "cutover",
    version = concat!(env!("CARGO_PKG_VERSION"), " (", env!("CUTOVER_COMMIT"), ", built ", env!("CUTOVER_BUILD_DATE"), ")"),
    propagate_version = true,
    max_term_width = 100,
    after_help = EXIT_CODES
)]
pub struct Cli {
    /// Profile name (looked up in the profiles folder) or path to a profile file.
    #[arg(
        short = 'p',
        long,
        env = "CUTOVER_PROFILE",
        global = true,
        help_heading = "Global options",
        value_name = "NAME|PATH"
    )]
    pub profile: Option<String>,

    /// Folder of profiles named without a path [default: ./profiles, then
    /// $XDG_CONFIG_HOME/cutover/profiles].
    #[arg(long, env = "CUTOVER_PROFILES_DIR", global = true, help_heading = "Global options", value_name = "DIR")]
    pub profiles_dir: Option<PathBuf>,

    /// How the result is printed on stdout.
    #[arg(short = 'o', long, value_enum, default_value_t = OutputFormat::Text, global = true, help_heading = "Global options")]
    pub output: OutputFormat,

    /// Do not ask before moving traffic (set, rollback, promote; also after the command's name).
    #[arg(short = 'y', long, help_heading = "Global options")]
    pub yes: bool,

    /// More logging on stderr (-v: info, -vv: debug, -vvv: trace).
    #[arg(short = 'v', long, action = clap::ArgAction::Count, global = true, help_heading = "Global options")]
    pub verbose: u8,

    /// Format of progress and log lines on stderr.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true, help_heading = "Global options")]
    pub log_format: LogFormat,

    /// The AWS region, as the AWS CLI's `--region`: before AWS_REGION, ~/.aws/config and the
    /// profile's `region`.
    #[arg(long, global = true, help_heading = "Global options", value_name = "REGION", value_parser = non_empty_region)]
    pub region: Option<String>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Text,
    Json,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// `iam-policy --for COMMAND`: the policy of a one-off command.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum PolicyFor {
    /// `cutover state init`: CreateTable and DescribeTable on the `[state]` table.
    StateInit,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum OnInterruptArg {
    /// All traffic back to the stable side.
    Rollback,
    /// Leave traffic at the stage reached.
    Leave,
}

#[derive(Debug, Subcommand)]
pub enum StateCommand {
    /// Create the `[state]` table (idempotent).
    Init {
        /// Say whether the table would be created, and create nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Parse the profile, resolve every AWS resource it names (read-only) and print the plan.
    Validate,
    /// Show each route's current weights and percentages, and the live side.
    #[command(display_order = 1)]
    Status {
        /// Redraw every `--interval` until the rollout ends (or Ctrl-C): routes, stage, bake, gates.
        #[arg(short = 'w', long)]
        watch: bool,
        /// How often `--watch` redraws.
        #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = parse_interval, requires = "watch")]
        interval: std::time::Duration,
    },
    /// Move traffic to one split, e.g. `set green=25`.
    Set {
        /// Do not ask before moving traffic from a terminal.
        #[arg(short = 'y', long = "yes", id = "command_yes")]
        yes: bool,
        /// SIDE=PERCENT: the share of traffic the side gets (the other side gets the rest).
        #[arg(value_name = "SIDE=PERCENT", value_parser = clap::value_parser!(Split))]
        split: Split,
        /// Print exactly the changes that would be made, and make none.
        #[arg(long)]
        dry_run: bool,
        /// Do not read the gates before shifting.
        #[arg(long)]
        no_gates: bool,
        /// Point stale weighted alias records at their side's current ingress ALB, in the same batch.
        #[arg(long)]
        repoint: bool,
        /// Set the split although a rollout is in progress or paused: the rollout is aborted
        /// (recorded in the audit trail) and its writes in flight are overridden.
        #[arg(long)]
        force: bool,
        /// Move traffic although a `freeze` gate's calendar is closed (recorded in the audit
        /// trail with the caller).
        #[arg(long, value_name = "REASON", value_parser = non_empty_reason)]
        override_freeze: Option<String>,
    },
    /// Move traffic to a side in the profile's stages, baking and gating each; on a gate failure
    /// roll back (or pause, by `on_failure`).
    Rollout {
        /// The side to roll to (default: the side that is not live).
        #[arg(long, value_name = "SIDE", value_parser = side_parser())]
        to: Option<Side>,
        /// Print the plan (stages, weights, gates) and make no change.
        #[arg(long)]
        dry_run: bool,
        /// What a stopped run (Ctrl-C, SIGTERM) does with traffic.
        #[arg(long, value_enum, default_value_t = OnInterruptArg::Rollback)]
        on_interrupt: OnInterruptArg,
        /// Go on although the live weights are not what the rollout state says.
        #[arg(long)]
        force: bool,
        /// Move traffic although a `freeze` gate's calendar is closed (recorded in the audit
        /// trail with the caller).
        #[arg(long, value_name = "REASON", value_parser = non_empty_reason)]
        override_freeze: Option<String>,
        /// Point stale weighted alias records at their side's current ingress ALB first.
        #[arg(long)]
        repoint: bool,
        /// Wave profiles: the release this train rolls (a version, a build id), recorded per
        /// wave in the train's state and audit trail; a new label starts a new train.
        #[arg(long, value_name = "LABEL", value_parser = release_label)]
        release: Option<String>,
    },
    /// For schedulers: start a rollout, or move it at most one stage once the stage has baked.
    Advance {
        /// The side to roll to when starting (default: the side that is not live).
        #[arg(long, value_name = "SIDE", value_parser = side_parser())]
        to: Option<Side>,
        /// Print what would be done and make no change.
        #[arg(long)]
        dry_run: bool,
        /// Go on although the live weights are not what the rollout state says.
        #[arg(long)]
        force: bool,
        /// Move traffic although a `freeze` gate's calendar is closed (recorded in the audit
        /// trail with the caller).
        #[arg(long, value_name = "REASON", value_parser = non_empty_reason)]
        override_freeze: Option<String>,
        /// Point stale weighted alias records at their side's current ingress ALB first.
        #[arg(long)]
        repoint: bool,
        /// Wave profiles: the release this train rolls (a version, a build id), recorded per
        /// wave in the train's state and audit trail; a new label starts a new train.
        #[arg(long, value_name = "LABEL", value_parser = release_label)]
        release: Option<String>,
    },
    /// Finish: all traffic on the candidate, which becomes the stable side.
    Promote {
        /// Do not ask before moving traffic from a terminal.
        #[arg(short = 'y', long = "yes", id = "command_yes")]
        yes: bool,
        /// Print what would be done and make no change.
        #[arg(long)]
        dry_run: bool,
        /// Skip the gates and the drift check.
        #[arg(long)]
        force: bool,
        /// Move traffic although a `freeze` gate's calendar is closed (recorded in the audit
        /// trail with the caller).
        #[arg(long, value_name = "REASON", value_parser = non_empty_reason)]
        override_freeze: Option<String>,
    },
    /// Hold the rollout: `advance` and running rollouts move it no further.
    Pause {
        /// Say what would change, and change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Release a paused rollout.
    Resume {
        /// Say what would change, and change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// The audit trail of this profile's cutovers, newest first.
    History {
        /// How many entries, newest first (at least 1).
        #[arg(long, default_value_t = 20, value_parser = parse_limit)]
        limit: usize,
    },
    /// Find the ingress ALBs the AWS Load Balancer Controller created for an EKS cluster.
    Discover {
        /// The EKS cluster (must be ACTIVE).
        #[arg(long)]
        cluster: String,
        /// Only this namespace's ingresses.
        #[arg(long)]
        namespace: Option<String>,
        /// Only this Ingress (or IngressGroup).
        #[arg(long)]
        ingress: Option<String>,
        /// Write a starting profile (Route53 weighted records between two namespaces) to FILE.
        #[arg(long, value_name = "FILE")]
        write_profile: Option<PathBuf>,
    },
    /// Print the least-privilege IAM policy (JSON) this profile needs.
    IamPolicy {
        /// A policy that allows `status` and `validate` only.
        #[arg(long, conflicts_with = "for_command")]
        read_only: bool,
        /// The policy of a one-off command instead of the everyday one: `state-init` creates the
        /// `[state]` table.
        #[arg(long = "for", id = "for_command", value_enum, value_name = "COMMAND")]
        for_command: Option<PolicyFor>,
    },
    /// The rollout state table.
    State {
        #[command(subcommand)]
        command: StateCommand,
    },
    /// Print a shell completion script (e.g. `cutover completions bash > /etc/bash_completion.d/cutover`).
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff), e.g. `cutover man > cutover.1`; `--dir DIR` writes it and one
    /// page per command (cutover-status.1, …) into DIR.
    Man {
        /// Write cutover.1 and a page per command into DIR (made if missing) instead of printing.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
    /// All traffic back on the stable side now (or on `--to SIDE`), skipping gates; marks the
    /// rollout aborted so no `advance` moves it again.
    #[command(display_order = 0, visible_alias = "abort")]
    Rollback {
        /// Do not ask before moving traffic from a terminal.
        #[arg(short = 'y', long = "yes", id = "command_yes")]
        yes: bool,
        /// The side to restore all traffic to (default: the rollout's stable side).
        #[arg(long, value_name = "SIDE", value_parser = side_parser())]
        to: Option<Side>,
        /// Print exactly the changes that would be made, and make none.
        #[arg(long)]
        dry_run: bool,
        /// With `[observe]`: return once the other side's observed share of requests is at most
        /// 1 % (clients have left it), saying how long that took.
        #[arg(long)]
        wait: bool,
        /// How long `--wait` waits for traffic to leave before giving up (exit 4).
        #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = parse_wait_timeout, requires = "wait")]
        wait_timeout: std::time::Duration,
        /// Wave profiles: take every wave that moved traffic back, newest first (without it,
        /// the newest started wave only).
        #[arg(long)]
        all_waves: bool,
        /// Why, in a few words: recorded in the audit trail (`history`) and the rollout's state.
        #[arg(long, value_name = "TEXT", value_parser = parse_reason)]
        reason: Option<String>,
    },
}

/// `--region`: a region's name, not an empty string (an empty AWS_REGION is ignored by the SDK;
/// an empty flag is a mistake).
fn non_empty_region(s: &str) -> Result<String, String> {
    let s = s.trim();
    if s.is_empty() { Err("name a region, e.g. `--region us-west-2`".into()) } else { Ok(s.to_string()) }
}

fn non_empty_reason(s: &str) -> Result<String, String> {
    let s = s.trim();
    if s.is_empty() { Err("say why (it is recorded in the audit trail)".into()) } else { Ok(s.to_string()) }
}

/// `--release LABEL`: printable, at most 128 characters.
fn release_label(s: &str) -> Result<String, String> {
    let s = s.trim();
    if s.is_empty() || s.len() > 128 || s.chars().any(char::is_control) {
        return Err("a release label is 1–128 printable characters, e.g. `v2.3.1` or a build id".into());
    }
    Ok(s.to_string())
}

/// The longest `rollback --reason` kept: a sentence or two, not a document.
pub const MAX_REASON_CHARS: usize = 500;

/// `rollback --reason TEXT`: trimmed, not empty, at most [`MAX_REASON_CHARS`] characters, on one
/// line with every control character escaped (it is printed by `history` and `status`).
fn parse_reason(s: &str) -> Result<String, String> {
    let s = s.trim();
    if s.is_empty() {
        return Err("say why (it is recorded in the audit trail), or leave out --reason".into());
    }
    let n = s.chars().count();
    if n > MAX_REASON_CHARS {
        return Err(format!("{n} characters is too long: at most {MAX_REASON_CHARS}"));
    }
    Ok(crate::terminal::one_line(s).into_owned())
}

fn parse_limit(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(0) => Err("must be at least 1 (omit --limit for the newest 20)".into()),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("`{s}` is not a number of entries")),
    }
}

/// A duration within `min`..=`max`: every duration cutover takes is bounded (no wait that never
/// ends, no instant past what the clock holds).
fn parse_duration(s: &str, min: std::time::Duration, max: std::time::Duration) -> Result<std::time::Duration, String> {
    let d = humantime::parse_duration(s)
        .map_err(|e| format!("`{s}` is not a duration ({e}); write e.g. \"90s\" or \"10m\""))?;
    if d < min || d > max {
        return Err(format!(
            "`{s}` is outside {} – {}",
            humantime::format_duration(min),
            humantime::format_duration(max)
        ));
    }
    Ok(d)
}

/// `status --interval`: 100 ms – 1 hour.
fn parse_interval(s: &str) -> Result<std::time::Duration, String> {
    parse_duration(s, std::time::Duration::from_millis(100), std::time::Duration::from_secs(3600))
}

/// `rollback --wait-timeout`: 1 second – 1 day.
fn parse_wait_timeout(s: &str) -> Result<std::time::Duration, String> {
    parse_duration(s, std::time::Duration::from_secs(1), std::time::Duration::from_secs(86_400))
}

/// `blue` or `green`, listed as such in `--help` and in the error for anything else.
fn side_parser() -> impl clap::builder::TypedValueParser<Value = Side> {
    use clap::builder::TypedValueParser;
    clap::builder::PossibleValuesParser::new(["blue", "green"])
        .map(|s| s.parse::<Side>().expect("a possible value is a side"))
}

impl Command {
    /// `--yes` given after the command's name (on the commands that ask).
    pub fn yes(&self) -> bool {
        match self {
            Command::Set { yes, .. } | Command::Promote { yes, .. } | Command::Rollback { yes, .. } => *yes,
            _ => false,
        }
    }

    /// `--override-freeze REASON`, on the commands that move traffic toward a candidate.
    pub fn override_freeze(&self) -> Option<&str> {
        match self {
            Command::Set { override_freeze, .. }
            | Command::Rollout { override_freeze, .. }
            | Command::Advance { override_freeze, .. }
            | Command::Promote { override_freeze, .. } => override_freeze.as_deref(),
            _ => None,
        }
    }

    /// `--release LABEL` (wave profiles).
    pub fn release(&self) -> Option<&str> {
        match self {
            Command::Rollout { release, .. } | Command::Advance { release, .. } => release.as_deref(),
            _ => None,
        }
    }

    /// `rollback --all-waves` (wave profiles).
    pub fn all_waves(&self) -> bool {
        matches!(self, Command::Rollback { all_waves: true, .. })
    }

    /// The command's name, as typed.
    pub fn name(&self) -> &'static str {
        match self {
            Command::Validate => "validate",
            Command::Status { .. } => "status",
            Command::Set { .. } => "set",
            Command::Rollout { .. } => "rollout",
            Command::Advance { .. } => "advance",
            Command::Promote { .. } => "promote",
            Command::Pause { .. } => "pause",
            Command::Resume { .. } => "resume",
            Command::History { .. } => "history",
            Command::State { .. } => "state init",
            Command::IamPolicy { .. } => "iam-policy",
            Command::Discover { .. } => "discover",
            Command::Completions { .. } => "completions",
            Command::Man { .. } => "man",
            Command::Rollback { .. } => "rollback",
        }
    }
}
