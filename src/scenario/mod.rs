//! A scenario: an app, its Dockerfile, and the ordered pipeline of CI runs that follow each other.

pub mod context;
pub mod dockerfile;

use std::path::PathBuf;

pub use dockerfile::{Dockerfile, Instruction, Stage};

use crate::strategy::StrategyKind;

/// A loaded and validated scenario file.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub name: String,
    /// The scenario file itself.
    pub source: PathBuf,
    /// Build context directory (absolute).
    pub context: PathBuf,
    /// Dockerfile path relative to the context.
    pub dockerfile_path: PathBuf,
    pub dockerfile: Dockerfile,
    /// Image repository name, without registry host or tag (e.g. `flask-app`).
    pub repository: String,
    pub iterations: u32,
    pub strategies: Vec<StrategyKind>,
    pub pipeline: Vec<PipelineRun>,
    /// sha256 (hex) over the scenario file, the Dockerfile and every context file.
    pub hash: String,
}

/// One CI pipeline run: what changed in the repository before the job ran.
#[derive(Debug, Clone, PartialEq)]
pub struct PipelineRun {
    pub name: String,
    pub change: Change,
}

/// A change to the per-iteration copy of the context, applied before the pipeline run's jobs.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// Nothing changed (the first run, or a rerun).
    None,
    /// Append a line to a file of the context.
    Append { file: PathBuf, line: String },
    /// Replace the whole content of a file of the context (creating it if needed).
    Write { file: PathBuf, content: String },
}
