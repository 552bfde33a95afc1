//! CloudFormation's DescribeStackResources by physical resource id, for the emulator kit's proxy.
//!
//! AWS answers `DescribeStackResources` given a `PhysicalResourceId` (an ELBv2 listener's or
//! rule's ARN) with the resources of the stack that resource belongs to — or a `ValidationError`
//! ("Stack for … does not exist") when no stack made it. That is how cutover learns that a stack
//! owns a listener or rule, since CloudFormation did not tag ELBv2 listeners and rules for years.
//! moto 5.2.5 ignores `PhysicalResourceId` (it reads `StackName` only), so the kit answers it:
//! a test says which stack made which resource ([`own`]); everything else goes to the emulator.

use std::sync::{Mutex, OnceLock};

use bytes::Bytes;
use http_body_util::Full;
use hyper::Response;
use hyper::http::request::Parts;

use super::{Answer, IAM_ACCOUNT, form_params, scope_of, xml_error, xml_escape};

/// One resource a stack made.
#[derive(Clone, Debug)]
struct Owned {
    stack: String,
    region: String,
    logical: String,
    physical: String,
    resource_type: String,
}

fn owned() -> &'static Mutex<Vec<Owned>> {
    static OWNED: OnceLock<Mutex<Vec<Owned>>> = OnceLock::new();
    OWNED.get_or_init(Default::default)
}

/// Says that stack `stack` (in `region`, the kit's account) made the resource `physical` (an
/// ARN), logical id `logical`, of `resource_type` (`AWS::ElasticLoadBalancingV2::Listener`).
pub fn own(stack: &str, region: &str, logical: &str, physical: &str, resource_type: &str) {
    owned().lock().unwrap().push(Owned {
        stack: stack.into(),
        region: region.into(),
        logical: logical.into(),
        physical: physical.into(),
        resource_type: resource_type.into(),
    });
}

/// The stack ARN of a stack the kit knows.
fn stack_id(stack: &str, region: &str) -> String {
    format!("arn:aws:cloudformation:{region}:{IAM_ACCOUNT}:stack/{stack}/0a1b2c3d-0000-4000-8000-{:012x}", stack.len())
}

/// The ARN IAM authorises a DescribeStackResources of `physical` on: the stack that made it (any
/// stack of the account when none did).
pub fn stack_arn_of(physical: &str, region: &str, account: &str) -> String {
    match owned().lock().unwrap().iter().find(|o| o.physical == physical) {
        Some(o) => stack_id(&o.stack, &o.region),
        None => format!("arn:aws:cloudformation:{region}:{account}:stack/*/*"),
    }
}

/// The kit's answer to a DescribeStackResources by `PhysicalResourceId`; `None` for any other
/// call (the emulator answers it).
pub fn answer(service: &str, operation: &str, parts: &Parts, body: &Bytes) -> Option<Answer> {
    if service != "cloudformation" || operation != "DescribeStackResources" {
        return None;
    }
    let params = form_params(body);
    let physical = params.iter().find(|(k, _)| k == "PhysicalResourceId").map(|(_, v)| v.clone())?;
    if params.iter().any(|(k, _)| k == "StackName") {
        return Some(xml_error(400, "ValidationError", "Cannot specify both StackName and PhysicalResourceId"));
    }
    let (_, region) = scope_of(parts);
    let all = owned().lock().unwrap().clone();
    let Some(owner) = all.iter().find(|o| o.physical == physical && o.region == region) else {
        return Some(xml_error(400, "ValidationError", &format!("Stack for {physical} does not exist")));
    };
    let members: String = all
        .iter()
        .filter(|o| o.stack == owner.stack && o.region == owner.region)
        .map(|o| {
            format!(
                "<member><StackId>{}</StackId><StackName>{}</StackName><LogicalResourceId>{}</LogicalResourceId><PhysicalResourceId>{}</PhysicalResourceId><ResourceType>{}</ResourceType><Timestamp>2026-01-01T00:00:00Z</Timestamp><ResourceStatus>CREATE_COMPLETE</ResourceStatus></member>",
                xml_escape(&stack_id(&o.stack, &o.region)),
                xml_escape(&o.stack),
                xml_escape(&o.logical),
                xml_escape(&o.physical),
                xml_escape(&o.resource_type)
            )
        })
        .collect();
    let body = format!(
        "<DescribeStackResourcesResponse xmlns=\"http://cloudformation.amazonaws.com/doc/2010-05-15/\"><DescribeStackResourcesResult><StackResources>{members}</StackResources></DescribeStackResourcesResult><ResponseMetadata><RequestId>kit</RequestId></ResponseMetadata></DescribeStackResourcesResponse>"
    );
    let mut answer = Response::new(Full::new(Bytes::from(body)));
    answer.headers_mut().insert("content-type", "text/xml".parse().unwrap());
    Some(answer)
}
