//! A job's CPU time and peak memory on the engine: its containers sampled through the stats API (see
//! `crate::usage` for what is counted).

use std::sync::{Arc, Mutex};

use bollard::models::ContainerStatsResponse;
use bollard::query_parameters::StatsOptionsBuilder;
use bollard::Docker;
use futures_util::StreamExt;

use crate::usage::{Meter, Sample, Usage, Whose, SAMPLE_EVERY};

/// Samples the containers it watches until [`JobMeter::finish`].
pub struct JobMeter {
    engine: Docker,
    meter: Arc<Mutex<Meter>>,
    sampler: tokio::task::JoinHandle<()>,
}

/// Lets whoever creates a job's containers add them to its meter.
#[derive(Clone)]
pub struct Watch(Arc<Mutex<Meter>>);

impl Watch {
    pub fn add(&self, name: &str, whose: Whose) {
        self.0.lock().expect("meter lock").watch(name, whose);
    }
}

impl JobMeter {
    /// Starts sampling, `first` at once (a shared daemon, whose reading at the job's start is its baseline).
    pub fn start(engine: &Docker, first: Option<(String, Whose)>) -> Self {
        let mut meter = Meter::default();
        if let Some((name, whose)) = first {
            meter.watch(&name, whose);
        }
        let meter = Arc::new(Mutex::new(meter));
        let (engine2, meter2) = (engine.clone(), meter.clone());
        let sampler = tokio::spawn(async move {
            let mut tick = tokio::time::interval(SAMPLE_EVERY);
            loop {
                tick.tick().await;
                sample_all(&engine2, &meter2).await;
            }
        });
        JobMeter { engine: engine.clone(), meter, sampler }
    }

    pub fn watch(&self) -> Watch {
        Watch(self.meter.clone())
    }

    /// Takes a last reading of every part still running and stops sampling: the job's usage, and why it
    /// is empty when it is.
    pub async fn finish(self) -> (Usage, Option<String>) {
        self.sampler.abort();
        sample_all(&self.engine, &self.meter).await;
        let usage = self.meter.lock().expect("meter lock").usage();
        usage
    }
}

impl Drop for JobMeter {
    fn drop(&mut self) {
        self.sampler.abort();
    }
}

async fn sample_all(engine: &Docker, meter: &Mutex<Meter>) {
    let names = meter.lock().expect("meter lock").names();
    for name in names {
        if let Some(sample) = read(engine, &name).await {
            meter.lock().expect("meter lock").add(&name, sample);
        }
    }
}

/// One reading of a running container; `None` for one not running (yet, or any more), whose counters
/// the engine gives as zeros.
async fn read(engine: &Docker, name: &str) -> Option<Sample> {
    let options = StatsOptionsBuilder::default().stream(false).one_shot(true).build();
    let stats = engine.stats(name, Some(options)).next().await?.ok()?;
    sample_of(&stats)
}

fn sample_of(stats: &ContainerStatsResponse) -> Option<Sample> {
    let cpu_ns = stats.cpu_stats.as_ref()?.cpu_usage.as_ref()?.total_usage?;
    let memory = stats.memory_stats.as_ref()?;
    let usage = memory.usage?;
    if cpu_ns == 0 && usage == 0 {
        return None;
    }
    // cgroup v1 names it `total_inactive_file`, v2 `inactive_file`.
    let inactive = memory.stats.as_ref().and_then(|s| s.get("total_inactive_file").or_else(|| s.get("inactive_file")).copied());
    Some(Sample { cpu_ns, memory: crate::usage::working_set(usage, inactive) })
}
