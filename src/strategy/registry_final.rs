//! registry-final: pull `:latest`, build `--cache-from` it, push; only the final stage is cached.

use super::*;

pub const STRATEGY: StrategyDef = StrategyDef {
    name: "registry-final",
    description: "fresh dind per job; pull :latest, build --cache-from it, push (final stage only)",
    job: "fresh dind; `pull :latest`, `build --cache-from :latest`, push `<commit>` and `latest` (only the \
         final stage is ever pushed)",
    daemon: Daemon::Fresh(DaemonKind::Docker),
    image_store: ImageStore::GraphDriver,
    risk: DIND_RISK,
    ops: plan,
};

fn plan(input: &PlanInput) -> Vec<Op> {
    let latest = format!("{}:latest", input.repository);
    let mut ops = vec![Op::Pull { image: latest.clone() }];
    ops.extend(build_and_push_final(input, vec![latest]));
    ops
}
