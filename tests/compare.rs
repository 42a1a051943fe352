//! `layerbench compare` on synthetic results: verdicts, failures, environment notes, cache
//! changes, exit codes and output formats.

mod synthetic_results;

use std::path::Path;

use layerbench::compare::{
    compare, exit_code, Breakage, CompareError, CompareOptions, CompareOutcome, Row, TimeVerdict,
};
use layerbench::cause::Cause;
use layerbench::results::FailureKind;
use synthetic_results::{spec, Spec};

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

/// The results the generator writes now, rather than the committed copies, so that every record
/// carries every field compare reads (failure kinds, host load).
fn results(spec: &Spec) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    synthetic_results::write(spec, dir.path());
    dir
}

fn dir(name: &str) -> tempfile::TempDir {
    results(&spec(name))
}

fn compare_specs(baseline: &Spec, candidate: &Spec) -> Run {
    run_compare(results(baseline).path(), results(candidate).path())
}

fn rows_of<'a>(outcome: &'a CompareOutcome, strategy: &str) -> Vec<&'a Row> {
    outcome
        .comparison
        .rows
        .iter()
        .filter(|r| r.strategy == strategy)
        .collect()
}

/// The one row the committed generator makes too short to judge: daemonless fails once in
/// deps-change, leaving two successful iterations.
fn is_short_row(row: &Row) -> bool {
    row.strategy == "daemonless" && row.pipeline_run == "deps-change"
}

/// Five iterations whose jobs are each off by up to ±10%: a spread like a shared CI runner's.
fn noisy(name: &'static str) -> Spec {
    Spec {
        iterations: 5,
        noise: 0.10,
        one_failure: false,
        ..Spec::flask(name)
    }
}

#[test]
fn identical_inputs_are_within_noise_and_exit_0() {
    let run = run_compare(dir("synthetic-flask").path(), dir("synthetic-flask").path());
    assert_eq!(exit_code(&run.result), 0);
    let outcome = run.result.unwrap();
    assert!(!outcome.regressed);
    let rows = &outcome.comparison.rows;
    assert_eq!(rows.len(), 5 * 4, "one row per strategy x pipeline run");
    for row in rows {
        let expected = if is_short_row(row) {
            TimeVerdict::TooFewIterations {
                baseline_ok: 2,
                candidate_ok: 2,
            }
        } else {
            TimeVerdict::WithinNoise
        };
        assert_eq!(
            row.time, expected,
            "{} / {}",
            row.strategy, row.pipeline_run
        );
        assert!(row.cache_lost.is_empty() && row.cache_gained.is_empty());
        assert!(
            row.breakage.is_none(),
            "the same build failure on both sides is not new"
        );
    }
    assert!(outcome.comparison.environment.is_empty());
    assert!(
        outcome
            .table
            .contains("too few iterations to judge (2 → 2 successful, 3 needed"),
        "{}",
        outcome.table
    );
    assert!(outcome.table.contains("No regression"), "{}", outcome.table);
    assert!(run.markdown.contains("✅ no regression"));
}

#[test]
fn a_strategy_50_percent_slower_regresses_and_exits_1() {
    let run = run_compare(
        dir("synthetic-flask").path(),
        dir("synthetic-flask-slower").path(),
    );
    assert_eq!(exit_code(&run.result), 1);
    let outcome = run.result.unwrap();
    assert!(outcome.regressed);
    for row in &outcome.comparison.rows {
        if row.strategy == "shared-dind" {
            assert_eq!(row.time, TimeVerdict::Regressed, "{}", row.pipeline_run);
            let change = row.change.unwrap();
            assert!((0.4..0.6).contains(&change), "about +50%: {change}");
        } else {
            assert!(
                row.time == TimeVerdict::WithinNoise || is_short_row(row),
                "{} / {}: {:?}",
                row.strategy,
                row.pipeline_run,
                row.time
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
    let run = run_compare(
        dir("synthetic-flask").path(),
        dir("synthetic-flask-cache-lost").path(),
    );
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
    // Each lost step carries why the candidate missed it: the first evicted, the ones after it after a miss.
    let causes: Vec<Option<Cause>> = row.cache_lost.iter().map(|k| k.cause).collect();
    assert_eq!(causes, [Some(Cause::Evicted), Some(Cause::AfterMiss), Some(Cause::AfterMiss)]);
    let evicted = "step 13 `EXPOSE 5000` (not in the cache: held last time, not found now";
    assert!(outcome.table.contains(evicted), "{}", outcome.table);
    assert!(run.markdown.contains(evicted), "{}", run.markdown);
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
        .contains("layerbench_cached_steps_lost{strategy=\"registry-multistage\",pipeline_run=\"no-change\",concurrency=\"1\"} 3\n"));
}

#[test]
fn mismatched_scenarios_are_a_data_error_with_exit_2() {
    let run = run_compare(
        dir("synthetic-flask").path(),
        dir("synthetic-other-scenario").path(),
    );
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
    let run = run_compare(dir("synthetic-flask").path(), missing);
    assert_eq!(exit_code(&run.result), 2);
    let message = run.result.err().unwrap().to_string();
    assert!(
        message.contains("candidate") && message.contains("/nonexistent/results/run-1"),
        "{message}"
    );
}

#[test]
fn changed_scenario_files_under_the_same_name_are_compared_with_a_note() {
    let baseline = dir("synthetic-flask");
    let copy = dir("synthetic-flask");
    let run_json = copy.path().join("run.json");
    let text = std::fs::read_to_string(&run_json).unwrap();
    std::fs::write(
        &run_json,
        text.replace(synthetic_results::FLASK_HASH, &"0".repeat(64)),
    )
    .unwrap();
    let run = run_compare(baseline.path(), copy.path());
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
fn a_strategy_whose_every_candidate_job_fails_regresses_and_says_the_failures_were_infrastructure()
{
    let run = run_compare(
        dir("synthetic-flask").path(),
        dir("synthetic-all-failed").path(),
    );
    assert_eq!(exit_code(&run.result), 1);
    let outcome = run.result.unwrap();
    let daemonless = rows_of(&outcome, "daemonless");
    assert_eq!(daemonless.len(), 4);
    for row in &daemonless {
        assert!(row.regressed, "{}", row.pipeline_run);
        assert_eq!(
            row.breakage,
            Some(Breakage::NoSuccessfulCandidateJob {
                build: 0,
                infrastructure: 3
            })
        );
        assert!(matches!(row.time, TimeVerdict::NotCompared(_)));
    }
    let expected = "daemonless / cold: every candidate job failed: 3 infrastructure failures (engine, daemon, registry or timeout; not evidence that the strategy is slow";
    assert!(outcome.table.contains(expected), "{}", outcome.table);
    assert!(
        run.markdown.contains("3 infrastructure failures"),
        "{}",
        run.markdown
    );
}

#[test]
fn every_candidate_job_failing_the_build_regresses_and_says_so() {
    let broken = Spec {
        all_failed: Some("daemonless"),
        all_failed_kind: FailureKind::Build,
        one_failure: false,
        ..Spec::flask("all-build-failed")
    };
    let run = compare_specs(&Spec::flask("baseline"), &broken);
    assert_eq!(exit_code(&run.result), 1);
    let outcome = run.result.unwrap();
    assert!(outcome
        .table
        .contains("daemonless / code-change: every candidate job failed: 3 build failures\n"));
    assert!(!outcome.table.contains("not evidence"), "{}", outcome.table);
}

#[test]
fn a_strategy_or_pipeline_run_missing_from_the_candidate_is_a_regression_by_name() {
    let baseline = Spec::flask("baseline");
    let without_registry_final = Spec {
        strategies: vec![
            "ephemeral-dind",
            "registry-multistage",
            "shared-dind",
            "daemonless",
        ],
        ..Spec::flask("candidate")
    };
    let run = compare_specs(&baseline, &without_registry_final);
    assert_eq!(exit_code(&run.result), 1);
    let outcome = run.result.unwrap();
    let missing = rows_of(&outcome, "registry-final");
    assert_eq!(
        missing.len(),
        4,
        "one row per pipeline run, baseline's order"
    );
    for row in &missing {
        assert_eq!(row.breakage, Some(Breakage::MissingFromCandidate));
        assert!(row.regressed && row.candidate.is_none());
    }
    assert_eq!(outcome.comparison.count("regressed"), 4);
    assert!(
        outcome
            .table
            .contains("registry-final / deps-change: missing from the candidate"),
        "{}",
        outcome.table
    );
    assert!(run
        .markdown
        .contains("**registry-final / cold**: missing from the candidate"));

    let stopped_early = Spec {
        pipeline: vec!["cold", "no-change"],
        ..Spec::flask("candidate")
    };
    let run = compare_specs(&baseline, &stopped_early);
    assert_eq!(exit_code(&run.result), 1);
    let outcome = run.result.unwrap();
    let regressed: Vec<String> = outcome
        .comparison
        .rows
        .iter()
        .filter(|r| r.regressed)
        .map(|r| r.pipeline_run.to_string())
        .collect();
    assert_eq!(regressed.len(), 5 * 2);
    assert!(regressed
        .iter()
        .all(|r| r == "code-change" || r == "deps-change"));
}

/// Level N is compared with level N: a level the baseline ran and the candidate did not is a regression, as a
/// missing strategy is; the levels both ran still compare.
#[test]
fn a_concurrency_level_missing_from_the_candidate_is_a_regression() {
    let baseline = synthetic_results::known_load();
    let mut candidate = baseline.clone();
    candidate.jobs.retain(|j| j.concurrency != 4);
    candidate.steps.retain(|s| s.concurrency != 4);
    candidate.info.concurrency = vec![1, 2];
    let (b, c) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    synthetic_results::write_data(&baseline, b.path());
    synthetic_results::write_data(&candidate, c.path());
    let run = run_compare(b.path(), c.path());
    assert_eq!(exit_code(&run.result), 1);
    let outcome = run.result.unwrap();
    let (missing, kept): (Vec<&Row>, Vec<&Row>) = outcome.comparison.rows.iter().partition(|r| r.concurrency == 4);
    assert_eq!(missing.len(), 2 * 2, "every strategy and pipeline run at 4 at once");
    for row in &missing {
        assert_eq!(row.breakage, Some(Breakage::MissingFromCandidate), "{}", row.run_label());
        assert!(row.regressed && row.candidate.is_none());
    }
    assert!(kept.iter().all(|r| !r.regressed && r.candidate.is_some()), "levels 1 and 2 are there and unchanged");
    assert!(outcome.table.contains("shared-dind / cold ×4 at once: missing from the candidate"), "{}", outcome.table);
}

#[test]
fn new_build_failures_regress_and_infrastructure_failures_in_a_working_strategy_do_not() {
    let clean = Spec {
        one_failure: false,
        ..Spec::flask("clean")
    };
    // daemonless fails once in deps-change, the build's fault.
    let run = compare_specs(&clean, &Spec::flask("one-build-failure"));
    assert_eq!(exit_code(&run.result), 1);
    let outcome = run.result.unwrap();
    let row = rows_of(&outcome, "daemonless")
        .into_iter()
        .find(|r| r.pipeline_run == "deps-change")
        .unwrap();
    assert_eq!(
        row.breakage,
        Some(Breakage::NewBuildFailures { candidate: 1 })
    );
    assert!(outcome.table.contains(
        "daemonless / deps-change: 1 build failure in the candidate, none in the baseline"
    ));

    // The same job lost to the engine: said, not held against the strategy.
    let infra = Spec {
        one_failure_kind: FailureKind::Infrastructure,
        ..Spec::flask("one-infrastructure-failure")
    };
    let run = compare_specs(&clean, &infra);
    assert_eq!(
        exit_code(&run.result),
        0,
        "{:?}",
        run.result.as_ref().map(|o| &o.table)
    );
    let outcome = run.result.unwrap();
    assert!(
        outcome.table.contains("daemonless / deps-change: 1 infrastructure failure in the candidate, not counted against the strategy"),
        "{}",
        outcome.table
    );
    assert!(
        outcome.table.contains("[1 infrastructure failure]"),
        "{}",
        outcome.table
    );
}

#[test]
fn a_real_30_percent_slowdown_in_noisy_iterations_is_found() {
    let slower = Spec {
        slower: Some(("shared-dind", 1.3)),
        ..noisy("noisy-slower")
    };
    let run = compare_specs(&noisy("noisy-baseline"), &slower);
    assert_eq!(exit_code(&run.result), 1);
    let outcome = run.result.unwrap();
    for row in &outcome.comparison.rows {
        let (lo, hi) = row.interval.expect("five iterations are judged");
        if row.strategy == "shared-dind" {
            assert_eq!(
                row.time,
                TimeVerdict::Regressed,
                "{}: {lo} {hi}",
                row.pipeline_run
            );
            assert!(
                lo > 0.10 && (lo..=hi).contains(&0.30),
                "{}: {lo} {hi}",
                row.pipeline_run
            );
        } else {
            assert_eq!(
                row.time,
                TimeVerdict::WithinNoise,
                "{} / {}: {lo} {hi}",
                row.strategy,
                row.pipeline_run
            );
            assert!(!row.regressed);
        }
    }
    assert_eq!(outcome.comparison.count("regressed"), 4);
}

#[test]
fn identical_distributions_in_noisy_iterations_are_within_noise() {
    // Same true times, different draws of the ±10% noise.
    let run = compare_specs(&noisy("noisy-a"), &noisy("noisy-b"));
    assert_eq!(exit_code(&run.result), 0);
    let outcome = run.result.unwrap();
    let medians_differ = outcome
        .comparison
        .rows
        .iter()
        .filter(|r| r.change.unwrap().abs() > 0.02)
        .count();
    assert!(medians_differ > 0, "the draws differ");
    for row in &outcome.comparison.rows {
        assert_eq!(
            row.time,
            TimeVerdict::WithinNoise,
            "{} / {}: {:?}",
            row.strategy,
            row.pipeline_run,
            row.interval
        );
    }
}

#[test]
fn a_single_iteration_is_too_few_to_judge_and_is_not_a_regression() {
    let one = spec("synthetic-one-iteration");
    let twice_as_slow = Spec {
        slower: Some(("shared-dind", 2.0)),
        ..spec("synthetic-one-iteration")
    };
    let run = compare_specs(&one, &twice_as_slow);
    assert_eq!(exit_code(&run.result), 0);
    let outcome = run.result.unwrap();
    for row in &outcome.comparison.rows {
        assert!(matches!(
            row.time,
            TimeVerdict::TooFewIterations {
                baseline_ok: 1,
                candidate_ok: 1
            }
        ));
    }
    assert_eq!(outcome.comparison.count("too few iterations"), 20);
    assert!(
        outcome.table.contains("+100.0%"),
        "the change is still shown"
    );
    assert!(
        outcome.table.contains("20 with too few iterations"),
        "{}",
        outcome.table
    );
}

#[test]
fn environment_differences_are_printed_above_the_table_and_next_to_the_verdicts_they_affect() {
    let quiet = Spec {
        host_load_1m: Some(0.8),
        ..Spec::flask("quiet-machine")
    };
    let busy = Spec {
        host_cpus: 8,
        host_load_1m: Some(14.4),
        official_images: true,
        slower: Some(("shared-dind", 1.5)),
        ..Spec::flask("busy-machine")
    };
    let run = compare_specs(&quiet, &busy);
    assert_eq!(
        exit_code(&run.result),
        1,
        "a difference is said, not excused"
    );
    let outcome = run.result.unwrap();
    let table = &outcome.table;
    let header = table.find("Environment differs").expect(table);
    assert!(
        header < table.find("strategy  ").unwrap(),
        "above the table"
    );
    for line in [
        "  host CPUs: 2 → 8\n",
        "  load per CPU: 0.40 → 1.80\n",
        "  dind image: layerbench-local/dind:latest (local stand-in) → docker:dind (official)\n",
    ] {
        assert!(table.contains(line), "{line}{table}");
    }
    let shared: Vec<&str> = table
        .lines()
        .filter(|l| l.starts_with("shared-dind"))
        .collect();
    assert_eq!(shared.len(), 4);
    for line in shared {
        assert!(
            line.ends_with("REGRESSED — environment differs: host CPUs, base image, dind image, registry image, buildah image, load per CPU 0.40 → 1.80"),
            "{line}"
        );
    }
    let within: Vec<&Row> = outcome
        .comparison
        .rows
        .iter()
        .filter(|r| !r.regressed)
        .collect();
    assert!(
        within.iter().all(|r| r.environment.is_empty()),
        "only verdicts it affects"
    );
    assert!(
        run.markdown.contains("Environment differs"),
        "{}",
        run.markdown
    );
    assert!(run
        .markdown
        .contains("❌ **regressed** (environment differs: host CPUs,"));
    assert!(run
        .openmetrics
        .contains("layerbench_environment_differences 6\n"));
}

#[test]
fn loads_that_differ_by_less_than_half_a_task_per_cpu_are_not_mentioned() {
    let a = Spec {
        host_load_1m: Some(0.8),
        ..Spec::flask("a")
    };
    let b = Spec {
        host_load_1m: Some(1.6),
        ..Spec::flask("b")
    };
    let outcome = compare_specs(&a, &b).result.unwrap();
    assert!(outcome.comparison.environment.is_empty());
    assert!(!outcome.table.contains("Environment differs"));
}

#[test]
fn openmetrics_lines_are_name_value_pairs_gitlab_can_read() {
    let run = run_compare(
        dir("synthetic-flask").path(),
        dir("synthetic-flask-slower").path(),
    );
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
    // 20 rows x 8 families, less the two interval bounds of the one row too short to judge,
    // + the two totals.
    assert_eq!(samples, 20 * 8 - 2 + 2);
    assert!(run
        .openmetrics
        .contains("# UNIT layerbench_job_wall_seconds seconds\n"));
}

#[test]
fn markdown_is_one_table_with_a_row_per_strategy_and_run() {
    let run = run_compare(
        dir("synthetic-flask").path(),
        dir("synthetic-flask-cache-lost").path(),
    );
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

/// A real run written before records were typed (tests/fixtures/results/example-before-typed-records, a copy of
/// results/example as of 29fff7e) still loads, as the same names, and compares against a run written now.
#[test]
fn results_written_before_typed_records_load_and_compare() {
    let old = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/results/example-before-typed-records");
    let data = layerbench::results::data::RunData::load(&old).expect("the old results load");
    let names: Vec<&str> = data.strategies().iter().map(|s| s.name()).collect();
    assert_eq!(names.len(), 11, "{names:?}");
    assert_eq!(names[0], "ephemeral-dind");
    let runs: Vec<String> = data.pipeline().iter().map(|r| r.to_string()).collect();
    assert_eq!(runs, ["cold", "no-change", "code-change", "deps-change"]);
    assert_eq!(data.jobs.len(), 132);
    assert!(data.jobs.iter().all(|j| j.backend == layerbench::results::BackendKind::Docker));
    // Rewritten by today's writer, the same records read back equal, column for column.
    let now = tempfile::tempdir().unwrap();
    let mut writer = layerbench::results::ResultsWriter::create(now.path()).unwrap();
    writer.write_run_info(&data.info).unwrap();
    for job in &data.jobs {
        writer.append_job(job, &data.steps_of(job).into_iter().cloned().collect::<Vec<_>>()).unwrap();
    }
    for row in &data.cache {
        writer.append_cache(row).unwrap();
    }
    for row in &data.services {
        writer.append_service(row).unwrap();
    }
    let header = |dir: &Path, file: &str| std::fs::read_to_string(dir.join(file)).unwrap().lines().next().unwrap().to_string();
    // Every file gained its columns after the ones it had: steps.csv the steps' inputs and causes, jobs.csv
    // its notes and usage, and each file the concurrency level.
    assert_eq!(header(now.path(), "cache.csv"), format!("{},concurrency", header(&old, "cache.csv")));
    assert_eq!(header(now.path(), "services.csv"), format!("{},concurrency,cpu_ms,peak_memory_bytes", header(&old, "services.csv")));
    assert_eq!(header(now.path(), "steps.csv"), format!("{},input_key,cause,changed,concurrency,lane", header(&old, "steps.csv")));
    assert_eq!(
        header(now.path(), "jobs.csv"),
        format!("{},notes,cpu_ms,peak_memory_bytes,node,concurrency,lane", header(&old, "jobs.csv"))
    );
    // The values too: every old row reads back the same in the columns it had, and run.json round-trips.
    for file in ["jobs.csv", "steps.csv", "cache.csv", "services.csv"] {
        let rows = |dir: &Path| {
            let mut reader = csv::Reader::from_path(dir.join(file)).unwrap();
            let header: Vec<String> = reader.headers().unwrap().iter().map(str::to_string).collect();
            let rows: Vec<Vec<String>> = reader.records().map(|r| r.unwrap().iter().map(str::to_string).collect()).collect();
            (header, rows)
        };
        let ((old_header, old_rows), (_, new_rows)) = (rows(&old), rows(now.path()));
        assert_eq!(old_rows.len(), new_rows.len(), "{file}: as many rows");
        for (i, (was, is)) in old_rows.iter().zip(&new_rows).enumerate() {
            assert_eq!(&is[..old_header.len()], &was[..], "{file} row {i}: the old columns' values");
        }
    }
    let reread = layerbench::results::data::RunData::load(now.path()).expect("the rewritten results load");
    assert_eq!(reread.info, data.info, "run.json round-trips");
    assert_eq!((&reread.jobs, &reread.steps, &reread.cache, &reread.services), (&data.jobs, &data.steps, &data.cache, &data.services));
    let run = run_compare(&old, now.path());
    assert_eq!(exit_code(&run.result), 0, "the same figures are no regression");
    assert_eq!(run.result.expect("old against new compares").comparison.rows.len(), 44);
}
