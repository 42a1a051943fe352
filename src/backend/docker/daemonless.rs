//! Daemonless jobs on the engine: buildah (or kaniko) in a plain job container, caching in the registry.

use super::DockerBackend;
use crate::backend::{JobOutcome, JobSpec};
use crate::events::EventSink;

pub async fn run(_backend: &mut DockerBackend, _job: &JobSpec<'_>, _events: &EventSink, _outcome: &mut JobOutcome) -> Result<(), String> {
    Err("daemonless jobs are not implemented on the docker backend yet".into())
}
