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
        .http_client(http_client())
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

/// The SDK configurations of one run: the caller's, and one per role the profile names
/// (`role_arn` on a route, a side or a gate). A role's credentials come from STS AssumeRole,
/// called with the caller's, under the session name `cutover-PROFILE` (CloudTrail shows it); the
/// SDK's identity cache keeps them and assumes the role again before they expire. Nothing is
/// called before a client of the role makes its first call.
#[derive(Clone, Debug)]
pub struct Accounts {
    caller: SdkConfig,
    roles: std::collections::BTreeMap<crate::profile::Role, SdkConfig>,
}

impl Accounts {
    /// The caller's configuration and one for each role of `profile`. Builds clients only.
    pub fn new(caller: SdkConfig, profile: &crate::profile::Profile) -> Accounts {
        let session = session_name(&profile.name);
        // One STS client for every role: the caller's, like every other client (call recorder,
        // retries, no retry of a refused connection).
        let sts = crate::client!(aws_sdk_sts, &caller);
        let mut roles = std::collections::BTreeMap::new();
        for role in profile.roles() {
            let provider = RoleCredentials {
                role: role.clone(),
                named_at: profile.role_keys(role).join(", "),
                session: session.clone(),
                sts: sts.clone(),
            };
            let config = caller
                .to_builder()
                .credentials_provider(aws_sdk_sts::config::SharedCredentialsProvider::new(provider))
                // A cache of its own, shared by every client of the role: the caller's holds the
                // caller's credentials. It assumes the role again before the credentials expire.
                .identity_cache(aws_config::identity::IdentityCache::lazy().build())
                .build();
            roles.insert(role.clone(), config);
        }
        Accounts { caller, roles }
    }

    /// The configuration for a resource of `role` (the caller's when it has none).
    pub fn of(&self, role: Option<&crate::profile::Role>) -> &SdkConfig {
        match role {
            None => &self.caller,
            Some(role) => self.roles.get(role).expect("every role of the profile has its configuration"),
        }
    }

    /// The place of `role`'s entry in `per_role` — what a reader holds for each account it calls
    /// (its clients) — made from the role's configuration by `make` when the role is first seen.
    pub fn slot<T>(
        &self,
        per_role: &mut Vec<(Option<crate::profile::Role>, T)>,
        role: Option<&crate::profile::Role>,
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
    role: crate::profile::Role,
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
    fn of(role: String, e: &SdkError<aws_sdk_sts::operation::assume_role::AssumeRoleError>) -> RoleNotAssumed {
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

/// `cutover-PROFILE`, as AssumeRole takes a session name: 2–64 characters of letters, digits and
/// `+=,.@-_` (others become `-`).
fn session_name(profile: &str) -> String {
    format!("cutover-{profile}")
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || "+=,.@-_".contains(c) { c } else { '-' })
        .take(64)
        .collect()
}

/// A profile read from S3 (`-p s3://BUCKET/KEY`, or `CUTOVER_PROFILE` the same), and the SDK
/// configuration it was read with: the region comes from the environment (or `~/.aws/config`),
/// since the profile's own `region` is not known before it is read.
pub async fn profile_from_s3(
    location: &str,
) -> crate::error::Result<(std::path::PathBuf, crate::profile::Profile, SdkConfig)> {
    use crate::error::Error;
    let url = format!("s3://{location}");
    let (bucket, key) = location.split_once('/').filter(|(b, k)| !b.is_empty() && !k.is_empty()).ok_or_else(|| {
        Error::refused_hint(
            format!("`{url}` names no object"),
            "give the bucket and the key: `-p s3://my-bucket/cutover/myapp.toml`",
        )
    })?;
    let sdk = load(None, None).await.map_err(|_| {
        Error::refused_hint(
            format!(
                "no AWS region to read the profile {url} with: a profile in S3 is read before its `region` is known"
            ),
            "`export AWS_REGION=us-west-2` (the bucket's region), or set it in ~/.aws/config",
        )
    })?;
    let mut client = crate::client!(aws_sdk_s3, &sdk);
    if sdk.endpoint_url().is_some() {
        // An endpoint of its own (an emulator on 127.0.0.1) has no bucket subdomains.
        client = aws_sdk_s3::Client::from_conf(client.config().to_builder().force_path_style(true).build());
    }
    let out = client.get_object().bucket(bucket).key(key).send().await.map_err(|e| {
        use aws_smithy_types::error::metadata::ProvideErrorMetadata;
        let code = e.as_service_error().and_then(|s| s.code()).map(String::from);
        match code.as_deref() {
            Some("NoSuchKey") => Error::refused_hint(
                format!("profile {url} not found: bucket `{bucket}` has no key `{key}`"),
                format!("check the key: `aws s3 ls s3://{bucket}/`"),
            ),
            Some("NoSuchBucket") => Error::refused_hint(
                format!("profile {url} not found: there is no bucket `{bucket}`"),
                "check the bucket's name, and that AWS_REGION is its region",
            ),
            _ => Error::aws(format!("GetObject of the profile {url} (bucket `{bucket}`, key `{key}`)"), e),
        }
    })?;
    let bytes = out
        .body
        .collect()
        .await
        .map_err(|e| Error::Aws {
            action: format!("GetObject of the profile {url}"),
            message: format!("the object could not be read whole: {e}"),
            transient: true,
        })?
        .into_bytes();
    let text = String::from_utf8(bytes.to_vec())
        .map_err(|_| Error::refused(format!("profile {url} is not UTF-8 text (bucket `{bucket}`, key `{key}`)")))?;
    let path = std::path::PathBuf::from(&url);
    let profile = crate::profile::Profile::parse(&path, &text)?;
    Ok((path, profile, sdk))
}

/// Timeouts that end a call at `deadline` — no attempt of it is sent later — or `None` when the
/// deadline has passed and the call must not be sent at all. The connect timeout stays the
/// client's (the operation timeout bounds a connect as well): the HTTP client keeps one
/// connection pool per connect timeout, and a write with a timeout of its own would otherwise
/// open a new connection (a TLS handshake on AWS) instead of reusing the read's.
pub fn timeouts_until(deadline: tokio::time::Instant) -> Option<TimeoutConfig> {
    let left = deadline.saturating_duration_since(tokio::time::Instant::now());
    if left.is_zero() {
        return None;
    }
    Some(
        TimeoutConfig::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .operation_attempt_timeout(ATTEMPT_TIMEOUT.min(left))
            .operation_timeout(left)
            .build(),
    )
}

/// The one HTTPS client every service client of the process shares — the SDK's default client
/// (hyper 1, rustls with aws-lc, the system's roots, the proxy from `HTTPS_PROXY`/`NO_PROXY`),
/// built here so that Route53's calls can be held to its rate ([`Route53Limited`]). Its roots:
/// trusting the bundle file alone was measured and dropped — the SDK parses PEM roots anew for
/// every connector it builds but keeps the system's parsed once, so it cost 1.2 ms more CPU.
fn http_client() -> aws_smithy_runtime_api::client::http::SharedHttpClient {
    use aws_smithy_http_client::proxy::ProxyConfig;
    use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};
    aws_smithy_http_client::Builder::new().build_with_connector_fn(move |settings, components| {
        let mut builder =
            aws_smithy_http_client::ConnectorBuilder::default().tls_provider(tls::Provider::Rustls(CryptoMode::AwsLc));
        builder.set_connector_settings(settings.cloned());
        if let Some(components) = components {
            builder.set_sleep_impl(components.sleep_impl());
        }
        builder.set_proxy_config(Some(ProxyConfig::from_env()));
        builder.build()
    })
}

/// Route53 allows five API requests a second per account. Every Route53 call (each attempt of
/// it) waits here until fewer than five were sent in the last second, so cutover's own calls
/// never exceed the limit — and are not throttled into seconds of backoff.
pub const ROUTE53_PER_SECOND: usize = 5;
/// A little over a second: requests reach AWS a few milliseconds apart from when they were sent.
const ROUTE53_WINDOW: Duration = Duration::from_millis(1020);

/// When the last [`ROUTE53_PER_SECOND`] Route53 requests were sent.
static ROUTE53_SENT: std::sync::Mutex<std::collections::VecDeque<tokio::time::Instant>> =
    std::sync::Mutex::new(std::collections::VecDeque::new());

/// Waits until one more Route53 request may be sent, and counts it as sent.
async fn route53_turn() {
    loop {
        let wait_until = {
            let mut sent = ROUTE53_SENT.lock().expect("route53 limiter");
            let now = tokio::time::Instant::now();
            while sent.front().is_some_and(|t| now.duration_since(*t) >= ROUTE53_WINDOW) {
                sent.pop_front();
            }
            if sent.len() < ROUTE53_PER_SECOND {
                sent.push_back(now);
                return;
            }
            *sent.front().expect("full") + ROUTE53_WINDOW
        };
        tokio::time::sleep_until(wait_until).await;
    }
}

/// An HTTP client whose requests take their turn at the Route53 limiter first.
#[derive(Debug)]
pub struct Route53Limited(pub aws_smithy_runtime_api::client::http::SharedHttpClient);

#[derive(Debug)]
struct Route53LimitedConnector(aws_smithy_runtime_api::client::http::SharedHttpConnector);

impl aws_smithy_runtime_api::client::http::HttpClient for Route53Limited {
    fn http_connector(
        &self,
        settings: &aws_smithy_runtime_api::client::http::HttpConnectorSettings,
        components: &aws_smithy_runtime_api::client::runtime_components::RuntimeComponents,
    ) -> aws_smithy_runtime_api::client::http::SharedHttpConnector {
        let inner = self.0.http_connector(settings, components);
        aws_smithy_runtime_api::client::http::SharedHttpConnector::new(Route53LimitedConnector(inner))
    }

    fn connector_metadata(&self) -> Option<aws_smithy_runtime_api::client::connector_metadata::ConnectorMetadata> {
        self.0.connector_metadata()
    }
}

impl aws_smithy_runtime_api::client::http::HttpConnector for Route53LimitedConnector {
    fn call(
        &self,
        request: aws_smithy_runtime_api::client::orchestrator::HttpRequest,
    ) -> aws_smithy_runtime_api::client::http::HttpConnectorFuture {
        let inner = self.0.clone();
        aws_smithy_runtime_api::client::http::HttpConnectorFuture::new(async move {
            route53_turn().await;
            inner.call(request).await
        })
    }
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

/// Whether an error's chain of causes holds a refused connection: nothing listens at the endpoint
/// (a wrong `AWS_ENDPOINT_URL`, a local emulator that is not running). Retrying cannot mend that.
pub fn connection_refused(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cause {
        if e.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::ConnectionRefused) {
            return true;
        }
        cause = e.source();
    }
    false
}

/// Forbids retrying a call whose connection was refused, so a command facing an endpoint where
/// nothing listens fails in milliseconds instead of after ~15 s of backoff. A connection that
/// times out is still retried (a network that drops packets may recover). For ELB it also counts
/// the attempts ELB throttled ([`elb_throttled`]), which the ALB writer slows down for.
#[derive(Debug)]
pub struct NoRetryWhenRefused {
    pub counts_elb_throttling: bool,
}

/// Attempts ELB answered with `Throttling` ("Rate exceeded") so far in this process.
static ELB_THROTTLED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// How many attempts ELB has throttled so far in this process.
pub fn elb_throttled() -> u64 {
    ELB_THROTTLED.load(std::sync::atomic::Ordering::Relaxed)
}

/// Whether an answer is a throttling error: ELB answers 400 with the code `Throttling`. The body
/// of an error answer is in memory by the time retry classifiers run.
fn throttling_answer(response: &aws_smithy_runtime_api::client::orchestrator::HttpResponse) -> bool {
    let status = response.status().as_u16();
    (status == 400 || status == 429 || status == 503)
        && response.body().bytes().is_some_and(|b| {
            let text = String::from_utf8_lossy(b);
            text.contains("<Code>Throttling</Code>") || text.contains("Rate exceeded")
        })
}

impl aws_smithy_runtime_api::client::retries::classifiers::ClassifyRetry for NoRetryWhenRefused {
    fn classify_retry(
        &self,
        ctx: &aws_smithy_runtime_api::client::interceptors::context::InterceptorContext,
    ) -> aws_smithy_runtime_api::client::retries::classifiers::RetryAction {
        use aws_smithy_runtime_api::client::retries::classifiers::RetryAction;
        if self.counts_elb_throttling && ctx.response().is_some_and(throttling_answer) {
            ELB_THROTTLED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        match ctx.output_or_error() {
            Some(Err(e)) if e.as_connector_error().is_some_and(|c| connection_refused(c)) => {
                RetryAction::RetryForbidden
            }
            _ => RetryAction::NoActionIndicated,
        }
    }

    fn name(&self) -> &'static str {
        "no retry when the connection is refused"
    }

    fn priority(&self) -> aws_smithy_runtime_api::client::retries::classifiers::RetryClassifierPriority {
        use aws_smithy_runtime_api::client::retries::classifiers::RetryClassifierPriority;
        RetryClassifierPriority::run_after(RetryClassifierPriority::transient_error_classifier())
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
            let code = se.err().code().unwrap_or("error");
            let message = se.err().message().unwrap_or("").trim().to_string();
            let hint = hint_for_code(code);
            (if message.is_empty() { code.to_string() } else { format!("{code}: {message}") }, hint)
        }
        S::DispatchFailure(d) if connection_refused(err) => (
            format!("could not connect: {}", d.as_connector_error().map(|c| root(c)).unwrap_or_else(|| root(err))),
            Some("nothing listens at the endpoint: check AWS_ENDPOINT_URL (for the local emulator: `. localstack/env.sh` starts it), or unset it to reach AWS".into()),
        ),
        S::DispatchFailure(_) => (
            format!("could not reach AWS: {}", root(err)),
            Some("check the network, proxy settings and AWS_ENDPOINT_URL".into()),
        ),
        S::TimeoutError(_) => (
            "timed out".to_string(),
            Some("AWS did not answer in time; the network may be slow or blocked — try again".into()),
        ),
        S::ConstructionFailure(_) => (
            root(err),
            Some("no credentials could be loaded? check AWS_PROFILE (`aws sso login`), or AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY".into()),
        ),
        _ => (root(err), None),
    };
    let hint = hint.map(|h| format!("\nhint: {h}")).unwrap_or_default();
    (service, format!("{what}{hint}"))
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
        Some(format!("AWS still refused after {MAX_ATTEMPTS} attempts; try again in a minute"))
    } else if c.contains("notfound") || c.starts_with("nosuch") {
        Some(
            "check the name in the profile, and that AWS_REGION (or the profile's `region`) is the resource's region"
                .into(),
        )
    } else {
        None
    }
}

/// A service client from the shared configuration, recording its calls when asked to.
#[macro_export]
macro_rules! client {
    ($krate:ident, $sdk:expr) => {{
        let sdk: &aws_config::SdkConfig = $sdk;
        let mut builder = $krate::config::Builder::from(sdk).retry_classifier($crate::aws::NoRetryWhenRefused {
            counts_elb_throttling: stringify!($krate) == "aws_sdk_elasticloadbalancingv2",
        });
        if stringify!($krate) == "aws_sdk_route53"
            && let Some(http) = sdk.http_client()
        {
            builder = builder.http_client($crate::aws::Route53Limited(http));
        }
        if let Some(recorder) = $crate::aws::RecordCalls::from_env() {
            builder = builder.interceptor(recorder);
        }
        $krate::Client::from_conf(builder.build())
    }};
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
        let client = crate::gates::replay::cloudwatch(&[&rule]);
        let err = client.describe_alarms().send().await.unwrap_err();
        crate::error::Error::aws("DescribeAlarms", err)
    }

    #[test]
    fn a_session_name_is_one_sts_accepts() {
        assert_eq!(super::session_name("myapp"), "cutover-myapp");
        assert_eq!(super::session_name("my app/ü"), "cutover-my-app--");
        assert_eq!(super::session_name(&"x".repeat(80)).len(), 64);
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
