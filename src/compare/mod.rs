//! Compares two results directories: improved, regressed or within noise, per strategy and pipeline run.
