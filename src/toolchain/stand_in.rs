//! Local stand-ins for toolchain images, built from Debian packages when the official images cannot be pulled.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bollard::query_parameters::{BuildImageOptionsBuilder, CreateImageOptionsBuilder, RemoveImageOptionsBuilder};
use bollard::{body_full, body_try_stream, Docker};
use futures_util::StreamExt;

use tokio::io::AsyncReadExt;
use tokio::time::timeout;

use super::go_build::{GoBinaries, GoCache, GoRecipe};
use super::{
    last_lines, recipe_hash, BUILT_FROM_LABEL, Operation, ResolvedImage, Role, ToolchainConfig, ToolchainError, RECIPE_LABEL,
    STAND_IN_LABEL,
};
use crate::events::EventSink;
use crate::resources::is_not_found;
use crate::results::ImageSource;

const ROOTFS_SCRIPT: &str = include_str!("../../toolchain/base/rootfs.sh");
/// The official image's config, which a root filesystem alone cannot carry.
const BASE_CHANGES: &[&str] = &[
    "ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin",
    "ENV LANG=C.UTF-8",
    r#"CMD ["python3"]"#,
];

/// debootstrap took 70 to 160 s here; a slow mirror may take several times that.
const DEBOOTSTRAP_TIMEOUT: Duration = Duration::from_secs(20 * 60);
/// Importing the 300 MB root filesystem took about 3 s.
const IMPORT_TIMEOUT: Duration = Duration::from_secs(10 * 60);
/// apt-get prints a line per package; this long without a line means the build is stuck.
const BUILD_IDLE_TIMEOUT: Duration = Duration::from_secs(10 * 60);

const NETWORK_HINT: &str = "Check that deb.debian.org is reachable from this host and from containers";

/// A Dockerfile-built stand-in: the Dockerfile (`FROM ${BASE}`), the files it copies, and the Go programs
/// it copies from the build context's root (built first, see [`go_build`]).
struct Recipe {
    dockerfile: &'static str,
    files: &'static [(&'static str, &'static str)],
    go: Option<GoRecipe>,
}

/// The Go programs of a role's stand-in, if it has any.
pub(super) fn go_recipe(role: Role) -> Option<GoRecipe> {
    match role {
        // The executor of the last upstream release. The maintained forks' modules are not served by the
        // Go module proxy here (osscontainertools/kaniko: 403), and upstream publishes the matching image.
        Role::Kaniko => Some(GoRecipe {
            module: "github.com/GoogleContainerTools/kaniko",
            version: "v1.24.0",
            go_mod: include_str!("../../toolchain/kaniko/go.mod"),
            go_sum: include_str!("../../toolchain/kaniko/go.sum"),
            packages: &["github.com/GoogleContainerTools/kaniko/cmd/executor"],
            tags: "",
            ldflags: "-s -w -X github.com/GoogleContainerTools/kaniko/pkg/version.version=v1.24.0",
            files: &[],
        }),
        // Distribution v3.1, whose link files are written atomically: v2.8 fails reads that race concurrent pushes
        // of the same blob or tag (toolchain/registry/Dockerfile).
        Role::Registry => Some(GoRecipe {
            module: "github.com/distribution/distribution/v3",
            version: "v3.1.2",
            go_mod: include_str!("../../toolchain/registry/go.mod"),
            go_sum: include_str!("../../toolchain/registry/go.sum"),
            packages: &["github.com/distribution/distribution/v3/cmd/registry"],
            tags: "",
            ldflags: "-s -w -X github.com/distribution/distribution/v3/version.version=v3.1.2 \
                      -X github.com/distribution/distribution/v3/version.mainpkg=github.com/distribution/distribution/v3",
            files: &[],
        }),
        Role::Buildkit => Some(GoRecipe {
            module: "github.com/moby/buildkit",
            version: "v0.34.2",
            go_mod: include_str!("../../toolchain/buildkit/go.mod"),
            go_sum: include_str!("../../toolchain/buildkit/go.sum"),
            packages: &["github.com/moby/buildkit/cmd/buildkitd", "github.com/moby/buildkit/cmd/buildctl"],
            // As the release's own Dockerfile builds them.
            tags: "osusergo netgo static_build seccomp",
            ldflags: "-s -w -X github.com/moby/buildkit/version.Version=v0.34.2 \
                      -X github.com/moby/buildkit/version.Package=github.com/moby/buildkit",
            files: &[],
        }),
        _ => None,
    }
}

fn recipe(role: Role) -> Option<Recipe> {
    match role {
        Role::Dind => Some(Recipe {
            dockerfile: include_str!("../../toolchain/dind/Dockerfile"),
            files: &[("dockerd-entrypoint.sh", include_str!("../../toolchain/dind/dockerd-entrypoint.sh"))],
            go: None,
        }),
        Role::Registry => Some(Recipe {
            dockerfile: include_str!("../../toolchain/registry/Dockerfile"),
            files: &[("entrypoint.sh", include_str!("../../toolchain/registry/entrypoint.sh"))],
            go: go_recipe(Role::Registry),
        }),
        Role::Buildah => Some(Recipe { dockerfile: include_str!("../../toolchain/buildah/Dockerfile"), files: &[], go: None }),
        Role::Job => Some(Recipe { dockerfile: include_str!("../../toolchain/job/Dockerfile"), files: &[], go: None }),
        Role::Kaniko => Some(Recipe {
            dockerfile: include_str!("../../toolchain/kaniko/Dockerfile"),
            files: &[],
            go: go_recipe(Role::Kaniko),
        }),
        Role::Buildkit => Some(Recipe {
            dockerfile: include_str!("../../toolchain/buildkit/Dockerfile"),
            files: &[],
            go: go_recipe(Role::Buildkit),
        }),
        Role::Base => None,
    }
}

/// The local stand-in's name for a role: `PREFIX/REPO:TAG`, where TAG is the official image's tag and REPO is the
/// official repository's last part for the base image (`python`) and the role's name otherwise.
pub fn stand_in_name(prefix: &str, role: Role, official: &str) -> String {
    let reference = official.split('@').next().unwrap_or(official);
    let last = reference.rsplit('/').next().unwrap_or(reference);
    let (repo, tag) = last.split_once(':').unwrap_or((last, "latest"));
    let repo = if role == Role::Base { repo } else { role.as_str() };
    format!("{prefix}/{repo}:{tag}")
}

/// Builds stand-ins on demand; the base stand-in at most once, since the others are built FROM it.
pub(super) struct Builder<'a> {
    docker: &'a Docker,
    config: &'a ToolchainConfig,
    events: &'a EventSink,
    /// The base stand-in's name and image ID, once it is known to be current.
    base: Option<(String, String)>,
    go_cache: GoCache,
}

impl<'a> Builder<'a> {
    pub(super) fn new(docker: &'a Docker, config: &'a ToolchainConfig, events: &'a EventSink) -> Self {
        Builder { docker, config, events, base: None, go_cache: GoCache::locate() }
    }

    /// The role's stand-in, built now when missing or made from an older recipe.
    pub(super) async fn ensure(&mut self, role: Role) -> Result<ResolvedImage, ToolchainError> {
        let official = self.config.official(role);
        let (base_name, base_id) = self.base().await?;
        if role == Role::Base {
            return Ok(stand_in(role, official, base_name, base_id));
        }
        let name = stand_in_name(&self.config.stand_in_prefix, role, official);
        let Some(recipe) = recipe(role) else {
            return Err(ToolchainError::new(
                Operation::Build,
                &name,
                format!("layerbench has no recipe for a local {role} image"),
                format!("Make {official} available to the engine (docker pull or docker load)"),
            ));
        };
        // The base's ID is part of the recipe: a rebuilt base must rebuild everything made FROM it.
        let mut parts = vec![role.as_str(), recipe.dockerfile];
        for (file, content) in recipe.files {
            parts.extend([*file, *content]);
        }
        parts.push(&base_id);
        // The Go programs' inputs (module, wrapper, flags) are part of it too; they are built only when the
        // image is missing or stale. Another Go version alone does not rebuild an image (its label says which).
        if let Some(go) = &recipe.go {
            parts.extend(go.hash_parts());
        }
        let hash = recipe_hash(&parts);
        let mut built_from = None;
        let id = match current(self.docker, &name, &hash, self.events).await? {
            Some(id) => id,
            None => {
                let binaries = match &recipe.go {
                    Some(go) => Some((go, self.go_cache.binaries(go, &name, self.events).await?)),
                    None => None,
                };
                built_from = binaries.as_ref().map(|(go, b)| b.built_from(go));
                let context = recipe_context(&recipe, binaries.as_ref().map(|(_, b)| b));
                let build_args = HashMap::from([("BASE", base_name.as_str())]);
                let spec = BuildSpec { name: &name, build_args, built_from: built_from.as_deref(), hash: &hash };
                build(self.docker, &spec, context, self.events).await?
            }
        };
        let mut image = stand_in(role, official, name, id);
        image.built_from = match built_from {
            Some(from) => Some(from),
            None => built_from_label(self.docker, &image.name).await,
        };
        Ok(image)
    }

    /// The base stand-in's name and image ID, built first when missing or stale.
    pub(super) async fn base(&mut self) -> Result<(String, String), ToolchainError> {
        if let Some(base) = &self.base {
            return Ok(base.clone());
        }
        let name = stand_in_name(&self.config.stand_in_prefix, Role::Base, &self.config.base);
        let mut parts = vec!["base", ROOTFS_SCRIPT];
        parts.extend(BASE_CHANGES);
        let hash = recipe_hash(&parts);
        let id = match current(self.docker, &name, &hash, self.events).await? {
            Some(id) => id,
            None => build_base(self.docker, &name, &hash, self.events).await?,
        };
        self.base = Some((name.clone(), id.clone()));
        Ok((name, id))
    }
}

fn stand_in(role: Role, official: &str, name: String, id: String) -> ResolvedImage {
    ResolvedImage::new(role, official, name, ImageSource::LocalStandIn, Some(id))
}


/// The ID of the stand-in `name` when it exists and was built from the recipe `hash`.
pub(super) async fn current(
    docker: &Docker,
    name: &str,
    hash: &str,
    events: &EventSink,
) -> Result<Option<String>, ToolchainError> {
    match docker.inspect_image(name).await {
        Ok(image) => {
            let labels = image.config.as_ref().and_then(|c| c.labels.as_ref());
            if labels.and_then(|l| l.get(RECIPE_LABEL)).map(String::as_str) == Some(hash) {
                Ok(Some(image.id.unwrap_or_else(|| name.to_string())))
            } else {
                events.setup(format!("{name} was built from another recipe; rebuilding it"));
                Ok(None)
            }
        }
        Err(e) if is_not_found(&e) => Ok(None),
        Err(e) => Err(ToolchainError::engine(Operation::Inspect, name, &e)),
    }
}

async fn image_id(docker: &Docker, name: &str, operation: Operation) -> Result<String, ToolchainError> {
    let image = docker.inspect_image(name).await.map_err(|e| ToolchainError::engine(operation, name, &e))?;
    Ok(image.id.unwrap_or_else(|| name.to_string()))
}

/// debootstrap into a temporary directory, then import it as `name`. Returns the image ID.
async fn build_base(docker: &Docker, name: &str, hash: &str, events: &EventSink) -> Result<String, ToolchainError> {
    if find_program("debootstrap").is_none() {
        return Err(ToolchainError::new(
            Operation::Debootstrap,
            name,
            "`debootstrap` is not installed on this host",
            "Install it (`apt-get install -y debootstrap`), or run through `scripts/with-engine.sh`, which does",
        ));
    }
    TempRootfs::remove_abandoned();
    let mut rootfs = TempRootfs::create(name)?;
    events.setup(format!(
        "building local stand-in {name}: debootstrap Debian bookworm into {} (1 to 3 min)",
        rootfs.path.display()
    ));
    let started = Instant::now();
    run_rootfs_script(&rootfs.path, name).await?;
    events.setup(format!("debootstrap finished in {:.1} s", started.elapsed().as_secs_f64()));

    let started = Instant::now();
    import(docker, &rootfs.path, name, hash).await?;
    events.setup(format!("imported {name} in {:.1} s", started.elapsed().as_secs_f64()));
    if let Err(e) = rootfs.remove() {
        events.notice(format!("could not remove {}: {e}; delete it by hand", rootfs.path.display()));
    }
    image_id(docker, name, Operation::Import).await
}

async fn run_rootfs_script(rootfs: &Path, name: &str) -> Result<(), ToolchainError> {
    let fail = |message: String| ToolchainError::new(Operation::Debootstrap, name, message, NETWORK_HINT);
    let child = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(ROOTFS_SCRIPT)
        .arg("rootfs.sh")
        .arg(rootfs)
        .env("PATH", search_path())
        .env("DEBIAN_FRONTEND", "noninteractive")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| fail(format!("cannot start sh: {e}")))?;
    let output = match timeout(DEBOOTSTRAP_TIMEOUT, child.wait_with_output()).await {
        Err(_) => return Err(fail(format!("not finished after {} min", DEBOOTSTRAP_TIMEOUT.as_secs() / 60))),
        Ok(Err(e)) => return Err(fail(format!("waiting for debootstrap: {e}"))),
        Ok(Ok(output)) => output,
    };
    if output.status.success() {
        return Ok(());
    }
    // debootstrap's own log names the failing package; it is deleted with the directory, so quote it now.
    let log = std::fs::read_to_string(rootfs.join("debootstrap/debootstrap.log")).unwrap_or_default();
    let stderr = String::from_utf8_lossy(&output.stderr);
    Err(fail(format!("{} ({})", output.status, last_lines(&[&stderr, &log], 4))))
}

/// Streams a tar of `rootfs` into the engine's image import, as `docker import` does.
async fn import(docker: &Docker, rootfs: &Path, name: &str, hash: &str) -> Result<(), ToolchainError> {
    let fail = |message: String| ToolchainError::new(Operation::Import, name, message, "See the message");
    let mut tar = tokio::process::Command::new("tar")
        .arg("--numeric-owner")
        .arg("-C")
        .arg(rootfs)
        .args(["-cf", "-", "."])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| fail(format!("cannot start tar: {e}")))?;
    let Some(stdout) = tar.stdout.take() else {
        return Err(fail("tar's output is not readable".into()));
    };
    let body = futures_util::stream::unfold(Some(stdout), |state| async move {
        let mut out = state?;
        let mut buf = vec![0u8; 256 * 1024];
        match out.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(buf.into()), Some(out)))
            }
            Err(e) => Some((Err(e), None)),
        }
    });

    let (repo, tag) = name.rsplit_once(':').unwrap_or((name, "latest"));
    let mut changes: Vec<String> = BASE_CHANGES.iter().map(|c| c.to_string()).collect();
    changes.push(format!("LABEL {STAND_IN_LABEL}=true"));
    changes.push(format!("LABEL {RECIPE_LABEL}={hash}"));
    let options = CreateImageOptionsBuilder::new().from_src("-").repo(repo).tag(tag).changes(changes).build();
    let mut replies = docker.create_image(Some(options), Some(body_try_stream(body)), None);
    let imported = timeout(IMPORT_TIMEOUT, async {
        while let Some(reply) = replies.next().await {
            reply?;
        }
        Ok::<(), bollard::errors::Error>(())
    })
    .await;
    let tar_output = tar.wait_with_output().await;

    match imported {
        Err(_) => return Err(fail(format!("not finished after {} min", IMPORT_TIMEOUT.as_secs() / 60))),
        Ok(Err(e)) => return Err(ToolchainError::engine(Operation::Import, name, &e)),
        Ok(Ok(())) => {}
    }
    let tar_error = match tar_output {
        Ok(output) if output.status.success() => None,
        Ok(output) => {
            Some(format!("tar {}: {}", output.status, last_lines(&[&String::from_utf8_lossy(&output.stderr)], 2)))
        }
        Err(e) => Some(format!("waiting for tar: {e}")),
    };
    if let Some(message) = tar_error {
        // The engine took whatever tar sent before it failed; an incomplete base must not stay behind.
        let _ = docker.remove_image(name, Some(RemoveImageOptionsBuilder::new().force(true).build()), None).await;
        return Err(fail(message));
    }
    Ok(())
}

/// What to build a stand-in as: its name, build arguments, and the labels that say what it is.
pub(super) struct BuildSpec<'a> {
    pub name: &'a str,
    pub build_args: HashMap<&'a str, &'a str>,
    /// The Go modules its programs were built from, for [`BUILT_FROM_LABEL`].
    pub built_from: Option<&'a str>,
    /// The recipe hash, for [`RECIPE_LABEL`].
    pub hash: &'a str,
}

/// Builds a stand-in from a Dockerfile context. Returns the image ID.
pub(super) async fn build(
    docker: &Docker,
    spec: &BuildSpec<'_>,
    context: Context,
    events: &EventSink,
) -> Result<String, ToolchainError> {
    let name = spec.name;
    let context = context.finish().map_err(|e| {
        ToolchainError::new(Operation::Build, name, format!("cannot pack the build context: {e}"), "See the message")
    })?;
    let mut labels = HashMap::from([(STAND_IN_LABEL, "true"), (RECIPE_LABEL, spec.hash)]);
    if let Some(from) = spec.built_from {
        labels.insert(BUILT_FROM_LABEL, from);
    }
    let options = BuildImageOptionsBuilder::new()
        .t(name)
        .buildargs(&spec.build_args)
        .labels(&labels)
        .rm(true)
        .forcerm(true)
        .build();
    match spec.build_args.get("BASE") {
        Some(base) => events.setup(format!("building local stand-in {name} FROM {base}")),
        None => events.setup(format!("building local stand-in {name}")),
    }
    let started = Instant::now();
    let mut output = docker.build_image(options, None, Some(body_full(context.into())));
    let mut tail: VecDeque<String> = VecDeque::new();
    loop {
        let item = match timeout(BUILD_IDLE_TIMEOUT, output.next()).await {
            Err(_) => {
                return Err(ToolchainError::new(
                    Operation::Build,
                    name,
                    format!("no output for {} min", BUILD_IDLE_TIMEOUT.as_secs() / 60),
                    NETWORK_HINT,
                ))
            }
            Ok(None) => break,
            Ok(Some(item)) => item,
        };
        match item {
            Ok(info) => {
                for line in info.stream.iter().flat_map(|s| s.lines()).map(str::trim).filter(|l| !l.is_empty()) {
                    if line.starts_with("Step ") {
                        events.setup(format!("{name}: {line}"));
                    }
                    if tail.len() == 4 {
                        tail.pop_front();
                    }
                    tail.push_back(line.to_string());
                }
            }
            Err(e) => {
                let tail: Vec<&str> = tail.iter().map(String::as_str).collect();
                let message = format!("{} (last output: {})", crate::resources::engine_message(&e), tail.join(" | "));
                return Err(ToolchainError::new(Operation::Build, name, message, NETWORK_HINT));
            }
        }
    }
    events.setup(format!("built {name} in {:.1} s", started.elapsed().as_secs_f64()));
    image_id(docker, name, Operation::Build).await
}

/// A build context: the Dockerfile, and files given as text, read from disk, or copied from a directory tree.
pub(super) struct Context {
    archive: tar::Builder<Vec<u8>>,
    /// The first error met while adding; reported by [`Context::finish`].
    error: Option<std::io::Error>,
}

impl Context {
    pub(super) fn new(dockerfile: &str) -> Self {
        let mut context = Context { archive: tar::Builder::new(Vec::new()), error: None };
        context.text("Dockerfile", dockerfile);
        context
    }

    /// A file with `content`; scripts (`*.sh`) are executable.
    pub(super) fn text(&mut self, path: &str, content: &str) {
        let mode = if path.ends_with(".sh") { 0o755 } else { 0o644 };
        self.bytes(path, content.as_bytes(), mode);
    }

    pub(super) fn bytes(&mut self, path: &str, content: &[u8], mode: u32) {
        let mut header = tar::Header::new_gnu();
        header.set_size(content.len() as u64);
        header.set_mode(mode);
        header.set_cksum();
        if let Err(e) = self.archive.append_data(&mut header, path, content) {
            self.error.get_or_insert(e);
        }
    }

    /// A file read from `source`, with `mode`.
    pub(super) fn file(&mut self, path: &str, source: &Path, mode: u32) {
        match std::fs::read(source) {
            Ok(content) => self.bytes(path, &content, mode),
            Err(e) => {
                self.error.get_or_insert(std::io::Error::new(e.kind(), format!("{}: {e}", source.display())));
            }
        }
    }

    /// The named Go binaries at the context's root, executable.
    pub(super) fn binaries(&mut self, binaries: &GoBinaries, names: &[&str]) {
        for name in names {
            self.file(name, &binaries.dir.join(name), 0o755);
        }
    }

    /// Every file under `dir` as `prefix/…`, executable when `executable(relative path)` says so.
    pub(super) fn tree(&mut self, prefix: &str, dir: &Path, executable: &dyn Fn(&str) -> bool) {
        let mut pending = vec![dir.to_path_buf()];
        while let Some(current) = pending.pop() {
            let entries = match std::fs::read_dir(&current) {
                Ok(entries) => entries,
                Err(e) => {
                    self.error.get_or_insert(std::io::Error::new(e.kind(), format!("{}: {e}", current.display())));
                    return;
                }
            };
            let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
            paths.sort();
            for path in paths {
                if path.is_dir() {
                    pending.push(path);
                    continue;
                }
                let relative = path.strip_prefix(dir).unwrap_or(&path).to_string_lossy().into_owned();
                let mode = if executable(&relative) { 0o755 } else { 0o644 };
                self.file(&format!("{prefix}/{relative}"), &path, mode);
            }
        }
    }

    pub(super) fn finish(self) -> std::io::Result<Vec<u8>> {
        match self.error {
            Some(e) => Err(e),
            None => self.archive.into_inner(),
        }
    }
}

/// The Dockerfile, the recipe's files and the Go binaries (at the context's root, executable).
fn recipe_context(recipe: &Recipe, binaries: Option<&GoBinaries>) -> Context {
    let mut context = Context::new(recipe.dockerfile);
    for (file, content) in recipe.files {
        context.text(file, content);
    }
    if let Some(binaries) = binaries {
        context.binaries(binaries, &binaries.names);
    }
    context
}

/// What a stand-in's label says it was built from (Go programs' module and version), if anything.
async fn built_from_label(docker: &Docker, name: &str) -> Option<String> {
    let image = docker.inspect_image(name).await.ok()?;
    image.config?.labels?.get(BUILT_FROM_LABEL).cloned()
}


/// PATH plus the sbin directories: debootstrap lives in /usr/sbin, which non-login shells may not search.
fn search_path() -> String {
    let path = std::env::var("PATH").unwrap_or_default();
    format!("{path}:/usr/local/sbin:/usr/sbin:/sbin")
}

fn find_program(program: &str) -> Option<PathBuf> {
    search_path().split(':').filter(|d| !d.is_empty()).map(|d| Path::new(d).join(program)).find(|p| p.is_file())
}

/// A debootstrap target, deleted when done, never through a mount left inside it.
struct TempRootfs {
    path: PathBuf,
    removed: bool,
}

impl TempRootfs {
    const PREFIX: &'static str = "layerbench-rootfs-";

    fn create(image: &str) -> Result<Self, ToolchainError> {
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
        let path = std::env::temp_dir().join(format!("{}{}-{nanos}", Self::PREFIX, std::process::id()));
        let created = std::fs::create_dir_all(&path).and_then(|()| path.canonicalize());
        match created {
            Ok(path) => Ok(TempRootfs { path, removed: false }),
            Err(e) => Err(ToolchainError::new(
                Operation::Debootstrap,
                image,
                format!("cannot create {}: {e}", path.display()),
                "Point TMPDIR at a writable directory with 1 GB free",
            )),
        }
    }

    /// Deletes what a killed layerbench left behind: 300 MB each. The owner's PID is in the name.
    fn remove_abandoned() {
        let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else { return };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(pid) = name.strip_prefix(Self::PREFIX).and_then(|rest| rest.split('-').next()) else { continue };
            if !Path::new("/proc").join(pid).exists() {
                let _ = TempRootfs { path: entry.path(), removed: false }.remove();
            }
        }
    }

    fn remove(&mut self) -> std::io::Result<()> {
        if self.removed {
            return Ok(());
        }
        self.removed = true;
        // debootstrap mounts /proc and /sys (and may bind /dev) inside the target; deleting through a mount
        // that an interrupted debootstrap left behind would delete the host's files.
        let path = self.path.canonicalize()?;
        for mount in mounts_under(&path)?.iter().rev() {
            let _ = std::process::Command::new("umount").arg("-l").arg(mount).status();
        }
        let left = mounts_under(&path)?;
        if !left.is_empty() {
            return Err(std::io::Error::other(format!("still mounted inside it: {}", left.join(", "))));
        }
        std::fs::remove_dir_all(&path)
    }
}

impl Drop for TempRootfs {
    fn drop(&mut self) {
        let _ = self.remove();
    }
}

/// Mount points at or below `dir`, outermost first.
fn mounts_under(dir: &Path) -> std::io::Result<Vec<String>> {
    let table = std::fs::read_to_string("/proc/self/mounts")?;
    let dir = dir.to_string_lossy();
    let inside = format!("{dir}/");
    Ok(table
        .lines()
        .filter_map(|line| line.split_whitespace().nth(1))
        .filter(|point| *point == dir || point.starts_with(&inside))
        .map(str::to_string)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stand_in_names_keep_the_official_tag() {
        let name = |role, official| stand_in_name("layerbench-local", role, official);
        assert_eq!(name(Role::Base, "python:3.11-slim"), "layerbench-local/python:3.11-slim");
        assert_eq!(name(Role::Dind, "docker:28-dind"), "layerbench-local/dind:28-dind");
        assert_eq!(name(Role::Registry, "registry"), "layerbench-local/registry:latest");
        assert_eq!(name(Role::Buildah, "quay.io/buildah/stable:v1.28"), "layerbench-local/buildah:v1.28");
        assert_eq!(name(Role::Base, "localhost:5000/acme/python@sha256:ab"), "layerbench-local/python:latest");
    }

    #[test]
    fn every_role_but_the_base_has_a_recipe_and_go_programs_come_with_their_dockerfile() {
        for role in [Role::Dind, Role::Registry, Role::Buildah, Role::Job, Role::Kaniko, Role::Buildkit] {
            let recipe = recipe(role).expect("recipe");
            assert!(recipe.dockerfile.contains("FROM ${BASE}"), "{role} must build FROM the base stand-in");
            for binary in recipe.go.map(|go| go.binaries()).unwrap_or_default() {
                let copied = recipe.dockerfile.lines().any(|l| l.starts_with("COPY ") && l.split_whitespace().any(|w| w == binary));
                assert!(copied, "{role}: the Dockerfile must copy {binary} from the context");
            }
        }
        assert!(recipe(Role::Base).is_none());
    }

    #[test]
    fn recipe_hash_changes_with_any_part() {
        let hash = recipe_hash(&["dind", "FROM x", "sha256:1"]);
        assert_eq!(hash, recipe_hash(&["dind", "FROM x", "sha256:1"]));
        assert_ne!(hash, recipe_hash(&["dind", "FROM x", "sha256:2"]));
        assert_ne!(recipe_hash(&["ab", "c"]), recipe_hash(&["a", "bc"]));
    }

    #[test]
    fn context_scripts_are_executable() {
        let context = recipe_context(&recipe(Role::Dind).expect("recipe"), None).finish().expect("tar");
        let mut archive = tar::Archive::new(context.as_slice());
        let modes: HashMap<String, u32> = archive
            .entries()
            .expect("entries")
            .map(|e| {
                let e = e.expect("entry");
                (e.path().expect("path").to_string_lossy().into_owned(), e.header().mode().expect("mode"))
            })
            .collect();
        assert_eq!(modes.get("Dockerfile"), Some(&0o644));
        assert_eq!(modes.get("dockerd-entrypoint.sh"), Some(&0o755));
    }

    #[test]
    fn rootfs_left_by_a_dead_process_is_removed_and_a_live_ones_kept() {
        let dir = |pid: &str| std::env::temp_dir().join(format!("{}{pid}-1", TempRootfs::PREFIX));
        // Above any pid_max Linux allows, so never a live process.
        let (dead, live) = (dir("99999999"), dir(&std::process::id().to_string()));
        for d in [&dead, &live] {
            std::fs::create_dir_all(d.join("etc")).unwrap();
        }
        TempRootfs::remove_abandoned();
        let (dead_gone, live_kept) = (!dead.exists(), live.exists());
        std::fs::remove_dir_all(&live).unwrap();
        assert!(dead_gone && live_kept, "dead removed: {dead_gone}, live kept: {live_kept}");
    }

    #[test]
    fn mounts_inside_a_directory_are_found() {
        // /proc is always mounted; a sibling with the same prefix must not count.
        assert_eq!(mounts_under(Path::new("/proc")).expect("mount table").first().map(String::as_str), Some("/proc"));
        assert!(mounts_under(Path::new("/pro")).expect("mount table").is_empty());
    }
}
