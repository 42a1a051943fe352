//! What every builder's home is made of: the shape of a job command, what a job container can reach, the
//! phase marks its script prints, and quoting for the shell it runs in.

use crate::cause::Cause;
use crate::strategy::{BuildRequest, ImageStore, Phase, Privileges};
use crate::toolchain::Role;

/// What a job-container builder is, in one place for both backends.
pub struct BuilderHome {
    /// Its name in messages and `run.json`'s `builder_versions`.
    pub name: &'static str,
    /// The toolchain image its job container runs.
    pub role: Role,
    /// What its job container needs beyond a plain container.
    pub privileges: fn() -> Privileges,
    /// Its job command for one build, with the Dockerfile at the given path inside the container.
    pub command: fn(&BuildRequest, &str, &Endpoints) -> JobCommand,
    /// Instructions (by keyword) it never serves from its cache, whatever the strategy, and why.
    pub uncached: &'static [(&'static str, Cause)],
    /// Its image's own entry point, which runs a job command that sets none (kaniko's executor).
    pub image_entrypoint: &'static [&'static str],
}

/// What a daemon is, in one place for both backends: the backends place its container or pod, and read
/// everything else here.
pub struct DaemonHome {
    /// What the report and progress lines call it (`dind`, `buildkitd`).
    pub service_name: &'static str,
    /// The toolchain image it runs.
    pub role: Role,
    /// Where it keeps its images and cache: a volume of its own.
    pub state_dir: &'static str,
    /// The port its API listens on, plain TCP without TLS, reachable only where the backend allows.
    pub api_port: u16,
    /// What its container needs.
    pub privileges: fn() -> Privileges,
    /// Its arguments, environment, configuration file and further volumes where it runs.
    pub launch: fn(&DaemonSetup) -> DaemonLaunch,
    /// A command that succeeds inside its container once it is ready to build (a readiness probe).
    pub ready_check: &'static [&'static str],
    /// How its version is read inside its container, for `run.json`.
    pub version: DaemonVersion,
    /// The name a job's own daemon answers to, as a CI service's alias (`docker`, which CI jobs' DOCKER_HOST names).
    pub job_alias: &'static str,
    /// The name a strategy's shared daemon answers to.
    pub shared_alias: &'static str,
}

impl DaemonHome {
    /// How a job's builder addresses the daemon at `host` (its DOCKER_HOST or BUILDKIT_HOST).
    pub fn address(&self, host: &str) -> String {
        format!("tcp://{host}:{}", self.api_port)
    }

    /// The commands, run inside its container once it is up, that close its API to everything that does not
    /// come in over its network interface (`eth0`): to what its own build steps run. A dind's steps sit behind
    /// its bridge, a buildkitd's share its network namespace and arrive on the loopback. IPv6 too: Go daemons
    /// listening on `0.0.0.0` also listen on `[::1]`. REJECT (a reset) rather than DROP, so a probe fails at
    /// once. With `loopback_open`, the loopback stays open: for a daemon whose steps never share its network
    /// namespace (a dind) and that the harness reaches by a port-forward, which arrives there.
    ///
    /// A step's connection that leaves by `eth0` and comes back is closed on its way out: on Kubernetes a step
    /// that dials its daemon's Service is translated outside the pod and returns on `eth0` from the node's
    /// address, which the pod's NetworkPolicy admits as the node's (found by the fence probe in
    /// tests/kube_cluster.rs). So no connection to a daemon API port leaves the daemon's container: not from a
    /// dind's steps (forwarded from its bridge), nor from a buildkitd's steps (its own output, loopback aside).
    /// The daemons themselves never dial an API port: they talk to registries.
    pub fn fence(&self, loopback_open: bool) -> Vec<Vec<String>> {
        let own = self.api_port.to_string();
        let mut rules = vec![];
        for iptables in ["iptables", "ip6tables"] {
            let rule = |chain: &str, port: &str, action: &[&str]| -> Vec<String> {
                [iptables, "-I", chain, "-p", "tcp", "--dport", port].iter().chain(action).map(|w| w.to_string()).collect()
            };
            rules.push(rule("INPUT", &own, &["!", "-i", "eth0", "-j", "REJECT", "--reject-with", "tcp-reset"]));
            if loopback_open {
                // Inserted after, so it comes first in the chain.
                rules.push(rule("INPUT", &own, &["-i", "lo", "-j", "ACCEPT"]));
            }
            for port in API_PORTS.map(|p| p.to_string()) {
                rules.push(rule("FORWARD", &port, &["-j", "REJECT", "--reject-with", "tcp-reset"]));
                rules.push(rule("OUTPUT", &port, &["!", "-o", "lo", "-j", "REJECT", "--reject-with", "tcp-reset"]));
            }
        }
        rules
    }
}

/// The Docker API's port (a dind's), plain TCP.
pub const DOCKER_API_PORT: u16 = 2375;
/// buildkitd's gRPC port, plain TCP.
pub const BUILDKITD_API_PORT: u16 = 1234;
/// Every daemon API port a build step could dial.
pub const API_PORTS: [u16; 2] = [DOCKER_API_PORT, BUILDKITD_API_PORT];

/// Where a daemon runs, as its launch needs to know it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DaemonSetup<'a> {
    /// The address its API listens on: every interface of its network, or a pod's loopback.
    pub bind: &'a str,
    /// The run's CI registry, `host:port`, plain HTTP.
    pub registry: &'a str,
    /// The read-only Docker Hub mirror, `host:port`, plain HTTP; `None` to pull from Docker Hub.
    pub hub_mirror: Option<&'a str>,
    /// A resolver its build steps must be given by address (see `buildkitd::config_toml`); `None` to keep
    /// the one it finds.
    pub nameserver: Option<&'a str>,
    /// How a dind stores images (buildkitd has its own store).
    pub image_store: ImageStore,
}

/// How a daemon is started: what the backend puts in its container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DaemonLaunch {
    /// The image's arguments (its entry point runs the daemon).
    pub args: Vec<String>,
    /// `(name, value)` pairs.
    pub env: Vec<(&'static str, String)>,
    /// A configuration file in place before it starts.
    pub config: Option<ConfigFile>,
    /// Directories beyond its state directory that need a filesystem of their own (not the container's
    /// overlay), fresh with the daemon.
    pub scratch_dirs: Vec<&'static str>,
}

/// A generated configuration file: its content is written by a serializer (JSON, TOML), so no value in it
/// can change its structure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigFile {
    pub path: &'static str,
    pub content: String,
}

/// How a daemon's version is read: a command inside its container, and the version in what it printed.
#[derive(Debug, Clone, Copy)]
pub struct DaemonVersion {
    /// The daemon's name in `run.json`'s `builder_versions`.
    pub key: &'static str,
    pub command: &'static [&'static str],
    pub parse: fn(&str) -> Option<String>,
}

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
#[derive(Clone)]
pub struct JobCommand {
    /// Replaces the image's entry point when set.
    pub entrypoint: Option<Vec<String>>,
    /// The container's arguments (a script for `sh -c`, or the builder's own flags).
    pub args: Vec<String>,
    /// `KEY=value` pairs the builder needs.
    pub env: Vec<String>,
    /// Its log's parser (in the builder's home).
    pub parser: super::log::ParserOf,
    /// Where the builder keeps its local storage, given a fresh volume per job (`None`: nowhere).
    pub storage: Option<&'static str>,
    /// How its script reports the builder's version, if it does.
    pub version: Option<VersionLine>,
    /// Phases that run inside its one build command, which its log times and [`super::JobLog`] splits off
    /// the build (BuildKit's cache import, push and cache export); empty when the script marks them.
    pub inner_phases: Vec<Phase>,
}

impl JobCommand {
    /// Whether it is a script for `sh -c` (which can be given a line more at its top).
    pub fn runs_a_script(&self) -> bool {
        self.entrypoint == shell() && self.args.len() == 1
    }

    /// The command as a CI job's script would read, for printing: the script itself, or the program and
    /// its arguments as quoted shell words (the image's own entry point, from `home`, when it sets none).
    pub fn as_script(&self, home: &BuilderHome) -> String {
        if self.runs_a_script() {
            let exports = self.env.iter().map(|kv| format!("export {}\n", shell_word(kv)));
            return exports.collect::<String>() + self.args[0].trim_end();
        }
        let program: Vec<String> = match &self.entrypoint {
            Some(words) => words.clone(),
            None => home.image_entrypoint.iter().map(|w| w.to_string()).collect(),
        };
        let env = self.env.iter().map(|kv| shell_word(kv));
        env.chain(program.iter().chain(&self.args).map(|w| shell_word(w))).collect::<Vec<_>>().join(" ")
    }
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

/// The line a script prints to mark the start of `phase`.
pub(crate) fn mark(phase: Phase) -> String {
    format!("echo {}", shell_word(&format!("{PHASE_MARK}{}", phase.name())))
}

/// The phase a log line marks, if it is a phase mark.
pub fn phase_marked(line: &str) -> Option<Phase> {
    let name = line.trim().strip_prefix(PHASE_MARK)?;
    Phase::ALL.into_iter().find(|p| p.name() == name)
}

/// A script for `sh -c`: stop at the first failing command.
pub(crate) fn script(lines: Vec<String>) -> Vec<String> {
    vec![format!("set -e\n{}\n", lines.join("\n"))]
}

/// `sh -c SCRIPT` as an entry point.
pub(crate) fn shell() -> Option<Vec<String>> {
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

    #[test]
    fn hostile_words_stay_one_word() {
        assert_eq!(shell_word("plain/Dockerfile"), "plain/Dockerfile");
        assert_eq!(shell_word("a b"), "'a b'");
        assert_eq!(shell_word("it's"), r"'it'\''s'");
        assert_eq!(shell_word("$(touch /tmp/pwned)"), "'$(touch /tmp/pwned)'");
        assert_eq!(shell_word(""), "''");
        assert_eq!(shell_words(&["buildah", "-t", "a b"]), "buildah -t 'a b'");
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
