//! What a job used of its host: CPU time and peak memory of everything it ran, from the counters the
//! kernel keeps per container cgroup (`cpuacct.usage` and `memory.usage_in_bytes` on cgroup v1, `cpu.stat`
//! and `memory.current` on v2), as the engine's stats API or a pod's cgroup files give them. Memory is the
//! working set, as `docker stats` and the kubelet count it: memory in use less the inactive page cache the
//! kernel can take back at once.
//!
//! A job is made of parts: its job container, its own daemon, and its share of a shared daemon.
//! - A part the job started counts from zero: the kernel's counters of its cgroup since it was created.
//! - A shared daemon counts over the job's interval: its CPU counter at the job's end minus at its start.
//! - Counters are sampled every [`SAMPLE_EVERY`], and a part's peak is its highest sample: a peak shorter
//!   than that can be missed. A part that ends within the job (a job container) is counted up to its last
//!   sample, so up to one interval of its last CPU use is not in the figure.
//!
//! The job's CPU time is the sum over its parts; its peak memory is the sum of its parts' peaks, which is
//! what a runner sizing each container on its own must provide (a pod's containers have a limit each).
//! When any part could not be read, the job's figure is empty, with the reason.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::{Bytes, Millis};

/// How often a running job's containers are sampled.
pub const SAMPLE_EVERY: Duration = Duration::from_millis(250);

/// A job's CPU time and peak memory; `None` where a part could not be read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Usage {
    pub cpu_ms: Option<Millis>,
    pub peak_memory_bytes: Option<Bytes>,
}

/// One reading of a container's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    /// CPU time since the container's cgroup was created, in nanoseconds.
    pub cpu_ns: u64,
    /// The working set now.
    pub memory: Bytes,
}

/// How a part relates to the job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Whose {
    /// Created by the job: all its counters are the job's.
    Own,
    /// Serves other jobs too: only what changed over the job's interval is the job's.
    Shared,
}

/// What was seen of one part over the job.
#[derive(Debug, Clone)]
pub struct Part {
    whose: Whose,
    first: Option<Sample>,
    last: Option<Sample>,
    max_memory: Bytes,
}

impl Part {
    pub fn new(whose: Whose) -> Self {
        Part { whose, first: None, last: None, max_memory: 0 }
    }

    pub fn add(&mut self, sample: Sample) {
        self.first.get_or_insert(sample);
        // A counter that went back is another cgroup under the same name: keep the first reading's.
        if self.last.is_some_and(|last| sample.cpu_ns < last.cpu_ns) {
            return;
        }
        self.max_memory = self.max_memory.max(sample.memory);
        self.last = Some(sample);
    }

    /// The part's CPU time in the job, in nanoseconds.
    fn cpu_ns(&self) -> Option<u64> {
        let last = self.last?;
        match self.whose {
            Whose::Own => Some(last.cpu_ns),
            Whose::Shared => Some(last.cpu_ns - self.first?.cpu_ns),
        }
    }

    /// The part's highest memory use in the job.
    fn peak(&self) -> Option<Bytes> {
        self.last.map(|_| self.max_memory)
    }
}

/// Every part of one job, by name, with what kept any from being read.
#[derive(Debug, Clone, Default)]
pub struct Meter {
    parts: BTreeMap<String, Part>,
}

impl Meter {
    /// Starts following `name`.
    pub fn watch(&mut self, name: &str, whose: Whose) {
        self.parts.entry(name.to_string()).or_insert_with(|| Part::new(whose));
    }

    pub fn names(&self) -> Vec<String> {
        self.parts.keys().cloned().collect()
    }

    pub fn add(&mut self, name: &str, sample: Sample) {
        if let Some(part) = self.parts.get_mut(name) {
            part.add(sample);
        }
    }

    /// The job's usage, and why a figure is empty: a part never read (it ended before the first sample,
    /// or the engine would not say).
    pub fn usage(&self) -> (Usage, Option<String>) {
        let unread: Vec<&str> = self.parts.iter().filter(|(_, p)| p.last.is_none()).map(|(n, _)| n.as_str()).collect();
        if self.parts.is_empty() {
            return (Usage::default(), Some("CPU and memory left empty: the job ran no container layerbench could read".into()));
        }
        if !unread.is_empty() {
            let why = format!("CPU and memory left empty: no reading of {} (it ended before the first sample, or its counters could not be read)", unread.join(", "));
            return (Usage::default(), Some(why));
        }
        let cpu_ns: Option<u64> = self.parts.values().map(Part::cpu_ns).sum();
        let peak: Option<Bytes> = self.parts.values().map(Part::peak).sum();
        (Usage { cpu_ms: cpu_ns.map(|ns| (ns + 500_000) / 1_000_000), peak_memory_bytes: peak }, None)
    }
}

/// Reads the counters a container's shell prints of its own cgroup (see [`COUNTERS_SCRIPT`]):
/// cgroup v1 `cpuacct.usage` (ns), `memory.usage_in_bytes` and `total_inactive_file`, or v2's
/// `cpu.stat` (`usage_usec`), `memory.current` and `inactive_file`.
pub fn parse_counters(text: &str) -> Option<Sample> {
    let mut fields: BTreeMap<&str, u64> = BTreeMap::new();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        if let (Some(key), Some(value)) = (words.next(), words.next()) {
            if let Ok(value) = value.parse() {
                fields.insert(key, value);
            }
        }
    }
    let (cpu_ns, memory, inactive) = match (fields.get("v1.cpu_ns"), fields.get("v1.memory")) {
        (Some(&cpu_ns), Some(&memory)) => (cpu_ns, memory, fields.get("total_inactive_file")),
        _ => (fields.get("usage_usec")? * 1000, *fields.get("v2.memory")?, fields.get("inactive_file")),
    };
    Some(Sample { cpu_ns, memory: working_set(memory, inactive.copied()) })
}

/// Memory in use less the inactive page cache, as `docker stats` and the kubelet count it.
pub fn working_set(usage: Bytes, inactive_file: Option<Bytes>) -> Bytes {
    usage.saturating_sub(inactive_file.unwrap_or(0))
}

/// A shell script that prints a container's own cgroup counters for [`parse_counters`], on either cgroup
/// version; it prints nothing it cannot read. Only shell builtins read the files (no `cat`, no `grep`), so a
/// reading costs the container it measures as little as a shell can make it.
pub const COUNTERS_SCRIPT: &str = "c=/sys/fs/cgroup; \
    if [ -r $c/cpuacct/cpuacct.usage ]; then read -r v < $c/cpuacct/cpuacct.usage; echo v1.cpu_ns $v; \
    read -r v < $c/memory/memory.usage_in_bytes; echo v1.memory $v; \
    while read -r k v; do [ $k = total_inactive_file ] && echo $k $v; done < $c/memory/memory.stat; \
    elif [ -r $c/cpu.stat ]; then while read -r k v; do [ $k = usage_usec ] && echo $k $v; done < $c/cpu.stat; \
    read -r v < $c/memory.current; echo v2.memory $v; \
    while read -r k v; do [ $k = inactive_file ] && echo $k $v; done < $c/memory.stat; fi; true";

/// The line that ends each reading of [`sampling_script`].
pub const READING_END: &str = "--";

/// A shell script that prints [`COUNTERS_SCRIPT`]'s reading every [`SAMPLE_EVERY`], each ended by
/// [`READING_END`], for a backend that reads a container's counters from inside it (the kube backend, by
/// exec). It runs in the container it measures, so its own few milliseconds of CPU a second are in the
/// figure. It stops when its reader goes (its stdin ends, or a write fails), and in any case after `limit`.
pub fn sampling_script(limit: Duration) -> String {
    let readings = limit.as_millis() / SAMPLE_EVERY.as_millis().max(1);
    let every_s = SAMPLE_EVERY.as_secs_f64();
    format!(
        "( i=0; while [ $i -lt {readings} ]; do {{ {COUNTERS_SCRIPT}; }} && echo {READING_END} || exit 0; \
         i=$((i+1)); sleep {every_s}; done ) & loop=$!; cat > /dev/null; kill $loop 2>/dev/null; true"
    )
}

/// Reads the readings a [`sampling_script`] printed as they come: fed lines, it returns each complete reading.
#[derive(Debug, Default)]
pub struct Readings {
    pending: String,
}

impl Readings {
    pub fn push(&mut self, line: &str) -> Option<Sample> {
        if line.trim() == READING_END {
            return parse_counters(&std::mem::take(&mut self.pending));
        }
        self.pending.push_str(line);
        self.pending.push('\n');
        None
    }
}

/// Marks a line of a job's own log that carries a reading of its container's counters: what
/// [`final_reading_trap`] prints.
pub const USAGE_MARK: &str = "::layerbench-usage ";

/// A line for the top of a job's `sh` script: when the script exits, however it exits, it prints its
/// container's counters one per line after [`USAGE_MARK`], then [`READING_END`]. A container that ends
/// within the job is then read at its very end, not only at its last sample before.
pub fn final_reading_trap() -> String {
    format!("trap '{{ {COUNTERS_SCRIPT}; echo {READING_END}; }} 2>/dev/null | while read -r l; do echo \"{USAGE_MARK}$l\"; done' EXIT")
}

/// The last line a script with [`final_reading_trap`] prints, however it exits (but killed): a log read
/// up to it was read to the script's end.
pub fn final_line() -> String {
    format!("{USAGE_MARK}{READING_END}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(cpu_ns: u64, memory: Bytes) -> Sample {
        Sample { cpu_ns, memory }
    }

    #[test]
    fn an_own_part_counts_from_zero_and_a_shared_one_over_the_interval() {
        let mut meter = Meter::default();
        meter.watch("job", Whose::Own);
        meter.watch("daemon", Whose::Shared);
        meter.add("job", sample(1_000_000_000, 60));
        meter.add("job", sample(2_500_000_000, 20));
        meter.add("daemon", sample(40_000_000_000, 500));
        meter.add("daemon", sample(41_000_000_000, 700));
        meter.add("daemon", sample(41_250_000_000, 600));
        let (usage, why) = meter.usage();
        assert_eq!(why, None);
        // 2.5 s of the job container, and 1.25 s of the daemon's 41.25 s.
        assert_eq!(usage.cpu_ms, Some(3750));
        // Each part's highest sample in the job.
        assert_eq!(usage.peak_memory_bytes, Some(60 + 700));
    }

    #[test]
    fn a_part_never_read_leaves_both_figures_empty_and_says_which() {
        let mut meter = Meter::default();
        meter.watch("job", Whose::Own);
        meter.watch("lb-x-kaniko-job3", Whose::Own);
        meter.add("job", sample(1, 1));
        let (usage, why) = meter.usage();
        assert_eq!(usage, Usage::default());
        assert!(why.unwrap().contains("lb-x-kaniko-job3"));
    }

    /// The scripts run in a real shell on this host's cgroups: the sampling loop prints readings until its
    /// reader goes, and the trap reads the container at the script's end without changing its exit status.
    #[test]
    fn the_scripts_give_readings_in_a_real_shell() {
        use std::io::Write;
        let mut child = std::process::Command::new("sh")
            .arg("-c")
            .arg(sampling_script(Duration::from_secs(60)))
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(600));
        child.stdin.take().unwrap().flush().unwrap();
        let out = child.wait_with_output().unwrap();
        let mut readings = Readings::default();
        let samples: Vec<Sample> = String::from_utf8_lossy(&out.stdout).lines().filter_map(|l| readings.push(l)).collect();
        assert!(samples.len() >= 2, "a reading every {SAMPLE_EVERY:?}: {:?}", String::from_utf8_lossy(&out.stdout));
        assert!(samples.iter().all(|s| s.cpu_ns > 0 && s.memory > 0), "{samples:?}");
        let script = format!("{}\nset -e\necho built\nexit 3\n", final_reading_trap());
        let out = std::process::Command::new("sh").arg("-c").arg(&script).output().unwrap();
        assert_eq!(out.status.code(), Some(3), "the trap keeps the script's exit status");
        let text = String::from_utf8_lossy(&out.stdout);
        let mut readings = Readings::default();
        let marked: Vec<Sample> = text.lines().filter_map(|l| l.strip_prefix(USAGE_MARK)).filter_map(|l| readings.push(l)).collect();
        assert_eq!(marked.len(), 1, "{text}");
        assert!(text.starts_with("built\n"), "{text}");
        assert_eq!(text.lines().last(), Some(final_line().as_str()), "{text}");
    }

    #[test]
    fn counters_of_either_cgroup_version_parse() {
        let v1 = "v1.cpu_ns 2000000000\nv1.memory 1048576\ntotal_inactive_file 4096\n";
        assert_eq!(parse_counters(v1), Some(sample(2_000_000_000, 1_048_576 - 4096)));
        let v2 = "usage_usec 1500000\nv2.memory 8192\ninactive_file 2048\n";
        assert_eq!(parse_counters(v2), Some(sample(1_500_000_000, 8192 - 2048)));
        assert_eq!(parse_counters("v1.cpu_ns\n"), None, "a counter without a value is no reading");
        assert_eq!(parse_counters(""), None);
    }
}
