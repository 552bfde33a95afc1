//! What a gate kind is: everything cutover knows of one way of judging the candidate, in one
//! file behind this trait — its `[[gate]]` table (serde) and the checks of it, how it is read
//! (and checked before any traffic moves), how several gates of the kind are read together, and
//! the IAM it needs. The registry (`gates/mod.rs`) lists the kinds, one line each.

use std::time::Duration;

use serde::de::DeserializeOwned;

use crate::aws::Accounts;
use crate::error::Result;
use crate::iam::{Scope, Statement};
use crate::model::{Reading, Role, Side};
use crate::profile::fields::{Bad, Key};
pub use crate::rollout::ports::GateContext;
use crate::splitter::RouteLive;

/// A gate kind.
pub trait GateKind: Sized + 'static {
    /// `type = "…"` in the profile.
    const TYPE: &'static str;
    /// Whether it calls AWS: then `role_arn` (and `external_id`) are keys of its table, and its
    /// calls are made with that role. A kind that calls no AWS API refuses them as unknown keys.
    const AWS: bool;

    /// The `[[gate]]` table as serde reads it — `type`, `name`, `role_arn` and `external_id`
    /// taken out — with `deny_unknown_fields`.
    type Section: DeserializeOwned;
    /// The gate, checked: what the profile keeps.
    type Spec: Clone + std::fmt::Debug + PartialEq;
    /// What reads it.
    type Reader: GateCheck;

    /// Checks the table at `at` (`gate[2]`): every error names its key path.
    fn check(section: Self::Section, at: &Key) -> std::result::Result<Checked<Self::Spec>, Bad>;

    /// What reads the gate.
    fn reader(spec: &Self::Spec, env: &Env<'_>) -> Self::Reader;

    /// The IAM statements its reads need in the account of `scope`; `role` is the gate's own.
    fn policy(spec: &Self::Spec, role: Option<&Role>, scope: &Scope<'_>) -> Vec<Statement>;

    /// What the gate will do, in one line for `validate`; `None` when its type and names say it.
    fn describe(spec: &Self::Spec) -> Option<String> {
        let _ = spec;
        None
    }

    /// Reads several gates of the kind, in their order: by default each on its own, side by side.
    #[allow(async_fn_in_trait)]
    async fn read_all(readers: &[&Self::Reader], ctx: &GateContext) -> Vec<Reading> {
        futures::future::join_all(readers.iter().map(|r| r.read(ctx))).await
    }
}

/// A gate's table, checked.
pub struct Checked<S> {
    pub spec: S,
    /// When "no data" counts as a pass (`min_requests`), for the kinds that can read no data.
    pub min_requests: Option<MinRequests>,
}

impl<S> Checked<S> {
    pub fn new(spec: S) -> Checked<S> {
        Checked { spec, min_requests: None }
    }
}

/// A gate's `min_requests`: "no data" is a pass once the candidate has served this many
/// requests over `window` (errors would have been reported).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MinRequests {
    pub count: u64,
    pub window: Duration,
}

/// A gate, ready to read against the candidate.
#[allow(async_fn_in_trait)]
pub trait GateCheck {
    async fn read(&self, ctx: &GateContext) -> Reading;

    /// What can be checked before any traffic moves (what the gate names exists), refusing with
    /// exit 2 when the profile names something that is not there.
    async fn preflight(&self, candidate: Side) -> Result<()> {
        let _ = candidate;
        Ok(())
    }
}

/// What building a gate's reader is given.
pub struct Env<'a> {
    /// The gate's label: its `name`, or its type and position.
    pub name: &'a str,
    /// The gate's own role.
    pub role: Option<&'a Role>,
    pub aws: &'a Accounts,
    /// The routes as read: where the candidate's target groups and load balancers are.
    pub routes: &'a [RouteLive],
    /// One HTTP client for every gate that calls a URL.
    pub http: &'a reqwest::Client,
    /// How old a minute must be before its metrics are read as final (`[observe] settle`).
    pub settle: std::time::Duration,
}

impl Env<'_> {
    /// The SDK configuration of the gate's role (the caller's without one).
    pub fn sdk(&self) -> &aws_config::SdkConfig {
        self.aws.of(self.role)
    }
}

/// `{side}` replaced by the candidate.
pub fn substitute(s: &str, side: Side) -> String {
    s.replace("{side}", side.as_str())
}

/// A URL fit for output, logs, the state table and notifications: its scheme and host (and port)
/// only. Tokens live in the rest — Slack's, Teams' and Chime's in the path, others in the query
/// or the user info — so the rest is never shown: a short hash of it (`#1a2b3c4d`) tells two
/// URLs of one host apart without saying anything of it.
pub fn redact_url(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let host = authority.rsplit_once('@').map(|(_, h)| h).unwrap_or(authority);
    let had_user = authority.contains('@');
    let tail = tail.trim_start_matches('/');
    let shown = format!("{scheme}://{}", crate::terminal::one_line(host));
    if tail.is_empty() && !had_user {
        return shown;
    }
    // FNV-1a over what is hidden: stable across runs and hosts, 32 bits (says nothing of a token).
    let hash = url.bytes().fold(0x811c_9dc5_u32, |h, b| (h ^ u32::from(b)).wrapping_mul(0x0100_0193));
    format!("{shown}/…#{hash:08x}")
}

/// The most of a response body a gate reads: 1 MiB. A body that goes on is not read further.
pub const BODY_CAP: usize = 1024 * 1024;

/// A redirect the gate's URL answered — never followed: a 307 would send the gate's POST (or GET)
/// to wherever the Location says, and the verdict would be that host's — as `307 redirect to
/// other.example.com (not followed)`, naming the Location's host only.
pub fn redirect_of(resp: &reqwest::Response) -> Option<String> {
    if !resp.status().is_redirection() {
        return None;
    }
    let location = resp.headers().get(reqwest::header::LOCATION).and_then(|v| v.to_str().ok());
    let to = match location.map(|l| resp.url().join(l)) {
        Some(Ok(u)) => {
            u.host_str().map(|h| crate::terminal::one_line(h).into_owned()).unwrap_or_else(|| "no host".into())
        }
        Some(Err(_)) => "an unreadable Location".into(),
        None => "no Location".into(),
    };
    Some(format!("{} redirect to {to} (not followed)", resp.status().as_u16()))
}

/// A response's body, at most [`BODY_CAP`] bytes of it: `Err` past the cap or when the body
/// cannot be read.
pub async fn body_capped(mut resp: reqwest::Response) -> std::result::Result<Vec<u8>, String> {
    if resp.content_length().is_some_and(|n| n > BODY_CAP as u64) {
        return Err("body larger than 1 MiB (not read)".into());
    }
    let mut body = Vec::new();
    loop {
        match resp.chunk().await {
            Ok(Some(chunk)) => {
                body.extend_from_slice(&chunk);
                if body.len() > BODY_CAP {
                    return Err("body larger than 1 MiB (read no further)".into());
                }
            }
            Ok(None) => return Ok(body),
            Err(e) if e.is_timeout() => return Err("body not read whole within the timeout".into()),
            Err(_) => return Err("body unreadable".into()),
        }
    }
}

/// A `min_requests` count at `at`, over `window`.
pub fn min_requests(at: &Key, count: Option<i64>, window: Duration) -> std::result::Result<Option<MinRequests>, Bad> {
    match count {
        None => Ok(None),
        Some(n) if n < 1 => Err(crate::profile::fields::bad_hint(
            at.at("min_requests"),
            format!("{n} is not a request count"),
            "at least 1: how many requests the candidate must have served for \"no data\" to mean no errors",
        )),
        Some(n) => Ok(Some(MinRequests { count: n as u64, window })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_keep_their_scheme_and_host_only() {
        let slack = redact_url("https://hooks.slack.com/services/T000/B000/SECRET");
        assert!(slack.starts_with("https://hooks.slack.com/…#") && !slack.contains("SECRET"), "{slack}");
        let user = redact_url("https://user:pw@hooks.example.com/x?token=abc");
        assert!(user.starts_with("https://hooks.example.com/…#") && !user.contains("pw") && !user.contains("abc"));
        assert!(redact_url("http://127.0.0.1:8080/health").starts_with("http://127.0.0.1:8080/…#"));
        assert_eq!(redact_url("https://h.example.com"), "https://h.example.com");
        assert_eq!(redact_url("https://h.example.com/"), "https://h.example.com");
        // Two URLs of one host are told apart; one URL reads the same every time.
        assert_ne!(redact_url("https://h.example.com/a"), redact_url("https://h.example.com/b"));
        assert_eq!(redact_url("https://h.example.com/a"), redact_url("https://h.example.com/a"));
        assert!(!redact_url("https://h.example.com#frag").contains("frag"));
    }

    #[test]
    fn side_is_substituted() {
        assert_eq!(substitute("myapp-{side}-5xx", Side::Green), "myapp-green-5xx");
    }
}
