//! The builders a CI job's script runs (buildah, kaniko, docker buildx, buildctl): each one's command, log
//! format and phase marks; and the daemons they drive (dind, buildkitd).
//!
//! Both backends run a job container (a container on the engine, a pod on Kubernetes) from what
//! [`job_command`] returns: the builder's home is here, the backends only place it and follow its log.

mod buildah;
mod buildctl;
pub mod buildkitd;
mod buildx;
pub mod dind;
mod job_log;
mod kaniko;

pub use job_log::{FinishedLog, JobLog};

use std::path::Path;

use crate::builder_log::LogFormat;
use crate::strategy::{BuildRequest, CacheExport, CacheImport, DaemonlessBuilder, Phase};

/// Where the build context is unpacked in a job container.
pub const CONTEXT_DIR: &str = "/workspace";

/// Printed by a job script when it enters a phase: `::layerbench-phase push`. The follower times
/// phases by when these lines arrive.
pub const PHASE_MARK: &str = "::layerbench-phase ";

/// What a job container can reach, by the names the run's network gives them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Endpoints<'a> {
    /// The strategy's CI registry, `host:port`, plain HTTP.
    pub registry: &'a str,
    /// The read-only Docker Hub mirror, `host:port`, plain HTTP; `None` to use Docker Hub itself.
    pub hub_mirror: Option<&'a str>,
    /// The job's daemon, for builders that drive one (`tcp://docker:2375`, `tcp://buildkitd:1234`).
    pub daemon_host: Option<&'a str>,
}

/// How to run one build in a job container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobCommand {
    /// Replaces the image's entry point when set.
    pub entrypoint: Option<Vec<String>>,
    /// The container's arguments (a script for `sh -c`, or the builder's own flags).
    pub args: Vec<String>,
    /// `KEY=value` pairs the builder needs.
    pub env: Vec<String>,
    /// How to read its log.
    pub log: LogFormat,
    /// Where the builder keeps its local storage, given a fresh volume per job (`None`: nowhere).
    pub storage: Option<&'static str>,
    /// How its script reports the builder's version, if it does.
    pub version: Option<VersionLine>,
}

/// A line the job's script prints with its builder's version (`buildah --version` and the like): it
/// starts with `prefix`, and the version is the next word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VersionLine {
    /// The builder's name in `run.json`'s `builder_versions`.
    pub builder: &'static str,
    pub prefix: &'static str,
}

impl VersionLine {
    /// The version `line` reports, if it is this line.
    pub fn version(&self, line: &str) -> Option<String> {
        line.strip_prefix(self.prefix)?.split_whitespace().next().map(str::to_string)
    }
}

/// The job command of `request`, with the Dockerfile at `dockerfile` relative to the context.
/// Every value from the scenario reaches the command as a single argument or a quoted shell word.
pub fn job_command(request: &BuildRequest, dockerfile: &Path, endpoints: &Endpoints) -> JobCommand {
    let dockerfile = format!("{CONTEXT_DIR}/{}", dockerfile.display());
    match request.builder {
        DaemonlessBuilder::Buildah => buildah::command(request, &dockerfile, endpoints),
        DaemonlessBuilder::Kaniko => kaniko::command(request, &dockerfile, endpoints),
        DaemonlessBuilder::Buildx => buildx::command(request, &dockerfile, endpoints),
        DaemonlessBuilder::Buildctl => buildctl::command(request, &dockerfile, endpoints),
    }
}

/// BuildKit's attributes for a cache import (`--cache-from` of buildx, `--import-cache` of buildctl).
fn buildkit_cache_import(import: &CacheImport) -> String {
    let CacheImport::Registry { reference } = import;
    format!("type=registry,ref={reference}")
}

/// BuildKit's attributes for a cache export (`--cache-to` of buildx, `--export-cache` of buildctl).
fn buildkit_cache_export(export: &CacheExport) -> String {
    match export {
        CacheExport::Inline => "type=inline".into(),
        CacheExport::Registry { reference, every_stage } => {
            let mode = if *every_stage { "max" } else { "min" };
            format!("type=registry,ref={reference},mode={mode}")
        }
    }
}

/// A BuildKit client's job (buildx or buildctl): print its version, mark the build, run the one build
/// command that also imports and exports the cache and pushes, with the daemon's address in `host_variable`.
fn buildkit_client_job(
    version_command: &str,
    build: &[String],
    host_variable: &str,
    endpoints: &Endpoints,
    version: VersionLine,
) -> JobCommand {
    let lines = vec![version_command.to_string(), mark(Phase::Build), shell_words(build)];
    let env = endpoints.daemon_host.map(|h| vec![format!("{host_variable}={h}")]).unwrap_or_default();
    JobCommand { entrypoint: shell(), args: script(lines), env, log: LogFormat::Buildkit, storage: None, version: Some(version) }
}

/// The line a script prints to mark the start of `phase`.
fn mark(phase: Phase) -> String {
    format!("echo {}", shell_word(&format!("{PHASE_MARK}{}", phase.name())))
}

/// The phase a log line marks, if it is a phase mark.
pub fn phase_marked(line: &str) -> Option<Phase> {
    let name = line.trim().strip_prefix(PHASE_MARK)?;
    Phase::ALL.into_iter().find(|p| p.name() == name)
}

/// A script for `sh -c`: stop at the first failing command.
fn script(lines: Vec<String>) -> Vec<String> {
    vec![format!("set -e\n{}\n", lines.join("\n"))]
}

/// `sh -c SCRIPT` as an entry point.
fn shell() -> Option<Vec<String>> {
    Some(vec!["sh".into(), "-c".into()])
}

/// One word for a POSIX shell: left bare when it holds only safe characters, else single-quoted.
pub fn shell_word(word: &str) -> String {
    let safe = !word.is_empty()
        && word.bytes().all(|b| b.is_ascii_alphanumeric() || b"@%+=:,./_-".contains(&b));
    if safe {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// Words joined into one shell command line, each quoted as needed.
pub fn shell_words<S: AsRef<str>>(words: &[S]) -> String {
    words.iter().map(|w| shell_word(w.as_ref())).collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(builder: DaemonlessBuilder) -> BuildRequest {
        BuildRequest {
            builder,
            destinations: vec!["registry:5000/s/app:c1".into(), "registry:5000/s/app:latest".into()],
            cache_from: vec![CacheImport::Registry { reference: "registry:5000/s/app-cache".into() }],
            cache_to: Some(CacheExport::Registry { reference: "registry:5000/s/app-cache".into(), every_stage: true }),
        }
    }

    const ENDPOINTS: Endpoints<'static> =
        Endpoints { registry: "registry:5000", hub_mirror: Some("mirror:5000"), daemon_host: Some("tcp://docker:2375") };

    #[test]
    fn hostile_words_stay_one_word() {
        assert_eq!(shell_word("plain/Dockerfile"), "plain/Dockerfile");
        assert_eq!(shell_word("a b"), "'a b'");
        assert_eq!(shell_word("it's"), r"'it'\''s'");
        assert_eq!(shell_word("$(touch /tmp/pwned)"), "'$(touch /tmp/pwned)'");
        assert_eq!(shell_word(""), "''");
        assert_eq!(shell_words(&["buildah", "-t", "a b"]), "buildah -t 'a b'");
    }

    /// Runs the script through a real shell with every command replaced by `printf` of its
    /// arguments, so quoting is proven by what the shell hands the program, not by reading the text.
    #[test]
    fn a_hostile_dockerfile_path_reaches_the_builder_as_one_argument() {
        let path = Path::new("dir with 'quote' $(touch pwned)/Dockerfile");
        for builder in [DaemonlessBuilder::Buildah, DaemonlessBuilder::Buildx, DaemonlessBuilder::Buildctl] {
            let command = job_command(&request(builder), path, &ENDPOINTS);
            let script = &command.args[0];
            let stubbed = format!(
                "buildah() {{ printf '<%s>' \"$@\"; echo; }}\ndocker() {{ printf '<%s>' \"$@\"; echo; }}\nbuildctl() {{ printf '<%s>' \"$@\"; echo; }}\ncat() {{ :; }}\nmkdir() {{ :; }}\n{}",
                script.replace("cat > /etc", "cat > /dev/null; : /etc")
            );
            let dir = tempfile::tempdir().unwrap();
            let out = std::process::Command::new("sh").arg("-c").arg(&stubbed).current_dir(dir.path()).output().unwrap();
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(out.status.success(), "{builder:?}: {}", String::from_utf8_lossy(&out.stderr));
            // buildah's `-f` takes a CSV field (see buildah.rs); buildx's the path itself; buildctl its directory.
            let expected = match builder {
                DaemonlessBuilder::Buildah => "<\"/workspace/dir with 'quote' $(touch pwned)/Dockerfile\">",
                DaemonlessBuilder::Buildctl => "<dockerfile=/workspace/dir with 'quote' $(touch pwned)>",
                _ => "</workspace/dir with 'quote' $(touch pwned)/Dockerfile>",
            };
            assert!(stdout.contains(expected), "{builder:?}: {stdout}");
            assert!(!dir.path().join("pwned").exists(), "{builder:?}: the path ran a command");
        }
        let kaniko = job_command(&request(DaemonlessBuilder::Kaniko), path, &ENDPOINTS);
        assert!(kaniko.args.contains(&"--dockerfile=/workspace/dir with 'quote' $(touch pwned)/Dockerfile".to_string()));
    }

    #[test]
    fn version_lines_give_the_word_after_their_prefix() {
        let buildah = job_command(&request(DaemonlessBuilder::Buildah), Path::new("Dockerfile"), &ENDPOINTS).version.unwrap();
        assert_eq!(buildah.version("buildah version 1.28.2 (image-spec 1.0.2-dev, runtime-spec 1.0.2-dev)").as_deref(), Some("1.28.2"));
        assert_eq!(buildah.version("STEP 1/11: FROM python"), None);
        let buildctl = job_command(&request(DaemonlessBuilder::Buildctl), Path::new("Dockerfile"), &ENDPOINTS).version.unwrap();
        assert_eq!(buildctl.version("buildctl github.com/moby/buildkit v0.34.2 ").as_deref(), Some("v0.34.2"));
    }

    #[test]
    fn phase_marks_round_trip() {
        for phase in Phase::ALL {
            let line = mark(phase);
            let printed = line.strip_prefix("echo ").unwrap().trim_matches('\'');
            assert_eq!(phase_marked(printed), Some(phase));
        }
        assert_eq!(phase_marked("::layerbench-phase nonsense"), None);
        assert_eq!(phase_marked("STEP 1/2: FROM x"), None);
    }
}
