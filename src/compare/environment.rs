//! How the two runs' machines and toolchains differ: what can move times with no change to the code.

use crate::results::data::Spread;
use crate::results::{ImageSource, JobRecord, RunInfo};

/// Difference in load per CPU that counts as another environment.
///
/// The benchmark's own builds load the cores on both sides alike, so a difference, not a level,
/// is what matters. With half a runnable task more per CPU, a CPU-bound step shares its core with
/// other work and can take up to half as long again: more than the thresholds a gate is run with.
/// Smaller differences are left unsaid, so that the note is read when it does appear.
pub const LOAD_PER_CPU_DIFFERENCE: f64 = 0.5;

/// One way the runs' environments differ.
#[derive(Debug, Clone, PartialEq)]
pub struct Difference {
    /// What differs, short enough to list next to a verdict ("host CPUs", "dind image").
    pub what: String,
    pub baseline: String,
    pub candidate: String,
}

impl Difference {
    fn new(what: impl Into<String>, baseline: String, candidate: String) -> Difference {
        Difference {
            what: what.into(),
            baseline,
            candidate,
        }
    }

    /// "host CPUs: 2 → 8".
    pub fn text(&self) -> String {
        format!("{}: {} → {}", self.what, self.baseline, self.candidate)
    }

    pub fn is_load(&self) -> bool {
        self.what == LOAD
    }
}

const LOAD: &str = "load per CPU";
const UNKNOWN: &str = "not recorded";

fn or_unknown(value: Option<&str>) -> String {
    value.unwrap_or(UNKNOWN).to_string()
}

fn source_name(source: ImageSource) -> &'static str {
    match source {
        ImageSource::Official => "official",
        ImageSource::LocalStandIn => "local stand-in",
    }
}

/// Differences in what run.json records about the host and the toolchain.
pub fn differences(b: &RunInfo, c: &RunInfo) -> Vec<Difference> {
    let mut out = vec![];
    let mut differ = |what: &str, base: String, cand: String| {
        if base != cand {
            out.push(Difference::new(what, base, cand));
        }
    };
    differ("backend", b.backend.to_string(), c.backend.to_string());
    differ(
        "host CPUs",
        b.host.cpus.map_or(UNKNOWN.into(), |n| n.to_string()),
        c.host.cpus.map_or(UNKNOWN.into(), |n| n.to_string()),
    );
    let memory =
        |m: Option<u64>| m.map_or(UNKNOWN.into(), |m| crate::report::format::bytes(m as f64));
    differ(
        "host memory",
        memory(b.host.memory_bytes),
        memory(c.host.memory_bytes),
    );
    differ("host OS", b.host.os.clone(), c.host.os.clone());
    differ(
        "engine version",
        or_unknown(b.engine_version.as_deref()),
        or_unknown(c.engine_version.as_deref()),
    );
    let builders: std::collections::BTreeSet<&String> = b
        .builder_versions
        .keys()
        .chain(c.builder_versions.keys())
        .collect();
    for builder in builders {
        differ(
            &format!("{builder} version"),
            or_unknown(b.builder_versions.get(builder).map(String::as_str)),
            or_unknown(c.builder_versions.get(builder).map(String::as_str)),
        );
    }
    let mut roles: Vec<&String> = b.images.iter().map(|i| &i.role).collect();
    for image in &c.images {
        if !roles.contains(&&image.role) {
            roles.push(&image.role);
        }
    }
    // Names and sources only: image ids differ whenever a stand-in is built on another machine,
    // and a note on every comparison would be read as none.
    let image = |info: &RunInfo, role: &str| {
        info.images
            .iter()
            .find(|i| i.role == role)
            .map_or(UNKNOWN.to_string(), |i| {
                format!("{} ({})", i.name, source_name(i.source))
            })
    };
    for role in roles {
        differ(&format!("{role} image"), image(b, role), image(c, role));
    }
    // A base image by the name the Dockerfile uses: where it came from, and its registry digest when it came
    // from a registry (a local image's ID differs from machine to machine, as a stand-in's does). Results
    // written before bases were recorded say nothing, so they differ in nothing.
    if !b.bases.is_empty() && !c.bases.is_empty() {
        let mut names: Vec<&String> = b.bases.iter().map(|x| &x.name).collect();
        names.extend(c.bases.iter().map(|x| &x.name).filter(|n| !b.bases.iter().any(|x| &x.name == *n)));
        let base = |info: &RunInfo, name: &str| {
            info.bases.iter().find(|x| x.name == name).map_or("none".to_string(), |x| {
                let source = serde_json::to_value(x.source).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default();
                match (&x.digest, x.digest_kind) {
                    (Some(digest), Some(crate::results::DigestKind::RegistryManifest)) => format!("{source} {digest}"),
                    _ => source,
                }
            })
        };
        for name in names {
            differ(&format!("base image {name}"), base(b, name), base(c, name));
        }
    }
    out
}

/// Median 1-minute load average of `jobs` divided by the host's CPUs; `None` when no job recorded
/// it or the CPUs could not be counted.
pub fn load_per_cpu<'a>(jobs: impl IntoIterator<Item = &'a JobRecord>, cpus: Option<u32>) -> Option<f64> {
    let cpus = cpus.filter(|n| *n > 0)?;
    Spread::of(jobs.into_iter().filter_map(|j| j.host_load_1m)).map(|s| s.median / f64::from(cpus))
}

/// A difference when the loads per CPU are [`LOAD_PER_CPU_DIFFERENCE`] or more apart; a side
/// that recorded no load is not a difference, since nothing says it was busy.
pub fn load_difference(baseline: Option<f64>, candidate: Option<f64>) -> Option<Difference> {
    let (b, c) = (baseline?, candidate?);
    ((c - b).abs() >= LOAD_PER_CPU_DIFFERENCE)
        .then(|| Difference::new(LOAD, format!("{b:.2}"), format!("{c:.2}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_base_from_another_registry_digest_or_source_differs_and_a_local_image_id_does_not() {
        let info: RunInfo = serde_json::from_str(include_str!("../../tests/fixtures/results/synthetic-flask/run.json")).unwrap();
        let mut other = info.clone();
        other.bases[0].digest = Some("sha256:another-machines-stand-in".into());
        assert!(differences(&info, &other).is_empty(), "a local image ID differs from machine to machine");
        other.bases[0].digest_kind = Some(crate::results::DigestKind::RegistryManifest);
        other.bases[0].source = crate::results::BaseSource::Pulled;
        let found: Vec<String> = differences(&info, &other).iter().map(Difference::text).collect();
        assert_eq!(found, ["base image python:3.11-slim: local-stand-in → pulled sha256:another-machines-stand-in"]);
        other.bases.clear();
        assert!(differences(&info, &other).is_empty(), "results without bases say nothing either way");
    }

    #[test]
    fn loads_half_a_task_per_cpu_apart_differ_in_either_direction() {
        assert_eq!(load_difference(Some(0.4), Some(0.8)), None);
        let up = load_difference(Some(0.4), Some(0.9)).unwrap();
        assert_eq!(up.text(), "load per CPU: 0.40 → 0.90");
        assert!(
            load_difference(Some(1.6), Some(0.5)).is_some(),
            "a quieter candidate too"
        );
        assert_eq!(load_difference(None, Some(3.0)), None);
    }
}
