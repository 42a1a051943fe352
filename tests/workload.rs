//! The `[workload]`: the weighted ranking, the bill, the report's section and `compare`'s weighted row, on
//! results with known figures, so that a weight or a price applied wrongly fails a test.
//!
//! Every figure here is made up; none was measured.

mod synthetic_results;

use std::collections::BTreeMap;

use layerbench::compare::{compare_data, TimeVerdict, WEIGHTED_ROW};
use layerbench::report::verdict::Verdict;
use layerbench::results::bill::{formula, Bill};
use layerbench::results::data::RunData;
use layerbench::results::{JobStatus, PipelineRunName};
use layerbench::strategy::Strategy;
use layerbench::workload::{Prices, Weighting, Workload};

const FAST_CODE: &str = "shared-dind";
const FAST_COLD: &str = "ephemeral-dind";

/// Per strategy and pipeline run: wall, CPU (ms), bytes pulled, pushed, peak memory; three identical iterations.
/// shared-dind: cold 100 s, code-change 10 s. ephemeral-dind: cold 20 s, code-change 40 s. One of each
/// favours ephemeral-dind (60 s against 110 s); a day of mostly code changes favours shared-dind.
fn known() -> RunData {
    let fixture = RunData::load(&synthetic_results::fixtures_dir().join("synthetic-flask")).unwrap();
    let mut data = fixture.clone();
    data.info.pipeline = vec!["cold".into(), "code-change".into()];
    data.info.strategies = vec![Strategy::named(FAST_CODE), Strategy::named(FAST_COLD)];
    data.steps.clear();
    data.services.clear();
    let figures: [(&str, &str, u64, u64, u64, u64, u64); 4] = [
        (FAST_CODE, "cold", 100_000, 50_000, 1_000_000_000, 500_000_000, 800_000_000),
        (FAST_CODE, "code-change", 10_000, 2_000, 100_000_000, 10_000_000, 300_000_000),
        (FAST_COLD, "cold", 20_000, 30_000, 1_000_000_000, 500_000_000, 600_000_000),
        (FAST_COLD, "code-change", 40_000, 30_000, 1_000_000_000, 500_000_000, 600_000_000),
    ];
    data.jobs = (1..=3)
        .flat_map(|iteration| figures.iter().map(move |f| (iteration, f)))
        .map(|(iteration, &(strategy, run, wall, cpu, pulled, pushed, memory))| {
            let mut job = fixture.jobs[0].clone();
            job.iteration = iteration;
            job.strategy = Strategy::named(strategy);
            job.pipeline_run = run.into();
            job.pipeline_index = u32::from(run != "cold");
            job.status = JobStatus::Ok;
            job.wall_ms = wall;
            job.cpu_ms = Some(cpu);
            job.bytes_pulled = Some(pulled);
            job.bytes_pushed = Some(pushed);
            job.peak_memory_bytes = Some(memory);
            job
        })
        .collect();
    data.cache = (1..=3)
        .flat_map(|iteration| [(FAST_CODE, 2_000_000_000u64), (FAST_COLD, 500_000_000)].map(move |s| (iteration, s)))
        .map(|(iteration, (strategy, bytes))| {
            let mut row = fixture.cache[0].clone();
            row.iteration = iteration;
            row.strategy = Strategy::named(strategy);
            row.pipeline_run = "code-change".into();
            row.registry_bytes = Some(bytes);
            row
        })
        .collect();
    data
}

/// 100 pipelines a day: 10 scheduled cold starts, the other 90 code changes.
fn workload(prices: Prices) -> Workload {
    Workload {
        pipelines_per_day: 100.0,
        mix: BTreeMap::from([(PipelineRunName::from("code-change"), 1.0)]),
        cold_per_day: 10.0,
        prices,
        mix_from_history: false,
    }
}

fn order(verdict: &Verdict) -> Vec<&str> {
    verdict.ranked.iter().map(|s| s.strategy.name()).collect()
}

fn close(got: Option<f64>, want: f64) {
    let got = got.unwrap_or_else(|| panic!("no figure, expected {want}"));
    assert!((got - want).abs() < 1e-6 * want.abs().max(1.0), "got {got}, expected {want}");
}

#[test]
fn the_mix_decides_the_ranking_and_each_run_once_stays_without_one() {
    let mut data = known();
    let once = Verdict::compute(&data);
    assert_eq!(once.weighting, Weighting::EachRunOnce);
    assert_eq!(order(&once), [FAST_COLD, FAST_CODE]);
    close(once.ranked[0].total_ms, 60_000.0);
    close(once.ranked[1].total_ms, 110_000.0);

    data.info.workload = Some(workload(Prices::default()));
    let weighted = Verdict::compute(&data);
    assert_eq!(order(&weighted), [FAST_CODE, FAST_COLD]);
    // (10 × 100 s + 90 × 10 s) / 100 and (10 × 20 s + 90 × 40 s) / 100.
    close(weighted.ranked[0].total_ms, 19_000.0);
    close(weighted.ranked[1].total_ms, 38_000.0);
    assert_eq!(weighted.complete_iterations, [1, 2, 3]);
    assert_eq!(weighted.fastest_wins, 3);
}

#[test]
fn a_run_the_workload_leaves_out_neither_counts_nor_unranks() {
    let mut data = known();
    for job in data.jobs.iter_mut().filter(|j| j.strategy.name() == FAST_CODE && j.pipeline_run == "cold") {
        job.status = JobStatus::Failed;
    }
    assert_eq!(order(&Verdict::compute(&data)), [FAST_COLD]);
    data.info.workload = Some(Workload { cold_per_day: 0.0, ..workload(Prices::default()) });
    let verdict = Verdict::compute(&data);
    assert_eq!(order(&verdict), [FAST_CODE, FAST_COLD]);
    close(verdict.ranked[0].total_ms, 10_000.0);
    assert!(verdict.unranked.is_empty());
}

/// A run the day includes that the results never reached (the run was stopped first) is no run of weight 0:
/// nothing is ranked on a part of the day.
#[test]
fn a_weighted_run_that_was_never_reached_ranks_nothing() {
    let mut data = known();
    data.info.pipeline.push("deps-change".into());
    let mut w = workload(Prices::default());
    w.mix.insert("deps-change".into(), 0.1);
    data.info.workload = Some(w);
    let verdict = Verdict::compute(&data);
    assert!(verdict.ranked.is_empty(), "{:?}", order(&verdict));
    for standing in &verdict.unranked {
        assert_eq!(standing.runs_without_ok_job, [PipelineRunName::from("deps-change")]);
    }
    assert!(Bill::of(&data, data.info.workload.as_ref().unwrap(), Strategy::named(FAST_CODE)).expected_ms.is_none());
}

#[test]
fn the_bill_multiplies_each_run_by_its_pipelines_a_day() {
    let data = known();
    let prices = Prices { runner_minute: Some(0.01), storage_gb_month: Some(0.1), egress_gb: Some(0.05), cpu_hour: None };
    let bill = Bill::of(&data, &workload(prices.clone()), Strategy::named(FAST_CODE));
    close(bill.expected_ms, 19_000.0);
    close(bill.runner_minutes_per_day, 1_900.0 / 60.0);
    close(bill.runner_minutes_per_month(), 950.0);
    close(bill.cpu_seconds_per_day, 10.0 * 50.0 + 90.0 * 2.0);
    close(bill.pulled_bytes_per_day, 10.0 * 1e9 + 90.0 * 1e8);
    close(bill.pushed_bytes_per_day, 10.0 * 5e8 + 90.0 * 1e7);
    close(bill.peak_memory_bytes, 8e8);
    close(bill.registry_bytes, 2e9);
    // 950 runner minutes × 0.01 + 2 GB held × 0.1 + 570 GB pulled × 0.05; no CPU price, so no CPU term.
    let money = bill.money.clone().unwrap();
    assert_eq!(money.terms.iter().map(|t| t.quantity_name).collect::<Vec<_>>(), ["runner minutes", "registry GB held", "GB pulled"]);
    close(money.per_month, 9.5 + 0.2 + 28.5);
    assert_eq!(formula(&prices).unwrap(), "runner minutes × 0.01 + registry GB held × 0.1 + GB pulled × 0.05");

    let with_cpu = Prices { cpu_hour: Some(0.36), ..prices };
    let money = Bill::of(&data, &workload(with_cpu.clone()), Strategy::named(FAST_CODE)).money.unwrap();
    // 680 CPU-seconds a day × 30 days = 5.667 CPU hours.
    close(money.per_month, 38.2 + 680.0 * 30.0 / 3600.0 * 0.36);

    let no_prices = Bill::of(&data, &workload(Prices::default()), Strategy::named(FAST_CODE));
    assert!(no_prices.money.is_none(), "no price, no money: an absent price is never 0");
    assert!(formula(&Prices::default()).is_none());

    let mut unread = data.clone();
    unread.jobs.iter_mut().filter(|j| j.pipeline_run == "code-change").for_each(|j| j.cpu_ms = None);
    let bill = Bill::of(&unread, &workload(with_cpu), Strategy::named(FAST_CODE));
    assert!(bill.cpu_seconds_per_day.is_none());
    assert!(bill.money.unwrap().per_month.is_none(), "a priced figure that was not measured leaves the total empty");
}

fn write(data: &RunData, dir: &std::path::Path) {
    synthetic_results::write_data(data, dir);
}

#[test]
fn the_report_shows_the_mix_the_weighted_verdict_and_the_bill() {
    let mut data = known();
    let prices = Prices { runner_minute: Some(0.01), storage_gb_month: Some(0.1), egress_gb: Some(0.05), cpu_hour: None };
    data.info.workload = Some(workload(prices));
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("results");
    write(&data, &results);
    let html = std::fs::read_to_string(layerbench::report::generate(&results, &dir.path().join("report")).unwrap()).unwrap();
    assert!(html.contains("for the workload (100 pipelines a day: 10 cold, 90 code-change)"), "headline");
    assert!(html.contains("<th>expected job time</th>"), "the ranking table names its figure");
    assert!(html.contains("Money per month = runner minutes × 0.01 + registry GB held × 0.1 + GB pulled × 0.05."));
    let bill = &html[html.find("id=\"bill\"").unwrap()..];
    let start = bill.find(FAST_CODE).unwrap();
    let row = &bill[start..start + bill[start..].find("</tr>").unwrap()];
    // Each daily figure beside its month (30 days): 1 900 s of runner time a day, 680 CPU-seconds, 19.0 GB
    // pulled and 5.9 GB pushed.
    for cell in ["19.0 s", "31.7 min · 950.0 min", "680 s · 5.7 h", "19.0 GB · 570.0 GB", "5.9 GB · 177.0 GB", "38.20"] {
        assert!(row.contains(cell), "{cell} missing from the bill row: {row}");
    }
    // The whole bill again with one more cold start a day: 11 cold and 89 code-change jobs.
    let cold = &html[html.find("id=\"bill-cold\"").expect("the bill with one more cold start a day")..];
    let start = cold.find(FAST_CODE).unwrap();
    let row = &cold[start..start + cold[start..].find("</tr>").unwrap()];
    assert!(html.contains("With one more cold start a day (100 pipelines a day: 11 cold, 89 code-change)"));
    let runner_min = (11.0 * 100.0 + 89.0 * 10.0) / 60.0;
    assert!(row.contains(&format!("{runner_min:.1} min · {:.1} min", runner_min * 30.0)), "{row}");
    assert!(html.contains("With one more cold start a day, the order stays: shared-dind &lt; ephemeral-dind."));

    data.info.workload = None;
    let plain = dir.path().join("plain");
    write(&data, &plain);
    let html = std::fs::read_to_string(layerbench::report::generate(&plain, &dir.path().join("plain-report")).unwrap()).unwrap();
    assert!(html.contains("over the pipeline (2 runs, each weighted once)"));
    assert!(html.contains("id=\"workload-none\""));
    assert!(!html.contains("money / month"));
}

#[test]
fn compare_judges_the_weighted_figure_when_both_runs_carry_the_same_workload() {
    let mut baseline = known();
    baseline.info.workload = Some(workload(Prices::default()));
    let mut candidate = baseline.clone();
    // shared-dind's code-change job 50% slower: 90 of the 100 pipelines a day.
    candidate.jobs.iter_mut().filter(|j| j.strategy.name() == FAST_CODE && j.pipeline_run == "code-change").for_each(|j| j.wall_ms = 15_000);
    let comparison = compare_data(&baseline, &candidate, 0.10).unwrap();
    let weighted = |strategy: &str| {
        comparison.rows.iter().find(|r| r.pipeline_run == WEIGHTED_ROW && r.strategy.name() == strategy).cloned().unwrap()
    };
    let slower = weighted(FAST_CODE);
    // (10 × 100 s + 90 × 15 s) / 100 = 23.5 s against 19 s.
    close(slower.change, 23.5 / 19.0 - 1.0);
    assert_eq!(slower.time, TimeVerdict::Regressed);
    assert_eq!(weighted(FAST_COLD).time, TimeVerdict::WithinNoise);

    candidate.info.workload = Some(Workload { pipelines_per_day: 50.0, ..workload(Prices::default()) });
    let comparison = compare_data(&baseline, &candidate, 0.10).unwrap();
    assert!(comparison.rows.iter().all(|r| r.pipeline_run != WEIGHTED_ROW));
    assert!(comparison.notes.iter().any(|n| n.contains("different workloads")));
}
