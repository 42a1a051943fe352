//! `layerbench report` on the synthetic results under tests/fixtures/results/: files, HTML, verdict, cache map.

mod synthetic_results;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use layerbench::report::{generate, CHART_FILES};
use layerbench::results::{read_jobs, read_run_info, JobStatus};
use scraper::{Html, Selector};
use synthetic_results::{spec, Spec};

/// Each fixture's report is generated once per test run: drawing PNGs is slow in debug builds.
fn report_of(name: &str) -> (PathBuf, PathBuf, Html) {
    static GENERATED: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let out = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("report-tests")
        .join(name);
    let index = out.join("index.html");
    let mut generated = GENERATED.lock().unwrap_or_else(|e| e.into_inner());
    if !generated.iter().any(|n| n == name) {
        let _ = std::fs::remove_dir_all(&out);
        assert_eq!(generate(&spec(name).dir(), &out).unwrap(), index);
        generated.push(name.to_string());
    }
    let text = std::fs::read_to_string(&index).unwrap();
    (out, index, Html::parse_document(&text))
}

fn select<'a>(doc: &'a Html, css: &str) -> Vec<scraper::ElementRef<'a>> {
    doc.select(&Selector::parse(css).unwrap()).collect()
}

fn text_of(doc: &Html, css: &str) -> String {
    select(doc, css)
        .iter()
        .map(|e| e.text().collect::<String>())
        .collect::<Vec<_>>()
        .join(" ")
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// The fastest strategy as the CSVs say, computed here without the report's code: the least sum of its
/// pipeline runs' median wall times, each run weighted by its pipelines a day where the run carries a
/// `[workload]` (the first run `cold_per_day`, the others their share of the rest), else each once.
fn fastest_by_csv(dir: &Path) -> String {
    let jobs = read_jobs(dir).unwrap();
    let info = read_run_info(dir).unwrap();
    let runs: Vec<String> = info.pipeline.iter().map(|r| r.to_string()).collect();
    let weight = |index: usize, run: &str| match &info.workload {
        None => 1.0,
        Some(w) if index == 0 => w.cold_per_day,
        Some(w) => (w.pipelines_per_day - w.cold_per_day) * w.mix.iter().find(|(name, _)| name.as_str() == run).map_or(0.0, |(_, share)| *share),
    };
    let mut walls: BTreeMap<(String, String), Vec<f64>> = BTreeMap::new();
    for j in jobs.iter().filter(|j| j.status == JobStatus::Ok) {
        walls
            .entry((j.strategy.to_string(), j.pipeline_run.to_string()))
            .or_default()
            .push(j.wall_ms as f64);
    }
    let strategies: Vec<String> = jobs.iter().map(|j| j.strategy.to_string()).collect();
    let mut totals: Vec<(f64, String)> = vec![];
    for s in strategies.iter().collect::<std::collections::BTreeSet<_>>() {
        let per_run: Option<Vec<f64>> = runs
            .iter()
            .enumerate()
            .filter(|(i, r)| weight(*i, r) > 0.0)
            .map(|(i, r)| {
                walls
                    .get(&(s.clone(), r.clone()))
                    .map(|v| median(v.clone()) * weight(i, r))
            })
            .collect();
        if let Some(per_run) = per_run {
            totals.push((per_run.iter().sum(), s.clone()));
        }
    }
    totals.sort_by(|a, b| a.0.total_cmp(&b.0));
    totals[0].1.clone()
}

#[test]
fn committed_fixtures_match_their_generator() {
    // LAYERBENCH_WRITE_FIXTURES=1 rewrites them after a change to the generator.
    let write = std::env::var_os("LAYERBENCH_WRITE_FIXTURES").is_some();
    for spec in synthetic_results::all() {
        if write {
            let _ = std::fs::remove_dir_all(spec.dir());
            synthetic_results::write(&spec, &spec.dir());
            continue;
        }
        let fresh = tempfile::tempdir().unwrap();
        synthetic_results::write(&spec, fresh.path());
        for file in [
            "run.json",
            "jobs.csv",
            "steps.csv",
            "cache.csv",
            "services.csv",
        ] {
            let committed = std::fs::read_to_string(spec.dir().join(file))
                .unwrap_or_else(|e| panic!("{}/{file}: {e}", spec.name));
            let generated = std::fs::read_to_string(fresh.path().join(file)).unwrap();
            assert!(
                committed == generated,
                "{}/{file} differs from its generator; rerun with LAYERBENCH_WRITE_FIXTURES=1",
                spec.name
            );
        }
    }
}

#[test]
fn every_expected_file_is_written_and_charts_are_real_images() {
    let (out, index, _) = report_of("synthetic-flask");
    assert_eq!(index, out.join("index.html"));
    for file in CHART_FILES {
        let path = out.join(file);
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{file}: {e}"));
        if file.ends_with(".png") {
            assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "{file} is a PNG");
            assert!(
                bytes.len() > 5_000,
                "{file} has content ({} bytes)",
                bytes.len()
            );
        } else {
            let text = String::from_utf8(bytes).unwrap();
            assert!(
                text.starts_with("<svg") && text.trim_end().ends_with("</svg>"),
                "{file} is SVG"
            );
        }
    }
}

#[test]
fn the_html_parses_and_is_self_contained() {
    let (_out, index, doc) = report_of("synthetic-flask");
    let text = std::fs::read_to_string(index).unwrap();
    assert!(text.starts_with("<!DOCTYPE html>"));
    assert!(!text.contains("{{"), "no placeholder left");
    assert_eq!(select(&doc, "h1").len(), 1);
    for id in [
        "verdict",
        "time",
        "cache",
        "phases",
        "cost",
        "environment",
        "columns",
    ] {
        assert_eq!(
            select(&doc, &format!("section#{id}")).len(),
            1,
            "section {id}"
        );
    }
    assert!(
        select(&doc, "script, link, img, iframe, object, embed").is_empty(),
        "nothing to fetch or run"
    );
    for e in select(&doc, "[src], [href]") {
        for attr in ["src", "href"] {
            if let Some(v) = e.value().attr(attr) {
                assert!(v.starts_with('#'), "only in-page links, found {attr}={v}");
            }
        }
    }
    assert!(!text.contains("url("), "CSS fetches nothing");
    assert_eq!(
        select(&doc, "figure.chart svg").len(),
        3,
        "time, phases and cost charts are inline SVG"
    );
}

#[test]
fn the_verdict_names_the_strategy_the_csv_says_is_fastest() {
    for name in [
        "synthetic-flask",
        "synthetic-flask-slower",
        "synthetic-one-iteration",
        "synthetic-single-run",
        "synthetic-all-failed",
    ] {
        let expected = fastest_by_csv(&spec(name).dir());
        let (_out, _, doc) = report_of(name);
        let named = select(&doc, "#verdict-headline .fastest");
        assert_eq!(named.len(), 1, "{name}: one fastest strategy");
        assert_eq!(
            named[0].value().attr("data-strategy"),
            Some(expected.as_str()),
            "{name}"
        );
        let first_row = text_of(&doc, "#ranking tbody tr:first-child");
        assert!(
            first_row.contains(&expected),
            "{name}: ranking starts with {expected}: {first_row}"
        );
    }
}

#[test]
fn the_verdict_says_how_much_faster_and_at_what_cost() {
    let (_out, _, doc) = report_of("synthetic-flask");
    let headline = text_of(&doc, "#verdict-headline");
    assert!(headline.contains("× faster than"), "two strategies compare as a ratio: {headline}");
    assert!(!headline.contains('%'), "{headline}");
    assert!(headline.contains("ahead by more than the spread"), "{headline}");
    let cost = text_of(&doc, "#verdict-cost");
    assert!(
        cost.contains("MB") && cost.contains("privileged"),
        "registry bytes and privileges: {cost}"
    );
    assert!(
        text_of(&doc, "#verdict .how").contains("sum of those medians"),
        "the rule is on the page"
    );
}

#[test]
fn the_cache_map_has_one_cell_per_step_and_job() {
    for name in [
        "synthetic-flask",
        "synthetic-single-run",
        "synthetic-all-failed",
        "synthetic-one-iteration",
    ] {
        let s: Spec = spec(name);
        let info = read_run_info(&s.dir()).unwrap();
        let jobs = read_jobs(&s.dir()).unwrap();
        let (_out, _, doc) = report_of(name);
        let steps = info.steps.len();
        assert_eq!(
            select(&doc, "#cache-map tr[data-step]").len(),
            steps,
            "{name}: one row per step"
        );
        assert_eq!(
            select(&doc, "#cache-map td.cell").len(),
            steps * info.strategies.len() * info.pipeline.len(),
            "{name}: one cell per step x (strategy, pipeline run)"
        );
        assert_eq!(
            select(&doc, "#cache-map span.job").len(),
            steps * jobs.len(),
            "{name}: one mark per step x job"
        );
    }
}

#[test]
fn the_cache_map_shows_why_the_pull_push_dance_misses() {
    let (_out, _, doc) = report_of("synthetic-flask");
    let cell = |strategy: &str, run: &str, step: u32| {
        let css = format!("#cache-map tr[data-step=\"{step}\"] td[data-strategy=\"{strategy}\"][data-pipeline-run=\"{run}\"]");
        let found = select(&doc, &css);
        assert_eq!(found.len(), 1, "{css}");
        found[0].value().attr("class").unwrap().to_string()
    };
    // registry-final on no-change: the builder stage is not in its cache (only the final stage is pushed), so
    // its first step misses for that reason and the rest after it; the final stage hits up to COPY --from,
    // which reruns after the builder stage it takes from.
    assert!(cell("registry-final", "no-change", 2).contains("miss-gap"));
    assert!(cell("registry-final", "no-change", 6).contains("miss-after"), "after the builder stage's first miss");
    assert!(cell("registry-final", "no-change", 8).contains("hit"));
    assert!(
        cell("registry-final", "no-change", 10).contains("miss-after"),
        "COPY --from misses after the stage it copies from"
    );
    assert!(cell("registry-final", "no-change", 11).contains("miss-after"));
    assert!(cell("registry-multistage", "no-change", 10).contains("hit"));
    assert!(cell("registry-final", "no-change", 1).contains("base"));
    // daemonless failed at step 6 in iteration 2 of deps-change: later steps were not run there.
    let marks = select(&doc, "#cache-map tr[data-step=\"12\"] td[data-strategy=\"daemonless\"][data-pipeline-run=\"deps-change\"] span.job");
    let states: Vec<&str> = marks
        .iter()
        .map(|m| m.value().attr("class").unwrap())
        .collect();
    assert_eq!(states, ["job miss-after", "job not-run", "job miss-after"]);
}

#[test]
fn missing_figures_read_n_a_and_failed_jobs_are_counted() {
    let (_out, _, doc) = report_of("synthetic-flask");
    // ephemeral-dind records no pull phase: n/a, not 0.
    let row = select(&doc, "#phases-table tbody tr")
        .into_iter()
        .find(|r| r.text().collect::<String>().contains("ephemeral-dind"))
        .unwrap();
    let cells: Vec<String> = row
        .select(&Selector::parse("td").unwrap())
        .map(|c| c.text().collect())
        .collect();
    assert_eq!(cells[2], "n/a", "pull: {cells:?}");
    assert!(text_of(&doc, "#time-table").contains("1 failed"));
    assert!(text_of(&doc, "header .warning").contains("1 of 60 jobs failed"));
}

#[test]
fn a_strategy_whose_every_job_failed_is_shown_but_not_ranked() {
    let (out, _, doc) = report_of("synthetic-all-failed");
    assert!(text_of(&doc, "#verdict p.failed").contains("daemonless"));
    let ranking = text_of(&doc, "#ranking");
    assert!(
        ranking.contains("daemonless") && ranking.contains("12 of 12"),
        "{ranking}"
    );
    let svg = std::fs::read_to_string(out.join("time-per-run.svg")).unwrap();
    assert_eq!(
        svg.matches("all 3 failed").count(),
        4,
        "one note per pipeline run"
    );
}

#[test]
fn one_iteration_and_a_single_run_still_make_a_report() {
    let (_out, _, doc) = report_of("synthetic-one-iteration");
    assert!(
        !text_of(&doc, "#time-table").contains('–'),
        "no range with a single value"
    );
    assert!(text_of(&doc, "#image-sources").contains("All toolchain images were the official ones"));
    let (_out, _, doc) = report_of("synthetic-single-run");
    assert!(text_of(&doc, "#verdict-headline").contains("(1 run, each weighted once)"));
    assert_eq!(
        select(&doc, "#time-table thead th").len(),
        3,
        "strategy, cold, pipeline total"
    );
}

#[test]
fn local_stand_in_images_are_said_plainly() {
    let (_out, _, doc) = report_of("synthetic-flask");
    let text = text_of(&doc, "#image-sources");
    assert!(
        text.contains("4 of 4 toolchain images were local stand-ins"),
        "{text}"
    );
    assert!(text_of(&doc, "#images").contains("local stand-in"));
    let bases = text_of(&doc, "#bases");
    for shown in ["python:3.11-slim", "${PY}", "layerbench-local/python:3.11-slim", "local stand-in", "(local image ID)", "as Docker Hub's mirror"] {
        assert!(bases.contains(shown), "{shown}: {bases}");
    }
}

#[test]
fn a_missing_results_directory_is_a_clear_error() {
    let out = tempfile::tempdir().unwrap();
    let missing = out.path().join("no-such-run");
    let err = generate(&missing, &out.path().join("report"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("no-such-run") && err.contains("run.json"),
        "{err}"
    );
}

/// Writes a report of the base synthetic run to target/synthetic-report/ for a person to look at.
#[test]
#[ignore = "writes target/synthetic-report/ for manual inspection"]
fn write_synthetic_report_for_inspection() {
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/synthetic-report");
    for name in [
        "synthetic-flask",
        "synthetic-all-failed",
        "synthetic-one-iteration",
        "synthetic-single-run",
    ] {
        let index = generate(&spec(name).dir(), &out.join(name)).unwrap();
        println!("{}", index.display());
    }
}

#[test]
fn an_interrupted_run_is_reported_over_the_runs_it_reached_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let source = spec("synthetic-flask").dir();
    for file in ["jobs.csv", "steps.csv", "cache.csv", "services.csv"] {
        let text = std::fs::read_to_string(source.join(file)).unwrap();
        let kept: Vec<&str> = text
            .lines()
            .filter(|l| !l.contains(",deps-change,"))
            .collect();
        std::fs::write(dir.path().join(file), kept.join("\n") + "\n").unwrap();
    }
    let mut info = read_run_info(&source).unwrap();
    info.interrupted = true;
    info.strategies.push(layerbench::strategy::Strategy::named("daemonless-kaniko"));
    std::fs::write(
        dir.path().join("run.json"),
        serde_json::to_string_pretty(&info).unwrap(),
    )
    .unwrap();

    let out = tempfile::tempdir().unwrap();
    let index = generate(dir.path(), out.path()).unwrap();
    let doc = Html::parse_document(&std::fs::read_to_string(index).unwrap());
    let warnings = text_of(&doc, "header .warning");
    assert!(warnings.contains("interrupted"), "{warnings}");
    assert!(
        warnings.contains("daemonless-kaniko"),
        "a strategy with no job is named: {warnings}"
    );
    assert!(
        warnings.contains("deps-change"),
        "the run it never reached is named: {warnings}"
    );
    assert!(text_of(&doc, "#verdict-headline").contains("(3 runs, each weighted once)"));
    assert_eq!(select(&doc, "#cache-map td.cell").len(), 15 * 5 * 3);
    assert!(!text_of(&doc, "#ranking").contains("daemonless-kaniko"));
}

/// The committed example (`results/example`, a real run of scenarios/flask.toml on this project's
/// machine) must make a complete report whose claims match its CSV.
#[test]
fn the_committed_example_makes_a_report_that_matches_its_results() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("results/example");
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("report-tests").join("example");
    let _ = std::fs::remove_dir_all(&out);
    let index = generate(&dir, &out).unwrap();
    for file in CHART_FILES {
        assert!(out.join(file).is_file(), "{file} written");
        assert!(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("reports/example").join(file).is_file(),
            "{file} committed under reports/example"
        );
    }
    let doc = Html::parse_document(&std::fs::read_to_string(index).unwrap());
    let expected = fastest_by_csv(&dir);
    let named = select(&doc, "#verdict-headline .fastest");
    assert_eq!(named.len(), 1);
    assert_eq!(named[0].value().attr("data-strategy"), Some(expected.as_str()));
    let info = read_run_info(&dir).unwrap();
    let jobs = read_jobs(&dir).unwrap();
    assert_eq!(jobs.len() as u32, info.iterations * (info.pipeline.len() * info.strategies.len()) as u32, "a complete run");
    assert_eq!(
        select(&doc, "#cache-map td.cell").len(),
        info.steps.len() * info.strategies.len() * info.pipeline.len()
    );
    assert_eq!(select(&doc, "#cache-map span.job").len(), info.steps.len() * jobs.len(), "one mark per step x job");
}

/// A job that failed for infrastructure reasons is no evidence about its strategy: the report says
/// which failures were the build's and which were not, overall and in the cell they happened in.
#[test]
fn build_and_infrastructure_failures_are_told_apart() {
    let mut spec = synthetic_results::Spec::flask("infrastructure-failure");
    spec.one_failure_kind = layerbench::results::FailureKind::Infrastructure;
    let results = tempfile::tempdir().unwrap();
    synthetic_results::write(&spec, results.path());
    let out = tempfile::tempdir().unwrap();
    let index = generate(results.path(), out.path()).unwrap();
    let text = std::fs::read_to_string(index).unwrap();
    assert!(
        text.contains("0 in the build") && text.contains("1 for infrastructure reasons"),
        "the warning splits the failures by kind"
    );
    assert!(text.contains("1 failed (1 infrastructure)"), "the time table's cell names the kind");
}

/// How many columns each row of a table covers, colspan and rowspan honoured: one entry per `<tr>`, header
/// rows first. A cell a rowspan carries down occupies its column in the rows below.
fn row_widths(table: scraper::ElementRef<'_>) -> (usize, Vec<usize>) {
    let span = |cell: &scraper::ElementRef, attr: &str| cell.value().attr(attr).and_then(|v| v.parse::<usize>().ok()).unwrap_or(1);
    let mut carried: Vec<usize> = vec![]; // rows left for a rowspan, per column
    let mut widths = vec![];
    let mut header_rows = 0;
    for row in table.select(&Selector::parse("tr").unwrap()) {
        if row.ancestors().any(|a| a.value().as_element().is_some_and(|e| e.name() == "thead")) {
            header_rows += 1;
        }
        let mut column = 0;
        let mut next_carried = carried.iter().map(|n| n.saturating_sub(1)).collect::<Vec<_>>();
        for cell in row.children().filter_map(scraper::ElementRef::wrap).filter(|c| matches!(c.value().name(), "td" | "th")) {
            while carried.get(column).is_some_and(|n| *n > 0) {
                column += 1;
            }
            let (cols, rows) = (span(&cell, "colspan"), span(&cell, "rowspan"));
            for c in column..column + cols {
                if next_carried.len() <= c {
                    next_carried.resize(c + 1, 0);
                }
                next_carried[c] = rows - 1;
            }
            column += cols;
        }
        let covered = column.max(carried.iter().rposition(|n| *n > 0).map_or(0, |i| i + 1));
        widths.push(covered);
        carried = next_carried;
    }
    (header_rows, widths)
}

/// Every table of a report holding every strategy and every phase (a real run of all eleven strategies,
/// kept from before records were typed) has as many header columns as each of its rows has cells.
#[test]
fn every_table_has_as_many_header_columns_as_each_row_has_cells() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/results/example-before-typed-records");
    let jobs = read_jobs(&dir).unwrap();
    let strategies: std::collections::BTreeSet<_> = jobs.iter().map(|j| j.strategy).collect();
    assert_eq!(strategies.len(), layerbench::strategy::Strategy::all().count(), "every strategy is in the report");
    for phase in layerbench::strategy::Phase::ALL {
        assert!(jobs.iter().any(|j| j.phase_ms(phase).is_some()), "phase {} is in the report", phase.name());
    }
    let out = tempfile::tempdir().unwrap();
    let index = generate(&dir, out.path()).unwrap();
    let doc = Html::parse_document(&std::fs::read_to_string(index).unwrap());
    assert!(select(&doc, "table").len() >= 8, "{} tables", select(&doc, "table").len());
    assert_tables_match_their_headers(&doc);
    // The workload's bill and the under-load table, on results with several levels and a workload.
    let mut loaded = synthetic_results::known_load();
    loaded.info.workload = Some(layerbench::workload::Workload {
        pipelines_per_day: 100.0,
        mix: BTreeMap::from([(layerbench::results::PipelineRunName::from("code-change"), 1.0)]),
        cold_per_day: 10.0,
        prices: layerbench::workload::Prices { runner_minute: Some(0.01), ..Default::default() },
        mix_from_history: false,
    });
    let results = tempfile::tempdir().unwrap();
    synthetic_results::write_data(&loaded, results.path());
    let index = generate(results.path(), &out.path().join("loaded")).unwrap();
    let loaded_doc = Html::parse_document(&std::fs::read_to_string(index).unwrap());
    for id in ["#bill", "#bill-cold", "#load-table"] {
        assert_eq!(select(&loaded_doc, id).len(), 1, "{id} is in the report");
    }
    assert_tables_match_their_headers(&loaded_doc);
    let phases = select(&doc, "#phases-table thead th");
    let names: Vec<String> = phases.iter().map(|h| h.text().collect()).collect();
    for phase in layerbench::strategy::Phase::ALL {
        assert!(names.contains(&phase.name().to_string()), "{} has a header: {names:?}", phase.name());
    }
}

/// Every table of `doc` has as many header columns as each of its rows has cells.
fn assert_tables_match_their_headers(doc: &Html) {
    for table in select(doc, "table") {
        let id = table.value().attr("id").unwrap_or("(no id)").to_string();
        let (header_rows, widths) = row_widths(table);
        let expected = if header_rows > 0 { widths[..header_rows].iter().copied().max().unwrap() } else { widths[0] };
        for (i, width) in widths.iter().enumerate() {
            assert_eq!(*width, expected, "table {id}, row {i}: {width} cells under {expected} header columns");
        }
    }
}

/// Results at several levels make the Under load section: its charts, and one throughput row per strategy
/// and level whose cells match the header (`synthetic_results::known_load`: two strategies at 1, 2 and 4).
#[test]
fn results_at_several_levels_make_the_under_load_section() {
    let results = tempfile::tempdir().unwrap();
    synthetic_results::write_data(&synthetic_results::known_load(), results.path());
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("report-tests").join("under-load");
    let _ = std::fs::remove_dir_all(&out);
    let index = generate(results.path(), &out).unwrap();
    for file in layerbench::report::LOAD_CHART_FILES {
        assert!(out.join(file).is_file(), "{file} written");
    }
    let doc = Html::parse_document(&std::fs::read_to_string(index).unwrap());
    let table = select(&doc, "#load-table")[0];
    let (header_rows, widths) = row_widths(table);
    assert_eq!(header_rows, 1);
    assert_eq!(widths.len(), 1 + 2 * 3, "a row per strategy and level");
    assert!(widths.iter().all(|w| *w == widths[0]), "{widths:?}");
    let rows: Vec<String> = select(&doc, "#load-table tbody tr").iter().map(|r| r.text().collect::<String>()).collect();
    let row = rows.iter().find(|r| r.starts_with("shared-dind4")).expect("shared-dind at 4");
    assert!(row.contains("(8 not reported)"), "{row}");
}

/// Jobs that ran on more than one node (a multi-node cluster) are counted per strategy and node; on one node
/// (every synthetic fixture, every docker run) the report says nothing of nodes.
#[test]
fn the_report_shows_the_nodes_only_when_jobs_ran_on_more_than_one() {
    let (_, _, one_node) = report_of("synthetic-flask");
    assert!(select(&one_node, "#nodes").is_empty(), "one node: no table");
    let dir = tempfile::tempdir().unwrap();
    let source = spec("synthetic-flask").dir();
    for file in ["steps.csv", "cache.csv", "services.csv", "run.json"] {
        std::fs::copy(source.join(file), dir.path().join(file)).unwrap();
    }
    let mut reader = csv::Reader::from_path(source.join("jobs.csv")).unwrap();
    let headers = reader.headers().unwrap().clone();
    let node = headers.iter().position(|h| h == "node").expect("jobs.csv has a node column");
    let mut writer = csv::Writer::from_path(dir.path().join("jobs.csv")).unwrap();
    writer.write_record(&headers).unwrap();
    let mut expected: BTreeMap<(String, String), usize> = BTreeMap::new();
    for (i, record) in reader.records().enumerate() {
        let mut fields: Vec<String> = record.unwrap().iter().map(str::to_string).collect();
        fields[node] = if i % 3 == 0 { "kind-worker".into() } else { "kind-control-plane".into() };
        *expected.entry((fields[headers.iter().position(|h| h == "strategy").unwrap()].clone(), fields[node].clone())).or_default() += 1;
        writer.write_record(&fields).unwrap();
    }
    writer.flush().unwrap();
    let out = tempfile::tempdir().unwrap();
    let doc = Html::parse_document(&std::fs::read_to_string(generate(dir.path(), out.path()).unwrap()).unwrap());
    let header: Vec<String> = select(&doc, "#nodes th").iter().map(|h| h.text().collect()).collect();
    assert_eq!(header, ["strategy", "kind-control-plane", "kind-worker", "unknown"]);
    for row in select(&doc, "#nodes tbody tr") {
        let cells: Vec<String> = row.select(&Selector::parse("td").unwrap()).map(|c| c.text().collect::<String>()).collect();
        for (column, node) in ["kind-control-plane", "kind-worker"].iter().enumerate() {
            let count = expected.get(&(cells[0].trim().to_string(), node.to_string())).copied().unwrap_or(0);
            assert_eq!(cells[column + 1], count.to_string(), "{} on {node}", cells[0]);
        }
    }
    assert!(text_of(&doc, "#environment").contains("ran on 2 nodes"));
}

/// The under-load figures on results with known figures (`synthetic_results::known_load`).
#[test]
fn load_figures_are_the_known_ones() {
    use layerbench::results::load::{figures, ranking_change};
    use layerbench::strategy::Strategy;
    let data = synthetic_results::known_load();
    let all = figures(&data);
    let at = |strategy: &str, level: u32| all.iter().find(|f| f.strategy == strategy && f.level == level).unwrap().clone();
    let (shared, ephemeral) = (Strategy::named("shared-dind"), Strategy::named("ephemeral-dind"));
    // Nearest-rank percentiles of the level's wall times: at 4, eight jobs of 40, 50, 50, 60 s twice.
    let loaded = at("shared-dind", 4);
    assert_eq!((loaded.ok, loaded.failed), (8, 0));
    assert_eq!((loaded.p50_ms, loaded.p95_ms), (Some(50_000), Some(60_000)));
    assert_eq!((at("shared-dind", 1).p50_ms, at("shared-dind", 1).p95_ms), (Some(10_000), Some(20_000)));
    // The reference: N × the level-1 p50 over min(N, 2 cores).
    assert_eq!(at("shared-dind", 1).reference_ms, Some(10_000.0));
    assert_eq!(at("shared-dind", 2).reference_ms, Some(10_000.0), "two jobs on two cores");
    assert_eq!(at("shared-dind", 4).reference_ms, Some(20_000.0), "four jobs on two cores");
    assert_eq!(at("ephemeral-dind", 4).reference_ms, Some(24_000.0));
    // Throughput: a round lasts from its first lane's start to its last lane's end.
    assert_eq!(loaded.jobs_per_hour, Some(8.0 * 3600.0 / 120.0), "two rounds of 60 s");
    let alone = at("ephemeral-dind", 1).jobs_per_hour.unwrap();
    assert!((alone - 2.0 * 3600.0 / 42.0).abs() < 1e-9, "{alone}");
    // Hit rate: 2 hits of the 3 reported cacheable steps; ENV is not cacheable, the unreported RUN counts apart
    // and the skipped stage's RUN nowhere.
    assert!((loaded.hit_rate.unwrap() - 2.0 / 3.0).abs() < 1e-9);
    assert_eq!((loaded.unreported_steps, at("shared-dind", 1).unreported_steps), (8, 2));
    // A hit whose input changed is counted as an anomaly at its level, and the report's cell names it.
    assert_eq!(loaded.anomalies, 0);
    let mut odd = data.clone();
    let step = odd.steps.iter_mut().find(|s| s.strategy == shared && s.concurrency == 4 && s.cached == Some(true)).unwrap();
    step.cause = Some(layerbench::cause::Cause::HitDespiteChange);
    let odd_figures = figures(&odd);
    let odd_loaded = odd_figures.iter().find(|f| f.strategy == shared && f.level == 4).unwrap();
    assert_eq!((odd_loaded.anomalies, odd_loaded.hit_rate), (1, loaded.hit_rate), "still a reported hit, and named");
    let dir = tempfile::tempdir().unwrap();
    synthetic_results::write_data(&odd, &dir.path().join("results"));
    let index = generate(&dir.path().join("results"), &dir.path().join("report")).unwrap();
    let doc = Html::parse_document(&std::fs::read_to_string(index).unwrap());
    assert!(text_of(&doc, "#load-table").contains("1 anomaly: a hit although its input changed"), "{}", text_of(&doc, "#load-table"));
    // The ranking turns at the highest level, and stays when the loaded times keep the order.
    assert_eq!(ranking_change(&all), Some((4, vec![shared, ephemeral], vec![ephemeral, shared])));
    let mut kept = data.clone();
    for job in kept.jobs.iter_mut().filter(|j| j.strategy == ephemeral && j.concurrency == 4) {
        job.wall_ms = 70_000;
    }
    assert_eq!(ranking_change(&figures(&kept)), None);
    // The report says both, in words.
    let sentence = |data: &layerbench::results::data::RunData| {
        let dir = tempfile::tempdir().unwrap();
        synthetic_results::write_data(data, &dir.path().join("results"));
        let index = generate(&dir.path().join("results"), &dir.path().join("report")).unwrap();
        text_of(&Html::parse_document(&std::fs::read_to_string(index).unwrap()), "#load-ranking")
    };
    assert!(
        sentence(&data).contains("alone it is shared-dind < ephemeral-dind; with 4 at once it is ephemeral-dind < shared-dind"),
        "{}",
        sentence(&data)
    );
    assert!(sentence(&kept).contains("the same at every level"));
    // A level run.json lists and no job ran at (refused, or the run stopped first) is said, not skipped silently.
    let mut refused = data.clone();
    refused.info.concurrency = vec![1, 2, 4, 8];
    let dir = tempfile::tempdir().unwrap();
    synthetic_results::write_data(&refused, &dir.path().join("results"));
    let doc = Html::parse_document(&std::fs::read_to_string(generate(&dir.path().join("results"), &dir.path().join("report")).unwrap()).unwrap());
    let warning = text_of(&doc, "#levels-not-run");
    assert!(warning.starts_with("No job was recorded at concurrency 8") && warning.ends_with("concurrency 1, 2, 4 only."), "{warning}");
}

/// Two strategies whose totals differ by less than their iterations' spread are tied within noise: the
/// headline crowns neither, and the ranking table says so; a gap beyond the spread is a clear lead.
#[test]
fn a_gap_within_the_spread_is_tied_within_noise() {
    use layerbench::report::verdict::{Lead, Verdict};
    use layerbench::strategy::Strategy;
    let fixture = layerbench::results::data::RunData::load(&spec("synthetic-flask").dir()).unwrap();
    let with_walls = |other_s: [u64; 3]| {
        let mut data = fixture.clone();
        data.info.pipeline = vec!["cold".into()];
        data.info.strategies = vec![Strategy::named("shared-dind"), Strategy::named("daemonless")];
        data.steps.clear();
        data.cache.clear();
        data.services.clear();
        data.jobs = [("shared-dind", [100u64, 110, 120]), ("daemonless", other_s)]
            .iter()
            .flat_map(|(strategy, walls)| {
                let template = fixture.jobs[0].clone();
                walls.iter().enumerate().map(move |(i, wall)| {
                    let mut job = template.clone();
                    job.strategy = Strategy::named(strategy);
                    job.pipeline_run = "cold".into();
                    job.iteration = i as u32 + 1;
                    job.status = JobStatus::Ok;
                    job.wall_ms = wall * 1000;
                    job
                })
            })
            .collect();
        data
    };
    let tied = with_walls([112, 113, 114]);
    assert_eq!(Verdict::compute(&tied).lead, Lead::Tied(vec![Strategy::named("daemonless")]), "3 s apart, 20 s of spread");
    let dir = tempfile::tempdir().unwrap();
    synthetic_results::write_data(&tied, &dir.path().join("results"));
    let doc = Html::parse_document(&std::fs::read_to_string(generate(&dir.path().join("results"), &dir.path().join("report")).unwrap()).unwrap());
    let headline = text_of(&doc, "#verdict-headline");
    assert!(headline.starts_with("Tied within noise"), "{headline}");
    assert!(headline.contains("shared-dind (110.0 s in total) and daemonless (113.0 s)") && !headline.contains("Fastest"), "{headline}");
    assert!(headline.contains("shared-dind was fastest in 2 of 3 iterations") && !headline.contains("also fastest"), "{headline}");
    assert!(text_of(&doc, "#ranking").contains("tied within noise"), "{}", text_of(&doc, "#ranking"));
    assert_eq!(Verdict::compute(&with_walls([200, 201, 202])).lead, Lead::Clear, "90 s apart");
}

/// jobs.csv's notes appear in the report, each note once with the jobs it holds for.
#[test]
fn job_notes_are_shown_once_each_with_their_jobs() {
    let spec = Spec {
        notes: Some(("shared-dind", "image size left empty: the manifest could not be read; cache_export left empty, its time is in build: the builder's progress showed no step for it")),
        one_failure: false,
        iterations: 1,
        ..Spec::flask("notes")
    };
    let dir = tempfile::tempdir().unwrap();
    synthetic_results::write(&spec, &dir.path().join("results"));
    let index = generate(&dir.path().join("results"), &dir.path().join("report")).unwrap();
    let doc = Html::parse_document(&std::fs::read_to_string(index).unwrap());
    let items: Vec<String> = select(&doc, "#job-notes li").iter().map(|li| li.text().collect()).collect();
    assert_eq!(items.len(), 2, "{items:?}");
    assert!(items[0].starts_with("image size left empty: the manifest could not be read (4 jobs: shared-dind · cold · #1, shared-dind · no-change · #1"), "{items:?}");
    assert!(items[1].starts_with("cache_export left empty, its time is in build"), "{items:?}");
    let (_out, _, plain) = report_of("synthetic-flask");
    assert!(select(&plain, "#job-notes").is_empty(), "no notes, no list");
}
