//! `cutover discover`: the controller's ingress ALBs of one cluster and namespace, among decoys.

use crate::emulator::unique;
use crate::{World, expect};

fn controller(cluster: &str, stack: &str) -> Vec<(String, String)> {
    vec![
        ("elbv2.k8s.aws/cluster".into(), cluster.into()),
        ("ingress.k8s.aws/resource".into(), "LoadBalancer".into()),
        ("ingress.k8s.aws/stack".into(), stack.into()),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discover_finds_exactly_the_tagged_albs_of_a_cluster_and_namespace() {
    let w = World::new().await;
    let (_, subnets) = w.aws.network().await;
    let cluster = unique("eks");
    let other_cluster = unique("eks");
    w.aws.cluster(&cluster, &subnets).await;

    let mut names = std::collections::BTreeMap::new();
    for (key, tags) in [
        ("blue", controller(&cluster, "blue/app")),
        ("green", controller(&cluster, "green/app")),
        ("other-ns", controller(&cluster, "other/web")),
        ("other-cluster", controller(&other_cluster, "blue/app")),
        ("untagged", vec![]),
    ] {
        let name = unique("d");
        let tags: Vec<(&str, &str)> = tags.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        w.aws.load_balancer(&name, &subnets, &tags).await;
        names.insert(key, name);
    }
    // Enough load balancers that DescribeTags needs more than one batch of 20.
    for _ in 0..22 {
        w.aws.load_balancer(&unique("f"), &subnets, &[("team", "x")]).await;
    }

    let calls = w.dir.path().join("calls.txt");
    let (out, _) = expect(
        w.cutover().env("CUTOVER_RECORD_CALLS", &calls).args([
            "-o",
            "json",
            "discover",
            "--cluster",
            &cluster,
            "--namespace",
            "blue",
        ]),
        0,
    );
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(doc["cluster"]["status"], "ACTIVE");
    let found: Vec<&str> =
        doc["load_balancers"].as_array().unwrap().iter().map(|l| l["name"].as_str().unwrap()).collect();
    assert_eq!(found, vec![names["blue"].as_str()]);
    let lb = &doc["load_balancers"][0];
    assert_eq!(lb["stack"], "blue/app");
    assert!(lb["dns_name"].as_str().unwrap().contains(names["blue"].as_str()));
    let tag_calls =
        std::fs::read_to_string(&calls).unwrap().lines().filter(|l| *l == "elasticloadbalancing:DescribeTags").count();
    assert!(tag_calls >= 2, "27+ load balancers take two or more DescribeTags calls of 20: {tag_calls}");

    // In text: what EKS and ELBv2 said, and no `?` for what they did not (moto reports no VPC
    // and no scheme; AWS does).
    let (text, _) = expect(w.cutover().args(["discover", "--cluster", &cluster, "--namespace", "blue"]), 0);
    assert!(!text.contains('?'), "{text}");
    let first = text.lines().next().unwrap_or_default();
    assert!(first.starts_with(&format!("cluster {cluster}: ACTIVE")), "{text}");
    for (key, label) in [("version", "Kubernetes "), ("vpc_id", "VPC ")] {
        match doc["cluster"][key].as_str() {
            Some(v) => assert!(first.contains(&format!("{label}{v}")), "{key}: {text}"),
            None => assert!(!first.contains(label), "{key} is unknown, and not said: {text}"),
        }
    }
    let line = text.lines().find(|l| l.contains(names["blue"].as_str())).unwrap();
    let state = lb["state"].as_str().unwrap_or_default();
    assert!(state.is_empty() || line.contains(state), "{line}");

    // The whole cluster: its three ingress ALBs, not the other cluster's, not the untagged one.
    let (out, _) = expect(w.cutover().args(["-o", "json", "discover", "--cluster", &cluster]), 0);
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    let mut found: Vec<&str> =
        doc["load_balancers"].as_array().unwrap().iter().map(|l| l["name"].as_str().unwrap()).collect();
    found.sort();
    let mut want = vec![names["blue"].as_str(), names["green"].as_str(), names["other-ns"].as_str()];
    want.sort();
    assert_eq!(found, want);

    // A starting profile between the two namespaces of one ingress.
    let file = w.dir.path().join("start.toml");
    let (_, err) = expect(
        w.cutover().args([
            "discover",
            "--cluster",
            &cluster,
            "--ingress",
            "app",
            "--write-profile",
            file.to_str().unwrap(),
        ]),
        0,
    );
    assert!(err.contains("wrote"), "{err}");
    let profile = cutover::profile::Profile::load(&file).unwrap();
    assert_eq!(profile.sides.blue.as_ref().unwrap().namespace, "blue");
    assert_eq!(profile.sides.green.as_ref().unwrap().namespace, "green");
    // Three namespaces: which two is unclear.
    let (_, err) =
        expect(w.cutover().args(["discover", "--cluster", &cluster, "--write-profile", "/tmp/never-written.toml"]), 2);
    assert!(err.contains("exactly two namespaces"), "{err}");

    let (_, err) = expect(w.cutover().args(["discover", "--cluster", "no-such-cluster"]), 2);
    assert!(err.contains("EKS cluster `no-such-cluster` not found"), "{err}");
}
