//! Reads `results/<run-id>/` and writes a self-contained HTML report with charts.
