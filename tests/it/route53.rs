//! The Route53 splitter end to end: weights in the emulator, fields kept, refusals, dry runs.

use crate::fixtures::Aws;
use crate::scenario::{Profile, Records, Rollout, Route53, elbs};
use crate::snap::Redact;
use crate::{World, expect};

/// A zone with one weighted alias pair (blue → blue ALB, green → green ALB).
async fn alias_pair(w: &World, blue: i64, green: i64) -> Records {
    Records::alias(&w.aws, (blue, green)).await
}

/// The profile of the pair's one route.
fn route53_profile(p: &Records) -> Profile {
    Profile::new().route53(p.route())
}

#[tokio::test]
async fn status_json_reports_weights_percentages_and_the_live_side() {
    let w = World::new().await;
    let p = alias_pair(&w, 100, 0).await;
    w.write("svc", &route53_profile(&p));
    let (out, _) = expect(w.cutover().args(["-p", "svc", "status", "-o", "json"]), 0);
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(doc["profile"], "svc");
    assert_eq!(doc["live"], "blue");
    assert_eq!(doc["rollout"], serde_json::Value::Null);
    let route = &doc["routes"][0];
    assert_eq!(route["kind"], "route53");
    assert_eq!(route["name"], format!("{} A", p.record));
    assert_eq!(route["weights"], serde_json::json!({"blue": 100, "green": 0}));
    assert_eq!(route["percent"], serde_json::json!({"blue": 100.0, "green": 0.0}));

    // While split, no side is live.
    expect(w.cutover().args(["-p", "svc", "set", "green=50"]), 0);
    let (out, _) = expect(w.cutover().args(["-p", "svc", "status", "-o", "json"]), 0);
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(doc["live"], serde_json::Value::Null);
    assert_eq!(doc["routes"][0]["percent"], serde_json::json!({"blue": 50.0, "green": 50.0}));
}

#[tokio::test]
async fn set_changes_only_the_weight_of_alias_records() {
    let w = World::new().await;
    let p = alias_pair(&w, 100, 0).await;
    w.write("svc", &route53_profile(&p));
    let before = w.aws.record_sets(&p.zone_id, &p.record).await;

    let (out, _) = expect(w.cutover().args(["-p", "svc", "set", "green=25"]), 0);
    assert!(out.contains("blue    75% / green    25%"), "{out}");

    let after = w.aws.record_sets(&p.zone_id, &p.record).await;
    assert_eq!(after.len(), 2);
    for (b, a) in before.iter().zip(&after) {
        assert_eq!(a.set_identifier, b.set_identifier);
        assert_eq!(a.alias_target, b.alias_target, "alias target and EvaluateTargetHealth kept");
        assert_eq!(a.ttl, b.ttl);
        assert_eq!(a.r#type, b.r#type);
    }
    assert_eq!(w.aws.weight(&p.zone_id, &p.record, "blue").await, 75);
    assert_eq!(w.aws.weight(&p.zone_id, &p.record, "green").await, 25);
    // The evaluate flags differ per side and each survived.
    let eval: Vec<bool> = after.iter().map(|s| s.alias_target.as_ref().unwrap().evaluate_target_health).collect();
    assert_eq!(eval, vec![true, false]);
}

#[tokio::test]
async fn set_keeps_ttl_values_and_health_check_of_plain_records() {
    let w = World::new().await;
    let zone = Records::zone(&w.aws).await;
    let (zone_id, record) = (zone.zone_id.clone(), format!("www.{}", zone.zone));
    w.aws
        .upsert(
            &zone_id,
            vec![
                Aws::weighted_cname(
                    &record,
                    ("b", 255),
                    42,
                    "blue.example.net",
                    Some("11111111-2222-3333-4444-555555555555"),
                ),
                Aws::weighted_cname(&record, ("g", 0), 42, "green.example.net", None),
            ],
        )
        .await;
    w.write("www", &Profile::new().route53(Route53::new(&zone.zone, &record).kind("CNAME").sets("b", "g")));
    expect(w.cutover().args(["-p", "www", "set", "green=10"]), 0);

    let sets = w.aws.record_sets(&zone_id, &record).await;
    let b = sets.iter().find(|s| s.set_identifier.as_deref() == Some("b")).unwrap();
    let g = sets.iter().find(|s| s.set_identifier.as_deref() == Some("g")).unwrap();
    assert_eq!((b.weight, g.weight), (Some(90), Some(10)));
    assert_eq!((b.ttl, g.ttl), (Some(42), Some(42)));
    assert_eq!(b.resource_records.as_ref().unwrap()[0].value, "blue.example.net");
    assert_eq!(g.resource_records.as_ref().unwrap()[0].value, "green.example.net");
    assert_eq!(b.health_check_id.as_deref(), Some("11111111-2222-3333-4444-555555555555"));
    assert_eq!(g.health_check_id, None);
}

#[tokio::test]
async fn routes_in_one_zone_move_in_one_change_batch() {
    let w = World::new().await;
    let p = alias_pair(&w, 100, 0).await;
    let second = format!("www.{}", p.zone);
    let (b, g, lb_zone) = elbs().await;
    w.aws
        .upsert(
            &p.zone_id,
            vec![
                Aws::weighted_alias(&second, ("blue", 100), &b, &lb_zone, true),
                Aws::weighted_alias(&second, ("green", 0), &g, &lb_zone, true),
            ],
        )
        .await;
    w.write("two", &route53_profile(&p).route53(Route53::new(&p.zone_id, &second)));
    let (_, err) = expect(w.cutover().args(["-p", "two", "-v", "set", "green=50"]), 0);
    assert_eq!(err.matches("route53 change submitted").count(), 1, "one change batch for one zone:\n{err}");
    for record in [&p.record, &second] {
        assert_eq!(w.aws.weight(&p.zone_id, record, "blue").await, 50);
        assert_eq!(w.aws.weight(&p.zone_id, record, "green").await, 50);
    }
}

#[tokio::test]
async fn dry_run_prints_the_change_and_writes_nothing() {
    let w = World::new().await;
    let p = alias_pair(&w, 100, 0).await;
    w.write("svc", &route53_profile(&p));
    let (out, _) = expect(w.cutover().args(["-p", "svc", "set", "green=25", "--dry-run"]), 0);
    let (b, g, lb_zone) = elbs().await;
    let r = Redact::new().names(p.names()).name(&b, "[elb-blue]").name(&g, "[elb-green]").name(&lb_zone, "[elb-zone]");
    // Each UPSERT with its SetIdentifier and old → new weight.
    insta::assert_snapshot!("route53-set-dry-run", r.text(&out));
    assert_eq!(w.aws.weight(&p.zone_id, &p.record, "blue").await, 100);
    assert_eq!(w.aws.weight(&p.zone_id, &p.record, "green").await, 0);

    let (out, _) = expect(w.cutover().args(["-p", "svc", "-o", "json", "rollback", "--to", "green", "--dry-run"]), 0);
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(doc["dry_run"], true);
    assert_eq!(doc["routes"][0]["after"]["weights"], serde_json::json!({"blue": 0, "green": 100}));
    assert_eq!(w.aws.weight(&p.zone_id, &p.record, "green").await, 0);
}

#[tokio::test]
async fn rollback_to_a_side_puts_all_traffic_there() {
    let w = World::new().await;
    let p = alias_pair(&w, 50, 50).await;
    w.write("svc", &route53_profile(&p));
    let (out, _) = expect(w.cutover().args(["-p", "svc", "rollback", "--to", "blue"]), 0);
    assert!(out.contains("all traffic on blue"), "{out}");
    assert_eq!(w.aws.weight(&p.zone_id, &p.record, "blue").await, 100);
    assert_eq!(w.aws.weight(&p.zone_id, &p.record, "green").await, 0);
    // Again: already there, nothing to write.
    let (out, _) = expect(w.cutover().args(["-p", "svc", "rollback", "--to", "blue"]), 0);
    assert!(out.contains("already there"), "{out}");
}

#[tokio::test]
async fn half_a_percent_is_written_as_199_to_1() {
    let w = World::new().await;
    let p = alias_pair(&w, 100, 0).await;
    w.write("svc", &route53_profile(&p));
    expect(w.cutover().args(["-p", "svc", "set", "green=0.5"]), 0);
    assert_eq!(w.aws.weight(&p.zone_id, &p.record, "blue").await, 199);
    assert_eq!(w.aws.weight(&p.zone_id, &p.record, "green").await, 1);
}

#[tokio::test]
async fn unknown_zone_record_or_set_identifier_is_refused_and_nothing_moves() {
    let w = World::new().await;
    let p = alias_pair(&w, 100, 0).await;
    let good = p.route();

    // The zone renamed (its record with it).
    let nozone = Route53 { zone: format!("nope-{}", p.zone), record: format!("api.nope-{}", p.zone), ..good.clone() };
    w.write("nozone", &Profile::new().route53(nozone));
    let r = Redact::new().names(p.names());
    let (_, err) = expect(w.cutover().args(["-p", "nozone", "set", "green=10"]), 2);
    let mut refusals = vec![r.text(&err)];

    let norecord = Route53 { record: format!("missing.{}", p.zone), ..good.clone() };
    w.write("norecord", &Profile::new().route53(norecord));
    let (_, err) = expect(w.cutover().args(["-p", "norecord", "set", "green=10"]), 2);
    refusals.push(r.text(&err));

    w.write("noset", &Profile::new().route53(good.clone().sets("blue", "verde")));
    let (_, err) = expect(w.cutover().args(["-p", "noset", "set", "green=10"]), 2);
    refusals.push(r.text(&err));

    // One good route and one bad one: the good one is not touched either.
    let other = alias_pair(&w, 100, 0).await;
    w.write("mixed", &Profile::new().route53(good).route53(other.route().sets("azul", "green")));
    let (_, err) = expect(w.cutover().args(["-p", "mixed", "set", "green=10"]), 2);
    refusals.push(Redact::new().names(other.names()).text(&r.text(&err)));
    // The zone, the record, each SetIdentifier (and the ones found) named.
    insta::assert_snapshot!("refused-unknown-zone-record-or-set-identifier", refusals.join("---\n"));

    for (zone_id, record) in [(&p.zone_id, &p.record), (&other.zone_id, &other.record)] {
        assert_eq!(w.aws.weight(zone_id, record, "blue").await, 100);
        assert_eq!(w.aws.weight(zone_id, record, "green").await, 0);
    }
}

#[tokio::test]
async fn percent_outside_0_to_100_is_refused() {
    let w = World::new().await;
    let p = alias_pair(&w, 100, 0).await;
    w.write("svc", &route53_profile(&p));
    let mut refusals = Vec::new();
    for bad in ["green=150", "green=-5", "green=abc", "purple=10"] {
        let (_, err) = expect(w.cutover().args(["-p", "svc", "set", bad]), 2);
        refusals.push(err);
    }
    insta::assert_snapshot!("refused-percent-outside-0-to-100", refusals.join("---\n"));
    assert_eq!(w.aws.weight(&p.zone_id, &p.record, "green").await, 0);
}

#[tokio::test]
async fn validate_resolves_every_route_and_prints_the_stage_plan() {
    let w = World::new().await;
    let p = alias_pair(&w, 100, 0).await;
    w.write("svc", &route53_profile(&p).rollout(Rollout::new(&[0.5, 50.0, 100.0])));
    let (out, _) = expect(w.cutover().args(["-p", "svc", "validate"]), 0);
    insta::assert_snapshot!("validate-stage-plan", Redact::new().names(p.names()).text(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_and_prior_request_not_complete_are_retried() {
    use wiremock::matchers::{method, path_regex};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    let w = World::new().await;
    let p = alias_pair(&w, 75, 25).await;
    // The emulator's own answers, before and after the change.
    let get = |path: String| async move { crate::emulator::raw_answer("route53", &path, None).await };
    let zones = get(format!("/2013-04-01/hostedzonesbyname?dnsname={}", p.zone)).await;
    let rrset = format!("/2013-04-01/hostedzone/{}/rrset?name={}&type=A&maxitems=300", p.zone_id, p.record);
    let after = get(rrset.clone()).await;
    let (b, g, lb_zone) = elbs().await;
    w.aws
        .upsert(
            &p.zone_id,
            vec![
                Aws::weighted_alias(&p.record, ("blue", 100), &b, &lb_zone, true),
                Aws::weighted_alias(&p.record, ("green", 0), &g, &lb_zone, false),
            ],
        )
        .await;
    let before = get(rrset).await;

    let r53 = MockServer::start().await;
    let error = |code: &str| {
        ResponseTemplate::new(400).set_body_string(format!(
            "<?xml version=\"1.0\"?><ErrorResponse xmlns=\"https://route53.amazonaws.com/doc/2013-04-01/\"><Error><Type>Sender</Type><Code>{code}</Code><Message>slow down</Message></Error><RequestId>r</RequestId></ErrorResponse>"
        ))
    };
    Mock::given(method("GET"))
        .and(path_regex("hostedzonesbyname"))
        .respond_with(ResponseTemplate::new(200).set_body_string(zones))
        .mount(&r53)
        .await;
    // Reads: the old weights once, the new ones after the write.
    Mock::given(method("GET"))
        .and(path_regex("/rrset"))
        .respond_with(ResponseTemplate::new(200).set_body_string(before))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&r53)
        .await;
    Mock::given(method("GET"))
        .and(path_regex("/rrset"))
        .respond_with(ResponseTemplate::new(200).set_body_string(after))
        .with_priority(2)
        .mount(&r53)
        .await;
    // The write: throttled, then "a prior request is still in progress", then accepted.
    Mock::given(method("POST"))
        .and(path_regex("/rrset"))
        .respond_with(error("Throttling"))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&r53)
        .await;
    Mock::given(method("POST"))
        .and(path_regex("/rrset"))
        .respond_with(error("PriorRequestNotComplete"))
        .up_to_n_times(1)
        .with_priority(2)
        .mount(&r53)
        .await;
    Mock::given(method("POST"))
        .and(path_regex("/rrset"))
        .respond_with(ResponseTemplate::new(200).set_body_string(
            "<?xml version=\"1.0\"?><ChangeResourceRecordSetsResponse xmlns=\"https://route53.amazonaws.com/doc/2013-04-01/\"><ChangeInfo><Id>/change/C1</Id><Status>INSYNC</Status><SubmittedAt>2026-01-01T00:00:00Z</SubmittedAt></ChangeInfo></ChangeResourceRecordSetsResponse>",
        ))
        .with_priority(3)
        .mount(&r53)
        .await;

    w.write("svc", &route53_profile(&p));
    let (out, _) =
        expect(w.cutover().env("AWS_ENDPOINT_URL_ROUTE_53", r53.uri()).args(["-p", "svc", "set", "green=25"]), 0);
    assert!(out.contains("done"), "{out}");
    let posts = r53.received_requests().await.unwrap().into_iter().filter(|r| r.method.as_str() == "POST").count();
    assert_eq!(posts, 3, "two refusals retried, the third attempt accepted");
}
