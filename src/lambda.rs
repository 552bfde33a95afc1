//! The Lambda runner: the same binary, started by the Lambda runtime (`AWS_LAMBDA_RUNTIME_API`
//! set, no arguments), serves invocations such as EventBridge Scheduler's `{"command": "advance"}`.
//!
//! **What an event may ask.** `command` is `advance`, `status` or `rollback`; nothing else. The
//! profile is the function's configuration, never the event's: `CUTOVER_PROFILE`, or one of
//! `CUTOVER_PROFILES` (comma-separated), which an event's `"profile"` must name exactly — no path
//! or URL an event gives is ever read, so whoever may invoke the function cannot point it at a
//! profile (or a file) of their own under the function's role. `"to"` is refused unless
//! `CUTOVER_LAMBDA_ALLOW_TO=true`: a `rollback` event goes to the recorded rollout's stable side,
//! and an `advance` event starts toward the side that is not live.
//!
//! **What it answers.** Each invocation runs the command as cutover itself does from a shell —
//! this binary again, as a child process, with `-o json` — so its checks, exit codes and JSON
//! result are the command line's own. The result document is the invocation's answer. Exit 0 is a
//! result, and so is exit 5 of `advance` (another tick holds the lease: an overlapping schedule
//! is not a failure). Any other exit fails the invocation with the command's message and an
//! `errorType` naming the outcome — `Cutover.Failed` (1), `Cutover.Invalid` (2),
//! `Cutover.RolledBack` (3), `Cutover.Split` (4), `Cutover.Locked` (5), `Cutover.Drift` (6),
//! `Cutover.Held` (7) — so alarms on `Errors`, an on-failure destination and CloudWatch Logs
//! Insights see what happened. The command's progress and logs (JSON lines) stream to the
//! function's log as they are written: a command stopped at the invocation's deadline loses none.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use lambda_runtime::{Diagnostic, LambdaEvent, service_fn};
use serde::Deserialize;
use serde_json::Value;

use crate::exit;

/// What an invocation asks.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Invocation {
    /// `advance`, `status` or `rollback`.
    command: String,
    /// One of `CUTOVER_PROFILES`, exactly; without it, `CUTOVER_PROFILE`.
    profile: Option<String>,
    /// `--to SIDE` for `advance` and `rollback`, when `CUTOVER_LAMBDA_ALLOW_TO=true`.
    to: Option<String>,
    /// `--release LABEL` for `advance` of a wave profile: the release the train rolls.
    release: Option<String>,
}

/// What the function's configuration allows an event.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Allowed {
    /// `CUTOVER_PROFILE`: the profile of an event that names none.
    pub profile: Option<String>,
    /// `CUTOVER_PROFILES`: the profiles an event may name.
    pub profiles: Vec<String>,
    /// `CUTOVER_LAMBDA_ALLOW_TO=true`: an event may name the side.
    pub to: bool,
}

impl Allowed {
    /// From the function's environment.
    pub fn from_env() -> Allowed {
        let var = |k: &str| std::env::var(k).ok().map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
        Allowed {
            profile: var("CUTOVER_PROFILE"),
            profiles: var("CUTOVER_PROFILES")
                .map(|v| v.split(',').map(|p| p.trim().to_string()).filter(|p| !p.is_empty()).collect())
                .unwrap_or_default(),
            to: var("CUTOVER_LAMBDA_ALLOW_TO").is_some_and(|v| v.eq_ignore_ascii_case("true")),
        }
    }
}

/// An event refused before anything runs: `Cutover.Invalid`.
fn invalid(message: impl Into<String>) -> Diagnostic {
    Diagnostic { error_type: error_type(exit::USAGE).into(), error_message: message.into() }
}

/// The `errorType` of a failed invocation, by the command's exit code.
pub fn error_type(code: i32) -> &'static str {
    match code {
        exit::USAGE => "Cutover.Invalid",
        exit::ROLLED_BACK => "Cutover.RolledBack",
        exit::SPLIT_UNKNOWN => "Cutover.Split",
        exit::LOCKED => "Cutover.Locked",
        exit::DRIFT => "Cutover.Drift",
        exit::HELD => "Cutover.Held",
        _ => "Cutover.Failed",
    }
}

/// The command line of an invocation, without the program; what the event may not ask is
/// refused with the reason.
fn args_of(inv: &Invocation, allowed: &Allowed) -> Result<Vec<String>, String> {
    let profile = match (&inv.profile, allowed.profiles.is_empty()) {
        (Some(p), false) if allowed.profiles.iter().any(|a| a == p) => p.clone(),
        (Some(p), _) if allowed.profile.as_deref() == Some(p.as_str()) => p.clone(),
        (Some(_), false) => {
            return Err(format!(
                "the event's `profile` is none of the function's profiles (CUTOVER_PROFILES: {})",
                allowed.profiles.join(", ")
            ));
        }
        (Some(_), true) => {
            return Err(
                "an event does not choose the profile: the function's CUTOVER_PROFILE does (or CUTOVER_PROFILES lists those an event may name)"
                    .into(),
            );
        }
        (None, _) => allowed.profile.clone().ok_or_else(|| {
            if allowed.profiles.is_empty() {
                "the function has no profile: set CUTOVER_PROFILE (or CUTOVER_PROFILES) in its configuration"
                    .to_string()
            } else {
                format!("name one of the function's profiles in the event's `profile`: {}", allowed.profiles.join(", "))
            }
        })?,
    };
    let mut args: Vec<String> = vec!["-o".into(), "json".into(), "--log-format".into(), "json".into()];
    args.extend(["-p".into(), profile]);
    match inv.command.as_str() {
        "advance" => args.push("advance".into()),
        // Off a terminal nothing asks; `--yes` says so anyway.
        "rollback" => args.extend(["rollback".into(), "--yes".into()]),
        "status" => args.push("status".into()),
        _ => return Err("unknown `command`: a Lambda invocation runs advance, status or rollback".into()),
    }
    if let Some(to) = &inv.to {
        if inv.command == "status" {
            return Err("`to` goes with advance or rollback, not status".into());
        }
        if !allowed.to {
            return Err(format!(
                "an event may not name the side (`to`) unless the function's CUTOVER_LAMBDA_ALLOW_TO=true: {} goes to {}",
                inv.command,
                if inv.command == "rollback" {
                    "the recorded rollout's stable side"
                } else {
                    "the side that is not live"
                }
            ));
        }
        if to != "blue" && to != "green" {
            return Err("`to` is blue or green".into());
        }
        args.extend(["--to".into(), to.clone()]);
    }
    if let Some(release) = &inv.release {
        if inv.command != "advance" {
            return Err("`release` goes with advance (of a wave profile)".into());
        }
        // A value, never an option: `--release=` keeps a label starting with `-` a label.
        args.push(format!("--release={release}"));
    }
    Ok(args)
}

/// Serves invocations until the runtime stops the process; the exit code when it cannot start.
pub fn serve() -> i32 {
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cutover: cannot start the Lambda runner: {e}");
            return exit::UNEXPECTED;
        }
    };
    match runtime.block_on(lambda_runtime::run(service_fn(invoke))) {
        Ok(()) => exit::OK,
        Err(e) => {
            eprintln!("cutover: the Lambda runtime stopped: {e}");
            exit::UNEXPECTED
        }
    }
}

/// At most this much of an event is quoted back in a refusal.
const QUOTED: usize = 200;

async fn invoke(event: LambdaEvent<Value>) -> Result<Value, Diagnostic> {
    let inv: Invocation = serde_json::from_value(event.payload.clone()).map_err(|e| {
        let said: String = event.payload.to_string().chars().take(QUOTED).collect();
        invalid(format!(
            "the event is not a cutover invocation ({e}): {}; expected e.g. {{\"command\": \"advance\"}}",
            crate::terminal::one_line(&said)
        ))
    })?;
    let args = args_of(&inv, &Allowed::from_env()).map_err(invalid)?;
    let failed =
        |message: String| Diagnostic { error_type: error_type(exit::UNEXPECTED).into(), error_message: message };
    let exe = std::env::current_exe().map_err(|e| failed(format!("cannot find cutover's own binary: {e}")))?;
    let mut child = tokio::process::Command::new(exe);
    // Its progress and logs go to the function's log as they are written (inherited stderr: a
    // child stopped at the deadline has lost nothing); its result comes on stdout.
    child
        .args(&args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .kill_on_drop(true);
    // Stopped a second before the invocation's deadline: a result, not a timeout, says what
    // happened (a write in flight is claimed in the state table, so stopping it is safe).
    let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
    let left =
        Duration::from_millis(event.context.deadline.saturating_sub(now_ms)).saturating_sub(Duration::from_secs(1));
    let running = child.spawn().map_err(|e| failed(format!("cannot run cutover {}: {e}", inv.command)))?;
    let out = match tokio::time::timeout(left.max(Duration::from_secs(1)), running.wait_with_output()).await {
        Ok(out) => out.map_err(|e| failed(format!("cannot run cutover {}: {e}", inv.command)))?,
        Err(_) => {
            return Err(failed(format!(
                "cutover {} did not finish before the invocation's deadline and was stopped (its log says how far it got)",
                inv.command
            )));
        }
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let doc: Value = serde_json::from_str(&text).unwrap_or_else(|_| serde_json::json!({ "output": text }));
    let code = out.status.code().unwrap_or(exit::UNEXPECTED);
    // Another tick holds the lease: this one has nothing to do — a result, not a failure.
    if code == exit::OK || (code == exit::LOCKED && inv.command == "advance") {
        return Ok(doc);
    }
    let said = doc["error"]["message"]
        .as_str()
        .or_else(|| doc["reason"].as_str())
        .or_else(|| doc["message"].as_str())
        .unwrap_or("no message");
    Err(Diagnostic {
        error_type: error_type(code).into(),
        error_message: format!("cutover {} exited {code}: {said}", inv.command),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inv(json: Value, allowed: &Allowed) -> Result<Vec<String>, String> {
        let inv: Invocation = serde_json::from_value(json).map_err(|e| e.to_string())?;
        args_of(&inv, allowed)
    }

    fn one(profile: &str) -> Allowed {
        Allowed { profile: Some(profile.into()), ..Allowed::default() }
    }

    #[test]
    fn the_profile_is_the_functions_never_the_events() {
        let cfg = one("s3://ops/myapp.toml");
        assert_eq!(
            inv(serde_json::json!({"command": "advance"}), &cfg).unwrap(),
            ["-o", "json", "--log-format", "json", "-p", "s3://ops/myapp.toml", "advance"]
        );
        for hostile in ["../elsewhere/x.toml", "/dev/zero", "s3://attacker/x.toml", "other"] {
            let err = inv(serde_json::json!({"command": "advance", "profile": hostile}), &cfg).unwrap_err();
            assert!(err.contains("does not choose the profile"), "{hostile}: {err}");
        }
        let list = Allowed { profiles: vec!["api".into(), "web".into()], ..Allowed::default() };
        assert_eq!(inv(serde_json::json!({"command": "status", "profile": "web"}), &list).unwrap()[5], "web");
        for hostile in ["api ", "profiles/api.toml", "API", "/dev/zero"] {
            let err = inv(serde_json::json!({"command": "status", "profile": hostile}), &list).unwrap_err();
            assert!(err.contains("none of the function's profiles"), "{hostile}: {err}");
        }
        assert!(inv(serde_json::json!({"command": "status"}), &list).unwrap_err().contains("api, web"));
        assert!(
            inv(serde_json::json!({"command": "status"}), &Allowed::default()).unwrap_err().contains("CUTOVER_PROFILE")
        );
    }

    #[test]
    fn an_event_names_the_side_only_where_the_function_allows_it() {
        let cfg = one("myapp");
        let err = inv(serde_json::json!({"command": "rollback", "to": "green"}), &cfg).unwrap_err();
        assert!(err.contains("CUTOVER_LAMBDA_ALLOW_TO") && err.contains("stable side"), "{err}");
        assert_eq!(inv(serde_json::json!({"command": "rollback"}), &cfg).unwrap()[6..], ["rollback", "--yes"]);
        let open = Allowed { to: true, ..cfg };
        assert_eq!(
            inv(serde_json::json!({"command": "advance", "to": "green"}), &open).unwrap()[6..],
            ["advance", "--to", "green"]
        );
        assert!(inv(serde_json::json!({"command": "advance", "to": "--force"}), &open).is_err());
        assert!(inv(serde_json::json!({"command": "set"}), &open).unwrap_err().contains("advance, status or rollback"));
        assert!(inv(serde_json::json!({"command": "status", "to": "blue"}), &open).is_err());
        assert_eq!(
            inv(serde_json::json!({"command": "advance", "release": "--force"}), &open).unwrap()[6..],
            ["advance", "--release=--force"]
        );
        assert!(inv(serde_json::json!({"command": "rollback", "release": "v2"}), &open).is_err());
        assert!(inv(serde_json::json!({"command": "advance", "profle": "x"}), &open).unwrap_err().contains("profle"));
    }

    #[test]
    fn a_failure_is_named_after_its_outcome() {
        let names: Vec<&str> = (1..=7).map(error_type).collect();
        assert_eq!(
            names,
            [
                "Cutover.Failed",
                "Cutover.Invalid",
                "Cutover.RolledBack",
                "Cutover.Split",
                "Cutover.Locked",
                "Cutover.Drift",
                "Cutover.Held"
            ]
        );
    }
}
