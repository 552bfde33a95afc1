//! S3 buckets as AWS places them, for the emulator kit's proxy.
//!
//! moto 5.2.5 serves every bucket from any region and never checks `x-amz-expected-bucket-owner`
//! (S3's `ExpectedBucketOwner`). AWS does both:
//! - a request for a bucket of another account than the expected owner is refused, `403
//!   AccessDenied`;
//! - a request signed for another region than the bucket's is answered `301 PermanentRedirect`,
//!   naming the bucket's region in the `x-amz-bucket-region` header.
//!
//! A test places a bucket ([`place`]): its owner and region. Unplaced buckets belong to the kit's
//! account (`123456789012`, moto's default) and are served from any region, as moto does.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use bytes::Bytes;
use http_body_util::Full;
use hyper::Response;
use hyper::http::request::Parts;

use super::{Answer, IAM_ACCOUNT, scope_of, xml_escape};

/// Where a placed bucket is, and whose it is.
#[derive(Clone, Debug)]
struct Placed {
    owner: String,
    region: String,
}

fn placed() -> &'static Mutex<HashMap<String, Placed>> {
    static PLACED: OnceLock<Mutex<HashMap<String, Placed>>> = OnceLock::new();
    PLACED.get_or_init(Default::default)
}

/// Says that `bucket` belongs to account `owner` and lives in `region` (for every proxy of the
/// test process).
pub fn place(bucket: &str, owner: &str, region: &str) {
    placed().lock().unwrap().insert(bucket.to_string(), Placed { owner: owner.into(), region: region.into() });
}

/// S3's answer where AWS's differs from moto's — a bucket of another owner than expected, or of
/// another region than the request's — or `None` to hand the call to the emulator.
pub fn answer(service: &str, parts: &Parts) -> Option<Answer> {
    if service != "s3" {
        return None;
    }
    // Path-style, as the SDK addresses an endpoint of its own: `/BUCKET/KEY`.
    let bucket = parts.uri.path().trim_start_matches('/').split('/').next().filter(|b| !b.is_empty())?;
    let place = placed().lock().unwrap().get(bucket).cloned();
    let owner = place.as_ref().map(|p| p.owner.as_str()).unwrap_or(IAM_ACCOUNT);
    let expected = parts.headers.get("x-amz-expected-bucket-owner").and_then(|v| v.to_str().ok());
    if expected.is_some_and(|e| e != owner) {
        return Some(error(403, "AccessDenied", "Access Denied", bucket, None));
    }
    let place = place?;
    let (_, region) = scope_of(parts);
    if region != place.region {
        return Some(error(
            301,
            "PermanentRedirect",
            "The bucket you are attempting to access must be addressed using the specified endpoint. Please send all future requests to this endpoint.",
            bucket,
            Some(&place.region),
        ));
    }
    None
}

/// An S3 error document (REST-XML: `<Error>` at the root); a redirect names the bucket's region.
fn error(status: u16, code: &str, message: &str, bucket: &str, region: Option<&str>) -> Answer {
    let endpoint = region.map(|r| format!("<Endpoint>{}.s3.{r}.amazonaws.com</Endpoint>", xml_escape(bucket)));
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{}</Message><BucketName>{}</BucketName>{}<RequestId>kit</RequestId><HostId>kit</HostId></Error>",
        xml_escape(message),
        xml_escape(bucket),
        endpoint.unwrap_or_default()
    );
    let mut answer = Response::new(Full::new(Bytes::from(body)));
    *answer.status_mut() = hyper::StatusCode::from_u16(status).unwrap();
    answer.headers_mut().insert("content-type", "application/xml".parse().unwrap());
    if let Some(r) = region {
        answer.headers_mut().insert("x-amz-bucket-region", r.parse().unwrap());
    }
    answer
}
