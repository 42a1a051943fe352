//! The dind daemon (docker:dind, `dockerd`) a run starts, on either backend: one daemon, one command line,
//! its configuration, image, state, readiness, version and privileges.

use super::command::{ConfigFile, DaemonHome, DaemonLaunch, DaemonSetup, DaemonVersion};
use crate::strategy::{ImageStore, Privileges};
use crate::toolchain::Role;

pub const HOME: DaemonHome = DaemonHome {
    service_name: "dind",
    role: Role::Dind,
    state_dir: "/var/lib/docker",
    api_port: API_PORT,
    privileges,
    launch,
    ready_check: READY_CHECK,
    version: DaemonVersion { key: VERSION_KEY, command: VERSION_COMMAND, parse: version_of },
    job_alias: "docker",
    shared_alias: "dind",
};

/// dockerd runs containers of its own: it needs a privileged container (see the backends for an engine that
/// refuses `--privileged`).
fn privileges() -> Privileges {
    Privileges { privileged: true, ..Privileges::default() }
}

/// Where dockerd reads its configuration.
pub const DAEMON_JSON_PATH: &str = "/etc/docker/daemon.json";

/// Where the containerd image store keeps its content: on the container's own overlay its inner mounts fail
/// (`failed to mount /tmp/containerd-mount…: invalid argument`), so it needs a filesystem of its own.
pub const CONTAINERD_DIR: &str = "/var/lib/containerd";

/// `daemon.json` for the containerd image store: BuildKit's docker driver exports a registry cache only with it.
pub fn containerd_daemon_json() -> String {
    let json = serde_json::json!({ "features": { "containerd-snapshotter": true } });
    format!("{json}\n")
}

/// A command that succeeds inside the daemon's container once its API answers (a readiness probe).
pub const READY_CHECK: &[&str] = &["docker", "version"];

/// Prints the daemon's version inside its container.
const VERSION_COMMAND: &[&str] = &["docker", "version", "--format", "{{.Server.Version}}"];

fn version_of(printed: &str) -> Option<String> {
    Some(printed.trim()).filter(|v| !v.is_empty() && !v.contains(char::is_whitespace)).map(str::to_string)
}

/// The key of the dind daemons' version (and so the classic builder's) in `run.json`'s `builder_versions`.
pub const VERSION_KEY: &str = "dind (classic builder)";

/// The port a dind daemon's API listens on, plain TCP without TLS, reachable only where the backend
/// allows it (the strategy's own network, or a job pod's loopback).
pub const API_PORT: u16 = super::command::DOCKER_API_PORT;

/// dockerd where `setup` says, with the containerd image store's `daemon.json` and directory when asked.
fn launch(setup: &DaemonSetup) -> DaemonLaunch {
    let containerd = setup.image_store == ImageStore::Containerd;
    DaemonLaunch {
        args: dockerd_command(setup.bind, setup.registry, setup.hub_mirror),
        env: ENV.iter().map(|(k, v)| (*k, v.to_string())).collect(),
        config: containerd.then(|| ConfigFile { path: DAEMON_JSON_PATH, content: containerd_daemon_json() }),
        scratch_dirs: if containerd { vec![CONTAINERD_DIR] } else { vec![] },
    }
}

/// `dockerd` and its flags. `bind` is the address the API listens on; `registry` the run's CI
/// registry and `hub_mirror` its read-only Docker Hub mirror (`host:port`, plain HTTP). Each flag is one
/// argument, never a shell word; the mirror was checked to be `host:port` where it was given.
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

#[cfg(test)]
mod tests {
    use super::*;

    fn setup(image_store: ImageStore) -> DaemonSetup<'static> {
        DaemonSetup { bind: "0.0.0.0", registry: "registry:5000", hub_mirror: Some("mirror:5000"), nameserver: None, image_store }
    }

    /// The fence closes the API to what does not arrive on eth0, and no connection to any daemon API port
    /// leaves the container (a step dialling its own daemon's Service would come back on eth0): IPv4 and IPv6.
    #[test]
    fn the_fence_refuses_the_api_inside_and_every_api_port_on_the_way_out() {
        let rules: Vec<String> = HOME.fence(false).iter().map(|r| r.join(" ")).collect();
        for iptables in ["iptables", "ip6tables"] {
            assert!(rules.contains(&format!("{iptables} -I INPUT -p tcp --dport 2375 ! -i eth0 -j REJECT --reject-with tcp-reset")), "{rules:#?}");
            for port in [2375, 1234] {
                assert!(rules.contains(&format!("{iptables} -I FORWARD -p tcp --dport {port} -j REJECT --reject-with tcp-reset")), "{rules:#?}");
                assert!(rules.contains(&format!("{iptables} -I OUTPUT -p tcp --dport {port} ! -o lo -j REJECT --reject-with tcp-reset")), "{rules:#?}");
            }
        }
        assert!(!rules.iter().any(|r| r.contains("-i lo -j ACCEPT")), "the loopback stays fenced unless asked");
        assert!(HOME.fence(true).iter().any(|r| r.join(" ").ends_with("INPUT -p tcp --dport 2375 -i lo -j ACCEPT")));
    }

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

    #[test]
    fn the_containerd_store_brings_its_daemon_json_and_a_directory_of_its_own() {
        let plain = launch(&setup(ImageStore::GraphDriver));
        assert_eq!((plain.config, plain.scratch_dirs.len()), (None, 0));
        let containerd = launch(&setup(ImageStore::Containerd));
        let config = containerd.config.unwrap();
        assert_eq!(config.path, DAEMON_JSON_PATH);
        let parsed: serde_json::Value = serde_json::from_str(&config.content).unwrap();
        assert_eq!(parsed["features"]["containerd-snapshotter"], true);
        assert_eq!(containerd.scratch_dirs, [CONTAINERD_DIR]);
        assert_eq!(containerd.env, [("DOCKER_TLS_CERTDIR", String::new())]);
        assert_eq!(version_of("28.5.1\n").as_deref(), Some("28.5.1"));
        assert_eq!(version_of("Cannot connect to the Docker daemon"), None);
    }
}
