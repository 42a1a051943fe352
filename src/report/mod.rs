//! Reads `results/<run-id>/` and writes a self-contained HTML report with charts.

pub mod cache_map;
pub mod charts;

pub(crate) mod format;
mod html;
mod load;
pub mod verdict;
mod workload;

use std::path::{Path, PathBuf};

use charts::{CacheMapChart, Chart, CostChart, LoadChart, PhasesChart, TimeChart};

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    // Transparent, and `Write` names its cause `error`: each cause is displayed once, never
    // again as a `source()` that `{:#}` would print after it.
    #[error(transparent)]
    Results(#[from] crate::results::ResultsError),
    #[error("cannot write {}: {error}", path.display())]
    Write {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{0}")]
    Data(String),
    #[error("cannot draw the {chart} chart: {message}")]
    Chart {
        chart: &'static str,
        message: String,
    },
}

/// The files `generate` writes into the output directory for every run, besides `index.html`.
pub const CHART_FILES: [&str; 8] = [
    "time-per-run.svg",
    "time-per-run.png",
    "cache-map.svg",
    "cache-map.png",
    "phases.svg",
    "phases.png",
    "cost.svg",
    "cost.png",
];

/// The files it writes as well for a run of more than one concurrency level.
pub const LOAD_CHART_FILES: [&str; 2] = ["under-load.svg", "under-load.png"];

/// Writes `out_dir/index.html` and the charts next to it from `results_dir` alone.
/// Returns the path of the HTML file.
pub fn generate(results_dir: &Path, out_dir: &Path) -> Result<PathBuf, ReportError> {
    let whole = crate::results::data::RunData::load(results_dir)?;
    // Every section but "under load" shows the lowest level: one pipeline at a time, where there is one.
    let data = whole.at_level(whole.levels().first().copied().unwrap_or(1));
    if data.jobs.is_empty() {
        return Err(ReportError::Data(format!(
            "{} has no finished job in {}: nothing to report (did the run stop before its first job ended?)",
            results_dir.display(),
            crate::results::JOBS_CSV
        )));
    }
    std::fs::create_dir_all(out_dir).map_err(|error| ReportError::Write {
        path: out_dir.to_path_buf(),
        error,
    })?;
    let verdict = verdict::Verdict::compute(&data);
    let map = cache_map::CacheMap::build(&data);
    let strategies = data.strategies();
    let time = charts::render(&TimeChart::from_data(&data), out_dir)?;
    charts::render(&CacheMapChart { map: &map }, out_dir)?;
    let phases = charts::render(&PhasesChart::from_data(&data), out_dir)?;
    let cost = charts::render(&CostChart::from_verdict(&verdict, &strategies), out_dir)?;
    let mut names = vec![TimeChart::NAME, CacheMapChart::NAME, PhasesChart::NAME, CostChart::NAME];
    let under_load = match whole.levels().len() > 1 {
        true => {
            names.push(LoadChart::NAME);
            Some(charts::render(&LoadChart::new(whole.strategies(), crate::results::load::figures(&whole)), out_dir)?)
        }
        false => None,
    };
    let files = names.iter().map(|n| format!("{n}.svg/.png")).collect();
    let page = html::render(
        &data,
        &verdict,
        &map,
        &html::Charts {
            time,
            phases,
            cost,
            files,
        },
        &html::Sections {
            under_load: load::section(&whole, under_load.as_deref()),
            workload: workload::section(&data, &verdict),
            levels_not_run: load::levels_not_run(&whole),
        },
    )?;
    let path = out_dir.join("index.html");
    std::fs::write(&path, page).map_err(|error| ReportError::Write {
        path: path.clone(),
        error,
    })?;
    Ok(path)
}
