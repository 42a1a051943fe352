//! Thin wrappers over bollard that name the operation and the object when they fail.

use std::time::Duration;

use bollard::models::HostConfig;
use bollard::query_parameters::{
    LogsOptionsBuilder, RemoveContainerOptionsBuilder,
};
use bollard::Docker;
use futures_util::StreamExt;

use crate::backend::BackendError;

/// Wraps a bollard error with what was being done to what.
pub fn failed(action: impl Into<String>) -> impl FnOnce(bollard::errors::Error) -> BackendError {
    let action = action.into();
    move |e| BackendError::new(action, describe(&e))
}

pub use crate::resources::engine_message as describe;

/// Creates a volume carrying the run's label.
pub async fn create_volume(docker: &Docker, name: &str, run_id: &str) -> Result<(), BackendError> {
    let request = bollard::models::VolumeCreateRequest {
        name: Some(name.to_string()),
        labels: Some(crate::resources::run_labels(run_id)),
        ..Default::default()
    };
    docker.create_volume(request).await.map(|_| ()).map_err(failed(format!("create volume {name}")))
}

/// Removes a container and its anonymous volumes; already gone is fine.
pub async fn remove_container(docker: &Docker, name: &str) -> Result<(), BackendError> {
    let options = RemoveContainerOptionsBuilder::default().force(true).v(true).build();
    match docker.remove_container(name, Some(options)).await {
        Err(e) if !crate::resources::is_not_found(&e) => Err(failed(format!("remove container {name}"))(e)),
        _ => Ok(()),
    }
}

/// The container's address on `network`.
pub async fn container_ip(docker: &Docker, name: &str, network: &str) -> Result<String, BackendError> {
    let info = docker
        .inspect_container(name, None)
        .await
        .map_err(failed(format!("inspect container {name}")))?;
    info.network_settings
        .and_then(|s| s.networks)
        .and_then(|mut n| n.remove(network))
        .and_then(|e| e.ip_address)
        .filter(|ip| !ip.is_empty())
        .ok_or_else(|| BackendError::new(format!("find the address of {name}"), format!("it has none on network {network}")))
}

/// Runs a command in a running container and returns its stdout; fails on a non-zero exit.
pub async fn exec_output(docker: &Docker, container: &str, cmd: &[&str]) -> Result<String, BackendError> {
    use bollard::exec::{CreateExecOptions, StartExecResults};
    let action = format!("run `{}` in {container}", cmd.join(" "));
    let exec = docker
        .create_exec(
            container,
            CreateExecOptions { cmd: Some(cmd.to_vec()), attach_stdout: Some(true), attach_stderr: Some(true), ..Default::default() },
        )
        .await
        .map_err(failed(action.clone()))?;
    let mut stdout = String::new();
    let mut stderr = String::new();
    if let StartExecResults::Attached { mut output, .. } =
        docker.start_exec(&exec.id, None).await.map_err(failed(action.clone()))?
    {
        while let Some(chunk) = output.next().await {
            match chunk.map_err(failed(action.clone()))? {
                bollard::container::LogOutput::StdOut { message } => stdout.push_str(&String::from_utf8_lossy(&message)),
                other => stderr.push_str(&other.to_string()),
            }
        }
    }
    let inspect = docker.inspect_exec(&exec.id).await.map_err(failed(action.clone()))?;
    match inspect.exit_code {
        Some(0) => Ok(stdout),
        code => Err(BackendError::new(action, format!("exit code {code:?}: {}", stderr.trim()))),
    }
}

/// Polls a daemon until it answers `_ping`, for at most `timeout`.
pub async fn wait_until_ready(docker: &Docker, what: &str, timeout: Duration) -> Result<(), BackendError> {
    let ping = async {
        loop {
            if docker.ping().await.is_ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    tokio::time::timeout(timeout, ping).await.map_err(|_| {
        BackendError::new(format!("wait for {what}"), format!("it did not answer within {} s", timeout.as_secs()))
    })
}

/// The last `n` lines a container logged, on one line, for an error message ("it printed nothing" if none).
pub async fn last_log_lines(docker: &Docker, container: &str, n: usize) -> String {
    let options = LogsOptionsBuilder::default().stdout(true).stderr(true).tail(&n.to_string()).build();
    let mut stream = docker.logs(container, Some(options));
    let mut text = String::new();
    while let Some(Ok(chunk)) = stream.next().await {
        text.push_str(&chunk.to_string());
    }
    let lines: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    if lines.is_empty() {
        "it printed nothing".into()
    } else {
        lines.join(" | ")
    }
}

/// Lines a container logged at or after `since` (RFC 3339 times from the engine), without the times.
pub async fn logs_since(
    docker: &Docker,
    container: &str,
    since: chrono::DateTime<chrono::Utc>,
) -> Result<Vec<String>, BackendError> {
    let options = LogsOptionsBuilder::default()
        .stdout(true)
        .stderr(true)
        .timestamps(true)
        .since(since.timestamp() as i32)
        .build();
    let mut stream = docker.logs(container, Some(options));
    let mut lines = vec![];
    let mut text = String::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(failed(format!("read the logs of {container}")))?;
        text.push_str(&chunk.to_string());
    }
    let since_ms = since.timestamp_millis() as u64;
    for line in text.lines() {
        match crate::builder::log::split_docker_timestamp(line) {
            Some((at_ms, rest)) if at_ms >= since_ms => lines.push(rest.to_string()),
            _ => {}
        }
    }
    Ok(lines)
}

/// What a container needs to run docker-in-docker on this engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DindMode {
    /// `--privileged`, the ordinary choice.
    Privileged,
    /// Every capability but SYS_RESOURCE, unconfined (seccomp, apparmor, and /proc and /sys paths), all
    /// devices, the host's cgroup tree writable: for engines whose bounding set refuses `--privileged` (see
    /// ENVIRONMENT.md).
    ExplicitCapabilities,
}

/// Every capability Docker 20.10 knows except SYS_RESOURCE.
const DIND_CAPABILITIES: &[&str] = &[
    "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID",
    "SETPCAP", "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN", "NET_RAW",
    "IPC_LOCK", "IPC_OWNER", "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT",
    "SYS_ADMIN", "SYS_BOOT", "SYS_NICE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD", "LEASE",
    "AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP", "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG", "WAKE_ALARM",
    "BLOCK_SUSPEND", "AUDIT_READ",
];

/// A container's privileges as its builder's or daemon's home states them: a privileged one as `mode` says
/// (the engine may refuse `--privileged`), otherwise its extra capabilities and unconfined profiles.
pub fn apply_privileges(privileges: &crate::strategy::Privileges, mode: DindMode, host: &mut HostConfig) {
    if privileges.privileged {
        return mode.apply(host);
    }
    host.cap_add = Some(privileges.extra_capabilities.iter().map(|c| c.to_string()).collect());
    host.security_opt = Some(privileges.unconfined.iter().map(|p| format!("{p}=unconfined")).collect());
}

impl DindMode {
    pub fn apply(self, host: &mut HostConfig) {
        match self {
            DindMode::Privileged => host.privileged = Some(true),
            DindMode::ExplicitCapabilities => {
                host.cap_add = Some(DIND_CAPABILITIES.iter().map(|c| c.to_string()).collect());
                // systempaths: a Docker 26 dind writes /proc/sys for every inner container (it disables IPv6
                // on its eth0), and the engine mounts /proc/sys read-only unless told otherwise.
                host.security_opt = Some(vec![
                    "seccomp=unconfined".into(),
                    "apparmor=unconfined".into(),
                    "systempaths=unconfined".into(),
                ]);
                host.device_cgroup_rules = Some(vec!["a *:* rwm".into()]);
                host.binds.get_or_insert_with(Vec::new).push("/sys/fs/cgroup:/sys/fs/cgroup:rw".into());
            }
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            DindMode::Privileged => "privileged",
            DindMode::ExplicitCapabilities => {
                "all capabilities except SYS_RESOURCE, seccomp, apparmor and system paths (/proc, /sys) \
                 unconfined, all devices, host cgroup tree writable (this engine refuses --privileged)"
            }
        }
    }
}
