//! A repository's change profile: for each commit, the first Dockerfile step whose own input it changes
//! (from the step input keys of `crate::inputs`, the same keys the exact miss causes use), summarised as
//! "of 200 commits, 150 touch nothing in vote/, 40 first change step 11 (`COPY . .`), …".

use std::collections::BTreeMap;
use std::path::Path;

pub use crate::scenario::history::ProfileSummary;
use crate::git::{Commit, History, HistoryError};
use crate::dockerfile::Dockerfile;
use crate::inputs::{self, StepInput};

/// What a commit first changes, against its first parent.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum FirstChange {
    /// The first step whose own input changed, and what in it (the files, or the instruction).
    Step { step: u32, instruction: String, what: Option<String> },
    /// The Dockerfile itself (added, or edited).
    Dockerfile,
    /// Files under the context, but none any step reads (not copied, or excluded by `.dockerignore`).
    NothingBuilt,
    /// Nothing under the context: a monorepo's commit elsewhere.
    Untouched,
}

impl std::fmt::Display for FirstChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FirstChange::Step { step, instruction, what: Some(what) } => write!(f, "step {step} `{instruction}` ({what})"),
            FirstChange::Step { step, instruction, what: None } => write!(f, "step {step} `{instruction}`"),
            FirstChange::Dockerfile => f.write_str("the Dockerfile"),
            FirstChange::NothingBuilt => f.write_str("files no step reads"),
            FirstChange::Untouched => f.write_str("nothing in the context"),
        }
    }
}

/// The profile of a range, commit by commit, oldest first.
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    /// The context directory as the summary names it (`vote/`, or `the repository`).
    pub context: String,
    pub commits: Vec<(Commit, FirstChange)>,
}

impl Profile {
    /// Counts by kind, most frequent first (ties by step).
    fn counts(&self) -> Vec<(FirstChange, usize)> {
        let mut counts: BTreeMap<FirstChange, usize> = BTreeMap::new();
        for (_, first) in &self.commits {
            let key = match first {
                // Commits that change the same step count together, whatever files they touched.
                FirstChange::Step { step, instruction, .. } => FirstChange::Step { step: *step, instruction: instruction.clone(), what: None },
                other => other.clone(),
            };
            *counts.entry(key).or_default() += 1;
        }
        let mut counts: Vec<_> = counts.into_iter().collect();
        counts.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        counts
    }

    pub fn summarise(&self) -> ProfileSummary {
        let lines: Vec<String> = self
            .counts()
            .into_iter()
            .map(|(kind, n)| match kind {
                FirstChange::Step { step, instruction, .. } => format!("{n} first change step {step} (`{instruction}`)"),
                FirstChange::Dockerfile => format!("{n} the Dockerfile"),
                FirstChange::NothingBuilt => format!("{n} change files no step reads"),
                FirstChange::Untouched => format!("{n} touch nothing in {}", self.context),
            })
            .collect();
        let n = self.commits.len();
        let summary = format!("of {n} commit{}, {}", if n == 1 { "" } else { "s" }, lines.join(", "));
        ProfileSummary { commits: n, lines, summary }
    }

    /// Commits that edit the Dockerfile, which one scenario cannot run across.
    pub fn dockerfile_edits(&self) -> Vec<&Commit> {
        self.commits.iter().filter(|(_, f)| *f == FirstChange::Dockerfile).map(|(c, _)| c).collect()
    }
}

/// One commit's tree as the builds see it: the Dockerfile's text and every step's input.
struct Seen {
    dockerfile: Vec<u8>,
    inputs: Vec<StepInput>,
}

/// The profile of `commits` (oldest first), each against its first parent, for the context directory `dir`
/// (relative to the repository's root) and its Dockerfile `dockerfile` (relative to `dir`).
pub fn profile(history: &History, commits: &[Commit], dir: &Path, dockerfile: &Path) -> Result<Profile, HistoryError> {
    let mut out = vec![];
    let mut previous: Option<(String, Seen)> = None;
    for commit in commits {
        let parent = history.first_parent(&commit.id)?;
        if !history.touches(&commit.id, dir)? && parent.is_some() {
            out.push((commit.clone(), FirstChange::Untouched));
            continue;
        }
        let now = seen(history, &commit.id, dir, dockerfile)?;
        let before = match (&previous, &parent) {
            (Some((id, seen)), Some(p)) if id == p => Some(seen),
            _ => None,
        };
        let fresh;
        let before = match (before, &parent) {
            (Some(seen), _) => Some(seen),
            (None, Some(p)) => {
                fresh = seen(history, p, dir, dockerfile).ok();
                fresh.as_ref()
            }
            (None, None) => None,
        };
        out.push((commit.clone(), first_change(before, &now)));
        previous = Some((commit.id.clone(), now));
    }
    let context = if dir.as_os_str().is_empty() { "the repository".to_string() } else { format!("{}/", dir.display()) };
    Ok(Profile { context, commits: out })
}

fn first_change(before: Option<&Seen>, now: &Seen) -> FirstChange {
    let Some(before) = before.filter(|b| b.dockerfile == now.dockerfile) else {
        return FirstChange::Dockerfile;
    };
    before
        .inputs
        .iter()
        .zip(&now.inputs)
        .find(|(b, n)| b.own != n.own)
        .map_or(FirstChange::NothingBuilt, |(b, n)| FirstChange::Step {
            step: n.step,
            instruction: n.instruction.clone(),
            what: inputs::changed(b, n),
        })
}

fn seen(history: &History, commit: &str, dir: &Path, dockerfile: &Path) -> Result<Seen, HistoryError> {
    let path = dir.join(dockerfile);
    let text = history.file(commit, &path)?.ok_or_else(|| HistoryError::DockerfileMissing {
        repository: history.path().to_path_buf(),
        commit: commit.to_string(),
        path: path.clone(),
    })?;
    let tree_error = |why: String| HistoryError::Tree { repository: history.path().to_path_buf(), commit: commit.to_string(), why };
    let parsed = Dockerfile::parse(&String::from_utf8_lossy(&text)).map_err(|e| tree_error(format!("{}:{}: {}", path.display(), e.line, e.message)))?;
    let scratch = tempfile::tempdir().map_err(|e| tree_error(format!("a scratch directory: {e}")))?;
    history.materialize(commit, dir, scratch.path())?;
    let inputs = inputs::step_inputs(&parsed, scratch.path()).map_err(|e| tree_error(e.to_string()))?;
    Ok(Seen { dockerfile: text, inputs })
}
