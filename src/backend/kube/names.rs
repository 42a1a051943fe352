//! Kubernetes naming rules: every name and label value layerbench derives is made valid here.

use sha2::{Digest, Sha256};

/// DNS-1123 labels (namespaces, Services, and by convention everything else) and label values.
pub const MAX_NAME_LEN: usize = 63;

/// A valid DNS-1123 label made from `raw`: lowercase `[a-z0-9-]`, starting and ending
/// alphanumeric, at most 63 characters. Names cut short end in a hash of `raw`, so two long
/// names that share a prefix still differ.
pub fn dns_label(raw: &str) -> String {
    let mut name = String::with_capacity(raw.len());
    for c in raw.chars() {
        let c = c.to_ascii_lowercase();
        let c = if c.is_ascii_lowercase() || c.is_ascii_digit() { c } else { '-' };
        if !(c == '-' && (name.is_empty() || name.ends_with('-'))) {
            name.push(c);
        }
    }
    let name = name.trim_end_matches('-');
    let name = if name.is_empty() { "x" } else { name };
    shorten(name, raw, |c| c == '-')
}

/// A valid label value made from `raw`: `[A-Za-z0-9._-]`, alphanumeric at both ends, at most
/// 63 characters. An empty `raw` stays empty, which Kubernetes allows.
pub fn label_value(raw: &str) -> String {
    let mapped: String = raw
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') { c } else { '-' })
        .collect();
    let trimmed = mapped.trim_matches(|c: char| !c.is_ascii_alphanumeric());
    if trimmed.is_empty() {
        return String::new();
    }
    shorten(trimmed, raw, |c| !c.is_ascii_alphanumeric())
}

/// Cuts `name` to fit 63 characters with `-` and 8 hex digits of sha256(`raw`) at the end.
fn shorten(name: &str, raw: &str, is_separator: impl Fn(char) -> bool) -> String {
    if name.len() <= MAX_NAME_LEN {
        return name.to_string();
    }
    let hash = Sha256::digest(raw.as_bytes());
    let suffix: String = hash[..4].iter().map(|b| format!("{b:02x}")).collect();
    // Every character is ASCII by now, so byte slicing is char slicing.
    let head = name[..MAX_NAME_LEN - suffix.len() - 1].trim_end_matches(is_separator);
    format!("{head}-{suffix}")
}

/// True when `name` is a DNS-1123 label.
pub fn is_dns_label(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

/// True when `value` is a valid label value.
pub fn is_label_value(value: &str) -> bool {
    value.is_empty()
        || (value.len() <= MAX_NAME_LEN
            && value.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
            && value.starts_with(|c: char| c.is_ascii_alphanumeric())
            && value.ends_with(|c: char| c.is_ascii_alphanumeric()))
}

/// The run's namespace when the user names none: `layerbench-<run id>`. Run ids start with
/// their time and end with the scenario name, so a long one is cut at the end and keeps a hash.
pub fn run_namespace(run_id: &str) -> String {
    dns_label(&format!("layerbench-{run_id}"))
}

/// Name of one job's pod (and the prefix of its context ConfigMaps). Unique within a run by
/// construction: level and lane, iteration and pipeline position, not the user's pipeline-run name.
pub fn job_name(lane: crate::lanes::Lane, iteration: u32, pipeline_index: u32, strategy: &str) -> String {
    dns_label(&format!("job-n{}l{}-i{iteration}-p{pipeline_index}-{strategy}", lane.level, lane.lane))
}

/// Name of the `index`th ConfigMap that carries part of a job's build context.
pub fn context_part_name(job: &str, index: usize) -> String {
    with_suffix(job, &format!("-ctx-{index}"))
}

/// Name of a job's own daemon pod (and of the NetworkPolicy that lets only the job reach it).
pub fn job_daemon_name(job: &str, service: &str) -> String {
    with_suffix(job, &format!("-{service}"))
}

/// `name` and `suffix`, `name` cut so that the suffix is never the part that gets cut.
fn with_suffix(name: &str, suffix: &str) -> String {
    let name = &name[..name.len().min(MAX_NAME_LEN - suffix.len())];
    format!("{}{suffix}", name.trim_end_matches('-'))
}

/// Name of a strategy's shared daemon (its Deployment and Service: jobs address it by this name), so that
/// no two strategies ever share one.
pub fn shared_daemon_name(strategy: crate::strategy::Strategy) -> String {
    dns_label(strategy.name())
}

/// Name of the ConfigMap holding a strategy's daemon configuration file.
pub fn daemon_config_name(strategy: crate::strategy::Strategy) -> String {
    dns_label(&format!("{}-daemon-config", strategy.name()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const LONG: &str = "A Very_Long scenario name: with spaces, UPPER case, dots.and/slashes \
                        that goes well past sixty-three characters of DNS label";

    #[test]
    fn dns_labels_are_valid_for_any_input() {
        for raw in [LONG, "flask-app", "Flask App", "--x--", "", "ü-ñ", "a.b_c", &"z".repeat(200)] {
            let name = dns_label(raw);
            assert!(is_dns_label(&name), "{raw:?} gave invalid {name:?}");
        }
        assert_eq!(dns_label("Flask App"), "flask-app");
        assert_eq!(dns_label("flask-app"), "flask-app");
    }

    #[test]
    fn long_names_keep_a_hash_so_they_stay_distinct() {
        let a = dns_label(&format!("{LONG} one"));
        let b = dns_label(&format!("{LONG} two"));
        assert!(a.len() <= MAX_NAME_LEN && a.len() > 50, "{a}");
        assert_ne!(a, b);
        assert!(a.starts_with("a-very-long-scenario-name"));
    }

    #[test]
    fn label_values_are_valid_for_any_input() {
        for raw in [LONG, "20261127-185125-ab12", "_x_", "a/b", "", "run 1"] {
            let value = label_value(raw);
            assert!(is_label_value(&value), "{raw:?} gave invalid {value:?}");
        }
        assert_eq!(label_value("20261127-185125-ab12"), "20261127-185125-ab12");
        assert_eq!(label_value("Edit_App.py"), "Edit_App.py");
        assert!(label_value(LONG).len() <= MAX_NAME_LEN);
    }

    #[test]
    fn run_namespaces_from_long_scenario_names_are_valid_and_distinct() {
        // Run ids are `<UTC time>-<scenario name>` (runner::new_run_id).
        let a = run_namespace(&format!("20261127T190501Z-{LONG}"));
        let b = run_namespace(&format!("20261127T190502Z-{LONG}"));
        assert!(is_dns_label(&a), "{a}");
        assert!(a.starts_with("layerbench-20261127t190501z-a-very-long"), "{a}");
        assert_ne!(a, b);
        assert_eq!(run_namespace("20261127T190501Z-flask"), "layerbench-20261127t190501z-flask");
    }

    #[test]
    fn job_and_context_names_are_valid_and_distinct() {
        let job = job_name(crate::lanes::Lane { level: 4, lane: 2 }, 12, 345, "registry-multistage");
        assert_eq!(job, "job-n4l2-i12-p345-registry-multistage");
        let long_job = job_name(crate::lanes::Lane { level: 16, lane: 16 }, u32::MAX, u32::MAX, LONG);
        assert!(is_dns_label(&long_job));
        for i in [0, 1, 15] {
            let part = context_part_name(&long_job, i);
            assert!(is_dns_label(&part), "{part}");
            assert!(part.ends_with(&format!("-ctx-{i}")));
        }
        assert_ne!(context_part_name(&long_job, 1), context_part_name(&long_job, 11));
        let daemon = job_daemon_name(&long_job, "buildkitd");
        assert!(is_dns_label(&daemon) && daemon.ends_with("-buildkitd"), "{daemon}");
        let names: Vec<String> = crate::strategy::Strategy::all().map(shared_daemon_name).collect();
        assert!(names.iter().all(|n| is_dns_label(n)), "{names:?}");
        assert_eq!(names.iter().collect::<std::collections::BTreeSet<_>>().len(), names.len(), "one daemon per strategy");
        assert!(crate::strategy::Strategy::all().map(daemon_config_name).all(|n| is_dns_label(&n)));
    }
}
