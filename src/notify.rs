//! Notifications (`[notify]`): each rollout event published to SNS as JSON, and posted to a
//! Slack-compatible incoming webhook as `{"text": …}`. A notification failure is logged and never
//! stops anything — least of all a rollback.

use std::time::Duration;

use aws_config::SdkConfig;

use crate::gates::redact_url;
use crate::profile::Notify;
use crate::state::RolloutState;

#[derive(Clone, Default)]
pub struct Notifier {
    profile: String,
    sns: Option<(aws_sdk_sns::Client, String)>,
    webhook: Option<(reqwest::Client, String)>,
}

impl Notifier {
    pub fn new(sdk: &SdkConfig, profile: &str, notify: &Notify) -> Notifier {
        Notifier {
            profile: profile.to_string(),
            sns: notify.sns_topic_arn.as_ref().map(|arn| (crate::client!(aws_sdk_sns, sdk), arn.clone())),
            webhook: notify.webhook.as_ref().map(|url| (reqwest::Client::new(), url.clone())),
        }
    }

    /// Publishes one event; never fails.
    pub async fn send(&self, event: &str, text: &str, state: &RolloutState) {
        let doc = serde_json::json!({
            "source": "cutover",
            "profile": self.profile,
            "event": event,
            "text": text,
            "stable": state.stable,
            "candidate": state.candidate,
            "status": state.status,
            "stage": state.stage,
            "stages": state.stages.len(),
            "percent": state.percent,
        });
        let sns = async {
            if let Some((client, arn)) = &self.sns {
                let sent = client
                    .publish()
                    .topic_arn(arn)
                    .subject(format!("cutover {}: {event}", self.profile).chars().take(100).collect::<String>())
                    .message(doc.to_string())
                    .send();
                match tokio::time::timeout(Duration::from_secs(5), sent).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => {
                        tracing::warn!(error = %aws_smithy_types::error::display::DisplayErrorContext(e), "SNS notification failed")
                    }
                    Err(_) => tracing::warn!("SNS notification timed out"),
                }
            }
        };
        let hook = async {
            if let Some((client, url)) = &self.webhook {
                let body = serde_json::json!({ "text": format!("cutover {}: {event}: {text}", self.profile) });
                match client.post(url).json(&body).timeout(Duration::from_secs(5)).send().await {
                    Ok(r) if r.status().is_success() => {}
                    Ok(r) => {
                        tracing::warn!(status = r.status().as_u16(), url = %redact_url(url), "webhook notification refused")
                    }
                    Err(_) => tracing::warn!(url = %redact_url(url), "webhook notification failed"),
                }
            }
        };
        tokio::join!(sns, hook);
    }
}
