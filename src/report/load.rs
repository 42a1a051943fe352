//! The report's "under load" section, for a run of more than one concurrency level: p50 and p95 against
//! the level with the physical reference, a throughput table, and a sentence wherever the ranking at the
//! highest level differs from level 1.

use super::format::{self, html, MISSING};
use super::html::{strategy_html, table, td_num};
use crate::results::data::RunData;
use crate::results::load::{self, LevelFigures};

/// The section's HTML, or nothing when the run had one level only.
pub fn section(data: &RunData, chart_svg: Option<&str>) -> String {
    let levels = data.levels();
    if levels.len() < 2 && levels.iter().all(|l| *l == 1) {
        return String::new();
    }
    let figures = load::figures(data);
    let cores = data.info.host.cpus.map_or("an unknown number of".to_string(), |c| c.to_string());
    let mut out = format!(
        "<section id=\"load\"><h2>Under load</h2>\n<p>At level N, every pipeline run of a strategy started N \
         pipelines at once, as N branches pushed together: they share the strategy's registry repository, tags \
         and shared daemon, and each makes its own change. Each level starts from empty caches. Times pool every \
         pipeline run and iteration of the level's successful jobs; the dotted line is the physical reference on \
         this host of {cores} cores: N jobs of the level-1 median each, spread over min(N, cores) cores. A \
         strategy far above it loses time to contention; hits lost against level 1 are lanes overwriting each \
         other's cache. The hit rate is over the cacheable steps whose cache state the builder reported: a step it \
         reported nothing for (BuildKit, for a build merged with an identical one beside it) is counted apart, \
         as not reported, never as a hit or a miss. A hit whose input changed (an anomaly: the builder served \
         a layer no job had built from that input) stays a reported hit and is named beside the rate.</p>\n"
    );
    out.push_str(&ranking_sentence(&figures));
    if let Some(svg) = chart_svg {
        out.push_str(&format!("<figure class=\"chart\" id=\"load-chart\">{svg}</figure>\n"));
    }
    out.push_str(&throughput_table(&figures));
    out.push_str("</section>\n");
    out
}

/// A warning naming the levels run.json lists and no job ran at (refused for the host's memory, or the run
/// stopped first), over the whole run's records; nothing when every level has jobs.
pub fn levels_not_run(whole: &RunData) -> String {
    let ran = whole.levels();
    let not_run: Vec<String> = whole.info.concurrency.iter().filter(|l| !ran.contains(l)).map(u32::to_string).collect();
    if not_run.is_empty() {
        return String::new();
    }
    format!(
        "<p class=\"warning bad\" id=\"levels-not-run\">No job was recorded at concurrency {} (refused before it started \
         because the host's memory could not hold it, or the run stopped first): the figures cover concurrency {} only.</p>",
        html(not_run.join(", ")),
        html(ran.iter().map(u32::to_string).collect::<Vec<_>>().join(", "))
    )
}

/// "At 4 at once the order changes: …", or nothing when it does not.
fn ranking_sentence(figures: &[LevelFigures]) -> String {
    match load::ranking_change(figures) {
        Some((top, alone, loaded)) => {
            let names = |list: &[crate::strategy::Strategy]| list.iter().map(|s| s.name()).collect::<Vec<_>>().join(" < ");
            format!(
                "<p id=\"load-ranking\" class=\"warning\">The ranking by median job time changes under load: alone it is \
                 {}; with {top} at once it is {}.</p>\n",
                html(names(&alone)),
                html(names(&loaded))
            )
        }
        None => "<p id=\"load-ranking\">The ranking by median job time is the same at every level.</p>\n".into(),
    }
}

fn throughput_table(figures: &[LevelFigures]) -> String {
    let headers = [
        "strategy",
        "at once",
        "jobs ok",
        "failed",
        "p50",
        "p95",
        "perfect scaling",
        "jobs per hour",
        "hit rate",
        "peak memory of a job",
        "shared daemon CPU per iteration",
        "shared daemon peak memory",
    ];
    let rows: Vec<Vec<String>> = figures
        .iter()
        .map(|f| {
            vec![
                format!("<td>{}</td>", strategy_html(f.strategy.name())),
                td_num(f.level.to_string()),
                td_num(f.ok.to_string()),
                td_num(f.failed.to_string()),
                td_num(format::opt_duration(f.p50_ms.map(|v| v as f64))),
                td_num(format::opt_duration(f.p95_ms.map(|v| v as f64))),
                td_num(format::opt_duration(f.reference_ms)),
                td_num(f.jobs_per_hour.map_or(MISSING.to_string(), |v| format!("{v:.1}"))),
                td_num(hit_rate_cell(f)),
                td_num(format::opt_bytes(f.peak_memory_bytes.map(|v| v as f64))),
                td_num(format::opt_duration(f.daemon_cpu_ms.map(|v| v as f64))),
                td_num(format::opt_bytes(f.daemon_peak_memory_bytes.map(|v| v as f64))),
            ]
        })
        .collect();
    table(Some("load-table"), &headers, &rows)
}

/// The hit rate, with the cacheable steps the builder did not report and the anomalies (hits whose input
/// changed) beside it: `47% (5 not reported, 1 anomaly: a hit although its input changed)`.
fn hit_rate_cell(f: &LevelFigures) -> String {
    let Some(rate) = f.hit_rate else { return MISSING.to_string() };
    let mut notes = vec![];
    if f.unreported_steps > 0 {
        notes.push(format!("{} not reported", f.unreported_steps));
    }
    match f.anomalies {
        0 => {}
        1 => notes.push("1 anomaly: a hit although its input changed".to_string()),
        n => notes.push(format!("{n} anomalies: hits although their input changed")),
    }
    match notes.is_empty() {
        true => format!("{:.0}%", rate * 100.0),
        false => format!("{:.0}% ({})", rate * 100.0, notes.join(", ")),
    }
}
