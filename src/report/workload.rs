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
    let cold_verdict = (colder != *workload).then(|| Verdict::weighted(data, Weighting::of(Some(&colder), pipeline)));
    out.push_str(&bill_table(data, verdict, workload, &colder));
    if let Some(cold_verdict) = cold_verdict {
        out.push_str(&cold_sentence(verdict, &cold_verdict));
    }
    out.push_str("</section>\n");
    out
}

/// One row per strategy, in the verdict's order.
fn bill_table(data: &RunData, verdict: &Verdict, workload: &Workload, colder: &Workload) -> String {
    let priced = workload.prices.any();
    let money = |b: &Bill| match b.money.as_ref().map(|m| m.per_month) {
        Some(Some(m)) => format!("{m:.2}"),
        _ => MISSING.to_string(),
    };
    let minutes = |m: Option<f64>| m.map_or(MISSING.to_string(), |m| format!("{m:.1} min"));
    let rows: Vec<Vec<String>> = verdict
        .ranked
        .iter()
        .chain(&verdict.unranked)
        .map(|standing| {
            let b = Bill::of(data, workload, standing.strategy);
            let cold = Bill::of(data, colder, standing.strategy);
            let mut row = vec![
                format!("<td>{}</td>", strategy_html(b.strategy)),
                td_num(format::opt_duration(b.expected_ms)),
                td_num(minutes(b.runner_minutes_per_day)),
                td_num(minutes(b.runner_minutes_per_month())),
                td_num(b.cpu_seconds_per_day.map_or(MISSING.to_string(), |s| format!("{s:.0} s"))),
                td_num(format::opt_bytes(b.peak_memory_bytes)),
                td_num(format::opt_bytes(b.pulled_bytes_per_day)),
                td_num(format::opt_bytes(b.pushed_bytes_per_day)),
                td_num(format::opt_bytes(b.registry_bytes)),
            ];
            if priced {
                row.push(td_num(money(&b)));
            }
            row.push(td_num(format::opt_duration(cold.expected_ms)));
            if priced {
                row.push(td_num(money(&cold)));
            }
            row
        })
        .collect();
    let mut headers = vec![
        "strategy",
        "expected job time",
        "runner / day",
        "runner / month",
        "CPU / day",
        "peak memory",
        "pulled / day",
        "pushed / day",
        "registry storage",
    ];
    if priced {
        headers.push("money / month");
    }
    headers.push("expected, +1 cold a day");
    if priced {
        headers.push("money / month, +1 cold a day");
    }
    table(Some("bill"), &headers, &rows)
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
