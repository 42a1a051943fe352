//! A local git repository, read with git2 (libgit2; no network): its commits along first parents, and each
//! commit's tree under a directory as a build context (`Change::Commit`), with its `.dockerignore`,
//! deletions, renames, file modes and symbolic links as the commit has them. `crate::history` builds the
//! change profile and `scenario from-git` on it.

use std::path::{Path, PathBuf};

/// Why a repository could not be read. Each names the repository and displays as one line.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error("{}: not a git repository ({why}); give the directory of a clone", repository.display())]
    NotARepository { repository: PathBuf, why: String },
    #[error("{}: unknown revision `{revision}` ({why}); `git log --oneline` lists the commits", repository.display())]
    UnknownRevision { repository: PathBuf, revision: String, why: String },
    #[error(
        "{}: a shallow clone without {what}; fetch more history (`git fetch --deepen=N` or `git fetch --unshallow`)",
        repository.display()
    )]
    Shallow { repository: PathBuf, what: String },
    #[error("{}: commit {commit} has no {} (the Dockerfile is absent at that commit); start the range after it", repository.display(), path.display())]
    DockerfileMissing { repository: PathBuf, commit: String, path: PathBuf },
    #[error("{}: commit {commit}: {why}", repository.display())]
    Tree { repository: PathBuf, commit: String, why: String },
    #[error("{}: cannot {action}: {why}", repository.display())]
    Read { repository: PathBuf, action: &'static str, why: String },
}

/// Whether a revision is written as a (possibly short) commit id rather than a name.
fn looks_like_an_id(revision: &str) -> bool {
    revision.len() >= 4 && revision.chars().all(|c| c.is_ascii_hexdigit())
}

/// One commit of the range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Commit {
    /// The full hexadecimal id.
    pub id: String,
    pub summary: String,
}

impl Commit {
    pub fn short(&self) -> &str {
        &self.id[..self.id.len().min(10)]
    }
}

/// Which commits: the last N of a branch, or a range, always along first parents (the branch's own line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    Last { count: usize, branch: Option<String> },
    /// `A..B`: the commits after A up to B.
    Range { from: String, to: String },
}

/// An open repository.
pub struct History {
    repo: git2::Repository,
    path: PathBuf,
}

impl History {
    /// Opens the repository at `path` (its work tree or its `.git`), or the one `path` is inside.
    pub fn discover(path: &Path) -> Result<History, HistoryError> {
        let repo = git2::Repository::discover(path)
            .map_err(|e| HistoryError::NotARepository { repository: path.to_path_buf(), why: e.message().to_string() })?;
        Ok(History { repo, path: path.to_path_buf() })
    }

    /// The repository's work tree (where a context directory lives), or its git directory when bare.
    pub fn root(&self) -> PathBuf {
        self.repo.workdir().unwrap_or_else(|| self.repo.path()).to_path_buf()
    }

    fn read_error(&self, action: &'static str) -> impl FnOnce(git2::Error) -> HistoryError + '_ {
        move |e| HistoryError::Read { repository: self.path.clone(), action, why: e.message().to_string() }
    }

    fn resolve(&self, revision: &str) -> Result<git2::Commit<'_>, HistoryError> {
        let unknown = |e: git2::Error| HistoryError::UnknownRevision {
            repository: self.path.clone(),
            revision: revision.to_string(),
            why: e.message().to_string(),
        };
        match self.repo.revparse_single(revision).and_then(|o| o.peel_to_commit()) {
            Ok(commit) => Ok(commit),
            // A commit id a shallow clone lacks may lie beyond its boundary; a name it lacks is just unknown.
            Err(_) if self.repo.is_shallow() && looks_like_an_id(revision) => {
                Err(HistoryError::Shallow { repository: self.path.clone(), what: format!("`{revision}`") })
            }
            Err(e) => Err(unknown(e)),
        }
    }

    /// The repository as it was given.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The id of a commit's first parent; `None` for a root commit.
    pub fn first_parent(&self, commit: &str) -> Result<Option<String>, HistoryError> {
        Ok(self.resolve(commit)?.parent(0).ok().map(|p| p.id().to_string()))
    }

    /// One commit by any revision git understands (a full or short id, `HEAD~2`, a branch).
    pub fn commit(&self, revision: &str) -> Result<Commit, HistoryError> {
        self.resolve(revision).map(|c| describe(&c))
    }

    /// The selected commits, oldest first.
    pub fn commits(&self, selection: &Selection) -> Result<Vec<Commit>, HistoryError> {
        let (tip, stop, count) = match selection {
            Selection::Last { count, branch } => (self.resolve(branch.as_deref().unwrap_or("HEAD"))?, None, Some(*count)),
            Selection::Range { from, to } => (self.resolve(to)?, Some(self.resolve(from)?.id()), None),
        };
        let mut commits = vec![];
        let mut at = Some(tip);
        let mut reached_root = false;
        while let Some(commit) = at.take() {
            if Some(commit.id()) == stop || count.is_some_and(|n| commits.len() == n) {
                break;
            }
            reached_root = commit.parent_count() == 0;
            at = match commit.parent_count() {
                0 => None,
                _ => match commit.parent(0) {
                    Ok(parent) => Some(parent),
                    Err(_) if self.repo.is_shallow() => {
                        return Err(HistoryError::Shallow { repository: self.path.clone(), what: shallow_what(selection) })
                    }
                    Err(e) => return Err(self.read_error("read a parent commit")(e)),
                },
            };
            commits.push(describe(&commit));
        }
        if stop.is_some() && reached_root {
            if self.repo.is_shallow() {
                // The walk stopped at the shallow boundary, which may hide A.
                return Err(HistoryError::Shallow { repository: self.path.clone(), what: shallow_what(selection) });
            }
            // The walk reached the root without meeting A: A is not an ancestor along first parents.
            if let Selection::Range { from, to } = selection {
                return Err(HistoryError::UnknownRevision {
                    repository: self.path.clone(),
                    revision: format!("{from}..{to}"),
                    why: format!("`{from}` is not on the first-parent line of `{to}`"),
                });
            }
        }
        if let (Some(n), true) = (count, self.repo.is_shallow()) {
            if commits.len() < n && reached_root {
                return Err(HistoryError::Shallow { repository: self.path.clone(), what: shallow_what(selection) });
            }
        }
        commits.reverse();
        Ok(commits)
    }

    /// The id of the tree at `dir` (relative to the repository's root) in `commit`; `None` when absent.
    fn subtree(&self, commit: &str, dir: &Path) -> Result<Option<git2::Oid>, HistoryError> {
        let tree = self.resolve(commit)?.tree().map_err(self.read_error("read a commit's tree"))?;
        if dir.as_os_str().is_empty() {
            return Ok(Some(tree.id()));
        }
        Ok(tree.get_path(dir).ok().map(|e| e.id()))
    }

    /// Whether `commit` changed anything under `dir` against its first parent (a root commit does).
    pub fn touches(&self, commit: &str, dir: &Path) -> Result<bool, HistoryError> {
        let this = self.resolve(commit)?;
        let Ok(parent) = this.parent(0) else { return Ok(true) };
        Ok(self.subtree(commit, dir)? != self.subtree(&parent.id().to_string(), dir)?)
    }

    /// The content of one file of `commit`, or `None` when it has none at `path`.
    pub fn file(&self, commit: &str, path: &Path) -> Result<Option<Vec<u8>>, HistoryError> {
        let tree = self.resolve(commit)?.tree().map_err(self.read_error("read a commit's tree"))?;
        let Ok(entry) = tree.get_path(path) else { return Ok(None) };
        match entry.to_object(&self.repo).ok().and_then(|o| o.into_blob().ok()) {
            Some(blob) => Ok(Some(blob.content().to_vec())),
            None => Ok(None),
        }
    }

    /// Writes the tree of `commit` under `dir` into `dest` (an empty directory): files with their
    /// executable bit, symbolic links as links (refused when they point outside `dest`), directories; a
    /// submodule as the empty directory `git checkout` leaves.
    pub fn materialize(&self, commit: &str, dir: &Path, dest: &Path) -> Result<(), HistoryError> {
        let commit_obj = self.resolve(commit)?;
        let id = commit_obj.id().to_string();
        let fail = |why: String| HistoryError::Tree { repository: self.path.clone(), commit: id.clone(), why };
        let root = commit_obj.tree().map_err(self.read_error("read a commit's tree"))?;
        let tree = if dir.as_os_str().is_empty() {
            root
        } else {
            let entry = root.get_path(dir).map_err(|_| fail(format!("has no directory {}", dir.display())))?;
            entry.to_object(&self.repo).and_then(|o| o.peel_to_tree()).map_err(|_| fail(format!("{} is not a directory", dir.display())))?
        };
        let mut error = None;
        tree.walk(git2::TreeWalkMode::PreOrder, |parent, entry| {
            let Ok(name) = entry.name() else {
                error = Some(fail(format!("{parent}: a file name that is not UTF-8")));
                return git2::TreeWalkResult::Abort;
            };
            let rel = PathBuf::from(parent).join(name);
            match self.write_entry(entry, &rel, dest) {
                Ok(()) => git2::TreeWalkResult::Ok,
                Err(why) => {
                    error = Some(fail(why));
                    git2::TreeWalkResult::Abort
                }
            }
        })
        .map_err(|e| error.take().unwrap_or_else(|| fail(e.message().to_string())))?;
        error.map_or(Ok(()), Err)
    }

    fn write_entry(&self, entry: &git2::TreeEntry<'_>, rel: &Path, dest: &Path) -> Result<(), String> {
        use std::os::unix::fs::PermissionsExt;
        let path = dest.join(rel);
        let io = |e: std::io::Error| format!("{}: {e}", rel.display());
        let blob = || entry.to_object(&self.repo).and_then(|o| o.peel_to_blob()).map_err(|e| format!("{}: {}", rel.display(), e.message()));
        match entry.filemode() {
            0o040000 | 0o160000 => std::fs::create_dir_all(&path).map_err(io),
            0o120000 => {
                let target = String::from_utf8_lossy(blob()?.content()).into_owned();
                if !link_stays_inside(rel, Path::new(&target)) {
                    return Err(format!("the symbolic link {} -> {target} leaves the context; the build could not follow it", rel.display()));
                }
                std::os::unix::fs::symlink(&target, &path).map_err(io)
            }
            mode => {
                std::fs::write(&path, blob()?.content()).map_err(io)?;
                let bits = if mode == 0o100755 { 0o755 } else { 0o644 };
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(bits)).map_err(io)
            }
        }
    }
}

/// Whether the link at `rel` (relative to the context) to `target` stays inside the context, as written.
fn link_stays_inside(rel: &Path, target: &Path) -> bool {
    if target.has_root() {
        return false;
    }
    let mut depth = rel.components().count() as i64 - 1;
    for part in target.components() {
        match part {
            std::path::Component::ParentDir => depth -= 1,
            std::path::Component::Normal(_) => depth += 1,
            _ => {}
        }
        if depth < 0 {
            return false;
        }
    }
    true
}

fn describe(commit: &git2::Commit<'_>) -> Commit {
    Commit { id: commit.id().to_string(), summary: commit.summary().ok().flatten().unwrap_or_default().to_string() }
}

fn shallow_what(selection: &Selection) -> String {
    match selection {
        Selection::Last { count, .. } => format!("the last {count} commits"),
        Selection::Range { from, to } => format!("the range {from}..{to}"),
    }
}
