//! One run from set-up to clean-up: images, results directory, run.json, backend, and removal of what it created.

use std::future::Future;
use std::path::{Path, PathBuf};

use bollard::Docker;

use crate::backend::docker::{BackendImages, DockerBackend};
use crate::backend::kube::{KubeBackend, KubeImages, KubeOptions};
use crate::backend::{Backend, BackendError};
use crate::builder;
use crate::events::{Event, EventSink};
use crate::results::{BackendKind, HostInfo, ResultsError, ResultsWriter, RunInfo, StepInfo};
use crate::runner::{self, RunError, RunPlan, RunSummary};
use crate::scenario::Scenario;
use crate::strategy::Strategy;
use crate::toolchain::bases::{self, BaseError, Bases, Mirror};
use crate::toolchain::{self, Role, Toolchain, ToolchainConfig, ToolchainError};

/// What to run.
pub struct Request<'a> {
    pub scenario: &'a Scenario,
    pub strategies: Vec<Strategy>,
    pub iterations: u32,
    /// The concurrency levels, in order (`crate::lanes`).
    pub concurrency: Vec<u32>,
    /// `results/`: the run writes `results/<run-id>/`.
    pub results_root: PathBuf,
    /// Leave every container, volume and network in place.
    pub keep: bool,
    pub toolchain: ToolchainConfig,
    pub backend: BackendChoice,
}

/// Where the jobs run.
#[derive(Debug, Clone)]
pub enum BackendChoice {
    /// The local Docker engine.
    Docker,
    /// A Kubernetes cluster (its toolchain images are the ones the local engine resolved).
    Kube(Box<KubeOptions>),
}

impl BackendChoice {
    /// Where the backend's builders get the base images from.
    pub fn mirror(&self) -> Mirror<'static> {
        use crate::backend::kube::mirror::{HubMirror, MIRROR_HOST};
        match self {
            BackendChoice::Docker => Mirror::Own(crate::backend::docker::MIRROR_ADDRESS),
            BackendChoice::Kube(options) => match options.hub_mirror {
                HubMirror::Deploy => Mirror::Own(MIRROR_HOST),
                HubMirror::External(_) => Mirror::External,
                HubMirror::Off => Mirror::None,
            },
        }
    }
}

/// How the run ended. Whatever the ending, the results written so far are valid on disk.
#[derive(Debug)]
pub enum Ending {
    Finished(RunSummary),
    Interrupted,
    Failed(RunError),
}

#[derive(Debug)]
pub struct Outcome {
    pub run_id: String,
    pub results_dir: PathBuf,
    pub ending: Ending,
}

/// The run could not start, or could not clean up after itself.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error(transparent)]
    Toolchain(#[from] ToolchainError),
    #[error(transparent)]
    Base(#[from] BaseError),
    #[error(transparent)]
    Results(#[from] ResultsError),
    #[error("{0}; `layerbench clean` removes what is left")]
    Cleanup(BackendError),
    #[error("cannot create a private scratch directory in {}: {error}", dir.display())]
    Scratch { dir: PathBuf, error: std::io::Error },
}

/// Runs `request` on the engine until it finishes or `interrupt` completes (Ctrl-C), then removes
/// everything labelled with the run's id unless `keep` is set.
pub async fn execute(
    engine: &Docker,
    request: &Request<'_>,
    events: &EventSink,
    interrupt: impl Future<Output = ()>,
) -> Result<Outcome, SessionError> {
    let scenario = request.scenario;
    let mut roles = builder::image_roles(&request.strategies);
    if let BackendChoice::Kube(_) = request.backend {
        // The kube backend's helper pods run the dind image, whatever the strategies.
        roles.insert(Role::Dind);
    }
    let toolchain = toolchain::resolve_roles(engine, &request.toolchain, &roles, events).await?;
    // Every base of every pipeline run, before anything of the run exists: one that cannot be had stops it here.
    let bases = bases::resolve(engine, &request.toolchain, &toolchain, &scenario.base_images(), events).await?;
    let mirror = request.backend.mirror();

    let run_id = runner::new_run_id(&scenario.name);
    let results_dir = runner::results_dir(&request.results_root, &run_id);
    let mut writer = ResultsWriter::create(&results_dir)?;
    let mut info = run_info(engine, request, &run_id, &toolchain).await;
    info.bases = bases.infos(mirror);
    writer.write_run_info(&info)?;
    let lanes: u32 = request.concurrency.iter().sum();
    let total_jobs = (request.iterations as usize * scenario.pipeline.len() * request.strategies.len() * lanes as usize) as u64;
    events.emit(Event::RunStarted { run_id: run_id.clone(), results_dir: results_dir.clone(), total_jobs });

    let scratch = scratch_dir(&run_id)?;
    let plan = RunPlan {
        run_id: run_id.clone(),
        scenario,
        strategies: request.strategies.clone(),
        iterations: request.iterations,
        concurrency: request.concurrency.clone(),
        work_dir: scratch.path().to_path_buf(),
        base_rewrites: bases.rewrites(mirror),
    };
    let run = Run { plan: &plan, events, keep: request.keep, toolchain: &toolchain, bases: &bases };
    let ending = match &request.backend {
        BackendChoice::Docker => run.on_docker(engine, &mut writer, &mut info, interrupt).await?,
        BackendChoice::Kube(options) => run.on_kube(engine, options, &mut writer, &mut info, interrupt).await?,
    };
    info.interrupted = !matches!(ending, Ending::Finished(_));
    info.ended_at = Some(now());
    writer.write_run_info(&info)?;
    if request.keep {
        let scratch = scratch.keep();
        events.notice(format!(
            "keeping every resource labelled {}={run_id} (`layerbench clean` removes them) and the scratch directory {}",
            crate::RUN_ID_LABEL,
            scratch.display()
        ));
    }
    events.emit(Event::RunFinished { results_dir: results_dir.clone(), interrupted: matches!(ending, Ending::Interrupted) });
    Ok(Outcome { run_id, results_dir, ending })
}

/// Everything about the run that is not a measurement, as `run.json` starts it.
async fn run_info(engine: &Docker, request: &Request<'_>, run_id: &str, toolchain: &Toolchain) -> RunInfo {
    let scenario = request.scenario;
    RunInfo {
        run_id: run_id.to_string(),
        backend: match request.backend {
            BackendChoice::Docker => BackendKind::Docker,
            BackendChoice::Kube(_) => BackendKind::Kube,
        },
        scenario: scenario.name.clone(),
        scenario_path: scenario.source.display().to_string(),
        scenario_hash: scenario.hash.clone(),
        layerbench_version: env!("CARGO_PKG_VERSION").into(),
        git_commit: git_commit(),
        engine_version: engine.version().await.ok().and_then(|v| v.version),
        builder_versions: Default::default(),
        images: toolchain.images(),
        bases: vec![],
        strategies: request.strategies.clone(),
        pipeline: scenario.pipeline.iter().map(|p| p.name.clone()).collect(),
        iterations: request.iterations,
        concurrency: request.concurrency.clone(),
        steps: step_table(scenario),
        host: host_info(),
        started_at: now(),
        ended_at: None,
        interrupted: false,
        privileges: request.strategies.iter().map(|&s| (s, builder::privilege_summary(s))).collect(),
        workload: scenario.workload.clone(),
        history: scenario.history.clone(),
    }
}

/// run.json's step table: every step steps.csv can have a row for, the global ARGs too, of every Dockerfile the
/// pipeline builds: a step an edit changed is there as each Dockerfile has it.
fn step_table(scenario: &Scenario) -> Vec<StepInfo> {
    let mut steps: Vec<StepInfo> = vec![];
    for step in scenario.dockerfiles.iter().flat_map(|at| dockerfile_steps(&at.dockerfile)) {
        if !steps.contains(&step) {
            steps.push(step);
        }
    }
    steps
}

/// One Dockerfile's steps as steps.csv has rows for them, the global ARGs too.
pub(crate) fn dockerfile_steps(dockerfile: &crate::dockerfile::Dockerfile) -> Vec<StepInfo> {
    dockerfile.recorded_steps().map(|(stage, i)| StepInfo { stage, step: i.step, instruction: i.text.clone() }).collect()
}

/// One run's plan on its way to a backend.
struct Run<'a> {
    plan: &'a RunPlan<'a>,
    events: &'a EventSink,
    keep: bool,
    toolchain: &'a Toolchain,
    bases: &'a Bases,
}

impl Run<'_> {
    /// On the local engine; afterwards everything labelled with the run's id goes, by label, so whatever
    /// a cancelled job was half-way through creating goes too.
    async fn on_docker(
        &self,
        engine: &Docker,
        writer: &mut ResultsWriter,
        info: &mut RunInfo,
        interrupt: impl Future<Output = ()>,
    ) -> Result<Ending, SessionError> {
        let run_id = &self.plan.run_id;
        let mut slot = None;
        let start = DockerBackend::start(engine.clone(), run_id, BackendImages::from_toolchain(self.toolchain, self.bases), self.events);
        let ending = drive(start, &mut slot, self.plan, writer, self.events, interrupt).await;
        if let Some(backend) = &slot {
            builder_versions(info, backend);
        }
        if !self.keep {
            crate::resources::remove_labelled(engine, Some(run_id))
                .await
                .map_err(|e| SessionError::Cleanup(BackendError::new("remove the run's containers, volumes and network", e)))?;
        }
        Ok(ending)
    }

    /// On a cluster; afterwards the backend removes what it made there.
    async fn on_kube(
        &self,
        engine: &Docker,
        options: &KubeOptions,
        writer: &mut ResultsWriter,
        info: &mut RunInfo,
        interrupt: impl Future<Output = ()>,
    ) -> Result<Ending, SessionError> {
        let options = KubeOptions { images: KubeImages::from_toolchain(self.toolchain), keep: self.keep, ..options.clone() };
        let mut slot = None;
        let mirrored = self.bases.mirrored();
        let start = async {
            let backend = KubeBackend::connect(options, &self.plan.run_id, &self.plan.scenario.name).await?;
            Ok(backend.with_mirror_source(engine.clone(), mirrored))
        };
        let ending = drive(start, &mut slot, self.plan, writer, self.events, interrupt).await;
        if let Some(backend) = slot.as_mut() {
            info.builder_versions.extend(backend.builder_versions().iter().map(|(k, v)| (k.clone(), v.clone())));
            backend.shutdown().await.map_err(SessionError::Cleanup)?;
        }
        Ok(ending)
    }
}

/// The run's scratch space (per-iteration contexts) under $TMPDIR: only its owner can read it and
/// nobody can guess its name in advance, so no other user can plant or read a context. It is
/// removed when dropped, however the run ends.
/// How a run's scratch directory's name starts, in the temporary directory (a kept run leaves it there).
pub fn scratch_prefix(run_id: &str) -> String {
    format!("layerbench-{run_id}-")
}

fn scratch_dir(run_id: &str) -> Result<tempfile::TempDir, SessionError> {
    use std::os::unix::fs::PermissionsExt;
    tempfile::Builder::new()
        .prefix(&scratch_prefix(run_id))
        // tempfile leaves directories to the umask (often 0755): ask for owner-only.
        .permissions(std::fs::Permissions::from_mode(0o700))
        .tempdir()
        .map_err(|error| SessionError::Scratch { dir: std::env::temp_dir(), error })
}

/// Starts a backend and runs the plan on it until it ends or `interrupt` completes. The backend
/// stays in `slot` (when it started) so the caller can clean up after it.
async fn drive<B: Backend>(
    start: impl Future<Output = Result<B, BackendError>>,
    slot: &mut Option<B>,
    plan: &RunPlan<'_>,
    writer: &mut ResultsWriter,
    events: &EventSink,
    interrupt: impl Future<Output = ()>,
) -> Ending {
    let work = async {
        let backend = slot.insert(start.await?);
        runner::run(backend, plan, writer, events).await
    };
    tokio::select! {
        result = work => match result {
            Ok(summary) => Ending::Finished(summary),
            Err(e) => Ending::Failed(e),
        },
        () = interrupt => Ending::Interrupted,
    }
}

/// Versions of what built the images, and how dind ran on this engine.
fn builder_versions(info: &mut RunInfo, backend: &DockerBackend) {
    if let Some(mode) = backend.dind_mode() {
        for (strategy, summary) in info.privileges.iter_mut() {
            if builder::privileges(*strategy).privileged {
                summary.push_str(&format!(" On this engine its daemon ran with: {}.", mode.describe()));
            }
        }
    }
    info.builder_versions.extend(backend.builder_versions().iter().map(|(k, v)| (k.clone(), v.clone())));
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn host_info() -> HostInfo {
    let memory_bytes = std::fs::read_to_string("/proc/meminfo").ok().and_then(|text| {
        let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
        let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib * 1024)
    });
    HostInfo {
        cpus: std::thread::available_parallelism().ok().map(|n| n.get() as u32),
        memory_bytes,
        os: format!("{} {}", std::env::consts::OS, std::env::consts::ARCH),
    }
}

/// The commit of the checkout layerbench runs from, when it runs from one.
fn git_commit() -> Option<String> {
    let out = std::process::Command::new("git").args(["rev-parse", "HEAD"]).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// `reports/<run-id>` for `results/<run-id>`.
pub fn default_report_dir(reports_root: &Path, results_dir: &Path) -> PathBuf {
    let run_id = results_dir.file_name().map(|n| n.to_os_string()).unwrap_or_else(|| "report".into());
    reports_root.join(run_id)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn scratch_space_is_private_unguessable_and_goes_with_the_run() {
        let run_id = "20261127T190501123Z-flask";
        let scratch = scratch_dir(run_id).unwrap();
        let path = scratch.path().to_path_buf();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700, "{}", path.display());
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        assert!(name.starts_with(&format!("layerbench-{run_id}-")) && name.len() > run_id.len() + 12, "{name}");
        assert_ne!(scratch_dir(run_id).unwrap().path(), path, "two runs never share one");
        drop(scratch);
        assert!(!path.exists());
    }

    #[test]
    fn a_cpu_count_that_cannot_be_measured_is_empty_not_zero() {
        assert_ne!(host_info().cpus, Some(0));
        let host = HostInfo { cpus: None, memory_bytes: None, os: "linux x86_64".into() };
        let json = serde_json::to_string(&host).unwrap();
        assert!(json.contains("\"cpus\":null"), "{json}");
        assert_eq!(serde_json::from_str::<HostInfo>(&json).unwrap(), host);
        // run.json written before the count could be missing still reads.
        let old: HostInfo = serde_json::from_str(r#"{"cpus": 2, "memory_bytes": null, "os": "linux"}"#).unwrap();
        assert_eq!(old.cpus, Some(2));
    }
}
