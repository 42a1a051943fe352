//! Caching strategies, each declared once as data (its own file) and listed in one registry; and the
//! vocabulary of a job's plan that every backend executes.

mod buildkit_daemon;
mod buildkit_daemon_shared;
mod buildkit_inline;
mod buildkit_registry;
mod buildkit_shared;
mod daemonless;
mod daemonless_kaniko;
mod ephemeral_dind;
mod registry_final;
mod registry_multistage;
mod shared_dind;

use serde::{Deserialize, Serialize};

use crate::dockerfile::Dockerfile;

/// Every strategy layerbench knows, in the order `--help`, the docs and reports list them. Adding one
/// is its file beside this one and one line here.
const REGISTRY: [&StrategyDef; 11] = [
    &ephemeral_dind::STRATEGY,
    &registry_final::STRATEGY,
    &registry_multistage::STRATEGY,
    &shared_dind::STRATEGY,
    &daemonless::STRATEGY,
    &daemonless_kaniko::STRATEGY,
    &buildkit_inline::STRATEGY,
    &buildkit_registry::STRATEGY,
    &buildkit_shared::STRATEGY,
    &buildkit_daemon::STRATEGY,
    &buildkit_daemon_shared::STRATEGY,
];

/// What a strategy is: a name, where its jobs get a daemon, and the plan of one job.
pub struct StrategyDef {
    /// Its name in scenarios, on the command line and in every record (`shared-dind`).
    pub name: &'static str,
    /// One line for `--help` and `layerbench strategies`.
    pub description: &'static str,
    /// What one job does, in Markdown: the README's table of strategies (`layerbench strategies --markdown`).
    pub job: &'static str,
    /// Where its jobs get a daemon; the same for every job of the strategy.
    pub daemon: Daemon,
    /// How its dind daemons store images (BuildKit daemons have their own store).
    pub image_store: ImageStore,
    /// One sentence on the risk of the privileges it needs. The privileges themselves are its
    /// daemon's and its builder's (see `crate::builder::privileges`), so they cannot drift from what runs.
    pub risk: &'static str,
    /// The operations of one job, in the order a CI job's script runs them.
    pub ops: fn(&PlanInput) -> Vec<Op>,
}

/// A strategy, as records, events and plans name it: a handle on its declaration in the registry.
/// Serialised as its name, and ordered by it, so CSV columns, `run.json` and every sorted list read as
/// they did when strategies were strings.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Strategy(u8);

impl Ord for Strategy {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.name().cmp(other.name())
    }
}

impl PartialOrd for Strategy {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Strategy {
    /// Every strategy, in the registry's order.
    pub fn all() -> impl Iterator<Item = Strategy> + Clone {
        (0..REGISTRY.len() as u8).map(Strategy)
    }

    pub fn parse(name: &str) -> Option<Strategy> {
        Self::all().find(|s| s.name() == name)
    }

    /// The strategy of that name, for code and tests that name one the registry must have; a name it does
    /// not have is a bug (in a `const`, one that does not compile).
    pub const fn named(name: &str) -> Strategy {
        let mut i = 0;
        while i < REGISTRY.len() {
            if same(REGISTRY[i].name.as_bytes(), name.as_bytes()) {
                return Strategy(i as u8);
            }
            i += 1;
        }
        panic!("no strategy of that name is in the registry")
    }

    /// Comma-separated list of every valid name, for error messages and `--help`.
    pub fn valid_names() -> String {
        Self::all().map(|s| s.name()).collect::<Vec<_>>().join(", ")
    }

    pub fn def(self) -> &'static StrategyDef {
        REGISTRY[self.0 as usize]
    }

    pub fn name(self) -> &'static str {
        self.def().name
    }

    /// The plan of one job.
    pub fn plan(self, input: &PlanInput) -> JobPlan {
        JobPlan { daemon: self.daemon, ops: (self.ops)(input) }
    }

    /// Its plan for a two-stage Dockerfile: what a job does, whatever the Dockerfile, for questions
    /// about the strategy as a whole.
    pub fn sample_plan(self) -> JobPlan {
        let dockerfile = Dockerfile::parse("FROM scratch AS build\nFROM scratch\n").expect("a two-stage Dockerfile parses");
        self.plan(&PlanInput { repository: "registry:5000/app", commit_tag: "c1", dockerfile: &dockerfile })
    }

    /// Whether its jobs can reuse what earlier jobs left, asked of its own plan.
    pub fn keeps_cache(self) -> bool {
        self.sample_plan().reuses_cache()
    }

    /// The builders its jobs run in job containers (none for a classic `docker build` through a
    /// daemon's API). Read off a plan, so it cannot drift from what the jobs do.
    pub fn job_builders(self) -> Vec<JobBuilder> {
        self.sample_plan().job_builders()
    }
}

/// Byte-wise equality, usable in a `const fn`.
const fn same(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

impl std::ops::Deref for Strategy {
    type Target = StrategyDef;
    fn deref(&self) -> &StrategyDef {
        self.def()
    }
}

impl std::fmt::Display for Strategy {
    /// Its name, padded as a format's width asks (`{:<22}`).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.name())
    }
}

impl std::fmt::Debug for Strategy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl PartialEq<str> for Strategy {
    fn eq(&self, other: &str) -> bool {
        self.name() == other
    }
}

impl PartialEq<&str> for Strategy {
    fn eq(&self, other: &&str) -> bool {
        self.name() == *other
    }
}

impl AsRef<str> for Strategy {
    fn as_ref(&self) -> &str {
        self.name()
    }
}

impl Serialize for Strategy {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for Strategy {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        Strategy::parse(&name).ok_or_else(|| {
            serde::de::Error::custom(format!("unknown strategy `{name}`; known strategies: {}", Strategy::valid_names()))
        })
    }
}

/// A name the registry does not have, as the command line gives it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown strategy `{name}`; valid strategies: {valid}", valid = Strategy::valid_names())]
pub struct UnknownStrategy {
    pub name: String,
}

/// A strategy by its name (surrounding blanks ignored, as in `--strategies "a, b"`): what clap parses
/// `--strategy` and `--strategies` with, from the registry.
impl std::str::FromStr for Strategy {
    type Err = UnknownStrategy;
    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Strategy::parse(name.trim()).ok_or_else(|| UnknownStrategy { name: name.trim().to_string() })
    }
}

/// Which daemon a job builds with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DaemonKind {
    /// A Docker daemon in a docker:dind service (`dockerd`, see `crate::builder::dind`).
    Docker,
    /// A standalone BuildKit daemon (`buildkitd`, see `crate::builder::buildkitd`), as buildx's
    /// `docker-container` and `kubernetes` drivers or a buildkitd Deployment run it.
    Buildkit,
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

/// The builders a job container can run (each has its home in `crate::builder`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum JobBuilder {
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
    pub builder: JobBuilder,
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
    /// through the daemon's API as a CI job's client would (`crate::builder::classic`).
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

    /// The job-container builders of the plan, in order.
    pub fn job_builders(&self) -> Vec<JobBuilder> {
        self.ops
            .iter()
            .filter_map(|op| match op {
                Op::JobBuild(request) => Some(request.builder),
                _ => None,
            })
            .collect()
    }

    /// The image the job pushes under its commit's tag: what `image_bytes` measures.
    pub fn image(&self) -> Option<&str> {
        self.ops.iter().find_map(|op| match op {
            Op::JobBuild(request) => request.destinations.first(),
            Op::Build { target: None, tags, .. } => tags.first(),
            _ => None,
        }).map(String::as_str)
    }

    /// The job's one job-container build, if it has one.
    pub fn job_build(&self) -> Option<&BuildRequest> {
        self.ops.iter().find_map(|op| match op {
            Op::JobBuild(request) => Some(request),
            _ => None,
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

/// What a builder or a daemon asks of the machine that runs it. A strategy's are the union of its
/// daemon's and its job builder's, shown in the report with the strategy's risk.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Privileges {
    /// Needs a privileged container (a dind daemon, buildkitd).
    pub privileged: bool,
    /// Kernel capabilities beyond Docker's default set, when not privileged.
    pub extra_capabilities: Vec<&'static str>,
    /// Security profiles it must run without (`seccomp`, `apparmor`).
    pub unconfined: Vec<&'static str>,
}

impl Privileges {
    /// Both sets of needs at once (a daemon and the job container beside it).
    pub fn union(mut self, other: &Privileges) -> Privileges {
        self.privileged |= other.privileged;
        for cap in &other.extra_capabilities {
            if !self.extra_capabilities.contains(cap) {
                self.extra_capabilities.push(cap);
            }
        }
        for profile in &other.unconfined {
            if !self.unconfined.contains(profile) {
                self.unconfined.push(profile);
            }
        }
        self
    }

    /// The privileges in words, then `risk`.
    pub fn summary(&self, risk: &str) -> String {
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
        format!("{}. {risk}", parts.join("; "))
    }
}

/// The risk of every strategy that runs a fresh dind daemon per job.
const DIND_RISK: &str = "A privileged daemon is root on its node; anything that can reach its API can be too.";

/// `docker build` of the final stage, tagged `<repo>:<commit>` and `<repo>:latest`, then pushed.
fn build_and_push_final(input: &PlanInput, cache_from: Vec<String>) -> Vec<Op> {
    let commit = format!("{}:{}", input.repository, input.commit_tag);
    let latest = format!("{}:latest", input.repository);
    vec![
        Op::Build { target: None, tags: vec![commit.clone(), latest.clone()], cache_from },
        Op::Push { image: commit },
        Op::Push { image: latest },
    ]
}

/// `<repo>:<commit>` and `<repo>:latest`: what every job pushes.
fn destinations(input: &PlanInput) -> Vec<String> {
    vec![format!("{}:{}", input.repository, input.commit_tag), format!("{}:latest", input.repository)]
}

/// One job-container build pushing to `destinations`.
fn job_build(builder: JobBuilder, input: &PlanInput, cache_from: Vec<CacheImport>, cache_to: Option<CacheExport>) -> Vec<Op> {
    vec![Op::JobBuild(BuildRequest { builder, destinations: destinations(input), cache_from, cache_to })]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_are_unique() {
        for strategy in Strategy::all() {
            assert_eq!(Strategy::parse(strategy.name()), Some(strategy));
            assert_eq!(Strategy::all().filter(|s| s.name() == strategy.name()).count(), 1, "{strategy}");
        }
        assert_eq!(Strategy::parse("nope"), None);
        let cold_every_time: Vec<_> = Strategy::all().filter(|k| !k.keeps_cache()).collect();
        assert_eq!(cold_every_time, [Strategy::named("ephemeral-dind")], "only ephemeral-dind reuses nothing");
        let serialized = serde_json::to_string(&Strategy::named("registry-multistage")).unwrap();
        assert_eq!(serialized, "\"registry-multistage\"");
        let back: Strategy = serde_json::from_str(&serialized).unwrap();
        assert_eq!(back, Strategy::named("registry-multistage"));
        assert_eq!(format!("[{:<14}]", Strategy::named("shared-dind")), "[shared-dind   ]", "widths pad, as a string's do");
        let unknown = serde_json::from_str::<Strategy>("\"nope\"").unwrap_err().to_string();
        assert!(unknown.contains("unknown strategy `nope`"), "{unknown}");
    }

    #[test]
    fn every_plan_agrees_with_its_declared_daemon() {
        for strategy in Strategy::all() {
            assert_eq!(strategy.sample_plan().daemon, strategy.daemon, "{strategy}");
        }
    }
}
