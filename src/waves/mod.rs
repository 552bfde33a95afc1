//! Waves: a release train over existing profiles — one region, account or cluster at a time, a
//! one-box first, each wave baking after it completed (time, and optionally requests) with its
//! gates still passing before the next one starts.
//!
//! A wave profile is a profile with `[[wave]]` tables and no routes:
//!
//! ```toml
//! name = "checkout-global"
//! [state]
//! table = "cutover-state"
//! [[wave]]
//! profile = "checkout-onebox-eu-west-1"   # name, path or s3:// URL, resolved like `-p`
//! bake_after = "1h"
//! min_requests_after = 1000                # optional
//! ```
//!
//! This module is the train's pure part: the wave profile as parsed and checked ([`WaveProfile`]),
//! the train's state as the state table keeps it ([`TrainState`]), and what the next `advance`
//! does about it ([`plan`]). `store.rs` keeps the state in DynamoDB; `commands/waves.rs` drives the
//! member profiles with the existing commands.

pub mod store;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use crate::model::Side;
use crate::profile::ProfileError;
use crate::profile::fields::{self, Bad, Key, bad, bad_hint, duration, section, toml_message};
use crate::state::StateConfig;

/// A wave profile's top-level keys.
const KEYS: &[&str] = &["name", "description", "region", "state", "wave"];

/// The keys of a single profile that a wave profile cannot hold: the member profiles have them.
const MEMBER_KEYS: &[&str] = &["sides", "route53", "alb", "rollout", "gate", "observe", "notify"];

/// One wave: a member profile and what must hold after it completed before the next one starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Wave {
    /// The member profile as written: a name, a path or an `s3://` URL.
    pub profile: String,
    /// How long the wave bakes after its rollout completed, its gates still read.
    pub bake_after: Duration,
    /// Requests its routes must have served on the new side since it completed.
    pub min_requests_after: Option<u64>,
}

/// A validated wave profile.
#[derive(Clone, Debug)]
pub struct WaveProfile {
    /// The train's name: `name = "…"`, else the file's stem; its partition key in the state table.
    pub name: String,
    pub path: PathBuf,
    pub description: Option<String>,
    /// Where the state table is (the environment's region wins, as for any profile).
    pub region: Option<String>,
    pub state: StateConfig,
    pub waves: Vec<Wave>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTrain {
    name: Option<String>,
    description: Option<String>,
    region: Option<String>,
    state: Option<RawState>,
    wave: Vec<RawWave>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawState {
    table: String,
    lease: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWave {
    profile: String,
    bake_after: String,
    min_requests_after: Option<i64>,
}

/// Whether profile text is a wave profile: it has a top-level `wave` key. Text that does not
/// parse is left to the profile's own parser to report.
pub fn is_wave_profile(text: &str) -> bool {
    DeTable::parse(text).map(|t| t.get_ref().contains_key("wave")).unwrap_or(false)
}

/// Reads a profile file's text, if it is a wave profile (at most 1 MiB, as any profile).
pub fn read_if_wave(path: &Path) -> Option<String> {
    let meta = std::fs::metadata(path).ok()?;
    if !meta.is_file() || meta.len() > crate::profile::MAX_PROFILE_BYTES {
        return None;
    }
    let text = std::fs::read_to_string(path).ok()?;
    is_wave_profile(&text).then_some(text)
}

impl WaveProfile {
    /// Parses and checks a wave profile's text; `path` gives the default name and the errors' file.
    pub fn parse(path: &Path, text: &str) -> Result<WaveProfile, ProfileError> {
        let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("train").to_string();
        checked(stem, path, text).map_err(|Bad { key, message, hint }| ProfileError::Invalid {
            path: path.to_path_buf(),
            key,
            message,
            hint,
        })
    }
}

fn checked(stem: String, path: &Path, text: &str) -> Result<WaveProfile, Bad> {
    let doc = DeTable::parse(text).map_err(|e| bad("", toml_message(&e, text)))?;
    let span = doc.span();
    let table = doc.into_inner();
    if let Some((key, _)) = table.iter().find(|(k, _)| MEMBER_KEYS.contains(&k.get_ref().as_ref())) {
        let key = key.get_ref().to_string();
        let table =
            if key == "route53" || key == "alb" || key == "gate" { format!("[[{key}]]") } else { format!("[{key}]") };
        return Err(bad_hint(
            key,
            "a wave profile lists profiles in `[[wave]]` tables and moves no traffic of its own",
            format!("put {table} in the member profiles the waves name, or drop the `[[wave]]` tables"),
        ));
    }
    if let Some((key, _)) = table.iter().find(|(k, _)| !KEYS.contains(&k.get_ref().as_ref())) {
        return Err(bad(
            "",
            format!(
                "unknown field `{}`, expected one of {}",
                key.get_ref(),
                KEYS.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", ")
            ),
        ));
    }
    let raw: RawTrain = section(Spanned::new(span, DeValue::Table(table)), &Key::new(""), text)?;
    let name = match raw.name {
        Some(n) => {
            let ok = (1..=64).contains(&n.len()) && n.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
            if !ok {
                return Err(bad_hint(
                    "name",
                    format!("`{n}` is not a profile name"),
                    "1–64 letters, digits, `.`, `_` or `-`, e.g. name = \"checkout-global\"",
                ));
            }
            n
        }
        None => stem.clone(),
    };
    if let Some(region) = &raw.region
        && !fields::region_name(region)
    {
        return Err(bad_hint("region", format!("`{region}` is not an AWS region"), "for example \"us-west-2\""));
    }
    let Some(state) = raw.state else {
        return Err(bad_hint(
            "state",
            "a wave profile needs a [state] table: a train spans days, and its progress is kept there between `advance` calls",
            "add `[state] table = \"cutover-state\"` (the table the member profiles use) and run `cutover state init`",
        ));
    };
    let table_ok = (3..=255).contains(&state.table.len())
        && state.table.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    if !table_ok {
        return Err(bad_hint(
            "state.table",
            format!("`{}` is not a DynamoDB table name", state.table),
            "3–255 characters of a-z, A-Z, 0-9, _ - .",
        ));
    }
    let lease = match &state.lease {
        Some(l) => duration("state.lease", l, fields::LEASE)?,
        None => Duration::from_secs(60),
    };
    if raw.wave.is_empty() {
        return Err(bad_hint(
            "wave",
            "lists no waves",
            "add a [[wave]] table per profile, in the order they roll: profile = \"myapp-onebox\", bake_after = \"1h\"",
        ));
    }
    let mut waves: Vec<Wave> = Vec::new();
    for (i, w) in raw.wave.into_iter().enumerate() {
        let at = Key::new(format!("wave[{i}]"));
        let profile = w.profile.trim().to_string();
        fields::non_empty(&at.at("profile"), &profile)?;
        if names_itself(&profile, &name, &stem, path) {
            return Err(bad_hint(
                at.at("profile"),
                format!("`{profile}` is this wave profile itself"),
                "a wave names a profile with routes: the one-box, a region, an account",
            ));
        }
        if let Some(j) = waves.iter().position(|o| o.profile == profile) {
            return Err(bad_hint(
                at.at("profile"),
                format!("`{profile}` is already wave {}", j + 1),
                "each profile rolls once per train: list it once",
            ));
        }
        let bake_after = duration(&at.at("bake_after"), &w.bake_after, fields::WAVE_BAKE)?;
        let min_requests_after = match w.min_requests_after {
            None => None,
            Some(n) if (1..=1_000_000_000_000).contains(&n) => Some(n as u64),
            Some(n) => {
                return Err(bad_hint(
                    at.at("min_requests_after"),
                    format!("{n} is outside 1 – 10^12"),
                    "the requests the wave's routes must serve on the new side before the next wave starts; leave it out to bake on time alone",
                ));
            }
        };
        waves.push(Wave { profile, bake_after, min_requests_after });
    }
    Ok(WaveProfile {
        name,
        path: path.to_path_buf(),
        description: raw.description,
        region: raw.region,
        state: StateConfig { table: state.table, lease },
        waves,
    })
}

/// Whether a wave's `profile` names the wave profile: its name, its stem, or its own file.
fn names_itself(profile: &str, name: &str, stem: &str, path: &Path) -> bool {
    if profile == name || profile == stem {
        return true;
    }
    let as_path = Path::new(profile);
    match (std::fs::canonicalize(as_path), std::fs::canonicalize(path)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

// ---- the train's state ----

/// Where the train stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TrainStatus {
    /// A wave is rolling or baking, or the next one is about to start.
    Progressing,
    /// A wave failed (or was rolled back): the waves after it wait for a person.
    Halted,
    /// Every wave rolled and baked.
    Completed,
    /// `rollback --all-waves`: every wave taken back.
    RolledBack,
}

impl std::fmt::Display for TrainStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TrainStatus::Progressing => "progressing",
            TrainStatus::Halted => "halted",
            TrainStatus::Completed => "completed",
            TrainStatus::RolledBack => "rolled_back",
        })
    }
}

/// Where one wave stands, as kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WaveStatus {
    Pending,
    Progressing,
    Completed,
    RolledBack,
}

/// Where one wave stands, as `status` says it: a pending wave of a halted train is `halted`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WaveShown {
    Pending,
    Progressing,
    Completed,
    RolledBack,
    Halted,
}

impl std::fmt::Display for WaveShown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            WaveShown::Pending => "pending",
            WaveShown::Progressing => "progressing",
            WaveShown::Completed => "completed",
            WaveShown::RolledBack => "rolled_back",
            WaveShown::Halted => "halted",
        })
    }
}

/// One wave's record in the train's state item.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WaveState {
    /// The member profile as the wave profile names it.
    pub profile: String,
    pub status: WaveStatus,
    /// The side the wave rolls to (the side that was not live when it started).
    pub to: Option<Side>,
    /// The member's rollout this wave started (its id in the member's state item).
    pub rollout_id: Option<String>,
    /// The member's rollout recorded when the wave started, which is not the wave's own.
    #[serde(default)]
    pub before_id: Option<String>,
    pub started_ms: Option<u64>,
    pub completed_ms: Option<u64>,
    /// The release label the wave rolled (`--release`).
    pub release: Option<String>,
    /// Consecutive failed readings of its gates during the bake after it.
    #[serde(default)]
    pub failures: u32,
    pub reason: Option<String>,
}

impl WaveState {
    fn pending(profile: &str) -> WaveState {
        WaveState {
            profile: profile.to_string(),
            status: WaveStatus::Pending,
            to: None,
            rollout_id: None,
            before_id: None,
            started_ms: None,
            completed_ms: None,
            release: None,
            failures: 0,
            reason: None,
        }
    }
}

/// The train's state item: one per wave profile, written conditionally on `version`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrainState {
    pub version: u64,
    pub status: TrainStatus,
    /// The release the train rolls (`--release`), if the pipeline named one.
    pub release: Option<String>,
    pub waves: Vec<WaveState>,
    pub started_ms: u64,
    pub updated_ms: u64,
    pub reason: Option<String>,
}

impl TrainState {
    /// A new train over `train`'s waves, all pending.
    pub fn new(train: &WaveProfile, release: Option<String>, now_ms: u64) -> TrainState {
        TrainState {
            version: 0,
            status: TrainStatus::Progressing,
            release,
            waves: train.waves.iter().map(|w| WaveState::pending(&w.profile)).collect(),
            started_ms: now_ms,
            updated_ms: now_ms,
            reason: None,
        }
    }

    /// Whether the recorded waves are the profile's (same profiles, same order).
    pub fn matches(&self, train: &WaveProfile) -> bool {
        self.waves.len() == train.waves.len()
            && self.waves.iter().zip(&train.waves).all(|(s, w)| s.profile == w.profile)
    }

    /// The newest wave that was started (moved traffic, or began to), if any.
    pub fn newest_started(&self) -> Option<usize> {
        self.waves.iter().rposition(|w| w.status != WaveStatus::Pending)
    }

    /// Each wave as `status` shows it.
    pub fn shown(&self, k: usize) -> WaveShown {
        match self.waves[k].status {
            WaveStatus::Pending if matches!(self.status, TrainStatus::Halted | TrainStatus::RolledBack) => {
                WaveShown::Halted
            }
            WaveStatus::Pending => WaveShown::Pending,
            WaveStatus::Progressing => WaveShown::Progressing,
            WaveStatus::Completed => WaveShown::Completed,
            WaveStatus::RolledBack => WaveShown::RolledBack,
        }
    }

    /// When wave `k` may start: at once for the first (or a re-run), else once the wave before
    /// it has baked `bake_after`; `None` when it cannot be said (the wave before has not completed).
    pub fn next_start(&self, train: &WaveProfile, k: usize, now_ms: u64) -> Option<u64> {
        if self.waves[k].status != WaveStatus::Pending && self.waves[k].status != WaveStatus::RolledBack {
            return None;
        }
        if self.status != TrainStatus::Progressing {
            return None;
        }
        if k == 0 {
            return Some(now_ms);
        }
        let before = &self.waves[k - 1];
        match (before.status, before.completed_ms) {
            (WaveStatus::Completed, Some(done)) => Some(done.saturating_add(ms(train.waves[k - 1].bake_after))),
            _ => None,
        }
    }
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// What the next `advance` of a train does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Start wave `k`: its first stage (or run it again after a halt).
    Start(usize),
    /// Wave `k`'s rollout is in progress: advance it.
    Drive(usize),
    /// Wave `k` completed: read its gates during its bake; at `until_ms` (and with its requests
    /// served) the next wave starts, or, after the last, the train completes.
    Bake { wave: usize, until_ms: u64 },
    /// Halted at wave `k`: nothing moves until a person resumes the train.
    Halted(usize),
    /// Every wave rolled and baked.
    Completed,
    /// `rollback --all-waves` took every wave back.
    RolledBack,
}

/// What the next `advance` does, from the train's state and its profile's waves at `now_ms`.
pub fn plan(state: &TrainState, train: &WaveProfile) -> Step {
    match state.status {
        TrainStatus::Completed => return Step::Completed,
        TrainStatus::RolledBack => return Step::RolledBack,
        TrainStatus::Halted => return Step::Halted(state.newest_started().unwrap_or(0)),
        TrainStatus::Progressing => {}
    }
    // The first wave that has not completed; the waves before it completed in order.
    let Some(k) = state.waves.iter().position(|w| w.status != WaveStatus::Completed) else {
        let last = state.waves.len() - 1;
        return match state.waves[last].completed_ms {
            Some(done) => Step::Bake { wave: last, until_ms: done.saturating_add(ms(train.waves[last].bake_after)) },
            None => Step::Completed,
        };
    };
    match state.waves[k].status {
        WaveStatus::Progressing => Step::Drive(k),
        // A rolled-back wave of a resumed train runs again, without another bake before it.
        WaveStatus::RolledBack => Step::Start(k),
        WaveStatus::Pending if k == 0 => Step::Start(0),
        WaveStatus::Pending => {
            let before = k - 1;
            let done = state.waves[before].completed_ms.unwrap_or(state.updated_ms);
            let until_ms = done.saturating_add(ms(train.waves[before].bake_after));
            Step::Bake { wave: before, until_ms }
        }
        WaveStatus::Completed => unreachable!("k is the first wave not completed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<WaveProfile, String> {
        WaveProfile::parse(Path::new("profiles/global.toml"), text).map_err(|e| e.to_string())
    }

    const STATE: &str = "[state]\ntable = \"cutover-state\"\n";

    fn three() -> WaveProfile {
        parse(&format!(
            "name = \"checkout-global\"\n{STATE}\n[[wave]]\nprofile = \"onebox\"\nbake_after = \"1h\"\n\n\
             [[wave]]\nprofile = \"eu\"\nbake_after = \"12h\"\nmin_requests_after = 1000\n\n\
             [[wave]]\nprofile = \"s3://b/us.toml\"\nbake_after = \"2h\"\n"
        ))
        .unwrap()
    }

    #[test]
    fn a_wave_profile_lists_its_waves_in_order_with_their_bakes() {
        let t = three();
        assert_eq!(t.name, "checkout-global");
        assert_eq!(t.state.table, "cutover-state");
        let names: Vec<&str> = t.waves.iter().map(|w| w.profile.as_str()).collect();
        assert_eq!(names, ["onebox", "eu", "s3://b/us.toml"]);
        assert_eq!(t.waves[1].bake_after, Duration::from_secs(12 * 3600));
        assert_eq!(t.waves[1].min_requests_after, Some(1000));
        assert_eq!(t.waves[0].min_requests_after, None);
        assert!(is_wave_profile("[[wave]]\nprofile = \"a\"\n"));
        assert!(!is_wave_profile("[[route53]]\nzone = \"a\"\n"));
    }

    #[test]
    fn a_wave_profile_refuses_routes_no_state_no_waves_itself_and_bad_bakes() {
        let wave = "[[wave]]\nprofile = \"eu\"\nbake_after = \"1h\"\n";
        for (text, key, words) in [
            (format!("{STATE}{wave}[[route53]]\nzone = \"a.com\"\n"), "route53", "[[route53]]"),
            (format!("{STATE}{wave}[rollout]\nbake = \"1m\"\n"), "rollout", "member profiles"),
            (wave.to_string(), "state", "[state]"),
            (format!("wave = []\n{STATE}"), "wave", "no waves"),
            (format!("{STATE}[[wave]]\nprofile = \"global\"\nbake_after = \"1h\"\n"), "wave[0].profile", "itself"),
            (format!("{STATE}{wave}{wave}"), "wave[1].profile", "already wave 1"),
            (format!("{STATE}[[wave]]\nprofile = \"eu\"\nbake_after = \"60d\"\n"), "wave[0].bake_after", "outside"),
            (format!("{STATE}[[wave]]\nprofile = \"eu\"\nbake_after = \"soon\"\n"), "wave[0].bake_after", "duration"),
            (format!("{STATE}{wave}min_requests_after = 0\n"), "wave[0].min_requests_after", "outside"),
            (format!("{STATE}[[wave]]\nprofile = \"eu\"\n"), "wave[0]", "bake_after"),
            (format!("{STATE}{wave}colour = 1\n"), "wave[0].colour", "unknown field"),
        ] {
            let err = parse(&text).unwrap_err();
            assert!(err.contains(&format!("`{key}`")) && err.contains(words), "{key}: {err}");
        }
        let err = parse(&format!("{STATE}{wave}[[route53]]\nzone = \"a.com\"\n")).unwrap_err();
        assert!(err.contains("hint:"), "{err}");
    }

    fn at(state: &mut TrainState, k: usize, status: WaveStatus, completed_ms: Option<u64>) {
        state.waves[k].status = status;
        state.waves[k].completed_ms = completed_ms;
    }

    #[test]
    fn the_train_starts_each_wave_only_after_the_one_before_completed_and_baked() {
        let t = three();
        let mut s = TrainState::new(&t, Some("v2".into()), 1_000);
        assert_eq!(plan(&s, &t), Step::Start(0));
        at(&mut s, 0, WaveStatus::Progressing, None);
        assert_eq!(plan(&s, &t), Step::Drive(0));
        assert_eq!(s.next_start(&t, 1, 5_000), None, "not before wave 1 completed");
        at(&mut s, 0, WaveStatus::Completed, Some(10_000));
        let hour = 3_600_000;
        assert_eq!(plan(&s, &t), Step::Bake { wave: 0, until_ms: 10_000 + hour });
        assert_eq!(s.next_start(&t, 1, 20_000), Some(10_000 + hour));
        at(&mut s, 1, WaveStatus::Progressing, None);
        assert_eq!(plan(&s, &t), Step::Drive(1));
        at(&mut s, 1, WaveStatus::Completed, Some(50_000));
        at(&mut s, 2, WaveStatus::Completed, Some(90_000));
        // The last wave bakes too before the train completes.
        assert_eq!(plan(&s, &t), Step::Bake { wave: 2, until_ms: 90_000 + 2 * hour });
        s.status = TrainStatus::Completed;
        assert_eq!(plan(&s, &t), Step::Completed);
    }

    #[test]
    fn a_halted_train_waits_and_a_resumed_one_runs_the_failed_wave_again() {
        let t = three();
        let mut s = TrainState::new(&t, None, 0);
        at(&mut s, 0, WaveStatus::Completed, Some(10));
        at(&mut s, 1, WaveStatus::RolledBack, None);
        s.status = TrainStatus::Halted;
        assert_eq!(plan(&s, &t), Step::Halted(1));
        let shown: Vec<WaveShown> = (0..3).map(|k| s.shown(k)).collect();
        assert_eq!(shown, [WaveShown::Completed, WaveShown::RolledBack, WaveShown::Halted]);
        assert_eq!(s.next_start(&t, 2, 100), None);
        s.status = TrainStatus::Progressing;
        assert_eq!(plan(&s, &t), Step::Start(1), "no second bake of wave 1 before the re-run");
        assert_eq!(s.newest_started(), Some(1));
    }
}
