//! `berth admin events` (the audit trail), `berth admin webhooks` (dead letters) and
//! `berth admin cost` (usage priced as on ECR).

use clap::Subcommand;

use super::{admin_public_url, at_or_now_opt, open_service};
use crate::config::{Settings, StoreArgs};
use crate::meta::AuditQuery;

/// `berth admin events`: filters of the audit trail.
#[derive(clap::Args)]
pub struct EventsArgs {
    /// Records at or after this time (RFC 3339)
    #[arg(long, value_name = "TIME")]
    since: Option<String>,
    /// Records at or before this time (RFC 3339)
    #[arg(long, value_name = "TIME")]
    until: Option<String>,
    /// A user name (`root` for an account's root) or a principal ARN
    #[arg(long)]
    user: Option<String>,
    #[arg(long)]
    repository: Option<String>,
    /// E.g. PutImage, CreateRepository, PolicyExecutionEvent
    #[arg(long)]
    event_name: Option<String>,
    /// The account whose resources the calls addressed
    #[arg(long)]
    account: Option<String>,
    /// How many [default: 100]
    #[arg(long, value_name = "N")]
    limit: Option<i64>,
    #[command(flatten)]
    store: StoreArgs,
}

#[derive(Subcommand)]
pub enum WebhooksCommand {
    /// Print the events webhooks did not take after their attempts (JSON lines).
    DeadLetters {
        /// Only this webhook's
        #[arg(long)]
        webhook: Option<String>,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Post a dead letter again (to its webhook, as configured now); removed once taken.
    Redeliver {
        /// The dead letter's id (from `dead-letters`)
        id: i64,
        #[command(flatten)]
        store: StoreArgs,
    },
}

impl EventsArgs {
    pub fn store(&self) -> &StoreArgs {
        &self.store
    }
}

/// Print matching audit records, newest first, one CloudTrail JSON record per line.
pub async fn events(args: EventsArgs) -> anyhow::Result<()> {
    let settings = Settings::from_store(&args.store)?;
    let service = open_service(&settings, admin_public_url(&settings)).await?;
    let query = AuditQuery {
        since: at_or_now_opt(args.since.as_deref())?,
        until: at_or_now_opt(args.until.as_deref())?,
        user: args.user,
        repository: args.repository,
        event_name: args.event_name,
        account_id: args.account,
        region: None,
        limit: args.limit.unwrap_or(100).max(1),
    };
    for record in service.meta().audit_records(&query).await? {
        println!("{record}");
    }
    Ok(())
}

pub async fn webhooks(command: WebhooksCommand) -> anyhow::Result<()> {
    match command {
        WebhooksCommand::DeadLetters { webhook, store } => {
            let settings = Settings::from_store(&store)?;
            let service = open_service(&settings, admin_public_url(&settings)).await?;
            for d in service
                .meta()
                .dead_letters(webhook.as_deref(), 10_000)
                .await?
            {
                let line = serde_json::json!({
                    "id": d.id,
                    "webhook": d.webhook,
                    "eventId": d.event_id,
                    "attempts": d.attempts,
                    "lastError": d.last_error,
                    "failedAt": crate::audit::iso_time(d.failed_at),
                    "event": serde_json::from_str::<serde_json::Value>(&d.body).unwrap_or_default(),
                });
                println!("{line}");
            }
        }
        WebhooksCommand::Redeliver { id, store } => {
            let settings = Settings::from_store(&store)?;
            let service = open_service(&settings, admin_public_url(&settings)).await?;
            let letters = service.meta().dead_letters(None, i64::MAX).await?;
            let Some(d) = letters.into_iter().find(|d| d.id == id) else {
                anyhow::bail!("no dead letter has id {id}");
            };
            let Some(hook) = settings.webhooks.iter().find(|h| h.name == d.webhook) else {
                anyhow::bail!("webhook {} is not configured any more", d.webhook);
            };
            let key = service.webhook_key(hook).await?;
            let client = reqwest::Client::new();
            let timeout = std::time::Duration::from_secs(hook.timeout_seconds);
            crate::notify::delivery::post(
                &client,
                &hook.url,
                &d.event_id,
                &d.body,
                key.as_deref(),
                timeout,
            )
            .await
            .map_err(|e| anyhow::anyhow!("webhook {}: {e}", hook.name))?;
            service.meta().delete_dead_letter(id).await?;
            println!("delivered {} to {}", d.event_id, hook.name);
        }
    }
    Ok(())
}

/// `berth admin cost`.
#[derive(clap::Args)]
pub struct CostArgs {
    /// The month, YYYY-MM [default: this month]
    #[arg(long)]
    month: Option<String>,
    /// Only this account's repositories
    #[arg(long)]
    account: Option<String>,
    /// One JSON object instead of a table
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    pub store: StoreArgs,
}

/// Print a month's usage and cost.
pub async fn cost(args: CostArgs) -> anyhow::Result<()> {
    let settings = Settings::from_store(&args.store)?;
    let service = open_service(&settings, admin_public_url(&settings)).await?;
    let now = crate::clock::now_ms();
    let month = match &args.month {
        Some(m) => crate::service::Month::parse(m)
            .ok_or_else(|| anyhow::anyhow!("--month '{m}' is not YYYY-MM"))?,
        None => crate::service::Month::of(now),
    };
    let report = service
        .cost_report(month, now, args.account.as_deref())
        .await?;
    if args.json {
        println!("{}", cost_json(&report));
    } else {
        print!("{}", cost_table(&report));
    }
    Ok(())
}

pub fn cost_json(r: &crate::service::CostReport) -> serde_json::Value {
    let day = |d: i64| crate::audit::iso_time(d * 86_400_000)[..10].to_owned();
    serde_json::json!({
        "month": r.month.label(),
        "prices": {
            "storagePerGbMonth": r.prices.storage_gb_month,
            "transferOutPerGb": r.prices.transfer_out_gb,
        },
        "repositories": r.repositories.iter().map(|x| serde_json::json!({
            "accountId": x.account_id,
            "region": x.region,
            "repositoryName": x.repository_name,
            "storageGbMonths": x.storage_gb_months,
            "storageCost": x.storage_cost,
            "transferOutGb": x.transfer_out_gb,
            "transferOutCost": x.transfer_cost,
            "totalCost": x.total(),
            "daily": x.daily.iter().map(|(d, s, t)| serde_json::json!({
                "date": day(*d), "storedBytes": s, "transferOutBytes": t,
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "totalCost": r.total(),
    })
}

fn cost_table(r: &crate::service::CostReport) -> String {
    let mut out = format!(
        "{} (storage ${}/GB-month, transfer out ${}/GB)\n{:<14} {:<14} {:<32} {:>12} {:>10} {:>12} {:>10} {:>10}\n",
        r.month.label(),
        r.prices.storage_gb_month,
        r.prices.transfer_out_gb,
        "ACCOUNT", "REGION", "REPOSITORY", "GB-MONTHS", "STORAGE$", "TRANSFER GB", "TRANSFER$", "TOTAL$"
    );
    for x in &r.repositories {
        out.push_str(&format!(
            "{:<14} {:<14} {:<32} {:>12.6} {:>10.4} {:>12.6} {:>10.4} {:>10.4}\n",
            x.account_id,
            x.region,
            x.repository_name,
            x.storage_gb_months,
            x.storage_cost,
            x.transfer_out_gb,
            x.transfer_cost,
            x.total()
        ));
    }
    out.push_str(&format!("total ${:.4}\n", r.total()));
    out
}
