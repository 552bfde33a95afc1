//! Everything a command needs, resolved once from the command line, the profile and the
//! environment: the profile, how to print, whether a person is at a terminal, the AWS
//! configuration, who is acting, and the event bus (reporter, audit trail, notifications).

use std::io::{BufRead, IsTerminal, Write};
use std::time::Duration;

use aws_config::SdkConfig;
use serde::Serialize;
use tokio::task::JoinHandle;

use crate::cli::{Cli, LogFormat, OutputFormat};
use crate::error::{Error, Result};
use crate::notify::NotifySink;
use crate::profile::Profile;
use crate::profile::source::ProfileSource;
use crate::report::reporters::{JsonReporter, PlainReporter, ProgressReporter};
use crate::rollout::events::{Event, Fanout, Sink};
use crate::splitter::AwsTraffic;
use crate::state::{AuditSink, DynamoStore, Identity, ProfileId, SeenRollout};

/// A result with the rollout it is about, at its end (the result's own keys keep their order).
#[derive(Serialize)]
struct WithRolloutId<'a, T: Serialize> {
    #[serde(flatten)]
    report: &'a T,
    rollout_id: Option<String>,
}

/// The default lease of a run over the rollout state.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(60);

/// The resolved settings of one command.
pub struct Settings {
    pub profile: Profile,
    pub output: OutputFormat,
    pub log_format: LogFormat,
    /// `--yes`: never ask.
    pub yes: bool,
    /// A person at a terminal (stdin and stderr): write commands ask first, progress is drawn live.
    pub interactive: bool,
    /// The caller's AWS configuration: its state table, topic, identity.
    pub sdk: SdkConfig,
    /// The caller's and each role's configuration, for the profile's resources.
    pub aws: crate::aws::Accounts,
    pub identity: Identity,
    /// `--override-freeze REASON`: `freeze` gates let the move through.
    pub override_freeze: Option<String>,
    /// A wave's member profile: its results are kept here for the train's own, not printed.
    pub capture: Option<Capture>,
    /// The rollout this command read or wrote: its audit entries and its JSON result name it.
    pub seen: SeenRollout,
}

/// The results a member profile's commands printed (text, JSON), for the train to report.
pub type Capture = std::sync::Arc<std::sync::Mutex<Vec<(String, serde_json::Value)>>>;

impl Settings {
    /// Reads the profile and the AWS configuration.
    pub async fn resolve(cli: &Cli) -> Result<Settings> {
        let (path, profile, sdk) = match cli.profile.as_deref().and_then(|p| p.strip_prefix("s3://")) {
            Some(location) => crate::profile::source::profile_from_s3(location).await?,
            None => {
                let source = ProfileSource::new(cli.profiles_dir.clone());
                let path = source.locate(cli.profile.as_deref())?;
                let profile = Profile::load(&path)?;
                let sdk = crate::aws::load(profile.region.as_deref(), Some(&path)).await?;
                (path, profile, sdk)
            }
        };
        if cli.verbose > 0 {
            // `-v`: where this command's calls go — which account, region and endpoint.
            let account = crate::state::account(&sdk).await.unwrap_or_else(|| "unknown (STS did not answer)".into());
            let region = sdk.region().map(|r| r.to_string()).unwrap_or_default();
            let endpoint = sdk.endpoint_url().map(String::from).unwrap_or_else(|| "AWS's own endpoints".into());
            tracing::info!(%account, %region, %endpoint, profile = %path.display(), "talking to account {account} in {region} at {endpoint}");
            for role in profile.roles() {
                let account = role.account();
                tracing::info!(role = %role.arn, %account, "and, for the resources naming it, as {} in account {account}", role.arn);
            }
        }
        let identity = Identity::new(&sdk);
        let roles = profile.roles().into_iter().map(|r| (r.clone(), profile.role_keys(r).join(", "))).collect();
        let aws = crate::aws::Accounts::new(sdk.clone(), &profile.name, roles);
        Ok(Settings {
            profile,
            output: cli.output,
            log_format: cli.log_format,
            yes: cli.yes || cli.command.yes(),
            interactive: std::io::stdin().is_terminal() && std::io::stderr().is_terminal(),
            sdk,
            aws,
            identity,
            override_freeze: None,
            capture: None,
            seen: SeenRollout::default(),
        })
    }

    /// The settings of a wave's member profile, read by a train: its own AWS configuration (`sdk`,
    /// in the member's region), the train's output and terminal; its results captured.
    pub fn member(profile: Profile, sdk: SdkConfig, cli: &Cli) -> Settings {
        let identity = Identity::new(&sdk);
        let roles = profile.roles().into_iter().map(|r| (r.clone(), profile.role_keys(r).join(", "))).collect();
        let aws = crate::aws::Accounts::new(sdk.clone(), &profile.name, roles);
        Settings {
            profile,
            output: cli.output,
            log_format: cli.log_format,
            yes: true,
            interactive: false,
            sdk,
            aws,
            identity,
            override_freeze: None,
            capture: Some(Capture::default()),
            seen: SeenRollout::default(),
        }
    }

    /// What the member's commands printed since the last call, oldest first.
    pub fn captured(&self) -> Vec<(String, serde_json::Value)> {
        self.capture
            .as_ref()
            .map(|c| std::mem::take(&mut *c.lock().unwrap_or_else(|p| p.into_inner())))
            .unwrap_or_default()
    }

    /// Every route of the profile.
    pub fn traffic(&self) -> AwsTraffic {
        AwsTraffic::new(&self.aws, &self.profile.routes, &self.profile.sides.roles)
    }

    /// The profile's gates, reading the candidate of `routes` (as read).
    pub fn gates(&self, routes: &[crate::splitter::RouteLive]) -> crate::gates::Gates {
        crate::gates::Gates::new(&self.aws, &self.profile.gates, self.profile.observe, routes, self.profile.dns_ttl)
            .overriding_freeze(self.override_freeze.clone())
    }

    /// With `--override-freeze` on a profile with a `freeze` gate: the override, told to the bus
    /// (the audit trail records it with the caller).
    pub async fn note_freeze_override(&self, bus: &mut Bus, routes: &[crate::model::RouteView]) {
        let has_freeze = self.profile.gates.iter().any(|g| matches!(g.spec, crate::gates::GateSpec::Freeze(_)));
        if let (Some(reason), true) = (&self.override_freeze, has_freeze) {
            bus.event(Event::FreezeOverridden {
                reason: reason.clone(),
                by: self.identity.actor().await,
                routes: routes.to_vec(),
            });
        }
    }

    /// What rides on `traffic`'s routes while a rollout runs — the preview record, the safety
    /// net — put on before the first shift and taken off at the end. `known`: the routes as the
    /// command read them, before anything wrote them (strays are looked for there first).
    pub fn attachments<'a>(
        &self,
        traffic: &'a AwsTraffic,
        known: Option<&[crate::splitter::RouteLive]>,
    ) -> crate::safety_net::Attached<'a> {
        crate::safety_net::Attached {
            traffic,
            net: crate::safety_net::SafetyNet::of(&self.aws, &self.profile),
            previews: self.profile.routes.route53.iter().any(|r| r.preview.is_some()),
            known: known.map(<[_]>::to_vec),
            tried: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Points every preview record at `side`'s load balancer; says whether it wrote.
    pub async fn point_preview(&self, traffic: &AwsTraffic, side: crate::model::Side) -> Result<bool> {
        let has = self.profile.routes.route53.iter().any(|r| r.preview.is_some());
        crate::sides::point_preview(traffic, has, side).await
    }

    /// The state table, when the profile has one.
    pub fn store(&self) -> Option<DynamoStore> {
        self.profile
            .state
            .as_ref()
            .map(|s| DynamoStore::new(&self.sdk, &s.table, self.profile_id()).noting(self.seen.clone()))
    }

    /// The profile as the state table knows it: name, where it was read, the traffic it moves.
    pub fn profile_id(&self) -> ProfileId {
        let p = &self.profile;
        let source = match p.path.to_str().filter(|s| s.starts_with("s3://")) {
            Some(url) => url.to_string(),
            None => std::fs::canonicalize(&p.path).unwrap_or_else(|_| p.path.clone()).display().to_string(),
        };
        ProfileId { name: p.name.clone(), source, routes: p.routes.identities() }
    }

    /// The state table, which `command` cannot do without.
    pub fn need_store(&self, command: &str) -> Result<DynamoStore> {
        self.store().ok_or_else(|| {
            Error::refused_hint(
                format!(
                    "`{command}` needs the rollout state, and profile `{}` has no [state] table",
                    self.profile.name
                ),
                "add `[state] table = \"cutover-state\"` to the profile and run `cutover state init`",
            )
        })
    }

    /// Without `[state]`, the lock file that keeps a second run of this profile's traffic on this
    /// machine out (exit 5 while another holds it); `None` with a state table (its lease does that).
    pub fn local_lock(&self) -> Result<Option<crate::state::LocalLock>> {
        if self.profile.state.is_some() {
            return Ok(None);
        }
        crate::state::LocalLock::acquire(&self.profile.name, &self.profile.routes.identities())
    }

    /// The lease of a run.
    pub fn lease(&self) -> Duration {
        self.profile.state.as_ref().map(|s| s.lease).unwrap_or(DEFAULT_LEASE)
    }

    /// Prints a command's result on stdout: text, or one JSON document.
    pub fn print<T: std::fmt::Display + Serialize>(&self, report: &T) -> Result<()> {
        if let Some(capture) = &self.capture {
            let json = serde_json::to_value(report).unwrap_or(serde_json::Value::Null);
            capture.lock().unwrap_or_else(|p| p.into_inner()).push((report.to_string(), json));
            return Ok(());
        }
        match self.output {
            OutputFormat::Text => crate::report::out(report),
            OutputFormat::Json => {
                // Every result names the rollout it is about: the one recorded in the state
                // table (null without a `[state]` table or a recorded rollout). A command that
                // did not read the state (`validate`) does not guess.
                let id = match (self.seen.get(), &self.profile.state) {
                    (Some(id), _) => Some(id),
                    (None, None) => Some(None),
                    (None, Some(_)) => None,
                };
                let render = |e: serde_json::Error| Error::Other(format!("cannot render the result: {e}"));
                let value = serde_json::to_value(report).map_err(render)?;
                let open = value.as_object().is_some_and(|m| !m.contains_key("rollout_id"));
                let doc = match id {
                    Some(rollout_id) if open => {
                        serde_json::to_string_pretty(&WithRolloutId { report, rollout_id }).map_err(render)?
                    }
                    _ => serde_json::to_string_pretty(report).map_err(render)?,
                };
                crate::report::out(format!("{doc}\n"));
            }
        }
        Ok(())
    }

    /// Asks a person at a terminal; `true` without asking when nobody is there or `--yes`.
    pub fn confirm(&self, plan: &str, question: &str) -> bool {
        if self.yes || !self.interactive {
            return true;
        }
        eprint!("{}", crate::terminal::clean(plan));
        eprint!("{} [y/N] ", crate::terminal::clean(question));
        let _ = std::io::stderr().flush();
        let mut answer = String::new();
        if std::io::stdin().lock().read_line(&mut answer).is_err() {
            return false;
        }
        matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes")
    }

    /// The reporter that draws a run's progress on stderr.
    pub fn reporter(&self) -> Box<dyn Sink + Send> {
        match self.log_format {
            LogFormat::Json => Box::new(JsonReporter::new(std::io::stderr())),
            LogFormat::Text if self.interactive => Box::new(ProgressReporter::new()),
            LogFormat::Text => Box::new(PlainReporter::new(std::io::stderr())),
        }
    }

    /// The event bus of a command: the reporter (`progress`), the audit trail (with a state
    /// table) and the notifications (with `[notify]`).
    pub fn bus(&self, progress: bool) -> Bus {
        self.bus_of(progress, true)
    }

    /// A bus whose events are not written to the audit trail: the command wrote its entry itself
    /// (a rollback's, together with the abort).
    pub fn bus_unaudited(&self, progress: bool) -> Bus {
        self.bus_of(progress, false)
    }

    fn bus_of(&self, progress: bool, audited: bool) -> Bus {
        let mut sinks: Vec<Box<dyn Sink + Send>> = Vec::new();
        let mut tasks = Vec::new();
        if progress {
            sinks.push(self.reporter());
        }
        if let Some(store) = self.store().filter(|_| audited) {
            let (sink, task) = AuditSink::spawn(store, self.identity.clone());
            sinks.push(Box::new(sink));
            tasks.push(task);
        }
        if let Some((sink, task)) = NotifySink::spawn(&self.sdk, &self.profile.name, &self.profile.notify) {
            sinks.push(Box::new(sink));
            tasks.push(task);
        }
        Bus { fanout: Fanout(sinks), tasks }
    }
}

/// Where a command's events go; [`Bus::close`] waits for the audit trail and notifications.
pub struct Bus {
    fanout: Fanout,
    tasks: Vec<JoinHandle<()>>,
}

impl Bus {
    pub fn sink(&mut self) -> &mut dyn Sink {
        &mut self.fanout
    }

    pub fn event(&mut self, event: Event) {
        self.fanout.event(&event);
    }

    /// Lets the background sinks finish (at most 15 s).
    pub async fn close(self) {
        drop(self.fanout);
        let all = futures::future::join_all(self.tasks);
        if tokio::time::timeout(Duration::from_secs(15), all).await.is_err() {
            tracing::warn!("the audit trail or a notification did not finish within 15s");
        }
    }
}
