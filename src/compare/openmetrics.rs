//! OpenMetrics text for GitLab's metrics report (`artifacts:reports:metrics`), one sample per line.
//!
//! GitLab reads each line as `name value` after dropping `#` comments, so label values must not
//! hold `#` or spaces; strategy and pipeline-run names never do, and are escaped anyway.

use super::{Comparison, Row};

/// OpenMetrics label value escaping (backslash, double quote, newline).
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn labels(r: &Row) -> String {
    format!(
        "{{strategy=\"{}\",pipeline_run=\"{}\",concurrency=\"{}\"}}",
        escape(r.strategy.name()),
        escape(r.pipeline_run.as_str()),
        r.concurrency
    )
}

struct Family {
    name: &'static str,
    unit: Option<&'static str>,
    help: &'static str,
    value: fn(&Row) -> Option<f64>,
}

const FAMILIES: [Family; 8] = [
    Family {
        name: "layerbench_job_wall_seconds",
        unit: Some("seconds"),
        help: "Median wall time of the candidate's successful jobs.",
        value: |r| r.candidate.as_ref()?.wall_ms.map(|w| w.median / 1000.0),
    },
    Family {
        name: "layerbench_baseline_job_wall_seconds",
        unit: Some("seconds"),
        help: "Median wall time of the baseline's successful jobs.",
        value: |r| r.baseline.as_ref()?.wall_ms.map(|w| w.median / 1000.0),
    },
    Family {
        name: "layerbench_job_wall_change_ratio",
        unit: None,
        help: "(candidate - baseline) / baseline median job wall time.",
        value: |r| r.change,
    },
    Family {
        name: "layerbench_job_wall_change_low_ratio",
        unit: None,
        help: "Lower end of the 95% bootstrap interval of the change; absent when not judged.",
        value: |r| r.interval.map(|(lo, _)| lo),
    },
    Family {
        name: "layerbench_job_wall_change_high_ratio",
        unit: None,
        help: "Upper end of the 95% bootstrap interval of the change; absent when not judged.",
        value: |r| r.interval.map(|(_, hi)| hi),
    },
    Family {
        name: "layerbench_cached_steps",
        unit: None,
        help: "Steps served from cache in most of the candidate's successful jobs.",
        value: |r| {
            r.candidate
                .as_ref()
                .filter(|s| s.ok_jobs > 0)
                .map(|s| s.cached.len() as f64)
        },
    },
    Family {
        name: "layerbench_cached_steps_lost",
        unit: None,
        help: "Steps that hit the cache in the baseline and no longer do.",
        value: |r| Some(r.cache_lost.len() as f64),
    },
    Family {
        name: "layerbench_regressed",
        unit: None,
        help: "1 when compare judged this strategy and pipeline run regressed, else 0.",
        value: |r| Some(if r.regressed { 1.0 } else { 0.0 }),
    },
];

fn number(v: f64) -> String {
    // Enough digits for milliseconds; no exponent, which some readers of this format mishandle.
    let text = format!("{v:.6}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    if text == "-0" {
        "0".into()
    } else {
        text.to_string()
    }
}

pub fn render(c: &Comparison) -> String {
    let mut out = String::new();
    for family in &FAMILIES {
        out.push_str(&format!("# TYPE {} gauge\n", family.name));
        if let Some(unit) = family.unit {
            out.push_str(&format!("# UNIT {} {unit}\n", family.name));
        }
        out.push_str(&format!("# HELP {} {}\n", family.name, family.help));
        for row in &c.rows {
            // A missing figure is left out, never written as 0 or NaN.
            if let Some(v) = (family.value)(row) {
                out.push_str(&format!("{}{} {}\n", family.name, labels(row), number(v)));
            }
        }
    }
    out.push_str("# TYPE layerbench_regressions gauge\n");
    out.push_str(
        "# HELP layerbench_regressions Strategy and pipeline-run pairs judged regressed.\n",
    );
    out.push_str(&format!(
        "layerbench_regressions {}\n",
        c.count("regressed")
    ));
    out.push_str("# TYPE layerbench_environment_differences gauge\n");
    out.push_str(
        "# HELP layerbench_environment_differences Ways the runs' hosts, toolchains or load differ.\n",
    );
    out.push_str(&format!(
        "layerbench_environment_differences {}\n",
        c.environment.len()
    ));
    out.push_str("# EOF\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_have_no_exponent_and_no_trailing_zeros() {
        assert_eq!(number(12.5), "12.5");
        assert_eq!(number(3.0), "3");
        assert_eq!(number(-0.0000001), "0");
        assert_eq!(number(1e-3), "0.001");
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
