//! Orchestration tests against a scripted API server (kube-rs's `tower-test` mock-service pattern).
//!
//! Every wait runs on paused tokio time: a timeout of minutes passes in no real time.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::DeleteParams;
use kube::Api;
use serde_json::json;

use super::mock::{self, created, exited, list, lines, ok, pod, running, status, waiting, Reply};
use super::orchestrate::{delete, ensure_created, wait_pod, KubeError, PodStage, Whose};
use super::*;
use crate::backend::Backend;
use crate::events::{Event, EventSink, Reporter};
use crate::job::{JobOutcome, JobSpec};
use crate::scenario::{Change, Dockerfile, PipelineRun};
use crate::strategy::{JobPlan, Op, Phase, PlanInput, Strategy};

const NS: &str = "ns";

fn pods_path() -> String {
    format!("/api/v1/namespaces/{NS}/pods")
}

fn pod_path(name: &str) -> String {
    format!("{}/{name}", pods_path())
}

fn a_pod(name: &str) -> Pod {
    serde_json::from_value(pod(NS, name, json!({}))).unwrap()
}

#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<Event>>>);

impl Reporter for Recorder {
    fn event(&mut self, event: &Event) {
        self.0.lock().unwrap().push(event.clone());
    }
}

fn options() -> KubeOptions {
    // No Docker Hub mirror: deploying one needs a local engine to seed it from.
    KubeOptions { namespace: Some(NS.into()), hub_mirror: super::mirror::HubMirror::Off, ..KubeOptions::default() }
}

/// A backend on the mock in the namespace `--namespace` names (so it does not own it).
async fn backend(handler: impl FnMut(&mock::Seen) -> Reply + Send + 'static) -> (KubeBackend, mock::Trace) {
    backend_at("33", handler).await
}

/// As [`backend`], on an API server of version 1.`minor`.
async fn backend_at(minor: &'static str, handler: impl FnMut(&mock::Seen) -> Reply + Send + 'static) -> (KubeBackend, mock::Trace) {
    let mut handler = handler;
    let (client, trace) = mock::serve(move |seen| {
        if seen.is("GET", "/version") {
            return version(minor);
        }
        assert!(!seen.is("GET", &format!("/api/v1/namespaces/{NS}")), "a given namespace is not read");
        handler(seen)
    });
    let backend = KubeBackend::with_client(client, options(), "run-1", "flask").await.unwrap();
    trace.lock().unwrap().clear();
    (backend, trace)
}

struct Job {
    pipeline_run: PipelineRun,
    plan: JobPlan,
    dockerfile: Dockerfile,
    context: tempfile::TempDir,
    dockerfile_path: PathBuf,
}

impl Job {
    fn new(strategy: Strategy) -> Job {
        let text = "FROM python:3.11-slim\nRUN echo hi\n";
        let dockerfile = Dockerfile::parse(text).unwrap();
        let context = tempfile::tempdir().unwrap();
        std::fs::write(context.path().join("Dockerfile"), text).unwrap();
        let repository = format!("registry:5000/{strategy}/app");
        let plan = strategy.plan(&PlanInput { repository: &repository, commit_tag: "c1-first", dockerfile: &dockerfile });
        Job {
            pipeline_run: PipelineRun { name: "first".into(), change: Change::None },
            plan,
            dockerfile,
            context,
            dockerfile_path: PathBuf::from("Dockerfile"),
        }
    }

    fn spec(&self, strategy: Strategy) -> JobSpec<'_> {
        JobSpec {
            lane: crate::lanes::Lane::ALONE,
            iteration: 1,
            pipeline_index: 0,
            pipeline_run: &self.pipeline_run,
            strategy,
            plan: &self.plan,
            context: self.context.path(),
            dockerfile_path: &self.dockerfile_path,
            dockerfile: &self.dockerfile,
            served_dockerfile: None,
        }
    }
}

#[tokio::test]
async fn create_answered_409_means_it_exists_already() {
    let (client, trace) = mock::serve(|seen| match (seen.method.as_str(), seen.path.as_str()) {
        ("POST", _) => status(409, "AlreadyExists", "pods \"p\" already exists"),
        ("GET", _) => ok(pod(NS, "p", json!({}))),
        _ => status(500, "InternalError", "unexpected"),
    });
    let pods: Api<Pod> = Api::namespaced(client, NS);
    ensure_created(&pods, &a_pod("p"), Duration::from_secs(5)).await.unwrap();
    assert_eq!(lines(&trace), vec![format!("POST {}", pods_path()), format!("GET {}", pod_path("p"))]);
}

#[tokio::test(start_paused = true)]
async fn create_over_an_object_being_deleted_waits_for_it_then_creates_again() {
    let mut posts = 0;
    let (client, trace) = mock::serve(move |seen| {
        let old = pod(NS, "p", json!({}));
        let mut terminating = old.clone();
        terminating["metadata"]["deletionTimestamp"] = json!("2026-11-27T18:00:00Z");
        match (seen.method.as_str(), seen.is_watch()) {
            ("POST", _) => {
                posts += 1;
                if posts == 1 { status(409, "AlreadyExists", "already exists") } else { created(seen) }
            }
            ("GET", true) => Reply::Watch(vec![("DELETED", terminating)]),
            ("GET", false) if seen.path == pod_path("p") => ok(terminating),
            ("GET", false) => list("Pod", vec![terminating]),
            _ => status(500, "InternalError", "unexpected"),
        }
    });
    let pods: Api<Pod> = Api::namespaced(client, NS);
    ensure_created(&pods, &a_pod("p"), Duration::from_secs(30)).await.unwrap();
    let trace = lines(&trace);
    assert_eq!(trace.first().unwrap(), &format!("POST {}", pods_path()));
    assert_eq!(trace.last().unwrap(), &format!("POST {}", pods_path()));
    assert!(trace.contains(&format!("GET {} (watch)", pods_path())), "{trace:?}");
}

/// A collection DELETE narrowed to one name and to this run's label: someone else's object of
/// the same name in a shared namespace is left alone by the API server itself.
fn deletes_only_ours(seen: &mock::Seen, name: &str) -> bool {
    let pairs: Vec<&str> = seen.query.split('&').collect();
    pairs.contains(&format!("fieldSelector=metadata.name%3D{name}").as_str())
        && pairs.contains(&"labelSelector=layerbench.run-id%3Drun-1")
}

#[tokio::test]
async fn create_over_someone_elses_object_of_the_same_name_is_refused() {
    let (client, _) = mock::serve(|seen| match seen.method.as_str() {
        "POST" => status(409, "AlreadyExists", "already exists"),
        _ => {
            let mut foreign = pod(NS, "registry", json!({}));
            foreign["metadata"]["labels"] = json!({crate::RUN_ID_LABEL: "someone-else"});
            ok(foreign)
        }
    });
    let pods: Api<Pod> = Api::namespaced(client, NS);
    let mut ours = a_pod("registry");
    ours.metadata.labels = Some([(crate::RUN_ID_LABEL.to_string(), "run-1".to_string())].into());
    let error = ensure_created(&pods, &ours, Duration::from_secs(5)).await.unwrap_err().to_string();
    assert!(error.starts_with("create Pod registry: a Pod of that name exists and is not this run's"), "{error}");
    assert!(error.contains("\"someone-else\""), "{error}");
}

#[tokio::test]
async fn delete_answered_404_means_already_gone() {
    let (client, trace) = mock::serve(|_| status(404, "NotFound", "pods \"p\" not found"));
    let pods: Api<Pod> = Api::namespaced(client, NS);
    delete(&pods, "p", Whose::Any, &DeleteParams::default(), Some(Duration::from_secs(5))).await.unwrap();
    assert_eq!(lines(&trace), vec![format!("DELETE {}", pod_path("p"))]);
}

#[tokio::test(start_paused = true)]
async fn a_pod_in_image_pull_back_off_fails_with_the_kubelets_reason_and_a_way_out() {
    let mut watched = false;
    let (client, _) = mock::serve(move |seen| {
        let creating = waiting("dind", "layerbench-local/dind:28-dind", "ContainerCreating", "");
        let stuck = waiting(
            "dind",
            "layerbench-local/dind:28-dind",
            "ImagePullBackOff",
            "Back-off pulling image \"layerbench-local/dind:28-dind\"",
        );
        if seen.is_watch() {
            // Once: a watcher that kept getting events would never let paused time reach the timeout.
            match std::mem::replace(&mut watched, true) {
                false => Reply::Watch(vec![("MODIFIED", pod(NS, "job", stuck))]),
                true => Reply::Hang,
            }
        } else {
            list("Pod", vec![pod(NS, "job", creating)])
        }
    });
    let pods: Api<Pod> = Api::namespaced(client, NS);
    let started = tokio::time::Instant::now();
    let error = wait_pod(&pods, "job", PodStage::Started, Duration::from_secs(300)).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(1), "failed fast, not at the timeout");
    let KubeError::PodFailed { reason, .. } = &error else { panic!("{error:?}") };
    assert!(reason.contains("container dind: ImagePullBackOff: Back-off pulling image"), "{reason}");
    assert!(reason.contains("kind load docker-image layerbench-local/dind:28-dind"), "{reason}");
}

#[tokio::test(start_paused = true)]
async fn an_unschedulable_pod_times_out_naming_the_stage_and_the_schedulers_reason() {
    let (client, _) = mock::serve(|seen| {
        if seen.is_watch() {
            return Reply::Hang;
        }
        let unschedulable = json!({"phase": "Pending", "conditions": [{
            "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
            "message": "0/1 nodes are available: 1 Insufficient memory."}]});
        if seen.path == pod_path("job") {
            ok(pod(NS, "job", unschedulable))
        } else {
            list("Pod", vec![pod(NS, "job", unschedulable)])
        }
    });
    let pods: Api<Pod> = Api::namespaced(client, NS);
    let started = tokio::time::Instant::now();
    let error = wait_pod(&pods, "job", PodStage::Scheduled, Duration::from_secs(60)).await.unwrap_err();
    assert_eq!(started.elapsed().as_secs(), 60);
    assert_eq!(
        error.to_string(),
        "timed out after 60 s waiting for pod job to be scheduled \
         (PodScheduled=False: Unschedulable: 0/1 nodes are available: 1 Insufficient memory.)"
    );
}

fn namespace_json(phase: &str, finalizers: &[&str]) -> serde_json::Value {
    json!({"apiVersion": "v1", "kind": "Namespace",
           "metadata": {"name": "layerbench-run-1", "uid": "ns-uid", "resourceVersion": "5", "finalizers": finalizers,
                        "labels": {crate::RUN_ID_LABEL: "run-1"}},
           "status": {"phase": phase}})
}

/// A backend that created its namespace; `watch` answers the watches of its deletion in turn.
async fn owning_backend(mut watches: Vec<Reply>, timeouts: KubeTimeouts) -> (KubeBackend, mock::Trace) {
    watches.reverse();
    let mut created_ns = false;
    let (client, trace) = mock::serve(move |seen| {
        let ns_path = "/api/v1/namespaces/layerbench-run-1";
        match (seen.method.as_str(), seen.path.as_str(), seen.is_watch()) {
            ("GET", "/version", _) => ok(json!({"major": "1", "minor": "33", "gitVersion": "v1.33.0", "gitCommit": "",
                "gitTreeState": "", "buildDate": "", "goVersion": "", "compiler": "", "platform": ""})),
            ("GET", p, _) if p == ns_path && !created_ns => status(404, "NotFound", "not found"),
            ("POST", "/api/v1/namespaces", _) => {
                created_ns = true;
                created(seen)
            }
            ("DELETE", p, _) if p == ns_path => ok(namespace_json("Terminating", &["kubernetes"])),
            ("GET", "/api/v1/namespaces", false) => list("Namespace", vec![namespace_json("Terminating", &["kubernetes"])]),
            ("GET", "/api/v1/namespaces", true) => watches.pop().unwrap_or(Reply::Hang),
            ("GET", p, _) if p == ns_path => ok(namespace_json("Terminating", &["kubernetes"])),
            _ => status(500, "InternalError", "unexpected"),
        }
    });
    let options = KubeOptions { timeouts, ..KubeOptions::default() };
    let backend = KubeBackend::with_client(client, options, "run-1", "flask").await.unwrap();
    (backend, trace)
}

#[tokio::test(start_paused = true)]
async fn shutdown_waits_for_a_namespace_that_takes_time_to_terminate() {
    let still_terminating = Reply::Watch(vec![("MODIFIED", namespace_json("Terminating", &["kubernetes"]))]);
    let gone = Reply::Watch(vec![("DELETED", namespace_json("Terminating", &[]))]);
    let (mut backend, trace) = owning_backend(vec![still_terminating, gone], KubeTimeouts::default()).await;
    assert_eq!(backend.namespace(), "layerbench-run-1");
    backend.shutdown().await.unwrap();
    let trace = lines(&trace);
    assert!(trace.contains(&"POST /api/v1/namespaces".to_string()), "{trace:?}");
    assert!(trace.contains(&"DELETE /api/v1/namespaces/layerbench-run-1".to_string()), "{trace:?}");
    let watches = trace.iter().filter(|l| l.ends_with("(watch)")).count();
    assert_eq!(watches, 2, "re-watched until the DELETED event: {trace:?}");
}

#[tokio::test(start_paused = true)]
async fn a_namespace_that_never_terminates_fails_shutdown_with_what_holds_it() {
    let timeouts = KubeTimeouts { namespace_delete: Duration::from_secs(90), ..KubeTimeouts::default() };
    let (mut backend, _) = owning_backend(vec![], timeouts).await;
    let error = backend.shutdown().await.unwrap_err().to_string();
    assert!(error.starts_with("delete namespace layerbench-run-1: timed out after 90 s waiting for Namespace"), "{error}");
    assert!(error.contains("finalizers still pending: kubernetes"), "{error}");
    assert!(error.contains("layerbench clean --backend kube"), "{error}");
}

#[tokio::test(start_paused = true)]
async fn a_dind_job_whose_image_cannot_be_pulled_fails_with_that_reason_and_its_pod_is_deleted() {
    let job_name = "job-n1l1-i1-p0-ephemeral-dind";
    let mut watched = false;
    let mut deleted = false;
    let (backend, trace) = backend(move |seen| {
        let scheduled = json!({"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "True"}]});
        let stuck = waiting("dind", "docker:28-dind", "ErrImagePull", "failed to pull and unpack image \"docker.io/library/docker:28-dind\": dial tcp: lookup registry-1.docker.io: no such host");
        match (seen.method.as_str(), seen.is_watch()) {
            ("POST", _) => created(seen),
            // The teardown waits for the pod to be gone, as the docker backend waits for its containers.
            ("GET", true) if deleted => Reply::Watch(vec![("DELETED", pod(NS, job_name, stuck.clone()))]),
            ("GET", true) if !std::mem::replace(&mut watched, true) => {
                Reply::Watch(vec![("MODIFIED", pod(NS, job_name, stuck.clone()))])
            }
            ("GET", true) => Reply::Hang,
            ("GET", false) => list("Pod", vec![pod(NS, job_name, scheduled)]),
            ("DELETE", _) => {
                deleted = true;
                list("Pod", vec![pod(NS, job_name, stuck)])
            }
            _ => status(500, "InternalError", "unexpected"),
        }
    })
    .await;
    let job = Job::new(Strategy::named("ephemeral-dind"));
    let recorder = Recorder::default();
    let events = EventSink::new(vec![Box::new(recorder.clone())]);
    let outcome = backend.run_job(&job.spec(Strategy::named("ephemeral-dind")), &events).await;
    let error = outcome.error.unwrap().message;
    assert!(error.starts_with(&format!("pod {job_name}: container dind: ErrImagePull: failed to pull")), "{error}");
    assert!(error.contains("kind load docker-image docker:28-dind"), "{error}");
    assert!(outcome.phases.contains_key(&Phase::Provision));
    assert!(!outcome.phases.contains_key(&Phase::Build));
    assert!(outcome.cleanup_errors.is_empty(), "{:?}", outcome.cleanup_errors);
    assert_eq!(lines(&trace).first().unwrap(), &format!("POST {}", pods_path()));
    let delete = trace.lock().unwrap().iter().find(|s| s.method == "DELETE").cloned().expect("the pod is deleted");
    assert!(delete.is("DELETE", &pods_path()), "{}", delete.line());
    assert!(deletes_only_ours(&delete, job_name), "{}", delete.query);
    assert!(trace.lock().unwrap().last().unwrap().is_watch(), "the teardown waits until the pod is gone");
    let sent: Vec<String> = recorder.0.lock().unwrap().iter().map(|e| format!("{e:?}")).collect();
    assert!(sent[0].contains("Provision") && sent[0].contains(job_name), "{sent:?}");
}

/// Answers the six deletions of `remove_iteration_services` with 404 and the registry's
/// creation and start; `rest` answers everything else.
fn iteration_handler(mut rest: impl FnMut(&mock::Seen) -> Reply + Send) -> impl FnMut(&mock::Seen) -> Reply + Send {
    move |seen| {
        let registry_pod = pod(NS, "registry-abc", running(&["registry"], true));
        if seen.method == "DELETE" {
            return status(404, "NotFound", "not found");
        }
        if seen.method == "POST" && seen.body["metadata"]["name"] == "registry-config" {
            return created(seen);
        }
        if seen.method == "POST" && seen.path.contains("/deployments") && seen.body["metadata"]["name"] == "registry" {
            return created(seen);
        }
        if seen.method == "POST" && seen.path.contains("/services") && seen.body["metadata"]["name"] == "registry" {
            return created(seen);
        }
        let registry_query = seen.query.contains("registry") || seen.query.contains("registry-abc");
        if seen.method == "GET" && seen.path == pods_path() && registry_query {
            return if seen.is_watch() { Reply::Hang } else { list("Pod", vec![registry_pod]) };
        }
        rest(seen)
    }
}

#[tokio::test(start_paused = true)]
async fn a_shared_daemon_refused_by_pod_security_fails_its_jobs_and_the_run_goes_on() {
    let refusal = "pods \"dind-5d8f\" is forbidden: violates PodSecurity \"baseline:latest\": privileged \
                   (container \"dind\" must not set securityContext.privileged=true)";
    let (mut backend, trace) = backend(iteration_handler(move |seen| match (seen.method.as_str(), seen.is_watch()) {
        ("POST", _) => created(seen),
        ("GET", true) => Reply::Hang,
        ("GET", false) if seen.path == pods_path() => list("Pod", vec![]),
        ("GET", false) if seen.path.ends_with("/deployments/shared-dind") => ok(json!({
            "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "shared-dind"},
            "status": {"conditions": [{"type": "ReplicaFailure", "status": "True", "reason": "FailedCreate", "message": refusal}]},
        })),
        _ => status(500, "InternalError", "unexpected"),
    }))
    .await;
    let recorder = Recorder::default();
    let events = EventSink::new(vec![Box::new(recorder.clone())]);
    let started = backend.begin_iteration(1, &[Strategy::named("shared-dind")], &events).await.unwrap();
    assert!(started.is_empty(), "no shared service started: {started:?}");
    let deleted: Vec<String> = trace.lock().unwrap().iter().filter(|s| s.method == "DELETE").map(|s| format!("{} {}", s.path, s.query)).collect();
    for (kind, name) in [("deployments", "shared-dind"), ("services", "shared-dind"), ("networkpolicies", "shared-dind-only-from-its-jobs"), ("persistentvolumeclaims", "shared-dind-state")] {
        let named = format!("fieldSelector=metadata.name%3D{name}");
        assert!(deleted.iter().any(|d| d.contains(kind) && d.contains(&named)), "{kind} {name}: the strategy's own daemon's objects: {deleted:?}");
    }
    let trace = lines(&trace);
    assert_eq!(trace.iter().filter(|l| l.starts_with("DELETE")).count(), 6, "leftovers removed first: {trace:?}");
    for kind in ["persistentvolumeclaims", "networkpolicies", "services", "deployments"] {
        assert!(trace.iter().any(|l| l.starts_with("POST") && l.ends_with(kind)), "no {kind} created: {trace:?}");
    }
    let notices: Vec<String> = recorder.0.lock().unwrap().iter().map(|e| format!("{e:?}")).collect();
    assert!(notices.iter().any(|n| n.contains("violates PodSecurity")), "{notices:?}");

    let job = Job::new(Strategy::named("shared-dind"));
    let outcome = backend.run_job(&job.spec(Strategy::named("shared-dind")), &events).await;
    let error = outcome.error.unwrap().message;
    assert!(error.starts_with("the shared daemon of shared-dind did not start: timed out after 60 s waiting for a shared-dind pod"), "{error}");
    assert!(error.contains("FailedCreate: pods \"dind-5d8f\" is forbidden: violates PodSecurity"), "{error}");
    assert!(error.contains("kubectl label namespace ns pod-security.kubernetes.io/enforce=privileged --overwrite"), "{error}");
    // The registry's log file is read through exec, which this mock cannot serve (see
    // registry_traffic_comes_from_the_lines_its_log_file_gained_during_the_job): unknown, and said so.
    assert_eq!(outcome.bytes_pushed, None);
    assert!(outcome.unmeasured.iter().any(|u| u.contains("the registry's access log could not be read")), "{:?}", outcome.unmeasured);
}

#[tokio::test(start_paused = true)]
async fn a_daemonless_job_ships_its_context_in_config_maps_and_reads_steps_from_the_pod_log() {
    let job_name = "job-n1l1-i1-p0-daemonless";
    let posted: Arc<Mutex<Vec<serde_json::Value>>> = Arc::default();
    let bodies = posted.clone();
    let mut exited_yet = false;
    let log = "2026-11-27T18:00:00.000000000Z STEP 1/2: FROM python:3.11-slim\n\
               2026-11-27T18:00:01.500000000Z STEP 2/2: RUN echo hi\n\
               2026-11-27T18:00:01.600000000Z hi\n\
               2026-11-27T18:00:04.000000000Z COMMIT registry:5000/daemonless/app:c1-first\n\
               2026-11-27T18:00:04.100000000Z ::layerbench-usage --\n";
    let (mut backend, trace) = backend(iteration_handler(move |seen| match (seen.method.as_str(), seen.is_watch()) {
        ("POST", _) => {
            bodies.lock().unwrap().push(seen.body.clone());
            created(seen)
        }
        ("GET", _) if seen.path.ends_with("/log") => Reply::Text(log.to_string()),
        ("GET", true) => Reply::Hang,
        ("GET", false) => {
            // Running when first asked, exited from then on.
            let state = if exited_yet { exited("build", 0) } else { running(&["build"], false) };
            exited_yet = true;
            let answer = pod(NS, job_name, state);
            if seen.path == pod_path(job_name) { ok(answer) } else { list("Pod", vec![answer]) }
        }
        _ => status(500, "InternalError", "unexpected"),
    }))
    .await;
    let events = EventSink::default();
    backend.begin_iteration(1, &[Strategy::named("daemonless")], &events).await.unwrap();
    let job = Job::new(Strategy::named("daemonless"));
    let outcome = backend.run_job(&job.spec(Strategy::named("daemonless")), &events).await;
    assert_eq!(outcome.error, None);
    assert!(outcome.phases.contains_key(&Phase::Provision) && outcome.phases.contains_key(&Phase::Build));
    let steps: Vec<(u32, bool, Option<crate::Millis>)> = outcome.steps.iter().map(|s| (s.step, s.cached, s.duration_ms)).collect();
    assert_eq!(steps[1], (2, false, Some(2500)), "step 2 ran from 1.5 s to the commit at 4 s: {steps:?}");

    let posted = posted.lock().unwrap();
    let config_map: ConfigMap = serde_json::from_value(posted[0].clone()).unwrap();
    let tar = &config_map.binary_data.unwrap()["part"].0;
    let names: Vec<String> = tar::Archive::new(&tar[..])
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().display().to_string())
        .collect();
    assert!(names.contains(&"Dockerfile".to_string()), "{names:?}");
    let pod: Pod = serde_json::from_value(posted[1].clone()).unwrap();
    assert_eq!(pod.metadata.name.as_deref(), Some(job_name));
    let trace = trace.lock().unwrap();
    let tail: Vec<&mock::Seen> = trace.iter().rev().take(3).collect();
    assert!(tail.iter().any(|d| d.is("DELETE", &pods_path()) && deletes_only_ours(d, job_name)), "{tail:?}");
    let config_maps = format!("/api/v1/namespaces/{NS}/configmaps");
    let part = format!("{job_name}-ctx-0");
    assert!(tail.iter().any(|d| d.is("DELETE", &config_maps) && deletes_only_ours(d, &part)), "{tail:?}");
}

#[tokio::test]
async fn clean_deletes_labelled_namespaces_but_not_those_already_terminating() {
    let (client, trace) = mock::serve(|seen| match seen.method.as_str() {
        "GET" => {
            assert!(seen.query.contains("labelSelector=layerbench.run-id"), "{}", seen.query);
            let mut old = namespace_json("Active", &[]);
            old["metadata"]["name"] = json!("layerbench-old");
            list("Namespace", vec![old, namespace_json("Terminating", &["kubernetes"])])
        }
        "DELETE" => ok(namespace_json("Terminating", &[])),
        _ => status(500, "InternalError", "unexpected"),
    });
    let removed = clean_with(client, &KubeOptions::default()).await.unwrap();
    assert_eq!(removed, 1);
    assert_eq!(lines(&trace), vec!["GET /api/v1/namespaces".to_string(), "DELETE /api/v1/namespaces/layerbench-old".into()]);
}

/// A watch that fails (an API server restart, an etcd leader change) is watched again: only the
/// limit ends a wait. Each wait's first two lists fail, the third answers.
#[tokio::test(start_paused = true)]
async fn a_failed_watch_is_watched_again_until_the_limit() {
    let lists = Arc::new(Mutex::new(0));
    let seen = lists.clone();
    let (client, _) = mock::serve(move |s| {
        let ready = pod(NS, "p", running(&["c"], true));
        match (s.method.as_str(), s.is_watch()) {
            ("GET", true) => Reply::Hang,
            ("GET", false) => {
                let mut n = seen.lock().unwrap();
                *n += 1;
                match *n % 3 {
                    1 | 2 => status(500, "InternalError", "etcdserver: leader changed"),
                    _ => list("Pod", vec![ready]),
                }
            }
            ("DELETE", _) => ok(ready),
            _ => status(500, "InternalError", "unexpected"),
        }
    });
    let pods: Api<Pod> = Api::namespaced(client, NS);
    let started = tokio::time::Instant::now();
    wait_pod(&pods, "p", PodStage::Ready, Duration::from_secs(60)).await.unwrap();
    let selected = super::orchestrate::wait_selected_pod(&pods, "app=x", "an x pod", PodStage::Ready, Duration::from_secs(60)).await;
    assert_eq!(selected.unwrap().metadata.name.as_deref(), Some("p"));
    assert!(started.elapsed() < Duration::from_secs(30), "retried with a short backoff, not at the limit");
    assert_eq!(*lists.lock().unwrap(), 6);
}

#[tokio::test(start_paused = true)]
async fn a_watch_that_keeps_failing_ends_at_the_limit_naming_the_last_watch_error() {
    let (client, _) = mock::serve(|s| match (s.method.as_str(), s.is_watch()) {
        ("DELETE", _) => ok(pod(NS, "p", json!({}))),
        ("GET", false) if s.path == pod_path("p") => ok(pod(NS, "p", json!({}))),
        ("GET", _) => status(403, "Forbidden", "pods is forbidden: User \"ci\" cannot watch resource \"pods\""),
        _ => status(500, "InternalError", "unexpected"),
    });
    let pods: Api<Pod> = Api::namespaced(client, NS);
    let started = tokio::time::Instant::now();
    let error = delete(&pods, "p", Whose::Any, &DeleteParams::default(), Some(Duration::from_secs(40))).await.unwrap_err();
    assert_eq!(started.elapsed().as_secs(), 40, "only the limit ends the wait");
    let text = error.to_string();
    assert!(text.starts_with("timed out after 40 s waiting for Pod p to be deleted"), "{text}");
    assert!(text.contains("cannot watch resource"), "the last watch error is named: {text}");
}

/// The answer to `GET /version` of a server at `minor` (1.`minor`).
fn version(minor: &str) -> Reply {
    ok(json!({"major": "1", "minor": minor, "gitVersion": format!("v1.{minor}.0"), "gitCommit": "", "gitTreeState": "",
              "buildDate": "", "goVersion": "", "compiler": "", "platform": ""}))
}

/// A namespace-scoped CI account may not read namespaces: with `--namespace` none is looked up
/// or created, and a namespace that does not exist is named as such at the first create.
#[tokio::test(start_paused = true)]
async fn a_given_namespace_is_neither_read_nor_created_and_a_missing_one_is_named() {
    let (client, trace) = mock::serve(|seen| match (seen.method.as_str(), seen.path.as_str()) {
        ("GET", "/version") => version("33"),
        (_, p) if p.starts_with("/api/v1/namespaces/ns") && !p.starts_with("/api/v1/namespaces/ns/") => {
            status(403, "Forbidden", "namespaces \"ns\" is forbidden: User \"system:serviceaccount:ci:runner\" cannot get resource \"namespaces\"")
        }
        ("DELETE", _) => list("Deployment", vec![]),
        ("POST", _) => Reply::Json(
            404,
            json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "reason": "NotFound", "code": 404,
                   "message": "namespaces \"ns\" not found", "details": {"name": "ns", "kind": "namespaces"}}),
        ),
        _ => status(500, "InternalError", "unexpected"),
    });
    let mut backend = KubeBackend::with_client(client, options(), "run-1", "flask").await.unwrap();
    assert_eq!(lines(&trace), vec!["GET /version".to_string()], "no namespace read");
    let error = backend.begin_iteration(1, &[Strategy::named("ephemeral-dind")], &EventSink::default()).await.unwrap_err().to_string();
    assert!(error.contains("namespace ns does not exist"), "{error}");
    assert!(error.contains("kubectl create namespace ns"), "{error}");
    assert!(!lines(&trace).iter().any(|l| l.starts_with("POST /api/v1/namespaces ")), "never created");
}

/// In a namespace given with `--namespace`, Pod Security may refuse the privileged dind pod: the
/// job fails at once with the API server's words and the command that allows it.
#[tokio::test(start_paused = true)]
async fn a_job_pod_refused_by_pod_security_says_how_to_label_the_namespace() {
    let refusal = "pods \"job-n1l1-i1-p0-ephemeral-dind\" is forbidden: violates PodSecurity \"baseline:latest\": privileged \
                   (container \"dind\" must not set securityContext.privileged=true)";
    let (backend, _) = backend(move |seen| match seen.method.as_str() {
        "POST" => status(403, "Forbidden", refusal),
        "DELETE" => list("Pod", vec![]),
        _ => status(500, "InternalError", "unexpected"),
    })
    .await;
    let job = Job::new(Strategy::named("ephemeral-dind"));
    let outcome = backend.run_job(&job.spec(Strategy::named("ephemeral-dind")), &EventSink::default()).await;
    let error = outcome.error.unwrap().message;
    assert!(error.contains("violates PodSecurity \"baseline:latest\""), "{error}");
    assert!(error.contains("kubectl label namespace ns pod-security.kubernetes.io/enforce=privileged --overwrite"), "{error}");
}

/// The pod a daemonless buildah job posts to an API server of version 1.`minor`.
async fn posted_daemonless_pod(minor: &'static str) -> Pod {
    let posted: Arc<Mutex<Vec<serde_json::Value>>> = Arc::default();
    let bodies = posted.clone();
    let (backend, _) = backend_at(minor, move |seen| match (seen.method.as_str(), seen.is_watch()) {
        ("POST", _) => {
            bodies.lock().unwrap().push(seen.body.clone());
            // Refused, so the job ends here: only the pod's manifest matters.
            if seen.path.ends_with("/pods") { status(403, "Forbidden", "no") } else { created(seen) }
        }
        ("DELETE", _) => list("Pod", vec![]),
        _ => status(500, "InternalError", "unexpected"),
    })
    .await;
    let job = Job::new(Strategy::named("daemonless"));
    backend.run_job(&job.spec(Strategy::named("daemonless")), &EventSink::default()).await;
    let pod = posted.lock().unwrap().iter().find(|b| b["kind"] == "Pod").cloned().unwrap();
    serde_json::from_value(pod).unwrap()
}

/// `appArmorProfile` is GA in 1.30; older API servers drop the field without a word, so there
/// buildah's unconfined profile is asked for with the annotation those servers read.
#[tokio::test(start_paused = true)]
async fn buildah_asks_for_apparmor_unconfined_in_the_way_the_api_server_reads() {
    let annotation = "container.apparmor.security.beta.kubernetes.io/build";
    let old = posted_daemonless_pod("29").await;
    assert_eq!(old.metadata.annotations.as_ref().unwrap().get(annotation).map(String::as_str), Some("unconfined"));
    let build = &old.spec.as_ref().unwrap().containers[0];
    assert!(build.security_context.as_ref().unwrap().app_armor_profile.is_none(), "a 1.29 server would drop it");
    let current = posted_daemonless_pod("33").await;
    assert!(!current.metadata.annotations.as_ref().unwrap().contains_key(annotation));
    let build = &current.spec.as_ref().unwrap().containers[0];
    assert_eq!(build.security_context.as_ref().unwrap().app_armor_profile.as_ref().unwrap().type_, "Unconfined");
}

/// A daemon that exits while its pod starts has crashed: the job fails at once with its exit
/// code and words, instead of waiting out the Ready timeout.
#[tokio::test(start_paused = true)]
async fn a_dind_daemon_that_exits_while_starting_fails_its_job_at_once() {
    let job_name = "job-n1l1-i1-p0-ephemeral-dind";
    let crashed = json!({
        "phase": "Running",
        "conditions": [{"type": "PodScheduled", "status": "True"}, {"type": "Ready", "status": "False"}],
        "containerStatuses": [
            {"name": "dind", "image": "docker:28-dind", "imageID": "", "ready": false, "restartCount": 0,
             "state": {"terminated": {"exitCode": 1, "reason": "Error",
                                      "message": "failed to start daemon: Error initializing network controller: iptables not found"}}},
            {"name": "job", "image": "docker:28-dind", "imageID": "", "ready": true, "restartCount": 0,
             "state": {"running": {"startedAt": "2026-11-27T18:00:00Z"}}},
        ],
    });
    let (backend, _) = backend(move |seen| match (seen.method.as_str(), seen.is_watch()) {
        ("POST", _) => created(seen),
        ("GET", true) => Reply::Hang,
        ("GET", false) => list("Pod", vec![pod(NS, job_name, crashed.clone())]),
        ("DELETE", _) => list("Pod", vec![]),
        _ => status(500, "InternalError", "unexpected"),
    })
    .await;
    let job = Job::new(Strategy::named("ephemeral-dind"));
    let started = tokio::time::Instant::now();
    let outcome = backend.run_job(&job.spec(Strategy::named("ephemeral-dind")), &EventSink::default()).await;
    assert!(started.elapsed() < Duration::from_secs(1), "failed at once, not at a timeout");
    let error = outcome.error.unwrap().message;
    assert!(error.contains("container dind exited with code 1 (Error): failed to start daemon"), "{error}");
}

/// A Deployment's container restarts after a crash: the restart count and the last state show it.
#[tokio::test(start_paused = true)]
async fn a_registry_that_restarted_after_a_crash_fails_the_iteration_at_once() {
    let mut restarted = running(&["registry"], false);
    restarted["containerStatuses"][0]["restartCount"] = json!(1);
    restarted["containerStatuses"][0]["lastState"] =
        json!({"terminated": {"exitCode": 2, "reason": "Error", "message": "panic: open /etc/layerbench/registry.yml: no such file"}});
    let (mut backend, _) = backend(move |seen| match (seen.method.as_str(), seen.is_watch()) {
        ("DELETE", _) => status(404, "NotFound", "not found"),
        ("POST", _) => created(seen),
        ("GET", true) => Reply::Hang,
        ("GET", false) => list("Pod", vec![pod(NS, "registry-abc", restarted.clone())]),
        _ => status(500, "InternalError", "unexpected"),
    })
    .await;
    let started = tokio::time::Instant::now();
    let error = backend.begin_iteration(1, &[], &EventSink::default()).await.unwrap_err().to_string();
    assert!(started.elapsed() < Duration::from_secs(1), "failed at once: {error}");
    assert!(error.contains("container registry exited with code 2 (Error): panic: open"), "{error}");
    assert!(error.contains("restarted"), "{error}");
}

/// A daemonless build may be over before the watch ever sees it running: that is no crash.
#[tokio::test(start_paused = true)]
async fn a_daemonless_build_that_is_done_before_it_is_seen_running_is_no_crash() {
    let job_name = "job-n1l1-i1-p0-daemonless";
    let log = "2026-11-27T18:00:00.000000000Z STEP 1/2: FROM python:3.11-slim\n\
               2026-11-27T18:00:01.500000000Z STEP 2/2: RUN echo hi\n\
               2026-11-27T18:00:04.000000000Z COMMIT registry:5000/daemonless/app:c1-first\n\
               2026-11-27T18:00:04.100000000Z ::layerbench-usage --\n";
    let (mut backend, _) = backend(iteration_handler(move |seen| match (seen.method.as_str(), seen.is_watch()) {
        ("POST", _) => created(seen),
        ("GET", _) if seen.path.ends_with("/log") => Reply::Text(log.to_string()),
        ("GET", true) => Reply::Hang,
        ("GET", false) if seen.path == pod_path(job_name) => ok(pod(NS, job_name, exited("build", 0))),
        ("GET", false) => list("Pod", vec![pod(NS, job_name, exited("build", 0))]),
        _ => status(500, "InternalError", "unexpected"),
    }))
    .await;
    let events = EventSink::default();
    backend.begin_iteration(1, &[Strategy::named("daemonless")], &events).await.unwrap();
    let job = Job::new(Strategy::named("daemonless"));
    let outcome = backend.run_job(&job.spec(Strategy::named("daemonless")), &events).await;
    assert_eq!(outcome.error, None);
    assert_eq!(outcome.steps.len(), 2);
}

/// A daemonless job whose log the API server answers with `logs` in turn (the last one again
/// after that); its pod runs until the `exits_after`th log request has been answered, then its
/// build container exits with 0. Returns the outcome and every log request's query.
async fn daemonless_job_with_logs(logs: Vec<Reply>, exits_after: usize) -> (JobOutcome, Vec<String>) {
    let job_name = "job-n1l1-i1-p0-daemonless";
    let mut logs: VecDeque<Reply> = logs.into();
    let served = Arc::new(Mutex::new(vec![]));
    let queries = served.clone();
    let (mut backend, _) = backend(iteration_handler(move |seen| {
        let exited_yet = queries.lock().unwrap().len() >= exits_after;
        let state = if exited_yet { exited("build", 0) } else { running(&["build"], false) };
        match (seen.method.as_str(), seen.is_watch()) {
            ("POST", _) => created(seen),
            ("GET", _) if seen.path.ends_with("/log") => {
                queries.lock().unwrap().push(seen.query.clone());
                match logs.len() {
                    0 => status(500, "InternalError", "no more logs scripted"),
                    1 => match &logs[0] {
                        Reply::Text(t) => Reply::Text(t.clone()),
                        Reply::Json(code, body) => Reply::Json(*code, body.clone()),
                        _ => Reply::Hang,
                    },
                    _ => logs.pop_front().unwrap(),
                }
            }
            ("GET", true) => Reply::Hang,
            ("GET", false) if seen.path == pod_path(job_name) => ok(pod(NS, job_name, state)),
            ("GET", false) => list("Pod", vec![pod(NS, job_name, state)]),
            _ => status(500, "InternalError", "unexpected"),
        }
    }))
    .await;
    let events = EventSink::default();
    backend.begin_iteration(1, &[Strategy::named("daemonless")], &events).await.unwrap();
    let job = Job::new(Strategy::named("daemonless"));
    let outcome = backend.run_job(&job.spec(Strategy::named("daemonless")), &events).await;
    let queries = served.lock().unwrap().clone();
    (outcome, queries)
}

fn step_rows(outcome: &JobOutcome) -> Vec<(u32, bool, Option<crate::Millis>)> {
    outcome.steps.iter().map(|s| (s.step, s.cached, s.duration_ms)).collect()
}

/// The job command's phase marks give a daemonless job's phases on both backends: buildah's
/// push is the push phase, not part of the build, and the last step ends at the push mark.
#[tokio::test(start_paused = true)]
async fn a_daemonless_job_takes_its_phases_from_its_scripts_marks() {
    let log = "2026-11-27T18:00:00.000000000Z buildah version 1.28.2 (image-spec 1.0.2-dev, runtime-spec 1.0.2-dev)\n\
               2026-11-27T18:00:00.100000000Z ::layerbench-phase build\n\
               2026-11-27T18:00:00.200000000Z STEP 1/2: FROM python:3.11-slim\n\
               2026-11-27T18:00:01.500000000Z STEP 2/2: RUN echo hi\n\
               2026-11-27T18:00:04.000000000Z ::layerbench-phase push\n\
               2026-11-27T18:00:09.000000000Z Writing manifest to image destination\n\
               2026-11-27T18:00:09.100000000Z ::layerbench-usage --\n";
    let (outcome, _) = daemonless_job_with_logs(vec![Reply::Text(log.into())], 1).await;
    assert_eq!(outcome.error, None);
    for phase in [Phase::Provision, Phase::Build, Phase::Push, Phase::Teardown, Phase::Measure] {
        assert!(outcome.phases.contains_key(&phase), "{phase:?} missing: {:?}", outcome.phases);
    }
    assert_eq!(step_rows(&outcome)[1], (2, false, Some(2500)), "step 2 ends at the push mark");
}

/// A build container's CPU time and memory come from its own cgroup: read by exec while it runs, and once more
/// by its script's exit trap, whose lines the log carries. They reach the meter, never the builder's parser, and
/// the trap's reading (the container's last) gives the CPU time.
#[tokio::test]
async fn a_build_containers_last_reading_comes_through_its_log_and_its_lines_stay_out_of_the_parser() {
    let job_name = "job-n1l1-i1-p0-daemonless";
    let log = "2026-11-27T18:00:00.000000000Z buildah version 1.28.2 (image-spec 1.0.2-dev, runtime-spec 1.0.2-dev)\n\
               2026-11-27T18:00:00.100000000Z ::layerbench-phase build\n\
               2026-11-27T18:00:00.200000000Z STEP 1/2: FROM python:3.11-slim\n\
               2026-11-27T18:00:01.500000000Z STEP 2/2: RUN echo hi\n\
               2026-11-27T18:00:04.000000000Z ::layerbench-phase push\n\
               2026-11-27T18:00:09.000000000Z Writing manifest to image destination\n\
               2026-11-27T18:00:09.100000000Z ::layerbench-usage v1.cpu_ns 2500000000\n\
               2026-11-27T18:00:09.100000000Z ::layerbench-usage v1.memory 104857600\n\
               2026-11-27T18:00:09.100000000Z ::layerbench-usage total_inactive_file 4857600\n\
               2026-11-27T18:00:09.100000000Z ::layerbench-usage --\n";
    let (mut backend, trace) = backend(iteration_handler(move |seen| match (seen.method.as_str(), seen.is_watch()) {
        ("POST", _) => created(seen),
        ("GET", _) if seen.path.ends_with("/log") => Reply::Text(log.into()),
        ("GET", _) if seen.path == format!("{}/exec", pod_path(job_name)) => {
            mock::exec("v1.cpu_ns 1000000000\nv1.memory 60000000\ntotal_inactive_file 0\n--\n", "", 0)
        }
        ("GET", true) => Reply::Hang,
        ("GET", false) if seen.path == pod_path(job_name) => ok(pod(NS, job_name, exited("build", 0))),
        ("GET", false) => list("Pod", vec![pod(NS, job_name, exited("build", 0))]),
        _ => status(500, "InternalError", "unexpected"),
    }))
    .await;
    let events = EventSink::default();
    backend.begin_iteration(1, &[Strategy::named("daemonless")], &events).await.unwrap();
    let job = Job::new(Strategy::named("daemonless"));
    let outcome = backend.run_job(&job.spec(Strategy::named("daemonless")), &events).await;
    assert_eq!(outcome.error, None);
    assert_eq!(outcome.usage.cpu_ms, Some(2500), "the container's last reading, from its exit trap");
    assert!(outcome.usage.peak_memory_bytes.is_some_and(|b| b >= 100_000_000), "{:?}", outcome.usage);
    assert!(!outcome.unmeasured.iter().any(|u| u.contains("CPU")), "{:?}", outcome.unmeasured);
    assert_eq!(step_rows(&outcome).len(), 2, "the usage lines are no steps");
    let sampled = trace.lock().unwrap().iter().find(|s| s.path.ends_with(&format!("{job_name}/exec"))).cloned();
    let sampled = sampled.expect("the build container was sampled by exec");
    assert!(sampled.query.contains("container=build") && sampled.query.contains("stdin=true"), "{}", sampled.query);
}

const FIRST_PART: &str = "2026-11-27T18:00:00.000000000Z STEP 1/2: FROM python:3.11-slim\n\
                          2026-11-27T18:00:01.500000000Z STEP 2/2: RUN echo hi\n\
                          2026-11-27T18:00:01.600000000Z hi\n";

/// A log stream that ends while the build still runs is opened again from a second before its
/// last timestamp; the lines it gives again are not read twice.
#[tokio::test(start_paused = true)]
async fn a_log_that_breaks_off_is_resumed_from_its_last_timestamp_without_reading_a_line_twice() {
    let rest = "2026-11-27T18:00:01.500000000Z STEP 2/2: RUN echo hi\n\
                2026-11-27T18:00:01.600000000Z hi\n\
                2026-11-27T18:00:04.000000000Z COMMIT registry:5000/daemonless/app:c1-first\n\
                2026-11-27T18:00:04.100000000Z ::layerbench-usage --\n";
    let (outcome, queries) = daemonless_job_with_logs(vec![Reply::Text(FIRST_PART.into()), Reply::Text(rest.into())], 2).await;
    assert_eq!(outcome.error, None);
    assert_eq!(queries.len(), 2, "{queries:?}");
    assert!(!queries[0].contains("sinceTime"), "{}", queries[0]);
    assert!(queries[1].contains("sinceTime=2026-11-27T18%3A00%3A00Z"), "{}", queries[1]);
    assert!(queries[1].contains("follow=true") && queries[1].contains("timestamps=true"), "{}", queries[1]);
    assert_eq!(step_rows(&outcome), vec![(1, false, Some(1500)), (2, false, Some(2500))]);
}

/// A log that breaks off and cannot be opened again is known incomplete: the job fails, naming
/// the cause, even though its build container exited with 0.
#[tokio::test(start_paused = true)]
async fn a_log_that_breaks_off_and_cannot_be_resumed_fails_the_job_naming_the_cause() {
    let kubelet = status(500, "InternalError", "Get \"https://10.0.0.3:10250/containerLogs/ns/job/build\": dial tcp 10.0.0.3:10250: connect: connection refused");
    // Running when the first stream ends, exited from the first failed re-open on.
    let (outcome, queries) = daemonless_job_with_logs(vec![Reply::Text(FIRST_PART.into()), kubelet], 2).await;
    let error = outcome.error.expect("a log known incomplete is no ok job");
    assert_eq!(error.kind, crate::results::FailureKind::Infrastructure);
    assert!(error.message.contains("the log of pod job-n1l1-i1-p0-daemonless broke off"), "{}", error.message);
    assert!(error.message.contains("connect: connection refused"), "{}", error.message);
    assert!(queries.len() > 2, "re-opened more than once: {queries:?}");
    assert_eq!(outcome.steps.len(), 2, "what was read is still recorded");
}

/// The kubelet may end a followed log as the container exits, before the runtime wrote its last lines
/// (a BuildKit job's cache export and push were missing so, 2026-12-07): a script's log is read again
/// until its last line is in it, and a job whose log never gets there is no ok job.
#[tokio::test(start_paused = true)]
async fn a_log_that_ends_before_its_scripts_last_line_is_read_again_and_never_taken_as_whole() {
    let rest = "2026-11-27T18:00:01.600000000Z hi\n\
                2026-11-27T18:00:04.000000000Z COMMIT registry:5000/daemonless/app:c1-first\n\
                2026-11-27T18:00:04.100000000Z ::layerbench-usage --\n";
    // Exited before the first stream: that stream ends at its end, without the last lines.
    let (outcome, queries) = daemonless_job_with_logs(vec![Reply::Text(FIRST_PART.into()), Reply::Text(rest.into())], 0).await;
    assert_eq!(outcome.error, None);
    assert_eq!(queries.len(), 2, "{queries:?}");
    assert_eq!(step_rows(&outcome), vec![(1, false, Some(1500)), (2, false, Some(2500))], "step 2 ends at the commit read the second time");
    let (outcome, queries) = daemonless_job_with_logs(vec![Reply::Text(FIRST_PART.into())], 0).await;
    let error = outcome.error.expect("a log known incomplete is no ok job");
    assert_eq!(error.kind, crate::results::FailureKind::Infrastructure);
    assert!(error.message.contains("the log ended before its last line (::layerbench-usage --)"), "{}", error.message);
    assert!(queries.len() > 2, "read again more than once: {queries:?}");
}

/// A command run by exec that failed is no measurement, even when it printed a number: `du`
/// that could not read part of the tree prints a total that is too small, and exits 1.
#[tokio::test]
async fn a_size_measured_by_a_command_that_failed_is_unknown_and_says_why() {
    let (mut backend, trace) = backend(|seen| match seen.path.as_str() {
        p if p == format!("{}/exec", pod_path("registry-abc")) => mock::exec("12345\n", "", 0),
        p if p == format!("{}/exec", pod_path("dind-abc")) => {
            mock::exec("1234\t/var/lib/docker\n", "du: cannot read directory '/var/lib/docker/overlay2/l': Permission denied\n", 1)
        }
        _ => status(500, "InternalError", "unexpected"),
    })
    .await;
    backend.registry_pod = Some("registry-abc".into());
    let daemon = super::backend::RunningDaemon { kind: crate::strategy::DaemonKind::Docker, pod: "dind-abc".into(), node: None, host: "shared-dind".into() };
    backend.shared.insert(Strategy::named("shared-dind"), Ok(daemon));
    let state = backend.cache_state(Strategy::named("shared-dind")).await;
    assert_eq!(state.registry_bytes, Some(12345), "stdout of a command that succeeded");
    assert_eq!(state.daemon_volume_bytes, None, "not the partial total");
    let why = state.unmeasured.join("; ");
    assert!(why.contains("exited with code 1") && why.contains("Permission denied"), "{why}");
    let exec = trace.lock().unwrap().iter().find(|s| s.path.ends_with("/exec")).cloned().unwrap();
    assert!(exec.query.contains("stderr=true"), "{}", exec.query);
}

/// Registry traffic is counted from the registry's own log file, read through exec (the
/// kubelet's log rotates): the lines after the job's start mark.
#[tokio::test]
async fn registry_traffic_comes_from_the_lines_its_log_file_gained_during_the_job() {
    const LINES: &str = "10.244.0.7 - - [27/Nov/2026:18:53:27 +0000] \"GET /v2/daemonless/app/manifests/latest HTTP/1.1\" 200 528 \"\" \"buildah\"\n\
        10.244.0.7 - - [27/Nov/2026:18:53:28 +0000] \"PUT /v2/daemonless/app/blobs/uploads/85107ae9?_state=x&digest=sha256%3Aa63922c84b714e53ebb01573d2a8038aa8ec867922a47c875b0d4101a3d4d69d HTTP/1.1\" 201 0 \"\" \"buildah\"\n";
    let (mut backend, trace) = backend(|seen| {
        let exec = format!("{}/exec", pod_path("registry-abc"));
        match (seen.path == exec, seen.query.as_str()) {
            (true, q) if q.contains("wc") => mock::exec("3\n", "", 0),
            (true, q) if q.contains("tail") => mock::exec(LINES, "", 0),
            (true, q) if q.contains("stat") => mock::exec("914\n", "", 0),
            _ => status(500, "InternalError", "unexpected"),
        }
    })
    .await;
    backend.registry_pod = Some("registry-abc".into());
    // A job that fails before it starts: its traffic is still measured.
    backend.options.images.by_role.remove(&crate::toolchain::Role::Kaniko);
    let job = Job::new(Strategy::named("daemonless-kaniko"));
    let outcome = backend.run_job(&job.spec(Strategy::named("daemonless-kaniko")), &EventSink::default()).await;
    assert!(outcome.error.is_some());
    assert_eq!((outcome.bytes_pulled, outcome.bytes_pushed), (Some(528), Some(914)), "{:?}", outcome.unmeasured);
    let tail = trace.lock().unwrap().iter().find(|s| s.query.contains("tail")).cloned().unwrap();
    assert!(tail.query.contains("%2B4"), "the lines after the 3 of the start mark: {}", tail.query);
    assert!(!lines(&trace).iter().any(|l| l.ends_with("/log")), "the kubelet's rotating log is not read");
}

/// Without the `pods/exec` permission the traffic is unknown, and the run says why.
#[tokio::test(start_paused = true)]
async fn registry_traffic_that_cannot_be_read_is_unknown_and_says_why() {
    let (mut backend, _) = backend(|seen| match seen.path.ends_with("/exec") {
        true => status(403, "Forbidden", "pods \"registry-abc\" is forbidden: User \"ci\" cannot create resource \"pods/exec\""),
        false => status(500, "InternalError", "unexpected"),
    })
    .await;
    backend.registry_pod = Some("registry-abc".into());
    backend.options.images.by_role.remove(&crate::toolchain::Role::Kaniko);
    let job = Job::new(Strategy::named("daemonless-kaniko"));
    let outcome = backend.run_job(&job.spec(Strategy::named("daemonless-kaniko")), &EventSink::default()).await;
    assert_eq!((outcome.bytes_pulled, outcome.bytes_pushed), (None, None));
    let why = outcome.unmeasured.join("; ");
    assert!(why.contains("bytes pulled and pushed left empty") && why.contains("pods/exec"), "{why}");
}

/// A dind job pod that is up, and a port-forward to it answered by `forward`; returns the job's error.
async fn dind_job_through(forward: Reply) -> String {
    let job_name = "job-n1l1-i1-p0-ephemeral-dind";
    let mut forward = Some(forward);
    let (backend, _) = backend(move |seen| match (seen.method.as_str(), seen.is_watch()) {
        ("POST", _) => created(seen),
        ("GET", _) if seen.path.ends_with("/portforward") => forward.take().unwrap_or(Reply::Hang),
        ("GET", true) => Reply::Hang,
        ("GET", false) if seen.path == pod_path(job_name) => ok(pod(NS, job_name, running(&["dind", "job"], true))),
        ("GET", false) => list("Pod", vec![pod(NS, job_name, running(&["dind", "job"], true))]),
        ("DELETE", _) => list("Pod", vec![]),
        _ => status(500, "InternalError", "unexpected"),
    })
    .await;
    let job = Job::new(Strategy::named("ephemeral-dind"));
    let outcome = backend.run_job(&job.spec(Strategy::named("ephemeral-dind")), &EventSink::default()).await;
    outcome.error.expect("the job failed").message
}

/// A shared-dind job whose daemon's pod stands on `now_on`, started this iteration on `n1`, and whose
/// port-forward never answers; every job limited to 3 s. Returns the job's error and what it deleted.
async fn shared_dind_job_on(now_on: &'static str) -> (String, Vec<String>) {
    let daemon_pod = "shared-dind-7c9";
    let (mut backend, trace) = backend(move |seen| match (seen.method.as_str(), seen.is_watch()) {
        ("GET", _) if seen.path.ends_with("/portforward") => Reply::Hang,
        ("GET", false) if seen.path == pod_path(daemon_pod) => {
            let mut daemon = pod(NS, daemon_pod, running(&["dind"], true));
            daemon["spec"]["nodeName"] = json!(now_on);
            ok(daemon)
        }
        _ => status(500, "InternalError", "unexpected"),
    })
    .await;
    backend.options.timeouts.job = Duration::from_secs(3);
    let daemon = super::backend::RunningDaemon { kind: crate::strategy::DaemonKind::Docker, pod: daemon_pod.into(), node: Some("n1".into()), host: "shared-dind".into() };
    backend.shared.insert(Strategy::named("shared-dind"), Ok(daemon));
    let job = Job::new(Strategy::named("shared-dind"));
    let outcome = backend.run_job(&job.spec(Strategy::named("shared-dind")), &EventSink::default()).await;
    assert_eq!(outcome.node.as_deref(), if now_on == "n1" { Some("n1") } else { None }, "the daemon's node, where the job ran");
    let deleted = lines(&trace).into_iter().filter(|l| l.starts_with("DELETE")).collect();
    (outcome.error.expect("the job failed").message, deleted)
}

/// A shared-dind job has the one job limit too, counted from its start as on docker (it used to have only
/// per-request bounds): a daemon that never answers ends the job at the limit, saying so.
#[tokio::test]
async fn a_shared_daemon_job_that_never_ends_stops_at_the_job_limit() {
    let (error, deleted) = shared_dind_job_on("n1").await;
    assert_eq!(error, "the job did not finish within the job limit of 3 s; what it created was deleted");
    assert!(deleted.is_empty(), "the shared daemon is the iteration's, not the job's: {deleted:?}");
}

/// A shared daemon stays on its node for the iteration; a job finding it elsewhere fails naming both.
#[tokio::test]
async fn a_shared_daemon_that_left_its_node_fails_its_job_saying_so() {
    let (error, _) = shared_dind_job_on("n2").await;
    assert_eq!(error, "the shared dind daemon (pod shared-dind-7c9) left node n1, where it started this iteration: it runs on node n2 now");
}

/// bollard only sees its connection close; the job's error carries the kubelet's reason.
#[tokio::test]
async fn a_port_forward_the_kubelet_gives_up_on_fails_the_job_with_the_kubelets_reason() {
    let refused = "error forwarding port 2375 to pod 1f1c, uid : failed to execute portforward in network namespace \
                   \"/var/run/netns/cni-7\": failed to connect to localhost:2375 inside namespace \"1f1c\", \
                   IPv4: dial tcp4 127.0.0.1:2375: connect: connection refused";
    let error = dind_job_through(mock::port_forward_refused(2375, refused)).await;
    assert!(error.contains("dial tcp4 127.0.0.1:2375: connect: connection refused"), "{error}");
    assert!(error.contains("port-forward to pod job-n1l1-i1-p0-ephemeral-dind port 2375"), "{error}");
}

/// The API server's refusal of the port-forward itself reaches the job too.
#[tokio::test]
async fn a_port_forward_the_api_server_refuses_fails_the_job_with_its_reason() {
    let forbidden = "pods \"job-n1l1-i1-p0-ephemeral-dind\" is forbidden: User \"ci\" cannot create resource \"pods/portforward\"";
    let error = dind_job_through(status(403, "Forbidden", forbidden)).await;
    assert!(error.contains("cannot create resource \\\"pods/portforward\\\"") || error.contains("cannot create resource \"pods/portforward\""), "{error}");
}

fn storage_class(name: &str, default: bool) -> serde_json::Value {
    let annotations = if default { json!({"storageclass.kubernetes.io/is-default-class": "true"}) } else { json!({}) };
    json!({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "provisioner": "example.com/disk",
           "metadata": {"name": name, "annotations": annotations}})
}

/// Without `--storage-class` on a cluster with no default class, the shared daemon's claim would
/// stay Pending until the timeout: its jobs fail at once with what to pass instead.
#[tokio::test(start_paused = true)]
async fn a_cluster_without_a_default_storage_class_fails_the_shared_daemon_at_once_naming_the_flag() {
    let (mut backend, trace) = backend(iteration_handler(|seen| match seen.path.as_str() {
        "/apis/storage.k8s.io/v1/storageclasses" => list("StorageClass", vec![storage_class("slow", false)]),
        _ => status(500, "InternalError", "unexpected"),
    }))
    .await;
    let recorder = Recorder::default();
    let events = EventSink::new(vec![Box::new(recorder.clone())]);
    let started = tokio::time::Instant::now();
    backend.begin_iteration(1, &[Strategy::named("shared-dind")], &events).await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(1), "at once, not at a timeout");
    let notices: Vec<String> = recorder.0.lock().unwrap().iter().map(|e| format!("{e:?}")).collect();
    assert!(notices.iter().any(|n| n.contains("no default StorageClass; pass --storage-class NAME")), "{notices:?}");
    assert!(notices.iter().any(|n| n.contains("slow")), "the classes there are: {notices:?}");
    assert!(!lines(&trace).iter().any(|l| l.starts_with("POST") && l.ends_with("persistentvolumeclaims")), "no claim made");
}

/// A shared daemon whose claim stays Pending times out saying so, with the claim's events. (An
/// account that may not list StorageClasses skips the default-class check.)
#[tokio::test(start_paused = true)]
async fn a_shared_daemon_waiting_on_a_pending_claim_times_out_with_the_claims_phase_and_events() {
    let pending = json!({"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                         "message": "0/1 nodes are available: pod has unbound immediate PersistentVolumeClaims."}]});
    let (mut backend, _) = backend(iteration_handler(move |seen| match (seen.method.as_str(), seen.path.as_str()) {
        (_, "/apis/storage.k8s.io/v1/storageclasses") => status(403, "Forbidden", "cannot list resource \"storageclasses\""),
        ("POST", _) => created(seen),
        ("GET", p) if p == format!("/api/v1/namespaces/{NS}/persistentvolumeclaims/shared-dind-state") => ok(json!({
            "apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "shared-dind-state"}, "status": {"phase": "Pending"}})),
        ("GET", p) if p == format!("/api/v1/namespaces/{NS}/events") => list("Event", vec![json!({
            "apiVersion": "v1", "kind": "Event", "metadata": {"name": "shared-dind-state.1"}, "reason": "FailedBinding", "type": "Warning",
            "involvedObject": {"kind": "PersistentVolumeClaim", "name": "shared-dind-state"},
            "message": "no persistent volumes available for this claim and no storage class is set"})]),
        ("GET", p) if p == pods_path() && seen.is_watch() => Reply::Hang,
        ("GET", p) if p == pods_path() => list("Pod", vec![pod(NS, "dind-7c9", pending.clone())]),
        ("GET", p) if p.ends_with("/deployments/shared-dind") => ok(json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "shared-dind"}})),
        _ => status(500, "InternalError", "unexpected"),
    }))
    .await;
    let recorder = Recorder::default();
    let events = EventSink::new(vec![Box::new(recorder.clone())]);
    backend.begin_iteration(1, &[Strategy::named("shared-dind")], &events).await.unwrap();
    let notices: Vec<String> = recorder.0.lock().unwrap().iter().map(|e| format!("{e:?}")).collect();
    let notice = notices.iter().find(|n| n.contains("did not start")).expect("a notice");
    assert!(notice.contains("timed out after 60 s waiting for a shared-dind pod to be scheduled"), "{notice}");
    assert!(notice.contains("pod has unbound immediate PersistentVolumeClaims"), "{notice}");
    assert!(notice.contains("PersistentVolumeClaim shared-dind-state is Pending"), "{notice}");
    assert!(notice.contains("FailedBinding: no persistent volumes available for this claim"), "{notice}");
}

/// The buildah pod runs the builder's one job command (crate::builder): the registries.conf that
/// makes the run's registry plain HTTP and sends Docker Hub through the mirror, as on the docker
/// backend, with the names the pod sees.
#[tokio::test(start_paused = true)]
async fn the_buildah_pod_runs_the_builders_job_command_with_its_registries_conf() {
    let posted: Arc<Mutex<Vec<serde_json::Value>>> = Arc::default();
    let bodies = posted.clone();
    let (client, _) = mock::serve(move |seen| match (seen.method.as_str(), seen.path.as_str()) {
        ("GET", "/version") => version("33"),
        ("POST", p) if p.ends_with("/pods") => {
            bodies.lock().unwrap().push(seen.body.clone());
            status(403, "Forbidden", "the manifest is all this test needs")
        }
        ("POST", _) => created(seen),
        ("DELETE", _) => list("Pod", vec![]),
        _ => status(500, "InternalError", "unexpected"),
    });
    let options = KubeOptions { hub_mirror: super::mirror::HubMirror::External("10.0.0.5:5000".into()), ..options() };
    let backend = KubeBackend::with_client(client, options, "run-1", "flask").await.unwrap();
    let job = Job::new(Strategy::named("daemonless"));
    backend.run_job(&job.spec(Strategy::named("daemonless")), &EventSink::default()).await;
    let pod: Pod = serde_json::from_value(posted.lock().unwrap()[0].clone()).unwrap();
    let build = &pod.spec.unwrap().containers[0];
    let Op::JobBuild(request) = &job.plan.ops[0] else { panic!("a daemonless plan") };
    let endpoints = crate::builder::Endpoints { registry: "registry:5000", hub_mirror: Some("10.0.0.5:5000"), daemon_host: None };
    let expected = crate::builder::job_command(request, Path::new("Dockerfile"), &endpoints);
    let args = build.args.as_ref().unwrap();
    assert!(args[0].ends_with(&expected.args[0]), "the builder's own script: {args:?}");
    assert!(args[0].starts_with(&super::manifests::script_prelude()), "read once more as it exits, stderr joined to stdout: {args:?}");
    let script = &expected.args[0];
    assert!(script.contains("> /etc/containers/registries.conf"), "{script}");
    assert!(script.contains("prefix = \"registry:5000\"\nlocation = \"registry:5000\"\ninsecure = true"), "{script}");
    assert!(script.contains("[[registry.mirror]]\nlocation = \"10.0.0.5:5000\"\ninsecure = true"), "{script}");
}

/// `clean --namespace` with an account scoped to that namespace: the namespaces it may not list
/// are skipped, and the run objects in its namespace are still removed, each through the one delete path.
#[tokio::test]
async fn clean_in_a_given_namespace_needs_no_right_to_list_namespaces() {
    let (client, trace) = mock::serve(|seen| match (seen.method.as_str(), seen.path.as_str()) {
        ("GET", "/api/v1/namespaces") => status(403, "Forbidden", "User \"ci\" cannot list resource \"namespaces\" at the cluster scope"),
        ("GET", p) | ("DELETE", p) => {
            // One labelled object of whichever kind, in its group's version.
            let version = match p {
                p if p.starts_with("/apis/apps/") => "apps/v1",
                p if p.starts_with("/apis/networking.k8s.io/") => "networking.k8s.io/v1",
                _ => "v1",
            };
            ok(json!({"kind": "List", "apiVersion": version, "metadata": {"resourceVersion": "1"}, "items": [{"metadata": {"name": "x", "namespace": NS}}]}))
        }
        _ => status(500, "InternalError", "unexpected"),
    });
    let removed = clean_with(client, &options()).await.unwrap();
    assert_eq!(removed, 6, "one object of each kind");
    let deletes: Vec<mock::Seen> = trace.lock().unwrap().iter().filter(|s| s.method == "DELETE").cloned().collect();
    assert_eq!(deletes.len(), 6, "{deletes:?}");
    for delete in &deletes {
        assert!(delete.query.contains("fieldSelector=metadata.name%3Dx") && delete.query.contains("labelSelector=layerbench.run-id"), "{}", delete.query);
    }
    assert!(lines(&trace).iter().all(|l| !l.starts_with("DELETE /api/v1/namespaces/ns ")), "the namespace itself stays");
}

/// A delete answered 409 (the object is already being deleted: a terminating namespace's content) is the state
/// asked for, on the one delete path that `clean` and the end of a run in a given namespace share: it waits
/// for the object to go and counts it.
#[tokio::test(start_paused = true)]
async fn a_labelled_delete_answered_409_waits_for_the_object_already_going() {
    let config_maps = format!("/api/v1/namespaces/{NS}/configmaps");
    let path = config_maps.clone();
    let (client, trace) = mock::serve(move |seen| {
        let mut going = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "cm-1", "namespace": NS, "uid": "uid-cm", "resourceVersion": "3",
                         "labels": {crate::RUN_ID_LABEL: "run-1"}, "deletionTimestamp": "2026-11-27T18:00:00Z"}});
        match (seen.method.as_str(), seen.is_watch()) {
            ("DELETE", _) if seen.path == path => status(409, "Conflict", "Operation cannot be fulfilled on configmaps \"cm-1\": the object is being deleted"),
            ("GET", true) => Reply::Watch(vec![("DELETED", going)]),
            ("GET", false) if seen.path == format!("{path}/cm-1") => ok(going),
            ("GET", false) if seen.path == path => {
                going["metadata"].as_object_mut().unwrap().remove("deletionTimestamp");
                list("ConfigMap", vec![going])
            }
            ("GET", false) => list("Object", vec![]),
            _ => status(500, "InternalError", "unexpected"),
        }
    });
    let selector = format!("{}=run-1", crate::RUN_ID_LABEL);
    let removed = super::clean::delete_labelled(&client, NS, &selector, Some(Duration::from_secs(60))).await.unwrap();
    assert_eq!(removed, 1);
    let trace = lines(&trace);
    let delete = trace.iter().position(|l| *l == format!("DELETE {config_maps}")).expect("the ConfigMap was deleted");
    assert!(trace[delete + 1..].contains(&format!("GET {config_maps}/cm-1")), "the 409 is followed by a look at the object: {trace:?}");
    assert!(trace[delete + 1..].iter().any(|l| l.ends_with("(watch)")), "and a wait for it to go: {trace:?}");
}
