//! The Lambda runner: the same binary, started by the Lambda runtime (`AWS_LAMBDA_RUNTIME_API`
//! set, no arguments), serves invocations such as EventBridge Scheduler's
//! `{"command": "advance", "profile": "s3://ops/cutover/myapp.toml"}`.
//!
//! Each invocation runs the command as cutover itself does from a shell — this binary again, as a
//! child process, with `-o json` — so its checks, exit codes and JSON result are the command
//! line's own. The result document is the invocation's answer; an exit other than 0 (a gate
//! rolled the stage back, a lock, bad input) fails the invocation with the result's message, so
//! the schedule's retry policy, alarms on `Errors` and a dead-letter queue see it. The state
//! table already keeps runs on many hosts (or many concurrent invocations) from fighting.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use lambda_runtime::{LambdaEvent, service_fn};
use serde::Deserialize;
use serde_json::Value;

/// What an invocation asks.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Invocation {
    /// `advance`, `status` or `rollback`.
    command: String,
    /// A profile name, a path in the function's package, or `s3://bucket/key.toml`; else
    /// `CUTOVER_PROFILE` of the function's environment.
    profile: Option<String>,
    /// `--to SIDE` for `advance` and `rollback`.
    to: Option<String>,
}

/// The command line of an invocation, without the program.
fn args_of(inv: &Invocation) -> Result<Vec<String>, String> {
    let mut args: Vec<String> = vec!["-o".into(), "json".into(), "--log-format".into(), "json".into()];
    if let Some(p) = &inv.profile {
        args.extend(["-p".into(), p.clone()]);
    }
    match inv.command.as_str() {
        "advance" => args.push("advance".into()),
        // Off a terminal nothing asks; `--yes` says so anyway.
        "rollback" => args.extend(["rollback".into(), "--yes".into()]),
        "status" => args.push("status".into()),
        other => {
            return Err(format!("unknown command `{other}`: a Lambda invocation runs advance, status or rollback"));
        }
    }
    if let Some(to) = &inv.to {
        if inv.command == "status" {
            return Err("`to` goes with advance or rollback, not status".into());
        }
        args.extend(["--to".into(), to.clone()]);
    }
    Ok(args)
}

/// Serves invocations until the runtime stops the process; the exit code when it cannot start.
pub fn serve() -> i32 {
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cutover: cannot start the Lambda runner: {e}");
            return crate::exit::UNEXPECTED;
        }
    };
    match runtime.block_on(lambda_runtime::run(service_fn(invoke))) {
        Ok(()) => crate::exit::OK,
        Err(e) => {
            eprintln!("cutover: the Lambda runtime stopped: {e}");
            crate::exit::UNEXPECTED
        }
    }
}

async fn invoke(event: LambdaEvent<Value>) -> Result<Value, lambda_runtime::Error> {
    let inv: Invocation = serde_json::from_value(event.payload.clone()).map_err(|e| {
        format!(
            "the event is not a cutover invocation ({e}): {}; expected e.g. {{\"command\": \"advance\", \"profile\": \"myapp\"}}",
            event.payload
        )
    })?;
    let args = args_of(&inv)?;
    let exe = std::env::current_exe().map_err(|e| format!("cannot find cutover's own binary: {e}"))?;
    let mut child = tokio::process::Command::new(exe);
    child.args(&args).stdin(std::process::Stdio::null()).kill_on_drop(true);
    // Stopped a second before the invocation's deadline: a result, not a timeout, says what
    // happened (a write in flight is claimed in the state table, so stopping it is safe).
    let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
    let left =
        Duration::from_millis(event.context.deadline.saturating_sub(now_ms)).saturating_sub(Duration::from_secs(1));
    let out = match tokio::time::timeout(left.max(Duration::from_secs(1)), child.output()).await {
        Ok(out) => out.map_err(|e| format!("cannot run cutover {}: {e}", inv.command))?,
        Err(_) => return Err(format!("cutover {} did not finish before the invocation's deadline", inv.command).into()),
    };
    // Its progress and logs (JSON lines) go to the function's log.
    eprint!("{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    let doc: Value = serde_json::from_str(&text).unwrap_or_else(|_| serde_json::json!({ "output": text }));
    let code = out.status.code().unwrap_or(crate::exit::UNEXPECTED);
    if code == crate::exit::OK {
        return Ok(doc);
    }
    let said = doc["error"]["message"].as_str().or_else(|| doc["message"].as_str()).unwrap_or("no message");
    Err(format!("cutover {} exited {code}: {said}", inv.command).into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inv(json: Value) -> Result<Vec<String>, String> {
        let inv: Invocation = serde_json::from_value(json).map_err(|e| e.to_string())?;
        args_of(&inv)
    }

    #[test]
    fn an_event_becomes_a_command_line() {
        assert_eq!(
            inv(serde_json::json!({"command": "advance", "profile": "s3://ops/myapp.toml", "to": "green"})).unwrap(),
            ["-o", "json", "--log-format", "json", "-p", "s3://ops/myapp.toml", "advance", "--to", "green"]
        );
        assert_eq!(inv(serde_json::json!({"command": "rollback"})).unwrap()[4..], ["rollback", "--yes"]);
        assert!(inv(serde_json::json!({"command": "set"})).unwrap_err().contains("advance, status or rollback"));
        assert!(inv(serde_json::json!({"command": "status", "to": "blue"})).is_err());
        assert!(inv(serde_json::json!({"command": "advance", "profle": "x"})).unwrap_err().contains("profle"));
    }
}
