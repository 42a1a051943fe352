//! What went into each Dockerfile step of a job, independently of any builder: the step input key.
//!
//! A step's own input is its instruction with `ARG` and `ENV` values substituted as the builder does, and
//! for `COPY`/`ADD` from the context the files its sources match (after `.dockerignore`), by path, content
//! and mode. Its key chains that with the keys of the steps it builds on: the step before it in its stage,
//! and for `FROM <stage>` and `COPY --from=<stage>` the last step of that stage. Two jobs whose step has the
//! same key gave their builders the same input for it; `crate::cause` turns the differences into why a
//! step missed.

use std::collections::BTreeMap;
use std::path::Path;

use sha2::{Digest as _, Sha256};

use crate::dockerfile::{shell_split, Dockerfile, Instruction, Stage, Vars};
use crate::scenario::context::{self, ContextEntry};
use crate::scenario::ScenarioError;

/// A sha256 digest.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest([u8; 32]);

impl Digest {
    fn of(parts: &[&[u8]]) -> Digest {
        let mut hasher = Sha256::new();
        for part in parts {
            // Length prefixes keep ("ab", "c") and ("a", "bc") apart.
            hasher.update((part.len() as u64).to_le_bytes());
            hasher.update(part);
        }
        Digest(hasher.finalize().into())
    }

    /// The first 16 hex digits: what `steps.csv`'s `input_key` holds.
    pub fn short(&self) -> String {
        self.0[..8].iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl std::fmt::Debug for Digest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.short())
    }
}

/// A file a step copies from the context, as its builder sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileInput {
    /// Permission bits (`0o755` for an executable): a changed mode is a changed layer.
    pub mode: u32,
    /// The file's content (a symlink's target, a directory's nothing).
    pub content: Digest,
}

/// What went into one step.
#[derive(Debug, Clone, PartialEq)]
pub struct StepInput {
    pub step: u32,
    /// The stage's label ([`crate::dockerfile::GLOBAL_STAGE`] for an `ARG` before the first `FROM`).
    pub stage: String,
    /// The instruction as the Dockerfile writes it: how steps are matched from one job to the next.
    pub instruction: String,
    /// The instruction with its variables substituted: part of the step's own input.
    pub resolved: String,
    /// The step's own input: `resolved` and the files it copies.
    pub own: Digest,
    /// `own` chained with the keys of the steps it builds on.
    pub key: Digest,
    /// The steps it builds on (step numbers).
    pub parents: Vec<u32>,
    /// Files it copies from the context, by `/`-separated path.
    pub files: BTreeMap<String, FileInput>,
    /// For a `FROM`: whether it names an image (else an earlier stage, or `scratch`).
    pub from_image: bool,
}

impl StepInput {
    pub fn is_from(&self) -> bool {
        keyword(&self.instruction) == "FROM"
    }
}

/// The inputs of every step of `dockerfile` with the build context in `context` (a directory).
pub fn step_inputs(dockerfile: &Dockerfile, context: &Path) -> Result<Vec<StepInput>, ScenarioError> {
    let entries = context::context_entries(context)?;
    let files = Files::read(&entries)?;
    let mut global = Vars::default();
    let mut out = vec![];
    for arg in &dockerfile.global_args {
        global.declare_arg(&arg.text, &Vars::default());
        let resolved = arg.text.clone();
        let own = Digest::of(&[resolved.as_bytes()]);
        out.push(StepInput {
            step: arg.step,
            stage: crate::dockerfile::GLOBAL_STAGE.into(),
            instruction: arg.text.clone(),
            resolved,
            own,
            key: own,
            parents: vec![],
            files: BTreeMap::new(),
            from_image: false,
        });
    }
    let mut stage_ends: Vec<(Option<String>, u32)> = vec![];
    // Each earlier stage's ARG and ENV values at its end: a stage built `FROM` it starts with them, as
    // BuildKit's frontend carries a base stage's environment and build args into the stage built on it.
    let mut stage_vars: Vec<Vars> = vec![];
    for stage in &dockerfile.stages {
        let mut vars = stage_index(&stage_ends, &global.substitute(&stage.base)).map(|i| stage_vars[i].clone()).unwrap_or_default();
        let mut previous: Option<u32> = None;
        for instruction in &stage.instructions {
            let step = stage_step(StepAt { stage, instruction, previous, global: &global, vars: &vars, stage_ends: &stage_ends, files: &files }, &out);
            if keyword(&instruction.text) == "ARG" {
                vars.declare_arg(&instruction.text, &global);
            } else if keyword(&instruction.text) == "ENV" {
                vars.set_env(&instruction.text);
            }
            previous = Some(step.step);
            out.push(step);
        }
        if let Some(last) = previous {
            stage_ends.push((stage.name.clone(), last));
            stage_vars.push(vars);
        }
    }
    Ok(out)
}

/// Where a stage's step sits, and what it can see.
struct StepAt<'a> {
    stage: &'a Stage,
    instruction: &'a Instruction,
    previous: Option<u32>,
    global: &'a Vars,
    vars: &'a Vars,
    /// Each earlier stage's name (if any) and last step, in order.
    stage_ends: &'a [(Option<String>, u32)],
    files: &'a Files,
}

fn stage_step(at: StepAt<'_>, done: &[StepInput]) -> StepInput {
    let text = &at.instruction.text;
    let mut parents: Vec<u32> = at.previous.into_iter().collect();
    let mut copied = BTreeMap::new();
    let mut from_image = false;
    let resolved = match keyword(text).as_str() {
        // `FROM` sees only the global ARGs.
        "FROM" => {
            let base = at.global.substitute(&at.stage.base);
            match stage_by_ref(at.stage_ends, &base) {
                Some(end) => parents.push(end),
                None => from_image = base != "scratch",
            }
            format!("FROM {base}")
        }
        "COPY" | "ADD" => {
            let resolved = at.vars.substitute(text);
            let copy = Copy::parse(&resolved);
            match copy.from.as_deref() {
                // From an image, its reference is in the text.
                Some(from) => parents.extend(stage_by_ref(at.stage_ends, from)),
                None => {
                    for source in copy.sources.iter().filter(|s| !is_remote(s)) {
                        copied.extend(at.files.matching(source));
                    }
                }
            }
            resolved
        }
        // The shell substitutes a RUN's variables at run time, from the environment the earlier steps set.
        "RUN" | "CMD" | "ENTRYPOINT" | "HEALTHCHECK" | "SHELL" => text.clone(),
        _ => at.vars.substitute(text),
    };
    let mut own_parts: Vec<Vec<u8>> = vec![resolved.clone().into_bytes()];
    for (path, file) in &copied {
        own_parts.push(path.clone().into_bytes());
        own_parts.push(file.mode.to_le_bytes().to_vec());
        own_parts.push(file.content.0.to_vec());
    }
    let own = Digest::of(&own_parts.iter().map(Vec::as_slice).collect::<Vec<_>>());
    let mut key_parts: Vec<&[u8]> = vec![&own.0];
    let parent_keys: Vec<Digest> = parents.iter().filter_map(|p| done.iter().find(|s| s.step == *p).map(|s| s.key)).collect();
    key_parts.extend(parent_keys.iter().map(|k| &k.0[..]));
    let key = Digest::of(&key_parts);
    StepInput {
        step: at.instruction.step,
        stage: at.stage.label(),
        instruction: text.clone(),
        resolved,
        own,
        key,
        parents,
        files: copied,
        from_image,
    }
}

/// The stages the target (the last stage) does not use: none of their steps is reached from its last step
/// through the steps each builds on (the step before it, `FROM <stage>`, `COPY --from=<stage>`). BuildKit
/// builds only what the target needs; the classic builder builds them all the same.
pub fn unused_stages(inputs: &[StepInput]) -> std::collections::BTreeSet<&str> {
    let staged: Vec<&StepInput> = inputs.iter().filter(|s| s.stage != crate::dockerfile::GLOBAL_STAGE).collect();
    let mut reached = std::collections::BTreeSet::new();
    let mut todo: Vec<u32> = staged.last().map(|s| s.step).into_iter().collect();
    while let Some(step) = todo.pop() {
        if reached.insert(step) {
            todo.extend(staged.iter().find(|s| s.step == step).map(|s| s.parents.clone()).unwrap_or_default());
        }
    }
    let all: std::collections::BTreeSet<&str> = staged.iter().map(|s| s.stage.as_str()).collect();
    all.into_iter().filter(|stage| staged.iter().all(|s| s.stage != *stage || !reached.contains(&s.step))).collect()
}

/// The last step of the stage `reference` names (by name, case-insensitively, or by index), if it is one.
fn stage_by_ref(stage_ends: &[(Option<String>, u32)], reference: &str) -> Option<u32> {
    stage_index(stage_ends, reference).map(|i| stage_ends[i].1)
}

/// The position of the earlier stage `reference` names (by name, case-insensitively, or by index).
fn stage_index(stage_ends: &[(Option<String>, u32)], reference: &str) -> Option<usize> {
    let lower = reference.to_ascii_lowercase();
    if let Some(i) = stage_ends.iter().position(|(name, _)| name.as_deref() == Some(lower.as_str())) {
        return Some(i);
    }
    let index: usize = reference.parse().ok()?;
    (index < stage_ends.len()).then_some(index)
}

fn is_remote(source: &str) -> bool {
    source.starts_with("http://") || source.starts_with("https://") || source.starts_with("git@")
}

/// The instruction's keyword, upper-cased.
fn keyword(text: &str) -> String {
    text.split_whitespace().next().unwrap_or_default().to_ascii_uppercase()
}

/// A `COPY`/`ADD`: where from, and its sources (the last word is the destination).
struct Copy {
    from: Option<String>,
    sources: Vec<String>,
}

impl Copy {
    fn parse(resolved: &str) -> Copy {
        let mut rest = resolved.split_once(char::is_whitespace).map(|(_, r)| r.trim()).unwrap_or_default();
        let mut from = None;
        while rest.starts_with("--") {
            let (flag, tail) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
            if let Some(value) = flag.strip_prefix("--from=") {
                from = Some(value.to_string());
            }
            rest = tail.trim_start();
        }
        let mut words = match rest.starts_with('[') {
            true => serde_json::from_str::<Vec<String>>(rest).unwrap_or_default(),
            false => shell_split(rest),
        };
        words.pop(); // the destination
        Copy { from, sources: words }
    }
}

/// The context's files, as a build sees them.
struct Files {
    /// `/`-separated path → the file, directories included (their content empty).
    entries: BTreeMap<String, FileInput>,
}

impl Files {
    fn read(entries: &[ContextEntry]) -> Result<Files, ScenarioError> {
        use std::os::unix::fs::PermissionsExt;
        let mut out = BTreeMap::new();
        for entry in entries {
            let content = if entry.meta.is_symlink() {
                let target = std::fs::read_link(&entry.path).map_err(|e| ScenarioError::io("read the link", &entry.path, e))?;
                Digest::of(&[b"link", target.to_string_lossy().as_bytes()])
            } else if entry.meta.is_dir() {
                Digest::of(&[b"dir"])
            } else {
                let bytes = std::fs::read(&entry.path).map_err(|e| ScenarioError::io("read", &entry.path, e))?;
                Digest::of(&[b"file", &bytes])
            };
            out.insert(entry.rel.clone(), FileInput { mode: entry.meta.permissions().mode() & 0o7777, content });
        }
        Ok(Files { entries: out })
    }

    /// The files a `COPY` source names: a path or a pattern (`*`, `?`) relative to the context; a directory
    /// brings everything under it.
    fn matching(&self, source: &str) -> BTreeMap<String, FileInput> {
        let pattern = clean(source);
        let everything = pattern.is_empty() || pattern == ".";
        self.entries
            .iter()
            .filter(|(path, _)| {
                everything
                    || glob(&pattern, path)
                    || path.char_indices().filter(|(_, c)| *c == '/').any(|(i, _)| glob(&pattern, &path[..i]))
            })
            .map(|(path, file)| (path.clone(), *file))
            .collect()
    }
}

/// A source path as the builder resolves it against the context: no leading `/` or `./`, no `.` parts.
fn clean(source: &str) -> String {
    source.split('/').filter(|p| !p.is_empty() && *p != ".").collect::<Vec<_>>().join("/")
}

/// Go's `filepath.Match` for `*` and `?` (neither crosses a `/`), which is what builders use for sources.
fn glob(pattern: &str, path: &str) -> bool {
    fn matches(p: &[char], s: &[char]) -> bool {
        match p.split_first() {
            None => s.is_empty(),
            Some(('*', rest)) => (0..=s.len()).take_while(|&i| i == 0 || s[i - 1] != '/').any(|i| matches(rest, &s[i..])),
            Some(('?', rest)) => s.first().is_some_and(|c| *c != '/') && matches(rest, &s[1..]),
            Some(('\\', rest)) if !rest.is_empty() => s.first() == Some(&rest[0]) && matches(&rest[1..], &s[1..]),
            Some((c, rest)) => s.first() == Some(c) && matches(rest, &s[1..]),
        }
    }
    matches(&pattern.chars().collect::<Vec<_>>(), &path.chars().collect::<Vec<_>>())
}

/// What differs between two inputs of the same step, in words for the `changed` column: the files by path
/// (`requirements.txt`, `run.sh (mode)`), the instruction, or the base image; empty when the own inputs agree.
pub fn changed(before: &StepInput, now: &StepInput) -> Option<String> {
    if before.own == now.own {
        return None;
    }
    if before.resolved != now.resolved {
        let text_same = before.instruction == now.instruction;
        return Some(if text_same && now.is_from() { "the base image".into() } else { "the instruction".into() });
    }
    let mut names = vec![];
    for (path, file) in &now.files {
        match before.files.get(path) {
            None => names.push(format!("{path} (added)")),
            Some(old) if old.content != file.content => names.push(path.clone()),
            Some(old) if old.mode != file.mode => names.push(format!("{path} (mode)")),
            Some(_) => {}
        }
    }
    names.extend(before.files.keys().filter(|p| !now.files.contains_key(*p)).map(|p| format!("{p} (removed)")));
    const SHOWN: usize = 4;
    if names.len() > SHOWN {
        let more = names.len() - SHOWN;
        names.truncate(SHOWN);
        names.push(format!("and {more} more"));
    }
    Some(names.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs(dockerfile: &str, files: &[(&str, &str, u32)]) -> (tempfile::TempDir, Vec<StepInput>) {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        for (path, content, mode) in files {
            let path = dir.path().join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, content).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(*mode)).unwrap();
        }
        let inputs = step_inputs(&Dockerfile::parse(dockerfile).unwrap(), dir.path()).unwrap();
        (dir, inputs)
    }

    const DOCKERFILE: &str = "ARG BASE=python:3.11-slim\nFROM $BASE AS builder\nCOPY deps.txt .\nRUN pip install -r deps.txt\n\
                              FROM ${BASE} AS final\nENV APP=/app\nCOPY --from=builder /out /out\nCOPY app $APP\nRUN ls\n";

    fn files(main: &str, mode: u32) -> Vec<(&'static str, String, u32)> {
        vec![("deps.txt", "flask\n".into(), 0o644), ("app/main.py", main.into(), mode), (".dockerignore", "notes.txt\n".into(), 0o644)]
    }

    fn run(main: &str, mode: u32) -> (tempfile::TempDir, Vec<StepInput>) {
        let f = files(main, mode);
        let refs: Vec<(&str, &str, u32)> = f.iter().map(|(p, c, m)| (*p, c.as_str(), *m)).collect();
        inputs(DOCKERFILE, &refs)
    }

    #[test]
    fn args_and_env_are_substituted_and_stages_chain() {
        let (_d, s) = run("print(1)\n", 0o644);
        assert_eq!(s[1].resolved, "FROM python:3.11-slim", "the global ARG default names the base");
        assert!(s[1].from_image);
        assert_eq!(s[7].resolved, "COPY app /app", "ENV substituted in COPY");
        assert_eq!(s[6].parents, vec![6, 4], "COPY --from=builder builds on the step before it and on the builder stage");
        assert_eq!(s[7].files.keys().collect::<Vec<_>>(), ["app", "app/main.py"]);
        assert!(s[2].files.contains_key("deps.txt") && s[2].files.len() == 1);
        assert_eq!(s[8].resolved, "RUN ls");
    }

    #[test]
    fn a_code_change_changes_the_late_copy_and_the_keys_after_it_only() {
        let (_a, before) = run("print(1)\n", 0o644);
        let (_b, after) = run("print(2)\n", 0o644);
        let differ: Vec<u32> = before.iter().zip(&after).filter(|(a, b)| a.own != b.own).map(|(a, _)| a.step).collect();
        assert_eq!(differ, [8], "only `COPY app $APP` has another own input");
        let keys: Vec<u32> = before.iter().zip(&after).filter(|(a, b)| a.key != b.key).map(|(a, _)| a.step).collect();
        assert_eq!(keys, [8, 9], "and the steps after it another key");
        assert_eq!(changed(&before[7], &after[7]).as_deref(), Some("app/main.py"));
        assert_eq!(changed(&before[8], &after[8]), None, "RUN's own input is unchanged");
    }

    #[test]
    fn an_executable_bit_is_a_changed_input() {
        let (_a, before) = run("print(1)\n", 0o644);
        let (_b, after) = run("print(1)\n", 0o755);
        assert_ne!(before[7].own, after[7].own);
        assert_eq!(changed(&before[7], &after[7]).as_deref(), Some("app/main.py (mode)"));
    }

    #[test]
    fn ignored_files_and_instruction_edits() {
        let (_a, before) = inputs("FROM scratch\nCOPY . /\n", &[("a", "1", 0o644), ("notes.txt", "x", 0o644), (".dockerignore", "notes.txt\n", 0o644)]);
        let (_b, after) = inputs("FROM scratch\nCOPY . /\n", &[("a", "1", 0o644), ("notes.txt", "y", 0o644), (".dockerignore", "notes.txt\n", 0o644)]);
        assert_eq!(before[1].own, after[1].own, "a file .dockerignore excludes is no input");
        let (_c, edited) = inputs("FROM scratch\nCOPY . /srv\n", &[("a", "1", 0o644), (".dockerignore", "notes.txt\n", 0o644)]);
        assert_eq!(changed(&before[1], &edited[1]).as_deref(), Some("the instruction"));
    }

    #[test]
    fn globs_and_json_sources_match_like_the_builder() {
        let (_d, s) = inputs(
            "FROM scratch\nCOPY [\"*.txt\", \"/x/\"]\nCOPY --chown=1:1 src/?.py /y/\n",
            &[("a.txt", "1", 0o644), ("b.md", "2", 0o644), ("src/m.py", "3", 0o644), ("src/mm.py", "4", 0o644)],
        );
        assert_eq!(s[1].files.keys().collect::<Vec<_>>(), ["a.txt"]);
        assert_eq!(s[2].files.keys().collect::<Vec<_>>(), ["src/m.py"]);
    }

    /// `FROM <stage>` starts from that stage's environment: its ENV (and ARG) values substitute in the stage
    /// built on it, so a change to them is a changed input there; a stage from an image starts empty.
    #[test]
    fn a_stage_built_from_a_stage_inherits_its_env_and_args() {
        let dockerfile = |dir: &str| {
            format!("FROM scratch AS base\nARG TOOL=pip\nENV DIR={dir}\nFROM base AS final\nCOPY app $DIR\nRUN $TOOL\nFROM scratch\nCOPY app $DIR\n")
        };
        let (_a, s) = inputs(&dockerfile("/srv"), &[("app", "1", 0o644)]);
        assert_eq!(s[4].resolved, "COPY app /srv", "ENV from the base stage");
        assert_eq!(s[5].resolved, "RUN $TOOL", "a RUN's variables are the shell's");
        assert_eq!(s[7].resolved, "COPY app ", "a stage from an image inherits nothing");
        let (_b, moved) = inputs(&dockerfile("/opt"), &[("app", "1", 0o644)]);
        assert_eq!(changed(&s[4], &moved[4]).as_deref(), Some("the instruction"), "the inherited ENV changed its input");
        let (_c, arg) = inputs("FROM scratch AS base\nARG DIR=/a\nFROM base\nCOPY app ${DIR}\n", &[("app", "1", 0o644)]);
        assert_eq!(arg[3].resolved, "COPY app /a", "an ARG in scope at the base stage's end");
    }

    #[test]
    fn unused_stages_are_those_the_target_never_reaches() {
        let (_d, s) = inputs(
            "FROM scratch AS base\nRUN a\nFROM base AS unused\nRUN b\nFROM scratch AS lib\nRUN c\nFROM base\nCOPY --from=lib /x /x\n",
            &[],
        );
        assert_eq!(unused_stages(&s).into_iter().collect::<Vec<_>>(), ["unused"]);
    }
}
