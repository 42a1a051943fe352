//! registry-final: pull `:latest`, build `--cache-from` it, push; only the final stage is cached.

use super::*;

pub struct RegistryFinal;

impl Strategy for RegistryFinal {
    fn kind(&self) -> StrategyKind {
        StrategyKind::RegistryFinal
    }
    fn name(&self) -> &'static str {
        "registry-final"
    }
    fn description(&self) -> &'static str {
        "fresh dind per job; pull :latest, build --cache-from it, push (final stage only)"
    }
    fn privileges(&self) -> Privileges {
        DIND_PRIVILEGES
    }
    fn daemon(&self) -> Daemon {
        Daemon::Fresh(DaemonKind::Docker)
    }
    fn plan(&self, input: &PlanInput) -> JobPlan {
        let latest = format!("{}:latest", input.repository);
        let mut ops = vec![Op::Pull { image: latest.clone() }];
        ops.extend(build_and_push_final(input, vec![latest]));
        JobPlan { daemon: self.daemon(), ops }
    }
}
