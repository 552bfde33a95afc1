//! The recipes in `examples/` run as their platform runs them: the CodePipeline action's build
//! commands, read from its buildspec, in one bash (as CodeBuild's buildspec 0.2 runs them), with
//! the real `cutover` against the emulator. And the kit's own scripts as a person runs them.

use std::process::Stdio;

use crate::emulator::unique;
use crate::scenario::{Front, Gate, Profile, Rollout};
use crate::{World, expect, finish, json, wait_until};

/// The commands of one phase of a buildspec, in order (`- …` items under `phases.PHASE.commands`).
fn buildspec_commands(path: &str, phase: &str) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut commands = Vec::new();
    let mut inside = false;
    for line in text.lines() {
        if line.starts_with("  ") && !line.starts_with("   ") && !line.trim_start().starts_with('#') {
            inside = line.trim() == format!("{phase}:");
        } else if !line.starts_with(' ') && !line.is_empty() {
            inside = false;
        } else if inside && let Some(cmd) = line.trim_start().strip_prefix("- ") {
            commands.push(cmd.to_string());
        }
    }
    commands
}

/// `commands` as CodeBuild runs a phase: one shell, stopping at the first command that fails with
/// its status; the `CUTOVER_*` variables left in `exported.env` whatever happens.
fn build_script(commands: &[String]) -> String {
    let mut s = String::from("trap 'env | grep ^CUTOVER_ | sort > exported.env' EXIT\n");
    for c in commands {
        s.push_str(&format!("{c} || exit $?\n"));
    }
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolled_back_pipeline_build_fails_with_exit_3_and_says_why_on_its_last_line() {
    let w = World::new().await;
    let f = Front::new(&w.aws).await;
    let alarm = unique("al-green-");
    w.aws.alarm(&alarm).await;
    let rollout = Rollout::new(&[10.0, 50.0, 100.0]).bake("60s").poll("100ms").failure_threshold(2).max_hold("30s");
    w.write(
        "svc",
        &Profile::new().alb(f.route()).rollout(rollout).gate(Gate::alarm(&[&alarm])).state(&unique("pipe-")),
    );
    expect(w.cutover().args(["-p", "svc", "state", "init"]), 0);
    let root = env!("CARGO_MANIFEST_DIR");
    std::os::unix::fs::symlink(format!("{root}/examples"), w.dir.path().join("examples")).unwrap();
    let commands = buildspec_commands(&format!("{root}/examples/codepipeline/buildspec.yml"), "build");
    assert!(commands.len() >= 2, "{commands:?}");

    // The build's shell: cutover on the PATH, the emulator's environment, the project's variables.
    let template = w.std_cutover();
    let bin = std::path::Path::new(template.get_program()).parent().unwrap().to_path_buf();
    let mut bash = std::process::Command::new("bash");
    bash.current_dir(w.dir.path()).env_clear();
    for (k, v) in template.get_envs() {
        if let Some(v) = v {
            bash.env(k, v);
        }
    }
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    bash.env("PATH", path).env("CUTOVER_PROFILE", "svc").env("CUTOVER_TO", "green");
    let child = bash
        .args(["-c", &build_script(&commands)])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_until(30, "the first stage", || async { f.weights().await == (90, 10) }).await;
    w.aws.set_alarm(&alarm, "ALARM").await;
    let (code, out, err) = finish(child, 60).await;

    assert_eq!(code, 3, "the build fails with the rollout's exit code, not 1\n{out}\n{err}");
    assert_eq!(f.weights().await, (100, 0));
    let last = out.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("build: FAILED (exit 3): gate") && last.contains(&alarm) && last.contains("ALARM"),
        "the reason last: {out}"
    );
    let exported = std::fs::read_to_string(w.dir.path().join("exported.env")).unwrap();
    let var =
        |name: &str| exported.lines().find_map(|l| l.strip_prefix(&format!("{name}="))).unwrap_or_default().to_string();
    assert_eq!(var("CUTOVER_EXIT_CODE"), "3", "{exported}");
    assert_eq!(var("CUTOVER_OUTCOME"), "rolled-back", "{exported}");
    assert!(var("CUTOVER_REASON").contains(&alarm), "{exported}");
    let (status, _) = expect(w.cutover().args(["-p", "svc", "-o", "json", "status"]), 0);
    let id = json(&status)["rollout_id"].as_str().unwrap().to_string();
    assert_eq!(var("CUTOVER_ROLLOUT_ID"), id, "{exported}");
    assert!(out.contains(&format!("rollout {id}")), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sourcing_env_sh_points_a_shell_at_the_emulator_and_never_changes_it() {
    // The emulator behind a proxy of this test's own, which sees every call made to it.
    let proxy = crate::emulator::proxy(crate::proxy::Config::default());
    let port = proxy.endpoint.rsplit(':').next().unwrap().to_string();
    let root = env!("CARGO_MANIFEST_DIR");
    let mut bash = std::process::Command::new("bash");
    bash.current_dir(root)
        .env("CUTOVER_EMULATOR_PORT", &port)
        .args(["-c", ". localstack/env.sh >/dev/null && echo \"$AWS_ENDPOINT_URL\" && command -v cutover"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let (code, out, err) = finish(bash.spawn().unwrap(), 600).await;
    assert_eq!(code, 0, "{out}\n{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.first().copied(), Some(proxy.endpoint.as_str()), "{out}");
    assert!(lines.get(1).is_some_and(|l| l.ends_with("target/debug/cutover")), "{out}");
    // The build's progress is shown, never swallowed (a cold build is minutes long).
    assert!(err.contains("Finished"), "cargo's progress: {err}");
    // Nothing was seeded, reset or read: the emulator got no call at all.
    let calls: Vec<String> = proxy.calls().iter().map(|c| format!("{} {}", c.service, c.operation)).collect();
    assert!(calls.is_empty(), "sourcing env.sh called the emulator: {calls:?}");
}

/// The Lambda README's build-and-deploy block, run by bash with `cargo`, `aws`, `cutover`, `cp` and
/// `zip` answered by functions that only say how they were called: nothing is built or deployed.
fn lambda_build_and_deploy(arch: Option<&str>) -> String {
    let root = env!("CARGO_MANIFEST_DIR");
    let readme = std::fs::read_to_string(format!("{root}/examples/lambda/README.md")).unwrap();
    let block = readme.split("```sh\n").nth(1).and_then(|b| b.split("```").next()).unwrap().to_string();
    let block = match arch {
        Some(a) => block.replacen("ARCH=arm64", &format!("ARCH={a}"), 1),
        None => block,
    };
    let stubs = "for c in cargo aws cutover cp zip; do eval \"$c() { echo $c \\\"\\$*\\\"; }\"; done\n";
    // In a folder of its own: the block writes policy.json.
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new("bash")
        .current_dir(dir.path())
        .args(["-c", &format!("{stubs}{block}")])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn the_lambda_readme_builds_and_deploys_for_one_architecture_named_once() {
    let root = env!("CARGO_MANIFEST_DIR");
    let template = std::fs::read_to_string(format!("{root}/examples/lambda/template.yaml")).unwrap();
    assert!(template.contains("AllowedValues: [arm64, x86_64]"), "the template's architectures");
    for (arch, flag) in [(None, "--arm64"), (Some("x86_64"), "--x86-64")] {
        let said = lambda_build_and_deploy(arch);
        let build = said.lines().find(|l| l.starts_with("cargo lambda build")).unwrap_or_default();
        let deploy = said.lines().find(|l| l.starts_with("aws cloudformation deploy")).unwrap_or_default();
        assert!(build.split(' ').any(|w| w == flag), "{arch:?}: {said}");
        let given = format!("Architecture={}", arch.unwrap_or("arm64"));
        assert!(deploy.split(' ').any(|w| w == given), "{arch:?}: {said}");
    }
}
