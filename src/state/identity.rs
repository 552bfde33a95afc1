//! Who is acting: the caller's identity from STS, asked once and only when needed.

use std::time::Duration;

use aws_config::SdkConfig;
use tokio::sync::OnceCell;

/// Who is acting, asked once and only when needed: the caller's ARN from STS (within 2 s), else
/// `unknown` — always the credentials' own identity, which the caller cannot choose. Never asked
/// before a rollback's write. `CUTOVER_ACTOR` (a pipeline's user, an on-call name) is kept beside
/// it as an annotation, never in its place.
#[derive(Clone)]
pub struct Identity {
    sdk: SdkConfig,
    actor: std::sync::Arc<OnceCell<String>>,
}

/// `CUTOVER_ACTOR`, as an annotation: one line, at most 256 characters.
pub fn actor_note() -> Option<String> {
    let a = std::env::var("CUTOVER_ACTOR").ok()?;
    let a = crate::terminal::one_line(a.trim()).chars().take(256).collect::<String>();
    (!a.is_empty()).then_some(a)
}

impl Identity {
    pub fn new(sdk: &SdkConfig) -> Identity {
        Identity { sdk: sdk.clone(), actor: std::sync::Arc::default() }
    }

    /// Who is acting, as said in a reason or a lease holder: the ARN, and `CUTOVER_ACTOR` beside it.
    pub async fn who(&self) -> String {
        let arn = self.actor().await;
        match actor_note() {
            Some(note) => format!("{arn} (CUTOVER_ACTOR {note})"),
            None => arn,
        }
    }

    /// The caller's ARN from STS, or `unknown`.
    pub async fn actor(&self) -> String {
        self.actor
            .get_or_init(|| async {
                let sts = crate::client!(aws_sdk_sts, &self.sdk);
                match tokio::time::timeout(Duration::from_secs(2), sts.get_caller_identity().send()).await {
                    Ok(Ok(out)) => out.arn.unwrap_or_else(|| "unknown".into()),
                    _ => "unknown".into(),
                }
            })
            .await
            .clone()
    }

    /// A lease holder id unique to this process: who, where, which process.
    pub async fn holder(&self) -> String {
        let host = std::env::var("HOSTNAME")
            .ok()
            .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
            .map(|h| crate::terminal::one_line(h.trim()).chars().take(253).collect::<String>())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "localhost".into());
        format!("{} on {host} pid {} #{}", self.who().await, std::process::id(), &crate::rollout::ledger::new_id()[..8])
    }
}

/// The account id of the caller, from STS, when it answers within 2 s.
pub async fn account(sdk: &SdkConfig) -> Option<String> {
    caller(sdk).await.map(|(account, _)| account)
}

/// The caller's account id and ARN, from STS, when it answers within 2 s.
pub async fn caller(sdk: &SdkConfig) -> Option<(String, String)> {
    let sts = crate::client!(aws_sdk_sts, sdk);
    match tokio::time::timeout(Duration::from_secs(2), sts.get_caller_identity().send()).await {
        Ok(Ok(out)) => Some((out.account?, out.arn.unwrap_or_default())),
        _ => None,
    }
}
