//! `cutover man`: the man pages, from the parser's own definition (clap_mangen) with the sections
//! clap cannot know — ENVIRONMENT, EXIT STATUS, EXAMPLES. `man` prints cutover(1); `man --dir DIR`
//! writes it and one page per command (cutover-status(1), cutover-state-init(1), …), the pages
//! cutover(1)'s COMMANDS section names.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::CommandFactory;

use crate::cli::Cli;

/// The environment cutover reads, as `.TP` entries.
const ENVIRONMENT: &[(&str, &str)] = &[
    ("CUTOVER_PROFILE", "The profile when -p is not given: a name, a path, or an s3:// URL."),
    (
        "CUTOVER_PROFILES_DIR",
        "The folder of profiles named without a path (default ./profiles, then $XDG_CONFIG_HOME/cutover/profiles).",
    ),
    (
        "CUTOVER_ACTOR",
        "Who the caller acts for: recorded in the audit trail beside the caller's ARN, as a note (at most 256 characters).",
    ),
    ("CUTOVER_LOG", "A tracing filter for the log lines on stderr (e.g. cutover=debug)."),
    (
        "AWS_REGION, AWS_DEFAULT_REGION",
        "The AWS region, unless --region is given; the profile's region applies when none is set.",
    ),
    (
        "AWS_PROFILE, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN",
        "Credentials, from the standard AWS chain (also ~/.aws/config, web identity, container and instance roles).",
    ),
    ("AWS_ENDPOINT_URL", "One endpoint for every AWS service (the local emulator: http://127.0.0.1:4566)."),
    ("NO_COLOR", "When set and not empty, no colour on a terminal."),
];

/// The exit codes, as `.TP` entries (the README's and `--help`'s table).
const EXIT_STATUS: &[(&str, &str)] = &[
    ("0", "Done (advance: also not yet time, and nothing to do)."),
    ("1", "Unexpected error: an AWS call failed after retries, the endpoint is unreachable."),
    ("2", "Bad usage or invalid profile, or a prompt answered no; nothing was changed."),
    ("3", "A gate failed: traffic rolled back to the stable side (or never moved off it)."),
    ("4", "Traffic may be split unexpectedly: a human must look."),
    ("5", "Another run holds the rollout, or the rollout changed under this run."),
    ("6", "Drift: the live weights are not what the rollout state says."),
    ("7", "Held: a gate is inconclusive, or the rollout is paused."),
];

/// What people type, as `.TP` entries: the command, what it does.
const EXAMPLES: &[(&str, &str)] = &[
    ("cutover -p myapp rollback", "All traffic back on the stable side now (also: cutover abort)."),
    (
        "cutover -p myapp status --watch",
        "The live split, the rollout's stage, its bake and gates, redrawn until it ends.",
    ),
    (
        "cutover -p myapp rollout --to green",
        "Every stage to 100 % on green, baking and gating each; exit 3 if it rolled back.",
    ),
    ("cutover -p myapp -o json advance", "For a scheduler: at most one stage; the result's action says what it did."),
    ("cutover -p myapp set green=25 --dry-run", "The exact changes one shift would make, none made."),
    ("cutover -p myapp history --limit 5", "The last five entries of the audit trail."),
    ("cutover man --dir /usr/local/share/man/man1", "These pages, one per command."),
];

/// Roff text: backslashes and hyphens escaped, a leading dot or quote made literal.
fn roff(text: &str) -> String {
    let s = text.replace('\\', "\\e").replace('-', "\\-");
    if s.starts_with('.') || s.starts_with('\'') { format!("\\&{s}") } else { s }
}

fn section(out: &mut Vec<u8>, title: &str, entries: &[(&str, &str)]) {
    let title = if title.contains(' ') { format!("\"{title}\"") } else { title.to_string() };
    let _ = writeln!(out, ".SH {title}");
    for (term, text) in entries {
        let _ = writeln!(out, ".TP\n\\fB{}\\fR\n{}", roff(term), roff(text));
    }
}

/// cutover(1): what clap renders, then the sections it cannot know, then the version.
fn top_page(cmd: clap::Command) -> std::io::Result<Vec<u8>> {
    let man = clap_mangen::Man::new(cmd);
    let mut out = Vec::new();
    man.render_title(&mut out)?;
    man.render_name_section(&mut out)?;
    man.render_synopsis_section(&mut out)?;
    man.render_description_section(&mut out)?;
    man.render_options_section(&mut out)?;
    man.render_subcommands_section(&mut out)?;
    section(&mut out, "ENVIRONMENT", ENVIRONMENT);
    section(&mut out, "EXIT STATUS", EXIT_STATUS);
    section(&mut out, "EXAMPLES", EXAMPLES);
    man.render_version_section(&mut out)?;
    Ok(out)
}

/// A command's page: what clap renders, the exit status, and where the rest is.
fn command_page(cmd: clap::Command) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    clap_mangen::Man::new(cmd).render(&mut out)?;
    section(&mut out, "EXIT STATUS", EXIT_STATUS);
    let _ = writeln!(out, ".SH \"SEE ALSO\"\n\\fBcutover\\fR(1): environment, examples");
    Ok(out)
}

/// The parser, built as a man page sees it: subcommands named `cutover-status`, no `help`.
fn built() -> clap::Command {
    let mut cmd = Cli::command().disable_help_subcommand(true);
    cmd.build();
    cmd
}

/// cutover(1), as `cutover man` prints it.
pub fn page() -> std::io::Result<Vec<u8>> {
    top_page(built())
}

/// Writes cutover(1) and one page per command into `dir` (made if missing); the paths written.
pub fn write_pages(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let cmd = built();
    let mut written = Vec::new();
    let mut write = |name: String, page: Vec<u8>| -> std::io::Result<()> {
        let path = dir.join(format!("{name}.1"));
        std::fs::write(&path, page)?;
        written.push(path);
        Ok(())
    };
    fn each(cmd: &clap::Command, out: &mut Vec<clap::Command>) {
        for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
            out.push(sub.clone());
            each(sub, out);
        }
    }
    let mut subs = Vec::new();
    each(&cmd, &mut subs);
    write("cutover".into(), top_page(cmd)?)?;
    for sub in subs {
        let name = sub.get_display_name().unwrap_or(sub.get_name()).to_string();
        write(name, command_page(sub)?)?;
    }
    Ok(written)
}
