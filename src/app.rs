//! Runs one command: resolves the settings once, dispatches to the command, prints an error (as
//! the documented `{"error": …}` document with `-o json`) and returns the process exit code.

use crate::cli::{Cli, Command, LogFormat, OnInterruptArg, OutputFormat, StateCommand};
use crate::commands::{self, Invocation};
use crate::error::Result;
use crate::exit;
use crate::settings::Settings;

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
    let (output, log_format) = (cli.output, cli.log_format);
    match runtime.block_on(dispatch(cli)) {
        Ok(code) => code,
        Err(e) => {
            let code = e.exit_code();
            match log_format {
                // One JSON object per line on stderr, like every other event (CloudWatch Logs).
                LogFormat::Json => tracing::error!(exit_code = code, "{e}"),
                LogFormat::Text => eprintln!("error: {}", crate::terminal::clean(&e.to_string())),
            }
            if output == OutputFormat::Json {
                let doc = serde_json::json!({ "error": { "message": e.to_string(), "exit_code": code } });
                crate::report::out(format!("{doc}\n"));
            }
            code
        }
    }
}

/// A command line clap refused (or `--help`, `--version`): said on stderr as clap says it, and
/// — when the arguments ask for `-o json` — as the documented `{"error": …}` document on stdout,
/// so a pipeline that parses stdout learns what went wrong. Returns the exit code (2; 0 for help).
pub fn usage_error(e: clap::Error, args: impl IntoIterator<Item = String>) -> i32 {
    use clap::error::ErrorKind;
    let code = e.exit_code();
    // A value our own parser refused (`set purple=10`) says why in its own words, with its hint,
    // not wrapped in clap's "invalid value … for '<SIDE=PERCENT>'".
    let own = (e.kind() == ErrorKind::ValueValidation)
        .then(|| std::error::Error::source(&e).map(|s| s.to_string()))
        .flatten()
        .filter(|s| s.contains("\nhint: "));
    // As clap (or our parser) says it, with any control character of the arguments escaped.
    let text = match &own {
        Some(own) => format!("error: {own}\n"),
        None => unknown_command(&e).unwrap_or_else(|| e.render().to_string()),
    };
    match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => crate::report::out(&text),
        _ => eprint!("{}", crate::terminal::clean(&text)),
    }
    let informational = matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion);
    if !informational && wants_json(args) {
        let message = match own {
            Some(own) => own,
            None => text.lines().next().unwrap_or_default().trim_start_matches("error: ").trim().to_string(),
        };
        let doc = serde_json::json!({ "error": { "message": message, "exit_code": code } });
        crate::report::out(format!("{doc}\n"));
    }
    code
}

/// The commands that move traffic or change the rollout.
const WRITES: [&str; 8] = ["set", "rollout", "advance", "rollback", "abort", "promote", "pause", "resume"];

/// An unknown command, said without offering a write for a word that is not one: clap's similar
/// names put `set` next to `get`. Words people bring from other tools get the command they mean
/// (`undo` → `rollback`, `get`/`show` → `status`, `log` → `history`); a write is suggested only
/// for a misspelling of it (same first two letters: `rollbak` → `rollback`). `None`: not an
/// unknown command.
fn unknown_command(e: &clap::Error) -> Option<String> {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    if e.kind() != ErrorKind::InvalidSubcommand {
        return None;
    }
    let Some(ContextValue::String(typed)) = e.get(ContextKind::InvalidSubcommand) else { return None };
    let similar: Vec<&str> = match e.get(ContextKind::SuggestedSubcommand) {
        Some(ContextValue::Strings(s)) => s.iter().map(String::as_str).collect(),
        _ => Vec::new(),
    };
    let word = typed.to_ascii_lowercase();
    let tip = match word.as_str() {
        "undo" | "revert" | "back" | "restore" | "rollback!" | "cancel" | "stop" => {
            Some("to put all traffic back on the stable side now: `cutover rollback` (or `cutover abort`)".to_string())
        }
        "get" | "show" | "describe" | "list" | "ls" | "info" | "watch" | "inspect" | "ps" | "top" => {
            Some("to read the live split and the rollout: `cutover status` (`--watch` redraws it)".to_string())
        }
        "log" | "logs" | "audit" | "events" | "trail" => {
            Some("to read who moved what, when: `cutover history`".to_string())
        }
        _ => {
            let kept: Vec<&str> = similar
                .into_iter()
                .filter(|s| !WRITES.contains(s) || s.get(..2).is_some_and(|p| word.starts_with(p)))
                .collect();
            let quoted: Vec<String> = kept.iter().map(|s| format!("'{s}'")).collect();
            match quoted.len() {
                0 => None,
                1 => Some(format!("a similar subcommand exists: {}", quoted[0])),
                _ => Some(format!("some similar subcommands exist: {}", quoted.join(", "))),
            }
        }
    };
    use clap::CommandFactory;
    let usage = Cli::command().render_usage().to_string();
    let tip = tip.map(|t| format!("  tip: {t}\n\n")).unwrap_or_default();
    Some(format!("error: unrecognized subcommand '{typed}'\n\n{tip}{usage}\n\nFor more information, try '--help'.\n"))
}

/// Whether a command line asks for `-o json` (`-o json`, `-ojson`, `--output json`, `--output=json`).
fn wants_json(args: impl IntoIterator<Item = String>) -> bool {
    let args: Vec<String> = args.into_iter().collect();
    args.iter().enumerate().any(|(i, a)| {
        let next = args.get(i + 1).map(String::as_str);
        a == "-ojson" || a == "--output=json" || ((a == "-o" || a == "--output") && next == Some("json"))
    })
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
        .with_target(false)
        .with_ansi(crate::report::colour());
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

/// `completions SHELL` and `man`: generated from the parser's own definition; need no profile.
fn generated(command: &Command) -> Option<Result<i32>> {
    use clap::CommandFactory;
    let mut buf: Vec<u8> = Vec::new();
    match command {
        Command::Completions { shell } => clap_complete::generate(*shell, &mut Cli::command(), "cutover", &mut buf),
        Command::Man { dir: Some(dir) } => {
            return Some(match crate::man::write_pages(dir) {
                Ok(written) => {
                    let names: Vec<String> = written.iter().map(|p| p.display().to_string()).collect();
                    crate::report::out(format!("{}\n", names.join("\n")));
                    Ok(exit::OK)
                }
                Err(e) => {
                    Err(crate::error::Error::Other(format!("cannot write the man pages into {}: {e}", dir.display())))
                }
            });
        }
        Command::Man { dir: None } => match crate::man::page() {
            Ok(page) => buf = page,
            Err(e) => return Some(Err(crate::error::Error::Other(format!("cannot render the man page: {e}")))),
        },
        _ => return None,
    }
    crate::report::out(String::from_utf8_lossy(&buf));
    Some(Ok(exit::OK))
}

async fn dispatch(cli: Cli) -> Result<i32> {
    if let Some(done) = generated(&cli.command) {
        return done;
    }
    if let Some(region) = &cli.region {
        crate::aws::config::use_region(region);
    }
    if let Command::Discover { cluster, namespace, ingress, write_profile } = &cli.command {
        return commands::discover::run(
            cli.output,
            cluster,
            namespace.as_deref(),
            ingress.as_deref(),
            write_profile.as_deref(),
        )
        .await;
    }
    let Some(invocation) = resolve(&cli.command) else {
        return Err(crate::error::Error::Other(format!("`{}` needs no profile", cli.command.name())));
    };
    if let Some(train) = commands::waves::detect(&cli)? {
        return commands::waves::run(&cli, train, invocation).await;
    }
    if cli.command.release().is_some() || cli.command.all_waves() {
        return Err(crate::error::Error::refused_hint(
            "`--release` and `--all-waves` are for wave profiles, and this profile has no [[wave]] tables",
            "run them with `-p` naming a wave profile (see README, Waves)",
        ));
    }
    let mut settings = Settings::resolve(&cli).await?;
    settings.override_freeze = cli.command.override_freeze().map(String::from);
    let region = settings.sdk.region().map(|r| r.to_string());
    invocation.execute(&settings).await.map_err(|e| e.in_region(region.as_deref()))
}

/// The command line's command with its arguments resolved, once: every later step reads typed
/// values, never a flag. `None` for the commands that read no profile (handled before).
fn resolve(command: &Command) -> Option<Invocation> {
    Some(match command {
        Command::Validate => Invocation::Validate,
        Command::Status { watch, interval } => Invocation::Status { watch: watch.then_some(*interval) },
        Command::Set { split, dry_run, no_gates, repoint, force, .. } => Invocation::Set(commands::set::Args {
            split: *split,
            dry_run: *dry_run,
            gates: !no_gates,
            repoint: *repoint,
            force: *force,
        }),
        Command::Rollout { to, dry_run, on_interrupt, force, repoint, .. } => {
            Invocation::Rollout(commands::rollout::Args {
                to: *to,
                dry_run: *dry_run,
                on_interrupt: commands::on_interrupt(*on_interrupt == OnInterruptArg::Leave),
                force: *force,
                repoint: *repoint,
            })
        }
        Command::Advance { to, dry_run, force, repoint, .. } => Invocation::Advance(commands::advance::Args {
            to: *to,
            dry_run: *dry_run,
            force: *force,
            repoint: *repoint,
        }),
        Command::Rollback { to, dry_run, wait, wait_timeout, reason, .. } => {
            Invocation::Rollback(commands::rollback::Args {
                to: *to,
                dry_run: *dry_run,
                wait: wait.then_some(*wait_timeout),
                reason: reason.clone(),
            })
        }
        Command::Promote { dry_run, force, .. } => Invocation::Promote { dry_run: *dry_run, force: *force },
        Command::Pause { dry_run } => Invocation::Pause { pause: true, dry_run: *dry_run },
        Command::Resume { dry_run } => Invocation::Pause { pause: false, dry_run: *dry_run },
        Command::History { limit } => Invocation::History { limit: *limit },
        Command::IamPolicy { read_only, for_command } => Invocation::IamPolicy {
            read_only: *read_only,
            state_init: *for_command == Some(crate::cli::PolicyFor::StateInit),
        },
        Command::State { command: StateCommand::Init { dry_run } } => Invocation::StateInit { dry_run: *dry_run },
        Command::Discover { .. } | Command::Completions { .. } | Command::Man { .. } => return None,
    })
}
