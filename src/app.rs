//! Runs one command: resolves the command line, the profile and the AWS configuration once, then
//! calls the core and prints the result. Returns the process exit code.

use std::io::{BufRead, IsTerminal, Write};
use std::time::Instant;

use serde::Serialize;

use crate::cli::{Cli, Command, LogFormat, OutputFormat};
use crate::error::{Error, Result};
use crate::exit;
use crate::profile::{Profile, ProfileSource};
use crate::report::{ChangeReport, RouteReport, StatusReport, ValidateReport};
use crate::split::{Percent, Side};
use crate::splitter::{Traffic, sole_side};

/// Runs the command and returns the exit code.
pub fn run(cli: Cli) -> i32 {
    init_logging(cli.verbose, cli.log_format);
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
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
                let doc =
                    serde_json::json!({ "error": { "message": e.to_string(), "exit_code": code } });
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
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
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
    yes: bool,
}

impl Settings {
    fn resolve(cli: &Cli) -> Result<Settings> {
        let source = ProfileSource {
            dir: cli.profiles_dir.clone(),
        };
        let path = source.locate(cli.profile.as_deref())?;
        let profile = Profile::load(&path)?;
        Ok(Settings {
            profile,
            output: cli.output,
            yes: cli.yes,
        })
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
    let settings = Settings::resolve(&cli)?;
    let sdk = crate::aws::load(settings.profile.region.as_deref()).await;
    let traffic = Traffic::new(&sdk, &settings.profile);
    match cli.command {
        Command::Validate => validate(&settings, &traffic).await,
        Command::Status => status(&settings, &traffic).await,
        Command::Set { split, dry_run } => {
            let (side, percent) = parse_assignment(&split)?;
            shift(&settings, &traffic, "set", side, percent, dry_run).await
        }
        Command::Rollback { to, dry_run } => {
            let Some(side) = to else {
                return Err(Error::refused_hint(
                    "rollback without --to needs the rollout state to know the stable side, and this profile has no [state] table",
                    "name the side to restore: `cutover rollback --to blue`",
                ));
            };
            shift(
                &settings,
                &traffic,
                "rollback",
                side,
                Percent::FULL,
                dry_run,
            )
            .await
        }
    }
}

/// `green=25` → (green, 25 %).
fn parse_assignment(s: &str) -> Result<(Side, Percent)> {
    let usage = |why: String| {
        Error::refused_hint(
            format!("invalid split `{s}`: {why}"),
            "write SIDE=PERCENT, e.g. `cutover set green=25`",
        )
    };
    let (side, pct) = s
        .split_once('=')
        .ok_or_else(|| usage("missing `=`".into()))?;
    let side: Side = side.parse().map_err(usage)?;
    let percent: Percent = pct.parse().map_err(usage)?;
    Ok((side, percent))
}

async fn validate(settings: &Settings, traffic: &Traffic) -> Result<i32> {
    let routes = traffic.read().await?;
    let report = ValidateReport::new(&settings.profile, &routes, sole_side(&routes));
    settings.print(&report)?;
    Ok(exit::OK)
}

async fn status(settings: &Settings, traffic: &Traffic) -> Result<i32> {
    let routes = traffic.read().await?;
    let report = StatusReport {
        profile: settings.profile.name.clone(),
        live: sole_side(&routes),
        routes: routes.iter().map(RouteReport::from).collect(),
        rollout: None,
    };
    settings.print(&report)?;
    Ok(exit::OK)
}

/// Moves every route of the profile to `percent` on `side`: read and check all, then write all.
async fn shift(
    settings: &Settings,
    traffic: &Traffic,
    command: &'static str,
    side: Side,
    percent: Percent,
    dry_run: bool,
) -> Result<i32> {
    let started = Instant::now();
    let routes = traffic.read().await?;
    let changes = Traffic::plan(&routes, side, percent);
    let mut report = ChangeReport::new(
        &settings.profile.name,
        command,
        side,
        percent,
        &changes,
        dry_run,
    );
    if dry_run || !report.changed {
        settings.print(&report)?;
        return Ok(exit::OK);
    }
    if !settings.yes && std::io::stdin().is_terminal() && std::io::stderr().is_terminal() {
        eprint!("{report}");
        if !confirm(&format!(
            "move {side} to {percent}% on profile {}?",
            settings.profile.name
        )) {
            eprintln!("not confirmed: nothing changed");
            return Ok(exit::USAGE);
        }
    }
    traffic.apply(&changes).await?;
    report.elapsed_ms = started.elapsed().as_millis();
    settings.print(&report)?;
    Ok(exit::OK)
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
