//! daemonless: buildah or kaniko in a plain job container, caching layers in a registry repository.

use super::*;

pub struct Daemonless {
    pub builder: DaemonlessBuilder,
}

impl Strategy for Daemonless {
    fn kind(&self) -> StrategyKind {
        match self.builder {
            DaemonlessBuilder::Buildah => StrategyKind::Daemonless,
            DaemonlessBuilder::Kaniko => StrategyKind::DaemonlessKaniko,
        }
    }
    fn name(&self) -> &'static str {
        match self.builder {
            DaemonlessBuilder::Buildah => "daemonless",
            DaemonlessBuilder::Kaniko => "daemonless-kaniko",
        }
    }
    fn description(&self) -> &'static str {
        match self.builder {
            DaemonlessBuilder::Buildah => "buildah in a job container, layers cached in a registry repo; no daemon",
            DaemonlessBuilder::Kaniko => "kaniko in a job container, layers cached in a registry repo; no daemon",
        }
    }
    fn privileges(&self) -> Privileges {
        match self.builder {
            DaemonlessBuilder::Buildah => Privileges {
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
        JobPlan {
            daemon: self.daemon(),
            ops: vec![Op::DaemonlessBuild {
                builder: self.builder,
                destinations: vec![
                    format!("{}:{}", input.repository, input.commit_tag),
                    format!("{}:latest", input.repository),
                ],
                cache_repo: format!("{}-cache", input.repository),
            }],
        }
    }
}
