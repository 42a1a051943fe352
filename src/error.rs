//! The top-level error and the exit codes CI can rely on.

/// Exit codes of the `layerbench` binary.
pub mod exit {
    /// Success; for `compare`, no regression.
    pub const OK: i32 = 0;
    /// `compare` found a regression; `run` finished but at least one job failed.
    pub const REGRESSION_OR_FAILED_JOB: i32 = 1;
    /// Usage or data error: bad arguments, malformed scenario, unreadable results.
    pub const USAGE: i32 = 2;
    /// The environment failed: engine unreachable, registry or toolchain could not start.
    pub const ENVIRONMENT: i32 = 3;
    /// Interrupted by Ctrl-C (128 + SIGINT, as shells report it).
    pub const INTERRUPTED: i32 = 130;
    /// Stopped by SIGTERM, as CI systems send when they cancel a job (128 + SIGTERM).
    pub const TERMINATED: i32 = 143;
}
