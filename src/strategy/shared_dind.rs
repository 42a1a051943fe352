//! shared-dind: one persistent dind service with a volume on /var/lib/docker, shared by every job.

use super::*;

pub struct SharedDind;

impl Strategy for SharedDind {
    fn kind(&self) -> StrategyKind {
        StrategyKind::SharedDind
    }
    fn name(&self) -> &'static str {
        "shared-dind"
    }
    fn description(&self) -> &'static str {
        "one long-lived dind service with a volume on /var/lib/docker, shared by every job"
    }
    fn privileges(&self) -> Privileges {
        Privileges {
            risk: "A privileged daemon is root on its node, and every job (any branch, any project \
                   that can reach it) shares its unauthenticated API and its cache.",
            ..DIND_PRIVILEGES
        }
    }
    fn daemon(&self) -> Daemon {
        Daemon::Shared(DaemonKind::Docker)
    }
    fn plan(&self, input: &PlanInput) -> JobPlan {
        JobPlan { daemon: self.daemon(), ops: build_and_push_final(input, vec![]) }
    }
}
