//! Notifications (`[notify]`): each rollout transition published to SNS as JSON, and posted to a
//! Slack-compatible incoming webhook as `{"text": …}`. A sink of the rollout's events, like the
//! audit trail: what is published is what the run said. Sent in the background, in order; a
//! failure is logged and never stops anything — least of all a rollback.

use std::time::Duration;

use aws_config::SdkConfig;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::gates::redact_url;
use crate::model::RouteView;
use crate::rollout::events::{Event, Sink};

/// `[notify]`: where transitions are announced.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Notify {
    pub sns_topic_arn: Option<String>,
    pub webhook: Option<String>,
}

/// Where notifications go.
#[derive(Clone)]
struct Notifier {
    profile: String,
    sns: Option<(aws_sdk_sns::Client, String)>,
    webhook: Option<(reqwest::Client, String)>,
}

/// One notification, ready to send.
struct Message {
    event: &'static str,
    text: String,
    stage: Option<usize>,
    routes: Vec<RouteView>,
}

impl Notifier {
    /// Publishes one message; never fails.
    async fn send(&self, m: &Message) {
        let doc = serde_json::json!({
            "source": "cutover",
            "profile": self.profile,
            "event": m.event,
            "text": m.text,
            "stage": m.stage,
            "routes": m.routes,
        });
        let sns = async {
            if let Some((client, arn)) = &self.sns {
                let sent = client
                    .publish()
                    .topic_arn(arn)
                    .subject(format!("cutover {}: {}", self.profile, m.event).chars().take(100).collect::<String>())
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
                let body = serde_json::json!({ "text": format!("cutover {}: {}: {}", self.profile, m.event, m.text) });
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

/// Turns transitions into notifications, sent in the background.
pub struct NotifySink {
    tx: mpsc::UnboundedSender<Message>,
}

impl NotifySink {
    /// The sink and its sending task, when the profile has anywhere to notify.
    pub fn spawn(sdk: &SdkConfig, profile: &str, notify: &Notify) -> Option<(NotifySink, JoinHandle<()>)> {
        if notify.sns_topic_arn.is_none() && notify.webhook.is_none() {
            return None;
        }
        let notifier = Notifier {
            profile: profile.to_string(),
            sns: notify.sns_topic_arn.as_ref().map(|arn| (crate::client!(aws_sdk_sns, sdk), arn.clone())),
            webhook: notify.webhook.as_ref().map(|url| {
                // A redirect is not followed (it would post the text elsewhere): it is a refusal.
                let client = reqwest::Client::builder()
                    .user_agent(concat!("cutover/", env!("CARGO_PKG_VERSION")))
                    .redirect(reqwest::redirect::Policy::none())
                    .build()
                    .unwrap_or_default();
                (client, url.clone())
            }),
        };
        let (tx, mut rx) = mpsc::unbounded_channel::<Message>();
        let task = tokio::spawn(async move {
            while let Some(m) = rx.recv().await {
                notifier.send(&m).await;
            }
        });
        Some((NotifySink { tx }, task))
    }
}

impl Sink for NotifySink {
    fn event(&mut self, event: &Event) {
        let Some(t) = event.transition() else { return };
        // A notification has no actor field: the reason and who acted go into its text.
        let mut text = t.why.unwrap_or_default();
        if let Some(reason) = t.reason {
            text.push_str(&format!("; reason: {reason}"));
        }
        if let Some(by) = t.by {
            text.push_str(&format!(" (by {by})"));
        }
        let _ = self.tx.send(Message { event: t.notify, text, stage: t.stage, routes: t.after.to_vec() });
    }
}
