//! The services of a run on the cluster: its Docker Hub mirror, each iteration's registry and shared daemons,
//! and what layerbench reads from the registry to measure a job's traffic.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Event as CoreEvent, PersistentVolumeClaim, Pod, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::{DeleteParams, ListParams};
use kube::{Api, ResourceExt};

use super::backend::{KubeBackend, RunningDaemon};
use super::forward::LocalForward;
use super::manifests;
use super::mirror;
use super::names;
use super::orchestrate::{self, delete, ensure_created, wait_pod, wait_selected_pod, KubeError, PodStage, Whose};
use crate::backend::BackendError;
use crate::builder::{self, DaemonHome};
use crate::events::EventSink;
use crate::strategy::{DaemonKind, Strategy};
use crate::registry::{blob_sizes_script, LogUnreadable, Traffic};

impl KubeBackend {
    /// Deploys the run's mirror, seeds it from the local engine through a port-forward, and restarts it
    /// read-only on the same volume.
    pub(super) async fn start_mirror(&self, events: &EventSink) -> Result<(), BackendError> {
        let fail = |action: &str| {
            let action = format!("{action} (the run's Docker Hub mirror in {})", self.run.namespace);
            move |e: KubeError| BackendError::new(action, e)
        };
        let Some((engine, mirrored)) = &self.mirror_source else {
            return Err(BackendError::new(
                "seed the run's Docker Hub mirror",
                "no local engine was given to seed it from; pass --hub-mirror HOST:PORT or --hub-mirror none",
            ));
        };
        events.setup(format!("starting the Docker Hub mirror in namespace {} and seeding it with the base images", self.run.namespace));
        let limit = self.options.timeouts.delete;
        let storage_class = self.options.storage_class.as_deref();
        let seeding = mirror::objects(&self.run, &self.options.images, storage_class, false);
        ensure_created(&self.api(), &seeding.config, limit).await.map_err(fail("create its configuration"))?;
        self.check_storage_class(mirror::MIRROR_PVC).await.map_err(fail("create its volume claim"))?;
        ensure_created(&self.api(), &seeding.claim, limit).await.map_err(fail("create its volume claim"))?;
        ensure_created(&self.api(), &seeding.service, limit).await.map_err(fail("create its service"))?;
        ensure_created(&self.api(), &seeding.deployment, limit).await.map_err(fail("create its deployment"))?;
        let selector = self.run.selector_string(mirror::COMPONENT);
        let pod = self.wait_deployment_pod(mirror::MIRROR_NAME, &selector, 0).await.map_err(fail("start it"))?;
        {
            let forward = LocalForward::to_pod(self.api(), pod.clone(), manifests::REGISTRY_PORT as u16)
                .await
                .map_err(|e| BackendError::new(format!("listen for a port-forward to the mirror pod {pod}"), e))?;
            // The engine pushes plain HTTP to a loopback registry.
            let address = forward.addr().to_string();
            crate::backend::docker::push_to_mirror(engine, &address, mirrored, events).await?;
        }
        // Serving: the same claim, Distribution's read-only mode.
        let ours = self.run_selector();
        delete(&self.api::<Deployment>(), mirror::MIRROR_NAME, Whose::Labelled(&ours), &DeleteParams::foreground(), Some(limit))
            .await
            .map_err(fail("stop the seeding registry"))?;
        let serving = mirror::objects(&self.run, &self.options.images, storage_class, true);
        ensure_created(&self.api(), &serving.deployment, limit).await.map_err(fail("create its read-only deployment"))?;
        self.wait_deployment_pod(mirror::MIRROR_NAME, &selector, 1).await.map_err(fail("restart it read-only"))?;
        Ok(())
    }

    /// Removes the registry and the shared daemons of `strategies`; with `wait`, until they are gone, so that
    /// the next iteration's objects of the same names start empty.
    pub(super) async fn remove_iteration_services(&self, strategies: &[Strategy], wait: bool) -> Result<(), KubeError> {
        let limit = wait.then_some(self.options.timeouts.delete);
        let ours = self.run_selector();
        // Foreground: the Deployment is gone only once its pods are, which frees the PVC.
        let cascade = DeleteParams::foreground();
        let plain = DeleteParams::default();
        let shared: Vec<Strategy> = strategies.iter().copied().filter(|s| s.daemon.is_shared()).collect();
        let deployments = std::iter::once(manifests::REGISTRY_NAME.to_string()).chain(shared.iter().map(|s| names::shared_daemon_name(*s)));
        for name in deployments {
            delete(&self.api::<Deployment>(), &name, Whose::Labelled(&ours), &cascade, limit).await?;
            delete(&self.api::<Service>(), &name, Whose::Labelled(&ours), &plain, limit).await?;
        }
        for owner in shared {
            delete(&self.api::<NetworkPolicy>(), &manifests::shared_policy_name(owner), Whose::Labelled(&ours), &plain, limit).await?;
            delete(&self.api::<PersistentVolumeClaim>(), &manifests::shared_claim_name(owner), Whose::Labelled(&ours), &plain, limit).await?;
        }
        Ok(())
    }

    /// The ConfigMaps of the daemons' configuration files, one per strategy whose daemon's home writes one;
    /// the same for the whole run, so made once (a 409 is the one already there).
    pub(super) async fn create_daemon_configs(&self, strategies: &[Strategy]) -> Result<(), KubeError> {
        for &strategy in strategies {
            if let Some(config) = manifests::daemon_config(&self.run, &self.options.images, strategy) {
                ensure_created(&self.api(), &config, self.options.timeouts.delete).await?;
            }
        }
        Ok(())
    }

    /// Waits for this iteration's pod of the Deployment `name` (its pods picked by `selector`), stage by
    /// stage; returns its name.
    pub(super) async fn wait_deployment_pod(&self, name: &str, selector: &str, iteration: u32) -> Result<String, KubeError> {
        let t = &self.options.timeouts;
        let pods = self.api::<Pod>();
        let selector = format!("{selector},{}={iteration}", manifests::ITERATION_LABEL);
        let what = format!("a {name} pod to be scheduled");
        let pod = match wait_selected_pod(&pods, &selector, &what, PodStage::Scheduled, t.schedule).await {
            Err(KubeError::Timeout { what, seconds, state }) => {
                // No pod at all usually means admission refused it; the Deployment says why.
                let refused = self.api::<Deployment>().get_opt(name).await.ok().flatten().and_then(|d| {
                    let conditions = d.status?.conditions?;
                    let failure = conditions.into_iter().find(|c| c.type_ == "ReplicaFailure" && c.status == "True")?;
                    let message = failure.message.unwrap_or_default();
                    let hint = orchestrate::pod_security_hint(&self.run.namespace, &message).map(|h| format!("; {h}"));
                    Some(format!(" ({}: {message}{})", failure.reason.unwrap_or_default(), hint.unwrap_or_default()))
                });
                return Err(KubeError::Timeout { what, seconds, state: refused.unwrap_or(state) });
            }
            other => other?,
        };
        let name = pod.name_any();
        wait_pod(&pods, &name, PodStage::Running, t.start).await?;
        wait_pod(&pods, &name, PodStage::Ready, t.ready).await?;
        Ok(name)
    }

    /// Starts `owner`'s shared daemon of `kind` for the iteration and waits until it is ready, on the node it
    /// stays on, fenced from its own build steps.
    pub(super) async fn start_shared_daemon(&self, owner: Strategy, kind: DaemonKind, iteration: u32) -> Result<RunningDaemon, KubeError> {
        let limit = self.options.timeouts.delete;
        let home = builder::daemon(kind);
        let shared = manifests::shared_daemon(&self.run, &self.options, owner, home, iteration);
        let claim = shared.claim.name_any();
        self.check_storage_class(&claim).await?;
        ensure_created(&self.api(), &shared.claim, limit).await?;
        ensure_created(&self.api(), &shared.policy, limit).await?;
        ensure_created(&self.api(), &shared.service, limit).await?;
        ensure_created(&self.api(), &shared.deployment, limit).await?;
        let name = names::shared_daemon_name(owner);
        let selector = manifests::join_selector(&self.run.strategy_selector(home.service_name, owner));
        let pod = match self.wait_deployment_pod(&name, &selector, iteration).await {
            // A pod waiting for its volume says only that the claim is unbound; the claim says why.
            Err(KubeError::Timeout { what, seconds, mut state }) => {
                state.push_str(&self.claim_state(&claim).await.unwrap_or_default());
                return Err(KubeError::Timeout { what, seconds, state });
            }
            other => other?,
        };
        // The harness drives a daemon whose jobs build with the classic builder through a port-forward, which
        // arrives on the pod's loopback.
        self.daemon_up(&pod, home, owner.job_builders().is_empty()).await?;
        Ok(RunningDaemon { kind, node: self.node_of(&pod).await, pod, host: name })
    }

    /// What follows a daemon pod's readiness: its API fenced from its own build steps (as on the docker
    /// backend, by its home's rules), and its version read for `run.json` when no daemon of its kind gave it yet.
    pub(super) async fn daemon_up(&self, pod: &str, home: &DaemonHome, loopback_open: bool) -> Result<(), KubeError> {
        let fence: Vec<String> = home.fence(loopback_open).iter().map(|rule| builder::shell_words(rule)).collect();
        self.exec_output(pod, home.service_name, &fence.join(" && ")).await?;
        self.note_version(pod, home).await;
        Ok(())
    }

    /// Reads the daemon's version in `pod`, once per kind of daemon.
    pub(super) async fn note_version(&self, pod: &str, home: &DaemonHome) {
        if self.builder_versions.lock().expect("versions lock").contains_key(home.version.key) {
            return;
        }
        let printed = self.exec_output(pod, home.service_name, &builder::shell_words(home.version.command)).await;
        if let Some(version) = printed.ok().and_then(|out| (home.version.parse)(&out)) {
            self.builder_versions.lock().expect("versions lock").entry(home.version.key.to_string()).or_insert(version);
        }
    }

    /// Without `--storage-class`, a claim gets the cluster's default StorageClass, and stays Pending
    /// without a word where there is none: refuse `claim` at once then. An account that may not
    /// list StorageClasses (they are cluster-wide) skips the check; a Pending claim then shows in
    /// the wait's timeout.
    pub(super) async fn check_storage_class(&self, claim: &str) -> Result<(), KubeError> {
        if self.options.storage_class.is_some() {
            return Ok(());
        }
        let classes: Api<StorageClass> = Api::all(self.client.clone());
        let Ok(classes) = classes.list(&ListParams::default()).await else { return Ok(()) };
        let is_default = |class: &StorageClass| {
            let annotations = class.annotations();
            ["storageclass.kubernetes.io/is-default-class", "storageclass.beta.kubernetes.io/is-default-class"]
                .iter()
                .any(|key| annotations.get(*key).map(String::as_str) == Some("true"))
        };
        if classes.items.iter().any(is_default) {
            return Ok(());
        }
        let names: Vec<String> = classes.items.iter().map(|c| c.name_any()).collect();
        let there = if names.is_empty() { "it has none".to_string() } else { format!("it has {}", names.join(", ")) };
        Err(KubeError::Api {
            action: format!("create PersistentVolumeClaim {claim}"),
            message: format!(
                "no default StorageClass; pass --storage-class NAME ({there}; `kubectl get storageclass` lists them)"
            ),
        })
    }

    /// ` (PersistentVolumeClaim NAME is Pending: its latest events)` while `name` is not bound.
    pub(super) async fn claim_state(&self, name: &str) -> Option<String> {
        let claim = self.api::<PersistentVolumeClaim>().get_opt(name).await.ok()??;
        let phase = match claim.status.and_then(|s| s.phase) {
            Some(phase) if phase == "Bound" => return None,
            Some(phase) => phase,
            // Not guessed: a claim the API server gave no phase yet is said to have none.
            None => "without a phase yet".into(),
        };
        let selector = format!("involvedObject.kind=PersistentVolumeClaim,involvedObject.name={name}");
        let events = self.api::<CoreEvent>().list(&ListParams::default().fields(&selector)).await.ok();
        let said: Vec<String> = events
            .map(|list| list.items)
            .unwrap_or_default()
            .iter()
            .rev()
            .take(3)
            .map(|e| format!("{}: {}", e.reason.as_deref().unwrap_or("event"), e.message.as_deref().unwrap_or("").trim()))
            .collect();
        let said = if said.is_empty() { String::new() } else { format!(": {}", said.join("; ")) };
        Some(format!(" (PersistentVolumeClaim {name} is {phase}{said})"))
    }

    /// How many lines the registry's log file has: the mark where a job's traffic starts.
    pub(super) async fn registry_mark(&self) -> Result<u64, LogUnreadable> {
        let pod = self.registry_pod.as_ref().ok_or_else(|| LogUnreadable::new("the registry is not running"))?;
        let out = self.exec_output(pod, manifests::REGISTRY_NAME, &manifests::access_log_lines_script()).await.map_err(LogUnreadable::new)?;
        out.trim().parse().map_err(|_| LogUnreadable::new(format!("counting its lines printed `{}`", out.trim())))
    }

    /// The size of `image` as the run's registry stores it.
    pub(super) async fn image_bytes(&self, image: &str) -> Result<crate::Bytes, LogUnreadable> {
        let pod = self.registry_pod.as_ref().ok_or_else(|| LogUnreadable::new("the registry is not running"))?;
        crate::registry::pushed_image_bytes(image, |script| async move { self.exec_output(pod, manifests::REGISTRY_NAME, &script).await }).await
    }

    /// The registry's traffic since `mark`, from the lines its log file gained; the sizes of the
    /// blobs uploaded from its blob store.
    pub(super) async fn registry_traffic(&self, mark: Result<u64, LogUnreadable>) -> Result<Traffic, LogUnreadable> {
        let pod = self.registry_pod.as_ref().ok_or_else(|| LogUnreadable::new("the registry is not running"))?;
        let lines = self
            .exec_output(pod, manifests::REGISTRY_NAME, &manifests::access_log_since_script(mark?))
            .await
            .map_err(LogUnreadable::new)?;
        // Jobs run one at a time, so the lines this job added are its traffic.
        let traffic = Traffic::from_access_log(lines.lines());
        if traffic.uploaded.is_empty() {
            return Ok(traffic);
        }
        let sizes = self.exec_output(pod, manifests::REGISTRY_NAME, &blob_sizes_script(&traffic.uploaded)).await;
        Ok(traffic.with_blob_sizes(sizes))
    }
}
