//! buildkit-inline: fresh dind per job, `docker buildx build` with inline cache in the pushed image (`mode=min`).

use super::*;

pub struct BuildkitInline;

impl Strategy for BuildkitInline {
    fn kind(&self) -> StrategyKind {
        StrategyKind::BuildkitInline
    }
    fn name(&self) -> &'static str {
        "buildkit-inline"
    }
    fn description(&self) -> &'static str {
        "fresh dind per job; buildx with --cache-from :latest and inline cache (final stage only)"
    }
    fn privileges(&self) -> Privileges {
        DIND_PRIVILEGES
    }
    fn daemon(&self) -> Daemon {
        Daemon::Fresh(DaemonKind::Docker)
    }
    fn image_store(&self) -> ImageStore {
        ImageStore::GraphDriver
    }
    fn plan(&self, input: &PlanInput) -> JobPlan {
        let latest = format!("{}:latest", input.repository);
        JobPlan {
            daemon: self.daemon(),
            ops: vec![Op::JobBuild(BuildRequest {
                builder: DaemonlessBuilder::Buildx,
                destinations: destinations(input),
                cache_from: vec![CacheImport::Registry { reference: latest }],
                // Inline cache describes the final stage only: the builder stage is never cached.
                cache_to: Some(CacheExport::Inline),
            })],
        }
    }
}
