//! The nightly CI recipes under docs/ci/ parse as YAML and call layerbench the way its CLI accepts.

use std::path::Path;
use std::process::Command;

use serde_yaml::Value;

fn load(name: &str) -> (String, Value) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("docs/ci")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let yaml = serde_yaml::from_str(&text)
        .unwrap_or_else(|e| panic!("{} is not valid YAML: {e}", path.display()));
    (text, yaml)
}

fn get<'a>(v: &'a Value, path: &[&str]) -> &'a Value {
    path.iter().fold(v, |v, key| {
        v.get(*key)
            .unwrap_or_else(|| panic!("missing key {key} in {path:?}"))
    })
}

fn strings(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => vec![s.clone()],
        Value::Sequence(items) => items.iter().flat_map(strings).collect(),
        other => panic!("expected a string or a list of strings, found {other:?}"),
    }
}

/// Every `layerbench SUBCOMMAND ...` invocation in a script, as (subcommand, words after it).
fn invocations(script: &str) -> Vec<(String, Vec<String>)> {
    let mut out = vec![];
    for line in script.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        for (i, word) in words.iter().enumerate() {
            if word.ends_with("/layerbench") || *word == "layerbench" {
                if let Some(sub) = words.get(i + 1) {
                    out.push((
                        sub.to_string(),
                        words[i + 2..].iter().map(|w| w.to_string()).collect(),
                    ));
                }
            }
        }
    }
    out
}

fn flags(words: &[String]) -> Vec<String> {
    words
        .iter()
        .filter(|w| w.starts_with("--"))
        .map(|w| w.split('=').next().unwrap().to_string())
        .collect()
}

/// The value after `--name` in a command line.
fn flag_value(words: &[String], name: &str) -> Option<String> {
    words
        .iter()
        .position(|w| w == name)
        .and_then(|i| words.get(i + 1))
        .map(|v| v.trim_matches('"').to_string())
}

/// Checks each invocation against the real binary's `--help`, so the recipes cannot drift from the CLI.
fn assert_cli_accepts(invocations: &[(String, Vec<String>)]) {
    for (sub, words) in invocations {
        let help = Command::new(env!("CARGO_BIN_EXE_layerbench"))
            .args([sub.as_str(), "--help"])
            .output()
            .unwrap();
        assert!(
            help.status.success(),
            "`layerbench {sub} --help` failed: the recipe names a subcommand that does not exist"
        );
        let help = String::from_utf8_lossy(&help.stdout);
        for flag in flags(words) {
            assert!(
                help.contains(&format!("{flag} ")) || help.contains(&format!("{flag}\n")),
                "`layerbench {sub}` has no {flag} flag:\n{help}"
            );
        }
    }
}

fn subcommands(invocations: &[(String, Vec<String>)]) -> Vec<&str> {
    invocations.iter().map(|(s, _)| s.as_str()).collect()
}

#[test]
fn the_github_actions_recipe_runs_nightly_compares_keeps_the_report_and_fails_on_regression() {
    let (_, yaml) = load("github-actions.yml");
    let cron = strings(
        get(&yaml, &["on", "schedule"]).as_sequence().unwrap()[0]
            .get("cron")
            .unwrap(),
    );
    assert_eq!(
        cron[0].split_whitespace().count(),
        5,
        "a cron schedule: {cron:?}"
    );
    let steps = get(&yaml, &["jobs", "nightly", "steps"])
        .as_sequence()
        .unwrap();
    let run_of = |s: &Value| s.get("run").map(strings).unwrap_or_default().join("\n");
    let position = |pred: &dyn Fn(&Value) -> bool| steps.iter().position(pred);
    let script: String = steps.iter().map(run_of).collect::<Vec<_>>().join("\n");
    let calls = invocations(&script);
    assert_eq!(subcommands(&calls), ["run", "compare"]);
    assert_cli_accepts(&calls);
    let compare = &calls[1].1;
    assert_eq!(
        flag_value(compare, "--markdown").as_deref(),
        Some("$GITHUB_STEP_SUMMARY")
    );
    // The baseline is the last *successful* run's results.
    assert!(script.contains("--status success") && script.contains("--name layerbench-baseline"));

    let uses = |s: &Value, action: &str| {
        s.get("uses")
            .and_then(Value::as_str)
            .is_some_and(|u| u.starts_with(action))
    };
    let with_name = |s: &Value, name: &str| {
        s.get("with")
            .and_then(|w| w.get("name"))
            .and_then(Value::as_str)
            == Some(name)
    };
    let report =
        position(&|s| uses(s, "actions/upload-artifact") && with_name(s, "layerbench-report"))
            .expect("report artifact");
    assert_eq!(
        steps[report].get("if").and_then(Value::as_str),
        Some("always()"),
        "kept even when the run regresses"
    );
    let reports_dir = flag_value(&calls[0].1, "--reports").unwrap();
    assert!(strings(get(&steps[report], &["with", "path"]))[0].contains(&reports_dir));
    let compare_step = position(&|s| run_of(s).contains(" compare ")).unwrap();
    let keep =
        position(&|s| uses(s, "actions/upload-artifact") && with_name(s, "layerbench-baseline"))
            .expect("baseline artifact");
    assert!(
        keep > compare_step,
        "the baseline is replaced only after the comparison"
    );
    assert_eq!(
        steps[keep].get("if").and_then(Value::as_str),
        Some("success()"),
        "a regression never becomes the baseline"
    );
}

#[test]
fn the_gitlab_recipe_runs_on_schedule_compares_keeps_the_report_and_fails_on_regression() {
    let (_, yaml) = load("gitlab-ci.yml");
    let job = get(&yaml, &["layerbench-nightly"]);
    let rules: Vec<String> = job["rules"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|r| strings(&r["if"])[0].clone())
        .collect();
    assert!(
        rules
            .iter()
            .any(|r| r.contains("$CI_PIPELINE_SOURCE == \"schedule\"")),
        "{rules:?}"
    );
    let script = strings(&job["script"]);
    let calls = invocations(&script.join("\n"));
    assert_eq!(subcommands(&calls), ["run", "compare"]);
    assert_cli_accepts(&calls);
    let compare = &calls[1].1;
    let metrics = flag_value(compare, "--openmetrics").expect("compare writes the metrics report");
    assert_eq!(
        strings(get(job, &["artifacts", "reports", "metrics"])),
        std::slice::from_ref(&metrics)
    );
    let artifacts = get(job, &["artifacts"]);
    assert_eq!(
        strings(&artifacts["when"]),
        ["always"],
        "kept even when the job fails on a regression"
    );
    let paths = strings(&artifacts["paths"]);
    let reports_dir = flag_value(&calls[0].1, "--reports").unwrap();
    assert!(
        paths.iter().any(|p| p.trim_end_matches('/') == reports_dir),
        "{paths:?}"
    );
    assert!(
        paths.contains(&metrics),
        "GitLab needs the metrics file among the paths too: {paths:?}"
    );
    let compare_at = script.iter().position(|s| s.contains(" compare ")).unwrap();
    let upload_at = script
        .iter()
        .position(|s| s.contains("--upload-file"))
        .expect("the baseline is uploaded");
    assert!(
        upload_at > compare_at,
        "the baseline is replaced only after a comparison without regression"
    );
}
