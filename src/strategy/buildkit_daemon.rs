//! buildkit-daemon and buildkit-daemon-shared: a standalone buildkitd driven by `buildctl`, with no Docker
//! daemon at all. Fresh per job with BuildKit's registry cache (`mode=max`), as buildx's `docker-container`
//! and `kubernetes` drivers run it; or one per iteration with its state on a volume, shared by every job (the
//! buildkitd Deployment pattern).

use super::*;

pub struct BuildkitDaemon {
    /// One daemon per iteration, its local cache shared by every job; else a fresh one per job.
    pub shared: bool,
}

impl Strategy for BuildkitDaemon {
    fn kind(&self) -> StrategyKind {
        match self.shared {
            false => StrategyKind::BuildkitDaemon,
            true => StrategyKind::BuildkitDaemonShared,
        }
    }
    fn name(&self) -> &'static str {
        match self.shared {
            false => "buildkit-daemon",
            true => "buildkit-daemon-shared",
        }
    }
    fn description(&self) -> &'static str {
        match self.shared {
            false => "fresh standalone buildkitd per job, buildctl with a registry cache ref, mode=max",
            true => "one long-lived standalone buildkitd with a volume, shared by every job (local cache)",
        }
    }
    fn privileges(&self) -> Privileges {
        Privileges {
            privileged: true,
            extra_capabilities: &[],
            unconfined: &[],
            risk: match self.shared {
                false => "buildkitd runs privileged (root on its node) and its gRPC API is unauthenticated on \
                          the job's network. Rootless buildkitd needs no privileged mode but seccomp and \
                          AppArmor unconfined; not measured here.",
                true => "buildkitd runs privileged (root on its node), and every job of the strategy shares \
                         its unauthenticated gRPC API and its cache.",
            },
        }
    }
    fn daemon(&self) -> Daemon {
        match self.shared {
            false => Daemon::Fresh(DaemonKind::Buildkit),
            true => Daemon::Shared(DaemonKind::Buildkit),
        }
    }
    fn plan(&self, input: &PlanInput) -> JobPlan {
        let cache = format!("{}:buildcache", input.repository);
        let (cache_from, cache_to) = match self.shared {
            false => (
                vec![CacheImport::Registry { reference: cache.clone() }],
                Some(CacheExport::Registry { reference: cache, every_stage: true }),
            ),
            true => (vec![], None),
        };
        JobPlan {
            daemon: self.daemon(),
            ops: vec![Op::JobBuild(BuildRequest {
                builder: DaemonlessBuilder::Buildctl,
                destinations: destinations(input),
                cache_from,
                cache_to,
            })],
        }
    }
}
