//! The kube backend on a live kind cluster (`make test` runs `layerbench cluster up --nodes 2` first, which
//! creates `kind-layerbench` or reuses it; LAYERBENCH_KUBE_CONTEXT picks another): every strategy through the small
//! scenario, with the same cache patterns as on the Docker engine (tests/engine_strategies.rs,
//! tests/engine_buildkit.rs, tests/engine_standalone.rs), CPU and memory per job, each job's node, the
//! NetworkPolicies of the shared daemons and a probe of them from a build step, lanes spread over the nodes;
//! clean-up, Ctrl-C and an image the cluster cannot pull.
//!
//! scenarios/small/Dockerfile: 1 FROM (builder), 2 RUN, 3 COPY deps.txt (early), 4 RUN, 5 FROM,
//! 6 ENV, 7 COPY --from=builder, 8 WORKDIR, 9 COPY app . (late), 10 RUN, 11 CMD.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use common::{cache_pattern, jobs, load, lock_engine, runtime, steps};
use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use k8s_openapi::api::networking::v1::NetworkPolicy;
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

/// A run of `scenario` on the cluster, with the toolchain the tests give it (see [`common::toolchain_for`]).
async fn request<'a>(scenario: &'a layerbench::scenario::Scenario, strategies: &[Strategy], root: &Path, options: KubeOptions) -> session::Request<'a> {
    let toolchain = common::toolchain_for(&common::engine().await, scenario).await;
    session::Request {
        scenario,
        strategies: strategies.to_vec(),
        iterations: 1,
        concurrency: scenario.concurrency.clone(),
        results_root: root.to_path_buf(),
        keep: false,
        toolchain,
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

/// The shared run: the small scenario (without deps-change, which no test here asserts on) with every strategy,
/// one iteration; and every NetworkPolicy the run made, seen while it ran (they go with its namespace).
struct Matrix {
    dir: PathBuf,
    policies: Vec<NetworkPolicy>,
}

fn matrix() -> &'static Matrix {
    static MATRIX: OnceLock<Matrix> = OnceLock::new();
    MATRIX.get_or_init(|| {
        let _engine = lock_engine();
        let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("kube-cluster-matrix");
        let scenario = common::small_without_deps_change();
        big_stack(|| {
            runtime().block_on(async {
                let docker = common::engine().await;
                let request = request(&scenario, &kube_strategies(), &root, options()).await;
                let seen: Arc<Mutex<BTreeMap<String, NetworkPolicy>>> = Arc::default();
                let watcher = tokio::spawn(record_policies(seen.clone()));
                let outcome = session::execute(&docker, &request, &common::events(vec![]), std::future::pending())
                    .await
                    .unwrap_or_else(|e| panic!("{e}"));
                watcher.abort();
                assert!(matches!(outcome.ending, Ending::Finished(_)), "{:?}", outcome.ending);
                let left = leftovers(&outcome.run_id).await;
                assert!(left.is_empty(), "the run left labelled objects behind: {left:?}");
                let policies = seen.lock().unwrap().values().cloned().collect();
                Matrix { dir: outcome.results_dir, policies }
            })
        })
    })
}

/// Lists the NetworkPolicies labelled with any run id, every second, into `seen` by name (a job's own
/// daemon's lives as long as the job).
async fn record_policies(seen: Arc<Mutex<BTreeMap<String, NetworkPolicy>>>) {
    let policies: Api<NetworkPolicy> = Api::all(client().await);
    loop {
        if let Ok(list) = policies.list(&ListParams::default().labels(layerbench::RUN_ID_LABEL)).await {
            for policy in list.items {
                seen.lock().unwrap().insert(policy.metadata.name.clone().unwrap_or_default(), policy);
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// The cluster's nodes: names, and their CPUs and memory in bytes, from what each offers to pods.
fn cluster_nodes() -> Vec<(String, u64, u64)> {
    runtime().block_on(async {
        let nodes: Api<Node> = Api::all(client().await);
        let list = nodes.list(&ListParams::default()).await.expect("list nodes");
        list.items
            .into_iter()
            .map(|node| {
                let capacity = node.status.and_then(|s| s.capacity).unwrap_or_default();
                let cpus = capacity.get("cpu").and_then(|q| q.0.parse().ok()).expect("a node's CPUs");
                let memory = capacity.get("memory").and_then(|q| q.0.strip_suffix("Ki")?.parse::<u64>().ok()).expect("a node's memory in Ki") * 1024;
                (node.metadata.name.unwrap_or_default(), cpus, memory)
            })
            .collect()
    })
}

#[test]
fn every_job_of_every_kube_strategy_succeeds() {
    let jobs = jobs(&matrix().dir);
    assert_eq!(jobs.len(), kube_strategies().len() * 3);
    for job in &jobs {
        assert_eq!(job.status, JobStatus::Ok, "{} {}: {:?}", job.strategy, job.pipeline_run, job.error);
    }
}

#[test]
fn ephemeral_dind_never_hits_the_cache() {
    common::assert_never_hits(&steps(&matrix().dir), "ephemeral-dind");
}

#[test]
fn shared_dind_registry_multistage_and_buildah_hit_every_step_on_no_change() {
    let steps = steps(&matrix().dir);
    for strategy in ["shared-dind", "registry-multistage", "daemonless"] {
        common::assert_hits_every_step_on_no_change(&steps, strategy);
    }
}

#[test]
fn a_late_copy_change_reruns_only_from_that_copy() {
    let steps = steps(&matrix().dir);
    for strategy in ["shared-dind", "registry-multistage", "daemonless"] {
        common::assert_late_copy_change_reruns_from_it(&steps, strategy);
    }
}

#[test]
fn registry_final_caches_only_the_final_stage_steps_before_copy_from() {
    common::assert_registry_final_hits_only_before_copy_from(&steps(&matrix().dir));
}

#[test]
fn kaniko_hits_every_run_step_from_its_cache_repo() {
    let (hits, misses) = cache_pattern(&steps(&matrix().dir), "no-change", "daemonless-kaniko");
    assert_eq!(hits, vec![2, 4, 10], "RUN steps; misses {misses:?}");
}

/// Phases mean on kube what they mean on docker: buildah's push is its own phase, after its build; kaniko's
/// executor pushes inside the one process that builds, so on both backends its push is part of `build`. The
/// build holds the steps the builder timed, however late the pod's log was read (a kaniko job on this small
/// base is done within a second or two, before its pod is seen running).
#[test]
fn daemonless_jobs_phases_mean_what_they_mean_on_docker() {
    let steps = steps(&matrix().dir);
    for job in jobs(&matrix().dir).iter().filter(|j| j.strategy.name().starts_with("daemonless")) {
        let build = job.build_ms.expect("a build phase");
        assert!(build > 0, "{} {}", job.strategy, job.pipeline_run);
        let timed: u64 = steps.iter().filter(|s| s.strategy == job.strategy && s.pipeline_run == job.pipeline_run).filter_map(|s| s.duration_ms).sum();
        assert!(build >= timed, "{} {}: a build of {build} ms holds steps timed at {timed} ms", job.strategy, job.pipeline_run);
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

const BUILDKIT: [&str; 5] = ["buildkit-inline", "buildkit-registry", "buildkit-shared", "buildkit-daemon", "buildkit-daemon-shared"];

/// BuildKit on kube gives the patterns it gives on the engine (tests/engine_buildkit.rs, engine_standalone.rs),
/// through the same rawjson parser: every step but the metadata ones hits on no-change, whether from a
/// registry cache in a fresh daemon, inline cache, or a shared daemon's local cache; after the late `COPY`
/// changes, exactly the steps before it hit; BuildKit runs nothing for `ENV` (6) and `CMD` (11).
#[test]
fn buildkit_strategies_give_the_engines_cache_patterns() {
    let steps = steps(&matrix().dir);
    for strategy in BUILDKIT {
        let (hits, misses) = cache_pattern(&steps, "no-change", strategy);
        assert!(misses.is_empty(), "{strategy} missed {misses:?} on no-change");
        assert_eq!(hits, vec![2, 3, 4, 7, 8, 9, 10], "{strategy}");
        let (hits, misses) = cache_pattern(&steps, "code-change", strategy);
        assert_eq!(hits, vec![2, 3, 4, 7, 8], "{strategy}: steps before `COPY app .` (9) must hit");
        assert_eq!(misses, vec![9, 10], "{strategy}: `COPY app .` and what follows must miss");
        common::assert_input_changed_at(&steps, "code-change", strategy, 9, "app/main.py", 11);
    }
    for step in steps.iter().filter(|s| BUILDKIT.contains(&s.strategy.name()) && (s.step == 6 || s.step == 11)) {
        assert_eq!(step.cached, None, "{} {}: BuildKit ran nothing for `{}`", step.strategy, step.pipeline_run, step.instruction);
    }
    common::assert_no_change_changes_nothing(&steps);
}

/// BuildKit's own vertex times split its one build command on kube as on the engine: a registry cache is
/// imported and exported by the strategies that have one, a shared daemon moves none, every one pushes.
#[test]
fn buildkit_phases_come_from_its_progress_as_on_the_engine() {
    for job in jobs(&matrix().dir).iter().filter(|j| BUILDKIT.contains(&j.strategy.name())) {
        let (import, export) = (job.cache_import_ms, job.cache_export_ms);
        let at = format!("{} {}", job.strategy, job.pipeline_run);
        match job.strategy.name() {
            "buildkit-registry" | "buildkit-daemon" => {
                assert!(import.is_some_and(|ms| ms > 0), "{at}: no cache import timed: {import:?}");
                // The export overlaps the push; only the time it runs alone is its own, which may round to 0.
                assert!(export.is_some(), "{at}: no cache export timed");
            }
            "buildkit-shared" | "buildkit-daemon-shared" => assert_eq!((import, export), (None, None), "{at}: a shared daemon moves no cache"),
            _ => assert!(import.is_some(), "{at}: inline cache is imported from :latest"),
        }
        // Every job pushes, a no-change one its manifest at least. (A job's last lines, its export and push,
        // were missing twice when the kubelet ended the log before the runtime wrote them; the log is now read
        // to the script's last line.)
        assert!(job.push_ms.is_some(), "{at}: no push timed");
        assert!(job.provision_ms.is_some() && job.teardown_ms.is_some(), "{at}");
    }
}

/// Every job has its CPU time and peak memory, read from its pods' cgroups, within what the cluster's nodes
/// hold (on one node: never more CPU than the node's cores over the job's wall time); every shared daemon
/// has its iteration's figures. kaniko's executor runs no script, so it has no exit reading: it is read only
/// by exec while it runs, and an executor done within a second or so (this Dockerfile on its small base) can
/// end before the first reading arrives. Its figures are then empty, and the job's notes must say why.
#[test]
fn every_job_has_plausible_cpu_time_and_peak_memory() {
    let nodes = cluster_nodes();
    let cpus: u64 = nodes.iter().map(|n| n.1).sum();
    let memory: u64 = nodes.iter().map(|n| n.2).sum();
    for job in jobs(&matrix().dir) {
        let at = format!("{} {}", job.strategy, job.pipeline_run);
        if job.strategy == "daemonless-kaniko" && job.cpu_ms.is_none() {
            let notes = job.notes.as_deref().unwrap_or_default();
            assert!(notes.contains("CPU and memory left empty: no reading of") && notes.contains("ended before the first sample"), "{at}: {notes}");
            assert_eq!(job.peak_memory_bytes, None, "{at}");
            continue;
        }
        let cpu_ms = job.cpu_ms.unwrap_or_else(|| panic!("{at}: no CPU time; notes: {:?}", job.notes));
        let peak = job.peak_memory_bytes.unwrap_or_else(|| panic!("{at}: no peak memory; notes: {:?}", job.notes));
        assert!(cpu_ms > 0 && cpu_ms <= job.wall_ms * cpus, "{at}: {cpu_ms} ms of CPU in {} ms on {cpus} CPUs", job.wall_ms);
        assert!(peak > 1 << 20 && peak < memory, "{at}: peak {peak} bytes of the cluster's {memory}");
    }
    let services = layerbench::results::read_services(&matrix().dir).unwrap();
    for strategy in ["shared-dind", "buildkit-shared", "buildkit-daemon-shared"] {
        let service = services.iter().find(|s| s.strategy == strategy).unwrap_or_else(|| panic!("{strategy}: no service row"));
        assert!(service.cpu_ms.is_some_and(|ms| ms > 0) && service.peak_memory_bytes.is_some(), "{strategy}: {service:?}");
    }
}

/// Each job records its node, one of the cluster's: the node its build ran on, its daemon's for a strategy with
/// one. A shared daemon stays on one node for its iteration, so all its jobs there have its node.
#[test]
fn every_job_records_its_node_and_a_shared_daemons_jobs_share_one() {
    let nodes: Vec<String> = cluster_nodes().into_iter().map(|n| n.0).collect();
    let jobs = jobs(&matrix().dir);
    for job in &jobs {
        let node = job.node.as_deref().unwrap_or_else(|| panic!("{} {}: no node", job.strategy, job.pipeline_run));
        assert!(nodes.iter().any(|n| n == node), "{} {}: {node} is none of {nodes:?}", job.strategy, job.pipeline_run);
    }
    for strategy in ["shared-dind", "buildkit-shared", "buildkit-daemon-shared"] {
        let on: std::collections::BTreeSet<_> = jobs.iter().filter(|j| j.strategy == strategy).map(|j| j.node.clone()).collect();
        assert_eq!(on.len(), 1, "{strategy}: its daemon's one node: {on:?}");
    }
}

/// Each shared strategy's daemon has a NetworkPolicy of its own: on its own pods, admitting on its API port
/// only the run's job pods of that strategy (no namespace selector: nothing from another namespace). A job's
/// own buildkitd admits that job's pods alone.
#[test]
fn each_shared_daemon_has_its_own_policy_admitting_only_its_strategys_jobs() {
    let policies = &matrix().policies;
    for (strategy, component, port) in [("shared-dind", "dind", 2375), ("buildkit-shared", "dind", 2375), ("buildkit-daemon-shared", "buildkitd", 1234)] {
        let name = format!("{strategy}-only-from-its-jobs");
        let policy = policies.iter().find(|p| p.metadata.name.as_deref() == Some(name.as_str())).unwrap_or_else(|| panic!("no policy {name}"));
        let spec = policy.spec.as_ref().unwrap();
        let guarded = spec.pod_selector.as_ref().unwrap().match_labels.clone().unwrap();
        assert_eq!(guarded.get("app.kubernetes.io/component").map(String::as_str), Some(component), "{name}");
        assert_eq!(guarded.get("layerbench.io/strategy").map(String::as_str), Some(strategy), "{name}");
        let rules = spec.ingress.as_ref().unwrap();
        assert_eq!(rules.len(), 1, "{name}");
        let peers = rules[0].from.as_ref().unwrap();
        assert_eq!(peers.len(), 1, "{name}");
        assert!(peers[0].namespace_selector.is_none() && peers[0].ip_block.is_none(), "{name}: this namespace only");
        let admitted = peers[0].pod_selector.as_ref().unwrap().match_labels.clone().unwrap();
        assert_eq!(admitted.get("app.kubernetes.io/component").map(String::as_str), Some("job"), "{name}");
        assert_eq!(admitted.get("layerbench.io/strategy").map(String::as_str), Some(strategy), "{name}: its own strategy's jobs");
        assert_eq!(admitted.get(layerbench::RUN_ID_LABEL), guarded.get(layerbench::RUN_ID_LABEL), "{name}: this run's");
        let ports = rules[0].ports.as_ref().unwrap();
        assert_eq!(ports.len(), 1);
        assert_eq!(ports[0].port, Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(port)), "{name}");
    }
    let own: Vec<&NetworkPolicy> = policies.iter().filter(|p| p.metadata.name.as_deref().is_some_and(|n| n.ends_with("-buildkitd"))).collect();
    assert!(!own.is_empty(), "a buildkit-daemon job's own policy was seen");
    for policy in own {
        let spec = policy.spec.as_ref().unwrap();
        let guarded = spec.pod_selector.as_ref().unwrap().match_labels.clone().unwrap();
        let admitted = spec.ingress.as_ref().unwrap()[0].from.as_ref().unwrap()[0].pod_selector.clone().unwrap().match_labels.unwrap();
        let job = guarded.get("layerbench.io/job").expect("the daemon is picked by its job");
        assert_eq!(admitted.get("layerbench.io/job"), Some(job), "only its own job's pods");
    }
}

/// The fence probe, two lanes at once, and an image the cluster cannot pull, in one run on the enforcing
/// cluster (`tests/fixtures/scenarios/kube-fence-probe`): every job's build step tries shared-dind's daemon
/// API by its Service name and at every pod address of the nodes, and fails the build if any answers.
/// - daemonless (buildah, whose steps share its job pod's network): both lanes succeed, so nothing answered;
///   their pods' logs show the control (the registry) connected and the daemon's Service and pod address
///   tried and not reached. This is the NetworkPolicy at work: without it the pod would connect.
/// - shared-dind and buildkit-shared: both lanes succeed, and their builds ran the probe too, on the daemon
///   the probe looks for (the fence inside the daemon's pod keeps its own steps off it, Service included).
///   buildkit-shared's jobs are buildx pods that dial their shared dind by its Service: on more than one node
///   the lanes spread, one of them on a node other than its daemon's, and they run at once.
/// - kaniko's image exists in the local engine (so the run resolves it) but was never loaded into the
///   cluster: the kubelet's reason reaches both kaniko lanes, and the run goes on.
///
/// The run keeps its pods (`keep`) for their logs and nodes; `layerbench clean --backend kube` removes them.
#[test]
fn the_policy_fences_shared_dind_from_other_strategies_pods_and_lanes_spread_over_the_nodes() {
    const NOT_IN_CLUSTER: &str = "layerbench-test/not-in-cluster";
    let _engine = lock_engine();
    let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("kube-cluster-fence");
    let scenario = load("tests/fixtures/scenarios/kube-fence-probe.toml");
    let rt = runtime();
    let outcome = big_stack(|| rt.block_on(async {
        let docker = common::engine().await;
        let toolchain = ToolchainConfig::default();
        let base = layerbench::toolchain::stand_in_name(&toolchain.stand_in_prefix, layerbench::toolchain::Role::Base, &toolchain.base);
        let tag = bollard::query_parameters::TagImageOptionsBuilder::default().repo(NOT_IN_CLUSTER).tag("1").build();
        docker.tag_image(&base, Some(tag)).await.expect("tag the base stand-in (make test builds it)");
        let strategies = ["shared-dind", "buildkit-shared", "daemonless", "daemonless-kaniko"].map(Strategy::named);
        let mut request = request(&scenario, &strategies, &root, options()).await;
        request.keep = true;
        request.toolchain.kaniko = format!("{NOT_IN_CLUSTER}:1");
        let outcome = session::execute(&docker, &request, &common::events(vec![]), std::future::pending()).await;
        let _ = docker.remove_image(&format!("{NOT_IN_CLUSTER}:1"), None::<bollard::query_parameters::RemoveImageOptions>, None).await;
        outcome.unwrap_or_else(|e| panic!("{e}"))
    }));
    assert!(matches!(outcome.ending, Ending::Finished(_)), "{:?}", outcome.ending);
    let kept = rt.block_on(kept_pods(&outcome.run_id));
    rt.block_on(async {
        layerbench::backend::kube::clean(&options()).await.expect("clean the kept run");
        layerbench::resources::remove_labelled(&common::engine().await, Some(&outcome.run_id)).await.expect("clean the kept run's engine side");
    });
    remove_kept_scratch(&outcome.run_id);
    let jobs = jobs(&outcome.results_dir);
    let nodes: Vec<String> = cluster_nodes().into_iter().map(|n| n.0).collect();
    for pod in kept.iter().filter(|p| p.component == "job" && p.strategy != "daemonless-kaniko") {
        let probe: Vec<&str> = pod.logs.lines().filter(|l| ["control ", "service ", "pod addresses ", "FENCED", "REACHED"].iter().any(|k| l.contains(k))).collect();
        eprintln!("{} job pod on {} (started {}), its probe:\n{}", pod.strategy, pod.node, pod.started, probe.join("\n"));
    }

    let daemon = kept.iter().find(|p| p.strategy == "shared-dind" && p.component == "dind").unwrap_or_else(|| panic!("shared-dind's daemon pod: {kept:?}"));
    eprintln!("shared-dind's daemon pod: {} on {} (started {})", daemon.ip, daemon.node, daemon.started);
    for strategy in ["daemonless", "shared-dind", "buildkit-shared"] {
        let mut lanes: Vec<_> = jobs.iter().filter(|j| j.strategy == strategy).collect();
        lanes.sort_by_key(|j| j.lane);
        assert_eq!(lanes.iter().map(|j| j.lane).collect::<Vec<_>>(), [1, 2], "{strategy}: both lanes recorded");
        for job in &lanes {
            assert_eq!(job.status, JobStatus::Ok, "{strategy} lane {}: a build step reached a daemon, or the job failed: {:?}", job.lane, job.error);
            assert_eq!(job.concurrency, 2);
        }
    }
    let probe_logs: Vec<&String> = kept.iter().filter(|p| p.strategy == "daemonless" && p.component == "job").map(|p| &p.logs).collect();
    assert_eq!(probe_logs.len(), 2, "both buildah job pods kept: {kept:?}");
    let daemon_ip: std::net::Ipv4Addr = daemon.ip.parse().expect("the daemon pod's address");
    for logs in probe_logs {
        assert!(logs.contains("control registry:5000: connected"), "the probe's step had a network: {logs}");
        assert!(logs.contains("service shared-dind resolves to "), "{logs}");
        for service in ["shared-dind", "buildkit-shared"] {
            assert!(logs.contains(&format!("service {service}:2375: TimeoutError")), "{service}: {logs}");
        }
        let [a, b, third, _] = daemon_ip.octets();
        assert!(third < 8 && logs.contains(&format!("pod addresses {a}.{b}.0.1-{a}.{b}.7.254")), "the scan covered the daemon's {daemon_ip}: {logs}");
        assert!(logs.contains("2032 tried, 0 connected") && logs.contains("FENCED"), "{logs}");
    }

    let shared: Vec<_> = jobs.iter().filter(|j| j.strategy == "buildkit-shared").collect();
    assert!(common::overlap_ms(shared[0], shared[1]) > 0, "the lanes ran at once: {:?}", shared.iter().map(|j| (&j.started_at, j.wall_ms)).collect::<Vec<_>>());
    let job_nodes: std::collections::BTreeSet<&str> = kept.iter().filter(|p| p.component == "job").map(|p| p.node.as_str()).collect();
    for node in &job_nodes {
        assert!(nodes.iter().any(|n| n == node), "{node} is none of {nodes:?}");
    }
    if nodes.len() > 1 {
        assert_eq!(job_nodes.len(), nodes.len(), "lanes spread over every node: {kept:?}");
        // shared-dind's jobs are the harness's classic-builder client, through a port-forward; buildkit-shared's
        // are buildx pods, which dial their shared dind by its Service.
        let own = kept.iter().find(|p| p.strategy == "buildkit-shared" && p.component == "dind").expect("buildkit-shared's daemon pod");
        let job_nodes: Vec<&str> = kept.iter().filter(|p| p.strategy == "buildkit-shared" && p.component == "job").map(|p| p.node.as_str()).collect();
        assert!(job_nodes.iter().any(|n| *n != own.node), "a buildkit-shared job on another node than its daemon's {}: {job_nodes:?}", own.node);
    }

    let kaniko: Vec<_> = jobs.iter().filter(|j| j.strategy == "daemonless-kaniko").collect();
    assert_eq!(kaniko.len(), 2);
    for job in &kaniko {
        assert_eq!(job.status, JobStatus::Failed);
        assert_eq!(job.failure_kind, Some(FailureKind::Infrastructure), "{:?}", job.error);
        let error = job.error.as_deref().unwrap_or_default();
        assert!(error.contains("ErrImagePull") || error.contains("ImagePullBackOff"), "{error}");
        assert!(error.contains(NOT_IN_CLUSTER), "{error}");
    }
    // `clean` deletes the run's namespace; its pods go with it, as the namespace controller gets to them.
    let left = rt.block_on(async {
        for _ in 0..90 {
            if leftovers(&outcome.run_id).await.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        leftovers(&outcome.run_id).await
    });
    assert!(left.is_empty(), "`clean` left the kept run's objects: {left:?}");
}

/// The scratch directory a kept run leaves in the temporary directory.
fn remove_kept_scratch(run_id: &str) {
    let prefix = session::scratch_prefix(run_id);
    for entry in std::fs::read_dir(std::env::temp_dir()).expect("the temporary directory").flatten() {
        if entry.file_name().to_string_lossy().starts_with(&prefix) {
            std::fs::remove_dir_all(entry.path()).expect("remove the kept scratch directory");
        }
    }
}

/// A pod a kept run left: its strategy and component labels, node, address and (for a job) its logs.
#[derive(Debug)]
struct KeptPod {
    strategy: String,
    component: String,
    node: String,
    ip: String,
    started: String,
    logs: String,
}

async fn kept_pods(run_id: &str) -> Vec<KeptPod> {
    let client = client().await;
    let namespace = layerbench::backend::kube::names::run_namespace(run_id);
    let pods: Api<Pod> = Api::namespaced(client, &namespace);
    let mut kept = Vec::new();
    for pod in pods.list(&ListParams::default()).await.expect("list the kept run's pods").items {
        let labels = pod.metadata.labels.clone().unwrap_or_default();
        let label = |key: &str| labels.get(key).cloned().unwrap_or_default();
        let (strategy, component) = (label("layerbench.io/strategy"), label("app.kubernetes.io/component"));
        let name = pod.metadata.name.clone().unwrap_or_default();
        let mut logs = String::new();
        if component == "job" {
            for container in pod.spec.iter().flat_map(|s| &s.containers) {
                let params = kube::api::LogParams { container: Some(container.name.clone()), ..Default::default() };
                logs.push_str(&pods.logs(&name, &params).await.unwrap_or_default());
            }
        }
        let node = pod.spec.as_ref().and_then(|s| s.node_name.clone()).unwrap_or_default();
        let ip = pod.status.as_ref().and_then(|s| s.pod_ip.clone()).unwrap_or_default();
        let started = pod.status.as_ref().and_then(|s| s.start_time.as_ref()).map(|t| t.0.to_string()).unwrap_or_default();
        kept.push(KeptPod { strategy, component, node, ip, started, logs });
    }
    kept
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
        let request = request(&scenario, &strategies, &root, options()).await;
        session::execute(&docker, &request, &common::events(vec![]), interrupt)
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
