//! daemonless: buildah in a plain job container, caching layers in a registry repository.

use super::*;

pub const STRATEGY: StrategyDef = StrategyDef {
    name: "daemonless",
    description: "buildah in a job container, layers cached in a registry repo; no daemon",
    job: "buildah in a plain job container: `bud --layers --cache-from/--cache-to <repo>-cache`, push",
    daemon: Daemon::None,
    image_store: ImageStore::GraphDriver,
    risk: "No daemon and no privileged mode; SYS_ADMIN without seccomp is still broad inside the job container.",
    ops: |input| layer_repository(JobBuilder::Buildah, input),
};

/// A daemonless builder's job: its layers cached in `<repo>-cache`, imported and exported.
pub(super) fn layer_repository(builder: JobBuilder, input: &PlanInput) -> Vec<Op> {
    let cache = format!("{}-cache", input.repository);
    job_build(
        builder,
        input,
        vec![CacheImport::Registry { reference: cache.clone() }],
        Some(CacheExport::Registry { reference: cache, every_stage: true }),
    )
}
