//! Compares two results directories: improved, regressed or within noise, per strategy and pipeline run.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum CompareError {
    #[error("{0}")]
    Results(#[from] crate::results::ResultsError),
    #[error("{0}")]
    Data(String),
}

pub struct CompareOptions {
    pub baseline: PathBuf,
    pub candidate: PathBuf,
    /// Relative change of the median below which a difference is noise (0.10 = 10%).
    pub threshold: f64,
    pub markdown: Option<PathBuf>,
    pub openmetrics: Option<PathBuf>,
}

/// What `compare` found, and the text of its terminal table.
pub struct CompareOutcome {
    pub regressed: bool,
    pub table: String,
}

pub fn compare(options: &CompareOptions) -> Result<CompareOutcome, CompareError> {
    let _ = options;
    Err(CompareError::Data("compare is not implemented yet".into()))
}
