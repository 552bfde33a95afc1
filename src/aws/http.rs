//! The HTTP layer every service client shares: one HTTPS client, Route53's rate limit held at
//! the HTTP layer, the retry classifier (no retry of a refused connection; ELB throttling
//! counted), the call recorder (`CUTOVER_RECORD_CALLS`), and the [`client!`](crate::client)
//! macro that builds a service client with all of it.

use std::time::Duration;

/// The one HTTPS client every service client of the process shares — the SDK's default client
/// (hyper 1, rustls with aws-lc, the system's roots, the proxy from `HTTPS_PROXY`/`NO_PROXY`),
/// built here so that Route53's calls can be held to its rate ([`Route53Limited`]). Its roots:
/// trusting the bundle file alone was measured and dropped — the SDK parses PEM roots anew for
/// every connector it builds but keeps the system's parsed once, so it cost 1.2 ms more CPU.
pub(super) fn http_client() -> aws_smithy_runtime_api::client::http::SharedHttpClient {
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
/// it) waits here until fewer than five were let out or answered within the last second, so
/// cutover's own calls never exceed the limit — and are not throttled into seconds of backoff.
pub const ROUTE53_PER_SECOND: usize = 5;
/// A little over a second.
const ROUTE53_WINDOW: Duration = Duration::from_millis(1020);

/// The Route53 requests of the last second: each (its number, when it was answered, or `None`
/// while it is in flight). A request counts until a second after its answer, not after its turn:
/// it reaches AWS somewhere between the two, and one sent on a new connection (DNS, TCP, TLS)
/// reaches it well after its turn — counted from its turn, a sixth request on a warm connection
/// arrived within the same second (`speed::route53_never_gets_more_than_five…`).
static ROUTE53_SENT: std::sync::Mutex<Route53Window> = std::sync::Mutex::new(Route53Window(0, Vec::new()));

/// The last number given, and each request's (number, when it was answered).
struct Route53Window(u64, Vec<(u64, Option<tokio::time::Instant>)>);

/// A Route53 request's place in the window; dropped (answered, failed or given up), it counts
/// from then on for one more window.
struct Route53Turn(u64);

impl Drop for Route53Turn {
    fn drop(&mut self) {
        let Ok(mut sent) = ROUTE53_SENT.lock() else { return };
        if let Some(place) = sent.1.iter_mut().find(|(n, _)| *n == self.0) {
            place.1 = Some(tokio::time::Instant::now());
        }
    }
}

/// Waits until one more Route53 request may be sent, and takes its place.
async fn route53_turn() -> Route53Turn {
    loop {
        let wait_until = {
            let mut sent = ROUTE53_SENT.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let now = tokio::time::Instant::now();
            sent.1.retain(|(_, answered)| answered.is_none_or(|t| now.duration_since(t) < ROUTE53_WINDOW));
            if sent.1.len() < ROUTE53_PER_SECOND {
                sent.0 += 1;
                let n = sent.0;
                sent.1.push((n, None));
                return Route53Turn(n);
            }
            // The first answered place frees first; with every place in flight, look again soon.
            let freed = sent.1.iter().filter_map(|(_, answered)| *answered).min();
            freed.map_or(now + Duration::from_millis(10), |t| t + ROUTE53_WINDOW)
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
            let _turn = route53_turn().await;
            inner.call(request).await
        })
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
