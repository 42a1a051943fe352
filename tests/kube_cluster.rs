//! The kube backend on a live kind cluster (`make test` runs `layerbench cluster up` first, which creates
//! `kind-layerbench` or reuses it): every strategy that runs on kube, through the small scenario, with the same
//! cache patterns as on the Docker engine (tests/engine_strategies.rs, tests/engine_standalone.rs); clean-up,
//! Ctrl-C and an image the cluster cannot pull.
//!
//! scenarios/small/Dockerfile: 1 FROM (builder), 2 RUN, 3 COPY deps.txt (early), 4 RUN, 5 FROM,
//! 6 ENV, 7 COPY --from=builder, 8 WORKDIR, 9 COPY app . (late), 10 RUN, 11 CMD.

mod common;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use common::{cache_pattern, jobs, load, lock_engine, runtime, steps};
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::ListParams;
use kube::config::KubeConfigOptions;
use kube::{Api, Client, Config};
use layerbench::backend::kube::KubeOptions;
use layerbench::results::{FailureKind, JobStatus};
use layerbench::session::{self, BackendChoice, Ending};
use layerbench::strategy::Strategy;
use layerbench::toolchain::ToolchainConfig;

/// The context `layerbench cluster up` writes (override with LAYERBENCH_KUBE_CONTEXT).
fn context() -> String {
    std::env::var("LAYERBENCH_KUBE_CONTEXT").unwrap_or_else(|_| "kind-layerbench".into())
}

/// Every strategy: the kube backend runs them all.
fn kube_strategies() -> Vec<Strategy> {
    Strategy::all().collect()
}

async fn client() -> Client {
    let options = KubeConfigOptions { context: Some(context()), ..Default::default() };
    let config = Config::from_kubeconfig(&options).await.unwrap_or_else(|e| {
        panic!("no kubeconfig context {} ({e}); run the tests with `make test`, which runs `layerbench cluster up`", context())
    });
    let client = Client::try_from(config).expect("a client for the kind cluster");
    client.apiserver_version().await.unwrap_or_else(|e| {
        panic!("the kind cluster does not answer ({e}); `layerbench cluster up` (re)creates it")
    });
    client
}

fn options() -> KubeOptions {
    KubeOptions { context: Some(context()), ..KubeOptions::default() }
}

fn request<'a>(scenario: &'a layerbench::scenario::Scenario, strategies: &[Strategy], root: &Path, options: KubeOptions) -> session::Request<'a> {
    session::Request {
        scenario,
        strategies: strategies.to_vec(),
        iterations: 1,
        concurrency: scenario.concurrency.clone(),
        results_root: root.to_path_buf(),
        keep: false,
        toolchain: ToolchainConfig::default(),
        backend: BackendChoice::Kube(Box::new(options)),
    }
}

/// Runs `f` on a thread with a large stack: a whole session on the kube backend is one deep future, deeper
/// in a debug build than a test thread's 2 MiB stack allows.
fn big_stack<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|scope| {
        let thread = std::thread::Builder::new().stack_size(64 << 20).spawn_scoped(scope, f).expect("a thread");
        thread.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

/// Namespaces and pods (in any namespace) labelled with the run id.
async fn leftovers(run_id: &str) -> Vec<String> {
    let client = client().await;
    let selector = format!("{}={}", layerbench::RUN_ID_LABEL, layerbench::backend::kube::names::label_value(run_id));
    let params = ListParams::default().labels(&selector);
    let mut left = Vec::new();
    let namespaces: Api<Namespace> = Api::all(client.clone());
    // A namespace being deleted still lists for a moment: what matters is that its deletion was started.
    for ns in namespaces.list(&params).await.expect("list namespaces").items {
        if ns.metadata.deletion_timestamp.is_none() {
            left.push(format!("namespace {}", ns.metadata.name.unwrap_or_default()));
        }
    }
    let pods: Api<Pod> = Api::all(client);
    for pod in pods.list(&params).await.expect("list pods").items {
        if pod.metadata.deletion_timestamp.is_none() {
            left.push(format!("pod {}", pod.metadata.name.unwrap_or_default()));
        }
    }
    left
}

/// The shared run: the small scenario (without deps-change, which no test here asserts on) with every kube
/// strategy, one iteration.
fn matrix() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let _engine = lock_engine();
        let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("kube-cluster-matrix");
        let scenario = common::small_without_deps_change();
        big_stack(|| {
            runtime().block_on(async {
                let docker = common::engine().await;
                let request = request(&scenario, &kube_strategies(), &root, options());
                let outcome = session::execute(&docker, &request, &common::events(vec![]), std::future::pending())
                    .await
                    .unwrap_or_else(|e| panic!("{e}"));
                assert!(matches!(outcome.ending, Ending::Finished(_)), "{:?}", outcome.ending);
                let left = leftovers(&outcome.run_id).await;
                assert!(left.is_empty(), "the run left labelled objects behind: {left:?}");
                outcome.results_dir
            })
        })
    })
}

#[test]
fn every_job_of_every_kube_strategy_succeeds() {
    let jobs = jobs(matrix());
    assert_eq!(jobs.len(), kube_strategies().len() * 3);
    for job in &jobs {
        assert_eq!(job.status, JobStatus::Ok, "{} {}: {:?}", job.strategy, job.pipeline_run, job.error);
    }
}

#[test]
fn ephemeral_dind_never_hits_the_cache() {
    common::assert_never_hits(&steps(matrix()), "ephemeral-dind");
}

#[test]
fn shared_dind_registry_multistage_and_buildah_hit_every_step_on_no_change() {
    let steps = steps(matrix());
    for strategy in ["shared-dind", "registry-multistage", "daemonless"] {
        common::assert_hits_every_step_on_no_change(&steps, strategy);
    }
}

#[test]
fn a_late_copy_change_reruns_only_from_that_copy() {
    let steps = steps(matrix());
    for strategy in ["shared-dind", "registry-multistage", "daemonless"] {
        common::assert_late_copy_change_reruns_from_it(&steps, strategy);
    }
}

#[test]
fn registry_final_caches_only_the_final_stage_steps_before_copy_from() {
    common::assert_registry_final_hits_only_before_copy_from(&steps(matrix()));
}

#[test]
fn kaniko_hits_every_run_step_from_its_cache_repo() {
    let (hits, misses) = cache_pattern(&steps(matrix()), "no-change", "daemonless-kaniko");
    assert_eq!(hits, vec![2, 4, 10], "RUN steps; misses {misses:?}");
}

/// Phases mean on kube what they mean on docker: buildah's push is its own phase, after its build; kaniko's
/// executor pushes inside the one process that builds, so on both backends its push is part of `build`.
#[test]
fn daemonless_jobs_phases_mean_what_they_mean_on_docker() {
    for job in jobs(matrix()).iter().filter(|j| j.strategy.name().starts_with("daemonless")) {
        let build = job.build_ms.expect("a build phase");
        assert!(build > 0, "{} {}", job.strategy, job.pipeline_run);
        match job.strategy.name() {
            "daemonless" => {
                let push = job.push_ms.unwrap_or_else(|| panic!("buildah {}: no push phase", job.pipeline_run));
                assert!(push > 0, "buildah {}: push {push} ms", job.pipeline_run);
            }
            _ => assert_eq!(job.push_ms, None, "kaniko {}: its push is part of its build", job.pipeline_run),
        }
        assert!(job.provision_ms.is_some() && job.teardown_ms.is_some(), "{} {}", job.strategy, job.pipeline_run);
    }
}

/// Two lanes at once, as pods created together and placed by the scheduler: the ephemeral-dind lanes run
/// side by side, each on its own fresh daemon, and record their node. The buildah image exists in the local
/// engine (so the run resolves it) but was never loaded into the cluster, which cannot pull it: the kubelet's
/// reason must reach both buildah lanes, and the run go on.
#[test]
fn two_lanes_run_as_pods_at_once_and_a_job_whose_image_cannot_be_pulled_fails_with_the_pods_reason() {
    const NOT_IN_CLUSTER: &str = "layerbench-test/not-in-cluster";
    let _engine = lock_engine();
    let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("kube-cluster-lanes");
    let mut scenario = load("scenarios/small.toml");
    scenario.pipeline.truncate(1);
    scenario.concurrency = vec![2];
    let rt = runtime();
    let outcome = big_stack(|| rt.block_on(async {
        let docker = common::engine().await;
        let toolchain = ToolchainConfig::default();
        let base = layerbench::toolchain::stand_in_name(&toolchain.stand_in_prefix, layerbench::toolchain::Role::Base, &toolchain.base);
        let tag = bollard::query_parameters::TagImageOptionsBuilder::default().repo(NOT_IN_CLUSTER).tag("1").build();
        docker.tag_image(&base, Some(tag)).await.expect("tag the base stand-in (make test builds it)");
        let strategies = [Strategy::named("daemonless"), Strategy::named("ephemeral-dind")];
        let mut request = request(&scenario, &strategies, &root, options());
        request.toolchain.buildah = format!("{NOT_IN_CLUSTER}:1");
        let outcome = session::execute(&docker, &request, &common::events(vec![]), std::future::pending()).await;
        let _ = docker.remove_image(&format!("{NOT_IN_CLUSTER}:1"), None::<bollard::query_parameters::RemoveImageOptions>, None).await;
        outcome.unwrap_or_else(|e| panic!("{e}"))
    }));
    assert!(matches!(outcome.ending, Ending::Finished(_)), "{:?}", outcome.ending);
    let jobs = jobs(&outcome.results_dir);
    let buildah: Vec<_> = jobs.iter().filter(|j| j.strategy == "daemonless").collect();
    assert_eq!(buildah.iter().map(|j| j.lane).collect::<Vec<_>>(), [1, 2], "both lanes recorded");
    for job in &buildah {
        assert_eq!(job.status, JobStatus::Failed);
        assert_eq!(job.failure_kind, Some(FailureKind::Infrastructure), "{:?}", job.error);
        let error = job.error.as_deref().unwrap_or_default();
        assert!(error.contains("ErrImagePull") || error.contains("ImagePullBackOff"), "{error}");
        assert!(error.contains(NOT_IN_CLUSTER), "{error}");
    }
    let dind: Vec<_> = jobs.iter().filter(|j| j.strategy == "ephemeral-dind").collect();
    assert_eq!(dind.len(), 2);
    for job in &dind {
        assert_eq!(job.status, JobStatus::Ok, "the run goes on: {:?}", job.error);
        assert_eq!(job.concurrency, 2);
        assert!(job.node.as_deref().is_some_and(|n| n.starts_with("layerbench")), "the pod's node: {:?}", job.node);
    }
    assert!(common::overlap_ms(dind[0], dind[1]) > 0, "the lanes ran at once: {:?}", dind.iter().map(|j| (&j.started_at, j.wall_ms)).collect::<Vec<_>>());
    assert!(rt.block_on(leftovers(&outcome.run_id)).is_empty());
}

#[test]
fn ctrl_c_mid_run_leaves_valid_results_and_no_labelled_objects() {
    let _engine = lock_engine();
    let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("kube-cluster-interrupt");
    let scenario = load("scenarios/small.toml");
    let rt = runtime();
    let outcome = big_stack(|| rt.block_on(async {
        let docker = common::engine().await;
        let strategies = [Strategy::named("shared-dind")];
        // Interrupted once the first job has had time to get its pod going.
        let interrupt = tokio::time::sleep(Duration::from_secs(25));
        session::execute(&docker, &request(&scenario, &strategies, &root, options()), &common::events(vec![]), interrupt)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }));
    assert!(matches!(outcome.ending, Ending::Interrupted), "{:?}", outcome.ending);
    // Whatever was written parses; the run says it was interrupted.
    let _ = jobs(&outcome.results_dir);
    let _ = steps(&outcome.results_dir);
    assert!(layerbench::results::read_run_info(&outcome.results_dir).unwrap().interrupted);
    assert!(rt.block_on(leftovers(&outcome.run_id)).is_empty());
}
