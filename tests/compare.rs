//! `layerbench compare` on synthetic results: verdicts, cache changes, exit codes and output formats.

mod synthetic_results;

use std::path::{Path, PathBuf};

use layerbench::compare::{
    compare, exit_code, CompareError, CompareOptions, CompareOutcome, TimeVerdict,
};
use synthetic_results::spec;

struct Run {
    result: Result<CompareOutcome, CompareError>,
    markdown: String,
    openmetrics: String,
    _out: tempfile::TempDir,
}

fn run_compare(baseline: &Path, candidate: &Path) -> Run {
    let out = tempfile::tempdir().unwrap();
    let md = out.path().join("summary.md");
    let om = out.path().join("metrics.txt");
    let result = compare(&CompareOptions {
        baseline: baseline.to_path_buf(),
        candidate: candidate.to_path_buf(),
        threshold: 0.10,
        markdown: Some(md.clone()),
        openmetrics: Some(om.clone()),
    });
    Run {
        result,
        markdown: std::fs::read_to_string(md).unwrap_or_default(),
        openmetrics: std::fs::read_to_string(om).unwrap_or_default(),
        _out: out,
    }
}

fn dir(name: &str) -> PathBuf {
    spec(name).dir()
}

#[test]
fn identical_inputs_are_within_noise_and_exit_0() {
    let run = run_compare(&dir("synthetic-flask"), &dir("synthetic-flask"));
    assert_eq!(exit_code(&run.result), 0);
    let outcome = run.result.unwrap();
    assert!(!outcome.regressed);
    let rows = &outcome.comparison.rows;
    assert_eq!(rows.len(), 5 * 4, "one row per strategy x pipeline run");
    for row in rows {
        assert_eq!(
            row.time,
            TimeVerdict::WithinNoise,
            "{} / {}",
            row.strategy,
            row.pipeline_run
        );
        assert!(row.cache_lost.is_empty() && row.cache_gained.is_empty());
    }
    assert!(outcome.table.contains("No regression"), "{}", outcome.table);
    assert!(run.markdown.contains("✅ no regression"));
}

#[test]
fn a_strategy_50_percent_slower_regresses_and_exits_1() {
    let run = run_compare(&dir("synthetic-flask"), &dir("synthetic-flask-slower"));
    assert_eq!(exit_code(&run.result), 1);
    let outcome = run.result.unwrap();
    assert!(outcome.regressed);
    for row in &outcome.comparison.rows {
        if row.strategy == "shared-dind" {
            assert_eq!(row.time, TimeVerdict::Regressed, "{}", row.pipeline_run);
            let change = row.change.unwrap();
            assert!((0.4..0.6).contains(&change), "about +50%: {change}");
        } else {
            assert_eq!(
                row.time,
                TimeVerdict::WithinNoise,
                "{} / {}",
                row.strategy,
                row.pipeline_run
            );
            assert!(!row.regressed);
        }
    }
    let shared: Vec<&str> = outcome
        .table
        .lines()
        .filter(|l| l.starts_with("shared-dind"))
        .collect();
    assert_eq!(shared.len(), 4);
    assert!(
        shared.iter().all(|l| l.ends_with("REGRESSED")),
        "{shared:#?}"
    );
    assert!(run.markdown.contains("❌ regression"));
    assert!(
        run.openmetrics.contains("layerbench_regressions 4\n"),
        "{}",
        run.openmetrics
    );
}

#[test]
fn a_step_that_stops_hitting_the_cache_is_reported_even_within_noise() {
    let run = run_compare(&dir("synthetic-flask"), &dir("synthetic-flask-cache-lost"));
    assert_eq!(exit_code(&run.result), 1);
    let outcome = run.result.unwrap();
    let row = outcome
        .comparison
        .rows
        .iter()
        .find(|r| r.strategy == "registry-multistage" && r.pipeline_run == "no-change")
        .unwrap();
    assert_eq!(
        row.time,
        TimeVerdict::WithinNoise,
        "the time change is small"
    );
    let lost: Vec<u32> = row.cache_lost.iter().map(|k| k.step).collect();
    assert_eq!(lost, [13, 14, 15]);
    assert!(row.regressed);
    assert_eq!(
        outcome
            .comparison
            .rows
            .iter()
            .filter(|r| r.regressed)
            .count(),
        1
    );
    let expected =
        "registry-multistage / no-change: stopped hitting the cache: step 13 `EXPOSE 5000`";
    assert!(outcome.table.contains(expected), "{}", outcome.table);
    assert!(
        outcome.table.contains("13/15 → 10/15"),
        "cached steps before and after: {}",
        outcome.table
    );
    assert!(run
        .markdown
        .contains("stopped hitting the cache: step 13 `EXPOSE 5000`"));
    assert!(run
        .openmetrics
        .contains("layerbench_cached_steps_lost{strategy=\"registry-multistage\",pipeline_run=\"no-change\"} 3\n"));
}

#[test]
fn mismatched_scenarios_are_a_data_error_with_exit_2() {
    let run = run_compare(&dir("synthetic-flask"), &dir("synthetic-other-scenario"));
    assert_eq!(exit_code(&run.result), 2);
    let message = run.result.err().unwrap().to_string();
    assert!(
        message.contains("`flask`") && message.contains("`node-app`"),
        "{message}"
    );
    assert!(
        message.contains("same scenario"),
        "says what to do: {message}"
    );
    assert!(
        run.markdown.is_empty() && run.openmetrics.is_empty(),
        "nothing written on error"
    );
}

#[test]
fn a_missing_results_directory_exits_2_and_names_it() {
    let missing = Path::new("/nonexistent/results/run-1");
    let run = run_compare(&dir("synthetic-flask"), missing);
    assert_eq!(exit_code(&run.result), 2);
    let message = run.result.err().unwrap().to_string();
    assert!(
        message.contains("candidate") && message.contains("/nonexistent/results/run-1"),
        "{message}"
    );
}

#[test]
fn changed_scenario_files_under_the_same_name_are_compared_with_a_note() {
    let copy = tempfile::tempdir().unwrap();
    for file in [
        "run.json",
        "jobs.csv",
        "steps.csv",
        "cache.csv",
        "services.csv",
    ] {
        std::fs::copy(dir("synthetic-flask").join(file), copy.path().join(file)).unwrap();
    }
    let run_json = copy.path().join("run.json");
    let text = std::fs::read_to_string(&run_json).unwrap();
    std::fs::write(
        &run_json,
        text.replace(synthetic_results::FLASK_HASH, &"0".repeat(64)),
    )
    .unwrap();
    let run = run_compare(&dir("synthetic-flask"), copy.path());
    assert_eq!(exit_code(&run.result), 0);
    let outcome = run.result.unwrap();
    assert_eq!(outcome.comparison.notes.len(), 1);
    assert!(
        outcome.table.contains("scenario's files changed"),
        "{}",
        outcome.table
    );
}

#[test]
fn a_strategy_whose_every_candidate_job_fails_regresses() {
    let run = run_compare(&dir("synthetic-flask"), &dir("synthetic-all-failed"));
    let outcome = run.result.unwrap();
    let daemonless: Vec<_> = outcome
        .comparison
        .rows
        .iter()
        .filter(|r| r.strategy == "daemonless")
        .collect();
    assert_eq!(daemonless.len(), 4);
    assert!(daemonless.iter().all(|r| r.regressed && r.now_failing));
    assert!(matches!(daemonless[0].time, TimeVerdict::NotCompared(_)));
    assert!(outcome.regressed);
}

#[test]
fn openmetrics_lines_are_name_value_pairs_gitlab_can_read() {
    let run = run_compare(&dir("synthetic-flask"), &dir("synthetic-flask-slower"));
    assert!(run.openmetrics.ends_with("# EOF\n"));
    let mut samples = 0;
    for line in run.openmetrics.lines() {
        if line.starts_with('#') {
            let kind = line.split_whitespace().nth(1).unwrap();
            assert!(["TYPE", "UNIT", "HELP", "EOF"].contains(&kind), "{line}");
            continue;
        }
        // GitLab drops `#...`, then takes the first two shell words as name and value.
        assert!(!line.contains('#'), "{line}");
        let words: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(words.len(), 2, "{line}");
        let name = words[0].split('{').next().unwrap();
        assert!(
            name.starts_with("layerbench_")
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "{line}"
        );
        let value: f64 = words[1]
            .parse()
            .unwrap_or_else(|_| panic!("numeric value: {line}"));
        assert!(value.is_finite() && !words[1].contains('e'), "{line}");
        samples += 1;
    }
    // 20 rows x 6 families (every row has both sides) + the total.
    assert_eq!(samples, 20 * 6 + 1);
    assert!(run
        .openmetrics
        .contains("# UNIT layerbench_job_wall_seconds seconds\n"));
}

#[test]
fn markdown_is_one_table_with_a_row_per_strategy_and_run() {
    let run = run_compare(&dir("synthetic-flask"), &dir("synthetic-flask-cache-lost"));
    let table: Vec<&str> = run
        .markdown
        .lines()
        .filter(|l| l.starts_with('|'))
        .collect();
    assert_eq!(table.len(), 2 + 20, "header, separator and 20 rows");
    let columns = |l: &str| l.replace("\\|", "").matches('|').count();
    assert!(
        table.iter().all(|l| columns(l) == columns(table[0])),
        "every row has the same columns"
    );
    assert!(run
        .markdown
        .contains("<details><summary>How the verdict is made</summary>"));
}
