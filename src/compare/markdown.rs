//! Markdown for `$GITHUB_STEP_SUMMARY` or a merge request comment.

use super::{
    cached_text, change_text, details_text, rule_text, side_text, summary_text, Comparison,
};

/// Keeps a cell inside its table cell: pipes and line breaks would end it.
fn cell(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('|', "\\|")
        .replace(['\n', '\r'], " ")
}

pub fn render(c: &Comparison) -> String {
    let mut out = format!(
        "## layerbench compare: {} — {}\n\n",
        cell(&c.scenario),
        if c.regressed() {
            "❌ regression"
        } else {
            "✅ no regression"
        }
    );
    out.push_str(&format!(
        "Baseline `{}` against candidate `{}`: {}.\n\n",
        cell(&c.baseline_run),
        cell(&c.candidate_run),
        summary_text(c)
    ));
    for note in &c.notes {
        out.push_str(&format!("> **Note:** {}\n\n", cell(note)));
    }
    if !c.environment.is_empty() {
        let list: Vec<String> = c.environment.iter().map(|d| cell(&d.text())).collect();
        out.push_str(&format!(
            "> **Environment differs between the runs; times may differ because of it:** {}\n\n",
            list.join("; ")
        ));
    }
    out.push_str("| strategy | pipeline run | baseline | candidate | change | time | cached steps | verdict |\n");
    out.push_str("|---|---|---:|---:|---:|---|---|---|\n");
    for r in &c.rows {
        let mut verdict = match r.verdict() {
            "regressed" => "❌ **regressed**".to_string(),
            "improved" => "✅ improved".to_string(),
            other => other.to_string(),
        };
        if let Some(env) = r.environment_text() {
            verdict.push_str(&format!(" ({})", cell(&env)));
        }
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} |\n",
            cell(r.strategy.name()),
            cell(&r.run_label()),
            cell(&side_text(&r.baseline)),
            cell(&side_text(&r.candidate)),
            cell(&change_text(r)),
            cell(&r.time.label()),
            cell(&cached_text(r)),
            verdict
        ));
    }
    let changes: Vec<String> = c
        .rows
        .iter()
        .flat_map(|r| {
            details_text(r).into_iter().map(move |t| {
                format!(
                    "- **{} / {}**: {}",
                    cell(r.strategy.name()),
                    cell(&r.run_label()),
                    t
                )
            })
        })
        .collect();
    if !changes.is_empty() {
        out.push_str("\n### Failures and cache changes\n\n");
        out.push_str(&changes.join("\n"));
        out.push('\n');
    }
    out.push_str(&format!(
        "\n<details><summary>How the verdict is made</summary>\n\n{}\n\n</details>\n",
        rule_text(c.threshold)
    ));
    out
}
