//! The region of a run, and whether AWS knows it: a call that failed in a region no partition
//! lists (`us-wset-2`) is said to be about the region, with the closest known one.
//!
//! The list is the regions of the partitions the SDK's own endpoint resolver carries
//! (aws-sdk-sts 1.124's partition data). It only ever adds a hint to a call that failed: a region
//! opened after this build still works, it is just not suggested.

use std::sync::OnceLock;

const KNOWN: &[&str] = &[
    "af-south-1",
    "ap-east-1",
    "ap-east-2",
    "ap-northeast-1",
    "ap-northeast-2",
    "ap-northeast-3",
    "ap-south-1",
    "ap-south-2",
    "ap-southeast-1",
    "ap-southeast-2",
    "ap-southeast-3",
    "ap-southeast-4",
    "ap-southeast-5",
    "ap-southeast-6",
    "ap-southeast-7",
    "ca-central-1",
    "ca-west-1",
    "eu-central-1",
    "eu-central-2",
    "eu-north-1",
    "eu-south-1",
    "eu-south-2",
    "eu-west-1",
    "eu-west-2",
    "eu-west-3",
    "il-central-1",
    "me-central-1",
    "me-south-1",
    "mx-central-1",
    "sa-east-1",
    "us-east-1",
    "us-east-2",
    "us-west-1",
    "us-west-2",
    "cn-north-1",
    "cn-northwest-1",
    "eusc-de-east-1",
    "us-iso-east-1",
    "us-iso-west-1",
    "us-isob-east-1",
    "us-isob-west-1",
    "eu-isoe-west-1",
    "us-isof-east-1",
    "us-isof-south-1",
    "us-gov-east-1",
    "us-gov-west-1",
];

static REGION: OnceLock<String> = OnceLock::new();

/// Records the run's region (once, when the SDK configuration is loaded).
pub fn set(region: &str) {
    let _ = REGION.set(region.to_string());
}

/// The run's region, once loaded.
pub fn current() -> Option<&'static str> {
    REGION.get().map(String::as_str)
}

/// Whether `region` is one of the known regions.
pub fn is_known(region: &str) -> bool {
    KNOWN.contains(&region)
}

/// The hint for a call that failed in an unknown region, naming the closest known one.
pub fn unknown_region_hint() -> Option<String> {
    let region = current().filter(|r| !is_known(r))?;
    let near = KNOWN.iter().map(|k| (distance(region, k), *k)).min().filter(|(d, _)| *d <= 3);
    Some(match near {
        Some((_, k)) => {
            format!("`{region}` (AWS_REGION or the profile's `region`) is not a known AWS region: did you mean `{k}`?")
        }
        None => format!(
            "`{region}` (AWS_REGION or the profile's `region`) is not a known AWS region: regions look like `us-west-2`"
        ),
    })
}

/// Edit distance (insertions, deletions, substitutions; a swap of neighbours counts one).
fn distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (d[i - 1][j] + 1).min(d[i][j - 1] + 1).min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = v;
        }
    }
    d[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_misspelt_region_is_unknown_and_the_closest_known_one_is_found() {
        assert!(is_known("us-west-2") && is_known("cn-north-1") && !is_known("us-wset-2"));
        assert_eq!(distance("us-wset-2", "us-west-2"), 1);
        let near = KNOWN.iter().map(|k| (distance("us-wset-2", k), *k)).min().unwrap();
        assert_eq!(near.1, "us-west-2");
    }
}
