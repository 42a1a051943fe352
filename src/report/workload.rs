//! The report's "Workload and bill" section: the team's mix in words, and per strategy the expected job
//! time per pipeline, a day's and a month's runner minutes, CPU, bytes and storage, money where the scenario
//! gives prices, and the same with one more cold start a day.

use super::format::{self, html, MISSING};
use super::html::{strategy_html, table, td_num};
use super::verdict::Verdict;
use crate::results::bill::{self, Bill};
use crate::results::data::RunData;
use crate::workload::{Weighting, Workload, DAYS_PER_MONTH};

pub fn section(data: &RunData, verdict: &Verdict) -> String {
    let mut out = String::from("<section id=\"workload\">\n<h2>Workload and bill</h2>\n");
    let Some(workload) = &data.info.workload else {
        out.push_str(
            "<p id=\"workload-none\">The scenario has no <code>[workload]</code>: the verdict weights each pipeline run once, as \
             if a team ran one of each. Give the scenario a <code>[workload]</code> table (pipelines a day, each run's share, \
             cold starts a day, and optionally prices) to rank by the team's own mix and see each strategy's bill.</p>\n</section>\n",
        );
        return out;
    };
    let pipeline = &data.info.pipeline;
    out.push_str(&format!(
        "<p id=\"workload-mix\">The team's day: {}. The verdict ranks by the expected job time per pipeline under this mix; \
         a month is {DAYS_PER_MONTH} days. Each daily figure is the pipelines a day of each run times that run's median over \
         the successful jobs; registry storage is what the strategy holds after the last run.</p>\n",
        html(workload.describe(pipeline))
    ));
    match bill::formula(&workload.prices) {
        Some(f) => out.push_str(&format!("<p id=\"workload-formula\">Money per month = {}.</p>\n", html(f))),
        None => out.push_str("<p id=\"workload-formula\">The workload gives no prices, so there is no money column.</p>\n"),
    }
    let colder = workload.with_daily_cold_start();
    out.push_str("<h3>The team's day</h3>\n");
    out.push_str(&bill_table("bill", data, verdict, workload));
    if colder != *workload {
        let cold_verdict = Verdict::weighted(data, Weighting::of(Some(&colder), pipeline));
        out.push_str(&format!("<h3>With one more cold start a day ({})</h3>\n", html(colder.describe(pipeline))));
        out.push_str(&bill_table("bill-cold", data, &cold_verdict, &colder));
        out.push_str(&cold_sentence(verdict, &cold_verdict));
    }
    out.push_str("</section>\n");
    out
}

/// One row per strategy, in the verdict's order: each daily figure beside its month.
fn bill_table(id: &str, data: &RunData, verdict: &Verdict, workload: &Workload) -> String {
    let priced = workload.prices.any();
    let rows: Vec<Vec<String>> = verdict
        .ranked
        .iter()
        .chain(&verdict.unranked)
        .map(|standing| {
            let b = Bill::of(data, workload, standing.strategy);
            let mut row = vec![
                format!("<td>{}</td>", strategy_html(b.strategy)),
                td_num(format::opt_duration(b.expected_ms)),
                td_num(day_month(b.runner_minutes_per_day, b.runner_minutes_per_month(), minutes)),
                td_num(day_month(b.cpu_seconds_per_day, b.cpu_seconds_per_month(), cpu)),
                td_num(format::opt_bytes(b.peak_memory_bytes)),
                td_num(day_month(b.pulled_bytes_per_day, b.pulled_bytes_per_month(), format::bytes)),
                td_num(day_month(b.pushed_bytes_per_day, b.pushed_bytes_per_month(), format::bytes)),
                td_num(format::opt_bytes(b.registry_bytes)),
            ];
            if priced {
                row.push(td_num(match b.money.as_ref().map(|m| m.per_month) {
                    Some(Some(m)) => format!("{m:.2}"),
                    _ => MISSING.to_string(),
                }));
            }
            row
        })
        .collect();
    let mut headers = vec![
        "strategy",
        "expected job time",
        "runner time, a day · a month",
        "CPU, a day · a month",
        "peak memory of a job",
        "pulled, a day · a month",
        "pushed, a day · a month",
        "registry storage held",
    ];
    if priced {
        headers.push("money a month");
    }
    table(Some(id), &headers, &rows)
}

/// "31.7 min · 950.0 min": a daily figure and its month, or the missing mark when it was not measured.
fn day_month(day: Option<f64>, month: Option<f64>, show: fn(f64) -> String) -> String {
    match (day, month) {
        (Some(day), Some(month)) => format!("{} · {}", show(day), show(month)),
        _ => MISSING.to_string(),
    }
}

fn minutes(m: f64) -> String {
    format!("{m:.1} min")
}

/// CPU time in seconds below an hour, else in hours.
fn cpu(seconds: f64) -> String {
    if seconds < 3600.0 {
        format!("{seconds:.0} s")
    } else {
        format!("{:.1} h", seconds / 3600.0)
    }
}

/// Whether one more cold start a day (caches lost every night) changes the order.
fn cold_sentence(verdict: &Verdict, cold: &Verdict) -> String {
    let order = |v: &Verdict| v.ranked.iter().map(|s| s.strategy.name()).collect::<Vec<_>>().join(" < ");
    let (now, then) = (order(verdict), order(cold));
    if now == then {
        format!("<p id=\"workload-cold\">With one more cold start a day, the order stays: {}.</p>\n", html(now))
    } else {
        format!(
            "<p id=\"workload-cold\" class=\"warning\">With one more cold start a day the order changes: {} becomes {}.</p>\n",
            html(now),
            html(then)
        )
    }
}
