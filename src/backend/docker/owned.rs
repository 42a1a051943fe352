//! One owner per job: the containers and volumes a job creates go the moment the job ends, however it ends.
//!
//! In the style of testcontainers: an explicit async [`JobResources::remove`] that reports what it
//! could not remove, and a `Drop` fallback for a job whose future was dropped (a timeout, Ctrl-C).
//! The label sweep at the end of the run and `layerbench clean` stay as the safety net.

use bollard::query_parameters::{RemoveContainerOptionsBuilder, RemoveVolumeOptionsBuilder};
use bollard::Docker;

use crate::resources::{engine_message, is_not_found};

pub struct JobResources {
    engine: Docker,
    /// In creation order; removed in reverse, containers before the volumes they hold.
    containers: Vec<String>,
    volumes: Vec<String>,
}

impl JobResources {
    pub fn new(engine: &Docker) -> Self {
        JobResources { engine: engine.clone(), containers: vec![], volumes: vec![] }
    }

    /// Takes ownership of a container; call before creating it, so a failed create is still swept.
    pub fn container(&mut self, name: &str) {
        self.containers.push(name.to_string());
    }

    pub fn volume(&mut self, name: &str) {
        self.volumes.push(name.to_string());
    }

    /// Gives up ownership without removing anything: what was created now outlives the job (a
    /// shared daemon, owned by its iteration).
    pub fn release(mut self) {
        self.containers.clear();
        self.volumes.clear();
    }

    /// Removes everything the job owns; returns one message per thing that could not be removed.
    pub async fn remove(mut self) -> Vec<String> {
        let (containers, volumes) = (std::mem::take(&mut self.containers), std::mem::take(&mut self.volumes));
        remove_all(&self.engine, containers, volumes).await
    }
}

async fn remove_all(engine: &Docker, containers: Vec<String>, volumes: Vec<String>) -> Vec<String> {
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
    errors
}

impl Drop for JobResources {
    fn drop(&mut self) {
        if self.containers.is_empty() && self.volumes.is_empty() {
            return;
        }
        let (containers, volumes) = (std::mem::take(&mut self.containers), std::mem::take(&mut self.volumes));
        // Dropped without `remove` (the job's future was cancelled): remove in the background.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let engine = self.engine.clone();
            runtime.spawn(async move {
                let _ = remove_all(&engine, containers, volumes).await;
            });
        }
    }
}
