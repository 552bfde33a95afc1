//! `cutover iam-policy`: the least-privilege IAM policy the profile needs, always as JSON (it is
//! meant for IAM). A profile naming roles (`role_arn`) needs one policy per role besides the
//! caller's: they are printed together, each role with the trust policy that lets the caller in.
//! `--for state-init` prints the one-off policy that creates the `[state]` table.

use crate::error::{Error, Result};
use crate::exit;
use crate::settings::Settings;

pub async fn run(settings: &Settings, read_only: bool, state_init: bool) -> Result<i32> {
    let region = settings.sdk.region().map(|r| r.to_string()).unwrap_or_else(|| "*".into());
    let caller = crate::state::identity::caller(&settings.sdk).await;
    let account = caller.as_ref().map(|(a, _)| a.clone()).unwrap_or_else(|| "*".into());
    let arn = caller.as_ref().map(|(_, arn)| arn.as_str());
    if state_init {
        let policy = crate::policy::state_init_policy(&settings.profile, &region, &account).ok_or_else(|| {
            Error::refused_hint(
                format!("profile `{}` has no [state] table", settings.profile.name),
                "add `[state] table = \"cutover-state\"` to the profile",
            )
        })?;
        crate::report::out(policy);
        return Ok(exit::OK);
    }
    if settings.profile.roles().is_empty() {
        crate::report::out(crate::policy::policy(&settings.profile, &region, &account, read_only));
    } else {
        if account == "*" {
            tracing::warn!(
                "the caller's account is not known (STS did not answer): put it in place of CALLER_ACCOUNT_ID in the trust policies"
            );
        }
        crate::report::out(crate::policy::policies(&settings.profile, &region, &account, arn, read_only));
    }
    Ok(exit::OK)
}
