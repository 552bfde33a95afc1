//! The scenario builder: the emulated resources a test needs — a front ALB we own, a weighted
//! Route53 pair, a cluster's ingress ALBs — each a handle that reads back its own weights, and the
//! profile that names them, built from typed values and written as TOML ([`Profile`]), so no
//! test writes a profile by hand.

#![allow(dead_code)]

use std::collections::BTreeMap;

use aws_sdk_elasticloadbalancingv2::types::Action;
use serde::Serialize;

use crate::emulator::unique;
use crate::fixtures::Aws;

// ---- the profile ----

/// A profile, serialised to TOML by its `Display`. Empty parts are left out.
#[derive(Serialize, Clone, Debug, Default)]
pub struct Profile {
    pub region: Option<String>,
    pub sides: Option<Sides>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub route53: Vec<Route53>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub alb: Vec<AlbRoute>,
    pub rollout: Option<Rollout>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub gate: Vec<Gate>,
    pub observe: Option<Observe>,
    pub state: Option<State>,
    pub notify: Option<Notify>,
}

impl std::fmt::Display for Profile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&toml::to_string(self).expect("a profile serialises to TOML"))
    }
}

/// `pub fn key(self, value) -> Self` for optional keys.
macro_rules! keys {
    ($($key:ident: $t:ty),* $(,)?) => {
        $(pub fn $key(mut self, value: impl Into<$t>) -> Self {
            self.$key = Some(value.into());
            self
        })*
    };
}

impl Profile {
    pub fn new() -> Profile {
        Profile::default()
    }

    pub fn route53(mut self, route: Route53) -> Self {
        self.route53.push(route);
        self
    }

    pub fn alb(mut self, route: AlbRoute) -> Self {
        self.alb.push(route);
        self
    }

    pub fn gate(mut self, gate: Gate) -> Self {
        self.gate.push(gate);
        self
    }

    pub fn rollout(mut self, rollout: Rollout) -> Self {
        self.rollout = Some(rollout);
        self
    }

    /// `[state]` on `table`.
    pub fn state(mut self, table: &str) -> Self {
        self.state = Some(State { table: table.to_string(), lease: None });
        self
    }

    /// `[state]` on `table` with a lease of `lease`.
    pub fn state_leased(mut self, table: &str, lease: &str) -> Self {
        self.state = Some(State { table: table.to_string(), lease: Some(lease.to_string()) });
        self
    }

    keys!(region: String, sides: Sides, observe: Observe, notify: Notify);
}

/// A `[[route53]]` route.
#[derive(Serialize, Clone, Debug)]
pub struct Route53 {
    pub zone: String,
    pub record: String,
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub blue: String,
    pub green: String,
    pub preview: Option<String>,
    pub role_arn: Option<String>,
    pub external_id: Option<String>,
}

impl Route53 {
    /// A route over the record sets `blue` and `green` (their SetIdentifiers).
    pub fn new(zone: &str, record: &str) -> Route53 {
        Route53 {
            zone: zone.to_string(),
            record: record.to_string(),
            kind: None,
            blue: "blue".into(),
            green: "green".into(),
            preview: None,
            role_arn: None,
            external_id: None,
        }
    }

    /// Other SetIdentifiers.
    pub fn sets(mut self, blue: &str, green: &str) -> Self {
        (self.blue, self.green) = (blue.to_string(), green.to_string());
        self
    }

    keys!(kind: String, preview: String, role_arn: String, external_id: String);
}

/// An `[[alb]]` route.
#[derive(Serialize, Clone, Debug)]
pub struct AlbRoute {
    pub listener: String,
    pub rule: Option<String>,
    pub blue: String,
    pub green: String,
    pub owner_ok: Option<bool>,
    pub role_arn: Option<String>,
}

impl AlbRoute {
    pub fn new(listener: &str, blue: &str, green: &str) -> AlbRoute {
        AlbRoute {
            listener: listener.to_string(),
            rule: None,
            blue: blue.to_string(),
            green: green.to_string(),
            owner_ok: None,
            role_arn: None,
        }
    }

    keys!(rule: String, owner_ok: bool, role_arn: String);
}

/// A percentage of `[rollout] stages`, written whole when it is.
#[derive(Clone, Copy, Debug)]
pub struct Stage(pub f64);

impl Serialize for Stage {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.0.fract() == 0.0 { s.serialize_i64(self.0 as i64) } else { s.serialize_f64(self.0) }
    }
}

/// `[rollout]`.
#[derive(Serialize, Clone, Debug, Default)]
pub struct Rollout {
    pub stages: Vec<Stage>,
    pub bake: Option<String>,
    pub poll: Option<String>,
    pub failure_threshold: Option<i64>,
    pub on_failure: Option<String>,
    pub max_hold: Option<String>,
    pub dns_ttl: Option<String>,
    pub safety_net: Option<bool>,
}

impl Rollout {
    pub fn new(stages: &[f64]) -> Rollout {
        Rollout { stages: stages.iter().map(|s| Stage(*s)).collect(), ..Rollout::default() }
    }

    keys!(
        bake: String,
        poll: String,
        failure_threshold: i64,
        on_failure: String,
        max_hold: String,
        dns_ttl: String,
        safety_net: bool,
    );
}

/// A `[[gate]]` of any kind: only the keys set are written.
#[derive(Serialize, Clone, Debug, Default)]
pub struct Gate {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub name: Option<String>,
    pub alarms: Option<Vec<String>>,
    pub min_healthy: Option<f64>,
    pub namespace: Option<String>,
    pub metric: Option<String>,
    pub dimensions: Option<BTreeMap<String, String>>,
    pub stat: Option<String>,
    pub period: Option<String>,
    pub window: Option<String>,
    pub max: Option<f64>,
    pub min_requests: Option<i64>,
    pub health_check_id: Option<String>,
    pub url: Option<String>,
    pub body_contains: Option<String>,
}

impl Gate {
    pub fn alarm(alarms: &[&str]) -> Gate {
        Gate { kind: "alarm", alarms: Some(alarms.iter().map(|a| a.to_string()).collect()), ..Gate::default() }
    }

    pub fn target_health() -> Gate {
        Gate { kind: "target-health", ..Gate::default() }
    }

    pub fn metric(namespace: &str, metric: &str) -> Gate {
        Gate { kind: "metric", namespace: Some(namespace.into()), metric: Some(metric.into()), ..Gate::default() }
    }

    pub fn route53_health_check(id: &str) -> Gate {
        Gate { kind: "route53-health-check", health_check_id: Some(id.into()), ..Gate::default() }
    }

    pub fn http(url: &str) -> Gate {
        Gate { kind: "http", url: Some(url.into()), ..Gate::default() }
    }

    pub fn webhook(url: &str) -> Gate {
        Gate { kind: "webhook", url: Some(url.into()), ..Gate::default() }
    }

    pub fn dimension(mut self, name: &str, value: &str) -> Self {
        self.dimensions.get_or_insert_default().insert(name.into(), value.into());
        self
    }

    keys!(
        name: String,
        min_healthy: f64,
        stat: String,
        period: String,
        window: String,
        max: f64,
        min_requests: i64,
        body_contains: String,
    );
}

/// `[observe]`.
#[derive(Serialize, Clone, Debug, Default)]
pub struct Observe {
    pub tolerance: Option<f64>,
    pub window: Option<String>,
}

impl Observe {
    pub fn new() -> Observe {
        Observe::default()
    }

    keys!(tolerance: f64, window: String);
}

/// `[state]`.
#[derive(Serialize, Clone, Debug)]
pub struct State {
    pub table: String,
    pub lease: Option<String>,
}

/// `[notify]`.
#[derive(Serialize, Clone, Debug, Default)]
pub struct Notify {
    pub sns_topic_arn: Option<String>,
    pub webhook: Option<String>,
}

/// `[sides.blue]` and `[sides.green]`.
#[derive(Serialize, Clone, Debug, Default)]
pub struct Sides {
    pub blue: Side,
    pub green: Side,
}

#[derive(Serialize, Clone, Debug, Default)]
pub struct Side {
    pub eks: Option<EksSide>,
    pub role_arn: Option<String>,
}

#[derive(Serialize, Clone, Debug)]
pub struct EksSide {
    pub cluster: String,
    pub namespace: String,
    pub ingress: String,
}

impl Sides {
    /// Each side in its namespace of `cluster`, behind the ingress `ingress` of each.
    pub fn eks(cluster: &str, ingress: (&str, &str)) -> Sides {
        let side = |namespace: &str, ingress: &str| Side {
            eks: Some(EksSide { cluster: cluster.into(), namespace: namespace.into(), ingress: ingress.into() }),
            role_arn: None,
        };
        Sides { blue: side("blue", ingress.0), green: side("green", ingress.1) }
    }

    /// Both sides' load balancers read with `role_arn`.
    pub fn role(role_arn: &str) -> Sides {
        let side = Side { eks: None, role_arn: Some(role_arn.into()) };
        Sides { blue: side.clone(), green: side }
    }
}

// ---- the resources ----

/// A front ALB we own: a listener whose default action forwards to a blue and a green target
/// group (blue 100 / green 0 unless told otherwise), made in the account of `aws`.
#[derive(Clone)]
pub struct Front {
    pub aws: Aws,
    pub lb: String,
    pub lb_name: String,
    pub vpc: String,
    pub subnets: Vec<String>,
    pub listener: String,
    pub blue: String,
    pub green: String,
    pub blue_name: String,
    pub green_name: String,
}

/// What a [`Front`] is made with.
pub struct FrontSpec {
    aws: Aws,
    lb_tags: Vec<(String, String)>,
    listener_tags: Vec<(String, String)>,
    port: i32,
    weights: (i32, i32),
    green_ips: Vec<String>,
}

fn tags(tags: &[(String, String)]) -> Vec<(&str, &str)> {
    tags.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

fn owned(tags: &[(&str, &str)]) -> Vec<(String, String)> {
    tags.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

impl FrontSpec {
    pub fn lb_tags(mut self, t: &[(&str, &str)]) -> Self {
        self.lb_tags = owned(t);
        self
    }

    pub fn listener_tags(mut self, t: &[(&str, &str)]) -> Self {
        self.listener_tags = owned(t);
        self
    }

    pub fn port(mut self, port: i32) -> Self {
        self.port = port;
        self
    }

    /// The listener's forward weights, blue and green.
    pub fn weights(mut self, blue: i32, green: i32) -> Self {
        self.weights = (blue, green);
        self
    }

    /// The IP targets registered in green's target group (one by default).
    pub fn green_ips(mut self, ips: &[&str]) -> Self {
        self.green_ips = ips.iter().map(|s| s.to_string()).collect();
        self
    }

    pub async fn make(self) -> Front {
        let aws = self.aws;
        let (vpc, subnets) = aws.network().await;
        let lb_name = unique("f");
        let (lb, _, _) = aws.load_balancer(&lb_name, &subnets, &tags(&self.lb_tags)).await;
        let (blue_name, green_name) = (unique("tb"), unique("tg"));
        let blue = aws.target_group(&blue_name, &vpc, &["10.0.1.7"]).await;
        let ips: Vec<&str> = self.green_ips.iter().map(String::as_str).collect();
        let green = aws.target_group(&green_name, &vpc, &ips).await;
        let action = Aws::forward(&[(&blue, self.weights.0), (&green, self.weights.1)], None);
        let listener = aws.listener(&lb, self.port, action, &tags(&self.listener_tags)).await;
        Front { aws, lb, lb_name, vpc, subnets, listener, blue, green, blue_name, green_name }
    }
}

impl Front {
    /// A front made as `spec` says.
    pub fn spec(aws: &Aws) -> FrontSpec {
        FrontSpec {
            aws: aws.clone(),
            lb_tags: Vec::new(),
            listener_tags: Vec::new(),
            port: 80,
            weights: (100, 0),
            green_ips: vec!["10.0.2.7".into()],
        }
    }

    /// The usual front: port 80, blue 100 / green 0.
    pub async fn new(aws: &Aws) -> Front {
        Front::spec(aws).make().await
    }

    /// Its `[[alb]]` route: the default action, by ARNs.
    pub fn route(&self) -> AlbRoute {
        AlbRoute::new(&self.listener, &self.blue, &self.green)
    }

    /// A route of `listener` (or `LB:PORT`) and `rule` naming the target groups by name.
    pub fn route_by_name(&self, listener: &str) -> AlbRoute {
        AlbRoute::new(listener, &self.blue_name, &self.green_name)
    }

    /// A forward action to blue and green with these weights.
    pub fn forward(&self, blue: i32, green: i32) -> Action {
        Aws::forward(&[(&self.blue, blue), (&self.green, green)], None)
    }

    /// Another listener of the front's load balancer.
    pub async fn listen(&self, port: i32, action: Action, tags: &[(&str, &str)]) -> String {
        self.aws.listener(&self.lb, port, action, tags).await
    }

    /// A rule on `listener` for `path`, forwarding blue 100 / green 0.
    pub async fn rule(&self, listener: &str, priority: i32, path: &str, tags: &[(&str, &str)]) -> String {
        self.aws.rule(listener, priority, path, self.forward(100, 0), tags).await
    }

    /// (blue, green) of the default action.
    pub async fn weights(&self) -> (i32, i32) {
        self.weights_at(&self.listener, None).await
    }

    /// (blue, green) of a listener's default action or a rule.
    pub async fn weights_at(&self, listener: &str, rule: Option<&str>) -> (i32, i32) {
        let fw = self.aws.forward_weights(listener, rule).await;
        let get = |arn: &str| {
            fw.iter().find(|(a, _)| a == arn).map(|(_, w)| *w).unwrap_or_else(|| panic!("{arn} not in {fw:?}"))
        };
        (get(&self.blue), get(&self.green))
    }

    /// Someone edits the default action by hand.
    pub async fn set_weights(&self, blue: i32, green: i32) {
        self.aws.set_action(&self.listener, None, self.forward(blue, green)).await;
    }

    /// Requests the ALB counted this minute at each side's target group.
    pub async fn served(&self, blue: f64, green: f64) {
        self.aws.requests(&self.lb, Some(&self.blue), blue).await;
        self.aws.requests(&self.lb, Some(&self.green), green).await;
    }

    /// Its unique names, for the snapshots' redaction (`snap.rs`).
    pub fn names(&self) -> Vec<(String, &'static str)> {
        vec![
            (self.listener.clone(), "[listener]"),
            (self.lb.clone(), "[front-arn]"),
            (self.lb_name.clone(), "[front]"),
            (self.blue.clone(), "[tg-blue-arn]"),
            (self.green.clone(), "[tg-green-arn]"),
            (self.blue_name.clone(), "[tg-blue]"),
            (self.green_name.clone(), "[tg-green]"),
        ]
    }
}

/// Two load balancers that alias records may point at (AWS refuses an alias to one that does not
/// exist): (blue DNS name, green DNS name, their canonical hosted zone). Made once per test process.
pub async fn elbs() -> (String, String, String) {
    static ELBS: tokio::sync::OnceCell<(String, String, String)> = tokio::sync::OnceCell::const_new();
    ELBS.get_or_init(|| async {
        let aws = Aws::new(crate::emulator::endpoint()).await;
        let (_, subnets) = aws.network().await;
        let (_, blue, zone) = aws.load_balancer(&unique("eb"), &subnets, &[]).await;
        let (_, green, _) = aws.load_balancer(&unique("eg"), &subnets, &[]).await;
        (blue, green, zone)
    })
    .await
    .clone()
}

/// A weighted pair of record sets `blue` and `green` of `api.<zone>` in a new hosted zone of the
/// account of `aws`.
#[derive(Clone)]
pub struct Records {
    pub aws: Aws,
    pub zone: String,
    pub zone_id: String,
    pub record: String,
    /// `A` (aliases) or `CNAME`.
    pub kind: &'static str,
    /// The (blue, green) load balancers the aliases point at, when they are this pair's own.
    pub lbs: Option<(String, String)>,
}

impl Records {
    /// A new hosted zone and the name of the pair's record in it; no record sets yet.
    pub async fn zone(aws: &Aws) -> Records {
        let zone = format!("{}.test.", unique("z"));
        let zone_id = aws.zone(&zone).await;
        let record = format!("api.{zone}");
        Records { aws: aws.clone(), zone, zone_id, record, kind: "A", lbs: None }
    }

    /// Aliases to the shared load balancers of [`elbs`].
    pub async fn alias(aws: &Aws, weights: (i64, i64)) -> Records {
        let (b, g, lb_zone) = elbs().await;
        Records::alias_to(aws, weights, (&b, &g), &lb_zone).await
    }

    /// Aliases (blue evaluates target health, green does not) to these DNS names.
    pub async fn alias_to(
        aws: &Aws,
        (blue, green): (i64, i64),
        (blue_dns, green_dns): (&str, &str),
        lb_zone: &str,
    ) -> Records {
        let r = Records::zone(aws).await;
        r.aws
            .upsert(
                &r.zone_id,
                vec![
                    Aws::weighted_alias(&r.record, ("blue", blue), blue_dns, lb_zone, true),
                    Aws::weighted_alias(&r.record, ("green", green), green_dns, lb_zone, false),
                ],
            )
            .await;
        r
    }

    /// Aliases to two load balancers of the pair's own, blue 100 / green 0 (so their request
    /// counts are this test's alone).
    pub async fn own_albs(aws: &Aws) -> Records {
        let (_, subnets) = aws.network().await;
        let (blue_arn, blue, lb_zone) = aws.load_balancer(&unique("db"), &subnets, &[]).await;
        let (green_arn, green, _) = aws.load_balancer(&unique("dg"), &subnets, &[]).await;
        let r = Records::alias_to(aws, (100, 0), (&blue, &green), &lb_zone).await;
        Records { lbs: Some((blue_arn, green_arn)), ..r }
    }

    /// CNAMEs with `ttl`, blue 100 / green 0.
    pub async fn cname(aws: &Aws, ttl: i64) -> Records {
        let r = Records::zone(aws).await;
        r.aws
            .upsert(
                &r.zone_id,
                vec![
                    Aws::weighted_cname(&r.record, ("blue", 100), ttl, "blue.example.test", None),
                    Aws::weighted_cname(&r.record, ("green", 0), ttl, "green.example.test", None),
                ],
            )
            .await;
        Records { kind: "CNAME", ..r }
    }

    /// Its `[[route53]]` route, the zone named.
    pub fn route(&self) -> Route53 {
        let route = Route53::new(&self.zone, &self.record);
        if self.kind == "A" { route } else { route.kind(self.kind) }
    }

    /// Its `[[route53]]` route, the zone given by id.
    pub fn route_by_id(&self) -> Route53 {
        Route53 { zone: self.zone_id.clone(), ..self.route() }
    }

    pub async fn weight(&self, side: &str) -> i64 {
        self.aws.weight(&self.zone_id, &self.record, side).await
    }

    /// (blue, green).
    pub async fn weights(&self) -> (i64, i64) {
        (self.weight("blue").await, self.weight("green").await)
    }

    /// The health check a side's record set carries.
    pub async fn health_check(&self, side: &str) -> Option<String> {
        self.aws.record_health_check(&self.zone_id, &self.record, side).await
    }

    /// Requests each side's load balancer counted this minute.
    pub async fn served(&self, blue: f64, green: f64) {
        let (b, g) = self.lbs.as_ref().expect("a pair aliasing load balancers of its own");
        self.aws.requests(b, None, blue).await;
        self.aws.requests(g, None, green).await;
    }

    /// Its unique names, for the snapshots' redaction (`snap.rs`).
    pub fn names(&self) -> Vec<(String, &'static str)> {
        vec![(self.zone_id.clone(), "[zone-id]"), (self.zone.trim_end_matches('.').to_string(), "[zone]")]
    }
}

/// A cluster's ingress ALBs, tagged as the AWS Load Balancer Controller tags them: blue/app and
/// green/app, each with a listener forwarding to a target group of its own.
pub struct Ingress {
    pub cluster: String,
    pub subnets: Vec<String>,
    pub vpc: String,
    /// (DNS name, canonical hosted zone) of blue's and green's ALB.
    pub blue: (String, String),
    pub green: (String, String),
}

impl Ingress {
    pub async fn new(aws: &Aws) -> Ingress {
        let (vpc, subnets) = aws.network().await;
        let cluster = unique("eks");
        aws.cluster(&cluster, &subnets).await;
        let mut albs = Vec::new();
        for side in ["blue", "green"] {
            let stack = format!("{side}/app");
            let tags = [
                ("elbv2.k8s.aws/cluster", cluster.as_str()),
                ("ingress.k8s.aws/resource", "LoadBalancer"),
                ("ingress.k8s.aws/stack", stack.as_str()),
            ];
            let (lb, dns, zone) = aws.load_balancer(&unique(&format!("i{side}")), &subnets, &tags).await;
            let tg = aws.target_group(&unique(&format!("it{side}")), &vpc, &["10.0.1.9"]).await;
            aws.listener(&lb, 80, Aws::forward(&[(&tg, 1)], None), &[]).await;
            albs.push((dns, zone));
        }
        let green = albs.pop().unwrap();
        let blue = albs.pop().unwrap();
        Ingress { cluster, subnets, vpc, blue, green }
    }

    /// `[sides]` naming the two namespaces' ingress `app`.
    pub fn sides(&self) -> Sides {
        Sides::eks(&self.cluster, ("app", "app"))
    }
}

/// A weighted alias pair on the shared load balancers and a front ALB, with `green` percent on
/// green on both (the mixed profile of the speed and moto-vs-AWS tests).
pub async fn mixed(aws: &Aws, green: i32) -> (Records, Front) {
    let records = Records::alias(aws, (i64::from(100 - green), i64::from(green))).await;
    let front = Front::spec(aws).weights(100 - green, green).make().await;
    (records, front)
}
