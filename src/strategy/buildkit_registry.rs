//! buildkit-registry: fresh dind per job, BuildKit's registry cache with `mode=max` (every stage) in its own ref.

use super::*;

pub struct BuildkitRegistry;

impl Strategy for BuildkitRegistry {
    fn kind(&self) -> StrategyKind {
        StrategyKind::BuildkitRegistry
    }
    fn name(&self) -> &'static str {
        "buildkit-registry"
    }
    fn description(&self) -> &'static str {
        "fresh dind per job; buildx with a registry cache ref, mode=max (every stage cached)"
    }
    fn privileges(&self) -> Privileges {
        DIND_PRIVILEGES
    }
    fn daemon(&self) -> Daemon {
        Daemon::Fresh(DaemonKind::Docker)
    }
    fn image_store(&self) -> ImageStore {
        ImageStore::Containerd
    }
    fn plan(&self, input: &PlanInput) -> JobPlan {
        let cache = format!("{}:buildcache", input.repository);
        JobPlan {
            daemon: self.daemon(),
            ops: vec![Op::JobBuild(BuildRequest {
                builder: DaemonlessBuilder::Buildx,
                destinations: destinations(input),
                cache_from: vec![CacheImport::Registry { reference: cache.clone() }],
                cache_to: Some(CacheExport::Registry { reference: cache, every_stage: true }),
            })],
        }
    }
}
