//! The standalone BuildKit daemon (`buildkitd`) a run starts, on either backend: its flags, configuration,
//! image, state, readiness, version and privileges.

use std::collections::BTreeMap;

use serde::Serialize;

use super::command::{ConfigFile, DaemonHome, DaemonLaunch, DaemonSetup, DaemonVersion};
use crate::strategy::Privileges;
use crate::toolchain::Role;

pub const HOME: DaemonHome = DaemonHome {
    service_name: "buildkitd",
    role: Role::Buildkit,
    state_dir: "/var/lib/buildkit",
    api_port: API_PORT,
    privileges,
    launch,
    ready_check: READY_CHECK,
    version: DaemonVersion { key: "buildkitd", command: VERSION_COMMAND, parse: version_of },
    job_alias: "buildkitd",
    shared_alias: "buildkitd",
};

/// buildkitd mounts overlayfs and sets up iptables for its steps: without a privileged container both fail
/// (with SYS_ADMIN, NET_ADMIN and unconfined profiles it also needs a writable cgroup tree). Rootless
/// buildkitd would need none, and is not measured here.
fn privileges() -> Privileges {
    Privileges { privileged: true, ..Privileges::default() }
}

/// The port buildkitd's gRPC API listens on, plain TCP without TLS, reachable only on the strategy's own
/// network (a build step is fenced off it, see the backends).
pub const API_PORT: u16 = super::command::BUILDKITD_API_PORT;

/// Where buildkitd reads [`config_toml`].
pub const CONFIG_PATH: &str = "/etc/buildkit/buildkitd.toml";

/// Its local socket, for the backend's own readiness check from inside the container.
pub const SOCKET: &str = "unix:///run/buildkit/buildkitd.sock";

/// A command that succeeds inside the daemon's container once it lists its workers: it is ready to build.
pub const READY_CHECK: &[&str] = &["buildctl", "--addr", SOCKET, "debug", "workers"];

/// A command that prints the daemon's version inside its container, read by [`version_of`].
const VERSION_COMMAND: &[&str] = &["buildkitd", "--version"];

/// The version in what [`VERSION_COMMAND`] printed: `buildkitd github.com/moby/buildkit v0.34.2 <revision>`.
fn version_of(printed: &str) -> Option<String> {
    printed.split_whitespace().nth(2).map(str::to_string)
}

fn launch(setup: &DaemonSetup) -> DaemonLaunch {
    DaemonLaunch {
        args: command(setup.bind),
        env: vec![],
        config: Some(ConfigFile { path: CONFIG_PATH, content: config_toml(setup.registry, setup.hub_mirror, setup.nameserver) }),
        scratch_dirs: vec![],
    }
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

/// `buildkitd.toml` as BuildKit reads it (`[dns]`, `[registry."host"]`).
#[derive(Serialize)]
struct BuildkitdToml<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    dns: Option<Dns<'a>>,
    registry: BTreeMap<&'a str, RegistryToml<'a>>,
}

#[derive(Serialize)]
struct Dns<'a> {
    nameservers: Vec<&'a str>,
}

#[derive(Serialize, Default)]
struct RegistryToml<'a> {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    mirrors: Vec<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    http: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    insecure: Option<bool>,
}

/// `buildkitd.toml`: Docker Hub through the run's read-only mirror, and both of the run's registries
/// over plain HTTP (`registry` and `hub_mirror` are `host:port`). Written by the TOML serializer: a value
/// with a quote or a newline stays one string.
///
/// `nameserver`: BuildKit drops loopback nameservers from the resolv.conf it gives build steps and falls
/// back to public ones (8.8.8.8), which a CI network may not reach: the steps of a `pip install` then
/// resolve nothing. With host networking the steps share the daemon's namespace, so the container
/// runtime's own resolver there (`127.0.0.11` on a Docker network) can be named. A pod's resolver (the
/// cluster's DNS Service) is no loopback and needs no naming.
pub fn config_toml(registry: &str, hub_mirror: Option<&str>, nameserver: Option<&str>) -> String {
    let plain_http = || RegistryToml { http: Some(true), insecure: Some(true), ..RegistryToml::default() };
    let mut registries = BTreeMap::from([(registry, plain_http())]);
    if let Some(mirror) = hub_mirror {
        registries.insert("docker.io", RegistryToml { mirrors: vec![mirror], ..RegistryToml::default() });
        registries.insert(mirror, plain_http());
    }
    let config = BuildkitdToml { dns: nameserver.map(|n| Dns { nameservers: vec![n] }), registry: registries };
    toml::to_string(&config).expect("buildkitd.toml is plain tables of strings and booleans")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize)]
    struct Parsed {
        dns: Option<BTreeMap<String, Vec<String>>>,
        registry: BTreeMap<String, BTreeMap<String, toml::Value>>,
    }

    #[test]
    fn the_api_listens_where_asked_and_only_the_runs_registries_are_plain_http() {
        let args = command("0.0.0.0");
        assert!(args.contains(&"--addr=tcp://0.0.0.0:1234".to_string()), "{args:?}");
        assert!(args.contains(&format!("--config={CONFIG_PATH}")), "{args:?}");
        let text = config_toml("registry:5000", Some("mirror:5000"), Some("127.0.0.11"));
        let toml: Parsed = toml::from_str(&text).unwrap();
        assert_eq!(toml.dns.unwrap()["nameservers"], ["127.0.0.11"]);
        assert_eq!(toml.registry["docker.io"]["mirrors"], toml::Value::Array(vec!["mirror:5000".into()]));
        let plain: Vec<&String> = toml.registry.iter().filter(|(_, r)| r.get("http") == Some(&toml::Value::Boolean(true))).map(|(k, _)| k).collect();
        assert_eq!(plain, ["mirror:5000", "registry:5000"], "{text}");
        assert!(!config_toml("registry:5000", None, None).contains("docker.io"));
    }

    /// A value that would end a TOML string or a table header stays one value: the serializer escapes it.
    #[test]
    fn a_hostile_value_cannot_change_the_files_structure() {
        let hostile = "a\"]\n[registry.\"evil\"]\nhttp = true\n#:5000";
        let text = config_toml("registry:5000", Some(hostile), None);
        let toml: Parsed = toml::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
        assert_eq!(toml.registry.len(), 3, "docker.io, the mirror, the registry: {text}");
        assert!(!toml.registry.contains_key("evil"), "{text}");
        assert_eq!(toml.registry["docker.io"]["mirrors"], toml::Value::Array(vec![hostile.into()]));
    }

    #[test]
    fn its_version_is_the_third_word() {
        assert_eq!(version_of("buildkitd github.com/moby/buildkit v0.34.2 9f21caf\n").as_deref(), Some("v0.34.2"));
        assert_eq!(version_of(""), None);
    }
}
