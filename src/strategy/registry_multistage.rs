//! registry-multistage: every stage before the final one is built with `--target`, pushed and used as cache.

use super::*;

pub struct RegistryMultistage;

impl RegistryMultistage {
    /// `<repo>-<stage label>:latest` for each stage before the final one, in Dockerfile order.
    fn stage_images(input: &PlanInput) -> Vec<(String, String)> {
        let stages = &input.dockerfile.stages;
        stages[..stages.len() - 1]
            .iter()
            .map(|s| (s.label(), format!("{}-{}:latest", input.repository, s.label())))
            .collect()
    }
}

impl Strategy for RegistryMultistage {
    fn kind(&self) -> StrategyKind {
        StrategyKind::RegistryMultistage
    }
    fn name(&self) -> &'static str {
        "registry-multistage"
    }
    fn description(&self) -> &'static str {
        "fresh dind per job; every stage built with --target, pushed and used as --cache-from"
    }
    fn privileges(&self) -> Privileges {
        DIND_PRIVILEGES
    }
    fn daemon(&self) -> Daemon {
        Daemon::Fresh(DaemonKind::Docker)
    }
    fn plan(&self, input: &PlanInput) -> JobPlan {
        let stages = Self::stage_images(input);
        let latest = format!("{}:latest", input.repository);
        let mut ops: Vec<Op> = stages.iter().map(|(_, image)| Op::Pull { image: image.clone() }).collect();
        ops.push(Op::Pull { image: latest.clone() });
        // Each stage may reuse the layers of every stage pushed before it.
        let mut cache_from = vec![];
        for (label, image) in &stages {
            cache_from.push(image.clone());
            ops.push(Op::Build {
                target: Some(label.clone()),
                tags: vec![image.clone()],
                cache_from: cache_from.clone(),
            });
        }
        cache_from.push(latest);
        let final_ops = build_and_push_final(input, cache_from);
        let (build, pushes) = final_ops.split_at(1);
        ops.extend_from_slice(build);
        ops.extend(stages.into_iter().map(|(_, image)| Op::Push { image }));
        ops.extend_from_slice(pushes);
        JobPlan { daemon: self.daemon(), ops }
    }
}
