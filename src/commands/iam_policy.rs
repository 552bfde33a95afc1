//! `cutover iam-policy`: the least-privilege IAM policy the profile needs, always as JSON (it is
//! meant for IAM). A profile naming roles (`role_arn`) needs one policy per role besides the
//! caller's: they are printed together, each role with the trust policy that lets the caller in.

use crate::error::Result;
use crate::exit;
use crate::settings::Settings;

pub async fn run(settings: &Settings, read_only: bool) -> Result<i32> {
    let region = settings.sdk.region().map(|r| r.to_string()).unwrap_or_else(|| "*".into());
    let account = crate::state::account(&settings.sdk).await.unwrap_or_else(|| "*".into());
    if settings.profile.roles().is_empty() {
        crate::report::out(crate::policy::policy(&settings.profile, &region, &account, read_only));
    } else {
        if account == "*" {
            tracing::warn!(
                "the caller's account is not known (STS did not answer): put it in place of CALLER_ACCOUNT_ID in the trust policies"
            );
        }
        crate::report::out(crate::policy::policies(&settings.profile, &region, &account, read_only));
    }
    Ok(exit::OK)
}
