//! Writes the synthetic results directories of `tests/fixtures/results/` with the real ResultsWriter.
//!
//! Every figure here is made up to exercise the report and compare; none was measured.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use layerbench::results::{
    BackendKind, CacheRecord, FailureKind, HostInfo, ImageInfo, ImageSource, JobRecord, JobStatus,
    ResultsWriter, RunInfo, ServiceRecord, StepInfo, StepRecord,
};
use layerbench::cause::Cause;
use layerbench::strategy::Strategy;

pub const FLASK_HASH: &str = "5e1f0c3a9b7d2e48c6a1f0b9d3e7c2a45b8f1d0e6c9a3b7f2d4e8c1a0b5f9e3d";
pub const OTHER_HASH: &str = "a07c3e9f1b5d8c2e4f6a0b1c3d5e7f9a2b4c6d8e0f1a3b5c7d9e1f2a4b6c8d0e";

pub const STRATEGIES: [&str; 5] = [
    "ephemeral-dind",
    "registry-final",
    "registry-multistage",
    "shared-dind",
    "daemonless",
];
pub const PIPELINE: [&str; 4] = ["cold", "no-change", "code-change", "deps-change"];

/// The sample Flask Dockerfile's 15 instructions: (stage, instruction, ms when executed).
pub const STEPS: [(&str, &str, u64); 15] = [
    ("builder", "FROM python:3.11-slim AS builder", 300),
    ("builder", "RUN apt-get update && apt-get install -y --no-install-recommends make gcc && pip install --upgrade pip", 21_000),
    ("builder", "ENV VENV=/venv", 150),
    ("builder", "ENV PATH=$VENV/bin:$PATH", 150),
    ("builder", "COPY requirements.txt .", 300),
    ("builder", "RUN python -m venv $VENV && pip install -r requirements.txt", 12_500),
    ("1", "FROM python:3.11-slim", 200),
    ("1", "ENV VENV=/venv", 150),
    ("1", "ENV PATH=$VENV/bin:$PATH", 150),
    ("1", "COPY --from=builder $VENV $VENV", 1_800),
    ("1", "WORKDIR /app", 200),
    ("1", "COPY app .", 300),
    ("1", "EXPOSE 5000", 150),
    ("1", "ENV FLASK_APP=hello.py", 150),
    ("1", "CMD flask run --host=0.0.0.0", 150),
];
const CACHED_STEP_MS: u64 = 60;

/// What to vary from the baseline synthetic run.
#[derive(Debug, Clone)]
pub struct Spec {
    pub name: &'static str,
    pub scenario: &'static str,
    pub scenario_hash: &'static str,
    pub iterations: u32,
    pub pipeline: Vec<&'static str>,
    pub strategies: Vec<&'static str>,
    /// Every figure of this strategy's jobs multiplied by the factor.
    pub slower: Option<(&'static str, f64)>,
    /// Every job of this strategy fails while starting.
    pub all_failed: Option<&'static str>,
    pub all_failed_kind: FailureKind,
    /// (strategy, pipeline run, step): that step stops hitting the cache in every iteration.
    pub cache_lost: Option<(&'static str, &'static str, u32)>,
    /// daemonless fails in iteration 2 of deps-change, at step 6.
    pub one_failure: bool,
    pub one_failure_kind: FailureKind,
    pub official_images: bool,
    /// Every figure of a job multiplied by a factor drawn uniformly from [1 - noise, 1 + noise],
    /// drawn afresh for each results directory name: iterations with a known spread.
    pub noise: f64,
    /// Recorded on every job.
    pub host_load_1m: Option<f64>,
    pub host_cpus: u32,
    /// (strategy, notes): jobs.csv's `notes` on every job of that strategy.
    pub notes: Option<(&'static str, &'static str)>,
}

impl Spec {
    pub fn flask(name: &'static str) -> Spec {
        Spec {
            name,
            scenario: "flask",
            scenario_hash: FLASK_HASH,
            iterations: 3,
            pipeline: PIPELINE.to_vec(),
            strategies: STRATEGIES.to_vec(),
            slower: None,
            all_failed: None,
            all_failed_kind: FailureKind::Infrastructure,
            cache_lost: None,
            one_failure: true,
            one_failure_kind: FailureKind::Build,
            official_images: false,
            noise: 0.0,
            host_load_1m: None,
            host_cpus: 2,
            notes: None,
        }
    }

    pub fn dir(&self) -> PathBuf {
        fixtures_dir().join(self.name)
    }
}

pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/results")
}

/// Every committed synthetic results directory.
pub fn all() -> Vec<Spec> {
    vec![
        Spec::flask("synthetic-flask"),
        Spec {
            slower: Some(("shared-dind", 1.5)),
            ..Spec::flask("synthetic-flask-slower")
        },
        Spec {
            cache_lost: Some(("registry-multistage", "no-change", 13)),
            ..Spec::flask("synthetic-flask-cache-lost")
        },
        Spec {
            scenario: "node-app",
            scenario_hash: OTHER_HASH,
            ..Spec::flask("synthetic-other-scenario")
        },
        Spec {
            iterations: 1,
            one_failure: false,
            official_images: true,
            ..Spec::flask("synthetic-one-iteration")
        },
        Spec {
            all_failed: Some("daemonless"),
            one_failure: false,
            ..Spec::flask("synthetic-all-failed")
        },
        Spec {
            pipeline: vec!["cold"],
            one_failure: false,
            ..Spec::flask("synthetic-single-run")
        },
    ]
}

pub fn spec(name: &str) -> Spec {
    all()
        .into_iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("no synthetic spec {name}"))
}

/// Steps that hit the cache for a strategy in a pipeline run (the patterns the strategies produce).
fn cached_steps(strategy: &str, run: &str) -> Vec<u32> {
    let all_but_from: Vec<u32> = (2..=6).chain(8..=15).collect();
    match (strategy, run) {
        (_, "cold") | ("ephemeral-dind", _) => vec![],
        // The pull/push dance only ever caches the final stage up to COPY --from.
        ("registry-final", _) => vec![8, 9],
        (_, "no-change") => all_but_from,
        (_, "code-change") => vec![2, 3, 4, 5, 6, 8, 9, 10, 11],
        (_, "deps-change") => vec![2, 3, 4, 8, 9],
        _ => vec![],
    }
}

/// The cause and the changed input a run would record for a step (made up, as every figure here is), in
/// `layerbench::cause`'s order: no cache on the cold run and for ephemeral-dind; the changed `COPY` its input
/// changed; a step after a miss in its stage (or the builder stage, for `COPY --from`) after a miss;
/// registry-final's builder stage never pushed; and otherwise evicted.
fn synthetic_cause(strategy: &str, run: &str, step: u32, cached: &[u32]) -> (Option<Cause>, Option<String>) {
    let (stage, instruction, _) = STEPS[step as usize - 1];
    if cached.contains(&step) || instruction.starts_with("FROM ") {
        return (None, None);
    }
    if run == "cold" || strategy == "ephemeral-dind" {
        return (Some(Cause::NoCache), None);
    }
    let changed = match run {
        "code-change" => Some((12, "app/hello.py")),
        "deps-change" => Some((5, "requirements.txt")),
        _ => None,
    };
    if let Some((_, file)) = changed.filter(|(s, _)| *s == step) {
        return (Some(Cause::InputChanged), Some(file.into()));
    }
    let earlier_miss = (1..step).any(|s| {
        let (st, text, _) = STEPS[s as usize - 1];
        (st == stage || instruction.contains("--from=builder") && st == "builder") && !text.starts_with("FROM ") && !cached.contains(&s)
    });
    if earlier_miss {
        return (Some(Cause::AfterMiss), None);
    }
    if strategy == "registry-final" && stage == "builder" {
        return (Some(Cause::StageNotPushed), None);
    }
    (Some(Cause::Evicted), None)
}

/// A deterministic factor in [1 - amplitude, 1 + amplitude], so iterations differ a little.
fn jitter(key: &str, amplitude: f64) -> f64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key.bytes() {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    let unit = (hash % 10_000) as f64 / 10_000.0;
    1.0 + amplitude * (unit * 2.0 - 1.0)
}

fn scaled(ms: u64, factor: f64) -> u64 {
    (ms as f64 * factor).round() as u64
}

struct Bytes {
    pushed: u64,
    pulled: u64,
}

fn bytes(strategy: &str, run: &str) -> Bytes {
    const MB: u64 = 1_000_000;
    let (pushed, pulled) = match (strategy, run) {
        ("ephemeral-dind", "cold") => (75 * MB, 45 * MB),
        ("ephemeral-dind", _) => (30 * MB, 45 * MB),
        ("registry-final", "cold") => (75 * MB, 45 * MB),
        ("registry-final", _) => (30 * MB, 75 * MB),
        ("registry-multistage", "cold") => (335 * MB, 45 * MB),
        ("registry-multistage", "no-change") => (MB / 50, 335 * MB),
        ("registry-multistage", "code-change") => (MB / 20, 335 * MB),
        ("registry-multistage", _) => (65 * MB, 335 * MB),
        ("shared-dind", "cold") => (75 * MB, 45 * MB),
        ("shared-dind", "no-change") => (MB / 50, 0),
        ("shared-dind", "code-change") => (MB / 20, 0),
        ("shared-dind", _) => (30 * MB, 0),
        ("daemonless", "cold") => (275 * MB, 45 * MB),
        ("daemonless", "no-change") => (MB / 50, 30 * MB),
        ("daemonless", "code-change") => (MB / 20, 31 * MB),
        (_, _) => (60 * MB, 32 * MB),
    };
    Bytes { pushed, pulled }
}

/// Phase times (provision, pull, push) by strategy and run; `None` where the strategy has no such phase.
fn phases(strategy: &str, run: &str) -> (Option<u64>, Option<u64>, Option<u64>) {
    let cold = run == "cold";
    match strategy {
        "ephemeral-dind" => (Some(4_200), None, Some(3_000)),
        "registry-final" => (
            Some(4_300),
            Some(if cold { 300 } else { 2_500 }),
            Some(3_200),
        ),
        "registry-multistage" => (
            Some(4_250),
            Some(if cold { 400 } else { 6_500 }),
            Some(match run {
                "cold" => 9_000,
                "deps-change" => 5_000,
                _ => 600,
            }),
        ),
        "shared-dind" => (Some(150), None, Some(if cold { 3_500 } else { 500 })),
        _ => (Some(1_100), None, None),
    }
}

fn run_info(spec: &Spec) -> RunInfo {
    let source = if spec.official_images {
        ImageSource::Official
    } else {
        ImageSource::LocalStandIn
    };
    let image = |role: &str, official: &str, local: &str| ImageInfo {
        role: role.into(),
        name: if spec.official_images {
            official.into()
        } else {
            local.into()
        },
        source,
        id: Some(format!("sha256:{}", &FLASK_HASH[..12])),
        built_from: None,
    };
    RunInfo {
        run_id: spec.name.into(),
        backend: BackendKind::Docker,
        scenario: spec.scenario.into(),
        scenario_path: format!("scenarios/{}.toml", spec.scenario),
        scenario_hash: spec.scenario_hash.into(),
        layerbench_version: "0.1.0".into(),
        git_commit: Some("synthetic".into()),
        engine_version: Some("20.10.24".into()),
        builder_versions: [
            ("buildah".to_string(), "1.28.2".to_string()),
            ("dind".to_string(), "20.10.24".to_string()),
        ]
        .into_iter()
        .collect(),
        bases: vec![layerbench::results::BaseImageInfo {
            name: "python:3.11-slim".into(),
            written: Some("${PY}".into()),
            reference: "docker.io/library/python:3.11-slim".into(),
            resolved: "layerbench-local/python:3.11-slim".into(),
            digest: Some(format!("sha256:{FLASK_HASH}")),
            digest_kind: Some(layerbench::results::DigestKind::ImageId),
            source: layerbench::results::BaseSource::LocalStandIn,
            served: layerbench::results::BaseServing::HubMirror,
        }],
        images: vec![
            image(
                "base",
                "python:3.11-slim",
                "layerbench-local/python:3.11-slim",
            ),
            image("dind", "docker:dind", "layerbench-local/dind:latest"),
            image("registry", "registry:2", "layerbench-local/registry:latest"),
            image(
                "buildah",
                "quay.io/buildah/stable",
                "layerbench-local/buildah:latest",
            ),
        ],
        strategies: spec.strategies.iter().map(|s| Strategy::named(s)).collect(),
        pipeline: spec.pipeline.iter().map(|s| (*s).into()).collect(),
        iterations: spec.iterations,
        concurrency: vec![1],
        steps: STEPS
            .iter()
            .enumerate()
            .map(|(i, (stage, instruction, _))| StepInfo {
                stage: stage.to_string(),
                step: i as u32 + 1,
                instruction: instruction.to_string(),
            })
            .collect(),
        host: HostInfo {
            cpus: Some(spec.host_cpus),
            memory_bytes: Some(25_769_803_776),
            os: "Debian GNU/Linux 12 (bookworm)".into(),
        },
        started_at: "2026-01-15T02:00:00Z".into(),
        ended_at: Some("2026-01-15T03:00:00Z".into()),
        interrupted: false,
        privileges: spec
            .strategies
            .iter()
            .filter_map(|s| Strategy::parse(s).map(|k| (k, layerbench::builder::privilege_summary(k))))
            .collect(),
        workload: None,
        history: None,
    }
}

fn timestamp(seconds: u64) -> String {
    let t = 2 * 3600 + seconds;
    format!(
        "2026-01-15T{:02}:{:02}:{:02}Z",
        t / 3600,
        t / 60 % 60,
        t % 60
    )
}

/// Writes the whole results directory for `spec` into `dir`.
pub fn write(spec: &Spec, dir: &Path) {
    let mut writer = ResultsWriter::create(dir).unwrap();
    let info = run_info(spec);
    writer.write_run_info(&info).unwrap();
    let mut clock = 0u64;
    for iteration in 1..=spec.iterations {
        if spec.strategies.contains(&"shared-dind") {
            let startup_ms = scaled(5_200, jitter(&format!("{iteration}/service"), 0.05));
            writer
                .append_service(&ServiceRecord {
                    run_id: spec.name.into(),
                    backend: BackendKind::Docker,
                    concurrency: 1,
                    iteration,
                    strategy: Strategy::named("shared-dind"),
                    service: "dind".into(),
                    startup_ms,
                    cpu_ms: None,
                    peak_memory_bytes: None,
                })
                .unwrap();
        }
        let mut stored: std::collections::BTreeMap<&str, u64> = Default::default();
        for (index, run) in spec.pipeline.iter().enumerate() {
            // The real runner rotates the strategies' order from one pipeline run to the next.
            let mut order = spec.strategies.clone();
            let turn = index % order.len().max(1);
            order.rotate_left(turn);
            for strategy in order {
                let (job, steps) = job(spec, iteration, index as u32, run, strategy, &mut clock);
                writer.append_job(&job, &steps).unwrap();
                if job.status == JobStatus::Ok {
                    *stored.entry(strategy).or_default() += job.bytes_pushed.unwrap_or(0);
                }
                writer
                    .append_cache(&CacheRecord {
                        run_id: spec.name.into(),
                        backend: BackendKind::Docker,
                        concurrency: 1,
                        iteration,
                        pipeline_run: (*run).into(),
                        strategy: Strategy::named(strategy),
                        registry_bytes: Some(stored.get(strategy).copied().unwrap_or(0)),
                        daemon_volume_bytes: (strategy == "shared-dind")
                            .then(|| 1_200_000_000 + 40_000_000 * index as u64),
                    })
                    .unwrap();
            }
        }
    }
}

fn job(
    spec: &Spec,
    iteration: u32,
    pipeline_index: u32,
    run: &str,
    strategy: &str,
    clock: &mut u64,
) -> (JobRecord, Vec<StepRecord>) {
    let key = format!("{iteration}/{run}/{strategy}");
    // The directory's name is in the noise key so that two directories draw different iterations.
    let factor = spec
        .slower
        .filter(|(s, _)| *s == strategy)
        .map_or(1.0, |(_, f)| f)
        * jitter(&format!("{}/{key}/noise", spec.name), spec.noise);
    let started_at = timestamp(*clock);
    let base = JobRecord {
        run_id: spec.name.into(),
        backend: BackendKind::Docker,
        concurrency: 1,
        lane: 1,
        iteration,
        pipeline_index,
        pipeline_run: run.into(),
        strategy: Strategy::named(strategy),
        status: JobStatus::Ok,
        failure_kind: None,
        error: None,
        started_at,
        wall_ms: 0,
        provision_ms: None,
        pull_ms: None,
        cache_import_ms: None,
        build_ms: None,
        cache_export_ms: None,
        push_ms: None,
        teardown_ms: None,
        measure_ms: None,
        cached_steps: None,
        total_steps: STEPS.len() as u32,
        image_bytes: None,
        bytes_pulled: None,
        bytes_pushed: None,
        cpu_ms: None,
        peak_memory_bytes: None,
        node: None,
        host_load_1m: spec.host_load_1m,
        notes: spec.notes.filter(|(s, _)| *s == strategy).map(|(_, n)| n.to_string()),
    };
    if spec.all_failed == Some(strategy) {
        let wall_ms = scaled(1_500, jitter(&key, 0.05));
        *clock += wall_ms / 1000 + 1;
        let error = match spec.all_failed_kind {
            FailureKind::Infrastructure => "provision failed: buildah job container could not start: unshare(CLONE_NEWUSER): Operation not permitted",
            FailureKind::Build => "build failed at step 1/15 (FROM python:3.11-slim AS builder): unknown instruction",
        }
        .to_string();
        return (
            JobRecord {
                status: JobStatus::Failed,
                failure_kind: Some(spec.all_failed_kind),
                error: Some(error),
                wall_ms,
                provision_ms: Some(wall_ms),
                ..base
            },
            vec![],
        );
    }
    let mut cached = cached_steps(strategy, run);
    if let Some((s, r, step)) = spec.cache_lost {
        if s == strategy && r == run {
            cached.retain(|c| {
                *c != step && !(c > &step && STEPS[*c as usize - 1].0 == STEPS[step as usize - 1].0)
            });
        }
    }
    let fails_at =
        (spec.one_failure && strategy == "daemonless" && iteration == 2 && run == "deps-change")
            .then_some(6u32);
    let mut steps = vec![];
    for (i, (stage, instruction, executed_ms)) in STEPS.iter().enumerate() {
        let step = i as u32 + 1;
        if fails_at.is_some_and(|f| step > f) {
            break;
        }
        let hit = cached.contains(&step);
        let ms = if hit { CACHED_STEP_MS } else { *executed_ms };
        let duration_ms = scaled(ms, factor * jitter(&format!("{key}/{step}"), 0.04));
        let (cause, changed) = synthetic_cause(strategy, run, step, &cached);
        steps.push(StepRecord {
            run_id: spec.name.into(),
            backend: BackendKind::Docker,
            concurrency: 1,
            lane: 1,
            iteration,
            pipeline_run: run.into(),
            strategy: Strategy::named(strategy),
            stage: stage.to_string(),
            step,
            total_steps: STEPS.len() as u32,
            instruction: instruction.to_string(),
            cached: Some(hit),
            duration_ms: Some(duration_ms),
            input_key: None,
            cause,
            changed,
        });
    }
    let build_ms: u64 =
        steps.iter().filter_map(|s| s.duration_ms).sum::<u64>() + scaled(400, factor);
    let (provision, pull, push) = phases(strategy, run);
    let vary = |name: &str, ms: Option<u64>| {
        ms.map(|v| scaled(v, factor * jitter(&format!("{key}/{name}"), 0.04)))
    };
    let provision_ms = vary("provision", provision);
    let pull_ms = vary("pull", pull);
    let push_ms = if fails_at.is_some() {
        None
    } else {
        vary("push", push)
    };
    let wall_ms = [provision_ms, pull_ms, Some(build_ms), push_ms]
        .iter()
        .flatten()
        .sum::<u64>()
        + scaled(700, factor);
    *clock += wall_ms / 1000 + 1;
    let cached_steps = Some(steps.iter().filter(|s| s.cached == Some(true)).count() as u32);
    let moved = bytes(strategy, run);
    let job = if let Some(step) = fails_at {
        JobRecord {
            status: JobStatus::Failed,
            failure_kind: Some(spec.one_failure_kind),
            error: Some(match spec.one_failure_kind {
                FailureKind::Build => format!(
                    "build failed at step {step}/15 (RUN python -m venv $VENV && pip install -r requirements.txt): pip: connection reset by peer"
                ),
                FailureKind::Infrastructure => format!(
                    "build at step {step}/15 did not finish: the engine stopped answering (timed out after 600 s)"
                ),
            }),
            wall_ms,
            provision_ms,
            build_ms: Some(build_ms),
            cached_steps,
            ..base
        }
    } else {
        JobRecord {
            wall_ms,
            provision_ms,
            pull_ms,
            build_ms: Some(build_ms),
            push_ms,
            cached_steps,
            image_bytes: Some(75_400_000),
            bytes_pulled: Some(moved.pulled),
            bytes_pushed: Some(moved.pushed),
            ..base
        }
    };
    (job, steps)
}

/// Writes a results directory from records already in memory (a fixture changed by a test): run.json, every
/// job with its steps, cache and service rows.
pub fn write_data(data: &layerbench::results::data::RunData, dir: &Path) {
    let mut writer = ResultsWriter::create(dir).unwrap();
    writer.write_run_info(&data.info).unwrap();
    for job in &data.jobs {
        let steps: Vec<StepRecord> = data.steps_of(job).into_iter().cloned().collect();
        writer.append_job(job, &steps).unwrap();
    }
    for row in &data.cache {
        writer.append_cache(row).unwrap();
    }
    for row in &data.services {
        writer.append_service(row).unwrap();
    }
}

/// A strategy under load with known figures: shared-dind and ephemeral-dind, pipeline cold and code-change, one
/// iteration on a 2-core host, at 1, 2 and 4 at once. Wall times in seconds, per lane (every lane of a round
/// starts at the same second):
/// - level 1: shared-dind 20 (cold), 10 (code-change); ephemeral-dind 30, 12. Alone shared-dind is faster.
/// - level 2: shared-dind 15, 15 in both runs; ephemeral-dind 16, 16.
/// - level 4: shared-dind 40, 50, 50, 60 in both runs; ephemeral-dind 30 for every lane: the order turns.
///
/// Every job has steps 2 (RUN, hit), 3 (ENV, hit: not cacheable), 4 (COPY, hit), 5 (RUN, miss), 6 (RUN, not
/// reported) and 7 (RUN of a stage the builder skipped, `not-run`).
pub fn known_load() -> layerbench::results::data::RunData {
    use layerbench::results::data::RunData;
    let fixture = RunData::load(&fixtures_dir().join("synthetic-flask")).unwrap();
    let mut data = fixture.clone();
    data.info.pipeline = vec!["cold".into(), "code-change".into()];
    data.info.strategies = vec![Strategy::named("shared-dind"), Strategy::named("ephemeral-dind")];
    data.info.iterations = 1;
    data.info.concurrency = vec![1, 2, 4];
    data.info.host.cpus = Some(2);
    data.info.steps = ["FROM scratch", "RUN a", "ENV A=1", "COPY app .", "RUN b", "RUN c", "RUN d"]
        .iter()
        .enumerate()
        .map(|(i, text)| StepInfo { stage: "0".into(), step: i as u32 + 1, instruction: text.to_string() })
        .collect();
    data.cache.clear();
    data.services.clear();
    data.jobs.clear();
    data.steps.clear();
    let walls = |strategy: &str, level: u32, run: &str| -> Vec<u64> {
        match (strategy, level, run) {
            ("shared-dind", 1, "cold") => vec![20],
            ("shared-dind", 1, _) => vec![10],
            ("ephemeral-dind", 1, "cold") => vec![30],
            ("ephemeral-dind", 1, _) => vec![12],
            ("shared-dind", 2, _) => vec![15, 15],
            ("ephemeral-dind", 2, _) => vec![16, 16],
            ("shared-dind", _, _) => vec![40, 50, 50, 60],
            _ => vec![30; 4],
        }
    };
    let mut clock = 0u64;
    for level in [1, 2, 4] {
        for (index, run) in ["cold", "code-change"].into_iter().enumerate() {
            for strategy in ["shared-dind", "ephemeral-dind"] {
                let lanes = walls(strategy, level, run);
                for (lane, wall_s) in lanes.iter().enumerate() {
                    let mut job = fixture.jobs[0].clone();
                    job.concurrency = level;
                    job.lane = lane as u32 + 1;
                    job.iteration = 1;
                    job.strategy = Strategy::named(strategy);
                    job.pipeline_run = run.into();
                    job.pipeline_index = index as u32;
                    job.status = JobStatus::Ok;
                    job.started_at = timestamp(clock);
                    job.wall_ms = wall_s * 1000;
                    job.notes = None;
                    data.steps.extend(known_load_steps(&job));
                    data.jobs.push(job);
                }
                clock += lanes.iter().max().copied().unwrap_or(0) + 5;
            }
        }
    }
    data
}

fn known_load_steps(job: &JobRecord) -> Vec<StepRecord> {
    let rows: [(u32, &str, Option<bool>, Option<Cause>); 6] = [
        (2, "RUN a", Some(true), None),
        (3, "ENV A=1", Some(true), None),
        (4, "COPY app .", Some(true), None),
        (5, "RUN b", Some(false), Some(Cause::Evicted)),
        (6, "RUN c", None, None),
        (7, "RUN d", None, Some(Cause::NotRun)),
    ];
    rows.iter()
        .map(|&(step, instruction, cached, cause)| StepRecord {
            run_id: job.run_id.clone(),
            backend: BackendKind::Docker,
            concurrency: job.concurrency,
            lane: job.lane,
            iteration: job.iteration,
            pipeline_run: job.pipeline_run.clone(),
            strategy: job.strategy,
            stage: "0".into(),
            step,
            total_steps: 7,
            instruction: instruction.into(),
            cached,
            duration_ms: Some(1),
            input_key: None,
            cause,
            changed: None,
        })
        .collect()
}
