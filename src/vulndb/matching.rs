//! Whether an installed version is affected by a record, by OSV's rules: a range's
//! events, in version order, switch "affected" on (introduced) and off (fixed, or
//! after last_affected); an explicit `versions` list adds single versions.

use std::cmp::Ordering;

use super::osv::{AffectedSpec, Event};
use super::version::Scheme;

/// An affected version: the version that fixes it, if one does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit {
    pub fixed_in: Option<String>,
}

pub fn affects(spec: &AffectedSpec, version: &str, scheme: Scheme) -> Option<Hit> {
    let listed = spec
        .versions
        .iter()
        .any(|v| scheme.compare(v, version) == Ordering::Equal);
    let mut fixed_in: Option<&str> = None;
    let mut in_range = false;
    for range in &spec.ranges {
        let (affected, fix) = in_one_range(&range.events, version, scheme);
        if affected {
            in_range = true;
            fixed_in = match (fixed_in, fix) {
                (Some(a), Some(b)) => Some(if scheme.compare(a, b) == Ordering::Greater {
                    a
                } else {
                    b
                }),
                (a, b) => a.or(b),
            };
        }
    }
    (listed || in_range).then(|| Hit {
        fixed_in: fixed_in.map(str::to_owned),
    })
}

#[derive(Clone, Copy)]
enum Kind {
    Introduced,
    Fixed,
    LastAffected,
}

/// (affected, the first fix above `version`).
fn in_one_range<'a>(events: &'a [Event], version: &str, scheme: Scheme) -> (bool, Option<&'a str>) {
    let mut sorted: Vec<(&str, Kind)> = events
        .iter()
        .filter_map(|e| {
            e.introduced
                .as_deref()
                .map(|v| (v, Kind::Introduced))
                .or_else(|| e.fixed.as_deref().map(|v| (v, Kind::Fixed)))
                .or_else(|| e.last_affected.as_deref().map(|v| (v, Kind::LastAffected)))
        })
        .collect();
    let order = |a: &str, b: &str| match (a == "0", b == "0") {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Less,
        (false, true) => Ordering::Greater,
        _ => scheme.compare(a, b),
    };
    insertion_sort(&mut sorted, |a, b| order(a.0, b.0));
    let mut affected = false;
    for (at, kind) in &sorted {
        let here = order(version, at);
        match kind {
            Kind::Introduced if *at == "0" || here != Ordering::Less => affected = true,
            Kind::Fixed if here != Ordering::Less => affected = false,
            Kind::LastAffected if here == Ordering::Greater => affected = false,
            _ => {}
        }
    }
    let fix = affected
        .then(|| {
            sorted
                .iter()
                .find(|(at, kind)| {
                    matches!(kind, Kind::Fixed) && order(at, version) == Ordering::Greater
                })
                .map(|(at, _)| *at)
        })
        .flatten();
    (affected, fix)
}

/// A sort that tolerates orderings that are not total (apk's is not, by design): the
/// standard sorts may panic on those. Ranges have a handful of events.
fn insertion_sort<T>(items: &mut [T], order: impl Fn(&T, &T) -> Ordering) {
    for i in 1..items.len() {
        let mut j = i;
        while j > 0 && order(&items[j - 1], &items[j]) == Ordering::Greater {
            items.swap(j - 1, j);
            j -= 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::osv::Range;
    use super::*;

    fn spec(events: &[(&str, &str)], versions: &[&str]) -> AffectedSpec {
        let events = events
            .iter()
            .map(|(k, v)| {
                let v = Some((*v).to_owned());
                match *k {
                    "introduced" => Event {
                        introduced: v,
                        ..Event::default()
                    },
                    "fixed" => Event {
                        fixed: v,
                        ..Event::default()
                    },
                    _ => Event {
                        last_affected: v,
                        ..Event::default()
                    },
                }
            })
            .collect();
        AffectedSpec {
            ranges: vec![Range {
                kind: "ECOSYSTEM".into(),
                events,
            }],
            versions: versions.iter().map(|v| (*v).to_owned()).collect(),
        }
    }

    #[test]
    fn introduced_fixed_and_last_affected() {
        let s = spec(&[("introduced", "0"), ("fixed", "3.0.11-1~deb12u1")], &[]);
        let hit = affects(&s, "3.0.9-1", Scheme::Dpkg).expect("affected");
        assert_eq!(hit.fixed_in.as_deref(), Some("3.0.11-1~deb12u1"));
        assert!(affects(&s, "3.0.11-1~deb12u1", Scheme::Dpkg).is_none());
        assert!(affects(&s, "3.0.11-1", Scheme::Dpkg).is_none());
        let s = spec(&[("introduced", "2.0"), ("last_affected", "2.5")], &[]);
        assert!(affects(&s, "1.9", Scheme::Dpkg).is_none());
        assert_eq!(
            affects(&s, "2.5", Scheme::Dpkg),
            Some(Hit { fixed_in: None })
        );
        assert!(affects(&s, "2.6", Scheme::Dpkg).is_none());
        // Two introduced/fixed pairs in one range (a regression fixed again).
        let s = spec(
            &[
                ("introduced", "0"),
                ("fixed", "1.0"),
                ("introduced", "2.0"),
                ("fixed", "2.2"),
            ],
            &[],
        );
        assert!(affects(&s, "1.5", Scheme::Dpkg).is_none());
        assert_eq!(
            affects(&s, "2.1", Scheme::Dpkg)
                .and_then(|h| h.fixed_in)
                .as_deref(),
            Some("2.2")
        );
        let s = spec(&[], &["1.2.3-r0"]);
        assert!(affects(&s, "1.2.3-r0", Scheme::Apk).is_some());
        assert!(affects(&s, "1.2.3-r1", Scheme::Apk).is_none());
    }
}
