//! Go programs built from their modules, for the stand-ins of images that no Debian package carries
//! (kaniko's executor, BuildKit's buildkitd and buildctl).
//!
//! Each program is built from a wrapper module of layerbench's own (`toolchain/<role>/go.mod` and
//! `go.sum`): it requires the release and names the commands as `tool`s, so every dependency is pinned by
//! the committed `go.sum`, and the release's own `replace` and `exclude` directives (which make
//! `go install MODULE@VERSION` refuse BuildKit) do not apply. The module cache, Go's build cache and the
//! binaries live under [`GoCache::locate`], outside any checkout, so a second run reuses them; a changed
//! wrapper, flag or Go version builds anew.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::time::timeout;

use super::{Operation, ToolchainError};
use crate::events::EventSink;

/// Building BuildKit cold took about 6 min on 2 cores; a slow module proxy may take several times that.
const GO_BUILD_TIMEOUT: Duration = Duration::from_secs(45 * 60);

/// Where the module proxy must be reachable from, and what to do when it is not.
const GO_HINT: &str = "Check that the Go module proxy (GOPROXY, proxy.golang.org by default) is reachable, \
                       or make the official image available to the engine (docker pull or docker load)";

/// How to build one stand-in's Go programs.
#[derive(Debug, Clone, Copy)]
pub struct GoRecipe {
    /// The module the programs come from, and its release: what `run.json` says an image was built from.
    pub module: &'static str,
    pub version: &'static str,
    /// The wrapper module: `go.mod` requiring the release with a `tool` line per program, and its `go.sum`.
    pub go_mod: &'static str,
    pub go_sum: &'static str,
    /// The packages to build; each binary is named after the package's last path element.
    pub packages: &'static [&'static str],
    /// `go build -tags`.
    pub tags: &'static str,
    /// `go build -ldflags`: the version variables the release's own build sets, so the programs report it.
    pub ldflags: &'static str,
    /// Further files of the wrapper (path under it, contents): a module its `go.mod` replaces with a directory,
    /// where the module proxy does not serve a dependency that the release imports but layerbench never runs.
    pub files: &'static [(&'static str, &'static str)],
}

impl GoRecipe {
    /// `MODULE@VERSION`.
    pub fn built_from(&self) -> String {
        format!("{}@{}", self.module, self.version)
    }

    /// The binaries' file names, in the order of `packages`: the package path's last element, as `go build`
    /// names them, which skips a major-version suffix (`go.etcd.io/etcd/server/v3` builds `server`).
    pub fn binaries(&self) -> Vec<&'static str> {
        self.packages.iter().map(|p| binary_name(p)).collect()
    }

    /// Everything that decides the binaries' bytes; `go_version` is what `go env GOVERSION` printed.
    pub fn hash_parts(&self) -> Vec<&str> {
        let mut parts = vec![self.module, self.version, self.go_mod, self.go_sum, self.tags, self.ldflags];
        parts.extend(self.packages);
        for (path, contents) in self.files {
            parts.extend([*path, *contents]);
        }
        parts
    }
}

/// Binaries built from a [`GoRecipe`], ready to copy into a build context.
#[derive(Debug, Clone)]
pub struct GoBinaries {
    pub dir: PathBuf,
    pub names: Vec<&'static str>,
    /// `go1.26.8`.
    pub go_version: String,
}

impl GoBinaries {
    /// What an image built from these binaries was built from, for its label and `run.json`.
    pub fn built_from(&self, recipe: &GoRecipe) -> String {
        format!("{} (go build, {})", recipe.built_from(), self.go_version)
    }
}

/// The directory holding Go's module cache, build cache and the built binaries.
pub struct GoCache {
    root: PathBuf,
}

impl GoCache {
    /// `$LAYERBENCH_CACHE_DIR/go`; else `/var/lib/layerbench/go` when that state directory (which
    /// `scripts/with-engine.sh` creates) is writable; else `~/.cache/layerbench/go`.
    pub fn locate() -> GoCache {
        let root = match std::env::var_os("LAYERBENCH_CACHE_DIR") {
            Some(dir) if !dir.is_empty() => PathBuf::from(dir),
            _ => {
                let state = Path::new("/var/lib/layerbench");
                if writable(state) {
                    state.to_path_buf()
                } else {
                    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(std::env::temp_dir);
                    std::env::var_os("XDG_CACHE_HOME").map(PathBuf::from).unwrap_or(home.join(".cache")).join("layerbench")
                }
            }
        };
        GoCache { root: root.join("go") }
    }

    /// The recipe's binaries: reused when built before from the same inputs, built now otherwise.
    pub async fn binaries(&self, recipe: &GoRecipe, image: &str, events: &EventSink) -> Result<GoBinaries, ToolchainError> {
        let fail = |message: String, hint: &str| ToolchainError::new(Operation::GoBuild, image, message, hint);
        let go = find_go().ok_or_else(|| {
            fail(
                "no `go` command was found (PATH, /usr/local/go/bin)".into(),
                "Install Go 1.26 or later (https://go.dev/doc/install), or make the official image available to the engine",
            )
        })?;
        let go_version = go_version(&go).await.map_err(|e| fail(e, "Check the Go installation"))?;
        let mut parts = recipe.hash_parts();
        parts.push(&go_version);
        let hash = short_hash(&parts);
        let dir = self.root.join("bin").join(format!("{}-{}-{hash}", recipe.binaries()[0], recipe.version));
        let names = recipe.binaries();
        if names.iter().all(|n| dir.join(n).is_file()) {
            return Ok(GoBinaries { dir, names, go_version });
        }
        let source = self.root.join("src").join(format!("{}-{hash}", names[0]));
        let staging = self.root.join("bin").join(format!(".{}-{hash}.{}", names[0], std::process::id()));
        let prepared = std::fs::create_dir_all(&source)
            .and_then(|()| std::fs::write(source.join("go.mod"), recipe.go_mod))
            .and_then(|()| std::fs::write(source.join("go.sum"), recipe.go_sum))
            .and_then(|()| write_files(&source, recipe.files))
            .and_then(|()| std::fs::create_dir_all(&staging));
        prepared.map_err(|e| {
            fail(format!("cannot prepare {}: {e}", self.root.display()), "Point LAYERBENCH_CACHE_DIR at a writable directory")
        })?;
        events.setup(format!(
            "building {} from {} with {go_version} into {} (several minutes the first time)",
            names.join(", "),
            recipe.built_from(),
            dir.display()
        ));
        let started = Instant::now();
        let built = self.go_build(&go, recipe, &source, &staging).await;
        let result = built.map_err(|e| fail(e, GO_HINT)).and_then(|()| {
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::rename(&staging, &dir).map_err(|e| fail(format!("cannot move the binaries to {}: {e}", dir.display()), "See the message"))
        });
        if result.is_err() {
            let _ = std::fs::remove_dir_all(&staging);
        }
        result?;
        events.setup(format!("built {} in {:.1} s", names.join(", "), started.elapsed().as_secs_f64()));
        Ok(GoBinaries { dir, names, go_version })
    }

    /// The source of `recipe`'s module as the module cache holds it (for files that are not Go programs, such
    /// as kind's node files or Kubernetes' pause.c); downloaded when the cache lacks it.
    pub async fn module_source(&self, recipe: &GoRecipe, image: &str) -> Result<PathBuf, ToolchainError> {
        let dir = self.root.join("mod").join(format!("{}@{}", escape_module_path(recipe.module), recipe.version));
        if dir.is_dir() {
            return Ok(dir);
        }
        let fail = |message: String| ToolchainError::new(Operation::GoBuild, image, message, GO_HINT);
        let go = find_go().ok_or_else(|| fail("no `go` command was found (PATH, /usr/local/go/bin)".into()))?;
        let output = tokio::process::Command::new(go)
            .args(["mod", "download", &recipe.built_from()])
            .current_dir(&self.root)
            .env("GOPATH", self.root.join("gopath"))
            .env("GOMODCACHE", self.root.join("mod"))
            .env("GOCACHE", self.root.join("build-cache"))
            .env("GOWORK", "off")
            .env("GO111MODULE", "on")
            .stdin(Stdio::null())
            .output()
            .await
            .map_err(|e| fail(format!("cannot run go mod download: {e}")))?;
        if !output.status.success() || !dir.is_dir() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            return Err(fail(format!("go mod download {}: {}", recipe.built_from(), super::last_lines(&[&stderr], 3))));
        }
        Ok(dir)
    }

    async fn go_build(&self, go: &Path, recipe: &GoRecipe, source: &Path, out: &Path) -> Result<(), String> {
        let mut command = tokio::process::Command::new(go);
        command
            .current_dir(source)
            .args(["build", "-trimpath", "-tags", recipe.tags, "-ldflags", recipe.ldflags, "-o"])
            .arg(format!("{}/", out.display()))
            .args(recipe.packages)
            // Everything Go keeps goes under the cache directory, whatever HOME is (or whether it is set).
            .env("GOPATH", self.root.join("gopath"))
            .env("GOMODCACHE", self.root.join("mod"))
            .env("GOCACHE", self.root.join("build-cache"))
            // Static binaries: the stand-ins run them on a scratch or Debian root filesystem alike.
            .env("CGO_ENABLED", "0")
            // The committed go.sum is the whole truth; nothing may be added or upgraded on the way.
            .env("GOFLAGS", "-mod=readonly")
            .env("GOWORK", "off")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let child = command.spawn().map_err(|e| format!("cannot start {}: {e}", go.display()))?;
        let output = match timeout(GO_BUILD_TIMEOUT, child.wait_with_output()).await {
            Err(_) => return Err(format!("go build did not finish within {} min", GO_BUILD_TIMEOUT.as_secs() / 60)),
            Ok(Err(e)) => return Err(format!("waiting for go build: {e}")),
            Ok(Ok(output)) => output,
        };
        if output.status.success() {
            return Ok(());
        }
        let stderr = String::from_utf8_lossy(&output.stderr);
        Err(format!("go build {}: {}", output.status, super::last_lines(&[&stderr], 4)))
    }
}

/// The wrapper's further files, each under `dir` (their directories made).
fn write_files(dir: &Path, files: &[(&str, &str)]) -> std::io::Result<()> {
    for (path, contents) in files {
        let path = dir.join(path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(path, contents)?;
    }
    Ok(())
}

fn binary_name(package: &'static str) -> &'static str {
    let mut elements = package.rsplit('/');
    let last = elements.next().unwrap_or(package);
    let major_suffix = last.len() > 1 && last.starts_with('v') && last[1..].bytes().all(|b| b.is_ascii_digit());
    match (major_suffix, elements.next()) {
        (true, Some(previous)) => previous,
        _ => last,
    }
}

fn writable(dir: &Path) -> bool {
    let probe = dir.join(format!(".layerbench-probe-{}", std::process::id()));
    let ok = std::fs::write(&probe, b"").is_ok();
    let _ = std::fs::remove_file(&probe);
    ok
}

/// The module cache's spelling of a module path: capitals become `!` and the lower-case letter.
fn escape_module_path(module: &str) -> String {
    let mut escaped = String::with_capacity(module.len());
    for c in module.chars() {
        if c.is_ascii_uppercase() {
            escaped.push('!');
            escaped.push(c.to_ascii_lowercase());
        } else {
            escaped.push(c);
        }
    }
    escaped
}

/// `go` on PATH, else where the official tarball installs it.
fn find_go() -> Option<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    path.split(':')
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .chain([PathBuf::from("/usr/local/go/bin")])
        .map(|d| d.join("go"))
        .find(|p| p.is_file())
}

async fn go_version(go: &Path) -> Result<String, String> {
    let output = tokio::process::Command::new(go)
        .args(["env", "GOVERSION"])
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(|e| format!("cannot run {} env GOVERSION: {e}", go.display()))?;
    let version = String::from_utf8_lossy(&output.stdout).trim().to_string();
    if !output.status.success() || version.is_empty() {
        return Err(format!("{} env GOVERSION failed: {}", go.display(), String::from_utf8_lossy(&output.stderr).trim()));
    }
    Ok(version)
}

/// 16 hex digits of the stand-ins' recipe hash over `parts`: enough to tell builds apart in a file name.
fn short_hash(parts: &[&str]) -> String {
    super::recipe_hash(parts)[..16].to_string()
}

#[cfg(test)]
mod tests {
    #[test]
    fn binaries_are_named_after_their_packages() {
        let recipe = super::super::stand_in::go_recipe(super::super::Role::Buildkit).expect("a Go recipe");
        assert_eq!(recipe.binaries(), ["buildkitd", "buildctl"]);
        assert_eq!(recipe.built_from(), "github.com/moby/buildkit@v0.34.2");
    }

    #[test]
    fn a_wrappers_own_files_are_part_of_its_recipe_and_no_files_change_nothing() {
        let plain = super::super::stand_in::go_recipe(super::super::Role::Buildkit).expect("a Go recipe");
        let with_files = super::GoRecipe { files: &[("stub/go.mod", "module example.com/stub\n")], ..plain };
        let other_files = super::GoRecipe { files: &[("stub/go.mod", "module example.com/other\n")], ..plain };
        // Recipes without files hash what they hashed before files existed (the six fields and the packages),
        // so nothing already built is built again.
        assert_eq!(plain.hash_parts().len(), 6 + plain.packages.len());
        assert_ne!(with_files.hash_parts(), plain.hash_parts());
        assert_ne!(with_files.hash_parts(), other_files.hash_parts());
        let dir = tempfile::tempdir().unwrap();
        super::write_files(dir.path(), with_files.files).unwrap();
        assert_eq!(std::fs::read_to_string(dir.path().join("stub/go.mod")).unwrap(), "module example.com/stub\n");
    }

    #[test]
    fn binary_names_skip_a_major_version_suffix_as_go_build_does() {
        assert_eq!(super::binary_name("go.etcd.io/etcd/server/v3"), "server");
        assert_eq!(super::binary_name("k8s.io/kubernetes/cmd/kubeadm"), "kubeadm");
        assert_eq!(super::binary_name("sigs.k8s.io/kind"), "kind");
        assert_eq!(super::binary_name("example.com/v"), "v");
        assert_eq!(super::escape_module_path("github.com/GoogleContainerTools/kaniko"), "github.com/!google!container!tools/kaniko");
    }

    #[test]
    fn each_wrapper_module_requires_the_release_it_claims_and_names_every_package_as_a_tool() {
        for role in [super::super::Role::Kaniko, super::super::Role::Buildkit] {
            let recipe = super::super::stand_in::go_recipe(role).expect("a Go recipe");
            let required = format!("\t{} {}", recipe.module, recipe.version);
            assert!(recipe.go_mod.lines().any(|l| l.starts_with(&required)), "{role}: go.mod must require {required}");
            for package in recipe.packages {
                assert!(recipe.go_mod.contains(package), "{role}: {package} is not a tool of the wrapper");
            }
            assert!(recipe.ldflags.contains(recipe.version), "{role}: the binaries must report {}", recipe.version);
        }
    }
}
