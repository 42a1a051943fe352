//! What each strategy costs a day and a month under the scenario's workload (`crate::workload`): runner
//! minutes, CPU time, peak memory, bytes pulled and pushed, registry storage, and money where prices are
//! given. Every figure is the workload's daily count of each pipeline run times that run's median over
//! the successful jobs; a run the workload includes without the figure leaves the figure empty.

use crate::results::data::RunData;
use crate::results::{JobRecord, PipelineRunName};
use crate::strategy::Strategy;
use crate::workload::{Prices, Workload, BYTES_PER_GB, DAYS_PER_MONTH};

/// One strategy's bill.
#[derive(Debug, Clone, PartialEq)]
pub struct Bill {
    pub strategy: Strategy,
    /// Expected wall time of one pipeline's job under the mix, in ms.
    pub expected_ms: Option<f64>,
    pub runner_minutes_per_day: Option<f64>,
    pub cpu_seconds_per_day: Option<f64>,
    /// The highest median peak memory of a job, over the pipeline runs the workload includes.
    pub peak_memory_bytes: Option<f64>,
    pub pulled_bytes_per_day: Option<f64>,
    pub pushed_bytes_per_day: Option<f64>,
    /// Registry storage after the last pipeline run (median over iterations): what is held all month.
    pub registry_bytes: Option<f64>,
    /// `None` without prices.
    pub money: Option<Money>,
}

/// The money a month, term by term, for the prices given.
#[derive(Debug, Clone, PartialEq)]
pub struct Money {
    pub terms: Vec<Term>,
    /// The sum of the terms; `None` when a priced quantity could not be measured.
    pub per_month: Option<f64>,
}

/// One priced quantity: `quantity` (a month's) × `price`.
#[derive(Debug, Clone, PartialEq)]
pub struct Term {
    pub quantity_name: &'static str,
    pub quantity: Option<f64>,
    pub price: f64,
}

impl Term {
    pub fn amount(&self) -> Option<f64> {
        self.quantity.map(|q| q * self.price)
    }
}

/// A daily figure over a month.
pub fn per_month(per_day: Option<f64>) -> Option<f64> {
    per_day.map(|d| d * DAYS_PER_MONTH)
}

impl Bill {
    pub fn runner_minutes_per_month(&self) -> Option<f64> {
        per_month(self.runner_minutes_per_day)
    }

    pub fn cpu_seconds_per_month(&self) -> Option<f64> {
        per_month(self.cpu_seconds_per_day)
    }

    pub fn pulled_bytes_per_month(&self) -> Option<f64> {
        per_month(self.pulled_bytes_per_day)
    }

    pub fn pushed_bytes_per_month(&self) -> Option<f64> {
        per_month(self.pushed_bytes_per_day)
    }

    /// The bill of every strategy with jobs, in the run's order.
    pub fn all(data: &RunData, workload: &Workload) -> Vec<Bill> {
        data.strategies().into_iter().map(|s| Bill::of(data, workload, s)).collect()
    }

    pub fn of(data: &RunData, workload: &Workload, strategy: Strategy) -> Bill {
        let per_day = workload.per_day(&data.info.pipeline);
        let daily = |figure: &dyn Fn(&JobRecord) -> Option<u64>| daily_sum(data, strategy, &per_day, figure);
        let runner_ms = daily(&|j| Some(j.wall_ms));
        let cpu_ms = daily(&|j| j.cpu_ms);
        let peak_memory_bytes = per_day
            .iter()
            .filter(|(_, n)| *n > 0.0)
            .map(|(run, _)| data.job_median(strategy, run.as_str(), |j| j.peak_memory_bytes))
            .try_fold(None::<f64>, |max, m| m.map(|m| Some(max.map_or(m, |x: f64| x.max(m)))))
            .flatten();
        let registry_bytes = data.storage_after_last_run(strategy, |c| c.registry_bytes);
        let pulled_bytes_per_day = daily(&|j| j.bytes_pulled);
        let mut bill = Bill {
            strategy,
            expected_ms: runner_ms.map(|ms| ms / workload.pipelines_per_day),
            runner_minutes_per_day: runner_ms.map(|ms| ms / 60_000.0),
            cpu_seconds_per_day: cpu_ms.map(|ms| ms / 1000.0),
            peak_memory_bytes,
            pulled_bytes_per_day,
            pushed_bytes_per_day: daily(&|j| j.bytes_pushed),
            registry_bytes,
            money: None,
        };
        bill.money = money(&bill, &workload.prices);
        bill
    }
}

/// Σ over the pipeline runs of (pipelines a day × the run's median figure); `None` when a run the
/// workload includes has no such figure.
fn daily_sum(data: &RunData, strategy: Strategy, per_day: &[(PipelineRunName, f64)], figure: &dyn Fn(&JobRecord) -> Option<u64>) -> Option<f64> {
    crate::results::data::sum_all(
        per_day
            .iter()
            .filter(|(_, n)| *n > 0.0)
            .map(|(run, n)| data.job_median(strategy, run.as_str(), figure).map(|m| m * n)),
    )
}

/// The four quantities a price applies to, in the order a formula shows them, with the price given.
fn priced(prices: &Prices) -> [(&'static str, Option<f64>); 4] {
    [
        ("runner minutes", prices.runner_minute),
        ("CPU hours", prices.cpu_hour),
        ("registry GB held", prices.storage_gb_month),
        ("GB pulled", prices.egress_gb),
    ]
}

/// The priced terms of a month; `None` when no price is given.
fn money(bill: &Bill, prices: &Prices) -> Option<Money> {
    if !prices.any() {
        return None;
    }
    let quantities = [
        bill.runner_minutes_per_month(),
        bill.cpu_seconds_per_month().map(|s| s / 3600.0),
        bill.registry_bytes.map(|b| b / BYTES_PER_GB),
        bill.pulled_bytes_per_month().map(|b| b / BYTES_PER_GB),
    ];
    let terms: Vec<Term> = priced(prices)
        .into_iter()
        .zip(quantities)
        .filter_map(|((quantity_name, price), quantity)| price.map(|price| Term { quantity_name, quantity, price }))
        .collect();
    let per_month = crate::results::data::sum_all(terms.iter().map(Term::amount));
    Some(Money { terms, per_month })
}

/// "runner minutes × 0.008 + GB pulled × 0.09": the money formula for the prices given; `None` without.
pub fn formula(prices: &Prices) -> Option<String> {
    let terms: Vec<String> =
        priced(prices).into_iter().filter_map(|(name, price)| price.map(|p| format!("{name} × {p}"))).collect();
    (!terms.is_empty()).then(|| terms.join(" + "))
}
