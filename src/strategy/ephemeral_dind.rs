//! ephemeral-dind: a fresh docker-in-docker service per job, so every build starts cold.

use super::*;

pub const STRATEGY: StrategyDef = StrategyDef {
    name: "ephemeral-dind",
    description: "a fresh dind service per job; every build starts cold",
    job: "a fresh dind service; `build`, tag `<commit>` and `latest`, push both",
    daemon: Daemon::Fresh(DaemonKind::Docker),
    image_store: ImageStore::GraphDriver,
    risk: DIND_RISK,
    ops: |input| build_and_push_final(input, vec![]),
};
