//! API round trips with the semantics the backend relies on: idempotent create and delete, bounded waits.

use std::fmt::Debug;
use std::time::Duration;

use futures_util::{Stream, StreamExt};
use k8s_openapi::api::core::v1::{ContainerStatus, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Status};
use kube::api::{AttachParams, DeleteParams, ListParams, PostParams};
use kube::runtime::wait::{conditions, Condition};
use kube::runtime::watcher::watch_object;
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde::Serialize;

/// Why an orchestration step failed, in words a user can act on.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum KubeError {
    #[error("{action}: {message}")]
    Api { action: String, message: String },
    /// A bounded wait ran out; `state` says where the object was at that moment.
    #[error("timed out after {seconds} s waiting for {what}{state}")]
    Timeout { what: String, seconds: u64, state: String },
    /// The pod will not start by itself: the reason and message are the kubelet's.
    #[error("{what}: {reason}")]
    PodFailed { what: String, reason: String },
}

/// Formats a kube error so the API server's own message comes first.
pub fn api_error(action: impl Into<String>, error: kube::Error) -> KubeError {
    let message = match &error {
        kube::Error::Api(status) => format!("{} ({}, HTTP {})", status.message, status.reason, status.code),
        other => {
            // kube's transport errors say little on their own; their causes say what failed.
            let mut text = other.to_string();
            let mut source = std::error::Error::source(other);
            while let Some(cause) = source {
                let cause_text = cause.to_string();
                if !text.contains(&cause_text) {
                    text.push_str(&format!(": {cause_text}"));
                }
                source = cause.source();
            }
            text
        }
    };
    KubeError::Api { action: action.into(), message }
}

/// What to do when the API server refused a pod for its namespace's Pod Security level (`message`
/// is the server's: `... violates PodSecurity "baseline:latest": privileged ...`).
pub fn pod_security_hint(namespace: &str, message: &str) -> Option<String> {
    message.contains("violates PodSecurity").then(|| {
        format!(
            "namespace {namespace} enforces a Pod Security level that refuses this pod; allow privileged pods \
             there with `kubectl label namespace {namespace} pod-security.kubernetes.io/enforce=privileged --overwrite`, \
             or leave out --namespace and layerbench creates a namespace labelled so"
        )
    })
}

/// A failed create, said so that the user knows what to do about the namespace's two usual refusals:
/// it does not exist (404 on a namespaced create), or its Pod Security level refuses the pod (403).
fn create_error(action: String, namespace: Option<&str>, error: kube::Error) -> KubeError {
    let missing_namespace = match (&error, namespace) {
        (kube::Error::Api(status), Some(ns)) if status.code == 404 => {
            let kind = status.details.as_ref().map(|d| d.kind.as_str());
            (kind == Some("namespaces") || status.message.starts_with("namespaces \"")).then_some(ns)
        }
        _ => None,
    };
    let error = api_error(action, error);
    match (missing_namespace, error) {
        (Some(ns), KubeError::Api { action, message }) => KubeError::Api {
            action,
            message: format!(
                "namespace {ns} does not exist ({message}); create it with `kubectl create namespace {ns}`, \
                 or leave out --namespace and layerbench creates a namespace of its own"
            ),
        },
        (None, KubeError::Api { action, message }) => match namespace.and_then(|ns| pod_security_hint(ns, &message)) {
            Some(hint) => KubeError::Api { action, message: format!("{message}; {hint}") },
            None => KubeError::Api { action, message },
        },
        (_, error) => error,
    }
}

fn status_of(error: &kube::Error) -> Option<u16> {
    match error {
        kube::Error::Api(status) => Some(status.code),
        _ => None,
    }
}

/// Creates `object`. A 409 means it already exists, which is the state we wanted: unless the
/// existing one is being deleted, in which case we wait for it to go and create it again.
pub async fn ensure_created<K>(api: &Api<K>, object: &K, limit: Duration) -> Result<(), KubeError>
where
    K: Resource + Clone + Debug + Serialize + DeserializeOwned + Send + 'static,
    K::DynamicType: Default,
{
    let name = object.name_any();
    let kind = K::kind(&Default::default()).to_string();
    let action = || format!("create {kind} {name}");
    match api.create(&PostParams::default(), object).await {
        Ok(_) => return Ok(()),
        Err(e) if status_of(&e) == Some(409) => {}
        Err(e) => return Err(create_error(action(), object.meta().namespace.as_deref(), e)),
    }
    let existing = match api.get_opt(&name).await {
        Ok(Some(existing)) => existing,
        // Gone between the two calls: try once more.
        Ok(None) => return api.create(&PostParams::default(), object).await.map(|_| ()).map_err(|e| api_error(action(), e)),
        Err(e) => return Err(api_error(action(), e)),
    };
    let ours = run_label(object.meta());
    if ours.is_some() && run_label(existing.meta()) != ours {
        return Err(KubeError::Api {
            action: action(),
            message: format!(
                "a {kind} of that name exists and is not this run's ({} is {:?}); use another namespace, \
                 or remove it if it is a leftover",
                crate::RUN_ID_LABEL,
                run_label(existing.meta()).unwrap_or("unset"),
            ),
        });
    }
    if existing.meta().deletion_timestamp.is_none() {
        return Ok(());
    }
    let uid = existing.meta().uid.clone().unwrap_or_default();
    wait_deleted(api, &name, &uid, &format!("the old {kind} {name} to finish deleting"), limit).await?;
    api.create(&PostParams::default(), object).await.map(|_| ()).map_err(|e| api_error(action(), e))
}

/// Whose object a delete may remove.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Whose<'a> {
    /// Whatever carries the name (the run's own namespace, which only it can have made).
    Any,
    /// Only an object that carries this label selector (the run's label), in one call: a same-named
    /// object of someone else's is left alone.
    Labelled(&'a str),
}

/// Deletes `name`, the one way every object is deleted. A 404 means it is already gone; a 409 that it
/// is already being deleted (a terminating namespace): both are the state asked for. With `wait`,
/// returns once it no longer exists.
pub async fn delete<K>(api: &Api<K>, name: &str, whose: Whose<'_>, params: &DeleteParams, wait: Option<Duration>) -> Result<(), KubeError>
where
    K: Resource + Clone + Debug + DeserializeOwned + Send + 'static,
    K::DynamicType: Default,
{
    let kind = K::kind(&Default::default()).to_string();
    let deleting: Vec<K> = match whose {
        Whose::Any => match api.delete(name, params).await {
            Ok(either) => either.left().into_iter().collect(),
            Err(e) => already_deleting(api, name, e, &kind).await?,
        },
        Whose::Labelled(selector) => {
            let matching = ListParams::default().labels(selector).fields(&format!("metadata.name={name}"));
            match api.delete_collection(params, &matching).await {
                Ok(either) => either.left().map(|list| list.items).unwrap_or_default(),
                Err(e) => already_deleting(api, name, e, &kind).await?.into_iter().filter(|o| carries(o.meta(), selector)).collect(),
            }
        }
    };
    if let Some(limit) = wait {
        for object in deleting {
            let uid = object.meta().uid.clone().unwrap_or_default();
            wait_deleted(api, name, &uid, &format!("{kind} {name} to be deleted"), limit).await?;
        }
    }
    Ok(())
}

/// What a failed delete leaves to wait for: nothing after a 404, the object itself after a 409.
async fn already_deleting<K>(api: &Api<K>, name: &str, error: kube::Error, kind: &str) -> Result<Vec<K>, KubeError>
where
    K: Resource + Clone + Debug + DeserializeOwned + Send + 'static,
    K::DynamicType: Default,
{
    match status_of(&error) {
        Some(404) => Ok(vec![]),
        Some(409) => Ok(api.get_opt(name).await.ok().flatten().into_iter().collect()),
        _ => Err(api_error(format!("delete {kind} {name}"), error)),
    }
}

/// Whether `meta` carries every `key=value` of `selector`.
fn carries(meta: &ObjectMeta, selector: &str) -> bool {
    let labels = meta.labels.as_ref();
    selector.split(',').filter_map(|pair| pair.split_once('=')).all(|(k, v)| labels.and_then(|l| l.get(k)).map(String::as_str) == Some(v))
}

fn run_label(meta: &ObjectMeta) -> Option<&str> {
    meta.labels.as_ref()?.get(crate::RUN_ID_LABEL).map(String::as_str)
}

async fn wait_deleted<K>(api: &Api<K>, name: &str, uid: &str, what: &str, limit: Duration) -> Result<(), KubeError>
where
    K: Resource + Clone + Debug + DeserializeOwned + Send + 'static,
    K::DynamicType: Default,
{
    let gone = conditions::is_deleted::<K>(uid);
    match first_matching(watch_object(api.clone(), name), |o: &Option<K>| gone.matches_object(o.as_ref()), limit).await {
        Ok(_) => Ok(()),
        Err(last_watch_error) => {
            let mut state = match api.get_opt(name).await {
                Ok(Some(o)) if !o.finalizers().is_empty() => {
                    format!(" (finalizers still pending: {})", o.finalizers().join(", "))
                }
                _ => String::new(),
            };
            state.push_str(&watch_note(last_watch_error));
            Err(KubeError::Timeout { what: what.into(), seconds: limit.as_secs(), state })
        }
    }
}

/// The first item of a watch `stream` that `done` accepts. A watch error (an API server restart,
/// an expired resource version, a dropped connection) does not end the wait: the watch is made
/// again after a short backoff, and only `limit` ends it, with the last watch error if there was one.
pub(crate) async fn first_matching<T, S>(stream: S, mut done: impl FnMut(&T) -> bool, limit: Duration) -> Result<T, Option<String>>
where
    S: Stream<Item = Result<T, watcher::Error>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    let mut stream = std::pin::pin!(stream);
    let mut backoff = WATCH_BACKOFF_FIRST;
    let mut last_error = None;
    loop {
        match tokio::time::timeout_at(deadline, stream.next()).await {
            Err(_) => return Err(last_error),
            Ok(Some(Ok(item))) => {
                backoff = WATCH_BACKOFF_FIRST;
                if done(&item) {
                    return Ok(item);
                }
            }
            Ok(Some(Err(e))) => {
                last_error = Some(e.to_string());
                // The watcher starts over on its next poll: waiting first is the backoff.
                if tokio::time::timeout_at(deadline, tokio::time::sleep(backoff)).await.is_err() {
                    return Err(last_error);
                }
                backoff = (backoff * 2).min(WATCH_BACKOFF_MAX);
            }
            // A watcher never ends; should one, there is nothing more to wait for.
            Ok(None) => return Err(last_error.or(Some("the watch ended".into()))),
        }
    }
}

const WATCH_BACKOFF_FIRST: Duration = Duration::from_millis(500);
const WATCH_BACKOFF_MAX: Duration = Duration::from_secs(5);

/// ` (last watch error: ...)` for a timeout message, when the watch failed along the way.
fn watch_note(last_watch_error: Option<String>) -> String {
    last_watch_error.map(|e| format!(" (last watch error: {e})")).unwrap_or_default()
}

/// A stage of a pod's start, each waited for on its own bound so a timeout names the stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PodStage {
    /// Bound to a node.
    Scheduled,
    /// Images pulled and every container started, or already done (init containers done): the
    /// stage of a job's build, which may be over before the watch ever sees it running.
    Started,
    /// Images pulled and every container running, none exited or restarted: the stage of
    /// long-running containers (daemons, the registry), where one that exited has crashed.
    Running,
    /// Every container passes its readiness probe; one that exited has crashed.
    Ready,
    /// The named container has exited.
    Exited(&'static str),
}

impl PodStage {
    pub fn describe(self, pod: &str) -> String {
        match self {
            PodStage::Scheduled => format!("pod {pod} to be scheduled"),
            PodStage::Started | PodStage::Running => format!("pod {pod} to pull its images and start its containers"),
            PodStage::Ready => format!("pod {pod} to become ready"),
            PodStage::Exited(container) => format!("container {container} of pod {pod} to finish"),
        }
    }

    pub fn reached(self, pod: &Pod) -> bool {
        match self {
            PodStage::Scheduled => has_condition(pod, "PodScheduled"),
            PodStage::Started => {
                let statuses = container_statuses(pod);
                !statuses.is_empty()
                    && statuses.iter().all(|s| s.state.as_ref().is_some_and(|st| st.waiting.is_none()))
            }
            PodStage::Running => {
                let statuses = container_statuses(pod);
                !statuses.is_empty() && statuses.iter().all(|s| s.state.as_ref().is_some_and(|st| st.running.is_some()))
            }
            PodStage::Ready => has_condition(pod, "Ready"),
            PodStage::Exited(container) => container_statuses(pod).iter().any(|s| {
                s.name == container && s.state.as_ref().is_some_and(|st| st.terminated.is_some())
            }),
        }
    }

    /// Readiness as a composable condition: this stage reached, or the pod failed to start.
    pub fn or_failed(self) -> impl Condition<Pod> {
        (move |pod: Option<&Pod>| pod.is_some_and(|p| self.reached(p)))
            .or(move |pod: Option<&Pod>| pod.is_some_and(|p| self.failure(p).is_some()))
    }

    /// Why the pod will not reach this stage: it cannot start, or, at the stages of long-running
    /// containers, one of them has exited.
    pub fn failure(self, pod: &Pod) -> Option<String> {
        let daemons = matches!(self, PodStage::Running | PodStage::Ready);
        start_failure(pod).or_else(|| daemons.then(|| crashed(pod)).flatten())
    }
}

/// A container that exited, now or before the kubelet restarted it: for a daemon or the
/// registry, a crash, in the kubelet's words (`container dind exited with code 1 (Error): ...`).
pub fn crashed(pod: &Pod) -> Option<String> {
    container_statuses(pod).iter().find_map(|s| {
        let now = s.state.as_ref().and_then(|st| st.terminated.as_ref());
        let before = if s.restart_count > 0 { s.last_state.as_ref().and_then(|st| st.terminated.as_ref()) } else { None };
        let t = now.or(before)?;
        let restarted = if now.is_none() { format!("; the kubelet restarted it ({} restarts so far)", s.restart_count) } else { String::new() };
        let words = [t.reason.as_deref(), t.message.as_deref().map(str::trim)];
        let words = match words {
            [Some(reason), Some(message)] if !message.is_empty() => format!(" ({reason}): {message}"),
            [Some(reason), _] => format!(" ({reason})"),
            [None, Some(message)] if !message.is_empty() => format!(": {message}"),
            _ => String::new(),
        };
        Some(format!("container {} exited with code {}{words}{restarted}", s.name, t.exit_code))
    })
}

/// Waiting reasons the kubelet does not recover from without a change to the pod or the node.
const FATAL_WAITING: &[&str] = &[
    "ImagePullBackOff",
    "ErrImagePull",
    "ErrImageNeverPull",
    "InvalidImageName",
    "CreateContainerConfigError",
    "CreateContainerError",
    "CrashLoopBackOff",
    "RunContainerError",
];

/// Why a pod will not start, in the kubelet's words; `None` while it may still start.
pub fn start_failure(pod: &Pod) -> Option<String> {
    let status = pod.status.as_ref()?;
    for s in container_statuses(pod) {
        let Some(state) = &s.state else { continue };
        if let Some(w) = &state.waiting {
            let reason = w.reason.as_deref().unwrap_or_default();
            if FATAL_WAITING.contains(&reason) {
                let mut text = format!("container {}: {reason}: {}", s.name, w.message.as_deref().unwrap_or(""));
                if reason.contains("Image") {
                    text.push_str(&format!(
                        ". Make the image available to the cluster (for kind: `kind load docker-image {}`) \
                         or set another image name",
                        s.image
                    ));
                }
                return Some(text);
            }
        }
    }
    // An init container that fails stops the pod before any build runs.
    for s in status.init_container_statuses.iter().flatten() {
        if let Some(t) = s.state.as_ref().and_then(|st| st.terminated.as_ref()) {
            if t.exit_code != 0 {
                return Some(format!(
                    "init container {} exited with code {}: {}",
                    s.name,
                    t.exit_code,
                    t.message.as_deref().or(t.reason.as_deref()).unwrap_or("")
                ));
            }
        }
    }
    if status.phase.as_deref() == Some("Failed") && status.container_statuses.is_none() {
        return Some(format!(
            "pod failed: {}: {}",
            status.reason.as_deref().unwrap_or("Failed"),
            status.message.as_deref().unwrap_or("")
        ));
    }
    None
}

/// Waits until pod `name` reaches `stage`, failing early with the pod's own reason.
pub async fn wait_pod(api: &Api<Pod>, name: &str, stage: PodStage, limit: Duration) -> Result<Pod, KubeError> {
    let what = stage.describe(name);
    let cond = stage.or_failed();
    match first_matching(watch_object(api.clone(), name), |p: &Option<Pod>| cond.matches_object(p.as_ref()), limit).await {
        Ok(Some(pod)) => match stage.failure(&pod) {
            Some(reason) if !stage.reached(&pod) => Err(KubeError::PodFailed { what: format!("pod {name}"), reason }),
            _ => Ok(pod),
        },
        Ok(None) => Err(KubeError::PodFailed { what: format!("pod {name}"), reason: "it was deleted".into() }),
        Err(last_watch_error) => {
            let mut state = match api.get_opt(name).await {
                Ok(Some(pod)) => pending_state(&pod),
                _ => String::new(),
            };
            state.push_str(&watch_note(last_watch_error));
            Err(KubeError::Timeout { what, seconds: limit.as_secs(), state })
        }
    }
}

/// Waits for the first pod matching `selector` that reaches `stage`; for pods a controller names.
pub async fn wait_selected_pod(
    api: &Api<Pod>,
    selector: &str,
    what: &str,
    stage: PodStage,
    limit: Duration,
) -> Result<Pod, KubeError> {
    let cond = stage.or_failed();
    let stream = watcher(api.clone(), watcher::Config::default().labels(selector)).applied_objects();
    // The last pod seen says where things stood if the wait runs out.
    let mut last_seen: Option<Pod> = None;
    let found = first_matching(
        stream,
        |pod: &Pod| {
            let live = pod.meta().deletion_timestamp.is_none();
            if live {
                last_seen = Some(pod.clone());
            }
            live && cond.matches_object(Some(pod))
        },
        limit,
    )
    .await;
    match found {
        Ok(pod) => match stage.failure(&pod) {
            Some(reason) if !stage.reached(&pod) => Err(KubeError::PodFailed { what: format!("pod {}", pod.name_any()), reason }),
            _ => Ok(pod),
        },
        Err(last_watch_error) => {
            let mut state = last_seen.as_ref().map(pending_state).unwrap_or_default();
            state.push_str(&watch_note(last_watch_error));
            Err(KubeError::Timeout { what: what.into(), seconds: limit.as_secs(), state })
        }
    }
}

/// Where a pod that has not got far enough stands, for a timeout message.
pub fn pending_state(pod: &Pod) -> String {
    let Some(status) = &pod.status else { return String::new() };
    for c in status.conditions.iter().flatten() {
        if c.status == "False" && c.reason.is_some() {
            return format!(
                " ({}={}: {}: {})",
                c.type_,
                c.status,
                c.reason.as_deref().unwrap_or(""),
                c.message.as_deref().unwrap_or("")
            );
        }
    }
    for s in container_statuses(pod) {
        if let Some(w) = s.state.as_ref().and_then(|st| st.waiting.as_ref()) {
            return format!(
                " (container {}: {}: {})",
                s.name,
                w.reason.as_deref().unwrap_or("waiting"),
                w.message.as_deref().unwrap_or("")
            );
        }
    }
    status.phase.as_ref().map(|p| format!(" (phase {p})")).unwrap_or_default()
}

fn has_condition(pod: &Pod, type_: &str) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == type_ && c.status == "True"))
}

/// Status of every regular container, or nothing before the kubelet reported any.
fn container_statuses(pod: &Pod) -> &[ContainerStatus] {
    pod.status.as_ref().and_then(|s| s.container_statuses.as_deref()).unwrap_or(&[])
}

/// Exit code and message of a terminated container.
pub fn exit_of(pod: &Pod, container: &str) -> Option<(i32, String)> {
    container_statuses(pod).iter().find(|s| s.name == container).and_then(|s| {
        let t = s.state.as_ref()?.terminated.as_ref()?;
        let text = t.message.clone().or_else(|| t.reason.clone()).unwrap_or_default();
        Some((t.exit_code, text))
    })
}

/// Runs `sh -c script` in `container` of `pod` and returns what it printed on stdout, once it
/// exited with 0. A command that failed, or whose exit status could not be seen, is an error
/// with the end of its stderr: a figure read from it would be unknown, never 0.
pub async fn exec_output(api: &Api<Pod>, pod: &str, container: &str, script: &str, limit: Duration) -> Result<String, KubeError> {
    let action = format!("exec in pod {pod} (container {container})");
    let run = async {
        let params = AttachParams::default().container(container).stdin(false).stdout(true).stderr(true);
        let mut process = api.exec(pod, ["sh", "-c", script], &params).await.map_err(|e| api_error(&action, e))?;
        let status = process.take_status();
        let (stdout, stderr) = (process.stdout(), process.stderr());
        // Both at once: a full stderr pipe would stall the stdout the command is still writing.
        let (out, err) = tokio::join!(read_all(stdout), read_all(stderr));
        let status = match status {
            Some(status) => status.await,
            None => None,
        };
        let _ = process.join().await;
        let read_failed = |e: std::io::Error| KubeError::Api { action: action.clone(), message: format!("reading its output failed: {e}") };
        exec_result(out.map_err(read_failed)?, &err.unwrap_or_default(), status)
            .map_err(|failed| KubeError::Api { action: action.clone(), message: failed.to_string() })
    };
    match tokio::time::timeout(limit, run).await {
        Ok(result) => result,
        Err(_) => Err(KubeError::Timeout { what: action.clone(), seconds: limit.as_secs(), state: String::new() }),
    }
}

async fn read_all(stream: Option<impl tokio::io::AsyncRead + Unpin>) -> std::io::Result<String> {
    use tokio::io::AsyncReadExt;
    let mut text = String::new();
    if let Some(mut stream) = stream {
        let mut bytes = vec![];
        stream.read_to_end(&mut bytes).await?;
        text = String::from_utf8_lossy(&bytes).into_owned();
    }
    Ok(text)
}

/// A command run by exec that did not succeed, or whose exit status never came, with the end of its stderr.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ExecFailed(String);

/// The stdout of a command run by exec when the kubelet's status says it succeeded; otherwise why not.
pub fn exec_result(stdout: String, stderr: &str, status: Option<Status>) -> Result<String, ExecFailed> {
    let stderr_tail = {
        let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        let tail = lines[lines.len().saturating_sub(3)..].join(" | ");
        if tail.is_empty() { String::new() } else { format!(": {tail}") }
    };
    let Some(status) = status else {
        return Err(ExecFailed(format!("the command's exit status never came (the stream ended without one){stderr_tail}")));
    };
    if status.status.as_deref() == Some("Success") {
        return Ok(stdout);
    }
    let code = status
        .details
        .as_ref()
        .and_then(|d| d.causes.as_ref())
        .and_then(|causes| causes.iter().find(|c| c.reason.as_deref() == Some("ExitCode")))
        .and_then(|c| c.message.clone());
    Err(ExecFailed(match code {
        Some(code) => format!("the command exited with code {code}{stderr_tail}"),
        None => format!("the command failed ({}){stderr_tail}", status.message.as_deref().unwrap_or("no message")),
    }))
}
