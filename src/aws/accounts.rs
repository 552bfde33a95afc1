//! The accounts of a run: the caller's SDK configuration, and one per role the profile names,
//! whose credentials come from STS AssumeRole.

use aws_config::SdkConfig;

use super::errors::RoleNotAssumed;
use crate::model::Role;

/// The SDK configurations of one run: the caller's, and one per role the profile names
/// (`role_arn` on a route, a side or a gate). A role's credentials come from STS AssumeRole,
/// called with the caller's, under the session name `cutover-PROFILE` (CloudTrail shows it); the
/// SDK's identity cache keeps them and assumes the role again before they expire. Nothing is
/// called before a client of the role makes its first call.
#[derive(Clone, Debug)]
pub struct Accounts {
    caller: SdkConfig,
    roles: std::collections::BTreeMap<Role, SdkConfig>,
}

impl Accounts {
    /// The caller's configuration and one for each of `roles` — each with where the profile
    /// names it (`route53[0].role_arn, …`, for a refusal), sessions named after `profile`. Builds
    /// clients only.
    pub fn new(caller: SdkConfig, profile: &str, roles: Vec<(Role, String)>) -> Accounts {
        let session = session_name(profile);
        // One STS client for every role: the caller's, like every other client (call recorder,
        // retries, no retry of a refused connection).
        let sts = crate::client!(aws_sdk_sts, &caller);
        let mut configs = std::collections::BTreeMap::new();
        for (role, named_at) in roles {
            let provider = RoleCredentials { role: role.clone(), named_at, session: session.clone(), sts: sts.clone() };
            let config = caller
                .to_builder()
                .credentials_provider(aws_sdk_sts::config::SharedCredentialsProvider::new(provider))
                // A cache of its own, shared by every client of the role: the caller's holds the
                // caller's credentials. It assumes the role again before the credentials expire.
                .identity_cache(aws_config::identity::IdentityCache::lazy().build())
                .build();
            configs.insert(role, config);
        }
        Accounts { caller, roles: configs }
    }

    /// The configuration for a resource of `role` (the caller's when it has none).
    pub fn of(&self, role: Option<&Role>) -> &SdkConfig {
        match role {
            None => &self.caller,
            Some(role) => self.roles.get(role).expect("every role of the profile has its configuration"),
        }
    }

    /// The place of `role`'s entry in `per_role` — what a reader holds for each account it calls
    /// (its clients) — made from the role's configuration by `make` when the role is first seen.
    pub fn slot<T>(
        &self,
        per_role: &mut Vec<(Option<Role>, T)>,
        role: Option<&Role>,
        make: impl FnOnce(&SdkConfig) -> T,
    ) -> usize {
        if let Some(i) = per_role.iter().position(|(r, _)| r.as_ref() == role) {
            return i;
        }
        per_role.push((role.cloned(), make(self.of(role))));
        per_role.len() - 1
    }
}

/// A role's credentials from STS AssumeRole, as the caller; a refusal names the role
/// ([`RoleNotAssumed`]).
#[derive(Debug)]
struct RoleCredentials {
    role: Role,
    /// Where the profile names it, for the refusal: `route53[0].role_arn, alb[0].role_arn`.
    named_at: String,
    session: String,
    sts: aws_sdk_sts::Client,
}

impl RoleCredentials {
    /// The role and where the profile names it.
    fn label(&self) -> String {
        format!("{} ({})", self.role.arn, self.named_at)
    }

    async fn assume(&self) -> Result<aws_credential_types::Credentials, RoleNotAssumed> {
        let out = self
            .sts
            .assume_role()
            .role_arn(&self.role.arn)
            .role_session_name(&self.session)
            .set_external_id(self.role.external_id.clone())
            .send()
            .await
            .map_err(|e| RoleNotAssumed::of(self.label(), &e))?;
        let Some(c) = out.credentials else {
            return Err(RoleNotAssumed {
                role: self.label(),
                what: "STS answered no credentials".into(),
                transient: true,
            });
        };
        let expiry = std::time::SystemTime::try_from(c.expiration).ok();
        Ok(aws_credential_types::Credentials::new(
            c.access_key_id,
            c.secret_access_key,
            Some(c.session_token),
            expiry,
            "cutover role_arn",
        ))
    }
}

impl aws_credential_types::provider::ProvideCredentials for RoleCredentials {
    fn provide_credentials<'a>(&'a self) -> aws_credential_types::provider::future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        aws_credential_types::provider::future::ProvideCredentials::new(async move {
            self.assume().await.map_err(aws_credential_types::provider::error::CredentialsError::provider_error)
        })
    }
}

/// `cutover-PROFILE`, as AssumeRole takes a session name: 2–64 characters of letters, digits and
/// `+=,.@-_` (others become `-`).
fn session_name(profile: &str) -> String {
    format!("cutover-{profile}")
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || "+=,.@-_".contains(c) { c } else { '-' })
        .take(64)
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_session_name_is_one_sts_accepts() {
        assert_eq!(super::session_name("myapp"), "cutover-myapp");
        assert_eq!(super::session_name("my app/ü"), "cutover-my-app--");
        assert_eq!(super::session_name(&"x".repeat(80)).len(), 64);
    }
}
