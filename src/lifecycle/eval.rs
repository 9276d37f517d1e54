//! Which images a lifecycle policy acts on, by ECR's documented semantics (spec §4.6):
//! rules in ascending priority; an image is acted on by at most one rule; once an image
//! matches a rule's tag criteria no later rule may act on it, though later
//! `imageCountMoreThan` rules still count it; older images go first.
//!
//! Pure: the caller supplies the images and the time, so preview and execution (and
//! tests, with any clock) run the very same code.

use std::collections::HashSet;

use super::policy::{Count, LifecyclePolicy, Rule, RuleAction, StorageClass, TagSelection};
use crate::oci::name::tag_pattern_matches;

const DAY_MS: i64 = 24 * 60 * 60 * 1000;
/// Archived images may be expired only after this long in the archive.
const MIN_ARCHIVE_DAYS: i64 = 90;

/// What the evaluator needs to know of an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    pub digest: String,
    pub tags: Vec<String>,
    pub pushed_at_ms: i64,
    pub last_pulled_at_ms: Option<i64>,
    pub storage_class: StorageClass,
    pub transitioned_at_ms: Option<i64>,
}

/// One image a rule acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// The image's position in the slice given to [`evaluate`].
    pub index: usize,
    pub digest: String,
    pub rule_priority: u32,
    pub action: RuleAction,
}

/// The images the policy acts on at `now_ms`, oldest push first.
pub fn evaluate(policy: &LifecyclePolicy, images: &[Image], now_ms: i64) -> Vec<Verdict> {
    // Indices of images whose tag criteria an earlier rule matched.
    let mut claimed: HashSet<usize> = HashSet::new();
    let mut acted: Vec<(usize, &Rule)> = Vec::new();
    for rule in &policy.rules {
        let mut selected: Vec<usize> = (0..images.len())
            .filter(|&i| selects(rule, &images[i]))
            .collect();
        let due: Vec<usize> = match rule.selection.count {
            Count::MoreThan(keep) => {
                // Newest first; the digest breaks ties so the outcome is deterministic.
                selected.sort_by(|&a, &b| {
                    let (x, y) = (&images[a], &images[b]);
                    y.pushed_at_ms
                        .cmp(&x.pushed_at_ms)
                        .then_with(|| x.digest.cmp(&y.digest))
                });
                selected.iter().copied().skip(keep as usize).collect()
            }
            Count::SincePushed(days) => {
                older(&selected, days, now_ms, |i| Some(images[i].pushed_at_ms))
            }
            Count::SincePulled(days) => older(&selected, days, now_ms, |i| {
                Some(
                    images[i]
                        .last_pulled_at_ms
                        .unwrap_or(images[i].pushed_at_ms),
                )
            }),
            Count::SinceTransitioned(days) => {
                older(&selected, days, now_ms, |i| images[i].transitioned_at_ms)
            }
        };
        for i in due {
            if !claimed.contains(&i) && may_act(rule.action, &images[i], now_ms) {
                acted.push((i, rule));
            }
        }
        claimed.extend(selected);
    }
    acted.sort_by(|(a, _), (b, _)| {
        let (x, y) = (&images[*a], &images[*b]);
        x.pushed_at_ms
            .cmp(&y.pushed_at_ms)
            .then_with(|| x.digest.cmp(&y.digest))
    });
    acted
        .into_iter()
        .map(|(i, rule)| Verdict {
            index: i,
            digest: images[i].digest.clone(),
            rule_priority: rule.priority,
            action: rule.action,
        })
        .collect()
}

/// The selected images whose reference time is more than `days` before now.
fn older(
    selected: &[usize],
    days: u32,
    now_ms: i64,
    at: impl Fn(usize) -> Option<i64>,
) -> Vec<usize> {
    let limit = now_ms - i64::from(days) * DAY_MS;
    selected
        .iter()
        .copied()
        .filter(|&i| at(i).is_some_and(|t| t < limit))
        .collect()
}

fn may_act(action: RuleAction, image: &Image, now_ms: i64) -> bool {
    match (action, image.storage_class) {
        (RuleAction::Transition, StorageClass::Archive) => false,
        (RuleAction::Expire, StorageClass::Archive) => image
            .transitioned_at_ms
            .is_some_and(|t| t <= now_ms - MIN_ARCHIVE_DAYS * DAY_MS),
        _ => true,
    }
}

/// Whether a rule's tag criteria and storage class select an image.
fn selects(rule: &Rule, image: &Image) -> bool {
    if image.storage_class != rule.selection.storage_class {
        return false;
    }
    match &rule.selection.tags {
        TagSelection::Any => true,
        TagSelection::Untagged => image.tags.is_empty(),
        TagSelection::Prefixes(list) => list
            .iter()
            .all(|p| image.tags.iter().any(|t| t.starts_with(p.as_str()))),
        TagSelection::Patterns(list) => list
            .iter()
            .all(|p| image.tags.iter().any(|t| tag_pattern_matches(p, t))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000_000;

    fn image(n: u32, tags: &[&str], age_days: i64) -> Image {
        Image {
            digest: format!("sha256:{n:064}"),
            tags: tags.iter().map(|t| t.to_string()).collect(),
            pushed_at_ms: NOW - age_days * DAY_MS - i64::from(n),
            last_pulled_at_ms: None,
            storage_class: StorageClass::Standard,
            transitioned_at_ms: None,
        }
    }

    fn run(policy: &str, images: &[Image]) -> Vec<(u32, u32)> {
        let p = LifecyclePolicy::parse(policy).expect("valid policy");
        evaluate(&p, images, NOW)
            .into_iter()
            .map(|v| {
                let n = images
                    .iter()
                    .position(|i| i.digest == v.digest)
                    .expect("known digest") as u32;
                (n, v.rule_priority)
            })
            .collect()
    }

    #[test]
    fn untagged_older_than_14_days_expire() {
        // ECR's example "filtering on image age".
        let images = [image(0, &[], 20), image(1, &[], 10), image(2, &["v1"], 30)];
        let policy = r#"{"rules":[{"rulePriority":1,"selection":{"tagStatus":"untagged","countType":"sinceImagePushed","countUnit":"days","countNumber":14},"action":{"type":"expire"}}]}"#;
        assert_eq!(run(policy, &images), [(0, 1)]);
    }

    #[test]
    fn keep_the_newest_n_of_a_prefix() {
        // ECR's example "filtering on image count": keep 1 prod image.
        let images = [
            image(0, &["prod-1"], 3),
            image(1, &["prod-2"], 2),
            image(2, &["prod-3"], 1),
            image(3, &["beta-1"], 5),
        ];
        let policy = r#"{"rules":[{"rulePriority":1,"selection":{"tagStatus":"tagged","tagPrefixList":["prod"],"countType":"imageCountMoreThan","countNumber":1},"action":{"type":"expire"}}]}"#;
        // Oldest first.
        assert_eq!(run(policy, &images), [(0, 1), (1, 1)]);
    }

    #[test]
    fn every_prefix_or_pattern_must_match_some_tag() {
        // ECR's example: tagPrefixList ["alpha", "beta"] selects images tagged with both.
        let images = [
            image(0, &["alpha-1"], 9),
            image(1, &["alpha-2", "beta-2"], 8),
            image(2, &["beta-3"], 7),
            image(3, &["alpha-4", "beta-4"], 1),
        ];
        let prefixes = r#"{"rules":[{"rulePriority":1,"selection":{"tagStatus":"tagged","tagPrefixList":["alpha","beta"],"countType":"imageCountMoreThan","countNumber":1},"action":{"type":"expire"}}]}"#;
        assert_eq!(run(prefixes, &images), [(1, 1)]);
        let patterns = r#"{"rules":[{"rulePriority":1,"selection":{"tagStatus":"tagged","tagPatternList":["alpha-*","*-4"],"countType":"imageCountMoreThan","countNumber":0}, "action":{"type":"expire"}}]}"#;
        assert!(LifecyclePolicy::parse(patterns).is_err(), "countNumber 0");
        let patterns = r#"{"rules":[{"rulePriority":1,"selection":{"tagStatus":"tagged","tagPatternList":["*a-*"],"countType":"sinceImagePushed","countUnit":"days","countNumber":5},"action":{"type":"expire"}}]}"#;
        assert_eq!(run(patterns, &images), [(0, 1), (1, 1), (2, 1)]);
    }

    #[test]
    fn a_higher_priority_rule_shields_what_it_matches_but_is_still_counted() {
        // ECR's documented example: rule 1 keeps 1 "prod" image; rule 2 keeps 1 of any.
        // Rule 2 counts the prod images, yet may not expire them.
        let images = [
            image(0, &["prod-1"], 4),
            image(1, &["prod-2"], 3),
            image(2, &["dev-1"], 2),
            image(3, &["dev-2"], 1),
        ];
        let policy = r#"{"rules":[
          {"rulePriority":1,"selection":{"tagStatus":"tagged","tagPrefixList":["prod"],"countType":"imageCountMoreThan","countNumber":1},"action":{"type":"expire"}},
          {"rulePriority":2,"selection":{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":1},"action":{"type":"expire"}}]}"#;
        // Rule 1 expires prod-1. Rule 2 keeps only dev-2 (newest of all); prod-2 is
        // shielded by rule 1; dev-1 expires by rule 2.
        assert_eq!(run(policy, &images), [(0, 1), (2, 2)]);
    }

    #[test]
    fn since_pulled_falls_back_to_push_time_and_archive_rules_wait_90_days() {
        let mut pulled = image(0, &["a"], 100);
        pulled.last_pulled_at_ms = Some(NOW - 2 * DAY_MS);
        let never_pulled = image(1, &["b"], 100);
        let policy = r#"{"rules":[{"rulePriority":1,"selection":{"tagStatus":"any","countType":"sinceImagePulled","countUnit":"days","countNumber":30},"action":{"type":"transition","targetStorageClass":"archive"}}]}"#;
        let p = LifecyclePolicy::parse(policy).expect("valid");
        let v = evaluate(&p, &[pulled, never_pulled.clone()], NOW);
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].digest, never_pulled.digest);
        assert_eq!(v[0].action, RuleAction::Transition);

        let archived = |days: i64| Image {
            storage_class: StorageClass::Archive,
            transitioned_at_ms: Some(NOW - days * DAY_MS),
            ..image(2, &["old"], 400)
        };
        let expire_archived = r#"{"rules":[{"rulePriority":1,"selection":{"tagStatus":"any","storageClass":"archive","countType":"sinceImageTransitioned","countUnit":"days","countNumber":30},"action":{"type":"expire"}}]}"#;
        let p = LifecyclePolicy::parse(expire_archived).expect("valid");
        assert!(evaluate(&p, &[archived(60)], NOW).is_empty());
        assert_eq!(evaluate(&p, &[archived(91)], NOW).len(), 1);
        // Standard-class rules never see archived images.
        let std_rule = r#"{"rules":[{"rulePriority":1,"selection":{"tagStatus":"any","countType":"sinceImagePushed","countUnit":"days","countNumber":1},"action":{"type":"expire"}}]}"#;
        let p = LifecyclePolicy::parse(std_rule).expect("valid");
        assert!(evaluate(&p, &[archived(200)], NOW).is_empty());
    }

    #[test]
    fn a_hundred_thousand_images_evaluate_quickly() {
        let images: Vec<Image> = (0..100_000u32)
            .map(|n| {
                let tags: &[&str] = if n % 3 == 0 { &[] } else { &["release-x"] };
                image(n, tags, i64::from(n % 400))
            })
            .collect();
        let policy = r#"{"rules":[
          {"rulePriority":1,"selection":{"tagStatus":"untagged","countType":"sinceImagePushed","countUnit":"days","countNumber":30},"action":{"type":"expire"}},
          {"rulePriority":2,"selection":{"tagStatus":"tagged","tagPatternList":["release-*"],"countType":"imageCountMoreThan","countNumber":500},"action":{"type":"expire"}},
          {"rulePriority":3,"selection":{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":10000},"action":{"type":"expire"}}]}"#;
        let p = LifecyclePolicy::parse(policy).expect("valid");
        let v = evaluate(&p, &images, NOW);
        // Every untagged image older than 30 days, every release image beyond the newest 500.
        let untagged_old = images
            .iter()
            .filter(|i| i.tags.is_empty() && i.pushed_at_ms < NOW - 30 * DAY_MS)
            .count();
        let release = images.iter().filter(|i| !i.tags.is_empty()).count();
        assert_eq!(
            v.iter().filter(|x| x.rule_priority == 1).count(),
            untagged_old
        );
        assert_eq!(
            v.iter().filter(|x| x.rule_priority == 2).count(),
            release - 500
        );
    }
}
