//! Integration tests: the `cutover` binary run as a user runs it, against the local AWS emulator,
//! checking its exit code, its output and what changed in the emulator.

mod emulator;
#[path = "../../localstack/fixtures.rs"]
mod fixtures;
#[path = "../../localstack/proxy.rs"]
mod proxy;

mod scenario;
mod snap;

mod accounts;
mod alb;
mod aws_like;
mod cli;
mod discover;
mod faults;
mod freeze;
mod hostile;
mod judge;
mod kit;
mod lambda;
mod outputs;
mod policy;
mod published;
mod recipes;
mod rollout;
mod route53;
mod sides;
mod speed;
mod state;
mod traffic;
mod waves;

use std::path::PathBuf;

use assert_cmd::Command;
use fixtures::Aws;

/// One test's world: clients for the emulator and a folder of profiles.
pub struct World {
    pub aws: Aws,
    pub dir: tempfile::TempDir,
}

impl World {
    pub async fn new() -> World {
        let endpoint = emulator::endpoint();
        let dir = tempfile::tempdir().unwrap();
        // Empty AWS config files: nothing from the user's ~/.aws leaks into a test.
        std::fs::write(dir.path().join("aws-config"), "").unwrap();
        std::fs::write(dir.path().join("aws-credentials"), "").unwrap();
        World { aws: Aws::new(endpoint).await, dir }
    }

    /// Writes `profiles/NAME.toml` in this world's folder.
    pub fn profile(&self, name: &str, text: &str) -> PathBuf {
        let dir = self.dir.path().join("profiles");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{name}.toml"));
        std::fs::write(&path, text).unwrap();
        path
    }

    /// Writes `profile` as `profiles/NAME.toml`.
    pub fn write(&self, name: &str, profile: &scenario::Profile) -> PathBuf {
        self.profile(name, &profile.to_string())
    }

    /// `cutover` with the emulator's endpoint and test credentials, run in this world's folder
    /// (so `-p NAME` finds `profiles/NAME.toml`), never from a terminal.
    pub fn cutover(&self) -> Command {
        let mut cmd = Command::from_std(self.std_cutover());
        cmd.timeout(std::time::Duration::from_secs(60));
        cmd
    }

    /// The same command as [`World::cutover`], as a std `Command` to spawn in the background.
    pub fn std_cutover(&self) -> std::process::Command {
        let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin!("cutover"));
        cmd.current_dir(self.dir.path())
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("AWS_ENDPOINT_URL", &self.aws.endpoint)
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_REGION", "us-west-2")
            // The lock files of profiles without `[state]`: this world's own.
            .env("XDG_RUNTIME_DIR", self.dir.path().join("run"))
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_CONFIG_FILE", self.dir.path().join("aws-config"))
            .env("AWS_SHARED_CREDENTIALS_FILE", self.dir.path().join("aws-credentials"));
        cmd
    }
}

/// Runs a command, returning (exit code, stdout, stderr).
pub fn run(cmd: &mut Command) -> (i32, String, String) {
    let out = cmd.output().expect("run cutover");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs a command without blocking its task, so that lanes of one test run side by side:
/// (exit code, stdout, stderr). Killed after 60 s, as [`World::cutover`] is.
pub async fn run_async(mut cmd: std::process::Command) -> (i32, String, String) {
    use tokio::io::AsyncReadExt;
    let args: Vec<String> = cmd.get_args().map(|a| a.to_string_lossy().into_owned()).collect();
    cmd.stdin(std::process::Stdio::null()).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
    let mut child = tokio::process::Command::from(cmd).kill_on_drop(true).spawn().expect("run cutover");
    let (mut stdout, mut stderr) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let out = tokio::spawn(async move {
        let mut buf = Vec::new();
        let _ = stdout.read_to_end(&mut buf).await;
        buf
    });
    let err = tokio::spawn(async move {
        let mut buf = Vec::new();
        let _ = stderr.read_to_end(&mut buf).await;
        buf
    });
    let status = tokio::time::timeout(std::time::Duration::from_secs(60), child.wait()).await;
    let Ok(status) = status else {
        let _ = child.kill().await;
        let err = String::from_utf8_lossy(&err.await.unwrap()).into_owned();
        panic!("cutover {args:?} did not exit within 60s\n{err}");
    };
    (
        status.expect("wait for cutover").code().unwrap_or(-1),
        String::from_utf8_lossy(&out.await.unwrap()).into_owned(),
        String::from_utf8_lossy(&err.await.unwrap()).into_owned(),
    )
}

/// Runs a command that must exit `code`; returns stdout and stderr.
#[track_caller]
pub fn expect(cmd: &mut Command, code: i32) -> (String, String) {
    let (got, out, err) = run(cmd);
    assert_eq!(got, code, "exit code\n--- stdout:\n{out}\n--- stderr:\n{err}");
    (out, err)
}

/// A JSON document cutover printed.
#[track_caller]
pub fn json(out: &str) -> serde_json::Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

/// Polls `cond` every 20 ms until it holds; panics after `secs` seconds.
pub async fn wait_until<F, Fut>(secs: u64, what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while !cond().await {
        assert!(std::time::Instant::now() < deadline, "timed out after {secs}s waiting for {what}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// Waits for a background `cutover` to exit (killing it after `secs`); (code, stdout, stderr).
pub async fn finish(mut child: std::process::Child, secs: u64) -> (i32, String, String) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!("cutover did not exit within {secs}s\n{}", String::from_utf8_lossy(&out.stderr));
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Two DNS names of one load balancer (case, trailing dot and `dualstack.` aside).
pub fn fixtures_same_dns(a: &str, b: &str) -> bool {
    cutover::splitter::same_dns(a, b)
}
