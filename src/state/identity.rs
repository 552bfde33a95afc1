//! Who is acting: the caller's identity from STS, asked once and only when needed.

use std::time::Duration;

use aws_config::SdkConfig;
use tokio::sync::OnceCell;

/// Who is acting, asked once and only when needed: `CUTOVER_ACTOR`, else the caller's ARN from
/// STS (within 2 s), else `unknown`. Never asked before a rollback's write.
#[derive(Clone)]
pub struct Identity {
    sdk: SdkConfig,
    actor: std::sync::Arc<OnceCell<String>>,
}

impl Identity {
    pub fn new(sdk: &SdkConfig) -> Identity {
        Identity { sdk: sdk.clone(), actor: std::sync::Arc::default() }
    }

    pub async fn actor(&self) -> String {
        self.actor
            .get_or_init(|| async {
                if let Ok(a) = std::env::var("CUTOVER_ACTOR")
                    && !a.trim().is_empty()
                {
                    return a;
                }
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
            .map(|h| h.trim().to_string())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "localhost".into());
        format!(
            "{} on {host} pid {} #{}",
            self.actor().await,
            std::process::id(),
            &crate::rollout::ledger::new_id()[..8]
        )
    }
}

/// The account id of the caller, from STS, when it answers within 2 s.
pub async fn account(sdk: &SdkConfig) -> Option<String> {
    let sts = crate::client!(aws_sdk_sts, sdk);
    match tokio::time::timeout(Duration::from_secs(2), sts.get_caller_identity().send()).await {
        Ok(Ok(out)) => out.account,
        _ => None,
    }
}
