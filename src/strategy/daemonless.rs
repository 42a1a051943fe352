//! daemonless: buildah or kaniko in a plain job container, caching layers in a registry repository.

use super::*;

pub struct Daemonless {
    pub builder: DaemonlessBuilder,
}

impl Strategy for Daemonless {
    fn kind(&self) -> StrategyKind {
        match self.builder {
            DaemonlessBuilder::Kaniko => StrategyKind::DaemonlessKaniko,
            _ => StrategyKind::Daemonless,
        }
    }
    fn name(&self) -> &'static str {
        match self.builder {
            DaemonlessBuilder::Kaniko => "daemonless-kaniko",
            _ => "daemonless",
        }
    }
    fn description(&self) -> &'static str {
        match self.builder {
            DaemonlessBuilder::Kaniko => "kaniko in a job container, layers cached in a registry repo; no daemon",
            _ => "buildah in a job container, layers cached in a registry repo; no daemon",
        }
    }
    fn privileges(&self) -> Privileges {
        match self.builder {
            DaemonlessBuilder::Buildah | DaemonlessBuilder::Buildx | DaemonlessBuilder::Buildctl => Privileges {
                privileged: false,
                extra_capabilities: &["SYS_ADMIN"],
                unconfined: &["seccomp", "apparmor"],
                risk: "No daemon and no privileged mode; SYS_ADMIN without seccomp is still broad \
                       inside the job container.",
            },
            DaemonlessBuilder::Kaniko => Privileges {
                privileged: false,
                extra_capabilities: &[],
                unconfined: &[],
                risk: "Runs as root in an unprivileged container and rewrites its own filesystem; \
                       no daemon is exposed.",
            },
        }
    }
    fn daemon(&self) -> Daemon {
        Daemon::None
    }
    fn plan(&self, input: &PlanInput) -> JobPlan {
        let cache = format!("{}-cache", input.repository);
        JobPlan {
            daemon: self.daemon(),
            ops: vec![Op::JobBuild(BuildRequest {
                builder: self.builder,
                destinations: destinations(input),
                cache_from: vec![CacheImport::Registry { reference: cache.clone() }],
                cache_to: Some(CacheExport::Registry { reference: cache, every_stage: true }),
            })],
        }
    }
}
