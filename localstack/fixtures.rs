//! Builders of emulated AWS resources: hosted zones and weighted records, VPCs, ALBs, target
//! groups, listeners and rules. Shared by the demo seed (`cargo run --example seed`) and the
//! integration tests, through the same SDK crates the tool uses.

#![allow(dead_code)]

use aws_sdk_cloudwatch as cloudwatch;
use aws_sdk_eks as eks;
use aws_sdk_elasticloadbalancingv2 as elbv2;
use aws_sdk_route53 as route53;

use elbv2::types::{
    Action, ActionTypeEnum, ForwardActionConfig, RuleCondition, Tag, TargetDescription, TargetGroupStickinessConfig,
    TargetGroupTuple,
};
use route53::types::{AliasTarget, Change, ChangeAction, ChangeBatch, ResourceRecord, ResourceRecordSet, RrType};

/// Clients for every emulated service, pointed at one endpoint with static test credentials.
#[derive(Clone)]
pub struct Aws {
    pub endpoint: String,
    pub r53: route53::Client,
    pub elb: elbv2::Client,
    pub ec2: Ec2,
    pub cw: cloudwatch::Client,
    pub eks: eks::Client,
    /// Path-style: the emulator on 127.0.0.1 has no bucket subdomains.
    pub s3: aws_sdk_s3::Client,
    /// Change Calendars (`freeze` gates) are SSM documents.
    pub ssm: aws_sdk_ssm::Client,
}

/// Weighted records are given as (SetIdentifier, weight).
pub type Weighted<'a> = (&'a str, i64);

impl Aws {
    pub async fn new(endpoint: &str) -> Aws {
        Aws::with_credentials(endpoint, route53::config::Credentials::new("test", "test", None, None, "fixtures")).await
    }

    /// Clients in the account of `role_arn`: the emulator keeps resources per account, and
    /// credentials from AssumeRole act in the role's account.
    pub async fn assuming(&self, role_arn: &str) -> Aws {
        let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .endpoint_url(&self.endpoint)
            .region(aws_config::Region::new("us-west-2"))
            .credentials_provider(route53::config::Credentials::new("test", "test", None, None, "fixtures"))
            .load()
            .await;
        let out = aws_sdk_sts::Client::new(&config)
            .assume_role()
            .role_arn(role_arn)
            .role_session_name("fixtures")
            .send()
            .await
            .expect("AssumeRole");
        let c = out.credentials.expect("credentials");
        let credentials = route53::config::Credentials::new(
            c.access_key_id,
            c.secret_access_key,
            Some(c.session_token),
            None,
            "role",
        );
        Aws::with_credentials(&self.endpoint, credentials).await
    }

    /// The same clients in another region: the emulator keeps ALBs, VPCs, alarms and tables per
    /// region, as AWS does.
    pub async fn in_region(&self, region: &str) -> Aws {
        let credentials = route53::config::Credentials::new("test", "test", None, None, "fixtures");
        Aws::with_credentials_in(&self.endpoint, credentials, region).await
    }

    async fn with_credentials(endpoint: &str, credentials: route53::config::Credentials) -> Aws {
        Aws::with_credentials_in(endpoint, credentials, "us-west-2").await
    }

    async fn with_credentials_in(endpoint: &str, credentials: route53::config::Credentials, region: &str) -> Aws {
        let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .endpoint_url(endpoint)
            .region(aws_config::Region::new(region.to_string()))
            .credentials_provider(credentials.clone())
            .load()
            .await;
        Aws {
            endpoint: endpoint.to_string(),
            r53: route53::Client::new(&config),
            elb: elbv2::Client::new(&config),
            ec2: Ec2 {
                endpoint: endpoint.to_string(),
                credentials: credentials.clone(),
                http: reqwest::Client::new(),
                region: region.to_string(),
            },
            cw: cloudwatch::Client::new(&config),
            eks: eks::Client::new(&config),
            s3: aws_sdk_s3::Client::from_conf(
                aws_sdk_s3::config::Builder::from(&config).force_path_style(true).build(),
            ),
            ssm: aws_sdk_ssm::Client::new(&config),
        }
    }

    /// A Change Calendar `name` (an SSM document of type ChangeCalendar, iCalendar content, as the
    /// console writes one): open by default, closed during each `(start, end)` event.
    pub async fn change_calendar(&self, name: &str, closed: &[(std::time::SystemTime, std::time::SystemTime)]) {
        let stamp = |t: std::time::SystemTime| {
            let secs = t.duration_since(std::time::UNIX_EPOCH).expect("after 1970").as_secs() as i64;
            jiff::Timestamp::from_second(secs).expect("a time").strftime("%Y%m%dT%H%M%SZ").to_string()
        };
        let mut ics = String::from(
            "BEGIN:VCALENDAR\r\nPRODID:-//AWS//Change Calendar 1.0//EN\r\nVERSION:2.0\r\nX-CALENDAR-TYPE:DEFAULT_OPEN\r\nX-WR-CALDESC:test freezes\r\n",
        );
        for (i, (start, end)) in closed.iter().enumerate() {
            ics.push_str(&format!(
                "BEGIN:VEVENT\r\nDTSTAMP:{}\r\nUID:{name}-{i}\r\nSEQUENCE:0\r\nDTSTART:{}\r\nDTEND:{}\r\nSUMMARY:freeze {i}\r\nEND:VEVENT\r\n",
                stamp(*start),
                stamp(*start),
                stamp(*end)
            ));
        }
        ics.push_str("END:VCALENDAR\r\n");
        self.ssm
            .create_document()
            .name(name)
            .content(ics)
            .document_type(aws_sdk_ssm::types::DocumentType::ChangeCalendar)
            .document_format(aws_sdk_ssm::types::DocumentFormat::Text)
            .send()
            .await
            .expect("CreateDocument (ChangeCalendar)");
    }

    /// Puts `body` at `key` of `bucket`, making the bucket (in us-west-2) first.
    pub async fn object(&self, bucket: &str, key: &str, body: &str) {
        use aws_sdk_s3::types::{BucketLocationConstraint, CreateBucketConfiguration};
        let location =
            CreateBucketConfiguration::builder().location_constraint(BucketLocationConstraint::UsWest2).build();
        let _ = self.s3.create_bucket().bucket(bucket).create_bucket_configuration(location).send().await;
        self.s3
            .put_object()
            .bucket(bucket)
            .key(key)
            .body(aws_sdk_s3::primitives::ByteStream::from(body.as_bytes().to_vec()))
            .send()
            .await
            .expect("PutObject");
    }

    /// The id of the hosted zone `name`, created when absent.
    pub async fn zone(&self, name: &str) -> String {
        let found = self.r53.list_hosted_zones_by_name().dns_name(name).send().await.expect("ListHostedZonesByName");
        if let Some(z) = found.hosted_zones.iter().find(|z| z.name == name) {
            return z.id.trim_start_matches("/hostedzone/").to_string();
        }
        let out = self
            .r53
            .create_hosted_zone()
            .name(name)
            .caller_reference(format!("cutover-{name}-{}", std::process::id()))
            .send()
            .await
            .expect("CreateHostedZone");
        out.hosted_zone.expect("zone").id.trim_start_matches("/hostedzone/").to_string()
    }

    /// UPSERTs record sets in one change batch.
    pub async fn upsert(&self, zone_id: &str, sets: Vec<ResourceRecordSet>) {
        let changes = sets
            .into_iter()
            .map(|s| Change::builder().action(ChangeAction::Upsert).resource_record_set(s).build().unwrap())
            .collect();
        self.r53
            .change_resource_record_sets()
            .hosted_zone_id(zone_id)
            .change_batch(ChangeBatch::builder().set_changes(Some(changes)).build().unwrap())
            .send()
            .await
            .expect("ChangeResourceRecordSets");
    }

    /// A weighted alias record set pointing at a load balancer's DNS name.
    pub fn weighted_alias(
        record: &str,
        (id, weight): Weighted,
        dns: &str,
        lb_zone: &str,
        evaluate: bool,
    ) -> ResourceRecordSet {
        ResourceRecordSet::builder()
            .name(record)
            .r#type(RrType::A)
            .set_identifier(id)
            .weight(weight)
            .alias_target(
                AliasTarget::builder()
                    .hosted_zone_id(lb_zone)
                    .dns_name(dns)
                    .evaluate_target_health(evaluate)
                    .build()
                    .unwrap(),
            )
            .build()
            .unwrap()
    }

    /// A weighted CNAME record set with a TTL and, optionally, a health check.
    pub fn weighted_cname(
        record: &str,
        (id, weight): Weighted,
        ttl: i64,
        value: &str,
        health_check: Option<&str>,
    ) -> ResourceRecordSet {
        ResourceRecordSet::builder()
            .name(record)
            .r#type(RrType::Cname)
            .set_identifier(id)
            .weight(weight)
            .ttl(ttl)
            .resource_records(ResourceRecord::builder().value(value).build().unwrap())
            .set_health_check_id(health_check.map(String::from))
            .build()
            .unwrap()
    }

    /// A plain alias record (no routing policy), e.g. a preview hostname.
    pub fn simple_alias(record: &str, dns: &str, lb_zone: &str) -> ResourceRecordSet {
        ResourceRecordSet::builder()
            .name(record)
            .r#type(RrType::A)
            .alias_target(
                AliasTarget::builder()
                    .hosted_zone_id(lb_zone)
                    .dns_name(dns)
                    .evaluate_target_health(false)
                    .build()
                    .unwrap(),
            )
            .build()
            .unwrap()
    }

    /// Every record set of `record` (any type), as Route53 lists them.
    pub async fn record_sets(&self, zone_id: &str, record: &str) -> Vec<ResourceRecordSet> {
        let mut all = Vec::new();
        let mut start: Option<(String, RrType, Option<String>)> = None;
        for _ in 0..100 {
            let mut req = self.r53.list_resource_record_sets().hosted_zone_id(zone_id);
            if let Some((n, t, i)) = &start {
                req = req.start_record_name(n).start_record_type(t.clone()).set_start_record_identifier(i.clone());
            }
            let out = req.send().await.expect("ListResourceRecordSets");
            all.extend(out.resource_record_sets);
            if !out.is_truncated {
                break;
            }
            start = Some((out.next_record_name.unwrap(), out.next_record_type.unwrap(), out.next_record_identifier));
        }
        all.into_iter().filter(|s| s.name == record).collect()
    }

    /// Weight of the record set `set_id` of `record`.
    pub async fn weight(&self, zone_id: &str, record: &str, set_id: &str) -> i64 {
        self.record_sets(zone_id, record)
            .await
            .into_iter()
            .find(|s| s.set_identifier.as_deref() == Some(set_id))
            .and_then(|s| s.weight)
            .unwrap_or_else(|| panic!("no weighted set {set_id} of {record}"))
    }

    /// A new VPC with two subnets in two zones.
    pub async fn network(&self) -> (String, Vec<String>) {
        let vpc = self.ec2.call("CreateVpc", &[("CidrBlock", "10.0.0.0/16")]).await;
        let vpc = Ec2::texts(&vpc, &["vpc", "vpcId"]).remove(0);
        let mut subnets = Vec::new();
        for (i, zone) in ["a", "b"].iter().enumerate() {
            let cidr = format!("10.0.{}.0/24", i + 1);
            let az = format!("{}{zone}", self.ec2.region);
            let params = [("VpcId", vpc.as_str()), ("CidrBlock", cidr.as_str()), ("AvailabilityZone", az.as_str())];
            let subnet = self.ec2.call("CreateSubnet", &params).await;
            subnets.push(Ec2::texts(&subnet, &["subnet", "subnetId"]).remove(0));
        }
        (vpc, subnets)
    }

    /// An application load balancer: (ARN, DNS name, canonical hosted zone id).
    pub async fn load_balancer(
        &self,
        name: &str,
        subnets: &[String],
        tags: &[(&str, &str)],
    ) -> (String, String, String) {
        let tags: Vec<Tag> = tags.iter().map(|(k, v)| Tag::builder().key(*k).value(*v).build()).collect();
        let out = self
            .elb
            .create_load_balancer()
            .name(name)
            .set_subnets(Some(subnets.to_vec()))
            .set_tags((!tags.is_empty()).then_some(tags))
            .send()
            .await
            .expect("CreateLoadBalancer");
        let lb = out.load_balancers.unwrap().remove(0);
        (lb.load_balancer_arn.unwrap(), lb.dns_name.unwrap(), lb.canonical_hosted_zone_id.unwrap())
    }

    /// An empty HTTP target group on port 80.
    async fn new_target_group(&self, name: &str, vpc: &str, kind: elbv2::types::TargetTypeEnum) -> String {
        let out = self
            .elb
            .create_target_group()
            .name(name)
            .protocol(elbv2::types::ProtocolEnum::Http)
            .port(80)
            .vpc_id(vpc)
            .target_type(kind)
            .send()
            .await
            .expect("CreateTargetGroup");
        out.target_groups.unwrap().remove(0).target_group_arn.unwrap()
    }

    /// An IP target group with `ips` registered on port 80.
    pub async fn target_group(&self, name: &str, vpc: &str, ips: &[&str]) -> String {
        let arn = self.new_target_group(name, vpc, elbv2::types::TargetTypeEnum::Ip).await;
        if !ips.is_empty() {
            let targets = ips.iter().map(|ip| TargetDescription::builder().id(*ip).port(80).build()).collect();
            self.elb
                .register_targets()
                .target_group_arn(&arn)
                .set_targets(Some(targets))
                .send()
                .await
                .expect("RegisterTargets");
        }
        arn
    }

    /// A forward action over weighted target groups, with stickiness when `sticky_secs` is set.
    pub fn forward(groups: &[(&str, i32)], sticky_secs: Option<i32>) -> Action {
        let tgs = groups
            .iter()
            .map(|(arn, w)| TargetGroupTuple::builder().target_group_arn(*arn).weight(*w).build())
            .collect();
        let stickiness = match sticky_secs {
            Some(s) => TargetGroupStickinessConfig::builder().enabled(true).duration_seconds(s).build(),
            None => TargetGroupStickinessConfig::builder().enabled(false).build(),
        };
        Action::builder()
            .r#type(ActionTypeEnum::Forward)
            .forward_config(
                ForwardActionConfig::builder()
                    .set_target_groups(Some(tgs))
                    .target_group_stickiness_config(stickiness)
                    .build(),
            )
            .build()
    }

    /// An HTTP listener whose default action is `action`.
    pub async fn listener(&self, lb_arn: &str, port: i32, action: Action, tags: &[(&str, &str)]) -> String {
        let tags: Vec<Tag> = tags.iter().map(|(k, v)| Tag::builder().key(*k).value(*v).build()).collect();
        let out = self
            .elb
            .create_listener()
            .load_balancer_arn(lb_arn)
            .protocol(elbv2::types::ProtocolEnum::Http)
            .port(port)
            .default_actions(action)
            .set_tags((!tags.is_empty()).then_some(tags))
            .send()
            .await
            .expect("CreateListener");
        out.listeners.unwrap().remove(0).listener_arn.unwrap()
    }

    /// A listener rule on a path pattern.
    pub async fn rule(
        &self,
        listener: &str,
        priority: i32,
        path: &str,
        action: Action,
        tags: &[(&str, &str)],
    ) -> String {
        let tags: Vec<Tag> = tags.iter().map(|(k, v)| Tag::builder().key(*k).value(*v).build()).collect();
        let out = self
            .elb
            .create_rule()
            .listener_arn(listener)
            .priority(priority)
            .conditions(RuleCondition::builder().field("path-pattern").values(path).build())
            .actions(action)
            .set_tags((!tags.is_empty()).then_some(tags))
            .send()
            .await
            .expect("CreateRule");
        out.rules.unwrap().remove(0).rule_arn.unwrap()
    }

    /// The actions of a listener's default action (`rule = None`) or of a rule.
    pub async fn actions(&self, listener: &str, rule: Option<&str>) -> Vec<Action> {
        match rule {
            None => self
                .elb
                .describe_listeners()
                .listener_arns(listener)
                .send()
                .await
                .expect("DescribeListeners")
                .listeners
                .unwrap()
                .remove(0)
                .default_actions
                .unwrap_or_default(),
            Some(rule) => self
                .elb
                .describe_rules()
                .rule_arns(rule)
                .send()
                .await
                .expect("DescribeRules")
                .rules
                .unwrap()
                .remove(0)
                .actions
                .unwrap_or_default(),
        }
    }

    /// (target group ARN, weight) of the forward action.
    pub async fn forward_weights(&self, listener: &str, rule: Option<&str>) -> Vec<(String, i32)> {
        let actions = self.actions(listener, rule).await;
        let fwd = actions.iter().find(|a| a.r#type == Some(ActionTypeEnum::Forward)).expect("a forward action");
        fwd.forward_config
            .as_ref()
            .and_then(|f| f.target_groups.clone())
            .unwrap_or_default()
            .into_iter()
            .map(|t| (t.target_group_arn.unwrap(), t.weight.unwrap_or(1)))
            .collect()
    }

    /// A CloudWatch alarm that has evaluated and is OK.
    pub async fn alarm(&self, name: &str) {
        self.new_alarm(name).await;
        self.set_alarm(name, "OK").await;
    }

    /// A CloudWatch alarm just created: INSUFFICIENT_DATA until it has evaluated, as on AWS (the
    /// kit's proxy gives it that state; moto alone would start it in OK).
    pub async fn new_alarm(&self, name: &str) {
        self.cw
            .put_metric_alarm()
            .alarm_name(name)
            .namespace("AWS/ApplicationELB")
            .metric_name("HTTPCode_Target_5XX_Count")
            .statistic(cloudwatch::types::Statistic::Sum)
            .period(60)
            .evaluation_periods(1)
            .threshold(10.0)
            .comparison_operator(cloudwatch::types::ComparisonOperator::GreaterThanThreshold)
            .send()
            .await
            .expect("PutMetricAlarm");
    }

    /// A composite alarm over `rule` (e.g. `ALARM("child")`), evaluated and OK.
    pub async fn composite_alarm(&self, name: &str, rule: &str) {
        self.cw.put_composite_alarm().alarm_name(name).alarm_rule(rule).send().await.expect("PutCompositeAlarm");
        self.set_alarm(name, "OK").await;
    }

    /// A Route53 health check's `HealthCheckStatus` datapoint (1 healthy, 0 not), in us-east-1
    /// where Route53 publishes it.
    pub async fn health_check_status(&self, id: &str, value: f64) {
        let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .endpoint_url(&self.endpoint)
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(route53::config::Credentials::new("test", "test", None, None, "fixtures"))
            .load()
            .await;
        let datum = cloudwatch::types::MetricDatum::builder()
            .metric_name("HealthCheckStatus")
            .dimensions(cloudwatch::types::Dimension::builder().name("HealthCheckId").value(id).build())
            .value(value)
            .timestamp(aws_smithy_types::DateTime::from(std::time::SystemTime::now()))
            .build();
        cloudwatch::Client::new(&config)
            .put_metric_data()
            .namespace("AWS/Route53")
            .metric_data(datum)
            .send()
            .await
            .expect("PutMetricData");
    }

    /// Points a listener's default action (`rule = None`) or a rule at `action`.
    pub async fn set_action(&self, listener: &str, rule: Option<&str>, action: Action) {
        match rule {
            None => {
                self.elb
                    .modify_listener()
                    .listener_arn(listener)
                    .default_actions(action)
                    .send()
                    .await
                    .expect("ModifyListener");
            }
            Some(r) => {
                self.elb.modify_rule().rule_arn(r).actions(action).send().await.expect("ModifyRule");
            }
        }
    }

    /// Flips an alarm, e.g. to `ALARM` or `INSUFFICIENT_DATA`.
    pub async fn set_alarm(&self, name: &str, state: &str) {
        self.cw
            .set_alarm_state()
            .alarm_name(name)
            .state_value(cloudwatch::types::StateValue::from(state))
            .state_reason("set by a test")
            .send()
            .await
            .expect("SetAlarmState");
    }

    /// EC2 instances in a subnet, registered in an instance target group; returns their ids.
    pub async fn instance_targets(&self, name: &str, vpc: &str, subnet: &str, n: i32) -> (String, Vec<String>) {
        let n = n.to_string();
        let params =
            [("ImageId", "ami-12345678"), ("MinCount", n.as_str()), ("MaxCount", n.as_str()), ("SubnetId", subnet)];
        let out = self.ec2.call("RunInstances", &params).await;
        let ids = Ec2::texts(&out, &["instancesSet", "item", "instanceId"]);
        let tg = self.new_target_group(name, vpc, elbv2::types::TargetTypeEnum::Instance).await;
        let targets = ids.iter().map(|id| TargetDescription::builder().id(id).build()).collect();
        self.elb
            .register_targets()
            .target_group_arn(&tg)
            .set_targets(Some(targets))
            .send()
            .await
            .expect("RegisterTargets");
        (tg, ids)
    }

    pub async fn stop_instances(&self, ids: &[String]) {
        let keys: Vec<String> = (1..=ids.len()).map(|i| format!("InstanceId.{i}")).collect();
        let params: Vec<(&str, &str)> = keys.iter().map(String::as_str).zip(ids.iter().map(String::as_str)).collect();
        self.ec2.call("StopInstances", &params).await;
    }

    /// One datapoint of a metric with one dimension, timestamped now.
    pub async fn put_metric(&self, namespace: &str, metric: &str, dim: (&str, &str), value: f64) {
        let datum = cloudwatch::types::MetricDatum::builder()
            .metric_name(metric)
            .dimensions(cloudwatch::types::Dimension::builder().name(dim.0).value(dim.1).build())
            .value(value)
            .timestamp(aws_smithy_types::DateTime::from(std::time::SystemTime::now()))
            .build();
        self.cw.put_metric_data().namespace(namespace).metric_data(datum).send().await.expect("PutMetricData");
    }

    /// Requests an ALB counted this minute (`AWS/ApplicationELB` `RequestCount`, as the load
    /// balancer publishes it): at the load balancer alone, or at one of its target groups.
    pub async fn requests(&self, load_balancer_arn: &str, target_group_arn: Option<&str>, count: f64) {
        let lb = load_balancer_arn.split_once(":loadbalancer/").map(|(_, r)| r).unwrap_or(load_balancer_arn);
        let mut datum = cloudwatch::types::MetricDatum::builder()
            .metric_name("RequestCount")
            .dimensions(cloudwatch::types::Dimension::builder().name("LoadBalancer").value(lb).build())
            .value(count)
            .unit(cloudwatch::types::StandardUnit::Count)
            .timestamp(aws_smithy_types::DateTime::from(std::time::SystemTime::now()));
        if let Some(tg) = target_group_arn {
            let tg = tg.rsplit(':').next().unwrap_or(tg);
            datum = datum.dimensions(cloudwatch::types::Dimension::builder().name("TargetGroup").value(tg).build());
        }
        self.cw
            .put_metric_data()
            .namespace("AWS/ApplicationELB")
            .metric_data(datum.build())
            .send()
            .await
            .expect("PutMetricData");
    }

    /// Every Route53 health check as (id, CallerReference).
    pub async fn health_checks(&self) -> Vec<(String, String)> {
        let out = self.r53.list_health_checks().send().await.expect("ListHealthChecks");
        out.health_checks.into_iter().map(|h| (h.id, h.caller_reference)).collect()
    }

    /// A Route53 health check of an HTTP endpoint (a record's own health check).
    pub async fn http_health_check(&self, reference: &str) -> String {
        let config = route53::types::HealthCheckConfig::builder()
            .r#type(route53::types::HealthCheckType::Http)
            .fully_qualified_domain_name("health.example.test")
            .resource_path("/health")
            .build()
            .unwrap();
        let out = self
            .r53
            .create_health_check()
            .caller_reference(reference)
            .health_check_config(config)
            .send()
            .await
            .expect("CreateHealthCheck");
        out.health_check.expect("health check").id
    }

    /// The health check a record set carries.
    pub async fn record_health_check(&self, zone_id: &str, record: &str, set_id: &str) -> Option<String> {
        self.record_sets(zone_id, record)
            .await
            .into_iter()
            .find(|s| s.set_identifier.as_deref() == Some(set_id))
            .and_then(|s| s.health_check_id)
    }

    /// An EKS cluster in the given subnets (the emulator makes it ACTIVE at once).
    pub async fn cluster(&self, name: &str, subnets: &[String]) {
        self.eks
            .create_cluster()
            .name(name)
            .role_arn("arn:aws:iam::123456789012:role/eks")
            .resources_vpc_config(
                eks::types::VpcConfigRequest::builder().set_subnet_ids(Some(subnets.to_vec())).build(),
            )
            .send()
            .await
            .expect("CreateCluster");
    }
}

/// EC2's query API, for the few calls the fixtures make (VPCs, subnets, instances), signed with
/// the SDK's own SigV4 signer — in place of aws-sdk-ec2, the largest SDK crate, which took
/// minutes of a cold build for these four calls.
#[derive(Clone)]
pub struct Ec2 {
    endpoint: String,
    credentials: route53::config::Credentials,
    http: reqwest::Client,
    region: String,
}

impl Ec2 {
    /// Calls `action` with `params`; its answer's XML. Panics unless it succeeded.
    pub async fn call(&self, action: &str, params: &[(&str, &str)]) -> String {
        use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
        let encode = |s: &str| {
            s.bytes()
                .map(|b| match b {
                    b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
                    _ => format!("%{b:02X}"),
                })
                .collect::<String>()
        };
        let body = [("Action", action), ("Version", "2016-11-15")]
            .iter()
            .chain(params)
            .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
            .collect::<Vec<_>>()
            .join("&");
        let url = format!("{}/", self.endpoint.trim_end_matches('/'));
        let host = url.split("://").nth(1).and_then(|r| r.split('/').next()).unwrap_or_default().to_string();
        let headers = [("content-type", "application/x-www-form-urlencoded; charset=utf-8"), ("host", host.as_str())];
        let identity = self.credentials.clone().into();
        let params = aws_sigv4::sign::v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name("ec2")
            .time(std::time::SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .expect("signing parameters")
            .into();
        let signable =
            SignableRequest::new("POST", &url, headers.iter().copied(), SignableBody::Bytes(body.as_bytes()))
                .expect("a signable request");
        let (signed, _) = sign(signable, &params).expect("SigV4").into_parts();
        let mut request = self.http.post(&url).header(headers[0].0, headers[0].1).body(body.clone());
        for (name, value) in signed.headers() {
            request = request.header(name, value);
        }
        let answer = request.send().await.unwrap_or_else(|e| panic!("EC2 {action}: {e}"));
        let status = answer.status();
        let text = answer.text().await.unwrap_or_default();
        assert!(status.is_success(), "EC2 {action}: {status}: {text}");
        text
    }

    /// The text of every element at `path` (element names, each a child of the one before) in
    /// an answer.
    pub fn texts(xml: &str, path: &[&str]) -> Vec<String> {
        let doc = roxmltree::Document::parse(xml).unwrap_or_else(|e| panic!("{e}: {xml}"));
        let mut nodes: Vec<roxmltree::Node> = doc.descendants().filter(|n| n.has_tag_name(path[0])).collect();
        for name in &path[1..] {
            nodes = nodes.iter().flat_map(|n| n.children().filter(|c| c.has_tag_name(*name))).collect();
        }
        nodes.iter().filter_map(|n| n.text()).map(str::to_string).collect()
    }
}
