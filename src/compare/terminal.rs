//! The terminal table `compare` prints: environment differences, one line per strategy and
//! pipeline run, then failures and cache changes.

use super::{
    cached_text, change_text, details_text, rule_text, side_text, summary_text, Comparison, Row,
};

/// "REGRESSED", or "improved — environment differs: host CPUs".
fn verdict_cell(r: &Row) -> String {
    let verdict = if r.regressed {
        "REGRESSED".to_string()
    } else {
        r.verdict().to_string()
    };
    match r.environment_text() {
        Some(env) => format!("{verdict} — {env}"),
        None => verdict,
    }
}

const HEADER: [&str; 8] = ["strategy", "pipeline run", "baseline", "candidate", "change", "time", "cached steps", "verdict"];

pub fn render(c: &Comparison) -> String {
    let mut out = format!(
        "layerbench compare: scenario {}\n  baseline  {}\n  candidate {}\n\n",
        c.scenario, c.baseline_run, c.candidate_run
    );
    // Above the table: a reader deciding whether to trust a verdict needs this first.
    if !c.environment.is_empty() {
        out.push_str("Environment differs between the runs; times may differ because of it:\n");
        for d in &c.environment {
            out.push_str(&format!("  {}\n", d.text()));
        }
        out.push('\n');
    }
    out.push_str(&table(c));
    let changes: Vec<String> = c
        .rows
        .iter()
        .flat_map(|r| details_text(r).into_iter().map(move |t| format!("  {} / {}: {t}", r.strategy, r.run_label())))
        .collect();
    if !changes.is_empty() {
        out.push_str("\nFailures and cache changes:\n");
        for change in changes {
            out.push_str(&change);
            out.push('\n');
        }
    }
    for note in &c.notes {
        out.push_str(&format!("\nNote: {note}\n"));
    }
    let verdict = if c.regressed() { "REGRESSION" } else { "No regression" };
    out.push_str(&format!("\n{verdict}: {}\n", summary_text(c)));
    out.push_str(&format!("Rule: {}\n", rule_text(c.threshold)));
    out
}

/// One line per strategy and pipeline run, in columns as wide as their widest cell.
fn table(c: &Comparison) -> String {
    let rows: Vec<[String; 8]> = c
        .rows
        .iter()
        .map(|r| {
            [
                r.strategy.to_string(),
                r.run_label(),
                side_text(&r.baseline),
                side_text(&r.candidate),
                change_text(r),
                r.time.label(),
                cached_text(r),
                verdict_cell(r),
            ]
        })
        .collect();
    let mut widths = HEADER.map(|h| h.chars().count());
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &[String]| {
        let padded: Vec<String> =
            cells.iter().zip(widths).map(|(cell, w)| format!("{cell}{}", " ".repeat(w - cell.chars().count()))).collect();
        padded.join("  ").trim_end().to_string() + "\n"
    };
    let mut out = line(&HEADER.map(String::from));
    for row in &rows {
        out.push_str(&line(row));
    }
    out
}
