//! buildkit-shared: the shared persistent dind of shared-dind, driven with BuildKit; its local cache survives between jobs.

use super::*;

pub const STRATEGY: StrategyDef = StrategyDef {
    name: "buildkit-shared",
    description: "one long-lived dind with a volume, shared by every job, built with buildx (local BuildKit cache)",
    job: "the shared persistent dind of shared-dind, driven with `docker buildx build --push`: BuildKit's \
         local cache survives between jobs",
    daemon: Daemon::Shared(DaemonKind::Docker),
    image_store: ImageStore::GraphDriver,
    risk: "A privileged daemon is root on its node, and every job of the strategy shares its unauthenticated API \
           and its BuildKit cache.",
    ops: |input| job_build(JobBuilder::Buildx, input, vec![], None),
};
