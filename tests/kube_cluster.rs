//! End to end on a real cluster: scenarios/small.toml through the kube backend (see docs/kubernetes.md).
//!
//! ```text
//! kind create cluster --config scenarios/kind-cluster.yaml
//! KUBECONFIG=$HOME/.kube/config cargo test --test kube_cluster -- --ignored --nocapture
//! ```
//! With `LAYERBENCH_KUBE_STAND_INS=1` the pods use layerbench's local stand-in images (after
//! `kind load docker-image` of each); otherwise the official images, which the cluster pulls.

use std::path::Path;

use k8s_openapi::api::core::v1::Namespace;
use kube::{Api, Client};
use layerbench::backend::kube::{KubeBackend, KubeImages, KubeOptions};
use layerbench::backend::Backend;
use layerbench::events::EventSink;
use layerbench::results::{read_jobs, JobStatus, ResultsWriter};
use layerbench::runner::{self, RunPlan};
use layerbench::strategy::StrategyKind::{self, *};
use layerbench::toolchain::{stand_in_name, Role, ToolchainConfig};

/// The strategies tests/engine_strategies.rs runs on the local engine.
const ON_CLUSTER: [StrategyKind; 5] = [EphemeralDind, RegistryFinal, RegistryMultistage, SharedDind, Daemonless];

fn images() -> KubeImages {
    let mut images = KubeImages::default();
    if std::env::var_os("LAYERBENCH_KUBE_STAND_INS").is_some() {
        let official = ToolchainConfig::default();
        let local = |role, name: &str| stand_in_name(&official.stand_in_prefix, role, name);
        images.dind = local(Role::Dind, &official.dind);
        images.helper = images.dind.clone();
        images.registry = local(Role::Registry, &official.registry);
        images.buildah = local(Role::Buildah, &official.buildah);
    }
    images.hub_mirror = std::env::var("LAYERBENCH_KUBE_HUB_MIRROR").ok();
    images
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs cluster"]
async fn small_scenario_runs_every_strategy_on_the_cluster_and_leaves_nothing_behind() {
    assert!(
        std::env::var_os("KUBECONFIG").is_some(),
        "set KUBECONFIG to a cluster's kubeconfig (e.g. after `kind create cluster --config scenarios/kind-cluster.yaml`)"
    );
    let scenario = layerbench::scenario::load(Path::new("scenarios/small.toml")).expect("scenarios/small.toml loads");
    let run_id = runner::new_run_id(&scenario.name);
    let results = tempfile::tempdir().unwrap();
    let results_dir = runner::results_dir(results.path(), &run_id);
    let mut writer = ResultsWriter::create(&results_dir).unwrap();
    let events = EventSink::default();
    let options = KubeOptions { images: images(), ..KubeOptions::default() };

    let mut backend = KubeBackend::connect(options.clone(), &run_id, &scenario.name).await.expect("the cluster answers");
    let work = tempfile::tempdir().unwrap();
    let plan = RunPlan {
        run_id: run_id.clone(),
        scenario: &scenario,
        strategies: ON_CLUSTER.to_vec(),
        iterations: 1,
        work_dir: work.path().to_path_buf(),
    };
    let namespace = backend.namespace().to_string();
    let summary = runner::run(&mut backend, &plan, &mut writer, &events).await;
    backend.shutdown().await.expect("the run's namespace is deleted");
    let summary = summary.expect("the run completes");

    let jobs = read_jobs(&results_dir).unwrap();
    assert_eq!(jobs.len(), scenario.pipeline.len() * ON_CLUSTER.len());
    assert_eq!(summary.failed_jobs, 0, "{:#?}", jobs.iter().filter(|j| j.status == JobStatus::Failed).collect::<Vec<_>>());
    assert!(jobs.iter().all(|j| j.backend == "kube" && j.provision_ms.is_some() && j.build_ms.is_some()));
    let job = |strategy: &str, run: &str| jobs.iter().find(|j| j.strategy == strategy && j.pipeline_run == run).unwrap();
    // The cache behaviour that defines each strategy, as on the docker backend: every step but
    // the two FROMs (11 - 2) is served from cache on an unchanged rerun, except with a fresh daemon.
    for run in ["cold", "no-change", "code-change", "deps-change"] {
        assert_eq!(job("ephemeral-dind", run).cached_steps, Some(0), "{run}");
    }
    assert_eq!(job("shared-dind", "no-change").cached_steps, Some(7));
    assert_eq!(job("daemonless", "no-change").cached_steps, Some(7), "buildah in a fresh pod pulls its cache from the registry");
    assert!(job("shared-dind", "cold").bytes_pushed.is_some_and(|b| b > 0), "registry traffic is measured");
    let namespaces: Api<Namespace> = Api::all(Client::try_default().await.unwrap());
    assert!(namespaces.get_opt(&namespace).await.unwrap().is_none(), "shutdown deleted namespace {namespace}");
}
