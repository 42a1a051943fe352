//! The services a run starts on the engine: registries and the daemons jobs build with (dind, buildkitd).

use std::collections::HashMap;
use std::time::Duration;

use bollard::models::{ContainerCreateBody, EndpointSettings, HostConfig, NetworkingConfig, PortBinding};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, PushImageOptionsBuilder, RemoveImageOptionsBuilder, TagImageOptionsBuilder,
    UploadToContainerOptionsBuilder,
};
use bollard::{Docker, API_DEFAULT_VERSION};
use futures_util::StreamExt;

use super::engine::{container_ip, create_volume, describe, exec_output, failed, remove_container, DindMode};
use super::{DockerBackend, READY_TIMEOUT};
use crate::backend::BackendError;
use crate::builder::{self, dind, DaemonHome, DaemonLaunch, DaemonSetup};
use crate::events::EventSink;
use crate::resources::{run_labels, MIRROR_HOST};
use crate::strategy::{DaemonKind, ImageStore, Privileges};

/// A running daemon: a dind (with the client the harness drives it with) or a buildkitd.
pub struct DaemonService {
    pub kind: DaemonKind,
    pub container: String,
    pub volumes: Vec<String>,
    /// The Docker API client of a dind; `None` for buildkitd, which only its job's `buildctl` talks to.
    pub client: Option<Docker>,
}

impl DaemonService {
    /// Removes the daemon and its volumes (a shared daemon at the end of its iteration).
    pub async fn remove(self, engine: &Docker) -> Result<(), BackendError> {
        let mut owner = super::owned::JobResources::new(engine);
        owner.container(&self.container);
        for v in &self.volumes {
            owner.volume(v);
        }
        match owner.remove().await.into_iter().next() {
            Some(error) => Err(BackendError::new(format!("remove {} daemon {}", builder::daemon(self.kind).service_name, self.container), error)),
            None => Ok(()),
        }
    }

    /// Waits until the daemon answers again (a shared one, before each job): through the job's client where
    /// the harness is it (a dind's Engine API, as a CI job's `docker` would ask), else by its home's check.
    pub async fn wait_until_ready(&self, engine: &Docker) -> Result<(), BackendError> {
        let home = builder::daemon(self.kind);
        let what = format!("shared {} daemon {}", home.service_name, self.container);
        match &self.client {
            Some(client) => super::engine::wait_until_ready(client, &what, READY_TIMEOUT).await,
            None => wait_until_ready(engine, &self.container, home.ready_check, &what).await,
        }
    }
}

fn endpoint(network: &str, alias: &str) -> NetworkingConfig {
    NetworkingConfig {
        endpoints_config: Some(HashMap::from([(
            network.to_string(),
            EndpointSettings { aliases: Some(vec![alias.to_string()]), ..Default::default() },
        )])),
    }
}

/// Where a daemon runs and what it is.
pub struct DaemonPlace<'a> {
    pub name: &'a str,
    /// The strategy's network; the daemon answers as `alias` on it (`docker`, `dind`, `buildkitd`).
    pub network: &'a str,
    pub alias: &'a str,
    pub kind: DaemonKind,
    /// How a dind stores images.
    pub image_store: ImageStore,
}

/// Starts a daemon with labelled volumes on its state directory (and the scratch directories its home names,
/// such as a dind's `/var/lib/containerd` with the containerd image store), fenced so that nothing its builds
/// run can reach its API. Its command, configuration, readiness check and version come from its home. The
/// first privileged start on an engine tries `--privileged` and falls back to the explicit capability list
/// when refused. Everything it creates is handed to `owner` before it exists.
pub async fn start_daemon(
    backend: &DockerBackend,
    place: &DaemonPlace<'_>,
    owner: &mut super::owned::JobResources,
) -> Result<DaemonService, BackendError> {
    let name = place.name;
    let kind = place.kind;
    let home = builder::daemon(kind);
    let setup = DaemonSetup { bind: "0.0.0.0", registry: "registry:5000", hub_mirror: Some(super::MIRROR_ADDRESS), nameserver: Some(DOCKER_DNS), image_store: place.image_store };
    let launch = (home.launch)(&setup);
    let mut volumes = vec![(format!("{name}-state"), home.state_dir)];
    for (i, dir) in launch.scratch_dirs.iter().enumerate() {
        volumes.push((format!("{name}-scratch{i}"), *dir));
    }
    for (volume, _) in &volumes {
        owner.volume(volume);
        create_volume(&backend.engine, volume, &backend.run_id).await?;
    }
    owner.container(name);
    let image = backend.images.get(home.role, home.service_name)?.name.clone();
    let container = DaemonContainer { image, place, volumes: &volumes, launch: &launch, privileges: (home.privileges)() };
    let known = backend.dind_mode();
    let mode = known.unwrap_or(DindMode::Privileged);
    let mode = match container.create(backend, mode).await {
        Ok(()) => mode,
        Err(e) if known.is_none() && container.privileges.privileged && refuses_privileged(&e.message) => {
            remove_container(&backend.engine, name).await?;
            container.create(backend, DindMode::ExplicitCapabilities).await?;
            DindMode::ExplicitCapabilities
        }
        Err(e) => return Err(e),
    };
    if container.privileges.privileged {
        backend.set_dind_mode(mode);
    }
    wait_until_ready(&backend.engine, name, home.ready_check, &format!("{} {name}", home.service_name)).await?;
    if !backend.knows_version(home.version.key) {
        if let Some(version) = exec_output(&backend.engine, name, home.version.command).await.ok().and_then(|out| (home.version.parse)(&out)) {
            backend.saw_version(home.version.key, version);
        }
    }
    // The harness is a dind's Docker client; a buildkitd only its job's `buildctl` talks to.
    let client = match kind {
        DaemonKind::Docker => Some(connect_dind(name, &container_ip(&backend.engine, name, place.network).await?).await?),
        DaemonKind::Buildkit => None,
    };
    fence_api(&backend.engine, name, home).await?;
    let volumes = volumes.into_iter().map(|(v, _)| v).collect();
    Ok(DaemonService { kind, container: name.to_string(), volumes, client })
}

/// A daemon's container as its home describes it: its command line and configuration file, on the strategy's
/// network only (the API listens there), with the run's registry and mirror, its state on its volumes.
struct DaemonContainer<'a> {
    image: String,
    place: &'a DaemonPlace<'a>,
    volumes: &'a [(String, &'static str)],
    launch: &'a DaemonLaunch,
    privileges: Privileges,
}

impl DaemonContainer<'_> {
    /// Creates, configures and starts it, privileged as `mode` says when its home asks for a privileged container.
    async fn create(&self, backend: &DockerBackend, mode: DindMode) -> Result<(), BackendError> {
        let name = self.place.name;
        let mut host = HostConfig {
            binds: Some(self.volumes.iter().map(|(v, path)| format!("{v}:{path}")).collect()),
            network_mode: Some(self.place.network.to_string()),
            ..Default::default()
        };
        super::engine::apply_privileges(&self.privileges, mode, &mut host);
        let body = ContainerCreateBody {
            image: Some(self.image.clone()),
            cmd: Some(self.launch.args.clone()),
            env: Some(self.launch.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
            labels: Some(run_labels(&backend.run_id)),
            host_config: Some(host),
            networking_config: Some(endpoint(self.place.network, self.place.alias)),
            ..Default::default()
        };
        let engine = &backend.engine;
        let options = CreateContainerOptionsBuilder::default().name(name).build();
        engine.create_container(Some(options), body).await.map_err(failed(format!("create container {name}")))?;
        if let Some(config) = &self.launch.config {
            upload_file(engine, name, config.path, config.content.as_bytes()).await?;
        }
        engine.start_container(name, None).await.map_err(failed(format!("start container {name}")))
    }
}

/// The Engine API client of the dind in container `name` at `ip`, once it answers.
async fn connect_dind(name: &str, ip: &str) -> Result<Docker, BackendError> {
    let address = format!("tcp://{ip}:{}", dind::API_PORT);
    let client = Docker::connect_with_http(&address, 3600, API_DEFAULT_VERSION).map_err(failed(format!("connect to dind daemon {name}")))?;
    super::engine::wait_until_ready(&client, &format!("dind daemon {name} at {address}"), READY_TIMEOUT).await?;
    client.negotiate_version().await.map_err(failed(format!("agree an API version with dind daemon {name}")))
}

/// The engine's resolver inside every container on a user-defined network.
const DOCKER_DNS: &str = "127.0.0.11";

/// Polls a daemon with its home's readiness check from inside its container until it succeeds. A daemon
/// that exited is reported at once, with its last words.
async fn wait_until_ready(engine: &Docker, container: &str, check: &[&str], what: &str) -> Result<(), BackendError> {
    let deadline = tokio::time::Instant::now() + READY_TIMEOUT;
    loop {
        if exec_output(engine, container, check).await.is_ok() {
            return Ok(());
        }
        let running = engine.inspect_container(container, None).await.ok().and_then(|c| c.state).and_then(|s| s.running);
        if running != Some(true) {
            let last = super::engine::last_log_lines(engine, container, 3).await;
            return Err(BackendError::new(format!("wait for {what}"), format!("it exited: {last}")));
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(BackendError::new(format!("wait for {what}"), format!("it did not answer within {} s", READY_TIMEOUT.as_secs())));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}


/// Closes the daemon's API to everything its builds run, as its home's fence says: a build step cannot reach
/// the daemon that runs it, nor could it reach another (each strategy has its own network).
async fn fence_api(engine: &Docker, container: &str, home: &DaemonHome) -> Result<(), BackendError> {
    for rule in home.fence(false) {
        let words: Vec<&str> = rule.iter().map(String::as_str).collect();
        exec_output(engine, container, &words)
            .await
            .map_err(|e| BackendError::new(format!("fence the API of daemon {container}"), e.message))?;
    }
    Ok(())
}

/// runc's words when the engine's capability bounding set cannot grant `--privileged`.
fn refuses_privileged(message: &str) -> bool {
    message.contains("unable to apply caps") || message.contains("operation not permitted")
}

/// Starts a Distribution registry reachable as `alias:5000` on the run's network. The mirror is
/// also published on 127.0.0.1 (never beyond the host) so the host engine can seed it.
pub async fn start_registry(
    backend: &DockerBackend,
    name: &str,
    network: &str,
    alias: &str,
    publish_on_loopback: bool,
) -> Result<(), BackendError> {
    let port_bindings = publish_on_loopback.then(|| {
        HashMap::from([(
            "5000/tcp".to_string(),
            Some(vec![PortBinding { host_ip: Some(MIRROR_HOST.into()), host_port: Some(String::new()) }]),
        )])
    });
    let body = ContainerCreateBody {
        image: Some(backend.images.toolchain.registry().name.clone()),
        cmd: Some(vec![crate::registry::CONFIG_PATH.to_string()]),
        labels: Some(run_labels(&backend.run_id)),
        exposed_ports: Some(vec!["5000/tcp".to_string()]),
        host_config: Some(HostConfig {
            network_mode: Some(network.to_string()),
            port_bindings,
            ..Default::default()
        }),
        networking_config: Some(endpoint(network, alias)),
        ..Default::default()
    };
    let options = CreateContainerOptionsBuilder::default().name(name).build();
    backend.engine.create_container(Some(options), body).await.map_err(failed(format!("create container {name}")))?;
    upload_file(&backend.engine, name, crate::registry::CONFIG_PATH, crate::registry::config_yaml().as_bytes()).await?;
    backend.engine.start_container(name, None).await.map_err(failed(format!("start container {name}")))?;
    let ip = container_ip(&backend.engine, name, network).await?;
    wait_for_port(&format!("{ip}:5000"), &format!("registry {name}"), READY_TIMEOUT).await
}

/// Puts one file into a created container, at an absolute path.
async fn upload_file(engine: &Docker, container: &str, path: &str, content: &[u8]) -> Result<(), BackendError> {
    let tar = file_tar(path, content).map_err(|e| BackendError::new(format!("pack {path} for {container}"), e))?;
    let upload = UploadToContainerOptionsBuilder::default().path("/").build();
    engine
        .upload_to_container(container, Some(upload), bollard::body_full(tar.into()))
        .await
        .map_err(failed(format!("copy {path} into {container}")))
}

/// Restarts the seeded mirror in Distribution's read-only mode: from now on every push is refused.
pub async fn make_read_only(backend: &DockerBackend, name: &str, network: &str) -> Result<(), BackendError> {
    backend.engine.stop_container(name, None).await.map_err(failed(format!("stop {name}")))?;
    upload_file(&backend.engine, name, crate::registry::CONFIG_PATH, crate::registry::read_only_config_yaml().as_bytes()).await?;
    backend.engine.start_container(name, None).await.map_err(failed(format!("start container {name}")))?;
    let ip = container_ip(&backend.engine, name, network).await?;
    wait_for_port(&format!("{ip}:5000"), &format!("registry {name}"), READY_TIMEOUT).await
}

async fn wait_for_port(address: &str, what: &str, timeout: Duration) -> Result<(), BackendError> {
    let connect = async {
        while tokio::net::TcpStream::connect(address).await.is_err() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    tokio::time::timeout(timeout, connect).await.map_err(|_| {
        BackendError::new(format!("wait for {what} at {address}"), format!("it did not accept connections within {} s", timeout.as_secs()))
    })
}

/// Pushes each mirrored image into the mirror under its Docker Hub path, from the host engine.
pub async fn seed_mirror(backend: &DockerBackend, mirror: &str, events: &EventSink) -> Result<(), BackendError> {
    let info = backend.engine.inspect_container(mirror, None).await.map_err(failed(format!("inspect {mirror}")))?;
    let port = info
        .network_settings
        .and_then(|s| s.ports)
        .and_then(|p| p.get("5000/tcp").cloned().flatten())
        .and_then(|b| b.into_iter().find_map(|b| b.host_port))
        .ok_or_else(|| BackendError::new(format!("find the loopback port of {mirror}"), "it has none"))?;
    let address = format!("{MIRROR_HOST}:{port}");
    wait_for_port(&address, &format!("mirror {mirror} on loopback"), READY_TIMEOUT).await?;
    push_to_mirror(&backend.engine, &address, &backend.images.mirrored, events).await
}

/// Pushes each `(local image, PATH:TAG)` from the host engine into the registry at `address` (on loopback,
/// which the engine talks plain HTTP to) at that path: a Docker Hub image at its Docker Hub path
/// (`library/python:3.11-slim`), where a daemon using the registry as its Docker Hub mirror looks for it;
/// another registry's under that registry's host (`gcr.io/distroless/static:nonroot`, see
/// `toolchain::bases`). The kube backend seeds its mirror the same way, through a port-forward.
pub async fn push_to_mirror(
    engine: &Docker,
    address: &str,
    mirrored: &[(String, String)],
    events: &EventSink,
) -> Result<(), BackendError> {
    for (local, path_tag) in mirrored {
        let (path, tag) = crate::builder::classic::split_tag(path_tag);
        // The sweep of the run's resources finds this tag by the mirror's port, should the run be
        // cancelled before the removal below.
        let target = format!("{address}/{path}");
        events.setup(format!("seeding the mirror with {local} as {path_tag}"));
        engine
            .tag_image(local, Some(TagImageOptionsBuilder::default().repo(&target).tag(tag).build()))
            .await
            .map_err(failed(format!("tag {local} as {target}:{tag}")))?;
        let mut push = engine.push_image(&target, Some(PushImageOptionsBuilder::default().tag(tag).build()), None);
        let mut result = Ok(());
        while let Some(item) = push.next().await {
            if let Err(e) = item {
                result = Err(BackendError::new(format!("push {target}:{tag} to the mirror"), describe(&e)));
                break;
            }
        }
        // The seeding tag is ours; the image itself stays.
        let _ = engine
            .remove_image(&format!("{target}:{tag}"), Some(RemoveImageOptionsBuilder::default().noprune(true).build()), None)
            .await;
        result?;
    }
    Ok(())
}

/// A tar holding one file at `path` (absolute; parents created), for `upload_to_container` at `/`.
pub fn file_tar(path: &str, content: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut out = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(content.len() as u64);
    header.set_mode(0o644);
    out.append_data(&mut header, path.trim_start_matches('/'), content)?;
    out.into_inner()
}
