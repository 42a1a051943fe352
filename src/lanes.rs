//! Pipelines at once: a run's concurrency levels, and the lanes of a level.
//!
//! At level N, every pipeline run of a strategy starts N lanes together. A lane is a branch of the same
//! project: it shares the strategy's registry repository, tags and shared daemon with the other lanes,
//! and makes its own change, so that lanes build different images (see [`crate::scenario::Change::for_lane`]).
//! Level 1 is one job at a time, as layerbench always measured.

use serde::{Deserialize, Serialize};

/// The highest level a run accepts. Beyond it a 2-core runner measures only its own queue, and one
/// machine's engine is not what a team runs 32 pipelines on (the kube backend spreads lanes over nodes,
/// and the same ceiling keeps the job names within their limits).
pub const MAX_LEVEL: u32 = 16;

/// Where a job sits among the pipelines run at once: lane `lane` (1-based) of `level` lanes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Lane {
    pub level: u32,
    pub lane: u32,
}

impl Lane {
    /// The only lane of level 1: one pipeline at a time.
    pub const ALONE: Lane = Lane { level: 1, lane: 1 };

    /// The lanes of `level`, in order.
    pub fn of_level(level: u32) -> impl Iterator<Item = Lane> {
        (1..=level).map(move |lane| Lane { level, lane })
    }

    /// Whether other pipelines run beside this one.
    pub fn is_shared(self) -> bool {
        self.level > 1
    }
}

impl std::fmt::Display for Lane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "lane {}/{}", self.lane, self.level)
    }
}

/// A level list a run cannot take. Each displays as one line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LevelError {
    #[error("concurrency `{0}` is not a whole number; give levels like `1,2,4`")]
    NotANumber(String),
    #[error("concurrency is empty; give at least one level, like `1` or `1,2,4`")]
    Empty,
    #[error("concurrency {0} is below 1; a level is how many pipelines run at once")]
    BelowOne(u32),
    #[error("concurrency {0} is above the ceiling of {MAX_LEVEL} pipelines at once")]
    AboveCeiling(u32),
    #[error("concurrency levels must rise: {0} comes after {1}")]
    NotRising(u32, u32),
    #[error(
        "concurrency {level} needs about {} of memory ({level} × {} measured at level 1) and the host has {} available; \
         run a lower level, or on a larger machine",
        gib(*needed),
        gib(*peak),
        gib(*available)
    )]
    TooLittleMemory { level: u32, needed: crate::Bytes, available: crate::Bytes, peak: crate::Bytes },
}

/// `1,2,4` as levels, checked.
pub fn parse_levels(text: &str) -> Result<Vec<u32>, LevelError> {
    let levels = text
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(|t| t.parse::<u32>().map_err(|_| LevelError::NotANumber(t.to_string())))
        .collect::<Result<Vec<u32>, _>>()?;
    check_levels(&levels)?;
    Ok(levels)
}

/// Levels are run in the order given, each from empty caches: each at least 1, at most [`MAX_LEVEL`],
/// strictly rising.
pub fn check_levels(levels: &[u32]) -> Result<(), LevelError> {
    let Some(&first) = levels.first() else { return Err(LevelError::Empty) };
    let check = |level: u32| match level {
        0 => Err(LevelError::BelowOne(0)),
        l if l > MAX_LEVEL => Err(LevelError::AboveCeiling(l)),
        _ => Ok(()),
    };
    check(first)?;
    for pair in levels.windows(2) {
        check(pair[1])?;
        if pair[1] <= pair[0] {
            return Err(LevelError::NotRising(pair[1], pair[0]));
        }
    }
    Ok(())
}

/// What a level would need of the host's memory, from what level 1 measured: `level` times the largest
/// peak memory of one level-1 job (its container, its own daemon and its share of a shared one). A
/// shared daemon serves N lanes in one process, so for shared strategies this is an upper bound; for a
/// fresh daemon per lane it is what N daemons take.
pub fn memory_needed(level: u32, peak_of_one_job: crate::Bytes) -> crate::Bytes {
    peak_of_one_job.saturating_mul(level as u64)
}

fn gib(bytes: crate::Bytes) -> String {
    format!("{:.2} GiB", bytes as f64 / (1u64 << 30) as f64)
}

/// The memory the host can give new work now (`MemAvailable` of `/proc/meminfo`); `None` where unknown.
pub fn memory_available() -> Option<crate::Bytes> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = meminfo.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: crate::Bytes = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_parse_and_are_checked() {
        assert_eq!(parse_levels("1,2,4"), Ok(vec![1, 2, 4]));
        assert_eq!(parse_levels(" 2 "), Ok(vec![2]));
        assert_eq!(parse_levels("0,2"), Err(LevelError::BelowOne(0)));
        assert_eq!(parse_levels("1,17"), Err(LevelError::AboveCeiling(17)));
        assert_eq!(parse_levels("2,1"), Err(LevelError::NotRising(1, 2)));
        assert_eq!(parse_levels("1,1"), Err(LevelError::NotRising(1, 1)));
        assert_eq!(parse_levels("1,two"), Err(LevelError::NotANumber("two".into())));
        assert_eq!(parse_levels(""), Err(LevelError::Empty));
        assert_eq!(parse_levels("-1"), Err(LevelError::NotANumber("-1".into())));
    }

    #[test]
    fn a_level_the_host_cannot_hold_is_refused_with_the_estimate() {
        let peak = 3 << 30;
        let needed = memory_needed(8, peak);
        assert_eq!(needed, 24 << 30);
        let refusal = LevelError::TooLittleMemory { level: 8, needed, available: 20 << 30, peak }.to_string();
        assert_eq!(
            refusal,
            "concurrency 8 needs about 24.00 GiB of memory (8 × 3.00 GiB measured at level 1) and the host has 20.00 GiB available; \
             run a lower level, or on a larger machine"
        );
    }

    #[test]
    fn a_level_has_its_lanes_in_order() {
        let lanes: Vec<Lane> = Lane::of_level(3).collect();
        assert_eq!(lanes.iter().map(|l| l.lane).collect::<Vec<_>>(), vec![1, 2, 3]);
        assert!(lanes.iter().all(|l| l.level == 3 && l.is_shared()));
        assert!(!Lane::ALONE.is_shared());
        assert_eq!(Lane { level: 4, lane: 2 }.to_string(), "lane 2/4");
    }
}
