//! The standalone BuildKit daemon (`buildkitd`) a run starts, on either backend: its flags, configuration,
//! image, state and privileges.

use super::command::DaemonHome;
use crate::strategy::Privileges;
use crate::toolchain::Role;

pub const HOME: DaemonHome = DaemonHome {
    service_name: "buildkitd",
    role: Role::Buildkit,
    state_dir: "/var/lib/buildkit",
    api_port: API_PORT,
    privileges,
};

/// buildkitd mounts overlayfs and sets up iptables for its steps: without a privileged container both fail
/// (with SYS_ADMIN, NET_ADMIN and unconfined profiles it also needs a writable cgroup tree). Rootless
/// buildkitd would need none, and is not measured here.
fn privileges() -> Privileges {
    Privileges { privileged: true, ..Privileges::default() }
}

/// The port buildkitd's gRPC API listens on, plain TCP without TLS, reachable only on the strategy's own
/// network (a build step is fenced off it, see the backends).
pub const API_PORT: u16 = 1234;

/// Where buildkitd reads [`config_toml`].
pub const CONFIG_PATH: &str = "/etc/buildkit/buildkitd.toml";

/// Its local socket, for the backend's own readiness check from inside the container.
pub const SOCKET: &str = "unix:///run/buildkit/buildkitd.sock";

/// A command that succeeds inside the daemon's container once it lists its workers: it is ready to build.
pub const READY_CHECK: &[&str] = &["buildctl", "--addr", SOCKET, "debug", "workers"];

/// A command that prints the daemon's version inside its container, read by [`version_of`].
pub const VERSION_COMMAND: &[&str] = &["buildkitd", "--version"];

/// The version in what [`VERSION_COMMAND`] printed: `buildkitd github.com/moby/buildkit v0.34.2 <revision>`.
pub fn version_of(printed: &str) -> Option<String> {
    printed.split_whitespace().nth(2).map(str::to_string)
}

/// buildkitd's arguments. The image's entry point is `buildkitd` (moby/buildkit and the stand-in alike),
/// so these are flags only. `bind` is the address the API listens on.
///
/// `--oci-worker-net=host`: RUN steps share the daemon container's network, as the classic builder's
/// steps share a dind's; the backend's fence drops their connections to the API (they arrive on the
/// loopback, the job's on the network interface). "auto" would pick CNI where the image ships it, and
/// the stand-in does not.
pub fn command(bind: &str) -> Vec<String> {
    vec![
        format!("--addr=tcp://{bind}:{API_PORT}"),
        format!("--addr={SOCKET}"),
        format!("--config={CONFIG_PATH}"),
        "--oci-worker-net=host".into(),
    ]
}

/// `buildkitd.toml`: Docker Hub through the run's read-only mirror, and both of the run's registries
/// over plain HTTP (`registry` and `hub_mirror` are `host:port`).
///
/// `nameserver`: BuildKit drops loopback nameservers from the resolv.conf it gives build steps and falls
/// back to public ones (8.8.8.8), which a CI network may not reach: the steps of a `pip install` then
/// resolve nothing. With host networking the steps share the daemon's namespace, so the container
/// runtime's own resolver there (`127.0.0.11` on a Docker network) can be named.
pub fn config_toml(registry: &str, hub_mirror: Option<&str>, nameserver: Option<&str>) -> String {
    let mut toml = String::new();
    if let Some(nameserver) = nameserver {
        toml.push_str(&format!("[dns]\n  nameservers = [\"{nameserver}\"]\n\n"));
    }
    if let Some(mirror) = hub_mirror {
        toml.push_str(&format!("[registry.\"docker.io\"]\n  mirrors = [\"{mirror}\"]\n\n"));
        toml.push_str(&format!("[registry.\"{mirror}\"]\n  http = true\n  insecure = true\n\n"));
    }
    toml.push_str(&format!("[registry.\"{registry}\"]\n  http = true\n  insecure = true\n"));
    toml
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_api_listens_where_asked_and_only_the_runs_registries_are_plain_http() {
        let args = command("0.0.0.0");
        assert!(args.contains(&"--addr=tcp://0.0.0.0:1234".to_string()), "{args:?}");
        assert!(args.contains(&format!("--config={CONFIG_PATH}")), "{args:?}");
        let toml = config_toml("registry:5000", Some("mirror:5000"), Some("127.0.0.11"));
        assert!(toml.contains("[registry.\"docker.io\"]\n  mirrors = [\"mirror:5000\"]"), "{toml}");
        assert_eq!(toml.matches("http = true").count(), 2, "{toml}");
        assert!(toml.starts_with("[dns]\n  nameservers = [\"127.0.0.11\"]"), "{toml}");
        assert!(!config_toml("registry:5000", None, None).contains("docker.io"));
    }
}
