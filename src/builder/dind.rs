//! The dind daemon (docker:dind, `dockerd`) a run starts, on either backend: one daemon, one command line,
//! its image, state and privileges.

use super::command::DaemonHome;
use crate::strategy::Privileges;
use crate::toolchain::Role;

pub const HOME: DaemonHome = DaemonHome {
    service_name: "dind",
    role: Role::Dind,
    state_dir: "/var/lib/docker",
    api_port: API_PORT,
    privileges,
};

/// dockerd runs containers of its own: it needs a privileged container (see the backends for an engine that
/// refuses `--privileged`).
fn privileges() -> Privileges {
    Privileges { privileged: true, ..Privileges::default() }
}

/// Where dockerd reads its configuration.
pub const DAEMON_JSON_PATH: &str = "/etc/docker/daemon.json";

/// `daemon.json` for the containerd image store: BuildKit's docker driver exports a registry cache only with it.
pub const CONTAINERD_DAEMON_JSON: &str = "{\"features\": {\"containerd-snapshotter\": true}}\n";

/// A command that succeeds inside the daemon's container once its API answers (a readiness probe).
pub const READY_CHECK: &[&str] = &["docker", "version"];

/// The key of the dind daemons' version (and so the classic builder's) in `run.json`'s `builder_versions`.
pub const VERSION_KEY: &str = "dind (classic builder)";

/// The port a dind daemon's API listens on, plain TCP without TLS, reachable only where the backend
/// allows it (the strategy's own network, or a job pod's loopback).
pub const API_PORT: u16 = 2375;

/// `dockerd` and its flags. `bind` is the address the API listens on; `registry` the run's CI
/// registry and `hub_mirror` its read-only Docker Hub mirror (`host:port`, plain HTTP).
///
/// The first word `dockerd` makes both docker:dind's entrypoint and layerbench's own dind image run
/// exactly these flags, without adding their default listeners; `--tls=false` is what docker:dind
/// needs with `DOCKER_TLS_CERTDIR` empty.
pub fn dockerd_command(bind: &str, registry: &str, hub_mirror: Option<&str>) -> Vec<String> {
    let mut args = vec![
        "dockerd".to_string(),
        format!("--host=tcp://{bind}:{API_PORT}"),
        "--host=unix:///var/run/docker.sock".into(),
        "--tls=false".into(),
        format!("--insecure-registry={registry}"),
    ];
    if let Some(mirror) = hub_mirror {
        args.extend([format!("--registry-mirror=http://{mirror}"), format!("--insecure-registry={mirror}")]);
    }
    args
}

/// The environment a dind container needs, as `(name, value)`: docker:dind generates TLS certificates
/// and listens on 2376 instead unless this is empty (the API stays on a private network).
pub const ENV: &[(&str, &str)] = &[("DOCKER_TLS_CERTDIR", "")];

/// [`ENV`] as the Engine API takes it (`KEY=value`).
pub fn env() -> Vec<String> {
    ENV.iter().map(|(k, v)| format!("{k}={v}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_api_listens_where_asked_and_trusts_only_the_runs_registries() {
        let args = dockerd_command("0.0.0.0", "registry:5000", Some("mirror:5000"));
        assert_eq!(args[0], "dockerd", "the image's entrypoint runs these flags as they are");
        assert!(args.contains(&"--host=tcp://0.0.0.0:2375".to_string()));
        assert!(args.contains(&"--tls=false".to_string()));
        let insecure: Vec<&String> = args.iter().filter(|a| a.starts_with("--insecure-registry=")).collect();
        assert_eq!(insecure, ["--insecure-registry=registry:5000", "--insecure-registry=mirror:5000"]);
        assert!(!dockerd_command("127.0.0.1", "registry:5000", None).iter().any(|a| a.contains("mirror")));
    }
}
