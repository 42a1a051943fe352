//! `layerbench manifests`: the printed YAML parses back into the typed objects the kube backend applies.

use std::collections::BTreeMap;
use std::path::PathBuf;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, PersistentVolumeClaim, Pod, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use layerbench::backend::kube::names::{is_dns_label, is_label_value};
use layerbench::backend::kube::{manifests_yaml, KubeOptions};
use layerbench::scenario::{Change, Dockerfile, PipelineRun, Scenario};
use layerbench::strategy::Strategy;
use serde::Deserialize;

const DOCKERFILE: &str = "FROM python:3.11-slim AS builder\nRUN pip wheel -w /wheels flask\n\
                          FROM python:3.11-slim\nCOPY --from=builder /wheels /wheels\nCOPY app.py .\n";

/// Every object of one YAML stream, typed by its `kind`.
#[derive(Default)]
struct Objects {
    namespaces: Vec<Namespace>,
    deployments: Vec<Deployment>,
    services: Vec<Service>,
    pods: Vec<Pod>,
    config_maps: Vec<ConfigMap>,
    claims: Vec<PersistentVolumeClaim>,
    policies: Vec<NetworkPolicy>,
    /// (kind, name, labels) of every object, whatever its kind.
    metas: Vec<(String, String, BTreeMap<String, String>)>,
}

fn parse(yaml: &str) -> Objects {
    let mut objects = Objects::default();
    for document in serde_yaml::Deserializer::from_str(yaml) {
        let value = serde_yaml::Value::deserialize(document).expect("each document is YAML");
        let kind = value["kind"].as_str().expect("each document has a kind").to_string();
        let name = value["metadata"]["name"].as_str().expect("each object has a name").to_string();
        let labels: BTreeMap<String, String> =
            serde_yaml::from_value(value["metadata"]["labels"].clone()).unwrap_or_default();
        objects.metas.push((kind.clone(), name, labels));
        match kind.as_str() {
            "Namespace" => objects.namespaces.push(serde_yaml::from_value(value).unwrap()),
            "Deployment" => objects.deployments.push(serde_yaml::from_value(value).unwrap()),
            "Service" => objects.services.push(serde_yaml::from_value(value).unwrap()),
            "Pod" => objects.pods.push(serde_yaml::from_value(value).unwrap()),
            "ConfigMap" => objects.config_maps.push(serde_yaml::from_value(value).unwrap()),
            "PersistentVolumeClaim" => objects.claims.push(serde_yaml::from_value(value).unwrap()),
            "NetworkPolicy" => objects.policies.push(serde_yaml::from_value(value).unwrap()),
            other => panic!("unexpected kind {other}"),
        }
    }
    objects
}

fn scenario(context: &tempfile::TempDir, name: &str) -> Scenario {
    std::fs::write(context.path().join("Dockerfile"), DOCKERFILE).unwrap();
    std::fs::write(context.path().join("app.py"), "print('hi')\n").unwrap();
    Scenario {
        name: name.into(),
        source: PathBuf::from("scenarios/test.toml"),
        context: context.path().to_path_buf(),
        dockerfile_path: PathBuf::from("Dockerfile"),
        dockerfile: Dockerfile::parse(DOCKERFILE).unwrap(),
        dockerfiles: vec![layerbench::scenario::RunDockerfile { from_run: 0, shown: "Dockerfile".into(), dockerfile: Dockerfile::parse(DOCKERFILE).unwrap() }],
        repository: "flask-app".into(),
        iterations: 1,
        strategies: Strategy::all().collect(),
        pipeline: vec![PipelineRun { name: "first".into(), change: Change::None }],
        concurrency: vec![1],
        workload: None,
        history: None,
        hash: String::new(),
    }
}

fn manifests(strategy: Strategy, options: &KubeOptions) -> (String, Objects) {
    let context = tempfile::tempdir().unwrap();
    let yaml = manifests_yaml(&scenario(&context, "flask"), strategy, options).unwrap();
    // For checks by outside tools (a schema validator, `kubectl apply --dry-run=server`).
    if let Some(dir) = std::env::var_os("LAYERBENCH_DUMP_MANIFESTS") {
        let suffix = if options.namespace.is_some() { "-in-namespace" } else { "" };
        std::fs::write(PathBuf::from(dir).join(format!("{strategy}{suffix}.yaml")), &yaml).unwrap();
    }
    let objects = parse(&yaml);
    (yaml, objects)
}

fn dind_of(pod: &k8s_openapi::api::core::v1::PodSpec) -> &k8s_openapi::api::core::v1::Container {
    pod.containers.iter().find(|c| c.name == "dind").expect("a dind container")
}

#[test]
fn every_strategy_prints_yaml_that_parses_back_with_valid_names_and_run_labels() {
    for strategy in Strategy::all() {
        let (_, objects) = manifests(strategy, &KubeOptions::default());
        assert_eq!(objects.namespaces.len(), 1, "{strategy}");
        let namespace = objects.namespaces[0].metadata.name.clone().unwrap();
        assert_eq!(objects.deployments.iter().filter(|d| d.metadata.name.as_deref() == Some("registry")).count(), 1);
        for (kind, name, labels) in &objects.metas {
            assert!(is_dns_label(name), "{strategy}: {kind} {name}");
            assert_eq!(labels.get("layerbench.run-id").map(String::as_str), Some("manifests"), "{strategy}: {kind} {name}");
            assert!(labels.values().all(|v| is_label_value(v)), "{strategy}: {kind} {name}: {labels:?}");
        }
        for (kind, name, _) in objects.metas.iter().filter(|(kind, _, _)| kind != "Namespace") {
            let in_namespace = match kind.as_str() {
                "Pod" => objects.pods.iter().find(|o| o.metadata.name.as_ref() == Some(name)).unwrap().metadata.namespace.clone(),
                _ => Some(namespace.clone()),
            };
            assert_eq!(in_namespace.as_deref(), Some(namespace.as_str()), "{strategy}: {kind} {name}");
        }
    }
}

#[test]
fn dind_strategies_print_a_job_pod_with_a_privileged_daemon_and_the_jobs_script() {
    for strategy in [Strategy::named("ephemeral-dind"), Strategy::named("registry-final"), Strategy::named("registry-multistage")] {
        let (yaml, objects) = manifests(strategy, &KubeOptions::default());
        assert_eq!(objects.pods.len(), 1, "{strategy}");
        let spec = objects.pods[0].spec.as_ref().unwrap();
        let dind = dind_of(spec);
        assert_eq!(dind.security_context.as_ref().unwrap().privileged, Some(true), "{strategy}");
        let data = dind.volume_mounts.as_ref().unwrap().iter().find(|m| m.mount_path == "/var/lib/docker");
        assert!(data.is_some(), "{strategy}: /var/lib/docker is a volume");
        assert!(yaml.contains("# privileged container"), "{strategy}: the YAML says it is privileged");
        assert!(yaml.contains("#   docker push registry:5000/"), "{strategy}: the job's script is shown");
    }
    let (yaml, _) = manifests(Strategy::named("registry-multistage"), &KubeOptions::default());
    assert!(yaml.contains("docker build --target builder"), "{yaml}");
}

/// Each shared strategy prints its own daemon (named after it) with its claim, Service and policy, the root-risk
/// warning, and where its jobs find it; a BuildKit client's job pod comes with it.
#[test]
fn shared_daemons_print_claim_deployment_service_and_policy_with_the_root_risk_warning() {
    let options = KubeOptions { storage_class: Some("standard".into()), ..KubeOptions::default() };
    for (name, container, port, job_pods) in [("shared-dind", "dind", 2375, 0), ("buildkit-shared", "dind", 2375, 1), ("buildkit-daemon-shared", "buildkitd", 1234, 1)] {
        let (yaml, objects) = manifests(Strategy::named(name), &options);
        assert_eq!(objects.pods.len(), job_pods, "{name}: the classic builder's jobs use the shared daemon with no pod of their own");
        assert_eq!((objects.claims.len(), objects.policies.len()), (1, 1), "{name}");
        let claim = &objects.claims[0];
        assert_eq!(claim.spec.as_ref().unwrap().storage_class_name.as_deref(), Some("standard"));
        let daemon = objects.deployments.iter().find(|d| d.metadata.name.as_deref() == Some(name)).unwrap();
        let template = &daemon.spec.as_ref().unwrap().template;
        let pod = template.spec.as_ref().unwrap();
        let c = pod.containers.iter().find(|c| c.name == container).unwrap();
        let mount = c.volume_mounts.as_ref().unwrap().iter().find(|m| m.name == "daemon-state").unwrap();
        let volume = pod.volumes.as_ref().unwrap().iter().find(|v| v.name == mount.name).unwrap();
        assert_eq!(volume.persistent_volume_claim.as_ref().unwrap().claim_name, claim.metadata.name.clone().unwrap());
        let service = objects.services.iter().find(|s| s.metadata.name.as_deref() == Some(name)).unwrap();
        assert_eq!(service.spec.as_ref().unwrap().ports.as_ref().unwrap()[0].port, port);
        let pod_labels = template.metadata.as_ref().unwrap().labels.clone().unwrap();
        let policy = objects.policies[0].spec.as_ref().unwrap();
        let guarded = policy.pod_selector.as_ref().unwrap().match_labels.clone().unwrap();
        assert!(guarded.iter().all(|(k, v)| pod_labels.get(k) == Some(v)), "{name}: the policy guards the daemon's pod");
        let from = &policy.ingress.as_ref().unwrap()[0].from.as_ref().unwrap()[0];
        let admitted = from.pod_selector.as_ref().unwrap().match_labels.clone().unwrap();
        assert_eq!(admitted.get("app.kubernetes.io/component").map(String::as_str), Some("job"));
        assert_eq!(admitted.get("layerbench.io/strategy").map(String::as_str), Some(name), "{name}: its own jobs only");
        for job in &objects.pods {
            let labels = job.metadata.labels.clone().unwrap();
            assert!(admitted.iter().all(|(k, v)| labels.get(k) == Some(v)), "{name}: its job pod is admitted");
        }
        assert!(yaml.contains("WARNING: an unauthenticated daemon is root on its node"), "{yaml}");
        assert!(yaml.contains(&format!("tcp://{name}:{port}")), "{name}: where jobs find it: {yaml}");
    }
}

/// A fresh buildkitd per job is a pod of its own with a Service and a policy for that job; buildx's fresh dind
/// is a sidecar in the job pod. Each job pod runs the builder's own script.
#[test]
fn buildkit_jobs_print_their_daemon_beside_the_job_pod() {
    let (yaml, objects) = manifests(Strategy::named("buildkit-daemon"), &KubeOptions::default());
    assert_eq!(objects.pods.len(), 2, "the job's buildkitd, and the job");
    let daemon = objects.pods.iter().find(|p| p.metadata.name.as_deref().is_some_and(|n| n.ends_with("-buildkitd"))).unwrap();
    let service = &objects.services.iter().find(|s| s.metadata.name == daemon.metadata.name).unwrap();
    assert_eq!(service.spec.as_ref().unwrap().ports.as_ref().unwrap()[0].port, 1234);
    assert!(yaml.contains(&format!("export BUILDKIT_HOST=tcp://{}:1234", daemon.metadata.name.clone().unwrap())), "{yaml}");
    assert!(yaml.contains("buildctl build --progress=rawjson"), "the job's script: {yaml}");
    assert!(objects.config_maps.iter().any(|c| c.data.as_ref().is_some_and(|d| d.contains_key("buildkitd.toml"))), "buildkitd.toml");
    for name in ["buildkit-inline", "buildkit-registry"] {
        let (yaml, objects) = manifests(Strategy::named(name), &KubeOptions::default());
        assert_eq!(objects.pods.len(), 1, "{name}: one job pod");
        let init = objects.pods[0].spec.as_ref().unwrap().init_containers.clone().unwrap();
        let dind = init.iter().find(|c| c.name == "dind").expect("dind is a sidecar of the job pod");
        assert_eq!(dind.restart_policy.as_deref(), Some("Always"), "{name}");
        assert!(yaml.contains("docker buildx build --progress=rawjson"), "{name}: {yaml}");
    }
}

#[test]
fn daemonless_prints_the_context_config_maps_its_pod_mounts() {
    for strategy in [Strategy::named("daemonless"), Strategy::named("daemonless-kaniko")] {
        let (_, objects) = manifests(strategy, &KubeOptions::default());
        let parts: Vec<&ConfigMap> = objects.config_maps.iter().filter(|cm| cm.binary_data.is_some()).collect();
        assert_eq!(parts.len(), 1, "{strategy}: a small context is one part");
        let tar = &parts[0].binary_data.as_ref().unwrap()["part"].0;
        let mut files: Vec<String> = tar::Archive::new(&tar[..])
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect();
        files.sort();
        assert_eq!(files, vec!["Dockerfile", "app.py"], "{strategy}");
        let spec = objects.pods[0].spec.as_ref().unwrap();
        let projected = spec.volumes.as_ref().unwrap()[0].projected.as_ref().unwrap();
        let mounted = &projected.sources.as_ref().unwrap()[0].config_map.as_ref().unwrap().name;
        assert_eq!(Some(mounted), parts[0].metadata.name.as_ref(), "{strategy}");
        assert_eq!(spec.init_containers.as_ref().unwrap()[0].name, "context");
    }
}

#[test]
fn a_given_namespace_is_used_and_not_printed_as_an_object() {
    let options = KubeOptions { namespace: Some("ci-builds".into()), ..KubeOptions::default() };
    let (_, objects) = manifests(Strategy::named("ephemeral-dind"), &options);
    assert!(objects.namespaces.is_empty());
    assert_eq!(objects.pods[0].metadata.namespace.as_deref(), Some("ci-builds"));
}

#[test]
fn an_invalid_namespace_is_refused_with_the_rule() {
    let context = tempfile::tempdir().unwrap();
    let options = KubeOptions { namespace: Some("CI_Builds".into()), ..KubeOptions::default() };
    let error = manifests_yaml(&scenario(&context, "flask"), Strategy::named("shared-dind"), &options).unwrap_err();
    assert_eq!(
        error.to_string(),
        "use namespace \"CI_Builds\": it is not a valid Kubernetes name (lowercase letters, digits and '-', at most 63)"
    );
}

#[test]
fn a_long_scenario_name_still_gives_valid_names_and_labels() {
    let context = tempfile::tempdir().unwrap();
    let long = "A scenario whose name is far longer than any Kubernetes name or label may be, with spaces";
    let yaml = manifests_yaml(&scenario(&context, long), Strategy::named("shared-dind"), &KubeOptions::default()).unwrap();
    for (kind, name, labels) in parse(&yaml).metas {
        assert!(is_dns_label(&name), "{kind} {name}");
        assert!(labels.values().all(|v| is_label_value(v)), "{kind} {name}: {labels:?}");
    }
}

/// A `--hub-mirror` that is not `HOST:PORT` (or `none`) is refused in one line with exit 2 before any cluster
/// or engine is contacted: the address would go into every daemon's and builder's configuration, where a quote
/// made every dind crash. Every strategy is accepted on kube.
#[test]
fn a_hub_mirror_that_is_no_host_and_port_is_refused_before_any_slow_work() {
    for value in ["a\"b:5000", "http://mirror:5000", "mirror", "a\nb:5000"] {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_layerbench"))
            .args(["run", "scenarios/small.toml", "--backend", "kube", "--strategies", "shared-dind,buildkit-shared"])
            .args(["--hub-mirror", value])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env("DOCKER_HOST", "unix:///nonexistent.sock")
            .env("KUBECONFIG", "/nonexistent/kubeconfig")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{value:?}: {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{value:?}: one line: {stderr}");
        assert!(stderr.contains("--hub-mirror") && stderr.contains("is not HOST:PORT or `none`"), "{value:?}: {stderr}");
    }
}

/// `--strategy` and `--strategies` are parsed from the registry by clap: an unknown name is one line naming
/// the valid ones, exit 2, before any scenario, engine or cluster is touched.
#[test]
fn an_unknown_strategy_on_the_command_line_is_one_line_naming_the_valid_ones() {
    for args in [
        vec!["manifests", "scenarios/small.toml", "--strategy", "shared-dnd"],
        vec!["run", "scenarios/small.toml", "--strategies", "ephemeral-dind, shared-dnd"],
    ] {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_layerbench"))
            .args(&args)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env("DOCKER_HOST", "unix:///nonexistent.sock")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{args:?}: one line: {stderr}");
        assert!(stderr.contains("unknown strategy `shared-dnd`; valid strategies: ephemeral-dind, registry-final"), "{stderr}");
    }
}
