//! Usage and cost: storage per repository over the month and transfer out, priced as
//! configured (ECR's public prices by default), as charts and a table.

use askama::Template;
use axum::body::Body;
use axum::http::{Response, StatusCode};

use super::{frame, Flash, Frame};
use crate::console::{chart, plain, render, Signed};
use crate::service::{Month, Service};

#[derive(Template)]
#[template(path = "console/usage.html")]
pub struct UsagePage {
    pub frame: Frame,
    pub month: String,
    pub storage_price: f64,
    pub transfer_price: f64,
    pub storage_chart: String,
    pub transfer_chart: String,
    /// (name, GB-months, storage $, transfer GB, transfer $, total $), formatted.
    pub rows: Vec<(String, String, String, String, String, String)>,
    pub total: String,
}

const GB: f64 = 1_073_741_824.0;

/// Usage and cost of the repositories the principal may describe, in this region.
pub async fn usage(service: &Service, signed: &Signed, month: Option<&str>) -> Response<Body> {
    let now = crate::clock::now_ms();
    let month = month
        .and_then(Month::parse)
        .unwrap_or_else(|| Month::of(now));
    let mut frame = frame(signed, Flash::default());
    let visible = match service
        .describe_repositories(&signed.ctx, None, None, 10_000)
        .await
    {
        Ok(l) => l
            .items
            .into_iter()
            .map(|r| r.name.to_string())
            .collect::<std::collections::HashSet<_>>(),
        Err(e) => {
            frame.fail(&e);
            Default::default()
        }
    };
    let reg = &signed.ctx.registry;
    let mut report = match service.cost_report(month, now, Some(&reg.account_id)).await {
        Ok(r) => r,
        Err(e) => return plain(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    };
    report
        .repositories
        .retain(|r| r.region == reg.region.as_str() && visible.contains(&r.repository_name));
    let daily = report.daily_totals();
    let day_label = |d: i64| crate::audit::iso_time(d * 86_400_000)[8..10].to_owned();
    let storage: Vec<(String, f64)> = daily
        .iter()
        .map(|(d, s, _)| (day_label(*d), *s as f64 / GB))
        .collect();
    let transfer: Vec<(String, f64)> = daily
        .iter()
        .map(|(d, _, t)| (day_label(*d), *t as f64 / GB))
        .collect();
    let rows = report
        .repositories
        .iter()
        .map(|r| {
            (
                r.repository_name.clone(),
                format!("{:.6}", r.storage_gb_months),
                format!("{:.4}", r.storage_cost),
                format!("{:.6}", r.transfer_out_gb),
                format!("{:.4}", r.transfer_cost),
                format!("{:.4}", r.total()),
            )
        })
        .collect();
    let page = UsagePage {
        frame,
        month: month.label(),
        storage_price: report.prices.storage_gb_month,
        transfer_price: report.prices.transfer_out_gb,
        storage_chart: chart::bars("Stored GB per day", &storage),
        transfer_chart: chart::bars("GB sent per day", &transfer),
        rows,
        total: format!("{:.4}", report.total()),
    };
    render(page.frame.status, &page)
}
