//! buildah: `bud --layers` with its layers cached in a registry repository, then a push per destination.

pub mod log;

use crate::builder::command::{mark, script, shell, shell_word, shell_words, BuilderHome, Endpoints, JobCommand, VersionLine, CONTEXT_DIR};
use crate::strategy::{BuildRequest, CacheExport, CacheImport, Phase, Privileges};
use crate::toolchain::Role;

pub const HOME: BuilderHome = BuilderHome { name: "buildah", role: Role::Buildah, privileges, command, uncached: &[], image_entrypoint: &[] };

/// buildah in a container: it unshares namespaces and mounts overlay, which the default seccomp profile
/// and AppArmor refuse (`unshare(CLONE_NEWUSER): Operation not permitted`); with `BUILDAH_ISOLATION=chroot`
/// it needs no privileged mode.
fn privileges() -> Privileges {
    Privileges { privileged: false, extra_capabilities: vec!["SYS_ADMIN"], unconfined: vec!["seccomp", "apparmor"] }
}

/// overlay on the job's volume, not vfs: vfs copies every layer and made a cold Flask build ~5x slower.
const STORAGE: &str = "--storage-driver=overlay";

/// containers-image's `registries.conf` as buildah reads it.
#[derive(serde::Serialize)]
struct RegistriesConf<'a> {
    #[serde(rename = "unqualified-search-registries")]
    unqualified_search_registries: [&'a str; 1],
    #[serde(rename = "short-name-mode")]
    short_name_mode: &'a str,
    registry: Vec<RegistryConf<'a>>,
}

#[derive(serde::Serialize)]
struct RegistryConf<'a> {
    prefix: &'a str,
    location: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    insecure: Option<bool>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    mirror: Vec<MirrorConf<'a>>,
}

#[derive(serde::Serialize)]
struct MirrorConf<'a> {
    location: &'a str,
    insecure: bool,
}

/// containers-image configuration: Docker Hub through the mirror, both registries over plain HTTP. The
/// mirror is a registry of its own too: a base of another registry is named there in the `FROM`
/// (`crate::toolchain::bases`), as every other builder gets it. Written by the TOML serializer: a value with a
/// quote or a newline stays one string.
fn registries_conf(endpoints: &Endpoints) -> String {
    let mut registries = vec![];
    if let Some(mirror) = endpoints.hub_mirror {
        let mirrors = vec![MirrorConf { location: mirror, insecure: true }];
        registries.push(RegistryConf { prefix: "docker.io", location: "docker.io", insecure: None, mirror: mirrors });
        registries.push(RegistryConf { prefix: mirror, location: mirror, insecure: Some(true), mirror: vec![] });
    }
    registries.push(RegistryConf { prefix: endpoints.registry, location: endpoints.registry, insecure: Some(true), mirror: vec![] });
    let conf = RegistriesConf { unqualified_search_registries: ["docker.io"], short_name_mode: "permissive", registry: registries };
    toml::to_string(&conf).expect("registries.conf is plain tables of strings and booleans")
}

/// buildah's `-f` is a string-slice flag, which reads its value as one line of CSV: a path with a `"`
/// fails to parse and one with a `,` becomes two files. Quoted as one CSV field, any path is itself.
fn csv_field(value: &str) -> String {
    format!("\"{}\"", value.replace('"', "\"\""))
}

pub fn command(request: &BuildRequest, dockerfile: &str, endpoints: &Endpoints) -> JobCommand {
    let first = &request.destinations[0];
    let mut bud = vec!["buildah", STORAGE, "bud", "--layers", "--tls-verify=false"]
        .into_iter()
        .map(String::from)
        .collect::<Vec<_>>();
    for CacheImport::Registry { reference } in &request.cache_from {
        bud.push(format!("--cache-from={reference}"));
    }
    if let Some(CacheExport::Registry { reference, .. }) = &request.cache_to {
        bud.push(format!("--cache-to={reference}"));
    }
    bud.extend(["-f".into(), csv_field(dockerfile), "-t".into(), first.clone(), CONTEXT_DIR.into()]);
    let mut lines = vec![
        "mkdir -p /etc/containers".to_string(),
        format!("printf '%s' {} > /etc/containers/registries.conf", shell_word(&registries_conf(endpoints))),
        "buildah --version".into(),
        mark(Phase::Build),
        shell_words(&bud),
        mark(Phase::Push),
    ];
    for destination in &request.destinations {
        if destination != first {
            lines.push(shell_words(&["buildah", STORAGE, "tag", first, destination]));
        }
        lines.push(shell_words(&["buildah", STORAGE, "push", "--tls-verify=false", destination, &format!("docker://{destination}")]));
    }
    JobCommand {
        entrypoint: shell(),
        args: script(lines),
        env: vec!["BUILDAH_ISOLATION=chroot".into()],
        parser: log::parser,
        storage: Some("/var/lib/containers"),
        version: Some(VersionLine { builder: "buildah", prefix: "buildah version " }),
        inner_phases: vec![],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_build_then_a_push_per_destination_with_the_mirror_configured() {
        let request = BuildRequest {
            builder: crate::strategy::JobBuilder::Buildah,
            destinations: vec!["r:5000/a:c1".into(), "r:5000/a:latest".into()],
            cache_from: vec![CacheImport::Registry { reference: "r:5000/a-cache".into() }],
            cache_to: Some(CacheExport::Registry { reference: "r:5000/a-cache".into(), every_stage: true }),
        };
        let endpoints = Endpoints { registry: "r:5000", hub_mirror: Some("mirror:5000"), daemon_host: None };
        let script = &command(&request, "/workspace/Dockerfile", &endpoints).args[0];
        assert_eq!(script.matches(" bud ").count(), 1, "{script}");
        assert!(script.contains("--cache-from=r:5000/a-cache --cache-to=r:5000/a-cache"), "{script}");
        assert!(script.contains("tag r:5000/a:c1 r:5000/a:latest"), "{script}");
        assert!(script.contains("push --tls-verify=false r:5000/a:latest docker://r:5000/a:latest"), "{script}");
        assert!(script.contains("location = \"mirror:5000\""), "{script}");
        assert!(script.find("::layerbench-phase build") < script.find("::layerbench-phase push"));
    }

    /// A mirror address that would end a TOML string stays one value: the serializer escapes it.
    #[test]
    fn registries_conf_is_toml_whatever_the_values() {
        let hostile = "m\"\n[[registry]]\nprefix = \"evil\"";
        let endpoints = Endpoints { registry: "r:5000", hub_mirror: Some(hostile), daemon_host: None };
        let parsed: toml::Value = toml::from_str(&registries_conf(&endpoints)).unwrap();
        let registries = parsed["registry"].as_array().unwrap();
        assert_eq!(registries.len(), 3, "Docker Hub, the mirror, the registry: {parsed}");
        assert_eq!(registries[0]["mirror"][0]["location"].as_str(), Some(hostile));
        assert_eq!(registries[1]["prefix"].as_str(), Some(hostile));
        assert_eq!(registries[2]["prefix"].as_str(), Some("r:5000"));
        assert_eq!(registries[2]["insecure"].as_bool(), Some(true));
    }

    #[test]
    fn the_dockerfile_path_is_one_csv_field_for_buildahs_slice_flag() {
        assert_eq!(csv_field("/workspace/Dockerfile"), "\"/workspace/Dockerfile\"");
        assert_eq!(csv_field("/w/a, \"b\"/Dockerfile"), "\"/w/a, \"\"b\"\"/Dockerfile\"");
    }
}
