//! One owner per job: the containers and volumes a job creates go the moment the job ends, however it ends.
//!
//! In the style of testcontainers: an explicit async [`JobResources::remove`] that reports what it
//! could not remove, and a `Drop` fallback for a job whose future was dropped (a timeout, Ctrl-C).
//! The label sweep at the end of the run and `layerbench clean` stay as the safety net.

use bollard::query_parameters::{RemoveContainerOptionsBuilder, RemoveVolumeOptionsBuilder};
use bollard::Docker;

use crate::resources::{engine_message, is_not_found};
use crate::usage::Whose;

pub struct JobResources {
    engine: Docker,
    /// In creation order; removed in reverse, containers before the volumes they hold and the networks
    /// they are on.
    containers: Vec<String>,
    volumes: Vec<String>,
    networks: Vec<String>,
    /// The job's meter, which follows every container the job owns.
    meter: Option<super::meter::Watch>,
}

impl JobResources {
    pub fn new(engine: &Docker) -> Self {
        JobResources { engine: engine.clone(), containers: vec![], volumes: vec![], networks: vec![], meter: None }
    }

    /// Every container the job owns is metered as the job's own.
    pub fn metered(mut self, watch: super::meter::Watch) -> Self {
        self.meter = Some(watch);
        self
    }

    /// Takes ownership of a container; call before creating it, so a failed create is still swept.
    pub fn container(&mut self, name: &str) {
        self.containers.push(name.to_string());
        if let Some(meter) = &self.meter {
            meter.add(name, Whose::Own);
        }
    }

    /// Takes ownership of a network; what else is attached to it (the registry, the mirror) is detached
    /// before it is removed.
    pub fn network(&mut self, name: &str) {
        self.networks.push(name.to_string());
    }

    pub fn volume(&mut self, name: &str) {
        self.volumes.push(name.to_string());
    }

    /// Gives up ownership without removing anything: what was created now outlives the job (a
    /// shared daemon, owned by its iteration).
    pub fn release(mut self) {
        self.containers.clear();
        self.volumes.clear();
        self.networks.clear();
    }

    /// Removes everything the job owns; returns one message per thing that could not be removed.
    pub async fn remove(mut self) -> Vec<String> {
        let owned = self.take();
        remove_all(&self.engine, owned).await
    }

    fn take(&mut self) -> Owned {
        Owned {
            containers: std::mem::take(&mut self.containers),
            volumes: std::mem::take(&mut self.volumes),
            networks: std::mem::take(&mut self.networks),
        }
    }
}

struct Owned {
    containers: Vec<String>,
    volumes: Vec<String>,
    networks: Vec<String>,
}

async fn remove_all(engine: &Docker, owned: Owned) -> Vec<String> {
    let Owned { containers, volumes, networks } = owned;
    let mut errors = vec![];
    for name in containers.iter().rev() {
        let options = RemoveContainerOptionsBuilder::default().force(true).v(true).build();
        match engine.remove_container(name, Some(options)).await {
            Err(e) if !is_not_found(&e) => errors.push(format!("remove container {name}: {}", engine_message(&e))),
            _ => {}
        }
    }
    for name in volumes.iter().rev() {
        let options = RemoveVolumeOptionsBuilder::default().force(true).build();
        match engine.remove_volume(name, Some(options)).await {
            Err(e) if !is_not_found(&e) => errors.push(format!("remove volume {name}: {}", engine_message(&e))),
            _ => {}
        }
    }
    for name in networks.iter().rev() {
        if let Err(e) = remove_network(engine, name).await {
            errors.push(e);
        }
    }
    errors
}

/// Detaches whatever is still on network `name`, then removes it.
async fn remove_network(engine: &Docker, name: &str) -> Result<(), String> {
    let attached = match engine.inspect_network(name, None::<bollard::query_parameters::InspectNetworkOptions>).await {
        Ok(network) => network.containers.unwrap_or_default(),
        Err(e) if is_not_found(&e) => return Ok(()),
        Err(e) => return Err(format!("inspect network {name}: {}", engine_message(&e))),
    };
    for id in attached.keys() {
        let request = bollard::models::NetworkDisconnectRequest { container: id.clone(), force: Some(true) };
        match engine.disconnect_network(name, request).await {
            Err(e) if !is_not_found(&e) => return Err(format!("detach {id} from network {name}: {}", engine_message(&e))),
            _ => {}
        }
    }
    match engine.remove_network(name).await {
        Err(e) if !is_not_found(&e) => Err(format!("remove network {name}: {}", engine_message(&e))),
        _ => Ok(()),
    }
}

impl Drop for JobResources {
    fn drop(&mut self) {
        if self.containers.is_empty() && self.volumes.is_empty() && self.networks.is_empty() {
            return;
        }
        let owned = self.take();
        // Dropped without `remove` (the job's future was cancelled): remove in the background.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let engine = self.engine.clone();
            runtime.spawn(async move {
                let _ = remove_all(&engine, owned).await;
            });
        }
    }
}
