//! Usage and what it would cost on ECR: storage per repository and day (sampled), and
//! the bytes pulls sent (counted by each node, added to the store every minute), priced
//! with ECR's public prices (configurable).
//!
//! How things count, as ECR bills them: a repository's storage is the blobs it links,
//! so a layer shared by two repositories counts in both (within a repository, once);
//! archived images count like the others (Berth has no cheaper tier); a month's
//! GB-months are the sum of each day's largest sample over the month's days (a day
//! without a sample counts nothing; today counts what is stored now). GB are 2^30 bytes.
//! Transfer out is the bytes of manifest and blob GETs answered by Berth (a blob
//! redirected to object storage is sent by the bucket and not counted).

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use serde::Deserialize;

use super::{Result, Service};
use crate::meta::UsageDay;

const DAY_MS: i64 = 86_400_000;
const GB: f64 = 1_073_741_824.0;

/// `[usage]` of the config file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UsageSettings {
    /// Dollars per GB-month of storage (ECR: 0.10).
    pub storage_gb_month: f64,
    /// Dollars per GB sent to clients (ECR's internet egress: 0.09 for the first 10 TB).
    pub transfer_out_gb: f64,
    /// How often each node adds the bytes it sent to the store.
    pub flush_seconds: u64,
    /// How often stored sizes are sampled (once per deployment).
    pub sample_seconds: u64,
}

impl Default for UsageSettings {
    fn default() -> Self {
        UsageSettings {
            storage_gb_month: 0.10,
            transfer_out_gb: 0.09,
            flush_seconds: 60,
            sample_seconds: 3600,
        }
    }
}

/// Where a pull's bytes went: (account, region, repository).
pub type TransferTarget = (String, String, String);

/// (day since the epoch, stored bytes, bytes sent).
pub type DayUsage = (i64, i64, i64);

/// Bytes sent by this node and not yet added to the store.
#[derive(Default)]
pub struct TransferMeter(Mutex<HashMap<TransferTarget, i64>>);

/// A calendar month (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Month {
    year: i32,
    month: time::Month,
}

impl Month {
    /// `YYYY-MM`.
    pub fn parse(s: &str) -> Option<Month> {
        let (y, m) = s.split_once('-')?;
        let year: i32 = y.parse().ok()?;
        let month = time::Month::try_from(m.parse::<u8>().ok()?).ok()?;
        (1970..=9999)
            .contains(&year)
            .then_some(Month { year, month })
    }

    /// The month of `ms` (epoch milliseconds).
    pub fn of(ms: i64) -> Month {
        let date = time::OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000))
            .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
            .date();
        Month {
            year: date.year(),
            month: date.month(),
        }
    }

    /// Its days: [first, end) in days since the epoch.
    fn days(self) -> (i64, i64) {
        let first = time::Date::from_calendar_date(self.year, self.month, 1)
            .map(|d| i64::from(d.to_julian_day()) - 2_440_588)
            .unwrap_or(0);
        let n = i64::from(self.month.length(self.year));
        (first, first + n)
    }

    pub fn label(self) -> String {
        format!("{:04}-{:02}", self.year, u8::from(self.month))
    }
}

/// One repository's month.
#[derive(Debug, Clone, PartialEq)]
pub struct RepositoryCost {
    pub account_id: String,
    pub region: String,
    pub repository_name: String,
    pub storage_gb_months: f64,
    pub storage_cost: f64,
    pub transfer_out_gb: f64,
    pub transfer_cost: f64,
    /// (day since the epoch, stored bytes, bytes sent).
    pub daily: Vec<(i64, i64, i64)>,
}

impl RepositoryCost {
    pub fn total(&self) -> f64 {
        self.storage_cost + self.transfer_cost
    }
}

/// A month's usage and cost.
#[derive(Debug, Clone, PartialEq)]
pub struct CostReport {
    pub month: Month,
    pub prices: UsageSettings,
    /// The month's days, [first, end).
    pub days: (i64, i64),
    pub repositories: Vec<RepositoryCost>,
}

impl CostReport {
    pub fn total(&self) -> f64 {
        self.repositories.iter().map(RepositoryCost::total).sum()
    }

    /// Per day: (day, stored bytes, bytes sent) over every repository.
    pub fn daily_totals(&self) -> Vec<(i64, i64, i64)> {
        let mut by_day: BTreeMap<i64, (i64, i64)> = BTreeMap::new();
        for r in &self.repositories {
            for (d, s, t) in &r.daily {
                let e = by_day.entry(*d).or_default();
                e.0 += s;
                e.1 += t;
            }
        }
        (self.days.0..self.days.1)
            .map(|d| {
                let (s, t) = by_day.get(&d).copied().unwrap_or_default();
                (d, s, t)
            })
            .collect()
    }
}

impl Service {
    /// Count bytes a pull sent (added to the store by [`Service::flush_transfer`]).
    pub fn count_transfer(&self, target: TransferTarget, bytes: u64) {
        if bytes == 0 {
            return;
        }
        if let Ok(mut m) = self.transfer.0.lock() {
            *m.entry(target).or_default() += i64::try_from(bytes).unwrap_or(i64::MAX);
        }
    }

    /// Add the bytes counted since the last flush to today's usage.
    pub async fn flush_transfer(&self, now_ms: i64) -> Result<usize> {
        let taken: Vec<(TransferTarget, i64)> = match self.transfer.0.lock() {
            Ok(mut m) => m.drain().collect(),
            Err(_) => return Ok(0),
        };
        let day = now_ms.div_euclid(DAY_MS);
        let rows: Vec<UsageDay> = taken
            .into_iter()
            .map(|((account_id, region, repository_name), n)| UsageDay {
                day,
                account_id,
                region,
                repository_name,
                stored_bytes: 0,
                transfer_out_bytes: n,
            })
            .collect();
        self.meta.add_transfer_out(&rows).await?;
        Ok(rows.len())
    }

    /// Sample every repository's stored size for today.
    pub async fn sample_storage(&self, now_ms: i64) -> Result<usize> {
        let rows = self.stored_today(now_ms).await?;
        self.meta.record_stored_bytes(&rows).await?;
        Ok(rows.len())
    }

    async fn stored_today(&self, now_ms: i64) -> Result<Vec<UsageDay>> {
        let day = now_ms.div_euclid(DAY_MS);
        Ok(self
            .meta
            .repository_usage()
            .await?
            .into_iter()
            .map(|u| UsageDay {
                day,
                account_id: u.registry.account_id.to_string(),
                region: u.registry.region.to_string(),
                repository_name: u.name,
                stored_bytes: u.bytes,
                transfer_out_bytes: 0,
            })
            .collect())
    }

    /// A month's usage and cost, of one account or all; today counts what is stored
    /// now.
    pub async fn cost_report(
        &self,
        month: Month,
        now_ms: i64,
        account_id: Option<&str>,
    ) -> Result<CostReport> {
        let days = month.days();
        let mut rows = self.meta.usage_days(days.0, days.1, account_id).await?;
        let today = now_ms.div_euclid(DAY_MS);
        if (days.0..days.1).contains(&today) {
            let live = self
                .stored_today(now_ms)
                .await?
                .into_iter()
                .filter(|u| account_id.is_none_or(|a| a == u.account_id));
            merge_today(&mut rows, live);
        }
        let prices = self.options.usage.clone();
        let n_days = (days.1 - days.0) as f64;
        let mut by_repo: BTreeMap<TransferTarget, Vec<DayUsage>> = BTreeMap::new();
        for r in rows {
            by_repo
                .entry((r.account_id, r.region, r.repository_name))
                .or_default()
                .push((r.day, r.stored_bytes, r.transfer_out_bytes));
        }
        let repositories = by_repo
            .into_iter()
            .map(|((account_id, region, repository_name), daily)| {
                let gb_days: f64 = daily.iter().map(|(_, s, _)| *s as f64 / GB).sum();
                let storage_gb_months = gb_days / n_days;
                let transfer_out_gb = daily.iter().map(|(_, _, t)| *t as f64 / GB).sum::<f64>();
                RepositoryCost {
                    account_id,
                    region,
                    repository_name,
                    storage_gb_months,
                    storage_cost: storage_gb_months * prices.storage_gb_month,
                    transfer_out_gb,
                    transfer_cost: transfer_out_gb * prices.transfer_out_gb,
                    daily,
                }
            })
            .collect();
        Ok(CostReport {
            month,
            prices,
            days,
            repositories,
        })
    }
}

/// Today's rows take the larger of their sample and what is stored now. Indexed: a
/// month of 10,000 repositories is 300,000 rows.
fn merge_today(rows: &mut Vec<UsageDay>, live: impl Iterator<Item = UsageDay>) {
    let key = |u: &UsageDay| {
        (
            u.day,
            u.account_id.clone(),
            u.region.clone(),
            u.repository_name.clone(),
        )
    };
    let mut at: std::collections::HashMap<_, usize> =
        rows.iter().enumerate().map(|(i, r)| (key(r), i)).collect();
    for l in live {
        match at.get(&key(&l)) {
            Some(&i) => rows[i].stored_bytes = rows[i].stored_bytes.max(l.stored_bytes),
            None => {
                at.insert(key(&l), rows.len());
                rows.push(l);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_know_their_days() {
        let m = Month::parse("2026-02").expect("valid");
        let (a, b) = m.days();
        assert_eq!(b - a, 28);
        assert_eq!(a, 20_485); // 2026-02-01
        assert_eq!(
            Month::parse("2024-02").map(|m| m.days().1 - m.days().0),
            Some(29)
        );
        assert_eq!(Month::of(a * DAY_MS + 5), m);
        assert!(Month::parse("2026-13").is_none() && Month::parse("x").is_none());
        assert_eq!(m.label(), "2026-02");
    }

    #[test]
    fn today_takes_the_larger_of_sample_and_store() {
        let row = |name: &str, stored| UsageDay {
            day: 9,
            account_id: "111111111111".into(),
            region: "us-east-1".into(),
            repository_name: name.into(),
            stored_bytes: stored,
            transfer_out_bytes: 7,
        };
        let mut rows = vec![row("a", 100), row("b", 50)];
        merge_today(
            &mut rows,
            vec![row("a", 80), row("b", 60), row("c", 5)].into_iter(),
        );
        let stored: Vec<(String, i64, i64)> = rows
            .iter()
            .map(|r| {
                (
                    r.repository_name.clone(),
                    r.stored_bytes,
                    r.transfer_out_bytes,
                )
            })
            .collect();
        assert_eq!(
            stored,
            vec![
                ("a".into(), 100, 7),
                ("b".into(), 60, 7),
                ("c".into(), 5, 7)
            ]
        );
    }
}
