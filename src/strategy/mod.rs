//! Caching strategies: each is data plus a plan of job operations that any backend can execute.

mod buildkit_daemon;
mod buildkit_inline;
mod buildkit_registry;
mod buildkit_shared;
mod daemonless;
mod ephemeral_dind;
mod registry_final;
mod registry_multistage;
mod shared_dind;

use serde::{Deserialize, Serialize};

use crate::scenario::Dockerfile;

/// The strategies layerbench knows. Adding one means one variant here and one file beside this one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StrategyKind {
    EphemeralDind,
    RegistryFinal,
    RegistryMultistage,
    SharedDind,
    Daemonless,
    DaemonlessKaniko,
    BuildkitInline,
    BuildkitRegistry,
    BuildkitShared,
    BuildkitDaemon,
    BuildkitDaemonShared,
}

impl StrategyKind {
    pub const ALL: [StrategyKind; 11] = [
        StrategyKind::EphemeralDind,
        StrategyKind::RegistryFinal,
        StrategyKind::RegistryMultistage,
        StrategyKind::SharedDind,
        StrategyKind::Daemonless,
        StrategyKind::DaemonlessKaniko,
        StrategyKind::BuildkitInline,
        StrategyKind::BuildkitRegistry,
        StrategyKind::BuildkitShared,
        StrategyKind::BuildkitDaemon,
        StrategyKind::BuildkitDaemonShared,
    ];

    pub fn name(self) -> &'static str {
        self.strategy().name()
    }

    pub fn parse(name: &str) -> Option<StrategyKind> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }

    /// Comma-separated list of every valid name, for error messages.
    pub fn valid_names() -> String {
        Self::ALL.map(|k| k.name()).join(", ")
    }

    pub fn strategy(self) -> &'static dyn Strategy {
        match self {
            StrategyKind::EphemeralDind => &ephemeral_dind::EphemeralDind,
            StrategyKind::RegistryFinal => &registry_final::RegistryFinal,
            StrategyKind::RegistryMultistage => &registry_multistage::RegistryMultistage,
            StrategyKind::SharedDind => &shared_dind::SharedDind,
            StrategyKind::Daemonless => &daemonless::Daemonless { builder: DaemonlessBuilder::Buildah },
            StrategyKind::DaemonlessKaniko => {
                &daemonless::Daemonless { builder: DaemonlessBuilder::Kaniko }
            }
            StrategyKind::BuildkitInline => &buildkit_inline::BuildkitInline,
            StrategyKind::BuildkitRegistry => &buildkit_registry::BuildkitRegistry,
            StrategyKind::BuildkitShared => &buildkit_shared::BuildkitShared,
            StrategyKind::BuildkitDaemon => &buildkit_daemon::BuildkitDaemon { shared: false },
            StrategyKind::BuildkitDaemonShared => &buildkit_daemon::BuildkitDaemon { shared: true },
        }
    }

    /// The builders its jobs run in job containers (none for a classic `docker build` through a
    /// daemon's API). Read off a plan, so it cannot drift from what the jobs do.
    pub fn job_builders(self) -> Vec<DaemonlessBuilder> {
        let dockerfile = Dockerfile::parse("FROM scratch\n").expect("a one-line Dockerfile parses");
        let input = PlanInput { repository: "registry:5000/app", commit_tag: "c1", dockerfile: &dockerfile };
        let plan = self.strategy().plan(&input);
        plan.ops
            .iter()
            .filter_map(|op| match op {
                Op::JobBuild(request) => Some(request.builder),
                _ => None,
            })
            .collect()
    }
}

impl std::fmt::Display for StrategyKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Which daemon a job builds with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DaemonKind {
    /// A Docker daemon in a docker:dind service (`dockerd`, API on 2375); its state in `/var/lib/docker`.
    Docker,
    /// A standalone BuildKit daemon (`buildkitd`, gRPC on 1234), as buildx's `docker-container` and
    /// `kubernetes` drivers or a buildkitd Deployment run it; its state in `/var/lib/buildkit`.
    Buildkit,
}

impl DaemonKind {
    /// What the report and progress lines call it.
    pub fn service_name(self) -> &'static str {
        match self {
            DaemonKind::Docker => "dind",
            DaemonKind::Buildkit => "buildkitd",
        }
    }

    /// Where the daemon keeps its images and cache: a volume of its own.
    pub fn state_dir(self) -> &'static str {
        match self {
            DaemonKind::Docker => "/var/lib/docker",
            DaemonKind::Buildkit => "/var/lib/buildkit",
        }
    }
}

/// Where a job's daemon comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Daemon {
    /// A brand-new daemon service for this job, removed when the job ends.
    Fresh(DaemonKind),
    /// One long-lived daemon per iteration and strategy, with its state on a volume.
    Shared(DaemonKind),
    /// No daemon: the job container runs a daemonless builder.
    None,
}

impl Daemon {
    pub fn kind(self) -> Option<DaemonKind> {
        match self {
            Daemon::Fresh(kind) | Daemon::Shared(kind) => Some(kind),
            Daemon::None => None,
        }
    }

    /// The daemon outlives the job (one per iteration).
    pub fn is_shared(self) -> bool {
        matches!(self, Daemon::Shared(_))
    }
}

/// How a strategy's dind daemons store images.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ImageStore {
    /// The classic graph drivers (overlay2): what the classic builder and inline cache need.
    #[default]
    GraphDriver,
    /// The containerd image store (`"features": {"containerd-snapshotter": true}`): BuildKit's docker
    /// driver exports a registry cache only with it.
    Containerd,
}

/// The builders a job container can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DaemonlessBuilder {
    Buildah,
    Kaniko,
    /// `docker buildx build` (BuildKit) against the job's Docker daemon.
    Buildx,
    /// `buildctl build` against the job's standalone BuildKit daemon.
    Buildctl,
}

/// Where a builder imports its cache from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheImport {
    /// A cache in the registry: an image with inline cache, a BuildKit cache manifest, or a
    /// buildah/kaniko layer repository.
    Registry { reference: String },
}

/// Where a builder exports its cache to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheExport {
    /// Cache metadata inside the pushed image (BuildKit `type=inline`: final stage only, `mode=min`).
    Inline,
    /// A separate cache reference in the registry; `every_stage` is BuildKit's `mode=max`.
    Registry { reference: String, every_stage: bool },
}

/// One build a job container runs: which builder, what it pushes, and its cache.
#[derive(Debug, Clone, PartialEq)]
pub struct BuildRequest {
    pub builder: DaemonlessBuilder,
    pub destinations: Vec<String>,
    pub cache_from: Vec<CacheImport>,
    pub cache_to: Option<CacheExport>,
}

/// One operation of a job, in the order a CI job's script would run it.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    /// `docker pull IMAGE`; only an image the registry does not have yet is fine (the first
    /// pipeline run has none).
    Pull { image: String },
    /// `docker build [--target T] --cache-from ... -t TAG...` with the classic builder, driven
    /// through the daemon's API as a CI job's client would.
    Build { target: Option<String>, tags: Vec<String>, cache_from: Vec<String> },
    /// `docker push IMAGE`
    Push { image: String },
    /// A job container runs a builder's own command (see `crate::builder`): it builds, imports
    /// and exports its cache, and pushes, all in one go.
    JobBuild(BuildRequest),
}

impl Op {
    pub fn phase(&self) -> Phase {
        match self {
            Op::Pull { .. } => Phase::Pull,
            Op::Build { .. } | Op::JobBuild(_) => Phase::Build,
            Op::Push { .. } => Phase::Push,
        }
    }
}

/// The phases a job's wall time is split into. They follow each other on one clock, so together
/// they add up to the job's wall time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Phase {
    /// Getting a builder that answers: a fresh daemon, a job container, the context copied in.
    Provision,
    /// `docker pull` of cache images.
    Pull,
    /// BuildKit importing a registry cache.
    CacheImport,
    Build,
    /// BuildKit exporting its cache.
    CacheExport,
    Push,
    /// Removing the job's daemon, containers and volumes. A CI runner does this after the job
    /// has reported, so a CI user does not wait for it.
    Teardown,
    /// layerbench's own bookkeeping (reading the registry's access log): no CI job has it.
    Measure,
}

impl Phase {
    pub const ALL: [Phase; 8] = [
        Phase::Provision,
        Phase::Pull,
        Phase::CacheImport,
        Phase::Build,
        Phase::CacheExport,
        Phase::Push,
        Phase::Teardown,
        Phase::Measure,
    ];

    /// The name used in CSV columns (`<name>_ms`), charts and progress lines.
    pub fn name(self) -> &'static str {
        match self {
            Phase::Provision => "provision",
            Phase::Pull => "pull",
            Phase::CacheImport => "cache_import",
            Phase::Build => "build",
            Phase::CacheExport => "cache_export",
            Phase::Push => "push",
            Phase::Teardown => "teardown",
            Phase::Measure => "measure",
        }
    }

    /// Whether a CI user waits for this phase before the job reports its result.
    pub fn waited_for(self) -> bool {
        !matches!(self, Phase::Teardown | Phase::Measure)
    }
}

/// What one job of a strategy does.
#[derive(Debug, Clone, PartialEq)]
pub struct JobPlan {
    pub daemon: Daemon,
    pub ops: Vec<Op>,
}

impl JobPlan {
    /// Whether a job of this plan can reuse anything an earlier job left: a daemon that outlives the
    /// job, a pulled image, or a cache the builder imports.
    pub fn reuses_cache(&self) -> bool {
        self.daemon.is_shared()
            || self.ops.iter().any(|op| match op {
                Op::Pull { .. } => true,
                Op::Build { cache_from, .. } => !cache_from.is_empty(),
                Op::JobBuild(request) => !request.cache_from.is_empty(),
                Op::Push { .. } => false,
            })
    }
}

/// What a strategy needs to plan a job.
#[derive(Debug, Clone, Copy)]
pub struct PlanInput<'a> {
    /// Image repository as the job sees it, registry host included (`registry:5000/app`).
    pub repository: &'a str,
    /// The tag a CI job would derive from the commit, e.g. `run-3`.
    pub commit_tag: &'a str,
    pub dockerfile: &'a Dockerfile,
}

/// What a strategy asks of the machine that runs it; shown in the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Privileges {
    /// Needs a privileged container (a dind daemon).
    pub privileged: bool,
    /// Kernel capabilities beyond Docker's default set, when not privileged.
    pub extra_capabilities: &'static [&'static str],
    /// Security profiles it must run without.
    pub unconfined: &'static [&'static str],
    /// One sentence for the report on the risk this carries.
    pub risk: &'static str,
}

impl Privileges {
    pub fn summary(&self) -> String {
        let mut parts = vec![];
        if self.privileged {
            parts.push("privileged container".to_string());
        }
        if !self.extra_capabilities.is_empty() {
            parts.push(format!("capabilities {}", self.extra_capabilities.join(", ")));
        }
        if !self.unconfined.is_empty() {
            parts.push(format!("{} unconfined", self.unconfined.join(" and ")));
        }
        if parts.is_empty() {
            parts.push("no extra privileges".to_string());
        }
        format!("{}. {}", parts.join("; "), self.risk)
    }
}

/// A caching strategy: a name, what it needs, and the plan of one job.
pub trait Strategy: Sync {
    fn kind(&self) -> StrategyKind;
    fn name(&self) -> &'static str;
    /// One line for `--help` and the report.
    fn description(&self) -> &'static str;
    fn privileges(&self) -> Privileges;
    /// Where its jobs get a daemon; the same for every job of the strategy.
    fn daemon(&self) -> Daemon;
    /// How its dind daemons store images (BuildKit daemons have their own store).
    fn image_store(&self) -> ImageStore {
        ImageStore::GraphDriver
    }
    fn plan(&self, input: &PlanInput) -> JobPlan;
    /// Its plan for a two-stage Dockerfile: what a job does, whatever the Dockerfile, for questions
    /// about the strategy as a whole.
    fn sample_plan(&self) -> JobPlan {
        let dockerfile = crate::scenario::Dockerfile::parse("FROM scratch AS build\nFROM scratch\n")
            .expect("a two-stage Dockerfile parses");
        self.plan(&PlanInput { repository: "registry:5000/app", commit_tag: "c1", dockerfile: &dockerfile })
    }
    /// Whether its jobs can reuse what earlier jobs left, asked of its own plan.
    fn keeps_cache(&self) -> bool {
        self.sample_plan().reuses_cache()
    }
    /// The job-container builder its jobs run, if any.
    fn job_builder(&self) -> Option<DaemonlessBuilder> {
        self.sample_plan().ops.iter().find_map(|op| match op {
            Op::JobBuild(request) => Some(request.builder),
            _ => None,
        })
    }
}

/// The privileges of every strategy that runs a dind daemon.
pub(crate) const DIND_PRIVILEGES: Privileges = Privileges {
    privileged: true,
    extra_capabilities: &[],
    unconfined: &[],
    risk: "A privileged daemon is root on its node; anything that can reach its API can be too.",
};

/// `docker build` of the final stage, tagged `<repo>:<commit>` and `<repo>:latest`, then pushed.
pub(crate) fn build_and_push_final(input: &PlanInput, cache_from: Vec<String>) -> Vec<Op> {
    let commit = format!("{}:{}", input.repository, input.commit_tag);
    let latest = format!("{}:latest", input.repository);
    vec![
        Op::Build { target: None, tags: vec![commit.clone(), latest.clone()], cache_from },
        Op::Push { image: commit },
        Op::Push { image: latest },
    ]
}

/// `<repo>:<commit>` and `<repo>:latest`: what every job pushes.
pub(crate) fn destinations(input: &PlanInput) -> Vec<String> {
    vec![format!("{}:{}", input.repository, input.commit_tag), format!("{}:latest", input.repository)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_are_unique() {
        for kind in StrategyKind::ALL {
            assert_eq!(StrategyKind::parse(kind.name()), Some(kind));
            assert_eq!(kind.strategy().kind(), kind);
        }
        assert_eq!(StrategyKind::parse("nope"), None);
        let cold_every_time: Vec<_> = StrategyKind::ALL.into_iter().filter(|k| !k.strategy().keeps_cache()).collect();
        assert_eq!(cold_every_time, [StrategyKind::EphemeralDind], "only ephemeral-dind reuses nothing");
        let serialized = serde_json::to_string(&StrategyKind::RegistryMultistage).unwrap();
        assert_eq!(serialized, "\"registry-multistage\"");
    }
}
