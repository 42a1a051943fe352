//! `layerbench manifests`: the objects the kube backend would apply for one strategy, as YAML for `kubectl apply -f`.

use super::manifests::{self, JobDaemon, JobMeta, Object, RunMeta};
use super::{names, KubeOptions};
use crate::backend::BackendError;
use crate::builder;
use crate::pipeline::PipelineRunName;
use crate::scenario::Scenario;
use crate::strategy::{Daemon, DaemonKind, JobPlan, PlanInput, Strategy};

/// Run id of objects printed by `layerbench manifests`; a real run labels with its own id.
pub const MANIFESTS_RUN_ID: &str = "manifests";

/// Everything the kube backend would apply for `strategy`, as multi-document YAML for
/// `kubectl apply -f`: the namespace, the registry, and the objects of the first job.
pub fn manifests_yaml(scenario: &Scenario, strategy: Strategy, options: &KubeOptions) -> Result<String, BackendError> {
    let run = run_meta(scenario, options)?;
    let repository = format!("{}/{}/{}", manifests::REGISTRY_HOST, strategy.name(), scenario.repository);
    let first_run = scenario.pipeline.first().map(|p| p.name.clone()).unwrap_or_else(|| PipelineRunName::new("first"));
    // The tag the runner gives the first pipeline run's job.
    let commit_tag = format!("c1-{first_run}");
    let plan = strategy.plan(&PlanInput { repository: &repository, commit_tag: &commit_tag, dockerfile: &scenario.dockerfile });
    let job = JobMeta {
        name: names::job_name(crate::lanes::Lane::ALONE, 1, 0, strategy.name()),
        iteration: 1,
        pipeline_index: 0,
        pipeline_run: &first_run,
        strategy,
    };

    let mut objects = vec![];
    if options.namespace.is_none() {
        objects.push(Object::Namespace(manifests::namespace(&run)));
    }
    let registry = manifests::registry(&run, &options.images, 1);
    objects.extend([Object::ConfigMap(registry.config), Object::Deployment(registry.deployment), Object::Service(registry.service)]);
    objects.extend(manifests::daemon_config(&run, &options.images, strategy).map(Object::ConfigMap));
    let mut notes = vec![
        format!("layerbench manifests: scenario {}, strategy {strategy}", scenario.name),
        builder::privilege_summary(strategy),
        format!("Objects carry {}={MANIFESTS_RUN_ID}; a run labels them with its own run id.", crate::RUN_ID_LABEL),
    ];
    let (job_objects, note, daemon_host) = job_objects(scenario, strategy, &plan, &run, &job, options)?;
    objects.extend(job_objects);
    notes.push(note);
    notes.extend(plan.ops.iter().map(|op| format!("  {}", manifests::op_as_command(op, &scenario.dockerfile_path, &options.images, daemon_host.as_deref()))));
    yaml(&notes, &objects)
}

/// How a strategy's jobs map onto the cluster, in words, read off its plan and the homes as the backend places
/// them: the README's table of strategies (`layerbench strategies --markdown`).
pub fn placement(strategy: Strategy) -> String {
    let plan = strategy.sample_plan();
    let builder = plan.job_build().map(|request| builder::home(request.builder).name);
    let shared = |kind: DaemonKind| {
        let home = builder::daemon(kind);
        format!(
            "its own {} Deployment `{}` (one pod, its state on a claim), Service and NetworkPolicy",
            home.service_name,
            names::shared_daemon_name(strategy)
        )
    };
    match (plan.daemon, builder) {
        (Daemon::Fresh(DaemonKind::Docker), None) => "a job pod with a dind container on the pod's loopback, driven through a port-forward".into(),
        (Daemon::Shared(kind), None) => format!("{}, driven through a port-forward", shared(kind)),
        (Daemon::None, Some(name)) => format!("a job pod running {name}, the context in ConfigMaps"),
        (Daemon::Fresh(DaemonKind::Docker), Some(name)) => format!("a job pod running {name}, its dind a native sidecar on the pod's loopback"),
        (Daemon::Fresh(kind), Some(name)) => format!(
            "a {} pod of the job's own (as buildx's `kubernetes` driver) with a Service and a NetworkPolicy for that job, then a job pod running {name}",
            builder::daemon(kind).service_name
        ),
        (Daemon::Shared(kind), Some(name)) => format!("a job pod running {name} against {}", shared(kind)),
        (daemon, None) => format!("no build to run on {daemon:?}"),
    }
}

/// The run a printout stands for: the namespace `--namespace` names, or the one a run would create.
fn run_meta(scenario: &Scenario, options: &KubeOptions) -> Result<RunMeta, BackendError> {
    if let Some(ns) = options.namespace.as_deref().filter(|ns| !names::is_dns_label(ns)) {
        return Err(BackendError::new(
            format!("use namespace {ns:?}"),
            "it is not a valid Kubernetes name (lowercase letters, digits and '-', at most 63)",
        ));
    }
    Ok(RunMeta {
        run_id: MANIFESTS_RUN_ID.into(),
        namespace: options.namespace.clone().unwrap_or_else(|| names::run_namespace(&format!("{MANIFESTS_RUN_ID}-{}", scenario.name))),
        scenario: scenario.name.clone(),
        // What current clusters read; servers older than 1.30 need the annotation instead.
        apparmor: manifests::AppArmorStyle::Field,
    })
}

/// The warning above a daemon whose API any pod could reach but for its NetworkPolicy.
const UNAUTHENTICATED: &str = "WARNING: an unauthenticated daemon is root on its node for anyone who can reach its port; \
     the NetworkPolicy below admits only this run's job pods of this strategy (of this job, for a job's own daemon), \
     and only works where the cluster's network plugin enforces NetworkPolicies.";

/// The objects of the strategy's first job, a note on how they are used, and the address its builder
/// reaches its daemon at.
fn job_objects(
    scenario: &Scenario,
    strategy: Strategy,
    plan: &JobPlan,
    run: &RunMeta,
    job: &JobMeta,
    options: &KubeOptions,
) -> Result<(Vec<Object>, String, Option<String>), BackendError> {
    let timeout_s = options.timeouts.job.as_secs();
    let images = &options.images;
    let (mut objects, daemon, mut note) = match plan.daemon {
        Daemon::Fresh(DaemonKind::Docker) if plan.job_build().is_none() => {
            let pod = manifests::dind_job_pod(run, images, job, timeout_s);
            let note = "Each job gets a pod like the one below; layerbench drives its daemon through a port-forward, \
                        uploading the build context with the Docker API. The job's script:";
            return Ok((vec![Object::Pod(pod)], note.into(), Some(builder::daemon(DaemonKind::Docker).address(manifests::LOOPBACK))));
        }
        Daemon::Fresh(DaemonKind::Docker) => (vec![], JobDaemon::Sidecar(builder::daemon(DaemonKind::Docker)), String::new()),
        Daemon::Fresh(kind) => {
            let home = builder::daemon(kind);
            let own = manifests::job_daemon(run, images, job, home, timeout_s);
            let address = home.address(&own.pod.metadata.name.clone().unwrap_or_default());
            let objects = vec![Object::NetworkPolicy(own.policy), Object::Service(own.service), Object::Pod(own.pod)];
            (objects, JobDaemon::At(address), format!("{UNAUTHENTICATED} Each job gets its own {} pod first. ", home.service_name))
        }
        Daemon::Shared(kind) => {
            let home = builder::daemon(kind);
            let shared = manifests::shared_daemon(run, options, strategy, home, 1);
            let address = home.address(&names::shared_daemon_name(strategy));
            let objects = vec![
                Object::PersistentVolumeClaim(shared.claim),
                Object::Deployment(shared.deployment),
                Object::Service(shared.service),
                Object::NetworkPolicy(shared.policy),
            ];
            (objects, JobDaemon::At(address), format!("{UNAUTHENTICATED} "))
        }
        Daemon::None => (vec![], JobDaemon::None, String::new()),
    };
    let Some(request) = plan.job_build() else {
        note.push_str(&format!("Each job runs, with DOCKER_HOST={}:", daemon.host().unwrap_or_default()));
        return Ok((objects, note, daemon.host()));
    };
    let home = builder::home(request.builder);
    if images.get(home.role).is_none() {
        return Err(BackendError::new(
            format!("print manifests for {strategy}"),
            format!("no {} image is configured; name one in the toolchain configuration", home.name),
        ));
    }
    let tar = crate::scenario::context::tar_context(&scenario.context).map_err(|e| BackendError::new("pack the build context", e))?;
    let parts = manifests::context_config_maps(run, &job.name, &tar)
        .map_err(|e| BackendError::new(format!("carry the build context of {}", scenario.name), e))?;
    let build = manifests::PodBuild { request, dockerfile_path: &scenario.dockerfile_path, context_parts: &parts, daemon: &daemon };
    let pod = manifests::builder_job_pod(run, images, job, &build, timeout_s);
    objects.extend(parts.into_iter().map(Object::ConfigMap));
    objects.push(Object::Pod(pod));
    note.push_str("The build context travels in the ConfigMaps below; the job pod builds and pushes:");
    Ok((objects, note, daemon.host()))
}

/// The notes as YAML comments (a multi-line script stays comments, line by line), then each object.
fn yaml(notes: &[String], objects: &[Object]) -> Result<String, BackendError> {
    let mut yaml: String = notes.iter().flat_map(|n| n.lines()).map(|line| format!("# {line}\n")).collect();
    for object in objects {
        let doc = serde_yaml::to_string(object).map_err(|e| BackendError::new("print the manifests as YAML", e))?;
        yaml.push_str("---\n");
        yaml.push_str(&doc);
    }
    Ok(yaml)
}
