//! ephemeral-dind: a fresh docker-in-docker service per job, so every build starts cold.

use super::*;

pub struct EphemeralDind;

impl Strategy for EphemeralDind {
    fn kind(&self) -> StrategyKind {
        StrategyKind::EphemeralDind
    }
    fn name(&self) -> &'static str {
        "ephemeral-dind"
    }
    fn description(&self) -> &'static str {
        "a fresh dind service per job; every build starts cold"
    }
    fn privileges(&self) -> Privileges {
        DIND_PRIVILEGES
    }
    fn daemon(&self) -> Daemon {
        Daemon::Fresh(DaemonKind::Docker)
    }
    fn plan(&self, input: &PlanInput) -> JobPlan {
        JobPlan { daemon: self.daemon(), ops: build_and_push_final(input, vec![]) }
    }
}
