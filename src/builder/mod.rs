//! The builders a CI job runs and the daemons they drive, one home each. A builder's home holds its job
//! command (or, for the classic builder, the Engine API calls a CI job's client makes), its log parser, the
//! phases its script marks, the image role it runs in and the privileges its container needs:
//! - `classic/`: `docker build` through a dind's API;
//! - `buildah/`, `kaniko/`: daemonless builders in a job container;
//! - `buildkit/`: BuildKit's clients, `docker buildx` (against a dind) and `buildctl` (against a buildkitd);
//! - `dind`, `buildkitd`: the daemons.
//!
//! Both backends place what these return (a container on the engine, a pod on Kubernetes) and follow its log
//! through [`JobLog`]; nothing about a builder is written in a backend.

pub mod buildah;
pub mod buildkit;
pub mod buildkitd;
pub mod classic;
mod command;
pub mod dind;
mod job_log;
pub mod kaniko;
pub mod log;
mod tracker;

pub use command::{
    phase_marked, shell_word, shell_words, BuilderHome, ConfigFile, DaemonHome, DaemonLaunch, DaemonSetup, DaemonVersion, Endpoints,
    JobCommand, VersionLine, CONTEXT_DIR, PHASE_MARK,
};
pub use job_log::{FinishedLog, JobLog};

use std::collections::BTreeSet;
use std::path::Path;

use crate::cause::{Cause, CacheScope};
use crate::dockerfile::Dockerfile;
use crate::strategy::{BuildRequest, CacheExport, DaemonKind, JobBuilder, Op, PlanInput, Privileges, Strategy};
use crate::toolchain::Role;


/// The home of a job-container builder.
pub fn home(builder: JobBuilder) -> &'static BuilderHome {
    match builder {
        JobBuilder::Buildah => &buildah::HOME,
        JobBuilder::Kaniko => &kaniko::HOME,
        JobBuilder::Buildx => &buildkit::buildx::HOME,
        JobBuilder::Buildctl => &buildkit::buildctl::HOME,
    }
}

/// The home of a daemon.
pub fn daemon(kind: DaemonKind) -> &'static DaemonHome {
    match kind {
        DaemonKind::Docker => &dind::HOME,
        DaemonKind::Buildkit => &buildkitd::HOME,
    }
}

/// What a strategy's jobs need of the machine: its daemon's and its job builder's privileges together.
pub fn privileges(strategy: Strategy) -> Privileges {
    let daemon = strategy.daemon.kind().map(|k| (daemon(k).privileges)()).unwrap_or_default();
    strategy.job_builders().into_iter().fold(daemon, |all, b| all.union(&(home(b).privileges)()))
}

/// A strategy's privileges in words, with its risk: what the report and `run.json` show.
pub fn privilege_summary(strategy: Strategy) -> String {
    privileges(strategy).summary(strategy.risk)
}

/// What a strategy's cache can hold, read off its plan for `dockerfile` and its builder's home:
/// - a shared daemon holds every stage;
/// - a classic `--cache-from` holds the stages whose pushed images the plan pulls back as cache (registry-final
///   pushes only the final stage, registry-multistage every stage);
/// - BuildKit's inline cache, and a registry cache in `mode=min`, hold the final stage; `mode=max`, buildah's
///   and kaniko's layer repositories every stage;
/// - a builder may never cache some instructions (kaniko's `COPY`).
pub fn cache_scope(strategy: Strategy, dockerfile: &Dockerfile) -> CacheScope {
    let plan = strategy.plan(&PlanInput { repository: "registry:5000/app", commit_tag: "c1", dockerfile });
    let mut scope = CacheScope { keeps: plan.reuses_cache(), ..CacheScope::default() };
    let final_stage = dockerfile.final_stage().label();
    let cache_images: BTreeSet<&String> = plan
        .ops
        .iter()
        .flat_map(|op| match op {
            Op::Build { cache_from, .. } => cache_from.iter().collect::<Vec<_>>(),
            _ => vec![],
        })
        .collect();
    let mut held: BTreeSet<String> = BTreeSet::new();
    let mut gap = Cause::StageNotPushed;
    for op in &plan.ops {
        match op {
            Op::Build { target, tags, .. } if tags.iter().any(|t| cache_images.contains(t)) => {
                held.insert(target.clone().unwrap_or_else(|| final_stage.clone()));
            }
            Op::JobBuild(request) => {
                scope.instruction_gaps.extend(home(request.builder).uncached.iter().copied());
                match &request.cache_to {
                    Some(CacheExport::Registry { every_stage: true, .. }) => held.extend(dockerfile.stages.iter().map(|s| s.label())),
                    Some(_) => {
                        held.insert(final_stage.clone());
                        gap = Cause::InlineFinalStageOnly;
                    }
                    None => {}
                }
            }
            _ => {}
        }
    }
    if scope.keeps && !plan.daemon.is_shared() {
        scope.stage_gaps = dockerfile.stages.iter().map(|s| s.label()).filter(|l| !held.contains(l)).map(|l| (l, gap)).collect();
    }
    scope
}

/// The toolchain images a run of `strategies` needs: the base image (the mirror serves it) and the
/// registry always, the image of each daemon a strategy runs and of each builder its jobs run.
pub fn image_roles(strategies: &[Strategy]) -> BTreeSet<Role> {
    let mut roles = BTreeSet::from([Role::Base, Role::Registry]);
    for strategy in strategies {
        roles.extend(strategy.daemon.kind().map(|k| daemon(k).role));
        roles.extend(strategy.job_builders().into_iter().map(|b| home(b).role));
    }
    roles
}

/// The job command of `request`, with the Dockerfile at `dockerfile` relative to the context.
/// Every value from the scenario reaches the command as a single argument or a quoted shell word.
pub fn job_command(request: &BuildRequest, dockerfile: &Path, endpoints: &Endpoints) -> JobCommand {
    let dockerfile = format!("{CONTEXT_DIR}/{}", dockerfile.display());
    (home(request.builder).command)(request, &dockerfile, endpoints)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strategy::{CacheExport, CacheImport};

    fn request(builder: JobBuilder) -> BuildRequest {
        BuildRequest {
            builder,
            destinations: vec!["registry:5000/s/app:c1".into(), "registry:5000/s/app:latest".into()],
            cache_from: vec![CacheImport::Registry { reference: "registry:5000/s/app-cache".into() }],
            cache_to: Some(CacheExport::Registry { reference: "registry:5000/s/app-cache".into(), every_stage: true }),
        }
    }

    const ENDPOINTS: Endpoints<'static> =
        Endpoints { registry: "registry:5000", hub_mirror: Some("mirror:5000"), daemon_host: Some("tcp://docker:2375") };

    /// Runs the script through a real shell with every command replaced by `printf` of its
    /// arguments, so quoting is proven by what the shell hands the program, not by reading the text.
    #[test]
    fn a_hostile_dockerfile_path_reaches_the_builder_as_one_argument() {
        let path = Path::new("dir with 'quote' $(touch pwned)/Dockerfile");
        for builder in [JobBuilder::Buildah, JobBuilder::Buildx, JobBuilder::Buildctl] {
            let command = job_command(&request(builder), path, &ENDPOINTS);
            let script = &command.args[0];
            let stubbed = format!(
                "buildah() {{ printf '<%s>' \"$@\"; echo; }}\ndocker() {{ printf '<%s>' \"$@\"; echo; }}\nbuildctl() {{ printf '<%s>' \"$@\"; echo; }}\ncat() {{ :; }}\nmkdir() {{ :; }}\n{}",
                script.replace("> /etc/containers/registries.conf", "> /dev/null")
            );
            let dir = tempfile::tempdir().unwrap();
            let out = std::process::Command::new("sh").arg("-c").arg(&stubbed).current_dir(dir.path()).output().unwrap();
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(out.status.success(), "{builder:?}: {}", String::from_utf8_lossy(&out.stderr));
            // buildah's `-f` takes a CSV field (see buildah.rs); buildx's the path itself; buildctl its directory.
            let expected = match builder {
                JobBuilder::Buildah => "<\"/workspace/dir with 'quote' $(touch pwned)/Dockerfile\">",
                JobBuilder::Buildctl => "<dockerfile=/workspace/dir with 'quote' $(touch pwned)>",
                _ => "</workspace/dir with 'quote' $(touch pwned)/Dockerfile>",
            };
            assert!(stdout.contains(expected), "{builder:?}: {stdout}");
            assert!(!dir.path().join("pwned").exists(), "{builder:?}: the path ran a command");
        }
        let kaniko = job_command(&request(JobBuilder::Kaniko), path, &ENDPOINTS);
        assert!(kaniko.args.contains(&"--dockerfile=/workspace/dir with 'quote' $(touch pwned)/Dockerfile".to_string()));
    }

    #[test]
    fn version_lines_give_the_word_after_their_prefix() {
        let buildah = job_command(&request(JobBuilder::Buildah), Path::new("Dockerfile"), &ENDPOINTS).version.unwrap();
        assert_eq!(buildah.version("buildah version 1.28.2 (image-spec 1.0.2-dev, runtime-spec 1.0.2-dev)").as_deref(), Some("1.28.2"));
        assert_eq!(buildah.version("STEP 1/11: FROM python"), None);
        let buildctl = job_command(&request(JobBuilder::Buildctl), Path::new("Dockerfile"), &ENDPOINTS).version.unwrap();
        assert_eq!(buildctl.version("buildctl github.com/moby/buildkit v0.34.2 ").as_deref(), Some("v0.34.2"));
    }

    /// Each strategy's privileges are its daemon's and its builder's, so the two backends (which read
    /// them from the homes) and the report (which states them) say the same thing.
    #[test]
    fn a_strategys_privileges_are_its_daemons_and_its_builders() {
        let of = |name: &str| privileges(Strategy::named(name));
        assert!(of("shared-dind").privileged && of("buildkit-inline").privileged && of("buildkit-daemon").privileged);
        assert_eq!(of("daemonless"), Privileges { privileged: false, extra_capabilities: vec!["SYS_ADMIN"], unconfined: vec!["seccomp", "apparmor"] });
        assert_eq!(of("daemonless-kaniko"), Privileges::default());
        assert!(privilege_summary(Strategy::named("daemonless-kaniko")).starts_with("no extra privileges. "));
        let roles: Vec<Role> = image_roles(&[Strategy::named("buildkit-inline")]).into_iter().collect();
        assert_eq!(roles, [Role::Base, Role::Dind, Role::Registry, Role::Job], "buildx runs in the job image against a dind");
        assert_eq!(image_roles(&Strategy::all().collect::<Vec<_>>()).len(), 7);
    }
}
