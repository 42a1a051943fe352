//! buildkit-daemon-shared: one standalone buildkitd per iteration with its state on a volume, shared by every
//! job (the buildkitd Deployment pattern), driven by `buildctl`.

use super::*;

pub const STRATEGY: StrategyDef = StrategyDef {
    name: "buildkit-daemon-shared",
    description: "one long-lived standalone buildkitd with a volume, shared by every job (local cache)",
    job: "one long-lived `buildkitd` per iteration with a volume on `/var/lib/buildkit` (the buildkitd \
         Deployment pattern), used by every job: `buildctl build --output type=image,push=true`, no cache \
         import or export",
    daemon: Daemon::Shared(DaemonKind::Buildkit),
    image_store: ImageStore::GraphDriver,
    risk: "buildkitd runs privileged (root on its node), and every job of the strategy shares its unauthenticated \
           gRPC API and its cache.",
    ops: |input| job_build(JobBuilder::Buildctl, input, vec![], None),
};
