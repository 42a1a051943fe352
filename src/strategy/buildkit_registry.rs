//! buildkit-registry: fresh dind per job, BuildKit's registry cache with `mode=max` (every stage) in its own ref.

use super::*;

pub const STRATEGY: StrategyDef = StrategyDef {
    name: "buildkit-registry",
    description: "fresh dind per job; buildx with a registry cache ref, mode=max (every stage cached)",
    job: "fresh dind with the containerd image store; `docker buildx build --cache-from \
         type=registry,ref=<repo>:buildcache --cache-to \
         type=registry,ref=<repo>:buildcache,mode=max,oci-mediatypes=true,image-manifest=true --push`",
    daemon: Daemon::Fresh(DaemonKind::Docker),
    image_store: ImageStore::Containerd,
    risk: DIND_RISK,
    ops: |input| registry_cache(JobBuilder::Buildx, input),
};

/// BuildKit's registry cache in `<repo>:buildcache`, `mode=max`, imported and exported.
pub(super) fn registry_cache(builder: JobBuilder, input: &PlanInput) -> Vec<Op> {
    let cache = format!("{}:buildcache", input.repository);
    job_build(
        builder,
        input,
        vec![CacheImport::Registry { reference: cache.clone() }],
        Some(CacheExport::Registry { reference: cache, every_stage: true }),
    )
}
