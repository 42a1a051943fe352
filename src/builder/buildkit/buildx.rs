//! docker buildx (BuildKit) against the job's Docker daemon, as a GitLab or GitHub job runs it.

use super::{cache_export, cache_import, client_job, Client};
use crate::builder::command::{BuilderHome, Endpoints, JobCommand, VersionLine, CONTEXT_DIR};
use crate::strategy::{BuildRequest, Privileges};
use crate::toolchain::Role;

/// docker buildx runs in the job image (`docker:28`: the docker CLI with buildx) as a plain container; the
/// privileges are its dind's.
pub const HOME: BuilderHome = BuilderHome { name: "buildx", role: Role::Job, privileges: Privileges::default, command, uncached: &[], image_entrypoint: &[] };

/// One `docker buildx build --push` with BuildKit's machine-readable progress (`rawjson`, on
/// stderr): cache import, build, cache export and push all happen inside it, and the parser splits
/// them by BuildKit's own vertex times.
pub fn command(request: &BuildRequest, dockerfile: &str, endpoints: &Endpoints) -> JobCommand {
    let mut build: Vec<String> = ["docker", "buildx", "build", "--progress=rawjson", "--push", "-f"]
        .into_iter()
        .map(String::from)
        .collect();
    build.push(dockerfile.to_string());
    for import in &request.cache_from {
        build.extend(["--cache-from".into(), cache_import(import)]);
    }
    if let Some(export) = &request.cache_to {
        build.extend(["--cache-to".into(), cache_export(export)]);
    }
    for destination in &request.destinations {
        build.extend(["-t".into(), destination.clone()]);
    }
    build.push(CONTEXT_DIR.into());
    // `github.com/docker/buildx 0.13.1+ds1 …`
    let version = VersionLine { builder: "buildx", prefix: "github.com/docker/buildx " };
    client_job(request, &build, Client { version_command: "docker buildx version", host_variable: "DOCKER_HOST", version }, endpoints)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strategy::{CacheExport, CacheImport, JobBuilder};

    fn request(cache_to: Option<CacheExport>) -> BuildRequest {
        BuildRequest {
            builder: JobBuilder::Buildx,
            destinations: vec!["registry:5000/s/a:c1".into(), "registry:5000/s/a:latest".into()],
            cache_from: vec![CacheImport::Registry { reference: "registry:5000/s/a:buildcache".into() }],
            cache_to,
        }
    }

    #[test]
    fn registry_cache_is_mode_max_and_inline_is_inline() {
        let endpoints = Endpoints { registry: "registry:5000", hub_mirror: None, daemon_host: Some("tcp://docker:2375") };
        let max = command(
            &request(Some(CacheExport::Registry { reference: "registry:5000/s/a:buildcache".into(), every_stage: true })),
            "/workspace/Dockerfile",
            &endpoints,
        );
        let script = &max.args[0];
        assert!(script.contains("--cache-from type=registry,ref=registry:5000/s/a:buildcache"), "{script}");
        assert!(script.contains("--cache-to type=registry,ref=registry:5000/s/a:buildcache,mode=max,oci-mediatypes=true,image-manifest=true"), "{script}");
        assert!(script.contains("-t registry:5000/s/a:c1 -t registry:5000/s/a:latest"), "{script}");
        assert_eq!(max.env, ["DOCKER_HOST=tcp://docker:2375"]);
        let inline = command(&request(Some(CacheExport::Inline)), "/workspace/Dockerfile", &endpoints);
        assert!(inline.args[0].contains("--cache-to type=inline"), "{}", inline.args[0]);
    }
}
