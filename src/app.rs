//! Runs one command: resolves the command line, the profile and the AWS configuration once, then
//! calls the core and prints the result. Returns the process exit code.

use std::io::{BufRead, IsTerminal, Write};
use std::time::Instant;

use serde::Serialize;

use crate::cli::{Cli, Command, LogFormat, OnInterruptArg, OutputFormat, StateCommand};
use crate::coord::NoGuard;
use crate::engine::{Engine, OnInterrupt};
use crate::error::{Error, Result};
use crate::events::{JsonReporter, PlainReporter, ProgressReporter, Reporter};
use crate::exit;
use crate::gates::{GateContext, GateSet, Gates};
use crate::ops::{HistoryReport, RolloutView, StateCtx};
use crate::profile::{Profile, ProfileSource};
use crate::report::{ChangeReport, RouteReport, StatusReport, ValidateReport};
use crate::split::{Percent, Side};
use crate::splitter::{Traffic, sole_side};

/// Runs the command and returns the exit code.
pub fn run(cli: Cli) -> i32 {
    init_logging(cli.verbose, cli.log_format);
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return exit::UNEXPECTED;
        }
    };
    let output = cli.output;
    match runtime.block_on(dispatch(cli)) {
        Ok(code) => code,
        Err(e) => {
            let code = e.exit_code();
            eprintln!("error: {e}");
            if output == OutputFormat::Json {
                let doc = serde_json::json!({ "error": { "message": e.to_string(), "exit_code": code } });
                println!("{doc}");
            }
            code
        }
    }
}

fn init_logging(verbose: u8, format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let level = match verbose {
        0 => "warn",
        1 => "cutover=info,warn",
        2 => "cutover=debug,info",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_env("CUTOVER_LOG").unwrap_or_else(|_| EnvFilter::new(level));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_target(false);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

/// Everything a command needs, resolved once from the command line, the profile and the
/// environment.
struct Settings {
    profile: Profile,
    output: OutputFormat,
    log_format: LogFormat,
    yes: bool,
}

impl Settings {
    fn resolve(cli: &Cli) -> Result<Settings> {
        let source = ProfileSource { dir: cli.profiles_dir.clone() };
        let path = source.locate(cli.profile.as_deref())?;
        let profile = Profile::load(&path)?;
        Ok(Settings { profile, output: cli.output, log_format: cli.log_format, yes: cli.yes })
    }

    fn print<T: std::fmt::Display + Serialize>(&self, report: &T) -> Result<()> {
        let mut out = std::io::stdout().lock();
        let written = match self.output {
            OutputFormat::Text => write!(out, "{report}"),
            OutputFormat::Json => serde_json::to_writer_pretty(&mut out, report)
                .map_err(std::io::Error::other)
                .and_then(|_| writeln!(out)),
        };
        // A closed stdout (`| head`) is not worth failing a traffic change over.
        match written {
            Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
                Err(Error::Other(format!("cannot write the result: {e}")))
            }
            _ => Ok(()),
        }
    }
}

async fn dispatch(cli: Cli) -> Result<i32> {
    if let Command::Discover { cluster, namespace, ingress, write_profile } = &cli.command {
        return discover(&cli, cluster, namespace.as_deref(), ingress.as_deref(), write_profile.as_deref()).await;
    }
    let settings = Settings::resolve(&cli)?;
    let sdk = crate::aws::load(settings.profile.region.as_deref()).await;
    let traffic = Traffic::new(&sdk, &settings.profile);
    let ctx = Ctx { settings: &settings, traffic: &traffic, sdk: &sdk };
    let state = || StateCtx::new(&settings.profile, &traffic, &sdk, cli.command.name());
    match &cli.command {
        Command::Validate => validate(&settings, &traffic, &sdk).await,
        Command::Status => status(&ctx).await,
        Command::Set { split, dry_run, no_gates, repoint } => {
            let (side, percent) = parse_assignment(split)?;
            shift(&ctx, "set", side, percent, *dry_run, !no_gates, *repoint).await
        }
        Command::Rollout { to, dry_run, on_interrupt, force, repoint } => {
            rollout(&ctx, *to, *dry_run, *on_interrupt, *force, *repoint).await
        }
        Command::Rollback { to, dry_run } => {
            if settings.profile.state.is_none() {
                let Some(side) = to else {
                    return Err(Error::refused_hint(
                        "rollback without --to needs the rollout state to know the stable side, and this profile has no [state] table",
                        "name the side to restore: `cutover rollback --to blue`",
                    ));
                };
                return shift(&ctx, "rollback", *side, Percent::FULL, *dry_run, false, false).await;
            }
            let st = state()?;
            if !dry_run && !settings.yes && std::io::stdin().is_terminal() && std::io::stderr().is_terminal() {
                let before = traffic.read_views().await?;
                for r in &before {
                    eprintln!("  {} {}: {}", r.kind, r.name, r.weights);
                }
                let side = to.map(|s| s.to_string()).unwrap_or_else(|| "the stable side".into());
                if !confirm(&format!("move all traffic to {side} on profile {}?", settings.profile.name)) {
                    eprintln!("not confirmed: nothing changed");
                    return Ok(exit::USAGE);
                }
            }
            let report = st.rollback(*to, *dry_run).await?;
            settings.print(&report)?;
            Ok(report.exit_code)
        }
        Command::Advance { to, dry_run, force, repoint } => {
            let report = state()?.advance(*to, *dry_run, *force, *repoint).await?;
            settings.print(&report)?;
            Ok(report.exit_code)
        }
        Command::Promote { dry_run, force } => {
            let st = state()?;
            if !dry_run
                && !settings.yes
                && std::io::stdin().is_terminal()
                && std::io::stderr().is_terminal()
                && !confirm(&format!("promote the candidate of profile {} to all traffic?", settings.profile.name))
            {
                eprintln!("not confirmed: nothing changed");
                return Ok(exit::USAGE);
            }
            let report = st.promote(*dry_run, *force).await?;
            settings.print(&report)?;
            Ok(report.exit_code)
        }
        Command::Pause { dry_run } | Command::Resume { dry_run } => {
            let report = state()?.set_paused(matches!(cli.command, Command::Pause { .. }), *dry_run).await?;
            settings.print(&report)?;
            Ok(report.exit_code)
        }
        Command::History { limit } => {
            let st = state()?;
            let report =
                HistoryReport { profile: settings.profile.name.clone(), entries: st.store.history(*limit).await? };
            settings.print(&report)?;
            Ok(exit::OK)
        }
        Command::Discover { .. } => unreachable!("handled before a profile is read"),
        Command::IamPolicy { read_only } => {
            let region = sdk.region().map(|r| r.to_string()).unwrap_or_else(|| "*".into());
            let account = crate::coord::account(&sdk).await.unwrap_or_else(|| "*".into());
            let policy = crate::policy::policy(&settings.profile, &region, &account, *read_only);
            // Always JSON: it is meant for IAM.
            println!("{policy}");
            Ok(exit::OK)
        }
        Command::State { command: StateCommand::Init { dry_run } } => {
            let Some(cfg) = &settings.profile.state else {
                return Err(Error::refused_hint(
                    format!("profile `{}` has no [state] table", settings.profile.name),
                    "add `[state] table = \"cutover-state\"` to the profile",
                ));
            };
            let store = crate::state::StateStore::new(&sdk, &cfg.table, &settings.profile.name);
            if *dry_run {
                let exists = store.exists().await?;
                let doc =
                    serde_json::json!({ "table": cfg.table, "created": false, "dry_run": true, "exists": exists });
                match settings.output {
                    OutputFormat::Json => println!("{doc}"),
                    OutputFormat::Text if exists => println!("state table {} already exists (dry run)", cfg.table),
                    OutputFormat::Text => println!("would create state table {} (pk S, sk S, on-demand)", cfg.table),
                }
                return Ok(exit::OK);
            }
            let created = store.init().await?;
            let doc = serde_json::json!({ "table": cfg.table, "created": created });
            match settings.output {
                OutputFormat::Json => println!("{doc}"),
                OutputFormat::Text if created => println!("created state table {} (pk S, sk S, on-demand)", cfg.table),
                OutputFormat::Text => println!("state table {} already exists", cfg.table),
            }
            Ok(exit::OK)
        }
    }
}

/// `cutover discover`: needs no profile.
async fn discover(
    cli: &Cli,
    cluster: &str,
    namespace: Option<&str>,
    ingress: Option<&str>,
    write_profile: Option<&std::path::Path>,
) -> Result<i32> {
    let sdk = crate::aws::load(None).await;
    let found = crate::discover::discover(&sdk, cluster, namespace, ingress).await?;
    if let Some(path) = write_profile {
        let text = crate::discover::starting_profile(&found)?;
        if path.exists() {
            return Err(Error::refused(format!("{} exists: not overwriting it", path.display())));
        }
        std::fs::write(path, text).map_err(|e| Error::Other(format!("cannot write {}: {e}", path.display())))?;
        eprintln!("wrote {}", path.display());
    }
    match cli.output {
        OutputFormat::Text => print!("{found}"),
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&found).unwrap_or_default()),
    }
    Ok(exit::OK)
}

/// `green=25` → (green, 25 %).
fn parse_assignment(s: &str) -> Result<(Side, Percent)> {
    let usage = |why: String| {
        Error::refused_hint(format!("invalid split `{s}`: {why}"), "write SIDE=PERCENT, e.g. `cutover set green=25`")
    };
    let (side, pct) = s.split_once('=').ok_or_else(|| usage("missing `=`".into()))?;
    let side: Side = side.parse().map_err(usage)?;
    let percent: Percent = pct.parse().map_err(usage)?;
    Ok((side, percent))
}

async fn validate(settings: &Settings, traffic: &Traffic, sdk: &aws_config::SdkConfig) -> Result<i32> {
    let routes = traffic.read().await?;
    let stale = crate::sides::check(sdk, &settings.profile, &routes, &Side::ALL).await?;
    if !stale.is_empty() {
        return Err(crate::sides::stale_error(&stale));
    }
    let report = ValidateReport::new(&settings.profile, &routes, sole_side(&routes));
    settings.print(&report)?;
    Ok(exit::OK)
}

async fn status(ctx: &Ctx<'_>) -> Result<i32> {
    let settings = ctx.settings;
    let routes = ctx.traffic.read().await?;
    let mut live = sole_side(&routes);
    let mut rollout = None;
    if let Some(cfg) = &settings.profile.state {
        let store = crate::state::StateStore::new(ctx.sdk, &cfg.table, &settings.profile.name);
        match store.load().await {
            Ok(Some(s)) => {
                // The stable side is the live one while a rollout is recorded.
                live = Some(s.stable);
                rollout = Some(serde_json::to_value(RolloutView::from(&s)).unwrap_or_default());
            }
            Ok(None) => {}
            Err(e) => {
                eprintln!("warning: cannot read the rollout state: {e}");
                rollout = Some(serde_json::json!({ "error": e.to_string() }));
            }
        }
    }
    let report = StatusReport {
        profile: settings.profile.name.clone(),
        live,
        routes: routes.iter().map(RouteReport::from).collect(),
        rollout,
    };
    settings.print(&report)?;
    Ok(exit::OK)
}

/// What every command works with.
struct Ctx<'a> {
    settings: &'a Settings,
    traffic: &'a Traffic,
    sdk: &'a aws_config::SdkConfig,
}

/// Moves every route of the profile to `percent` on `side`: read and check all, then write all.
/// With `gates`, the side gaining traffic must pass every gate once first.
async fn shift(
    ctx: &Ctx<'_>,
    command: &'static str,
    side: Side,
    percent: Percent,
    dry_run: bool,
    gates: bool,
    repoint: bool,
) -> Result<i32> {
    let (settings, traffic) = (ctx.settings, ctx.traffic);
    let started = Instant::now();
    let routes = traffic.read().await?;
    let mut changes = Traffic::plan(&routes, side, percent);
    let gaining = Side::ALL.into_iter().find(|&s| changes.iter().any(|c| c.to.percent(s) > c.route.weights.percent(s)));
    // `rollback --to` skips this: the on-call engineer is never held up by a side's placement.
    if command != "rollback" {
        let active: Vec<Side> = gaining.into_iter().collect();
        let stale = crate::sides::check(ctx.sdk, &settings.profile, &routes, &active).await?;
        if !stale.is_empty() {
            if !repoint {
                return Err(crate::sides::stale_error(&stale));
            }
            for s in stale {
                if let Some(c) = changes
                    .iter_mut()
                    .find(|c| c.route.kind == crate::splitter::RouteKind::Route53 && c.route.index == s.route)
                {
                    c.repoint.push((s.side, s.should));
                }
            }
        }
    }
    if let (true, Some(candidate), false) = (gates, gaining, settings.profile.gates.is_empty()) {
        check_gates_once(ctx, &routes, candidate, side, percent).await?;
    }
    let mut report = ChangeReport::new(&settings.profile.name, command, side, percent, &changes, dry_run);
    if dry_run || !report.changed {
        settings.print(&report)?;
        return Ok(exit::OK);
    }
    if !settings.yes && std::io::stdin().is_terminal() && std::io::stderr().is_terminal() {
        eprint!("{report}");
        if !confirm(&format!("move {side} to {percent}% on profile {}?", settings.profile.name)) {
            eprintln!("not confirmed: nothing changed");
            return Ok(exit::USAGE);
        }
    }
    traffic.apply(&changes).await?;
    report.elapsed_ms = started.elapsed().as_millis();
    settings.print(&report)?;
    Ok(exit::OK)
}

async fn rollout(
    ctx: &Ctx<'_>,
    to: Option<Side>,
    dry_run: bool,
    on_interrupt: OnInterruptArg,
    force: bool,
    repoint: bool,
) -> Result<i32> {
    let settings = ctx.settings;
    let routes = Traffic::read(ctx.traffic).await?;
    let live = sole_side(&routes);
    if dry_run {
        let mut report = ValidateReport::new(&settings.profile, &routes, live);
        if let Some(to) = to {
            report = ValidateReport::new_toward(&settings.profile, &routes, live, to);
        }
        settings.print(&report)?;
        return Ok(exit::OK);
    }
    // Placed sides, before any lease is taken: the candidate's cluster ACTIVE, every alias at its
    // side's ingress ALB.
    let mut routes = routes;
    let active: Vec<Side> = to.or(live.map(Side::other)).into_iter().collect();
    crate::sides::ensure(ctx.sdk, &settings.profile, ctx.traffic, &mut routes, &active, repoint).await?;
    // With a state table: the lease, and the rollout recorded there decide where to go.
    let mut state_guard = None;
    let mut to = to;
    if settings.profile.state.is_some() {
        let st = StateCtx::new(&settings.profile, ctx.traffic, ctx.sdk, "rollout")?;
        let (guard, side) = st.guard_for_rollout(to, force, &routes).await?;
        to = Some(side);
        state_guard = Some(guard);
    }
    let candidate = to.or(live.map(Side::other));
    // The preview hostname follows the candidate from the start of a rollout.
    if let (Some(c), Some(stable)) = (candidate, live)
        && c != stable
    {
        ctx.traffic.point_preview(c).await?;
    }
    let gates = Gates::new(ctx.sdk, &settings.profile, &routes);
    if let Some(candidate) = candidate
        && live != Some(candidate)
    {
        gates.preflight(candidate).await?;
    }

    // Ctrl-C and SIGTERM (a stopped CodeBuild job) ask the engine to stop.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::warn!("stop requested: ending the rollout");
        let _ = stop_tx.send(true);
        std::future::pending::<()>().await;
    });

    let mut reporter: Box<dyn Reporter> = match settings.log_format {
        LogFormat::Json => Box::new(JsonReporter::new(std::io::stderr())),
        LogFormat::Text if std::io::stderr().is_terminal() => Box::new(ProgressReporter::new()),
        LogFormat::Text => Box::new(PlainReporter::new(std::io::stderr())),
    };
    let on_interrupt = match on_interrupt {
        OnInterruptArg::Rollback => OnInterrupt::Rollback,
        OnInterruptArg::Leave => OnInterrupt::Leave,
    };
    let run = Run { settings, ctx, gates: &gates, cancel: stop_rx, on_interrupt };
    let report = match state_guard.as_mut() {
        Some(guard) => run.drive(reporter.as_mut(), guard, to).await?,
        None => run.drive(reporter.as_mut(), &mut NoGuard, to).await?,
    };
    if report.outcome == crate::engine::Outcome::Completed {
        // Promoted: the preview hostname moves to the next candidate, the old stable side.
        if let Err(e) = ctx.traffic.point_preview(report.to.other()).await {
            tracing::warn!(error = %e, "could not point the preview record at the next candidate");
        }
    }
    settings.print(&report)?;
    Ok(report.exit_code)
}

/// One rollout's engine, whichever guard it runs under.
struct Run<'a> {
    settings: &'a Settings,
    ctx: &'a Ctx<'a>,
    gates: &'a Gates,
    cancel: tokio::sync::watch::Receiver<bool>,
    on_interrupt: OnInterrupt,
}

impl Run<'_> {
    async fn drive<Gd: crate::coord::Guard>(
        self,
        reporter: &mut dyn Reporter,
        guard: &mut Gd,
        to: Option<Side>,
    ) -> Result<crate::engine::RolloutReport> {
        Engine {
            profile: self.settings.profile.name.clone(),
            rollout: &self.settings.profile.rollout,
            traffic: self.ctx.traffic,
            gates: self.gates,
            reporter,
            guard,
            cancel: self.cancel,
            on_interrupt: self.on_interrupt,
        }
        .run(to)
        .await
    }
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Reads every gate once against `candidate`; anything but all-pass refuses the shift.
async fn check_gates_once(
    ctx: &Ctx<'_>,
    routes: &[crate::splitter::RouteLive],
    candidate: Side,
    side: Side,
    percent: Percent,
) -> Result<()> {
    let profile = &ctx.settings.profile;
    let g = Gates::new(ctx.sdk, profile, routes);
    g.preflight(candidate).await?;
    let current = Percent::from_f64(routes[0].weights.percent(candidate)).unwrap_or(Percent::ZERO);
    let gctx = GateContext {
        profile: profile.name.clone(),
        candidate,
        stable: candidate.other(),
        current_percent: current,
        next_percent: Some(if candidate == side { percent } else { percent.complement() }),
        stage: 0,
        stages: 1,
        stage_age: std::time::Duration::ZERO,
        since: None,
    };
    let readings = g.read_all(&gctx).await;
    for r in &readings {
        tracing::info!(gate = %r.gate, verdict = %r.verdict, detail = %r.detail, "gate read");
    }
    match crate::gates::blocking(&readings) {
        None => Ok(()),
        Some((why, held)) => Err(Error::Gate {
            message: format!(
                "not shifting traffic to {candidate}: {why}\nnothing was changed (`--no-gates` skips the gates)"
            ),
            held,
        }),
    }
}

fn confirm(question: &str) -> bool {
    eprint!("{question} [y/N] ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    if std::io::stdin().lock().read_line(&mut answer).is_err() {
        return false;
    }
    matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assignments_parse() {
        let (s, p) = parse_assignment("green=25").unwrap();
        assert_eq!((s, p.to_string()), (Side::Green, "25".into()));
        let (s, p) = parse_assignment("BLUE=0.5%").unwrap();
        assert_eq!((s, p.to_string()), (Side::Blue, "0.5".into()));
        for bad in ["green", "red=5", "green=101", "green=-1", "green=x"] {
            let e = parse_assignment(bad).unwrap_err();
            assert_eq!(e.exit_code(), exit::USAGE, "{bad}");
        }
    }
}
