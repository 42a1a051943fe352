//! What a run emits as it goes. The runner and backends never print; reporters consume these events.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use crate::results::{JobRecord, PipelineRunName, StepRecord};
use crate::strategy::{Phase, Strategy};
use crate::Millis;

#[derive(Debug, Clone)]
pub enum Event {
    RunStarted { run_id: String, results_dir: PathBuf, total_jobs: u64 },
    /// Something the user should read once (an image built locally, a builder skipped).
    Notice { message: String },
    /// Set-up work outside any job (image builds, registry start).
    Setup { message: String },
    ServiceStarted { iteration: u32, strategy: Strategy, service: String, startup_ms: Millis },
    JobStarted { iteration: u32, pipeline_run: PipelineRunName, strategy: Strategy, lane: crate::lanes::Lane },
    PhaseStarted { phase: Phase, detail: String },
    StepStarted { step: u32, total_steps: u32, instruction: String },
    /// A job ended: its record, and its steps' rows (their causes say why a step missed).
    JobFinished { record: Box<JobRecord>, steps: Vec<StepRecord> },
    RunFinished { results_dir: PathBuf, interrupted: bool },
}

/// Consumes events: progress bars, plain log lines, test recorders.
pub trait Reporter: Send {
    fn event(&mut self, event: &Event);
}

/// Fans events out to every reporter. Cheap to clone; safe to use from any task.
#[derive(Clone, Default)]
pub struct EventSink {
    reporters: Arc<Mutex<Vec<Box<dyn Reporter>>>>,
}

impl EventSink {
    pub fn new(reporters: Vec<Box<dyn Reporter>>) -> Self {
        EventSink { reporters: Arc::new(Mutex::new(reporters)) }
    }

    pub fn emit(&self, event: Event) {
        let mut reporters = self.reporters.lock().unwrap_or_else(|e| e.into_inner());
        for reporter in reporters.iter_mut() {
            reporter.event(&event);
        }
    }

    pub fn notice(&self, message: impl Into<String>) {
        self.emit(Event::Notice { message: message.into() });
    }

    pub fn setup(&self, message: impl Into<String>) {
        self.emit(Event::Setup { message: message.into() });
    }
}
