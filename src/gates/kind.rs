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

/// A URL fit for logs: no user info, no query string (tokens live there).
pub fn redact_url(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let rest = rest.split(['?', '#']).next().unwrap_or(rest);
    let (host, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let host = host.rsplit_once('@').map(|(_, h)| h).unwrap_or(host);
    let had_query = url.contains('?');
    format!("{scheme}://{host}{path}{}", if had_query { "?…" } else { "" })
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
    fn urls_lose_their_secrets_in_logs() {
        assert_eq!(redact_url("https://user:pw@hooks.example.com/x?token=abc"), "https://hooks.example.com/x?…");
        assert_eq!(redact_url("http://127.0.0.1:8080/health"), "http://127.0.0.1:8080/health");
        assert_eq!(redact_url("https://h.example.com"), "https://h.example.com");
    }

    #[test]
    fn side_is_substituted() {
        assert_eq!(substitute("myapp-{side}-5xx", Side::Green), "myapp-green-5xx");
    }
}
