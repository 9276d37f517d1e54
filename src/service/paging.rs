//! One paging type for every listing: a page of items and the key to continue after
//! it. Listings read from the database fetch one row more than the page (that row only
//! says more follow); small listings returned whole are paged in memory.

/// One page of a listing and the key to continue after it (`None`: the last page).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listing<T> {
    pub items: Vec<T>,
    pub next: Option<String>,
}

impl<T> Listing<T> {
    /// An empty last page.
    pub fn empty() -> Listing<T> {
        Listing {
            items: Vec::new(),
            next: None,
        }
    }

    /// From a query that fetched `limit + 1` rows: the extra row only says more follow,
    /// and the page's last item is where the next page starts.
    pub fn from_overfetch(mut items: Vec<T>, limit: u32, key: impl Fn(&T) -> String) -> Listing<T> {
        let limit = limit as usize;
        let next = (items.len() > limit).then(|| {
            items.truncate(limit);
            items.last().map(&key).unwrap_or_default()
        });
        Listing { items, next }
    }

    /// Whether more pages follow.
    pub fn more(&self) -> bool {
        self.next.is_some()
    }
}

/// The page of a whole, sorted listing that follows the item keyed `after` (or the
/// first item greater, if it is gone), at most `limit` long, and the next page's key.
pub fn page_after<'a, T>(
    items: &'a [T],
    after: Option<&str>,
    limit: usize,
    key: impl Fn(&T) -> &str,
) -> (&'a [T], Option<String>) {
    let start = after.map_or(0, |a| {
        items
            .iter()
            .position(|x| key(x) == a)
            .map(|p| p + 1)
            .or_else(|| items.iter().position(|x| key(x) > a))
            .unwrap_or(items.len())
    });
    let end = items.len().min(start.saturating_add(limit));
    let page = &items[start..end];
    let next = (end < items.len())
        .then(|| page.last().map(|x| key(x).to_owned()))
        .flatten();
    (page, next)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_follow_their_key() {
        let all = ["a", "b", "c", "d"];
        assert_eq!(
            page_after(&all, None, 3, |s| s),
            (&all[..3], Some("c".into()))
        );
        assert_eq!(page_after(&all, Some("c"), 3, |s| s), (&all[3..], None));
        // A key that is gone: the page starts after where it was.
        assert_eq!(
            page_after(&all, Some("bb"), 1, |s| s),
            (&all[2..3], Some("c".into()))
        );
        let l = Listing::from_overfetch(vec![1, 2, 3], 2, |n| n.to_string());
        assert_eq!((l.items, l.next), (vec![1, 2], Some("2".into())));
        assert!(!Listing::<u8>::empty().more());
    }
}
