//! registry-multistage: every stage before the final one is built with `--target`, pushed and used as cache.

use super::*;

pub const STRATEGY: StrategyDef = StrategyDef {
    name: "registry-multistage",
    description: "fresh dind per job; every stage built with --target, pushed and used as --cache-from",
    job: "fresh dind; pull every stage image and `:latest`; `build --target <stage> --cache-from <stage images \
         so far>` for every stage before the final one, then the final build with `--cache-from` all of them; \
         push every stage, `<commit>`, `latest`. Works for any number of stages",
    daemon: Daemon::Fresh(DaemonKind::Docker),
    image_store: ImageStore::GraphDriver,
    risk: DIND_RISK,
    ops: plan,
};

/// `<repo>-<stage label>:latest` for each stage before the final one, in Dockerfile order.
fn stage_images(input: &PlanInput) -> Vec<(String, String)> {
    let stages = &input.dockerfile.stages;
    stages[..stages.len() - 1]
        .iter()
        .map(|s| (s.label(), format!("{}-{}:latest", input.repository, s.label())))
        .collect()
}

fn plan(input: &PlanInput) -> Vec<Op> {
    let stages = stage_images(input);
    let latest = format!("{}:latest", input.repository);
    let mut ops: Vec<Op> = stages.iter().map(|(_, image)| Op::Pull { image: image.clone() }).collect();
    ops.push(Op::Pull { image: latest.clone() });
    // Each stage may reuse the layers of every stage pushed before it.
    let mut cache_from = vec![];
    for (label, image) in &stages {
        cache_from.push(image.clone());
        ops.push(Op::Build { target: Some(label.clone()), tags: vec![image.clone()], cache_from: cache_from.clone() });
    }
    cache_from.push(latest);
    let final_ops = build_and_push_final(input, cache_from);
    let (build, pushes) = final_ops.split_at(1);
    ops.extend_from_slice(build);
    ops.extend(stages.into_iter().map(|(_, image)| Op::Push { image }));
    ops.extend_from_slice(pushes);
    ops
}
