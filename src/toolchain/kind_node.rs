//! kind and its node image, built offline: `kind` from its module, and a node image holding Kubernetes built
//! from `k8s.io/kubernetes` with every image a cluster needs at creation (control plane, kube-proxy, pause,
//! etcd, CoreDNS, the storage provisioner), each built from its Go module (toolchain/cluster/README.md).
//!
//! kind's own `build node-image` cannot be used here: besides the Kubernetes images it pulls kindnetd and its
//! storage images, and kindnetd's module is not served. So the node image is assembled as kind assembles it
//! (its base image's files, the binaries in /usr/bin, the images imported into containerd's `k8s.io`
//! namespace, /kind/version, kind's storage manifest), from a Dockerfile, and the cluster runs Cilium instead
//! of kindnet: its images in the node image and its manifest as kind's default CNI manifest, on one node or many.

use std::collections::HashMap;
use std::path::PathBuf;

use bollard::Docker;
use futures_util::StreamExt;

use super::go_build::{GoBinaries, GoCache, GoRecipe};
use super::stand_in::{self, BuildSpec, Context};
use super::{Operation, ToolchainConfig, ToolchainError};
use crate::events::EventSink;

/// The Kubernetes release the node image runs. 1.34 is the last whose kubelet starts on cgroup v1 by default
/// (these machines' hierarchy); 1.35 refuses unless `failCgroupV1: false`.
pub const KUBERNETES_VERSION: &str = "v1.34.4";
/// kind's release: the CLI, and the base image files and storage manifest the node image takes from it.
pub const KIND_VERSION: &str = "v0.33.0";

const KUBERNETES: GoRecipe = GoRecipe {
    module: "k8s.io/kubernetes",
    version: KUBERNETES_VERSION,
    go_mod: include_str!("../../toolchain/cluster/kubernetes/go.mod"),
    go_sum: include_str!("../../toolchain/cluster/kubernetes/go.sum"),
    packages: &[
        "k8s.io/kubernetes/cmd/kubeadm",
        "k8s.io/kubernetes/cmd/kubelet",
        "k8s.io/kubernetes/cmd/kubectl",
        "k8s.io/kubernetes/cmd/kube-apiserver",
        "k8s.io/kubernetes/cmd/kube-controller-manager",
        "k8s.io/kubernetes/cmd/kube-scheduler",
        "k8s.io/kubernetes/cmd/kube-proxy",
    ],
    tags: "",
    // What hack/lib/version.sh sets (no commit or build date: a module has none); without it kubeadm says v0.0.0.
    ldflags: "-s -w \
        -X k8s.io/component-base/version.gitVersion=v1.34.4 -X k8s.io/component-base/version.gitMajor=1 \
        -X k8s.io/component-base/version.gitMinor=34 -X k8s.io/component-base/version.gitTreeState=clean \
        -X k8s.io/client-go/pkg/version.gitVersion=v1.34.4 -X k8s.io/client-go/pkg/version.gitMajor=1 \
        -X k8s.io/client-go/pkg/version.gitMinor=34 -X k8s.io/client-go/pkg/version.gitTreeState=clean",
    files: &[],
};

/// kubeadm 1.34's etcd (`registry.k8s.io/etcd:3.6.5-0`).
const ETCD: GoRecipe = GoRecipe {
    module: "go.etcd.io/etcd/server/v3",
    version: "v3.6.5",
    go_mod: include_str!("../../toolchain/cluster/etcd/go.mod"),
    go_sum: include_str!("../../toolchain/cluster/etcd/go.sum"),
    packages: &["go.etcd.io/etcd/server/v3"],
    tags: "",
    ldflags: "-s -w",
    files: &[],
};

/// kubeadm 1.34's CoreDNS.
const COREDNS: GoRecipe = GoRecipe {
    module: "github.com/coredns/coredns",
    version: "v1.12.1",
    go_mod: include_str!("../../toolchain/cluster/coredns/go.mod"),
    go_sum: include_str!("../../toolchain/cluster/coredns/go.sum"),
    packages: &["github.com/coredns/coredns"],
    tags: "",
    ldflags: "-s -w",
    files: &[],
};

/// crictl of the same minor as the kubelet, for the node (kind's base image has it).
const CRI_TOOLS: GoRecipe = GoRecipe {
    module: "sigs.k8s.io/cri-tools",
    version: "v1.34.0",
    go_mod: include_str!("../../toolchain/cluster/cri-tools/go.mod"),
    go_sum: include_str!("../../toolchain/cluster/cri-tools/go.sum"),
    packages: &["sigs.k8s.io/cri-tools/cmd/crictl"],
    tags: "",
    ldflags: "-s -w -X sigs.k8s.io/cri-tools/pkg/version.Version=v1.34.0",
    files: &[],
};

/// The provisioner of kind's default StorageClass. kind v0.33 builds v0.0.34, which the module proxy does not
/// serve; v0.0.30 is the newest it does.
const LOCAL_PATH_PROVISIONER: GoRecipe = GoRecipe {
    module: "github.com/rancher/local-path-provisioner",
    version: "v0.0.30",
    go_mod: include_str!("../../toolchain/cluster/local-path-provisioner/go.mod"),
    go_sum: include_str!("../../toolchain/cluster/local-path-provisioner/go.sum"),
    packages: &["github.com/rancher/local-path-provisioner"],
    tags: "",
    ldflags: "-s -w -X main.VERSION=v0.0.30",
    files: &[],
};

/// The kind CLI.
const KIND: GoRecipe = GoRecipe {
    module: "sigs.k8s.io/kind",
    version: KIND_VERSION,
    go_mod: include_str!("../../toolchain/kind/go.mod"),
    go_sum: include_str!("../../toolchain/kind/go.sum"),
    packages: &["sigs.k8s.io/kind"],
    tags: "",
    ldflags: "-s -w",
    files: &[],
};

/// The node image's network add-ons, as `kubectl rollout status` names them: `cluster up` waits for each.
pub const NETWORK_ADDONS: [(&str, &str); 2] = [("kube-system", "daemonset/cilium"), ("kube-system", "deployment/cilium-operator")];

/// Cilium's manifest, rendered from its Helm chart (toolchain/cluster/cilium/README.md): kind applies the node
/// image's `/kind/manifests/default-cni.yaml` while it creates a cluster, before it waits for the control plane,
/// as it does with kindnetd's in its own node images.
const NETWORK_MANIFEST: &str = include_str!("../../toolchain/cluster/cilium/cilium.yaml");

/// Cilium: the cluster's CNI (pods of different nodes reach each other through a VXLAN tunnel) and its
/// NetworkPolicy agent (eBPF, per pod). The release's go.mod is ignored in a wrapper; two of its dependencies
/// are not served as it pins them (see toolchain/cluster/cilium/go.mod).
const CILIUM: GoRecipe = GoRecipe {
    module: "github.com/cilium/cilium",
    version: CILIUM_VERSION,
    go_mod: include_str!("../../toolchain/cluster/cilium/go.mod"),
    go_sum: include_str!("../../toolchain/cluster/cilium/go.sum"),
    packages: &[
        "github.com/cilium/cilium/daemon",
        "github.com/cilium/cilium/cilium-dbg",
        "github.com/cilium/cilium/plugins/cilium-cni",
        "github.com/cilium/cilium/operator",
    ],
    // The generic operator's IPAM providers (its Makefile's `cilium-operator-generic`); the agent ignores it.
    tags: "ipam_provider_operator",
    ldflags: "-s -w -X github.com/cilium/cilium/pkg/version.ciliumVersion=1.20.2",
    files: &[
        ("mcs-api-controllers/go.mod", include_str!("../../toolchain/cluster/cilium/mcs-api-controllers/go.mod")),
        ("mcs-api-controllers/controllers.go", include_str!("../../toolchain/cluster/cilium/mcs-api-controllers/controllers.go")),
    ],
};

/// Cilium's release, as its images are tagged.
pub const CILIUM_VERSION: &str = "v1.20.2";

/// pause's version in k8s.io/kubernetes v1.34.4 (build/pause/Makefile's TAG), which kubeadm 1.34 names.
const PAUSE_VERSION: &str = "3.10.1";

/// kind's storage manifest names these images; the node image carries local builds under other names.
const KIND_STORAGE_IMAGES: [&str; 2] =
    ["docker.io/kindest/local-path-provisioner:v20260820-69b56db7", "docker.io/kindest/local-path-helper:v20260131-7181c60a"];

/// The local builds' repositories and tags (under the stand-in prefix) that the storage manifest names.
const LOCAL_PATH_PROVISIONER_IMAGE: &str = "local-path-provisioner:v0.0.30";
const LOCAL_PATH_HELPER_IMAGE: &str = "local-path-helper:busybox";

/// One image loaded into the node's containerd.
struct Component {
    /// The stand-in's repository and tag under the stand-in prefix, e.g. `kube-apiserver:v1.34.4`.
    stand_in: String,
    /// The name the node's containerd gives it (what kubeadm and the manifests ask for); `None` keeps the
    /// stand-in name.
    in_node: Option<String>,
    dockerfile: &'static str,
    /// The Go programs it copies, and which of the recipe's binaries.
    go: Option<(&'static GoRecipe, &'static [&'static str])>,
    build_args: Vec<(&'static str, String)>,
    /// Files or directories of a module's source put into the context: (context path, recipe, path in the module).
    module_files: Vec<(&'static str, &'static GoRecipe, &'static str)>,
}

fn components() -> Vec<Component> {
    let control_plane = |binary: &'static str, go: &'static [&'static str]| Component {
        stand_in: format!("{binary}:{KUBERNETES_VERSION}"),
        in_node: Some(format!("registry.k8s.io/{binary}:{KUBERNETES_VERSION}")),
        dockerfile: include_str!("../../toolchain/cluster/control-plane.Dockerfile"),
        go: Some((&KUBERNETES, go)),
        build_args: vec![("BINARY", binary.to_string())],
        module_files: vec![],
    };
    vec![
        control_plane("kube-apiserver", &["kube-apiserver"]),
        control_plane("kube-controller-manager", &["kube-controller-manager"]),
        control_plane("kube-scheduler", &["kube-scheduler"]),
        Component {
            stand_in: format!("kube-proxy:{KUBERNETES_VERSION}"),
            in_node: Some(format!("registry.k8s.io/kube-proxy:{KUBERNETES_VERSION}")),
            dockerfile: include_str!("../../toolchain/cluster/kube-proxy.Dockerfile"),
            go: Some((&KUBERNETES, &["kube-proxy"])),
            build_args: vec![],
            module_files: vec![],
        },
        Component {
            stand_in: format!("pause:{PAUSE_VERSION}"),
            in_node: Some(format!("registry.k8s.io/pause:{PAUSE_VERSION}")),
            dockerfile: include_str!("../../toolchain/cluster/pause.Dockerfile"),
            go: None,
            build_args: vec![("VERSION", format!("v{PAUSE_VERSION}"))],
            module_files: vec![("pause.c", &KUBERNETES, "build/pause/linux/pause.c")],
        },
        Component {
            stand_in: "etcd:3.6.5-0".into(),
            in_node: Some("registry.k8s.io/etcd:3.6.5-0".into()),
            dockerfile: include_str!("../../toolchain/cluster/etcd.Dockerfile"),
            go: Some((&ETCD, &["server"])),
            build_args: vec![],
            module_files: vec![],
        },
        Component {
            stand_in: "coredns:v1.12.1".into(),
            in_node: Some("registry.k8s.io/coredns/coredns:v1.12.1".into()),
            dockerfile: include_str!("../../toolchain/cluster/coredns.Dockerfile"),
            go: Some((&COREDNS, &["coredns"])),
            build_args: vec![],
            module_files: vec![],
        },
        Component {
            stand_in: LOCAL_PATH_PROVISIONER_IMAGE.into(),
            in_node: None,
            dockerfile: include_str!("../../toolchain/cluster/local-path-provisioner.Dockerfile"),
            go: Some((&LOCAL_PATH_PROVISIONER, &["local-path-provisioner"])),
            build_args: vec![],
            module_files: vec![],
        },
        Component {
            stand_in: LOCAL_PATH_HELPER_IMAGE.into(),
            in_node: None,
            dockerfile: include_str!("../../toolchain/cluster/local-path-helper.Dockerfile"),
            go: None,
            build_args: vec![],
            module_files: vec![],
        },
    ]
    .into_iter()
    .chain(network_components())
    .collect()
}

/// Cilium's agent (with its CNI plugin and BPF sources) and operator, under the names its manifest runs.
fn network_components() -> Vec<Component> {
    vec![
        Component {
            stand_in: format!("cilium:{CILIUM_VERSION}"),
            in_node: Some(format!("quay.io/cilium/cilium:{CILIUM_VERSION}")),
            dockerfile: include_str!("../../toolchain/cluster/cilium.Dockerfile"),
            go: Some((&CILIUM, &["daemon", "cilium-dbg", "cilium-cni"])),
            build_args: vec![],
            module_files: vec![
                ("bpf", &CILIUM, "bpf"),
                ("init-container.sh", &CILIUM, "images/cilium/init-container.sh"),
                ("install-plugin.sh", &CILIUM, "plugins/cilium-cni/install-plugin.sh"),
                ("cni-uninstall.sh", &CILIUM, "plugins/cilium-cni/cni-uninstall.sh"),
            ],
        },
        Component {
            stand_in: format!("cilium-operator-generic:{CILIUM_VERSION}"),
            in_node: Some(format!("quay.io/cilium/operator-generic:{CILIUM_VERSION}")),
            dockerfile: include_str!("../../toolchain/cluster/cilium-operator.Dockerfile"),
            go: Some((&CILIUM, &["operator"])),
            build_args: vec![],
            module_files: vec![],
        },
    ]
}

/// The node image, ready for `kind create cluster --image`.
#[derive(Debug, Clone)]
pub struct NodeImage {
    pub name: String,
    pub id: String,
    pub kubernetes: &'static str,
}

/// The kind binary and the node image, built when missing or stale.
pub async fn ensure(
    docker: &Docker,
    config: &ToolchainConfig,
    events: &EventSink,
) -> Result<(PathBuf, NodeImage), ToolchainError> {
    let mut stand_ins = stand_in::Builder::new(docker, config, events);
    let go = GoCache::locate();
    let prefix = &config.stand_in_prefix;
    let kind = kind_binary(events).await?;

    let (base_name, base_id) = stand_ins.base().await?;
    let mut built = HashMap::new();
    let mut images = Vec::new();
    for component in components() {
        let name = format!("{prefix}/{}", component.stand_in);
        let id = ensure_component(docker, &go, &component, &name, &base_name, &base_id, &mut built, events).await?;
        images.push((name, id, component.in_node));
    }
    let kind_base = ensure_kind_base(docker, &go, prefix, &base_name, &base_id, &mut built, events).await?;

    let node_name = format!("{prefix}/kind-node:{KUBERNETES_VERSION}");
    let kind_source = go.module_source(&KIND, &node_name).await?;
    let storage = storage_manifest(&kind_source, prefix).map_err(|e| {
        ToolchainError::new(Operation::Build, &node_name, e, "The kind module's source is not what layerbench's node image was written for")
    })?;
    let dockerfile = include_str!("../../toolchain/cluster/node.Dockerfile");
    let mut parts = vec!["kind-node", dockerfile, &storage, NETWORK_MANIFEST, &kind_base.1];
    for (_, id, in_node) in &images {
        parts.push(id);
        parts.push(in_node.as_deref().unwrap_or("-"));
    }
    let go_parts = KUBERNETES.hash_parts();
    parts.extend(go_parts.iter());
    let hash = super::recipe_hash(&parts);
    let id = match stand_in::current(docker, &node_name, &hash, events).await? {
        Some(id) => id,
        None => {
            let binaries = go_binaries(&go, &KUBERNETES, &node_name, &mut built, events).await?;
            let mut context = Context::new(dockerfile);
            context.binaries(&binaries, &["kubeadm", "kubelet", "kubectl"]);
            context.text("version", KUBERNETES_VERSION);
            context.text("default-storage.yaml", &storage);
            context.text("default-cni.yaml", NETWORK_MANIFEST);
            let retag: String = images
                .iter()
                .filter_map(|(name, _, in_node)| in_node.as_ref().map(|to| format!("docker.io/{name} {to}\n")))
                .collect();
            context.text("retag.txt", &retag);
            let names: Vec<&str> = images.iter().map(|(name, _, _)| name.as_str()).collect();
            events.setup(format!("saving {} images for the node image", names.len()));
            let tar = export_images(docker, &names, &node_name).await?;
            context.bytes("images.tar", &tar, 0o644);
            drop(tar);
            let built_from = binaries.built_from(&KUBERNETES);
            let build_args = HashMap::from([("BASE", kind_base.0.as_str())]);
            let spec = BuildSpec { name: &node_name, build_args, built_from: Some(&built_from), hash: &hash };
            stand_in::build(docker, &spec, context, events).await?
        }
    };
    Ok((kind, NodeImage { name: node_name, id, kubernetes: KUBERNETES_VERSION }))
}

/// The kind CLI, built from its module when missing.
pub async fn kind_binary(events: &EventSink) -> Result<PathBuf, ToolchainError> {
    let binaries = GoCache::locate().binaries(&KIND, &format!("kind {KIND_VERSION}"), events).await?;
    Ok(binaries.dir.join("kind"))
}

/// A recipe's binaries, built at most once per call of [`ensure`].
async fn go_binaries(
    go: &GoCache,
    recipe: &'static GoRecipe,
    image: &str,
    built: &mut HashMap<&'static str, GoBinaries>,
    events: &EventSink,
) -> Result<GoBinaries, ToolchainError> {
    if let Some(binaries) = built.get(recipe.module) {
        return Ok(binaries.clone());
    }
    let binaries = go.binaries(recipe, image, events).await?;
    built.insert(recipe.module, binaries.clone());
    Ok(binaries)
}

#[allow(clippy::too_many_arguments)]
async fn ensure_component(
    docker: &Docker,
    go: &GoCache,
    component: &Component,
    name: &str,
    base_name: &str,
    base_id: &str,
    built: &mut HashMap<&'static str, GoBinaries>,
    events: &EventSink,
) -> Result<String, ToolchainError> {
    let mut parts = vec!["kind-component", component.dockerfile, base_id];
    for (key, value) in &component.build_args {
        parts.extend([*key, value.as_str()]);
    }
    if let Some((recipe, binaries)) = component.go {
        parts.extend(recipe.hash_parts());
        parts.extend(binaries.iter());
    }
    for (file, recipe, path) in &component.module_files {
        parts.extend([*file, recipe.module, recipe.version, *path]);
    }
    let hash = super::recipe_hash(&parts);
    if let Some(id) = stand_in::current(docker, name, &hash, events).await? {
        return Ok(id);
    }
    let mut context = Context::new(component.dockerfile);
    let mut built_from = None;
    if let Some((recipe, names)) = component.go {
        let binaries = go_binaries(go, recipe, name, built, events).await?;
        context.binaries(&binaries, names);
        built_from = Some(binaries.built_from(recipe));
    }
    for (file, recipe, path) in &component.module_files {
        let source = go.module_source(recipe, name).await?.join(path);
        if source.is_dir() {
            context.tree(file, &source, &|_| false);
        } else {
            // Scripts keep their executable bit: the images run them as they come.
            context.file(file, &source, if file.ends_with(".sh") { 0o755 } else { 0o644 });
        }
    }
    // An image of a module's files alone (pause) was built from them; one with Go programs, from those.
    if let (None, Some((_, recipe, path))) = (component.go, component.module_files.first()) {
        built_from = Some(format!("{} ({path})", recipe.built_from()));
    }
    let mut build_args: HashMap<&str, &str> = component.build_args.iter().map(|(k, v)| (*k, v.as_str())).collect();
    build_args.insert("BASE", base_name);
    let spec = BuildSpec { name, build_args, built_from: built_from.as_deref(), hash: &hash };
    stand_in::build(docker, &spec, context, events).await
}

/// The stand-in for kindest/base: kind's base image files from the kind module, crictl, Debian packages.
async fn ensure_kind_base(
    docker: &Docker,
    go: &GoCache,
    prefix: &str,
    base_name: &str,
    base_id: &str,
    built: &mut HashMap<&'static str, GoBinaries>,
    events: &EventSink,
) -> Result<(String, String), ToolchainError> {
    let name = format!("{prefix}/kind-base:{KIND_VERSION}");
    let dockerfile = include_str!("../../toolchain/cluster/base.Dockerfile");
    let mut parts = vec!["kind-base", dockerfile, base_id, KIND.module, KIND.version];
    let cri_parts = CRI_TOOLS.hash_parts();
    parts.extend(cri_parts.iter());
    let hash = super::recipe_hash(&parts);
    if let Some(id) = stand_in::current(docker, &name, &hash, events).await? {
        return Ok((name, id));
    }
    let kind_source = go.module_source(&KIND, &name).await?;
    let crictl = go_binaries(go, &CRI_TOOLS, &name, built, events).await?;
    let mut context = Context::new(dockerfile);
    // kind's Dockerfile makes /usr/local/bin and /kind/bin executable and everything else 0644.
    let executable = |path: &str| path.starts_with("usr/local/bin/") || path.starts_with("kind/bin/");
    context.tree("files", &kind_source.join("images/base/files"), &executable);
    context.binaries(&crictl, &["crictl"]);
    let built_from = format!("{} (images/base/files), {}", KIND.built_from(), crictl.built_from(&CRI_TOOLS));
    let build_args = HashMap::from([("BASE", base_name)]);
    let spec = BuildSpec { name: &name, build_args, built_from: Some(&built_from), hash: &hash };
    let id = stand_in::build(docker, &spec, context, events).await?;
    Ok((name, id))
}

/// kind's own storage manifest (the `defaultStorageManifest` constant of its node image builder), with its two
/// images replaced by the local builds.
fn storage_manifest(kind_source: &std::path::Path, prefix: &str) -> Result<String, String> {
    let path = kind_source.join("pkg/build/nodeimage/const_storage.go");
    let source = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    storage_manifest_from(&source, prefix).map_err(|e| format!("{}: {e}", path.display()))
}

fn storage_manifest_from(source: &str, prefix: &str) -> Result<String, String> {
    let start = source
        .find("const defaultStorageManifest = `")
        .ok_or("no defaultStorageManifest")?;
    let body = &source[start + "const defaultStorageManifest = `".len()..];
    for constant in KIND_STORAGE_IMAGES {
        if !source.contains(&format!("\"{constant}\"")) {
            return Err(format!("{constant} is no longer named; layerbench's node image needs updating"));
        }
    }
    // A raw string that names the images by concatenation (`` ` + storageProvisionerImage + ` ``): with those
    // replaced, it ends at the next backquote.
    let body = body
        .replace("` + storageProvisionerImage + `", &format!("docker.io/{prefix}/{LOCAL_PATH_PROVISIONER_IMAGE}"))
        .replace("` + storageHelperImage + `", &format!("docker.io/{prefix}/{LOCAL_PATH_HELPER_IMAGE}"));
    let end = body.find('`').ok_or("defaultStorageManifest does not end")?;
    let manifest = body[..end].to_string();
    if !manifest.contains("kind: StorageClass") || manifest.contains("` + ") {
        return Err("defaultStorageManifest is not the manifest layerbench knows".into());
    }
    Ok(manifest)
}

/// `docker save` of `names` into one archive, in memory.
async fn export_images(docker: &Docker, names: &[&str], image: &str) -> Result<Vec<u8>, ToolchainError> {
    let mut stream = docker.export_images(names);
    let mut tar = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| ToolchainError::engine(Operation::Build, image, &e))?;
        tar.extend_from_slice(&chunk);
    }
    Ok(tar)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KIND_SOURCE: &str = "package nodeimage\n\
const storageProvisionerImage = \"docker.io/kindest/local-path-provisioner:v20260820-69b56db7\"\n\
const storageHelperImage = \"docker.io/kindest/local-path-helper:v20260131-7181c60a\"\n\
const defaultStorageManifest = `\n\
kind: StorageClass\n\
---\n\
          image: ` + storageProvisionerImage + `\n\
            - ` + storageHelperImage + `\n\
`\n";

    #[test]
    fn the_storage_manifest_is_kinds_with_the_local_provisioner_images() {
        let manifest = storage_manifest_from(KIND_SOURCE, "layerbench-local").expect("a manifest");
        assert!(manifest.contains("image: docker.io/layerbench-local/local-path-provisioner:v0.0.30\n"), "{manifest}");
        assert!(manifest.contains("- docker.io/layerbench-local/local-path-helper:busybox\n"), "{manifest}");
        assert!(!manifest.contains('`') && !manifest.contains("kindest"), "{manifest}");
    }

    #[test]
    fn a_kind_release_that_renames_its_storage_images_is_refused() {
        let renamed = KIND_SOURCE.replace("v20260131-7181c60a", "v20270101-0");
        assert!(storage_manifest_from(&renamed, "p").unwrap_err().contains("local-path-helper"));
    }

    #[test]
    fn the_network_manifest_runs_only_images_the_node_image_carries() {
        let carried: Vec<String> = components().into_iter().filter_map(|c| c.in_node).collect();
        let images: Vec<&str> = NETWORK_MANIFEST
            .lines()
            .filter_map(|l| l.trim().strip_prefix("image: "))
            .map(|i| i.trim_matches('"'))
            .collect();
        assert!(images.len() >= 2, "{images:?}");
        for image in images {
            assert!(carried.iter().any(|c| c == image), "{image} is run by the manifest but not in the node image");
        }
        // What `cluster up` waits for is in the manifest, under those names.
        for (namespace, workload) in NETWORK_ADDONS {
            let (kind, name) = workload.split_once('/').unwrap();
            let kind = if kind == "daemonset" { "DaemonSet" } else { "Deployment" };
            let object = format!("kind: {kind}\nmetadata:\n  name: {name}\n  namespace: {namespace}\n");
            assert!(NETWORK_MANIFEST.contains(&object), "{object}");
        }
        assert!(!NETWORK_MANIFEST.contains("would you kindly"), "kind would template or patch the manifest");
    }

    #[test]
    fn the_cilium_wrapper_requires_the_release_and_replaces_what_is_not_served_with_its_own_files() {
        assert!(CILIUM.go_mod.lines().any(|l| l == format!("\t{} {} // indirect", CILIUM.module, CILIUM.version)));
        for package in CILIUM.packages {
            assert!(CILIUM.go_mod.contains(&format!("\t{package}\n")), "{package} is not a tool of the wrapper");
        }
        assert!(CILIUM.go_mod.contains("sigs.k8s.io/mcs-api/controllers => ./mcs-api-controllers"));
        assert!(CILIUM.files.iter().any(|(path, text)| *path == "mcs-api-controllers/go.mod"
            && text.contains("module sigs.k8s.io/mcs-api/controllers")));
        assert!(CILIUM.ldflags.contains(CILIUM_VERSION.trim_start_matches('v')));
        assert_eq!(CILIUM.binaries(), ["daemon", "cilium-dbg", "cilium-cni", "operator"]);
    }

    #[test]
    fn component_images_carry_the_names_kubeadm_expects() {
        let names: Vec<String> = components().into_iter().filter_map(|c| c.in_node).collect();
        for expected in [
            "registry.k8s.io/kube-apiserver:v1.34.4",
            "registry.k8s.io/etcd:3.6.5-0",
            "registry.k8s.io/coredns/coredns:v1.12.1",
            "registry.k8s.io/pause:3.10.1",
        ] {
            assert!(names.iter().any(|n| n == expected), "{expected} missing from {names:?}");
        }
    }
}
