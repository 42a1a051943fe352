//! Per-iteration copies of the build context, the changes applied to them, and their tar stream.

use std::fs;
use std::io::Write;
use std::path::{Component, Path, PathBuf};

use super::{io_at, Change, Scenario, ScenarioError};

/// Copies the files of the scenario's context that a build would see (`.dockerignore` applied)
/// into `dest_dir`, which is created and must be absent or empty, and returns it.
/// Permission bits and mtimes are kept, like `cp -p`; the scenario's own files are only read.
pub fn prepare_iteration_context(scenario: &Scenario, dest_dir: &Path) -> Result<PathBuf, ScenarioError> {
    if fs::read_dir(dest_dir).is_ok_and(|mut entries| entries.next().is_some()) {
        return Err(ScenarioError::io(
            "use it for a context copy",
            dest_dir,
            std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                "it exists and is not empty; remove it first",
            ),
        ));
    }
    fs::create_dir_all(dest_dir).map_err(io_at("create the directory", dest_dir))?;
    let dest_dir = dest_dir.canonicalize().map_err(io_at("resolve", dest_dir))?;
    if dest_dir.starts_with(&scenario.context) {
        return Err(ScenarioError::io(
            "use it for a context copy",
            &dest_dir,
            std::io::Error::other(format!(
                "it is inside the context {}; choose a directory outside it",
                scenario.context.display()
            )),
        ));
    }
    for entry in context_entries(&scenario.context)? {
        let dest = dest_dir.join(&entry.rel);
        if entry.meta.is_dir() {
            fs::create_dir_all(&dest).map_err(io_at("create the directory", &dest))?;
            fs::set_permissions(&dest, entry.meta.permissions())
                .map_err(io_at("set permissions of", &dest))?;
        } else if entry.meta.is_symlink() {
            let target = fs::read_link(&entry.path).map_err(io_at("read the link", &entry.path))?;
            std::os::unix::fs::symlink(&target, &dest).map_err(io_at("create the link", &dest))?;
        } else {
            if let Some(parent) = dest.parent() {
                fs::create_dir_all(parent).map_err(io_at("create the directory", parent))?;
            }
            fs::copy(&entry.path, &dest).map_err(io_at("copy the file to", &dest))?;
            let modified = entry.meta.modified().map_err(io_at("read the mtime of", &entry.path))?;
            fs::File::options()
                .write(true)
                .open(&dest)
                .and_then(|f| f.set_modified(modified))
                .map_err(io_at("set the mtime of", &dest))?;
        }
    }
    Ok(dest_dir)
}

/// Applies a pipeline run's change to a context copy. Refuses paths outside `context_dir`, also
/// through a symbolic link of the copy, and writes to the resolved path, so nothing is followed
/// after the check.
pub fn apply_change(context_dir: &Path, change: &Change) -> Result<(), ScenarioError> {
    let (file, bytes, append) = match change {
        Change::None => return Ok(()),
        Change::Commit { id, repository, dir } => return replace_with_commit(context_dir, id, repository, dir),
        Change::Append { file, line } => (file, format!("{line}\n"), true),
        Change::Write { file, content } => (file, content.clone(), false),
    };
    let refuse = |reason: Outside| ScenarioError::Change { file: file.clone(), reason: reason.to_string() };
    check_inside(file).map_err(refuse)?;
    let path = context_dir.join(resolve_inside(context_dir, file).map_err(refuse)?);
    if append {
        let existing = fs::read(&path).map_err(io_at("read the file to change", &path))?;
        // Without a newline first, the line would be glued onto the file's last line.
        let separator = if existing.is_empty() || existing.ends_with(b"\n") { "" } else { "\n" };
        let mut f =
            fs::File::options().append(true).open(&path).map_err(io_at("open the file to change", &path))?;
        f.write_all(format!("{separator}{bytes}").as_bytes()).map_err(io_at("append to", &path))
    } else {
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(io_at("create the parent directory of", &path))?;
        }
        fs::write(&path, bytes).map_err(io_at("write", &path))
    }
}

/// Empties the context copy and writes the commit's tree under `dir` into it.
fn replace_with_commit(context_dir: &Path, id: &str, repository: &Path, dir: &Path) -> Result<(), ScenarioError> {
    for entry in fs::read_dir(context_dir).map_err(io_at("read", context_dir))? {
        let path = entry.map_err(io_at("read", context_dir))?.path();
        let removed = match fs::symlink_metadata(&path) {
            Ok(m) if m.is_dir() => fs::remove_dir_all(&path),
            _ => fs::remove_file(&path),
        };
        removed.map_err(io_at("remove", &path))?;
    }
    let history = crate::git::History::discover(repository)
        .map_err(|e| ScenarioError::Change { file: PathBuf::from(id), reason: e.to_string() })?;
    history.materialize(id, dir, context_dir).map_err(|e| ScenarioError::Change { file: PathBuf::from(id), reason: e.to_string() })
}

/// An uncompressed tar of the context for the Engine's build API: paths relative to the context,
/// sorted, `.dockerignore` applied, owner 0:0 as the docker CLI sends it, modes and mtimes kept.
pub fn tar_context(context_dir: &Path) -> Result<Vec<u8>, ScenarioError> {
    tar_context_with(context_dir, None)
}

/// [`tar_context`], with the file at `replaced.0` (relative to the context; links on the way followed) holding
/// `replaced.1` instead of its own content: the Dockerfile as the builders are served it.
pub fn tar_context_with(context_dir: &Path, replaced: Option<(&Path, &[u8])>) -> Result<Vec<u8>, ScenarioError> {
    let replaced = match replaced {
        Some((rel, content)) => {
            let real = resolve_inside(context_dir, rel)
                .map_err(|why| ScenarioError::Change { file: rel.to_path_buf(), reason: why.to_string() })?;
            Some((super::slash_path(&real), content))
        }
        None => None,
    };
    let mut tar = tar::Builder::new(Vec::new());
    for entry in context_entries(context_dir)? {
        let mut header = tar::Header::new_gnu();
        header.set_metadata_in_mode(&entry.meta, tar::HeaderMode::Complete);
        header.set_uid(0);
        header.set_gid(0);
        header
            .set_username("")
            .and_then(|_| header.set_groupname(""))
            .map_err(io_at("add to the tar", &entry.path))?;
        if let Some((_, content)) = replaced.as_ref().filter(|(rel, _)| *rel == entry.rel && entry.meta.is_file()) {
            header.set_size(content.len() as u64);
            tar.append_data(&mut header, &entry.rel, *content)
        } else if entry.meta.is_dir() {
            tar.append_data(&mut header, format!("{}/", entry.rel), std::io::empty())
        } else if entry.meta.is_symlink() {
            let target = fs::read_link(&entry.path).map_err(io_at("read the link", &entry.path))?;
            tar.append_link(&mut header, &entry.rel, target)
        } else {
            let file = fs::File::open(&entry.path).map_err(io_at("read", &entry.path))?;
            tar.append_data(&mut header, &entry.rel, file)
        }
        .map_err(io_at("add to the tar", &entry.path))?;
    }
    tar.into_inner().map_err(io_at("finish the tar of", context_dir))
}

/// Why a path a scenario names is not a file inside its context; each displays as words for the user.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Outside {
    #[error("the path is empty; name a file of the context")]
    Empty,
    #[error("the path holds a control character (a newline, a tab, …); rename the file")]
    ControlCharacter,
    #[error("`..` leaves the context; name a file inside it")]
    ParentDir,
    #[error("absolute paths are not allowed; use a path relative to the context")]
    Absolute,
    #[error("goes through the symbolic link `{link}` -> `{}`, which leaves the context", target.display())]
    LinkLeaves { link: String, target: PathBuf },
    #[error("goes through more than {MAX_LINKS} symbolic links from `{from}` on (a loop?)")]
    TooManyLinks { from: String },
    /// The link's read error, in words (an `io::Error` is neither `Clone` nor comparable).
    #[error("goes through the symbolic link `{link}`, which cannot be read: {error}")]
    UnreadableLink { link: String, error: String },
    #[error("it ends with `/`; name the Dockerfile, not its directory")]
    Directory,
    #[error("it names the context directory itself; name the Dockerfile")]
    ContextItself,
}

/// `Ok` when `file` is a relative path that stays inside the context as written; else why not.
/// Symbolic links are [`resolve_inside`]'s business.
pub(crate) fn check_inside(file: &Path) -> Result<(), Outside> {
    if file.as_os_str().is_empty() {
        return Err(Outside::Empty);
    }
    if file.to_string_lossy().chars().any(char::is_control) {
        return Err(Outside::ControlCharacter);
    }
    for component in file.components() {
        match component {
            Component::Normal(_) | Component::CurDir => {}
            Component::ParentDir => return Err(Outside::ParentDir),
            Component::RootDir | Component::Prefix(_) => return Err(Outside::Absolute),
        }
    }
    Ok(())
}

/// Linux gives up after 40 links in one lookup (`MAXSYMLINKS`); so does layerbench.
const MAX_LINKS: usize = 40;

/// Where `rel` (already [`check_inside`]) leads inside `root`, following every symbolic link on
/// the way as the kernel would, as a path relative to `root` without any link in it. Parts that do
/// not exist yet are kept as written. Refuses, naming the link, a link with an absolute target (it
/// would point at the same place from every copy of the context, so never inside the copy) and a
/// link whose `..` climbs out of `root`.
pub(crate) fn resolve_inside(root: &Path, rel: &Path) -> Result<PathBuf, Outside> {
    // The link each pending part came from, to name it when that part leaves the root.
    struct Link {
        path: String,
        target: PathBuf,
    }
    let leaves = |link: &Link| Outside::LinkLeaves { link: link.path.clone(), target: link.target.clone() };
    let parts = |path: &Path, from: Option<usize>| -> Vec<(Option<std::ffi::OsString>, Option<usize>)> {
        path.components()
            .filter_map(|c| match c {
                Component::Normal(name) => Some((Some(name.to_os_string()), from)),
                Component::ParentDir => Some((None, from)),
                _ => None,
            })
            .collect()
    };
    let mut links: Vec<Link> = vec![];
    let mut pending: std::collections::VecDeque<_> = parts(rel, None).into();
    let mut resolved = PathBuf::new();
    while let Some((part, from)) = pending.pop_front() {
        let Some(name) = part else {
            // `..` from a link's target: climbing out of the root is leaving the context.
            if !resolved.pop() {
                return Err(match from {
                    Some(link) => leaves(&links[link]),
                    None => Outside::ParentDir,
                });
            }
            continue;
        };
        let here = root.join(&resolved).join(&name);
        let is_link = fs::symlink_metadata(&here).is_ok_and(|m| m.file_type().is_symlink());
        if !is_link {
            resolved.push(name);
            continue;
        }
        let path = resolved.join(&name).to_string_lossy().into_owned();
        if links.len() == MAX_LINKS {
            return Err(Outside::TooManyLinks { from: path });
        }
        let target = fs::read_link(&here)
            .map_err(|e| Outside::UnreadableLink { link: path.clone(), error: e.to_string() })?;
        let link = Link { path, target };
        if link.target.has_root() {
            return Err(leaves(&link));
        }
        let expanded = parts(&link.target, Some(links.len()));
        links.push(link);
        for part in expanded.into_iter().rev() {
            pending.push_front(part);
        }
    }
    Ok(resolved)
}

/// A file, directory or symlink of a context that a build sees.
pub(crate) struct ContextEntry {
    /// Relative to the context, `/`-separated, no trailing slash.
    pub rel: String,
    pub path: PathBuf,
    pub meta: fs::Metadata,
}

/// Every entry of the context not excluded by its `.dockerignore`, sorted by relative path.
pub(crate) fn context_entries(context: &Path) -> Result<Vec<ContextEntry>, ScenarioError> {
    let ignore = DockerIgnore::load(context)?;
    let mut entries = vec![];
    walk(context, "", &ignore, &mut entries)?;
    entries.sort_by(|a, b| a.rel.cmp(&b.rel));
    Ok(entries)
}

fn walk(
    dir: &Path,
    prefix: &str,
    ignore: &DockerIgnore,
    out: &mut Vec<ContextEntry>,
) -> Result<(), ScenarioError> {
    let read = fs::read_dir(dir).map_err(io_at("read the directory", dir))?;
    for item in read {
        let item = item.map_err(io_at("read the directory", dir))?;
        let path = item.path();
        let meta = fs::symlink_metadata(&path).map_err(io_at("read", &path))?;
        let name = item.file_name();
        let Some(name) = name.to_str() else {
            let error = std::io::Error::other("the name is not UTF-8; rename it or add it to .dockerignore");
            return Err(ScenarioError::io("add to the context", &path, error));
        };
        let rel = format!("{prefix}{name}");
        let excluded = ignore.excluded_by(&rel).is_some();
        if meta.is_dir() {
            // An excluded directory still has to be walked when a `!pattern` may re-include a child.
            if !excluded || ignore.has_exceptions() {
                walk(&path, &format!("{rel}/"), ignore, out)?;
            }
        } else if !meta.is_file() && !meta.is_symlink() && !excluded {
            let error = std::io::Error::other(
                "only files, directories and symlinks can be sent; add it to .dockerignore",
            );
            return Err(ScenarioError::io("add to the context", &path, error));
        }
        if !excluded {
            out.push(ContextEntry { rel, path, meta });
        }
    }
    Ok(())
}

/// `.dockerignore` patterns as the docker CLI reads them. Supported: `#` comments, blank lines,
/// `!` exceptions (the last matching pattern wins), `*`, `?`, `**`, `\` escapes, leading `/`
/// and `./`, and a pattern matching a directory excluding everything under it. Character classes
/// (`[a-z]`) are rejected with the line, rather than silently matched differently.
#[derive(Debug)]
pub(crate) struct DockerIgnore {
    patterns: Vec<Pattern>,
}

#[derive(Debug)]
struct Pattern {
    /// 1-based line in `.dockerignore`.
    line: usize,
    exception: bool,
    tokens: Vec<Token>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Token {
    Literal(char),
    /// `*`: any run of characters within one path component.
    Star,
    /// `?`: one character other than `/`.
    Question,
    /// `**/` (or `**` before more pattern): any number of leading directories, none included.
    Directories,
    /// `**` at the end: everything.
    Rest,
}

impl DockerIgnore {
    /// Reads `CONTEXT/.dockerignore`; no file means nothing is excluded.
    pub(crate) fn load(context: &Path) -> Result<DockerIgnore, ScenarioError> {
        let name = Path::new(".dockerignore");
        let path = context.join(name);
        // The docker CLI follows a linked .dockerignore; layerbench reads nothing outside the context.
        resolve_inside(context, name)
            .map_err(|reason| ScenarioError::io("read", &path, std::io::Error::other(reason)))?;
        match fs::read_to_string(&path) {
            Ok(text) => DockerIgnore::parse(&text, &path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(DockerIgnore { patterns: vec![] }),
            Err(e) => Err(ScenarioError::io("read", &path, e)),
        }
    }

    fn parse(text: &str, path: &Path) -> Result<DockerIgnore, ScenarioError> {
        let mut patterns = vec![];
        for (index, raw) in text.lines().enumerate() {
            let mut pattern = raw.trim();
            if pattern.is_empty() || pattern.starts_with('#') {
                continue;
            }
            let exception = pattern.starts_with('!');
            if exception {
                pattern = pattern[1..].trim();
            }
            if let Some(column) = raw.find('[') {
                return Err(ScenarioError::Invalid {
                    path: path.to_path_buf(),
                    line: index + 1,
                    column: raw[..column].chars().count() + 1,
                    message: "character classes (`[...]`) are not supported in .dockerignore; use `*` or `?`"
                        .into(),
                });
            }
            let cleaned = clean(pattern);
            if cleaned.is_empty() {
                continue;
            }
            patterns.push(Pattern { line: index + 1, exception, tokens: tokenize(&cleaned) });
        }
        Ok(DockerIgnore { patterns })
    }

    /// The line of the last pattern excluding `rel` (a `/`-separated relative path), if excluded.
    pub(crate) fn excluded_by(&self, rel: &str) -> Option<usize> {
        // A pattern naming a directory also matches everything below it, so the path and each
        // of its ancestors are candidates (moby's `MatchesOrParentMatches`).
        let components: Vec<&str> = rel.split('/').collect();
        let candidates: Vec<Vec<char>> =
            (1..=components.len()).map(|n| components[..n].join("/").chars().collect()).collect();
        let mut excluded_by = None;
        for pattern in &self.patterns {
            if candidates.iter().any(|c| matches(&pattern.tokens, c)) {
                excluded_by = (!pattern.exception).then_some(pattern.line);
            }
        }
        excluded_by
    }

    fn has_exceptions(&self) -> bool {
        self.patterns.iter().any(|p| p.exception)
    }
}

/// Like Go's `filepath.Clean` on a slash path, without the leading `/`: what the CLI matches.
fn clean(pattern: &str) -> String {
    let mut parts: Vec<&str> = vec![];
    for part in pattern.split('/') {
        match part {
            "" | "." => {}
            ".." if parts.last().is_some_and(|p| *p != "..") => {
                parts.pop();
            }
            _ => parts.push(part),
        }
    }
    parts.join("/")
}

fn tokenize(pattern: &str) -> Vec<Token> {
    let mut tokens = vec![];
    let mut chars = pattern.chars().peekable();
    while let Some(c) = chars.next() {
        tokens.push(match c {
            '*' if chars.peek() == Some(&'*') => {
                chars.next();
                if chars.peek() == Some(&'/') {
                    chars.next();
                }
                if chars.peek().is_none() {
                    Token::Rest
                } else {
                    Token::Directories
                }
            }
            '*' => Token::Star,
            '?' => Token::Question,
            '\\' => Token::Literal(chars.next().unwrap_or('\\')),
            c => Token::Literal(c),
        });
    }
    tokens
}

fn matches(tokens: &[Token], s: &[char]) -> bool {
    let Some((first, rest)) = tokens.split_first() else { return s.is_empty() };
    match first {
        Token::Literal(c) => s.first() == Some(c) && matches(rest, &s[1..]),
        Token::Question => s.first().is_some_and(|c| *c != '/') && matches(rest, &s[1..]),
        Token::Star => {
            (0..=s.len()).take_while(|&i| i == 0 || s[i - 1] != '/').any(|i| matches(rest, &s[i..]))
        }
        Token::Rest => true,
        Token::Directories => {
            matches(rest, s) || (1..=s.len()).filter(|&i| s[i - 1] == '/').any(|i| matches(rest, &s[i..]))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ignore(text: &str) -> DockerIgnore {
        DockerIgnore::parse(text, Path::new(".dockerignore")).unwrap()
    }

    #[test]
    fn dockerignore_patterns() {
        let i = ignore("# comment\n\n*.pyc\n/build\n**/__pycache__\ndocs/*.md\n!docs/keep.md\nsecret?.txt\n");
        assert_eq!(i.excluded_by("a.pyc"), Some(3));
        assert_eq!(i.excluded_by("app/a.pyc"), None, "`*` stays within one component, as in Docker");
        assert_eq!(i.excluded_by("build"), Some(4));
        assert_eq!(i.excluded_by("build/out/x"), Some(4), "a directory pattern excludes its contents");
        assert_eq!(i.excluded_by("buildx"), None);
        assert_eq!(i.excluded_by("__pycache__/x"), Some(5));
        assert_eq!(i.excluded_by("app/deep/__pycache__/x.pyc"), Some(5));
        assert_eq!(i.excluded_by("docs/readme.md"), Some(6));
        assert_eq!(i.excluded_by("docs/keep.md"), None, "the later `!` wins");
        assert_eq!(i.excluded_by("secret1.txt"), Some(8));
        assert_eq!(i.excluded_by("secret12.txt"), None);
        assert_eq!(ignore("**\n!app\n").excluded_by("app/x"), None);
        assert_eq!(ignore("**\n!app\n").excluded_by("other"), Some(1));
    }

    #[test]
    fn dockerignore_rejects_character_classes_with_position() {
        let err = DockerIgnore::parse("ok\n  *.[ch]\n", Path::new("ctx/.dockerignore")).unwrap_err();
        assert!(err.to_string().starts_with("ctx/.dockerignore:2:5: character classes"), "{err}");
    }

    fn write(dir: &Path, rel: &str, content: &str) {
        let path = dir.join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, content).unwrap();
    }

    fn tar_listing(bytes: &[u8]) -> Vec<(String, u64, u64, Vec<u8>)> {
        let mut archive = tar::Archive::new(bytes);
        archive
            .entries()
            .unwrap()
            .map(|e| {
                let mut e = e.unwrap();
                let mut data = vec![];
                std::io::Read::read_to_end(&mut e, &mut data).unwrap();
                let h = e.header();
                (e.path().unwrap().to_string_lossy().into_owned(), h.uid().unwrap(), h.gid().unwrap(), data)
            })
            .collect()
    }

    #[test]
    fn tar_is_relative_sorted_and_honours_dockerignore() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "Dockerfile", "FROM a\n");
        write(dir.path(), "app/z.py", "z");
        write(dir.path(), "app/a.py", "a");
        write(dir.path(), "app/a.pyc", "compiled");
        write(dir.path(), ".dockerignore", "**/*.pyc\n");
        std::os::unix::fs::symlink("a.py", dir.path().join("app/link")).unwrap();
        let bytes = tar_context(dir.path()).unwrap();
        let listing = tar_listing(&bytes);
        let names: Vec<&str> = listing.iter().map(|(n, ..)| n.as_str()).collect();
        assert_eq!(names, [".dockerignore", "Dockerfile", "app/", "app/a.py", "app/link", "app/z.py"]);
        assert!(listing.iter().all(|(_, uid, gid, _)| (*uid, *gid) == (0, 0)));
        assert_eq!(listing[3].3, b"a");
        assert_eq!(bytes, tar_context(dir.path()).unwrap(), "the same context gives the same bytes");
        // The Dockerfile as builders are served it, reached through a link; the copy on disk stays as it was.
        std::os::unix::fs::symlink("Dockerfile", dir.path().join("Linked.Dockerfile")).unwrap();
        let served = tar_context_with(dir.path(), Some((Path::new("Linked.Dockerfile"), b"FROM mirror:5000/b\n"))).unwrap();
        let listing = tar_listing(&served);
        let dockerfile = listing.iter().find(|(n, ..)| n == "Dockerfile").unwrap();
        assert_eq!(dockerfile.3, b"FROM mirror:5000/b\n");
        assert_eq!(std::fs::read_to_string(dir.path().join("Dockerfile")).unwrap(), "FROM a\n");
    }

    #[test]
    fn changes_stay_inside_and_append_on_a_new_line() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "req.txt", "Flask==3.0.3");
        let append = Change::Append { file: "req.txt".into(), line: "itsdangerous==2.2.0".into() };
        apply_change(dir.path(), &append).unwrap();
        assert_eq!(
            fs::read_to_string(dir.path().join("req.txt")).unwrap(),
            "Flask==3.0.3\nitsdangerous==2.2.0\n"
        );
        let write_change = Change::Write { file: "new/dir/f.txt".into(), content: "x".into() };
        apply_change(dir.path(), &write_change).unwrap();
        assert_eq!(fs::read_to_string(dir.path().join("new/dir/f.txt")).unwrap(), "x");
        apply_change(dir.path(), &Change::None).unwrap();
        for bad in ["../escape.txt", "/etc/passwd", "a/../../b", ""] {
            let change = Change::Write { file: bad.into(), content: "x".into() };
            let err = apply_change(dir.path(), &change).unwrap_err();
            assert!(matches!(err, ScenarioError::Change { .. }), "{bad}: {err}");
        }
        assert!(!dir.path().parent().unwrap().join("escape.txt").exists());
        let missing = Change::Append { file: "nope.txt".into(), line: "x".into() };
        assert!(apply_change(dir.path(), &missing).unwrap_err().to_string().contains("nope.txt"));
    }

    /// A context with links out of it (to a directory, a file, by `..`, through a chain) and
    /// links that stay inside, next to an `outside/` directory with a secret.
    fn linked_context() -> (tempfile::TempDir, PathBuf, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let (ctx, outside) = (dir.path().join("ctx"), dir.path().join("outside"));
        write(&outside, "secret.txt", "secret\n");
        write(&ctx, "Dockerfile", "FROM a\n");
        write(&ctx, "src/main.py", "print(1)\n");
        let link = |target: &Path, name: &str| std::os::unix::fs::symlink(target, ctx.join(name)).unwrap();
        link(&outside, "abs-dir");
        link(&outside.join("secret.txt"), "abs-file");
        link(Path::new("../outside"), "up");
        link(Path::new("hop"), "chain");
        link(Path::new("src/../../outside"), "hop");
        link(Path::new("src"), "app");
        link(Path::new("app/main.py"), "main-link");
        link(Path::new("loop"), "loop");
        (dir, ctx, outside)
    }

    /// The context loaded as a scenario with one pipeline run and no change.
    fn load_cold(ctx: &Path) -> crate::scenario::Scenario {
        let file = ctx.parent().unwrap().join("s.toml");
        fs::write(&file, "name = \"t\"\ncontext = \"ctx\"\n[[pipeline]]\nname = \"cold\"\n").unwrap();
        crate::scenario::load(&file).unwrap()
    }

    #[test]
    fn links_are_followed_inside_the_context_and_refused_when_they_leave_it() {
        let (_dir, ctx, outside) = linked_context();
        let resolve = |rel: &str| resolve_inside(&ctx, Path::new(rel));
        assert_eq!(resolve("app/main.py").unwrap(), Path::new("src/main.py"));
        assert_eq!(resolve("main-link").unwrap(), Path::new("src/main.py"), "a chain that stays inside");
        assert_eq!(resolve("app/new/file.txt").unwrap(), Path::new("src/new/file.txt"));
        let outside = outside.display();
        let cases = [
            ("abs-dir/secret.txt", format!("`abs-dir` -> `{outside}`")),
            ("abs-file", format!("`abs-file` -> `{outside}/secret.txt`")),
            ("up/secret.txt", "`up` -> `../outside`".into()),
            ("chain/secret.txt", "`hop` -> `src/../../outside`".into()),
        ];
        for (rel, link) in cases {
            let expected = format!("goes through the symbolic link {link}, which leaves the context");
            assert_eq!(resolve(rel).unwrap_err().to_string(), expected, "{rel}");
        }
        assert!(resolve("loop/x").unwrap_err().to_string().contains("more than 40 symbolic links"));
    }

    #[test]
    fn a_change_never_writes_through_a_link_out_of_the_copy() {
        let (dir, ctx, outside) = linked_context();
        let scenario = load_cold(&ctx);
        let copy = prepare_iteration_context(&scenario, &dir.path().join("copy")).unwrap();
        for file in ["abs-dir/secret.txt", "abs-file", "up/secret.txt", "chain/secret.txt"] {
            for change in [
                Change::Append { file: file.into(), line: "pwned".into() },
                Change::Write { file: file.into(), content: "pwned".into() },
            ] {
                let err = apply_change(&copy, &change).unwrap_err().to_string();
                assert!(err.contains("which leaves the context"), "{file}: {err}");
            }
        }
        assert_eq!(fs::read_to_string(outside.join("secret.txt")).unwrap(), "secret\n");
        // An absolute link into the scenario's own context points there from the copy too.
        std::os::unix::fs::symlink(ctx.join("src"), copy.join("to-original")).unwrap();
        let change = Change::Write { file: "to-original/main.py".into(), content: "pwned".into() };
        assert!(apply_change(&copy, &change).is_err());
        assert_eq!(fs::read_to_string(ctx.join("src/main.py")).unwrap(), "print(1)\n");
        // Through a link that stays inside, the change lands in the copy's target.
        let change = Change::Append { file: "app/main.py".into(), line: "# x".into() };
        apply_change(&copy, &change).unwrap();
        assert_eq!(fs::read_to_string(copy.join("src/main.py")).unwrap(), "print(1)\n# x\n");
        assert_eq!(fs::read_to_string(ctx.join("src/main.py")).unwrap(), "print(1)\n");
    }

    /// Links are copied and tarred as links, as the docker CLI sends them: never followed, so the
    /// copy and the build context hold nothing from outside the context.
    #[test]
    fn the_copy_and_the_tar_keep_links_as_links() {
        let (dir, ctx, outside) = linked_context();
        let scenario = load_cold(&ctx);
        let copy = prepare_iteration_context(&scenario, &dir.path().join("copy")).unwrap();
        for link in ["abs-dir", "abs-file", "up", "chain", "app"] {
            assert!(fs::symlink_metadata(copy.join(link)).unwrap().file_type().is_symlink(), "{link}");
            assert_eq!(fs::read_link(copy.join(link)).unwrap(), fs::read_link(ctx.join(link)).unwrap());
        }
        let bytes = tar_context(&copy).unwrap();
        assert!(!bytes.windows(7).any(|w| w == b"secret\n"), "no outside content in the tar");
        let mut archive = tar::Archive::new(bytes.as_slice());
        for entry in archive.entries().unwrap() {
            let entry = entry.unwrap();
            let path = entry.path().unwrap().to_string_lossy().into_owned();
            if ["abs-dir", "abs-file", "up", "chain", "hop", "app"].contains(&path.as_str()) {
                assert_eq!(entry.header().entry_type(), tar::EntryType::Symlink, "{path}");
                assert_eq!(entry.header().size().unwrap(), 0, "{path}");
            }
            assert!(!path.contains("secret"), "{path}");
        }
        assert_eq!(fs::read_dir(&outside).unwrap().count(), 1, "nothing was written outside");
    }

    #[test]
    fn a_dockerignore_linked_out_of_the_context_is_not_read() {
        let (_dir, ctx, outside) = linked_context();
        std::os::unix::fs::symlink(outside.join("secret.txt"), ctx.join(".dockerignore")).unwrap();
        let err = DockerIgnore::load(&ctx).unwrap_err().to_string();
        assert!(err.ends_with(&format!("goes through the symbolic link `.dockerignore` -> `{}/secret.txt`, which leaves the context", outside.display())), "{err}");
    }
}
