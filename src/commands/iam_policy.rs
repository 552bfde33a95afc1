//! `cutover iam-policy`: the least-privilege IAM policy the profile needs, always as JSON (it is
//! meant for IAM).

use crate::error::Result;
use crate::exit;
use crate::settings::Settings;

pub async fn run(settings: &Settings, read_only: bool) -> Result<i32> {
    let region = settings.sdk.region().map(|r| r.to_string()).unwrap_or_else(|| "*".into());
    let account = crate::state::account(&settings.sdk).await.unwrap_or_else(|| "*".into());
    let policy = crate::policy::policy(&settings.profile, &region, &account, read_only);
    crate::report::out(policy);
    Ok(exit::OK)
}
