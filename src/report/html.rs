//! Fills the report's HTML template (`template.html`) with the tables and inline charts.

use super::cache_map::{CacheMap, StepState};
use crate::results::data::{phase_ms, RunData, Spread, PHASES};
use super::format::{self, html, join, MISSING};
use super::verdict::{self, Lead, Standing, Verdict};
use super::ReportError;
use crate::results::{ImageSource, JobStatus};

const TEMPLATE: &str = include_str!("template.html");

/// Inline SVG text of each chart, and the file names written next to the HTML.
pub struct Charts {
    pub time: String,
    pub phases: String,
    pub cost: String,
    pub files: Vec<String>,
}

/// Sections made elsewhere in `report`, already HTML.
pub struct Sections {
    pub under_load: String,
    pub workload: String,
    /// A warning for the levels run.json lists and no job ran at (see `load::levels_not_run`), or nothing.
    pub levels_not_run: String,
}

pub fn render(
    data: &RunData,
    verdict: &Verdict,
    map: &CacheMap,
    charts: &Charts,
    sections: &Sections,
) -> Result<String, ReportError> {
    let info = &data.info;
    let iterations = match info.iterations {
        1 => "1 iteration".to_string(),
        n => format!("{n} iterations"),
    };
    let values = [
        ("scenario", html(&info.scenario)),
        ("run_id", html(&info.run_id)),
        ("backend", html(info.backend)),
        ("iterations", iterations),
        ("pipeline", pipeline_text(data)),
        ("warnings", warnings(data) + &sections.levels_not_run),
        ("verdict", verdict_html(data, verdict)),
        ("workload", sections.workload.clone()),
        ("time_chart", charts.time.clone()),
        ("time_table", time_table(data)),
        ("load", sections.under_load.clone()),
        ("cache_map", cache_map(map)),
        ("cache_map_legend", cache_map_legend()),
        ("miss_advice", miss_advice(map)),
        ("phases_chart", charts.phases.clone()),
        ("phases_table", phases_table(data)),
        ("services", services(data)),
        ("job_notes", job_notes(data)),
        ("cost_chart", charts.cost.clone()),
        ("cost_table", cost_tables(data, verdict)),
        ("environment", environment(data)),
        ("version", html(env!("CARGO_PKG_VERSION"))),
        ("chart_files", html(charts.files.join(", "))),
    ];
    fill(TEMPLATE, &values)
}

/// The pipeline runs in order; for a replayed history, where its commits came from (sampled or not) and the
/// repository's change profile.
fn pipeline_text(data: &RunData) -> String {
    let runs = html(join(&data.pipeline(), " → "));
    match &data.info.history {
        None => runs,
        Some(h) => format!(
            "{runs}<br><span id=\"history\">Replays {}. Profile: {}.</span>",
            html(h.describe()),
            html(&h.profile.summary)
        ),
    }
}

/// Replaces every `{{key}}` once; a placeholder left over is a bug in the template or here.
fn fill(template: &str, values: &[(&str, String)]) -> Result<String, ReportError> {
    let mut out = template.to_string();
    for (key, value) in values {
        let placeholder = format!("{{{{{key}}}}}");
        if !out.contains(&placeholder) {
            return Err(ReportError::Data(format!(
                "report template has no {placeholder}"
            )));
        }
        out = out.replace(&placeholder, value);
    }
    if let Some(at) = out.find("{{") {
        let rest: String = out[at..].chars().take(30).collect();
        return Err(ReportError::Data(format!(
            "report template placeholder not filled: {rest}"
        )));
    }
    Ok(out)
}

/// A table whose cells are already HTML.
pub(super) fn table(id: Option<&str>, headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut out = String::from("<div class=\"scroll\"><table");
    if let Some(id) = id {
        out.push_str(&format!(" id=\"{id}\""));
    }
    out.push('>');
    if !headers.is_empty() {
        out.push_str("<thead><tr>");
        for h in headers {
            out.push_str(&format!("<th>{}</th>", html(h)));
        }
        out.push_str("</tr></thead>");
    }
    out.push_str("<tbody>");
    for row in rows {
        out.push_str("<tr>");
        for cell in row {
            out.push_str(cell);
        }
        out.push_str("</tr>");
    }
    out.push_str("</tbody></table></div>");
    out
}

pub(super) fn td(text: &str) -> String {
    format!("<td>{}</td>", html(text))
}

/// A numeric cell; "n/a" is greyed so that it never reads as a figure.
pub(super) fn td_num(text: String) -> String {
    if text == MISSING {
        format!("<td class=\"num na\">{MISSING}</td>")
    } else {
        format!("<td class=\"num\">{}</td>", html(&text))
    }
}

fn spread_text(s: &Spread) -> String {
    if s.n > 1 && s.max > s.min {
        format!(
            "{} ({}–{})",
            format::duration(s.median),
            format::duration(s.min),
            format::duration(s.max)
        )
    } else {
        format::duration(s.median)
    }
}

fn warnings(data: &RunData) -> String {
    let mut out = String::new();
    if data.info.interrupted {
        out.push_str(
            "<p class=\"warning bad\">This run was interrupted before it finished: the figures cover \
             only the jobs that finished.</p>",
        );
    }
    let failed = data
        .jobs
        .iter()
        .filter(|j| j.status == JobStatus::Failed)
        .count();
    if failed > 0 {
        let infrastructure = data
            .jobs
            .iter()
            .filter(|j| j.failure_kind == Some(crate::results::FailureKind::Infrastructure))
            .count();
        out.push_str(&format!(
            "<p class=\"warning\">{failed} of {} jobs failed: {} in the build (the builder rejected the \
             Dockerfile or a step failed) and {infrastructure} for infrastructure reasons (engine, daemon, \
             registry, a timeout, clean-up), which say nothing about how fast a strategy is. Failed jobs are \
             left out of every time and byte figure and counted in the tables.</p>",
            data.jobs.len(),
            failed - infrastructure,
        ));
    }
    let without = data.strategies_without_jobs();
    if !without.is_empty() {
        out.push_str(&format!(
            "<p class=\"warning\">run.json lists {} but no job of {} was recorded (skipped, or the \
             run stopped first); {} left out of this report.</p>",
            html(join(&without, ", ")),
            if without.len() == 1 { "it" } else { "them" },
            if without.len() == 1 { "it is" } else { "they are" }
        ));
    }
    let reached = data.pipeline();
    let missing_runs: Vec<&str> = data.info.pipeline.iter().filter(|r| !reached.contains(r)).map(|r| r.as_str()).collect();
    if !missing_runs.is_empty() {
        out.push_str(&format!(
            "<p class=\"warning bad\">No job was recorded for the pipeline run(s) {}: every total \
             here covers only {}.</p>",
            html(missing_runs.join(", ")),
            html(join(&reached, ", "))
        ));
    }
    let stand_ins = data
        .info
        .images
        .iter()
        .filter(|i| i.source == ImageSource::LocalStandIn)
        .count();
    if stand_ins > 0 {
        out.push_str(&format!(
            "<p class=\"warning\">{stand_ins} of {} toolchain images were local stand-ins built \
             by layerbench (from Debian packages and Go modules), not the official images (see <a href=\"#environment\">Environment</a>).</p>",
            data.info.images.len()
        ));
    }
    out
}

pub(super) fn strategy_html(name: impl AsRef<str>) -> String {
    format!(
        "<strong class=\"strategy\" data-strategy=\"{0}\">{0}</strong>",
        html(name.as_ref())
    )
}

fn verdict_html(data: &RunData, verdict: &Verdict) -> String {
    let mut out = headline(data, verdict);
    if !verdict.unranked.is_empty() {
        let names: Vec<String> = verdict
            .unranked
            .iter()
            .map(|s| format!("{} (all jobs failed in: {})", strategy_html(s.strategy), html(join(&s.runs_without_ok_job, ", "))))
            .collect();
        out.push_str(&format!("<p class=\"failed\">Not ranked: {}.</p>", names.join("; ")));
    }
    out.push_str(&ranking_table(data, verdict));
    out
}

/// The verdict's first sentences: the fastest strategy, how far ahead of the next, and at what cost.
fn headline(data: &RunData, verdict: &Verdict) -> String {
    let Some(best) = verdict.fastest() else {
        return "<p class=\"headline\" id=\"verdict-headline\">No strategy can be ranked: every strategy \
                has a pipeline run in which all its jobs failed.</p>"
            .into();
    };
    let next = verdict.runner_up();
    let total = best.total_ms.unwrap_or_default();
    let (scope, unit) = ranking_scope(data, verdict);
    let fastest = format!("<span class=\"fastest\" data-strategy=\"{}\">{}</span>", html(best.strategy), strategy_html(best.strategy));
    let mut out = match &verdict.lead {
        Lead::Tied(with) => {
            let others: Vec<String> = verdict
                .ranked
                .iter()
                .filter(|s| with.contains(&s.strategy))
                .map(|s| format!("{} ({})", strategy_html(s.strategy), format::opt_duration(s.total_ms)))
                .collect();
            format!(
                "<p class=\"headline\" id=\"verdict-headline\">Tied within noise {scope}: {fastest} \
                 ({} {unit}) and {}: the gaps are within the spread of their per-iteration totals, so none is fastest",
                format::duration(total),
                others.join(", ")
            )
        }
        Lead::Clear | Lead::Unjudged => {
            format!("<p class=\"headline\" id=\"verdict-headline\">Fastest {scope}: {fastest}, {} {unit}", format::duration(total))
        }
    };
    match (next.and_then(|n| n.total_ms.map(|t| (n, t))), &verdict.lead) {
        (Some(_), Lead::Tied(_)) => out.push('.'),
        (Some((next, next_total)), lead) => {
            out.push_str(&format!(
                ", {} than {} ({})",
                format::ratio(total, next_total),
                strategy_html(next.strategy),
                format::duration(next_total)
            ));
            out.push_str(match lead {
                Lead::Unjudged => ", in too few complete iterations to tell that from noise.",
                _ => ", ahead by more than the spread of either's per-iteration totals.",
            });
        }
        (None, _) => out.push_str(". It is the only strategy with a successful job in every pipeline run."),
    }
    let complete = verdict.complete_iterations.len();
    if complete > 0 && verdict.ranked.len() > 1 {
        // Tied, nothing is "also" fastest: say only how often the first of the order won.
        let lead_in = match verdict.lead {
            Lead::Tied(_) => format!(" {} was fastest", strategy_html(best.strategy)),
            _ => " It was also fastest".to_string(),
        };
        out.push_str(&format!(
            "{lead_in} in {} of {complete} iteration{} taken on its own.",
            verdict.fastest_wins,
            if complete == 1 { "" } else { "s" }
        ));
    }
    if best.failed_jobs > 0 {
        out.push_str(&format!(
            " <span class=\"failed\">{} of its {} jobs failed and are not counted.</span>",
            best.failed_jobs, best.jobs
        ));
    }
    out.push_str("</p>");
    out.push_str(&cost_sentence(best, next));
    out
}

/// What the ranking is over, in words, and the unit of its figure: "over the pipeline (4 runs, each
/// weighted once)" and "in total", or "for the workload (120 pipelines a day: …)" and "per pipeline".
fn ranking_scope(data: &RunData, verdict: &Verdict) -> (String, &'static str) {
    match (&verdict.weighting, &data.info.workload) {
        (crate::workload::Weighting::Mix(_), Some(workload)) => {
            (format!("for the workload ({})", html(workload.describe(&data.info.pipeline))), "per pipeline")
        }
        _ => {
            let runs = data.pipeline().len();
            (format!("over the pipeline ({runs} run{}, each weighted once)", if runs == 1 { "" } else { "s" }), "in total")
        }
    }
}

/// Every strategy in rank order (the unranked after), with its total, spread, failures, bytes and privileges.
fn ranking_table(data: &RunData, verdict: &Verdict) -> String {
    let best_total = verdict.fastest().and_then(|b| b.total_ms);
    let rows: Vec<Vec<String>> = verdict
        .ranked
        .iter()
        .enumerate()
        .map(|(i, s)| (Some(i + 1), s))
        .chain(verdict.unranked.iter().map(|s| (None, s)))
        .map(|(rank, s)| {
            let tied = matches!(&verdict.lead, Lead::Tied(with) if with.contains(&s.strategy));
            let vs = match (rank, s.total_ms, best_total) {
                (Some(1), _, _) if matches!(verdict.lead, Lead::Tied(_)) => "tied within noise".to_string(),
                (Some(1), _, _) => "fastest".to_string(),
                (_, Some(t), Some(b)) if tied => format!("tied within noise ({}, +{})", format::ratio(t, b), format::duration(t - b)),
                (_, Some(t), Some(b)) => format!("{} (+{})", format::ratio(t, b), format::duration(t - b)),
                _ => MISSING.to_string(),
            };
            let spread = verdict::total_spread(data, &verdict.weighting, s.strategy)
                .filter(|sp| sp.n > 1)
                .map_or(MISSING.to_string(), |sp| format!("{}–{}", format::duration(sp.min), format::duration(sp.max)));
            let failed = match s.failed_jobs {
                0 => format!("<td class=\"num\">0 of {}</td>", s.jobs),
                n => format!("<td class=\"num failed\">{n} of {}</td>", s.jobs),
            };
            vec![
                td_num(rank.map_or("—".into(), |r| r.to_string())),
                format!("<td>{}</td>", strategy_html(s.strategy)),
                td_num(format::opt_duration(s.total_ms)),
                td_num(vs),
                td_num(spread),
                failed,
                td_num(format::opt_bytes(s.registry_bytes)),
                td_num(format::opt_bytes(s.bytes_pushed)),
                td_num(format::opt_bytes(s.bytes_pulled)),
                td(s.privileges.as_deref().unwrap_or(MISSING)),
            ]
        })
        .collect();
    let headers =
        ["rank", "strategy", verdict.weighting.figure_name(), "vs fastest", "per-iteration totals", "jobs failed", "registry storage", "pushed", "pulled", "privileges"];
    table(Some("ranking"), &headers, &rows)
}

fn cost_sentence(best: &Standing, next: Option<&Standing>) -> String {
    let describe = |s: &Standing| {
        format!(
            "{} stores {} in the registry after the last run and pushes {} over the pipeline; it needs: {}",
            strategy_html(s.strategy),
            html(format::opt_bytes(s.registry_bytes)),
            html(format::opt_bytes(s.bytes_pushed)),
            html(
                s.privileges
                    .as_deref()
                    .map_or("n/a (not recorded in run.json)", |p| p.trim_end_matches('.'))
            )
        )
    };
    let mut out = format!("<p id=\"verdict-cost\">At what cost: {}", describe(best));
    if let Some(next) = next {
        out.push_str(&format!(". For comparison, {}", describe(next)));
    }
    out.push_str(".</p>");
    out
}

fn time_table(data: &RunData) -> String {
    let pipeline = data.pipeline();
    let mut headers = vec!["strategy"];
    headers.extend(pipeline.iter().map(|r| r.as_str()));
    headers.push("pipeline total");
    let rows: Vec<Vec<String>> = data
        .strategies()
        .iter()
        .map(|&s| {
            let mut row = vec![format!("<td>{}</td>", strategy_html(s))];
            let mut medians = vec![];
            for run in &pipeline {
                let cell = data.wall(s, run.as_str());
                medians.push(cell.wall_ms.map(|w| w.median));
                let figure = cell.wall_ms.map_or_else(
                    || format!("<span class=\"na\">{MISSING}</span>"),
                    |w| html(spread_text(&w)),
                );
                let mut counts = format!("{} ok", cell.ok);
                if cell.failed > 0 {
                    let infrastructure = match cell.infrastructure_failed {
                        0 => String::new(),
                        n => format!(" ({n} infrastructure)"),
                    };
                    counts.push_str(&format!(
                        ", <span class=\"failed\">{} failed{infrastructure}</span>",
                        cell.failed
                    ));
                }
                row.push(format!(
                    "<td class=\"num\">{figure}<br><small>{counts}</small></td>"
                ));
            }
            row.push(td_num(format::opt_duration(crate::results::data::sum_all(medians))));
            row
        })
        .collect();
    table(Some("time-table"), &headers, &rows)
}

fn cache_map(map: &CacheMap) -> String {
    if map.steps.is_empty() || map.columns.is_empty() {
        return "<p class=\"na\">No step records: the builder logs gave nothing to map.</p>".into();
    }
    let first_of_strategy: Vec<bool> =
        map.columns.iter().enumerate().map(|(i, c)| i == 0 || map.columns[i - 1].strategy != c.strategy).collect();
    let mut out = String::from("<div class=\"scroll\"><table id=\"cache-map\" class=\"cache-map\">");
    out.push_str(&cache_map_header(map, &first_of_strategy));
    out.push_str("<tbody>");
    let mut stage = None;
    for (step, cells) in map.steps.iter().zip(&map.cells) {
        if stage != Some(&step.stage) {
            stage = Some(&step.stage);
            out.push_str(&format!(
                "<tr class=\"stage\"><th colspan=\"{}\">stage {}</th></tr>",
                map.columns.len() + 1,
                html(&step.stage)
            ));
        }
        out.push_str(&format!(
            "<tr data-step=\"{0}\"><th class=\"step\" title=\"{1}\">{0} <code>{1}</code></th>",
            step.step,
            html(&step.instruction)
        ));
        for ((cell, column), first) in cells.iter().zip(&map.columns).zip(&first_of_strategy) {
            out.push_str(&cache_map_cell(cell, column, *first));
        }
        out.push_str("</tr>");
    }
    out.push_str("</tbody></table></div>");
    out
}

/// Two header rows: each strategy over its pipeline runs, then the runs.
fn cache_map_header(map: &CacheMap, first_of_strategy: &[bool]) -> String {
    let mut out = String::from("<thead><tr><th rowspan=\"2\">step</th>");
    let mut groups: Vec<(crate::strategy::Strategy, usize)> = vec![];
    for c in &map.columns {
        match groups.last_mut() {
            Some((name, n)) if *name == c.strategy => *n += 1,
            _ => groups.push((c.strategy, 1)),
        }
    }
    for (name, n) in &groups {
        out.push_str(&format!("<th class=\"strategy\" colspan=\"{n}\">{}</th>", html(name)));
    }
    out.push_str("</tr><tr>");
    for (c, first) in map.columns.iter().zip(first_of_strategy) {
        let class = if *first { " class=\"first-of-strategy\"" } else { "" };
        out.push_str(&format!("<th{class}>{}</th>", html(&c.pipeline_run)));
    }
    out.push_str("</tr></thead>");
    out
}

/// One step of one strategy and pipeline run: the majority state, the median time, a mark per iteration.
fn cache_map_cell(cell: &super::cache_map::Cell, column: &super::cache_map::Column, first: bool) -> String {
    let state = cell.majority;
    let duration = format::opt_duration(cell.median_ms);
    let mut marks = String::new();
    for m in &cell.marks {
        let d = m.duration_ms.map_or(MISSING.to_string(), |d| format::duration(d as f64));
        marks.push_str(&format!(
            "<span class=\"job {}\" data-iteration=\"{}\" title=\"iteration {}: {}, {}\"></span>",
            m.state.class(),
            m.iteration,
            m.iteration,
            m.state.label(),
            html(&d)
        ));
    }
    let edge = if first { " first-of-strategy" } else { "" };
    format!(
        "<td class=\"cell {}{edge}\" data-strategy=\"{}\" data-pipeline-run=\"{}\" title=\"{} / {}: {} (majority of {} iterations), median {}\"><span class=\"state\">{}</span><span class=\"dur\">{}</span><span class=\"jobs\">{marks}</span></td>",
        state.class(),
        html(column.strategy),
        html(&column.pipeline_run),
        html(column.strategy),
        html(&column.pipeline_run),
        state.label(),
        cell.marks.len(),
        html(&duration),
        state.short(),
        html(&duration),
    )
}

/// Per strategy, how many cache-map cells missed for each cause, and what would turn them into hits where
/// the cause says so.
fn miss_advice(map: &CacheMap) -> String {
    let mut items = vec![];
    for strategy in map.columns.iter().map(|c| c.strategy).collect::<std::collections::BTreeSet<_>>().into_iter() {
        let causes = map.causes_of(strategy);
        if causes.is_empty() {
            continue;
        }
        let counts: Vec<String> = causes.iter().map(|(cause, n)| format!("{n} {}", html(cause.label()))).collect();
        let advice: Vec<String> = causes.iter().filter_map(|(cause, _)| cause.advice(strategy.keeps_cache())).map(html).collect();
        let advice = match advice.is_empty() {
            true => String::new(),
            false => format!(" What would make them hits: {}.", advice.join("; ")),
        };
        items.push(format!("<li data-strategy=\"{}\">{}: {}.{advice}</li>", html(strategy), strategy_html(strategy), counts.join(", ")));
    }
    match items.is_empty() {
        true => String::new(),
        false => format!("<h3>Why steps missed, per strategy</h3><p>Cells of the map by cause (majority over iterations).</p><ul id=\"miss-advice\">{}</ul>", items.concat()),
    }
}

/// jobs.csv's `notes`: why a figure of a job is empty although it went through. Each note once, with the jobs
/// it holds for (`shared-dind · cold · #1`, `lane 2/4` where lanes ran), so a note every job shares takes one
/// line.
fn job_notes(data: &RunData) -> String {
    let mut by_note: Vec<(&str, Vec<String>)> = vec![];
    for job in &data.jobs {
        let Some(notes) = job.notes.as_deref() else { continue };
        let lane = job.lane();
        let which = match lane.is_shared() {
            false => format!("{} · {} · #{}", job.strategy, job.pipeline_run, job.iteration),
            true => format!("{} · {} · #{} · {lane}", job.strategy, job.pipeline_run, job.iteration),
        };
        for note in notes.split("; ").map(str::trim).filter(|n| !n.is_empty()) {
            match by_note.iter_mut().find(|(n, _)| *n == note) {
                Some((_, jobs)) => jobs.push(which.clone()),
                None => by_note.push((note, vec![which.clone()])),
            }
        }
    }
    if by_note.is_empty() {
        return String::new();
    }
    let items: Vec<String> = by_note
        .iter()
        .map(|(note, jobs)| {
            let count = if jobs.len() == 1 { "1 job".to_string() } else { format!("{} jobs", jobs.len()) };
            format!("<li><span class=\"note\">{}</span> <span class=\"jobs\">({count}: {})</span></li>", html(note), html(jobs.join(", ")))
        })
        .collect();
    format!(
        "<h3>Notes on jobs</h3><p>Why a figure of a job that went through is empty (jobs.csv's <code>notes</code>), each note \
         with the jobs it holds for (strategy · pipeline run · iteration).</p><ul id=\"job-notes\">{}</ul>",
        items.concat()
    )
}

fn phases_table(data: &RunData) -> String {
    let rows: Vec<Vec<String>> = data
        .strategies()
        .iter()
        .map(|&s| {
            let phases = PHASES.map(|p| data.pipeline_total(s, |j| phase_ms(j, p)));
            let wall = data.pipeline_total(s, |j| Some(j.wall_ms));
            let outside = data.pipeline_total(s, outside_phases_ms);
            let mut row = vec![format!("<td>{}</td>", strategy_html(s))];
            row.extend(phases.iter().map(|p| td_num(format::opt_duration(*p))));
            row.push(td_num(format::opt_duration(outside)));
            row.push(td_num(format::opt_duration(wall)));
            row
        })
        .collect();
    // The headers and the cells come from the same list of phases.
    let mut headers = vec!["strategy"];
    headers.extend(PHASES.iter().map(|p| p.name()));
    headers.extend(["not in a phase", "pipeline total"]);
    table(Some("phases-table"), &headers, &rows)
}

/// A job's wall time not covered by the phases it recorded; `None` when it recorded none.
fn outside_phases_ms(job: &crate::results::JobRecord) -> Option<u64> {
    let phases: Vec<u64> = PHASES.iter().filter_map(|p| phase_ms(job, *p)).collect();
    (!phases.is_empty()).then(|| job.wall_ms.saturating_sub(phases.iter().sum()))
}

/// One key per cache-map state, in the cells' own colours.
fn cache_map_legend() -> String {
    StepState::ALL
        .iter()
        .map(|s| format!("<span class=\"key {}\">{}</span>", s.class(), html(s.label())))
        .collect()
}

fn services(data: &RunData) -> String {
    let startups = data.service_startups();
    if startups.is_empty() {
        return "<p>No strategy started a long-lived service.</p>".into();
    }
    let rows: Vec<Vec<String>> = startups
        .iter()
        .map(|(strategy, service, s)| {
            vec![
                format!("<td>{}</td>", strategy_html(strategy)),
                td(service),
                td_num(spread_text(s)),
                td_num(s.n.to_string()),
            ]
        })
        .collect();
    format!(
        "<h3>Long-lived services</h3><p>Started once per iteration and used by every job of the \
         strategy; their start-up is not part of any job's wall time.</p>{}",
        table(
            Some("services-table"),
            &["strategy", "service", "start-up", "iterations"],
            &rows
        )
    )
}

fn cost_tables(data: &RunData, verdict: &Verdict) -> String {
    let standings: Vec<&Standing> = data
        .strategies()
        .iter()
        .filter_map(|s| {
            verdict
                .ranked
                .iter()
                .chain(&verdict.unranked)
                .find(|x| x.strategy == *s)
        })
        .collect();
    let rows: Vec<Vec<String>> = standings
        .iter()
        .map(|s| {
            vec![
                format!("<td>{}</td>", strategy_html(s.strategy)),
                td_num(format::opt_bytes(s.bytes_pushed)),
                td_num(format::opt_bytes(s.bytes_pulled)),
                td_num(format::opt_bytes(s.registry_bytes)),
                td_num(format::opt_bytes(s.daemon_volume_bytes)),
            ]
        })
        .collect();
    let mut out = table(
        Some("cost-table"),
        &[
            "strategy",
            "pushed",
            "pulled",
            "registry storage",
            "daemon volume",
        ],
        &rows,
    );
    let pipeline = data.pipeline();
    let mut headers = vec!["strategy"];
    headers.extend(pipeline.iter().map(|r| r.as_str()));
    let rows: Vec<Vec<String>> = data
        .strategies()
        .iter()
        .map(|&s| {
            let mut row = vec![format!("<td>{}</td>", strategy_html(s))];
            for run in &pipeline {
                let pushed = data.job_median(s, run.as_str(), |j| j.bytes_pushed);
                let pulled = data.job_median(s, run.as_str(), |j| j.bytes_pulled);
                let stored = crate::results::data::Spread::of(
                    data.cache
                        .iter()
                        .filter(|c| c.strategy == s && c.pipeline_run == *run)
                        .filter_map(|c| c.registry_bytes.map(|b| b as f64)),
                )
                .map(|sp| sp.median);
                row.push(format!(
                    "<td class=\"num\">↑ {}<br>↓ {}<br>stored {}</td>",
                    html(format::opt_bytes(pushed)),
                    html(format::opt_bytes(pulled)),
                    html(format::opt_bytes(stored))
                ));
            }
            row
        })
        .collect();
    out.push_str("<h3>Per pipeline run</h3><p>↑ pushed and ↓ pulled per job (median over successful jobs); stored: registry storage after that run (median across iterations).</p>");
    out.push_str(&table(Some("cost-per-run"), &headers, &rows));
    out
}

fn environment(data: &RunData) -> String {
    let mut out = nodes_table(data);
    out.push_str(&image_sources(&data.info.images));
    out.push_str(&images_table(&data.info.images));
    out.push_str(&bases_table(&data.info.bases));
    out.push_str(&facts_table(data));
    out
}

/// Where the jobs ran, per strategy, when they ran on more than one node (a multi-node cluster): the node of
/// the job's build (its daemon's, for a strategy with a daemon), as `jobs.csv`'s `node` column has it.
fn nodes_table(data: &RunData) -> String {
    let nodes: std::collections::BTreeSet<&str> = data.jobs.iter().filter_map(|j| j.node.as_deref()).collect();
    if nodes.len() < 2 {
        return String::new();
    }
    let mut headers = vec!["strategy"];
    headers.extend(nodes.iter().copied());
    headers.push("unknown");
    let rows: Vec<Vec<String>> = data
        .strategies()
        .iter()
        .map(|&s| {
            let jobs: Vec<&crate::results::JobRecord> = data.jobs.iter().filter(|j| j.strategy == s).collect();
            let mut row = vec![format!("<td>{}</td>", strategy_html(s))];
            row.extend(nodes.iter().map(|n| td_num(jobs.iter().filter(|j| j.node.as_deref() == Some(*n)).count().to_string())));
            row.push(td_num(jobs.iter().filter(|j| j.node.is_none()).count().to_string()));
            row
        })
        .collect();
    format!(
        "<h3>Where the jobs ran</h3><p>The jobs ran on {} nodes: jobs per strategy and node, the node being where \
         the job's build ran (its daemon's node, for a strategy with a daemon). A node's load and disk shape the \
         times of the jobs on it.</p>{}",
        nodes.len(),
        table(Some("nodes"), &headers, &rows)
    )
}

/// The base images the scenario's Dockerfiles start `FROM`, as the run served them (`run.json` `bases`).
fn bases_table(bases: &[crate::results::BaseImageInfo]) -> String {
    use crate::results::{BaseServing, BaseSource, DigestKind};
    if bases.is_empty() {
        return "<p id=\"bases\">run.json lists no base images (results written before they were recorded).</p>".into();
    }
    let code = |text: &str| format!("<td><code>{}</code></td>", html(text));
    let rows: Vec<Vec<String>> = bases
        .iter()
        .map(|b| {
            let name = match &b.written {
                Some(written) => format!("<td><code>{}</code> (<code>{}</code>)</td>", html(&b.name), html(written)),
                None => code(&b.name),
            };
            let source = match b.source {
                BaseSource::Pulled => "pulled",
                BaseSource::LocalImage => "local image",
                BaseSource::LocalStandIn => "local stand-in (built from Debian packages)",
            };
            let digest = match (&b.digest, b.digest_kind) {
                (Some(d), Some(DigestKind::RegistryManifest)) => format!("<td><code>{}</code> (registry manifest)</td>", html(d)),
                (Some(d), _) => format!("<td><code>{}</code> (local image ID)</td>", html(d)),
                (None, _) => td(MISSING),
            };
            let served = match b.served {
                BaseServing::HubMirror => "run's mirror, as Docker Hub's mirror",
                BaseServing::RunMirror => "run's mirror, named in the FROM",
                BaseServing::Source => "its own registry",
            };
            vec![name, code(&b.resolved), td(source), digest, td(served)]
        })
        .collect();
    let intro = "<h3>Base images</h3><p>Every image the scenario's Dockerfiles start <code>FROM</code> (global \
                 <code>ARG</code> defaults substituted; as written in parentheses), the local image the run served \
                 under that name, and how every builder got it.</p>";
    format!("{intro}{}", table(Some("bases"), &["base image", "served image", "source", "digest", "builders got it from"], &rows))
}

/// One sentence on whether the toolchain images were the official ones.
fn image_sources(images: &[crate::results::ImageInfo]) -> String {
    let stand_ins: Vec<&crate::results::ImageInfo> = images.iter().filter(|i| i.source == ImageSource::LocalStandIn).collect();
    let sentence = if images.is_empty() {
        "run.json lists no toolchain images, so whether they were official is not known.".to_string()
    } else if stand_ins.is_empty() {
        "All toolchain images were the official ones.".to_string()
    } else {
        let names: Vec<String> = stand_ins.iter().map(|i| format!("{} ({})", html(&i.role), html(&i.name))).collect();
        format!(
            "{} of {} toolchain images were local stand-ins built by layerbench from Debian \
             packages (and Go modules, where the table says so), because the official images could \
             not be pulled: {}. Times with the official images may differ.",
            stand_ins.len(),
            images.len(),
            names.join(", ")
        )
    };
    format!("<p id=\"image-sources\"><b>{sentence}</b></p>")
}

fn images_table(images: &[crate::results::ImageInfo]) -> String {
    let rows: Vec<Vec<String>> = images
        .iter()
        .map(|i| {
            let source = match (i.source, &i.built_from) {
                (ImageSource::Official, _) => "official".to_string(),
                (ImageSource::LocalStandIn, None) => "local stand-in (built from Debian packages)".to_string(),
                (ImageSource::LocalStandIn, Some(go)) => {
                    format!("local stand-in (built from Debian packages, its programs from the Go module {go})")
                }
            };
            vec![
                td(&i.role),
                format!("<td><code>{}</code></td>", html(&i.name)),
                td(&source),
                format!("<td><code>{}</code></td>", html(i.id.as_deref().unwrap_or(MISSING))),
            ]
        })
        .collect();
    table(Some("images"), &["role", "image", "source", "id"], &rows)
}

/// What run.json says about the run, the host and the builders.
fn facts_table(data: &RunData) -> String {
    let info = &data.info;
    let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| MISSING.to_string());
    let builders = match info.builder_versions.is_empty() {
        true => MISSING.to_string(),
        false => info.builder_versions.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", "),
    };
    let memory = info.host.memory_bytes.map(|b| format::bytes(b as f64)).unwrap_or_else(|| MISSING.into());
    let cpus = info.host.cpus.map(|n| n.to_string()).unwrap_or_else(|| MISSING.into());
    let facts = [
        ("run id", info.run_id.clone()),
        ("scenario", format!("{} ({})", info.scenario, info.scenario_path)),
        ("scenario hash (sha256)", info.scenario_hash.clone()),
        ("backend", info.backend.to_string()),
        ("strategies", join(&info.strategies, ", ")),
        ("pipeline", join(&info.pipeline, " → ")),
        ("iterations", info.iterations.to_string()),
        ("jobs recorded", data.jobs.len().to_string()),
        ("layerbench version", info.layerbench_version.clone()),
        ("git commit", opt(&info.git_commit)),
        ("engine version", opt(&info.engine_version)),
        ("builder versions", builders),
        ("host", format!("{cpus} CPUs, {memory} memory, {}", info.host.os)),
        ("started", info.started_at.clone()),
        ("ended", opt(&info.ended_at)),
        ("interrupted", if info.interrupted { "yes".into() } else { "no".into() }),
    ];
    let rows: Vec<Vec<String>> = facts.iter().map(|(k, v)| vec![format!("<th>{}</th>", html(k)), td(v)]).collect();
    table(Some("environment-table"), &[], &rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_placeholder_of_the_template_is_filled() {
        let keys = [
            "scenario",
            "run_id",
            "backend",
            "iterations",
            "pipeline",
            "warnings",
            "verdict",
            "workload",
            "time_chart",
            "time_table",
            "load",
            "cache_map",
            "cache_map_legend",
            "miss_advice",
            "phases_chart",
            "phases_table",
            "services",
            "job_notes",
            "cost_chart",
            "cost_table",
            "environment",
            "version",
            "chart_files",
        ];
        let values: Vec<(&str, String)> = keys.iter().map(|k| (*k, "x".to_string())).collect();
        let page = fill(TEMPLATE, &values).unwrap();
        assert!(!page.contains("{{"));
        assert!(
            fill(TEMPLATE, &values[1..]).is_err(),
            "a missing value is an error"
        );
    }

    /// Each strategy's line says what would turn its misses into hits, where the cause says so; a strategy that
    /// keeps a cache is not told to keep one for its cold job.
    #[test]
    fn the_advice_names_what_would_make_a_strategys_misses_hits() {
        use super::super::cache_map::{Cell, Column, StepState};
        use crate::cause::Cause;
        let cell = |state| Cell { marks: vec![], majority: state, median_ms: None };
        let columns = [("registry-final", "no-change"), ("daemonless-kaniko", "no-change"), ("shared-dind", "no-change"), ("shared-dind", "cold"), ("ephemeral-dind", "no-change")]
            .map(|(s, run)| Column { strategy: crate::strategy::Strategy::named(s), pipeline_run: run.into() });
        let map = CacheMap {
            steps: vec![],
            columns: columns.to_vec(),
            cells: vec![vec![
                cell(StepState::Miss(Some(Cause::StageNotPushed))),
                cell(StepState::Miss(Some(Cause::CopyNotCached))),
                cell(StepState::Miss(Some(Cause::AfterMiss))),
                cell(StepState::Miss(Some(Cause::NoCache))),
                cell(StepState::Miss(Some(Cause::NoCache))),
            ]],
        };
        let advice = miss_advice(&map);
        let line = |strategy: &str| {
            let start = advice.find(&format!("<li data-strategy=\"{strategy}\">")).unwrap_or_else(|| panic!("{strategy}: {advice}"));
            advice[start..start + advice[start..].find("</li>").unwrap()].to_string()
        };
        assert!(line("registry-final").contains("What would make them hits: push the builder stage too: registry-multistage."), "{advice}");
        assert!(line("daemonless-kaniko").contains("What would make them hits: kaniko `--cache-copy-layers`."), "{advice}");
        assert!(!line("shared-dind").contains("What would make them hits"), "after a miss has no advice of its own, nor a cold job of a strategy that keeps a cache: {advice}");
        assert!(line("ephemeral-dind").contains("What would make them hits: keep a cache between jobs"), "{advice}");
    }
}
