//! buildkit-shared: the shared persistent dind of shared-dind, driven with BuildKit; its local cache survives between jobs.

use super::*;

pub struct BuildkitShared;

impl Strategy for BuildkitShared {
    fn kind(&self) -> StrategyKind {
        StrategyKind::BuildkitShared
    }
    fn name(&self) -> &'static str {
        "buildkit-shared"
    }
    fn description(&self) -> &'static str {
        "one long-lived dind with a volume, shared by every job, built with buildx (local BuildKit cache)"
    }
    fn privileges(&self) -> Privileges {
        Privileges {
            risk: "A privileged daemon is root on its node, and every job of the strategy shares its \
                   unauthenticated API and its BuildKit cache.",
            ..DIND_PRIVILEGES
        }
    }
    fn daemon(&self) -> Daemon {
        Daemon::Shared(DaemonKind::Docker)
    }
    fn image_store(&self) -> ImageStore {
        ImageStore::GraphDriver
    }
    fn plan(&self, input: &PlanInput) -> JobPlan {
        JobPlan {
            daemon: self.daemon(),
            ops: vec![Op::JobBuild(BuildRequest {
                builder: DaemonlessBuilder::Buildx,
                destinations: destinations(input),
                cache_from: vec![],
                cache_to: None,
            })],
        }
    }
}
