//! `layerbench scenario from-git`: a scenario whose pipeline runs are a repository's commits in order, the
//! oldest one cold, each `{ commit = "<id>" }`.

use std::path::{Path, PathBuf};

use serde::Serialize;

pub use crate::scenario::history::HistoryInfo;
use super::profile::{self, FirstChange, Profile};
use crate::git::{Commit, History, HistoryError, Selection};

/// What `from-git` was asked for.
#[derive(Debug, Clone)]
pub struct FromGit {
    /// The repository (its work tree, or a directory inside it).
    pub repository: PathBuf,
    /// The build context, relative to the repository's root (empty: the root).
    pub context: PathBuf,
    /// The Dockerfile, relative to the context.
    pub dockerfile: PathBuf,
    pub selection: Selection,
    /// Fold the commits that touch nothing in the context into a count instead of runs.
    pub skip_untouched: bool,
    /// Keep K commits spread evenly over the range (the oldest always).
    pub sample: Option<usize>,
}

/// The range's commits and their profile, without writing anything (`--profile`).
pub fn read(request: &FromGit) -> Result<(History, Vec<Commit>, Profile), HistoryError> {
    let history = History::discover(&request.repository)?;
    let commits = history.commits(&request.selection)?;
    if commits.is_empty() {
        return Err(HistoryError::UnknownRevision {
            repository: request.repository.clone(),
            revision: selection_words(&request.selection),
            why: "it selects no commit".into(),
        });
    }
    let profile = profile::profile(&history, &commits, &request.context, &request.dockerfile)?;
    Ok((history, commits, profile))
}

/// The scenario file's text, for a scenario file to be written at `out` (its context path is relative to it).
pub fn write(request: &FromGit, out: &Path) -> Result<(String, HistoryInfo), HistoryError> {
    let (history, commits, profile) = read(request)?;
    let untouched = |c: &Commit| profile.commits.iter().any(|(p, f)| p.id == c.id && *f == FirstChange::Untouched);
    let mut chosen: Vec<&Commit> = commits.iter().enumerate().filter(|(i, c)| *i == 0 || !request.skip_untouched || !untouched(c)).map(|(_, c)| c).collect();
    let skipped_untouched = commits.len() - chosen.len();
    let sampled = match request.sample {
        Some(k) if k < chosen.len() => {
            chosen = spread(&chosen, k.max(1));
            true
        }
        _ => false,
    };
    let summary = profile.summarise();
    let info = HistoryInfo {
        source: format!("{} ({})", history.root().display().to_string().trim_end_matches('/'), selection_words(&request.selection)),
        commits: commits.len(),
        runs: chosen.len(),
        skipped_untouched,
        sampled,
        profile: summary,
    };
    let context = history.root().join(&request.context);
    let name = scenario_name(&history.root());
    let mut text = format!(
        "# Written by `layerbench scenario from-git`: {}.\n# Profile: {}.\n",
        info.describe(),
        info.profile.summary
    );
    // Each run builds its commit's Dockerfile; an edit is worth knowing when reading the results.
    for commit in profile.dockerfile_edits().into_iter().filter(|c| c.id != commits[0].id) {
        text.push_str(&format!("# Commit {} edits the Dockerfile: the runs from it on build the edited one.\n", commit.short()));
    }
    text.push_str(&format!(
        "name = {}\ncontext = {}\ndockerfile = {}\nrepository = {}\niterations = 1\n",
        quote(&name),
        quote(&relative_to(&context, out.parent().unwrap_or(Path::new(""))).display().to_string()),
        quote(&request.dockerfile.display().to_string()),
        quote(&name.to_ascii_lowercase())
    ));
    for (i, commit) in chosen.iter().enumerate() {
        let run = if i == 0 { "cold".to_string() } else { format!("c{:03}-{}", i + 1, &commit.id[..7]) };
        text.push_str(&format!(
            "\n# {}\n[[pipeline]]\nname = {}\nchange = {{ commit = {} }}\n",
            one_line(&commit.summary),
            quote(&run),
            quote(&commit.id)
        ));
    }
    #[derive(Serialize)]
    struct Table<'a> {
        history: &'a HistoryInfo,
    }
    text.push('\n');
    text.push_str(&toml::to_string(&Table { history: &info }).map_err(|e| HistoryError::Read {
        repository: request.repository.clone(),
        action: "write the scenario",
        why: e.to_string(),
    })?);
    Ok((text, info))
}

/// K commits spread evenly over the list, its first and last included.
fn spread<'a>(commits: &[&'a Commit], k: usize) -> Vec<&'a Commit> {
    if k == 1 || commits.len() <= 1 {
        return commits.iter().take(1).copied().collect();
    }
    let last = commits.len() - 1;
    let mut picked: Vec<usize> = (0..k).map(|i| (i * last + (k - 1) / 2) / (k - 1)).collect();
    picked.dedup();
    picked.into_iter().map(|i| commits[i]).collect()
}

fn selection_words(selection: &Selection) -> String {
    match selection {
        Selection::Last { count, branch } => format!("the last {count} commits of {}", branch.as_deref().unwrap_or("HEAD")),
        Selection::Range { from, to } => format!("{from}..{to}"),
    }
}

/// A scenario name from the repository's directory name: letters, digits, `.`, `_`, `-`, at most 32.
fn scenario_name(root: &Path) -> String {
    let raw = root.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let cleaned: String = raw.trim_end_matches(".git").chars().map(|c| if c.is_ascii_alphanumeric() || "._-".contains(c) { c } else { '-' }).collect();
    let cleaned = cleaned.trim_start_matches(|c: char| !c.is_ascii_alphanumeric()).chars().take(crate::scenario::MAX_NAME_LEN).collect::<String>();
    if cleaned.is_empty() {
        "history".into()
    } else {
        cleaned
    }
}

/// `path` relative to `base` when it lies under it, else absolute.
fn relative_to(path: &Path, base: &Path) -> PathBuf {
    let (Ok(path), Ok(base)) = (path.canonicalize(), base.canonicalize()) else { return path.to_path_buf() };
    path.strip_prefix(&base).map(|p| if p.as_os_str().is_empty() { PathBuf::from(".") } else { p.to_path_buf() }).unwrap_or(path)
}

/// A TOML basic string.
fn quote(text: &str) -> String {
    toml::Value::String(text.to_string()).to_string()
}

fn one_line(text: &str) -> String {
    text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect()
}
