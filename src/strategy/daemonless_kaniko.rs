//! daemonless-kaniko: kaniko in a plain job container, caching `RUN` layers in a registry repository.

use super::*;

pub const STRATEGY: StrategyDef = StrategyDef {
    name: "daemonless-kaniko",
    description: "kaniko in a job container, layers cached in a registry repo; no daemon",
    job: "the kaniko executor in a plain job container: `--cache=true --cache-repo <repo>-cache`, two \
         `--destination`s",
    daemon: Daemon::None,
    image_store: ImageStore::GraphDriver,
    risk: "Runs as root in an unprivileged container and rewrites its own filesystem; no daemon is exposed.",
    ops: |input| super::daemonless::layer_repository(JobBuilder::Kaniko, input),
};
