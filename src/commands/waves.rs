//! The commands of a wave profile: `advance`, `rollout`, `rollback [--all-waves]`, `status`,
//! `validate`, `resume`, `history`, `iam-policy` and `state init` drive or show the train; each
//! wave's own traffic is moved by the existing commands of its member profile (`advance`,
//! `rollback`, `validate`), whose results are captured and reported inside the train's.
//!
//! One `advance` does at most one thing: start the next wave (its first stage), advance the
//! current wave's rollout one step, or read the gates of a completed wave during its bake after —
//! starting the next wave once the bake has passed. The train's state is written conditionally
//! before a wave starts, so two ticks cannot both start it.

use std::time::Duration;

use serde::Serialize;

use crate::cli::Cli;
use crate::error::{Error, Result};
use crate::exit;
use crate::model::{Percent, Side};
use crate::profile::Profile;
use crate::profile::source::ProfileSource;
use crate::rollout::ledger::{RolloutState, Status, fmt_ms};
use crate::rollout::ports::{Clock, GateContext, Gates as _, Store as _};
use crate::settings::Settings;
use crate::state::AuditEntry;
use crate::waves::store::{Saved, TrainStore};
use crate::waves::{Step, TrainState, TrainStatus, WaveProfile, WaveShown, WaveStatus, plan};

use super::Invocation;

/// The wave profile `-p` names, when it is one (a file with `[[wave]]` tables). A wave profile
/// is read from a file; its members may be anywhere `-p` reads from.
pub fn detect(cli: &Cli) -> Result<Option<WaveProfile>> {
    let Some(name) = cli.profile.as_deref().filter(|p| !p.starts_with("s3://")) else { return Ok(None) };
    let Ok(path) = ProfileSource::new(cli.profiles_dir.clone()).locate(Some(name)) else { return Ok(None) };
    match crate::waves::read_if_wave(&path) {
        Some(text) => Ok(Some(WaveProfile::parse(&path, &text)?)),
        None => Ok(None),
    }
}

/// Runs a command on the train.
pub async fn run(cli: &Cli, train: WaveProfile, invocation: Invocation) -> Result<i32> {
    let sdk = crate::aws::load(train.region.as_deref(), Some(&train.path)).await?;
    let source = std::fs::canonicalize(&train.path).unwrap_or_else(|_| train.path.clone()).display().to_string();
    let store = TrainStore::new(&sdk, &train.state.table, &train.name, &source);
    let t = Train { identity: crate::state::Identity::new(&sdk), sdk, store, cli, train };
    match invocation {
        Invocation::Validate => t.validate().await,
        Invocation::Status { watch: None } => t.status().await,
        Invocation::Advance(a) if a.to.is_none() && !a.force && !a.repoint => {
            if a.dry_run {
                return t.status().await;
            }
            let restart = cli.command.release().is_some();
            let (tick, state) = t.tick(restart).await?;
            t.print(&t.report("advance", &tick, Some(&state)).await)
        }
        Invocation::Rollout(a) if a.to.is_none() && !a.force && !a.repoint => {
            if a.dry_run {
                return t.status().await;
            }
            t.rollout().await
        }
        Invocation::Rollback(a) if a.to.is_none() && a.wait.is_none() => {
            t.rollback(cli.command.all_waves(), a.dry_run, a.reason.clone()).await
        }
        Invocation::Pause { pause: false, dry_run } => t.resume(dry_run).await,
        Invocation::History { limit } => t.history(limit).await,
        Invocation::IamPolicy { read_only, state_init: false } => t.iam_policy(read_only).await,
        Invocation::StateInit { dry_run } => {
            let store = crate::state::DynamoStore::new(
                &t.sdk,
                &t.train.state.table,
                crate::state::ProfileId { name: t.train.name.clone(), source, routes: Vec::new() },
            );
            let table = &t.train.state.table;
            let said = if dry_run {
                if store.exists().await? {
                    format!("state table {table} exists")
                } else {
                    format!("would create state table {table}")
                }
            } else if store.init().await? {
                format!("created state table {table}")
            } else {
                format!("state table {table} exists")
            };
            crate::report::out(format!("{said}\n"));
            Ok(exit::OK)
        }
        _ => Err(Error::refused_hint(
            format!(
                "`{}` with these options does not apply to the wave profile `{}`, which moves no traffic of its own",
                cli.command.name(),
                t.train.name
            ),
            "a train takes `advance`, `rollout`, `rollback [--all-waves]`, `status`, `validate`, `resume`, `history`, `iam-policy`; each wave rolls to the side its profile does not serve from — run other commands with `-p` naming a wave's own profile",
        )),
    }
}

/// What one `advance` of the train did.
#[derive(Clone, Debug)]
enum Tick {
    /// Something moved (a wave started, a stage, a wave completed); come back after `wait`.
    Moved { message: String, wait: Duration },
    /// Nothing to do yet (baking, a stage not baked); come back after `wait`.
    NotYet { message: String, wait: Duration },
    /// Every wave rolled and baked.
    Completed(String),
    /// A wave failed and was rolled back: the train stopped at it.
    Halted(String),
    /// A wave's rollout is paused or held by inconclusive gates.
    Held(String),
    /// The train is over or halted from before: nothing to do.
    Idle(String),
}

impl Tick {
    fn exit_code(&self) -> i32 {
        match self {
            Tick::Halted(_) => exit::ROLLED_BACK,
            Tick::Held(_) => exit::HELD,
            _ => exit::OK,
        }
    }

    fn action(&self) -> &'static str {
        match self {
            Tick::Moved { .. } => "advanced",
            Tick::NotYet { .. } => "not-yet",
            Tick::Completed(_) => "completed",
            Tick::Halted(_) => "halted",
            Tick::Held(_) => "held",
            Tick::Idle(_) => "nothing-to-do",
        }
    }

    fn message(&self) -> &str {
        match self {
            Tick::Moved { message, .. } | Tick::NotYet { message, .. } => message,
            Tick::Completed(m) | Tick::Halted(m) | Tick::Held(m) | Tick::Idle(m) => m,
        }
    }
}

/// One wave as a train's result shows it.
#[derive(Clone, Debug, Serialize)]
pub struct WaveView {
    pub profile: String,
    pub state: WaveShown,
    /// When the wave may start (RFC 3339), for a wave waiting on the bake before it.
    pub next_start: Option<String>,
    pub release: Option<String>,
    /// The side it rolls to.
    pub to: Option<Side>,
    /// The share of its traffic on `to` now (the least of its routes), when read.
    pub percent: Option<f64>,
    pub started_at: Option<String>,
    pub completed_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// A train command's result: text, or one JSON document.
#[derive(Clone, Debug, Serialize)]
pub struct TrainReport {
    pub train: String,
    pub command: &'static str,
    pub action: String,
    pub message: String,
    pub exit_code: i32,
    /// `pending` before the train's first `advance`.
    pub status: String,
    pub release: Option<String>,
    pub waves: Vec<WaveView>,
    /// What the member profiles' commands reported during this one, in order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub members: Vec<serde_json::Value>,
    #[serde(skip)]
    member_text: Vec<String>,
}

impl std::fmt::Display for TrainReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for text in &self.member_text {
            for line in text.lines() {
                writeln!(f, "  | {line}")?;
            }
        }
        let release = self.release.as_ref().map(|r| format!(" (release {r})")).unwrap_or_default();
        writeln!(f, "train {}: {}{release}", self.train, self.status)?;
        for (i, w) in self.waves.iter().enumerate() {
            let split = match (w.to, w.percent) {
                (Some(to), Some(p)) => format!("{to} {p}%"),
                (Some(to), None) => format!("to {to}"),
                _ => String::new(),
            };
            let when = match (&w.completed_at, &w.next_start) {
                (_, Some(next)) => format!("starts at {next}"),
                (Some(done), None) => format!("completed at {done}"),
                _ => String::new(),
            };
            writeln!(f, "  wave {} {:<24} {:<12} {:<12} {when}", i + 1, w.profile, w.state.to_string(), split)?;
        }
        writeln!(f, "{}", self.message)
    }
}

/// A train and what it is driven with.
struct Train<'a> {
    train: WaveProfile,
    cli: &'a Cli,
    sdk: aws_config::SdkConfig,
    store: TrainStore,
    identity: crate::state::Identity,
}

/// A wave's member profile: read like `-p`, in its own region (a train spans regions: a member's
/// `region` is where its calls go, whatever the environment says).
async fn member_profile(cli: &Cli, k: usize, name: &str) -> Result<Settings> {
    let in_wave = |e: Error| Error::refused(format!("wave {} (`wave[{k}].profile` = `{name}`): {e}", k + 1));
    let (path, profile, sdk) = match name.strip_prefix("s3://") {
        Some(location) => crate::profile::source::profile_from_s3(location).await.map_err(in_wave)?,
        None => {
            let path =
                ProfileSource::new(cli.profiles_dir.clone()).locate(Some(name)).map_err(|e| in_wave(e.into()))?;
            if crate::waves::read_if_wave(&path).is_some() {
                return Err(Error::refused_hint(
                    format!("wave {} (`wave[{k}].profile` = `{name}`) is a wave profile itself", k + 1),
                    "trains do not nest: list the member profiles of both in one wave profile",
                ));
            }
            let profile = Profile::load(&path).map_err(|e| in_wave(e.into()))?;
            let sdk = crate::aws::load(profile.region.as_deref(), Some(&path)).await?;
            (path, profile, sdk)
        }
    };
    if profile.state.is_none() {
        return Err(Error::refused_hint(
            format!("wave {} (`wave[{k}].profile` = `{name}`): {} has no [state] table", k + 1, path.display()),
            "a wave's rollout is driven by `advance` calls over days: add `[state] table = \"cutover-state\"` to the member profile",
        ));
    }
    let sdk = match &profile.region {
        Some(r) => sdk.into_builder().region(aws_config::Region::new(r.clone())).build(),
        None => sdk,
    };
    Ok(Settings::member(profile, sdk, cli))
}

/// An audit line of the train.
fn entry(action: &str, wave: Option<usize>, why: String) -> AuditEntry {
    use std::sync::atomic::{AtomicU32, Ordering};
    static SEQ: AtomicU32 = AtomicU32::new(0);
    let at_ms = Clock::new().now_ms();
    AuditEntry {
        at_ms,
        at: fmt_ms(at_ms),
        actor: String::new(),
        actor_note: crate::state::identity::actor_note(),
        action: action.to_string(),
        before: Vec::new(),
        after: Vec::new(),
        why: Some(why),
        stage: wave.map(|k| k + 1),
        seq: SEQ.fetch_add(1, Ordering::Relaxed),
        rollout_id: None,
        reason: None,
    }
}

/// How long a train's `rollout` waits between ticks at most.
const MAX_WAIT: Duration = Duration::from_secs(15);

impl Train<'_> {
    async fn member(&self, k: usize) -> Result<Settings> {
        member_profile(self.cli, k, &self.train.waves[k].profile).await
    }

    fn print(&self, report: &TrainReport) -> Result<i32> {
        match self.cli.output {
            crate::cli::OutputFormat::Text => crate::report::out(report),
            crate::cli::OutputFormat::Json => {
                let doc = serde_json::to_string_pretty(report)
                    .map_err(|e| Error::Other(format!("cannot render the result: {e}")))?;
                crate::report::out(format!("{doc}\n"));
            }
        }
        Ok(report.exit_code)
    }

    async fn audit(&self, mut e: AuditEntry) {
        e.actor = self.identity.actor().await;
        if let Err(err) = self.store.append(&e).await {
            tracing::warn!(error = %err, "could not write the train's audit line");
        }
    }

    /// Writes the train's state as the next version of `expected`; another writer since: exit 5.
    async fn save(&self, state: &mut TrainState, expected: Option<u64>) -> Result<()> {
        match self.store.save(state, expected, Clock::new().now_ms()).await? {
            Saved::Written => Ok(()),
            Saved::Conflict => Err(Error::Locked {
                message: format!(
                    "the train `{}` changed since this run read it (another `advance`, or a rollback): nothing more was done",
                    self.train.name
                ),
            }),
        }
    }

    /// The waves as shown, each member's split read (a member that cannot be read shows none).
    async fn views(&self, state: Option<&TrainState>) -> Vec<WaveView> {
        let now = Clock::new().now_ms();
        let mut views = Vec::new();
        for (k, wave) in self.train.waves.iter().enumerate() {
            let kept = state.filter(|s| s.matches(&self.train)).map(|s| (s, &s.waves[k]));
            let to = kept.and_then(|(_, w)| w.to);
            let percent = match to {
                Some(to) => match self.member(k).await {
                    Ok(m) => m
                        .traffic()
                        .read()
                        .await
                        .ok()
                        .map(|routes| routes.iter().map(|r| r.view().weights.percent(to)).fold(100.0, f64::min)),
                    Err(_) => None,
                },
                None => None,
            };
            views.push(WaveView {
                profile: wave.profile.clone(),
                state: kept.map(|(s, _)| s.shown(k)).unwrap_or(WaveShown::Pending),
                next_start: match kept {
                    Some((s, _)) => s.next_start(&self.train, k, now).map(fmt_ms),
                    None if k == 0 => Some(fmt_ms(now)),
                    None => None,
                },
                release: kept.and_then(|(_, w)| w.release.clone()),
                to,
                percent,
                started_at: kept.and_then(|(_, w)| w.started_ms).map(fmt_ms),
                completed_at: kept.and_then(|(_, w)| w.completed_ms).map(fmt_ms),
                reason: kept.and_then(|(_, w)| w.reason.clone()),
            });
        }
        views
    }

    async fn report(&self, command: &'static str, tick: &Tick, state: Option<&TrainState>) -> TrainReport {
        TrainReport {
            train: self.train.name.clone(),
            command,
            action: tick.action().to_string(),
            message: tick.message().to_string(),
            exit_code: tick.exit_code(),
            status: state.map(|s| s.status.to_string()).unwrap_or_else(|| "pending".into()),
            release: state.and_then(|s| s.release.clone()),
            waves: self.views(state).await,
            members: Vec::new(),
            member_text: Vec::new(),
        }
    }

    // ---- advance ----

    /// One `advance` of the train. `restart`: a finished train starts again (`rollout`, or a new
    /// `--release`), and a halted one runs its failed wave again.
    async fn tick(&self, restart: bool) -> Result<(Tick, TrainState)> {
        let now = Clock::new().now_ms();
        let release = self.cli.command.release().map(String::from);
        let loaded = self.store.load().await?;
        let expected = loaded.as_ref().map(|s| s.version);
        let mut state = match loaded {
            None => TrainState::new(&self.train, release.clone(), now),
            Some(s) => s,
        };
        let finished = matches!(state.status, TrainStatus::Completed | TrainStatus::RolledBack);
        let new_release = release.is_some() && release != state.release;
        if expected.is_some() && !state.matches(&self.train) {
            if !finished {
                return Err(Error::refused_hint(
                    format!(
                        "the waves of `{}` changed while its train is {} ({} recorded, {} in the profile)",
                        self.train.name,
                        state.status,
                        state.waves.iter().map(|w| w.profile.as_str()).collect::<Vec<_>>().join(", "),
                        self.train.waves.iter().map(|w| w.profile.as_str()).collect::<Vec<_>>().join(", ")
                    ),
                    "finish the train with the waves it started with, or `cutover rollback --all-waves` first",
                ));
            }
            state = TrainState::new(&self.train, release.clone(), now);
        } else if expected.is_some() && finished && (restart || new_release) {
            state = TrainState::new(&self.train, release.clone().or(state.release.clone()), now);
        } else if state.status == TrainStatus::Halted && (restart || new_release) {
            state.status = TrainStatus::Progressing;
            state.reason = None;
            if new_release {
                state.release = release.clone();
            }
        } else if new_release && expected.is_some() {
            return Err(Error::refused_hint(
                format!(
                    "the train of release {} is {} at wave {}: a new release waits for it",
                    state.release.as_deref().unwrap_or("(none)"),
                    state.status,
                    state.newest_started().map_or(1, |k| k + 1)
                ),
                "let it finish, or `cutover rollback --all-waves` first",
            ));
        }
        let mut expected = expected;
        let tick = match plan(&state, &self.train) {
            Step::Completed => Tick::Idle(format!("the train `{}` is completed: nothing to do", self.train.name)),
            Step::RolledBack => Tick::Idle(format!(
                "every wave of `{}` was rolled back: nothing to do (`cutover rollout` or `advance --release LABEL` starts a new train)",
                self.train.name
            )),
            Step::Halted(k) => Tick::Idle(format!(
                "the train is halted at wave {} (`{}`){}: nothing to do — after a fix, `cutover resume` lets `advance` run it again, `cutover rollout` runs it now",
                k + 1,
                self.train.waves[k].profile,
                state.reason.as_ref().map(|r| format!(": {r}")).unwrap_or_default()
            )),
            Step::Start(k) => self.start(&mut state, &mut expected, k).await?,
            Step::Drive(k) => self.drive(&mut state, &mut expected, k).await?,
            // A bake that has passed starts the next wave in the same call.
            Step::Bake { wave, until_ms } => match self.bake(&mut state, &mut expected, wave, until_ms).await? {
                Some(tick) => tick,
                None => self.start(&mut state, &mut expected, wave + 1).await?,
            },
        };
        Ok((tick, state))
    }

    /// Starts wave `k`: records it (conditionally: one tick wins), then its first stage.
    async fn start(&self, state: &mut TrainState, expected: &mut Option<u64>, k: usize) -> Result<Tick> {
        let m = self.member(k).await?;
        let store = m.need_store("advance")?;
        let traffic = m.traffic();
        let (routes, recorded) = tokio::join!(traffic.read(), store.load());
        let routes = routes?;
        let recorded = recorded.map_err(|e| store_error(&m, e))?;
        let to = match recorded.as_ref().filter(|s| s.status.is_active()) {
            // A rollout of the member in progress already: the wave takes it over.
            Some(s) => s.candidate,
            None => match crate::splitter::sole_side(&routes) {
                Some(live) => live.other(),
                None => {
                    return Err(Error::refused_hint(
                        format!(
                            "wave {} (`{}`) cannot start: its traffic is split and no rollout of it is recorded",
                            k + 1,
                            m.profile.name
                        ),
                        format!(
                            "put it on one side first: `cutover -p {} rollback --to SIDE`",
                            self.train.waves[k].profile
                        ),
                    ));
                }
            },
        };
        let now = Clock::new().now_ms();
        let wave = &mut state.waves[k];
        let again = wave.status == WaveStatus::RolledBack;
        wave.status = WaveStatus::Progressing;
        wave.to = Some(to);
        wave.rollout_id = recorded.as_ref().filter(|s| s.status.is_active()).map(|s| s.id.clone());
        wave.before_id = recorded.as_ref().filter(|s| !s.status.is_active()).map(|s| s.id.clone());
        wave.started_ms = Some(now);
        wave.completed_ms = None;
        wave.release = state.release.clone();
        wave.failures = 0;
        wave.reason = None;
        self.save(state, *expected).await?;
        *expected = Some(state.version);
        let label = state.release.as_ref().map(|r| format!("release {r}: ")).unwrap_or_default();
        let why = format!(
            "{label}wave {} (`{}`) {} toward {to}",
            k + 1,
            self.train.waves[k].profile,
            if again { "runs again" } else { "starts" }
        );
        self.audit(entry("wave-started", Some(k), why.clone())).await;
        tracing::info!(wave = k + 1, profile = %self.train.waves[k].profile, "{why}");
        self.drive(state, expected, k).await
    }

    /// Wave `k`'s rollout: one `advance` of its member profile, then what its state says.
    async fn drive(&self, state: &mut TrainState, expected: &mut Option<u64>, k: usize) -> Result<Tick> {
        let m = self.member(k).await?;
        let store = m.need_store("advance")?;
        let wave = state.waves[k].clone();
        let to = wave.to.ok_or_else(|| Error::Other(format!("wave {} is recorded without a side", k + 1)))?;
        let ours = |s: &RolloutState| match &wave.rollout_id {
            Some(id) => *id == s.id,
            None => s.candidate == to && Some(&s.id) != wave.before_id.as_ref(),
        };
        let before = store.load().await.map_err(|e| store_error(&m, e))?;
        let ended = before.as_ref().filter(|s| ours(s) && !s.status.is_active()).is_some();
        let mut code = exit::OK;
        if !ended {
            let args = super::advance::Args { to: Some(to), dry_run: false, force: false, repoint: false };
            code = match super::advance::run(&m, args).await {
                Ok(code) => code,
                // The candidate failed its gates before any traffic moved: the wave failed.
                Err(e @ Error::Gate { held: false, .. }) => {
                    return self.halt(state, expected, k, format!("its gates failed before it started: {e}")).await;
                }
                Err(Error::Gate { held: true, message }) => {
                    return Ok(Tick::Held(format!("wave {} (`{}`) is held: {message}", k + 1, wave.profile)));
                }
                Err(e) => return Err(e),
            };
        }
        let said = m.captured().into_iter().map(|(_, json)| json["message"].as_str().unwrap_or_default().to_string());
        let said: Vec<String> = said.filter(|s| !s.is_empty()).collect();
        let after = store.load().await.map_err(|e| store_error(&m, e))?;
        let poll = m.profile.rollout.poll.min(MAX_WAIT);
        let name = &wave.profile;
        let Some(s) = after.filter(|s| ours(s)) else {
            return Ok(Tick::NotYet { message: format!("wave {} (`{name}`): {}", k + 1, said.join("; ")), wait: poll });
        };
        match s.status {
            Status::Completed => {
                let now = Clock::new().now_ms();
                let w = &mut state.waves[k];
                w.status = WaveStatus::Completed;
                w.completed_ms = Some(now);
                w.rollout_id = Some(s.id.clone());
                self.save(state, *expected).await?;
                *expected = Some(state.version);
                let bake = self.train.waves[k].bake_after;
                let why = format!(
                    "wave {} (`{name}`) completed: all traffic on {to}; it bakes {} before {}",
                    k + 1,
                    humantime::format_duration(bake),
                    if k + 1 < self.train.waves.len() { "the next wave starts" } else { "the train completes" }
                );
                self.audit(entry("wave-completed", Some(k), why.clone())).await;
                Ok(Tick::Moved { message: why, wait: bake.min(poll) })
            }
            Status::Aborted => {
                let reason = s.reason.clone().unwrap_or_else(|| "its rollout was rolled back".into());
                self.halt_recorded(state, expected, k, reason).await
            }
            Status::Paused => Ok(Tick::Held(format!(
                "wave {} (`{name}`) is paused at stage {}/{} (`cutover -p {name} resume` releases it)",
                k + 1,
                s.progress.stage,
                s.stages.len()
            ))),
            Status::Progressing => {
                if state.waves[k].rollout_id.is_none() {
                    state.waves[k].rollout_id = Some(s.id.clone());
                    if let Err(e) = self.save(state, *expected).await {
                        return self.lost_race(k, &m, to, e).await;
                    }
                    *expected = Some(state.version);
                }
                let message = format!(
                    "wave {} (`{name}`) at stage {}/{} ({}% on {to}): {}",
                    k + 1,
                    s.progress.stage,
                    s.stages.len(),
                    s.percent(),
                    said.join("; ")
                );
                Ok(match code {
                    exit::HELD => Tick::Held(message),
                    _ => Tick::Moved { message, wait: poll },
                })
            }
        }
    }

    /// A train write lost after wave `k`'s member moved: when a rollback took the train meanwhile,
    /// the wave's traffic goes back too (a rollback wins); either way this run stops (exit 5).
    async fn lost_race(&self, k: usize, m: &Settings, to: Side, e: Error) -> Result<Tick> {
        if let Ok(Some(now)) = self.store.load().await
            && now.waves.get(k).is_some_and(|w| w.status != WaveStatus::Progressing)
        {
            tracing::warn!(wave = k + 1, "the train was rolled back while this run started the wave: taking it back");
            let args = super::rollback::Args { to: Some(to.other()), dry_run: false, wait: None, reason: None };
            let _ = super::rollback::run(m, args).await;
        }
        Err(e)
    }

    /// Wave `k` failed before or during its rollout and its member has (or had) nothing to take
    /// back: marked rolled back, the train halted.
    async fn halt(&self, state: &mut TrainState, expected: &mut Option<u64>, k: usize, reason: String) -> Result<Tick> {
        self.halt_recorded(state, expected, k, reason).await
    }

    async fn halt_recorded(
        &self,
        state: &mut TrainState,
        expected: &mut Option<u64>,
        k: usize,
        reason: String,
    ) -> Result<Tick> {
        let w = &mut state.waves[k];
        w.status = WaveStatus::RolledBack;
        w.reason = Some(reason.clone());
        state.status = TrainStatus::Halted;
        let message = format!(
            "wave {} (`{}`) was rolled back ({reason}); the train is halted: the waves before it stay, the waves after it do not start",
            k + 1,
            self.train.waves[k].profile
        );
        state.reason = Some(format!("wave {} rolled back: {reason}", k + 1));
        self.save(state, *expected).await?;
        *expected = Some(state.version);
        self.audit(entry("train-halted", Some(k), message.clone())).await;
        Ok(Tick::Halted(message))
    }

    /// The bake after wave `k` completed: its gates read again; a failure rolls it back and halts
    /// the train. `None` when the bake has passed and the next wave may start in this call.
    async fn bake(
        &self,
        state: &mut TrainState,
        expected: &mut Option<u64>,
        k: usize,
        until_ms: u64,
    ) -> Result<Option<Tick>> {
        let m = self.member(k).await?;
        let wave = &self.train.waves[k];
        let to = state.waves[k].to.ok_or_else(|| Error::Other(format!("wave {} is recorded without a side", k + 1)))?;
        let routes = m.traffic().read().await?;
        if crate::splitter::sole_side(&routes) != Some(to) {
            let reason = format!("its traffic is no longer all on {to} (moved by hand, or rolled back on its own)");
            return self.halt(state, expected, k, reason).await.map(Some);
        }
        let gates = m.gates(&routes);
        let ctx = GateContext {
            profile: m.profile.name.clone(),
            candidate: to,
            stable: to.other(),
            current_percent: Percent::FULL,
            next_percent: None,
            stage: m.profile.rollout.stages.len(),
            stages: m.profile.rollout.stages.len(),
            stage_age: Duration::from_millis(
                Clock::new().now_ms().saturating_sub(state.waves[k].completed_ms.unwrap_or(0)),
            ),
            next_bake: Duration::ZERO,
            since: None,
        };
        // The wave's own traffic does not move while it bakes: a freeze does not hold its bake.
        let readings = gates.thaw(gates.read(&ctx).await, true);
        let poll = m.profile.rollout.poll.min(MAX_WAIT);
        let now = Clock::new().now_ms();
        let name = &wave.profile;
        match crate::model::blocking(&readings) {
            Some((why, false)) => {
                state.waves[k].failures += 1;
                let failures = state.waves[k].failures;
                let threshold = m.profile.rollout.failure_threshold;
                if failures < threshold {
                    self.save(state, *expected).await?;
                    *expected = Some(state.version);
                    return Ok(Some(Tick::NotYet {
                        message: format!(
                            "wave {} (`{name}`) baking: a gate failed ({failures}/{threshold}): {why}",
                            k + 1
                        ),
                        wait: poll,
                    }));
                }
                let args = super::rollback::Args { to: Some(to.other()), dry_run: false, wait: None, reason: None };
                super::rollback::run(&m, args).await?;
                let reason = format!("a gate failed during its bake after: {why}");
                return self.halt(state, expected, k, reason).await.map(Some);
            }
            Some((why, true)) => {
                return Ok(Some(Tick::NotYet {
                    message: format!("wave {} (`{name}`) baking: waiting on a gate: {why}", k + 1),
                    wait: poll,
                }));
            }
            None => {}
        }
        if state.waves[k].failures > 0 {
            state.waves[k].failures = 0;
            self.save(state, *expected).await?;
            *expected = Some(state.version);
        }
        if now < until_ms {
            let left = Duration::from_millis(until_ms - now);
            return Ok(Some(Tick::NotYet {
                message: format!(
                    "wave {} (`{name}`) baking: gates pass; {} until {} (baking since {})",
                    k + 1,
                    if k + 1 < self.train.waves.len() { "the next wave waits" } else { "the train completes" },
                    fmt_ms(until_ms),
                    state.waves[k].completed_ms.map(fmt_ms).unwrap_or_default()
                ),
                wait: left.min(poll),
            }));
        }
        if let Some(want) = wave.min_requests_after {
            let served = served_since(&m, &routes, to, state.waves[k].completed_ms.unwrap_or(now), now).await?;
            if served < want as f64 {
                return Ok(Some(Tick::NotYet {
                    message: format!(
                        "wave {} (`{name}`) baked, and served {served:.0} of the {want} requests it must serve on {to} before the next wave",
                        k + 1
                    ),
                    wait: poll,
                }));
            }
        }
        if k + 1 == self.train.waves.len() {
            state.status = TrainStatus::Completed;
            self.save(state, *expected).await?;
            *expected = Some(state.version);
            let label = state.release.as_ref().map(|r| format!(" (release {r})")).unwrap_or_default();
            let message = format!("the train `{}` completed{label}: every wave rolled and baked", self.train.name);
            self.audit(entry("train-completed", None, message.clone())).await;
            return Ok(Some(Tick::Completed(message)));
        }
        Ok(None)
    }

    // ---- rollout ----

    /// `advance` until the train ends: completed (0), halted (3), held (7).
    async fn rollout(&self) -> Result<i32> {
        let mut restart = true;
        let mut last = String::new();
        loop {
            let (tick, state) = self.tick(restart).await?;
            restart = false;
            if tick.message() != last {
                eprintln!("{}", crate::terminal::clean(tick.message()));
                last = tick.message().to_string();
            }
            match &tick {
                Tick::Moved { wait, .. } | Tick::NotYet { wait, .. } => {
                    tokio::time::sleep((*wait).clamp(Duration::from_millis(100), MAX_WAIT)).await
                }
                _ => return self.print(&self.report("rollout", &tick, Some(&state)).await),
            }
        }
    }

    // ---- rollback ----

    /// The newest started wave (or, with `all`, every wave that moved traffic, newest first) back
    /// on the side it left, each with its member's `rollback` (given the caller's `--reason`);
    /// then the train halted (or rolled back).
    async fn rollback(&self, all: bool, dry_run: bool, reason: Option<String>) -> Result<i32> {
        let Some(mut state) = self.store.load().await? else {
            return Err(Error::refused_hint(
                format!("no train of `{}` is recorded: no wave moved traffic; nothing was moved", self.train.name),
                "roll back a wave's own profile: `cutover -p PROFILE rollback --to SIDE`",
            ));
        };
        let mut done: Vec<usize> = Vec::new();
        let mut members = Vec::new();
        let mut texts = Vec::new();
        let mut worst = exit::OK;
        // A tick may start a wave while this runs: read again after writing, until the write lands.
        for _ in 0..5 {
            let targets: Vec<usize> = if all {
                (0..state.waves.len()).rev().filter(|&k| state.waves[k].status != WaveStatus::Pending).collect()
            } else {
                state.newest_started().into_iter().collect()
            };
            let targets: Vec<usize> = targets.into_iter().filter(|k| !done.contains(k)).collect();
            if dry_run {
                let which: Vec<String> =
                    targets.iter().map(|k| format!("wave {} (`{}`)", k + 1, state.waves[*k].profile)).collect();
                let tick = Tick::Idle(format!("would roll back {} (no change made)", which.join(", ")));
                return self.print(&self.report("rollback", &tick, Some(&state)).await);
            }
            if done.is_empty() && !targets.is_empty() && !self.confirm(&targets, &state) {
                eprintln!("not confirmed: nothing changed");
                return Ok(exit::USAGE);
            }
            for &k in &targets {
                let m = self.member(k).await?;
                let Some(to) = state.waves[k].to else { continue };
                let args =
                    super::rollback::Args { to: Some(to.other()), dry_run: false, wait: None, reason: reason.clone() };
                let code = super::rollback::run(&m, args).await?;
                worst = worst.max(code);
                for (text, json) in m.captured() {
                    texts.push(text);
                    members.push(json);
                }
                done.push(k);
            }
            let by = self.identity.who().await;
            for &k in &done {
                let w = &mut state.waves[k];
                if w.status != WaveStatus::Pending {
                    w.status = WaveStatus::RolledBack;
                    w.reason.get_or_insert_with(|| format!("rolled back by {by}"));
                }
            }
            if !done.is_empty() {
                state.status = if all { TrainStatus::RolledBack } else { TrainStatus::Halted };
                state.reason = Some(format!("rolled back by {by}"));
            }
            let expected = Some(state.version);
            match self.store.save(&mut state, expected, Clock::new().now_ms()).await? {
                Saved::Written => break,
                Saved::Conflict => match self.store.load().await? {
                    Some(s) => state = s,
                    None => break,
                },
            }
        }
        let which: Vec<String> =
            done.iter().map(|k| format!("wave {} (`{}`)", k + 1, state.waves[*k].profile)).collect();
        let message = if which.is_empty() {
            "no wave moved traffic: nothing to roll back".to_string()
        } else {
            format!(
                "rolled back {}; the train is {}",
                which.join(", "),
                if all { "rolled back (`cutover rollout` starts a new one)" } else { "halted" }
            )
        };
        if !done.is_empty() {
            let action = if all { "train-rolled-back" } else { "wave-rolled-back" };
            self.audit(entry(action, done.first().copied(), message.clone())).await;
        }
        let tick = Tick::Idle(message);
        let mut report = self.report("rollback", &tick, Some(&state)).await;
        report.action = "rolled-back".into();
        report.exit_code = worst;
        report.members = members;
        report.member_text = texts;
        self.print(&report)
    }

    fn confirm(&self, targets: &[usize], state: &TrainState) -> bool {
        use std::io::{BufRead, IsTerminal, Write};
        let interactive = std::io::stdin().is_terminal() && std::io::stderr().is_terminal();
        if self.cli.yes || self.cli.command.yes() || !interactive {
            return true;
        }
        let which: Vec<String> =
            targets.iter().map(|k| format!("wave {} (`{}`)", k + 1, state.waves[*k].profile)).collect();
        eprint!(
            "{} ",
            crate::terminal::clean(&format!(
                "move all traffic of {} back to the side it left? [y/N]",
                which.join(", ")
            ))
        );
        let _ = std::io::stderr().flush();
        let mut answer = String::new();
        std::io::stdin().lock().read_line(&mut answer).is_ok() && matches!(answer.trim(), "y" | "Y" | "yes")
    }

    // ---- resume, status, validate, history, iam-policy ----

    /// `resume`: a halted train goes on at the next `advance`, running its failed wave again.
    async fn resume(&self, dry_run: bool) -> Result<i32> {
        let state = self.store.load().await?;
        let Some(mut state) = state.filter(|s| s.status == TrainStatus::Halted) else {
            return Err(Error::refused_hint(
                format!("the train `{}` is not halted: nothing to resume", self.train.name),
                "a wave's paused rollout is resumed on its own profile: `cutover -p PROFILE resume`",
            ));
        };
        let k = state.newest_started().unwrap_or(0);
        let message = format!(
            "the train resumes: the next `advance` runs wave {} (`{}`) again{}",
            k + 1,
            state.waves[k].profile,
            if dry_run { " (dry run: no change made)" } else { "" }
        );
        if !dry_run {
            state.status = TrainStatus::Progressing;
            state.reason = None;
            let expected = Some(state.version);
            self.save(&mut state, expected).await?;
            self.audit(entry("train-resumed", Some(k), message.clone())).await;
        }
        self.print(&self.report("resume", &Tick::Idle(message), Some(&state)).await)
    }

    async fn status(&self) -> Result<i32> {
        let state = self.store.load().await?;
        let message = match state.as_ref().map(|s| plan(s, &self.train)) {
            None => "no train recorded: the first `advance` (or `rollout`) starts wave 1".to_string(),
            Some(Step::Start(k)) => format!("wave {} starts at the next `advance`", k + 1),
            Some(Step::Drive(k)) => format!("wave {} is rolling", k + 1),
            Some(Step::Bake { wave, until_ms }) => format!("wave {} bakes until {}", wave + 1, fmt_ms(until_ms)),
            Some(Step::Halted(k)) => format!(
                "halted at wave {}{}",
                k + 1,
                state.as_ref().and_then(|s| s.reason.as_ref()).map(|r| format!(": {r}")).unwrap_or_default()
            ),
            Some(Step::Completed) => "every wave rolled and baked".into(),
            Some(Step::RolledBack) => "every wave was rolled back".into(),
        };
        let mut report = self.report("status", &Tick::Idle(message), state.as_ref()).await;
        report.action = "status".into();
        self.print(&report)
    }

    async fn validate(&self) -> Result<i32> {
        let mut members = Vec::new();
        let mut texts = Vec::new();
        for (k, wave) in self.train.waves.iter().enumerate() {
            let m = self.member(k).await?;
            super::validate::run(&m)
                .await
                .map_err(|e| Error::refused(format!("wave {} (`{}`): {e}", k + 1, wave.profile)))?;
            for (text, json) in m.captured() {
                texts.push(format!(
                    "wave {}: {} (bake after {}{})\n{text}",
                    k + 1,
                    wave.profile,
                    humantime::format_duration(wave.bake_after),
                    wave.min_requests_after.map(|n| format!(", then {n} requests")).unwrap_or_default()
                ));
                members.push(json);
            }
        }
        let message =
            format!("the train `{}` is valid: {} waves, in this order", self.train.name, self.train.waves.len());
        let mut report = self.report("validate", &Tick::Idle(message), None).await;
        report.action = "validate".into();
        report.status = "valid".into();
        report.members = members;
        report.member_text = texts;
        self.print(&report)
    }

    async fn history(&self, limit: usize) -> Result<i32> {
        let entries = self.store.history(limit).await?;
        match self.cli.output {
            crate::cli::OutputFormat::Json => {
                let doc = serde_json::json!({ "train": self.train.name, "entries": entries });
                crate::report::out(format!("{}\n", serde_json::to_string_pretty(&doc).unwrap_or_default()));
            }
            crate::cli::OutputFormat::Text => {
                let mut text = String::new();
                for e in &entries {
                    text.push_str(&format!(
                        "{}  {:<18} {}  {}\n",
                        e.at,
                        e.action,
                        e.actor,
                        e.why.as_deref().unwrap_or("")
                    ));
                }
                if entries.is_empty() {
                    text.push_str("no entries\n");
                }
                crate::report::out(text);
            }
        }
        Ok(exit::OK)
    }

    /// The union of the members' policies, each statement's `Sid` told apart by its wave, and the
    /// train's own state item.
    async fn iam_policy(&self, read_only: bool) -> Result<i32> {
        let caller = crate::state::identity::caller(&self.sdk).await;
        let account = caller.as_ref().map(|(a, _)| a.clone()).unwrap_or_else(|| "*".into());
        let mut statements: Vec<serde_json::Value> = Vec::new();
        for k in 0..self.train.waves.len() {
            let m = self.member(k).await?;
            let region = m.sdk.region().map(|r| r.to_string()).unwrap_or_else(|| "*".into());
            if !m.profile.roles().is_empty() {
                tracing::warn!(
                    wave = k + 1,
                    "wave {}'s profile names roles: their own policies are printed by `cutover -p {} iam-policy`",
                    k + 1,
                    self.train.waves[k].profile
                );
            }
            for mut s in crate::policy::policy(&m.profile, &region, &account, read_only).statement {
                if let Some(sid) = s.get("Sid").and_then(|v| v.as_str()).map(String::from) {
                    s["Sid"] = serde_json::Value::String(format!("{sid}Wave{}", k + 1));
                }
                statements.push(s);
            }
        }
        let region = self.sdk.region().map(|r| r.to_string()).unwrap_or_else(|| "*".into());
        let partition = crate::policy::partition(&region);
        let table = format!("arn:{partition}:dynamodb:{region}:{account}:table/{}", self.train.state.table);
        let actions: &[&str] = if read_only {
            &["dynamodb:GetItem", "dynamodb:Query"]
        } else {
            &["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Query"]
        };
        statements.push(serde_json::json!({
            "Sid": "TrainState",
            "Effect": "Allow",
            "Action": actions,
            "Resource": [table],
        }));
        let policy = crate::policy::Policy { version: "2012-10-17", statement: statements };
        crate::report::out(policy);
        Ok(exit::OK)
    }
}

/// A member's state table refused or failed a read.
fn store_error(m: &Settings, e: crate::rollout::ports::StoreError) -> Error {
    use crate::rollout::ports::StoreError;
    match e {
        StoreError::Failed(e) => e,
        StoreError::Unavailable(why) => Error::Other(format!("the state of `{}`: {why}", m.profile.name)),
        StoreError::Conflict => Error::Locked { message: format!("the state of `{}` changed", m.profile.name) },
    }
}

/// The requests `to` served on the member's routes since `from_ms`, over the whole minutes that
/// AWS has published by now (`[observe] settle`, else its default).
async fn served_since(
    m: &Settings,
    routes: &[crate::splitter::RouteLive],
    to: Side,
    from_ms: u64,
    now_ms: u64,
) -> Result<f64> {
    use std::time::UNIX_EPOCH;
    let settle = m.profile.observe.map(|o| o.settle).unwrap_or(crate::observe::DEFAULT_SETTLE);
    let start = from_ms.div_ceil(60_000) * 60_000;
    let end = now_ms.saturating_sub(settle.as_millis() as u64) / 60_000 * 60_000;
    if end <= start {
        return Ok(0.0);
    }
    let minutes = crate::observe::Minutes {
        start: UNIX_EPOCH + Duration::from_millis(start),
        end: UNIX_EPOCH + Duration::from_millis(end),
    };
    let counts = crate::observe::RequestCounts::new(&m.aws, routes);
    match counts.total(to, &minutes).await? {
        Some(n) => Ok(n),
        None => Err(Error::refused_hint(
            format!("`min_requests_after`: the routes of `{}` cannot count {to}'s requests", m.profile.name),
            "a route53 route counts through its alias's ALB, an alb route through its target groups",
        )),
    }
}
