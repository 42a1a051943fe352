//! buildkit-daemon: a fresh standalone buildkitd per job driven by `buildctl`, with no Docker daemon at all and
//! BuildKit's registry cache (`mode=max`), as buildx's `docker-container` and `kubernetes` drivers run it.

use super::*;

pub const STRATEGY: StrategyDef = StrategyDef {
    name: "buildkit-daemon",
    description: "fresh standalone buildkitd per job, buildctl with a registry cache ref, mode=max",
    job: "a fresh standalone `buildkitd` service per job (buildx's `docker-container` / `kubernetes` driver \
         pattern); the job runs `buildctl build --import-cache type=registry,ref=<repo>:buildcache \
         --export-cache type=registry,ref=<repo>:buildcache,mode=max,oci-mediatypes=true,image-manifest=true \
         --output type=image,push=true`",
    daemon: Daemon::Fresh(DaemonKind::Buildkit),
    image_store: ImageStore::GraphDriver,
    risk: "buildkitd runs privileged (root on its node) and its gRPC API is unauthenticated on the job's network. \
           Rootless buildkitd needs no privileged mode but seccomp and AppArmor unconfined; not measured here.",
    ops: |input| super::buildkit_registry::registry_cache(JobBuilder::Buildctl, input),
};
