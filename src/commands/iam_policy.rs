//! `cutover iam-policy`: the least-privilege IAM policy the profile needs, always as JSON (it is
//! meant for IAM).

use crate::error::Result;
use crate::exit;
use crate::settings::Settings;

pub async fn run(settings: &Settings, read_only: bool) -> Result<i32> {
    let region = settings.sdk.region().map(|r| r.to_string()).unwrap_or_else(|| "*".into());
    let account = crate::state::account(&settings.sdk).await.unwrap_or_else(|| "*".into());
    let mut policy = crate::policy::policy(&settings.profile, &region, &account, read_only);
    if let Some(location) = settings.profile.path.to_str().and_then(|p| p.strip_prefix("s3://")) {
        // The profile itself, read from S3 by every command.
        let arn = format!("arn:{}:s3:::{location}", crate::policy::partition(&region));
        policy.statement.push(serde_json::json!({
            "Sid": "ProfileObject", "Effect": "Allow", "Action": ["s3:GetObject"], "Resource": [arn]
        }));
    }
    crate::report::out(policy);
    Ok(exit::OK)
}
