//! shared-dind: one persistent dind service with a volume on /var/lib/docker, shared by every job.

use super::*;

pub const STRATEGY: StrategyDef = StrategyDef {
    name: "shared-dind",
    description: "one long-lived dind service with a volume on /var/lib/docker, shared by every job",
    job: "one long-lived dind per iteration with a volume on `/var/lib/docker`, used by every job: `build`, \
         push",
    daemon: Daemon::Shared(DaemonKind::Docker),
    image_store: ImageStore::GraphDriver,
    risk: "A privileged daemon is root on its node, and every job (any branch, any project that can reach it) \
           shares its unauthenticated API and its cache.",
    ops: |input| build_and_push_final(input, vec![]),
};
