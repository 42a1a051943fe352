//! buildah: `bud --layers` with its layers cached in a registry repository, then a push per destination.

pub mod log;

use crate::builder::command::{mark, script, shell, shell_words, BuilderHome, Endpoints, JobCommand, VersionLine, CONTEXT_DIR};
use crate::strategy::{BuildRequest, CacheExport, CacheImport, Phase, Privileges};
use crate::toolchain::Role;

pub const HOME: BuilderHome = BuilderHome { name: "buildah", role: Role::Buildah, privileges, command, uncached: &[] };

/// buildah in a container: it unshares namespaces and mounts overlay, which the default seccomp profile
/// and AppArmor refuse (`unshare(CLONE_NEWUSER): Operation not permitted`); with `BUILDAH_ISOLATION=chroot`
/// it needs no privileged mode.
fn privileges() -> Privileges {
    Privileges { privileged: false, extra_capabilities: vec!["SYS_ADMIN"], unconfined: vec!["seccomp", "apparmor"] }
}

/// overlay on the job's volume, not vfs: vfs copies every layer and made a cold Flask build ~5x slower.
const STORAGE: &str = "--storage-driver=overlay";

/// containers-image configuration: Docker Hub through the mirror, both registries over plain HTTP. The
/// mirror is a registry of its own too: a base of another registry is named there in the `FROM`
/// (`crate::toolchain::bases`), as every other builder gets it.
fn registries_conf(endpoints: &Endpoints) -> String {
    let mut conf = String::from("unqualified-search-registries = [\"docker.io\"]\nshort-name-mode = \"permissive\"\n");
    if let Some(mirror) = endpoints.hub_mirror {
        conf.push_str(&format!(
            "[[registry]]\nprefix = \"docker.io\"\nlocation = \"docker.io\"\n[[registry.mirror]]\nlocation = \"{mirror}\"\ninsecure = true\n"
        ));
        conf.push_str(&format!("[[registry]]\nprefix = \"{mirror}\"\nlocation = \"{mirror}\"\ninsecure = true\n"));
    }
    conf.push_str(&format!("[[registry]]\nprefix = \"{0}\"\nlocation = \"{0}\"\ninsecure = true\n", endpoints.registry));
    conf
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
        format!("cat > /etc/containers/registries.conf <<'EOF'\n{}EOF", registries_conf(endpoints)),
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

    #[test]
    fn the_dockerfile_path_is_one_csv_field_for_buildahs_slice_flag() {
        assert_eq!(csv_field("/workspace/Dockerfile"), "\"/workspace/Dockerfile\"");
        assert_eq!(csv_field("/w/a, \"b\"/Dockerfile"), "\"/w/a, \"\"b\"\"/Dockerfile\"");
    }
}
