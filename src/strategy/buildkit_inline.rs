//! buildkit-inline: fresh dind per job, `docker buildx build` with inline cache in the pushed image (`mode=min`).

use super::*;

pub const STRATEGY: StrategyDef = StrategyDef {
    name: "buildkit-inline",
    description: "fresh dind per job; buildx with --cache-from :latest and inline cache (final stage only)",
    job: "fresh dind; a `docker:28` job runs `docker buildx build --cache-from type=registry,ref=<repo>:latest \
         --cache-to type=inline --push`",
    daemon: Daemon::Fresh(DaemonKind::Docker),
    image_store: ImageStore::GraphDriver,
    risk: DIND_RISK,
    // Inline cache describes the final stage only: the builder stage is never cached.
    ops: |input| {
        let latest = format!("{}:latest", input.repository);
        job_build(JobBuilder::Buildx, input, vec![CacheImport::Registry { reference: latest }], Some(CacheExport::Inline))
    },
};
