//! buildctl (BuildKit's own client) against the job's standalone buildkitd, as a CI job's script runs it.

use std::path::Path;

use super::{cache_export, cache_import, client_job, Client};
use crate::builder::command::{BuilderHome, Endpoints, JobCommand, VersionLine, CONTEXT_DIR};
use crate::strategy::{BuildRequest, Privileges};
use crate::toolchain::Role;

/// buildctl ships with buildkitd, in the same image, and runs as a plain container; the privileges are
/// its buildkitd's.
pub const HOME: BuilderHome = BuilderHome { name: "buildctl", role: Role::Buildkit, privileges: Privileges::default, command, uncached: &[], image_entrypoint: &[] };

/// One `buildctl build` with BuildKit's machine-readable progress (`rawjson`, on stderr), the same the
/// buildx jobs print: cache import, build, cache export and push happen inside it, and the parser splits
/// them by BuildKit's own vertex times. The daemon's `buildkitd.toml` makes the run's registries plain
/// HTTP (see [`super::buildkitd`]).
pub fn command(request: &BuildRequest, dockerfile: &str, endpoints: &Endpoints) -> JobCommand {
    let path = Path::new(dockerfile);
    let dir = path.parent().map(|d| d.display().to_string()).unwrap_or_else(|| CONTEXT_DIR.into());
    let file = path.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_else(|| "Dockerfile".into());
    let mut build: Vec<String> = ["buildctl", "build", "--progress=rawjson", "--frontend=dockerfile.v0"]
        .into_iter()
        .map(String::from)
        .collect();
    build.extend([
        "--local".into(),
        format!("context={CONTEXT_DIR}"),
        "--local".into(),
        format!("dockerfile={dir}"),
        "--opt".into(),
        format!("filename={file}"),
    ]);
    // `--output` is one line of CSV: several names are one quoted field.
    let names = request.destinations.join(",");
    build.extend(["--output".into(), format!("type=image,\"name={names}\",push=true")]);
    for import in &request.cache_from {
        build.extend(["--import-cache".into(), cache_import(import)]);
    }
    if let Some(export) = &request.cache_to {
        build.extend(["--export-cache".into(), cache_export(export)]);
    }
    let version = VersionLine { builder: "buildctl", prefix: "buildctl github.com/moby/buildkit " };
    client_job(request, &build, Client { version_command: "buildctl --version", host_variable: "BUILDKIT_HOST", version }, endpoints)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strategy::{CacheExport, CacheImport, JobBuilder};

    #[test]
    fn registry_cache_is_mode_max_and_every_destination_is_one_csv_field() {
        let request = BuildRequest {
            builder: JobBuilder::Buildctl,
            destinations: vec!["registry:5000/s/a:c1".into(), "registry:5000/s/a:latest".into()],
            cache_from: vec![CacheImport::Registry { reference: "registry:5000/s/a:buildcache".into() }],
            cache_to: Some(CacheExport::Registry { reference: "registry:5000/s/a:buildcache".into(), every_stage: true }),
        };
        let endpoints = Endpoints { registry: "registry:5000", hub_mirror: None, daemon_host: Some("tcp://buildkitd:1234") };
        let command = command(&request, "/workspace/sub dir/Dockerfile.ci", &endpoints);
        let script = &command.args[0];
        assert!(script.contains("--import-cache type=registry,ref=registry:5000/s/a:buildcache"), "{script}");
        assert!(script.contains("--export-cache type=registry,ref=registry:5000/s/a:buildcache,mode=max,oci-mediatypes=true,image-manifest=true"), "{script}");
        assert!(script.contains("'type=image,\"name=registry:5000/s/a:c1,registry:5000/s/a:latest\",push=true'"), "{script}");
        assert!(script.contains("'dockerfile=/workspace/sub dir' --opt filename=Dockerfile.ci"), "{script}");
        assert_eq!(command.env, ["BUILDKIT_HOST=tcp://buildkitd:1234"]);
    }
}
