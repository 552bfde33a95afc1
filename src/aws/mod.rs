//! AWS at the edge: the SDK configuration of a run ([`config`]), the accounts and roles it acts
//! in ([`accounts`]), the HTTP layer every client shares ([`http`]), and SDK errors turned into
//! the core's ([`errors`]). Nothing outside `aws/` and the splitters, gates and stores names an
//! SDK error type.

pub mod accounts;
pub mod config;
pub mod errors;
pub mod http;
pub mod regions;

pub use accounts::Accounts;
pub use config::{ATTEMPT_TIMEOUT, CONNECT_TIMEOUT, MAX_ATTEMPTS, load, timeouts_until};
pub use errors::{SdkError, describe_error, error, is_transient};
pub use http::{NoRetryWhenRefused, RecordCalls, Route53Limited, connection_refused, elb_throttled, iam_prefix};
