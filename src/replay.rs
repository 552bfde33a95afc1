//! Replays of AWS answers through the SDK's own stack, for the unit tests of what cannot run on
//! the emulator (aws-smithy-mocks).

use aws_smithy_mocks::{MockResponseInterceptor, Rule, RuleMode, create_mock_http_client};

/// A CloudWatch client whose calls are answered by `rules`.
pub fn cloudwatch(rules: &[&Rule]) -> aws_sdk_cloudwatch::Client {
    let mut interceptor = MockResponseInterceptor::new().rule_mode(RuleMode::MatchAny);
    for r in rules {
        interceptor = interceptor.with_rule(r);
    }
    let config = aws_sdk_cloudwatch::Config::builder()
        .behavior_version(aws_sdk_cloudwatch::config::BehaviorVersion::latest())
        .region(aws_sdk_cloudwatch::config::Region::new("us-west-2"))
        .credentials_provider(aws_sdk_cloudwatch::config::Credentials::new("a", "b", None, None, "replay"))
        .http_client(create_mock_http_client())
        .interceptor(interceptor)
        .build();
    aws_sdk_cloudwatch::Client::from_conf(config)
}

/// A DynamoDB client whose calls are answered by `rules`, in order of the rules (each used as its
/// times say).
pub fn dynamodb(rules: &[&Rule]) -> aws_sdk_dynamodb::Client {
    let mut interceptor = MockResponseInterceptor::new().rule_mode(RuleMode::Sequential);
    for r in rules {
        interceptor = interceptor.with_rule(r);
    }
    let config = aws_sdk_dynamodb::Config::builder()
        .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
        .region(aws_sdk_dynamodb::config::Region::new("us-west-2"))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new("a", "b", None, None, "replay"))
        .http_client(create_mock_http_client())
        .interceptor(interceptor)
        .build();
    aws_sdk_dynamodb::Client::from_conf(config)
}
