//! A scenario's `[history]` table: where a replayed history's pipeline came from (`scenario from-git`), with
//! the repository's change profile; `run.json` records it and the report shows it.

use serde::{Deserialize, Serialize};

/// The profile as `run.json` records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProfileSummary {
    pub commits: usize,
    /// "40 first change step 11 (`COPY . .`)", one line per kind, most frequent first.
    pub lines: Vec<String>,
    pub summary: String,
}

/// Where a scenario's pipeline came from, as the scenario's `[history]` table and `run.json` record it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistoryInfo {
    /// The repository and the commits, in words: `/src/vote (the last 20 commits of HEAD)`.
    pub source: String,
    /// Commits in the range.
    pub commits: usize,
    /// Of them, the ones that became pipeline runs.
    pub runs: usize,
    /// Commits that touched nothing in the context and were folded into this count (`--skip-untouched`).
    #[serde(default)]
    pub skipped_untouched: usize,
    /// Whether the runs are a sample of the range (`--sample K`).
    #[serde(default)]
    pub sampled: bool,
    pub profile: ProfileSummary,
}

impl HistoryInfo {
    /// "Replays 20 commits of /src/vote (…); sampled 8 of 20" for the report.
    pub fn describe(&self) -> String {
        let mut text = format!("{} pipeline runs from {} commits of {}", self.runs, self.commits, self.source);
        if self.sampled {
            text.push_str(&format!(", sampled {} of {}", self.runs, self.commits));
        }
        match self.skipped_untouched {
            0 => {}
            1 => text.push_str(", 1 commit touching nothing in the context folded"),
            n => text.push_str(&format!(", {n} commits touching nothing in the context folded")),
        }
        text
    }
}
