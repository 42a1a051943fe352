//! layerbench: measures container image builds under the caching strategies CI systems use.

pub mod backend;
pub mod builder;
pub mod cause;
pub mod cluster;
pub mod compare;
pub mod dockerfile;
pub mod error;
pub mod events;
pub mod git;
pub mod history;
pub mod inputs;
pub mod job;
pub mod lanes;
pub mod pipeline;
pub mod progress;
pub mod reference;
pub mod registry;
pub mod report;
pub mod resources;
pub mod results;
pub mod runner;
pub mod scenario;
pub mod session;
pub mod strategy;
pub mod toolchain;
pub mod usage;
pub mod workload;

/// Durations are whole milliseconds everywhere in layerbench's records.
pub type Millis = u64;

/// A clock's duration in whole milliseconds, rounded to the nearest: a job's phases, each rounded,
/// then add up to its rounded wall time within half a millisecond per phase, where truncating lost
/// up to a whole one each time.
pub fn millis(duration: std::time::Duration) -> Millis {
    ((duration.as_micros() + 500) / 1000) as Millis
}
/// Sizes and transfer volumes are bytes.
pub type Bytes = u64;

/// The label every container, network and volume layerbench creates carries.
pub const RUN_ID_LABEL: &str = "layerbench.run-id";
