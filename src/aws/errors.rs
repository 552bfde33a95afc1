//! SDK errors into the core's [`Error`]: whether trying again may help (throttled, a 5xx, a
//! timeout, a connection that failed), and one readable sentence with a hint in place of the SDK's
//! chain of debug dumps.

use crate::error::Error;

/// The SDK's error type of an operation, as every client returns it.
pub type SdkError<E> =
    aws_smithy_runtime_api::client::result::SdkError<E, aws_smithy_runtime_api::client::orchestrator::HttpResponse>;

/// An SDK error, with its whole chain of causes, as the core's error for `action`
/// ("ListResourceRecordSets on zone Z1"): the service, one sentence, a hint, and whether it is
/// transient.
pub fn error<E>(action: impl Into<String>, err: SdkError<E>) -> Error
where
    E: std::error::Error + aws_smithy_types::error::metadata::ProvideErrorMetadata + Send + Sync + 'static,
{
    let transient = is_transient(&err);
    let (service, message) = describe_error(&err);
    Error::Aws { action: format!("{service} {}", action.into()), message, transient }
}

/// STS did not give the credentials of a profile's role: why, in words (with the hint, when
/// the refusal has one), and whether trying again may help (throttled, timed out).
#[derive(Debug)]
pub struct RoleNotAssumed {
    /// The role's ARN, and where the profile names it.
    pub role: String,
    pub what: String,
    pub transient: bool,
}

impl std::fmt::Display for RoleNotAssumed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "could not assume the role {}: {}", self.role, self.what)
    }
}

impl std::error::Error for RoleNotAssumed {}

impl RoleNotAssumed {
    pub(super) fn of(
        role: String,
        e: &SdkError<aws_sdk_sts::operation::assume_role::AssumeRoleError>,
    ) -> RoleNotAssumed {
        let (_, text) = describe_error(e);
        let denied = e.as_service_error().and_then(|s| s.meta().code()) == Some("AccessDenied");
        let what = match (denied, text.split_once("\nhint: ")) {
            (true, Some((what, _))) => format!(
                "{what}\nhint: the caller needs `sts:AssumeRole` on the role, and the role's trust policy must let the caller's account in (with the profile's `external_id`, if it gives one): `cutover iam-policy` prints both"
            ),
            _ => text,
        };
        RoleNotAssumed { role, what, transient: is_transient(e) }
    }
}

/// The first error of type `T` in an error's chain of causes (the error itself included).
fn cause_of<'a, T: std::error::Error + 'static>(err: &'a (dyn std::error::Error + 'static)) -> Option<&'a T> {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cause {
        if let Some(found) = e.downcast_ref::<T>() {
            return Some(found);
        }
        cause = e.source();
    }
    None
}

/// Error codes AWS answers when a caller should slow down (the SDK's own retry classifier knows
/// the same list) or when the service failed this time.
const TRANSIENT_CODES: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottledException",
    "TooManyRequestsException",
    "ProvisionedThroughputExceededException",
    "TransactionInProgressException",
    "RequestLimitExceeded",
    "BandwidthLimitExceeded",
    "LimitExceededException",
    "RequestThrottled",
    "SlowDown",
    "PriorRequestNotComplete",
    "EC2ThrottledException",
    "RequestTimeout",
    "RequestTimeoutException",
    "InternalError",
    "InternalFailure",
    "InternalServerError",
    "ServiceUnavailable",
];

/// Whether a failed call may succeed if tried again later: it timed out, could not connect, got a
/// garbled answer, or AWS throttled it or failed with a 5xx. Classified by the SDK's typed error
/// variants and the error code, never by the message.
pub fn is_transient<E>(err: &SdkError<E>) -> bool
where
    E: std::error::Error + aws_smithy_types::error::metadata::ProvideErrorMetadata + 'static,
{
    use aws_smithy_runtime_api::client::result::SdkError as S;
    if let Some(refused) = cause_of::<RoleNotAssumed>(err) {
        return refused.transient;
    }
    match err {
        S::TimeoutError(_) | S::DispatchFailure(_) | S::ResponseError(_) => true,
        S::ServiceError(e) => {
            e.raw().status().as_u16() >= 500 || e.err().code().is_some_and(|c| TRANSIENT_CODES.contains(&c))
        }
        S::ConstructionFailure(_) => false,
        _ => false,
    }
}

/// A failed AWS call in words: the service (`route53`), and one sentence — `AccessDenied: User …
/// is not authorized …` — with a hint where the user can act, in place of the SDK's chain of
/// debug dumps.
pub fn describe_error<E>(err: &SdkError<E>) -> (String, String)
where
    E: std::error::Error + aws_smithy_types::error::metadata::ProvideErrorMetadata + Send + Sync + 'static,
{
    use aws_smithy_runtime_api::client::result::SdkError as S;
    let service = service_of::<E>();
    if let Some(refused) = cause_of::<RoleNotAssumed>(err) {
        return (service, refused.to_string());
    }
    let root = |e: &(dyn std::error::Error + 'static)| {
        let mut last = e.to_string();
        let mut cause = e.source();
        while let Some(c) = cause {
            last = c.to_string();
            cause = c.source();
        }
        last
    };
    let (what, hint) = match err {
        S::ServiceError(se) => {
            // An answer without an error code (a proxy's or an emulator's bare 500) is named by
            // its HTTP status; a 5xx says its status beside the code.
            let status = se.raw().status().as_u16();
            let message = se.err().message().unwrap_or("").trim().to_string();
            let said = match se.err().code() {
                Some(code) if status >= 500 => format!("{code} (HTTP {status} from {})", endpoint_of(&service)),
                Some(code) => code.to_string(),
                None if status >= 500 => {
                    format!("HTTP {status} without an error code from {}", endpoint_of(&service))
                }
                None => format!("HTTP {status} without an error code"),
            };
            let hint = se.err().code().and_then(hint_for_code).or_else(|| {
                (status >= 500).then(|| {
                    format!("the endpoint failed the call {} times; try again in a minute", super::config::MAX_ATTEMPTS)
                })
            });
            (if message.is_empty() { said } else { format!("{said}: {message}") }, hint)
        }
        S::DispatchFailure(d) if super::http::connection_refused(err) => (
            format!(
                "could not connect to {}: {}",
                endpoint_of(&service),
                d.as_connector_error().map(|c| root(c)).unwrap_or_else(|| root(err))
            ),
            Some(match endpoint_env(&service) {
                Some((var, url)) => format!("nothing listens at {url} ({var}): for the local emulator, `. localstack/env.sh` starts it; unset {var} to reach AWS"),
                None => "nothing listens at the endpoint: check the network and proxy settings".into(),
            }),
        ),
        S::DispatchFailure(_) => (
            format!("could not reach {}: {}", endpoint_of(&service), root(err)),
            Some("check the network, proxy settings and AWS_ENDPOINT_URL".into()),
        ),
        S::TimeoutError(_) => (
            format!("timed out reaching {}", endpoint_of(&service)),
            Some("AWS did not answer in time; the network may be slow or blocked — try again".into()),
        ),
        S::ConstructionFailure(_) => (
            root(err),
            Some("no credentials could be loaded? check AWS_PROFILE (`aws sso login`), or AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY".into()),
        ),
        _ => (root(err), None),
    };
    // A region no partition knows is the likeliest reason an endpoint failed or was not found.
    let unknown_region = matches!(err, S::DispatchFailure(_) | S::TimeoutError(_))
        || matches!(err, S::ServiceError(se) if se.raw().status().as_u16() >= 500);
    let hint = match super::regions::unknown_region_hint().filter(|_| unknown_region) {
        Some(region) => Some(region),
        None => hint,
    };
    let hint = hint.map(|h| format!("\nhint: {h}")).unwrap_or_default();
    (service, format!("{what}{hint}"))
}

/// The environment variable that sets `service`'s endpoint, and its value: the service's own
/// (`AWS_ENDPOINT_URL_DYNAMODB`) before the shared `AWS_ENDPOINT_URL`.
fn endpoint_env(service: &str) -> Option<(String, String)> {
    let id = match service {
        "route53" => "ROUTE_53".to_string(),
        "elbv2" => "ELASTIC_LOAD_BALANCING_V2".to_string(),
        s => s.to_ascii_uppercase(),
    };
    [format!("AWS_ENDPOINT_URL_{id}"), "AWS_ENDPOINT_URL".to_string()].into_iter().find_map(|var| {
        let url = std::env::var(&var).ok().filter(|v| !v.trim().is_empty())?;
        Some((var, crate::terminal::one_line(url.trim()).to_string()))
    })
}

/// The endpoint a call of `service` went to, as far as the environment says: its URL, or AWS's.
fn endpoint_of(service: &str) -> String {
    match endpoint_env(service) {
        Some((var, url)) => format!("{url} ({var})"),
        None => match super::regions::current() {
            Some(region) => format!("AWS's {service} endpoint in {region}"),
            None => format!("AWS's {service} endpoint"),
        },
    }
}

/// `route53` out of `aws_sdk_route53::operation::…::SomeError`.
fn service_of<E>() -> String {
    let name = std::any::type_name::<E>();
    name.strip_prefix("aws_sdk_")
        .and_then(|r| r.split("::").next())
        .map(|s| match s {
            "elasticloadbalancingv2" => "elbv2".to_string(),
            s => s.to_string(),
        })
        .unwrap_or_else(|| "AWS".into())
}

/// What a user can do about an error code.
fn hint_for_code(code: &str) -> Option<String> {
    let c = code.to_ascii_lowercase();
    if c.contains("accessdenied") || c == "unauthorizedoperation" || c.contains("notauthorized") {
        Some("the caller lacks a permission: `cutover iam-policy` prints what this profile needs".into())
    } else if matches!(
        code,
        "ExpiredToken"
            | "ExpiredTokenException"
            | "InvalidClientTokenId"
            | "UnrecognizedClientException"
            | "SignatureDoesNotMatch"
            | "InvalidSignatureException"
    ) {
        Some(
            "the credentials are missing, expired or wrong: check AWS_PROFILE (`aws sso login`) or the AWS_* variables"
                .into(),
        )
    } else if TRANSIENT_CODES.contains(&code) {
        Some(format!("AWS still refused after {} attempts; try again in a minute", super::config::MAX_ATTEMPTS))
    } else if c.contains("notfound") || c.starts_with("nosuch") {
        Some(
            "check the name in the profile, and that AWS_REGION (or the profile's `region`) is the resource's region"
                .into(),
        )
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    //! How a failed AWS call reads: one sentence and a hint, snapshotted. The service's answer is
    //! replayed through the SDK's own stack (aws-smithy-mocks).

    use aws_sdk_cloudwatch::operation::describe_alarms::DescribeAlarmsError;
    use aws_smithy_mocks::mock;
    use aws_smithy_types::error::ErrorMetadata;

    async fn failing(code: &'static str, message: &'static str) -> crate::error::Error {
        let rule = mock!(aws_sdk_cloudwatch::Client::describe_alarms).then_error(move || {
            DescribeAlarmsError::generic(ErrorMetadata::builder().code(code).message(message).build())
        });
        let client = crate::replay::cloudwatch(&[&rule]);
        let err = client.describe_alarms().send().await.unwrap_err();
        super::error("DescribeAlarms", err)
    }

    #[tokio::test]
    async fn aws_errors_read_as_one_sentence_with_a_hint() {
        let denied = failing(
            "AccessDenied",
            "User: arn:aws:sts::123456789012:assumed-role/ci/build is not authorized to perform: cloudwatch:DescribeAlarms",
        )
        .await;
        let expired = failing("ExpiredToken", "The security token included in the request is expired").await;
        assert!(!denied.is_transient());
        insta::assert_snapshot!(format!("{denied}\n---\n{expired}"));
    }
}
