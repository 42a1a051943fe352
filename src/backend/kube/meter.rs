//! A job's CPU time and peak memory on the cluster: each of its containers reads its own cgroup counters
//! from inside (`crate::usage`'s sampling script, by exec), as the kubelet's counters but live, and a build
//! container's script reads them once more as it exits. What is counted is `crate::usage`'s, as on docker.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::AttachParams;
use kube::Api;
use tokio::io::AsyncBufReadExt;

use crate::usage::{sampling_script, Meter, Readings, Sample, Usage, Whose};

/// Reads the containers it watches until [`KubeMeter::finish`].
pub struct KubeMeter {
    api: Api<Pod>,
    meter: Arc<Mutex<Meter>>,
    readers: Vec<tokio::task::JoinHandle<()>>,
    /// How long a sampling script may run at most, whatever happens to its reader: the job's limit.
    limit: Duration,
}

impl KubeMeter {
    pub fn new(api: Api<Pod>, limit: Duration) -> Self {
        KubeMeter { api, meter: Arc::default(), readers: vec![], limit }
    }

    /// Starts reading `container` of `pod`, which must be running: its readings from now on are the job's
    /// (all of them for an own part, which counts from its start).
    pub fn watch(&mut self, pod: &str, container: &str, whose: Whose) {
        let name = part_name(pod, container);
        self.meter.lock().expect("meter lock").watch(&name, whose);
        let (api, meter, script) = (self.api.clone(), self.meter.clone(), sampling_script(self.limit));
        let (pod, container) = (pod.to_string(), container.to_string());
        self.readers.push(tokio::spawn(async move { read(&api, &pod, &container, &script, &name, &meter).await }));
    }

    /// A reading the container's own log carried (its script's last, as it exited).
    pub fn add(&self, pod: &str, container: &str, sample: Sample) {
        self.meter.lock().expect("meter lock").add(&part_name(pod, container), sample);
    }

    /// Stops reading: the job's usage, and why it is empty when it is.
    pub async fn finish(mut self) -> (Usage, Option<String>) {
        // The last readings may be on their way: a sample's interval lets them arrive.
        tokio::time::sleep(crate::usage::SAMPLE_EVERY).await;
        for reader in self.readers.drain(..) {
            // Dropping the exec ends its stream: the sampling script sees its stdin close and stops.
            reader.abort();
        }
        let usage = self.meter.lock().expect("meter lock").usage();
        usage
    }
}

impl Drop for KubeMeter {
    fn drop(&mut self) {
        for reader in &self.readers {
            reader.abort();
        }
    }
}

fn part_name(pod: &str, container: &str) -> String {
    format!("{pod}/{container}")
}

/// Runs the sampling script in the container and adds each reading to the meter, until the script or the
/// container ends or the reader is aborted. A container that cannot be read is left unread: its figure
/// is then empty with the meter's reason.
async fn read(api: &Api<Pod>, pod: &str, container: &str, script: &str, name: &str, meter: &Mutex<Meter>) {
    let params = AttachParams::default().container(container).stdin(true).stdout(true).stderr(false);
    let Ok(mut process) = api.exec(pod, ["sh", "-c", script], &params).await else { return };
    // Held open: the script stops when its stdin ends.
    let _stdin = process.stdin();
    let Some(stdout) = process.stdout() else { return };
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let mut readings = Readings::default();
    while let Ok(Some(line)) = lines.next_line().await {
        if let Some(sample) = readings.push(&line) {
            meter.lock().expect("meter lock").add(name, sample);
        }
    }
}
