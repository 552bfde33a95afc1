//! AWS SDK configuration from the standard chain.
//!
//! Credentials, region and endpoint come from the environment and `~/.aws` as every AWS tool reads
//! them (`AWS_PROFILE`, `AWS_REGION`, `AWS_ENDPOINT_URL`, …); the profile's `region` applies when
//! none is set there. Retries are the SDK's standard mode: jittered exponential backoff on
//! throttling (`Throttling`, `PriorRequestNotComplete`, `Rate exceeded`) and transient 5xx.
//! Not adaptive mode: its client-side rate limiter, after a single throttle, held a one-change
//! `set` for 20 s where standard mode took 1.3 s (tests/it/route53.rs, throttling test) — too slow
//! for a rollback.

use std::time::Duration;

use aws_config::environment::EnvironmentVariableRegionProvider;
use aws_config::meta::region::RegionProviderChain;
use aws_config::profile::ProfileFileRegionProvider;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};

/// Attempts per call, first one included.
pub const MAX_ATTEMPTS: u32 = 8;
/// How long a connection may take to open.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// How long one attempt of a call may take.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(20);

/// Loads the shared SDK configuration. `profile_region` is the cutover profile's `region`, used
/// when the environment names none; with neither, the command is refused — a default region
/// would aim the command at resources that are not there (or at the wrong ones).
pub async fn load(profile_region: Option<&str>, profile: Option<&std::path::Path>) -> crate::error::Result<SdkConfig> {
    // No instance-metadata lookup for the region: off EC2 it only costs seconds of timeouts, and on
    // CodeBuild/ECS/EKS the region is in the environment.
    let region = RegionProviderChain::first_try(EnvironmentVariableRegionProvider::new())
        .or_else(ProfileFileRegionProvider::builder().build())
        .or_else(profile_region.map(|r| Region::new(r.to_string())));
    let sdk = aws_config::defaults(BehaviorVersion::latest())
        .region(region)
        .retry_config(
            RetryConfig::standard()
                .with_max_attempts(MAX_ATTEMPTS)
                .with_initial_backoff(Duration::from_millis(200))
                .with_max_backoff(Duration::from_secs(10)),
        )
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(CONNECT_TIMEOUT)
                .operation_attempt_timeout(ATTEMPT_TIMEOUT)
                .operation_timeout(Duration::from_secs(120))
                .build(),
        )
        .load()
        .await;
    if sdk.region().is_none() {
        let profile = match profile {
            Some(p) => format!("the profile {} has no `region`, and ", p.display()),
            None => String::new(),
        };
        return Err(crate::error::Error::refused_hint(
            format!(
                "no AWS region: {profile}none is set in the environment (AWS_REGION, AWS_DEFAULT_REGION) or in ~/.aws/config for AWS_PROFILE"
            ),
            "add `region = \"us-west-2\"` to the profile, or `export AWS_REGION=us-west-2`",
        ));
    }
    Ok(sdk)
}

/// Timeouts that end a call at `deadline` — no attempt of it is sent later — or `None` when the
/// deadline has passed and the call must not be sent at all.
pub fn timeouts_until(deadline: tokio::time::Instant) -> Option<TimeoutConfig> {
    let left = deadline.saturating_duration_since(tokio::time::Instant::now());
    if left.is_zero() {
        return None;
    }
    Some(
        TimeoutConfig::builder()
            .connect_timeout(CONNECT_TIMEOUT.min(left))
            .operation_attempt_timeout(ATTEMPT_TIMEOUT.min(left))
            .operation_timeout(left)
            .build(),
    )
}

/// The SDK's error type of an operation, as every client returns it.
pub type SdkError<E> =
    aws_smithy_runtime_api::client::result::SdkError<E, aws_smithy_runtime_api::client::orchestrator::HttpResponse>;

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
    E: aws_smithy_types::error::metadata::ProvideErrorMetadata,
{
    use aws_smithy_runtime_api::client::result::SdkError as S;
    match err {
        S::TimeoutError(_) | S::DispatchFailure(_) | S::ResponseError(_) => true,
        S::ServiceError(e) => {
            e.raw().status().as_u16() >= 500 || e.err().code().is_some_and(|c| TRANSIENT_CODES.contains(&c))
        }
        S::ConstructionFailure(_) => false,
        _ => false,
    }
}

/// Records every AWS operation a process calls, one `iam-prefix:Action` line each, appended to the
/// file named by `CUTOVER_RECORD_CALLS` — to check a policy against what a real run does.
#[derive(Debug)]
pub struct RecordCalls {
    path: std::path::PathBuf,
}

impl RecordCalls {
    /// The recorder, when `CUTOVER_RECORD_CALLS` names a file.
    pub fn from_env() -> Option<RecordCalls> {
        std::env::var_os("CUTOVER_RECORD_CALLS").filter(|p| !p.is_empty()).map(|p| RecordCalls { path: p.into() })
    }
}

/// The IAM action prefix of an SDK service name.
pub fn iam_prefix(service: &str) -> String {
    match service {
        "Route 53" => "route53".into(),
        "Elastic Load Balancing v2" => "elasticloadbalancing".into(),
        "CloudWatch" => "cloudwatch".into(),
        "DynamoDB" => "dynamodb".into(),
        "SNS" => "sns".into(),
        "STS" => "sts".into(),
        "EKS" => "eks".into(),
        other => other.to_ascii_lowercase().replace(' ', ""),
    }
}

impl aws_smithy_runtime_api::client::interceptors::Intercept for RecordCalls {
    fn name(&self) -> &'static str {
        "RecordCalls"
    }

    fn read_before_serialization(
        &self,
        _context: &aws_smithy_runtime_api::client::interceptors::context::BeforeSerializationInterceptorContextRef<'_>,
        _components: &aws_smithy_runtime_api::client::runtime_components::RuntimeComponents,
        cfg: &mut aws_smithy_types::config_bag::ConfigBag,
    ) -> Result<(), aws_smithy_runtime_api::box_error::BoxError> {
        use std::io::Write;
        if let Some(m) = cfg.load::<aws_smithy_runtime_api::client::orchestrator::Metadata>() {
            let line = format!("{}:{}\n", iam_prefix(m.service()), m.name());
            let mut f = std::fs::OpenOptions::new().create(true).append(true).open(&self.path)?;
            f.write_all(line.as_bytes())?;
        }
        Ok(())
    }
}

/// A service client from the shared configuration, recording its calls when asked to.
#[macro_export]
macro_rules! client {
    ($krate:ident, $sdk:expr) => {{
        let mut builder = $krate::config::Builder::from($sdk);
        if let Some(recorder) = $crate::aws::RecordCalls::from_env() {
            builder = builder.interceptor(recorder);
        }
        $krate::Client::from_conf(builder.build())
    }};
}
