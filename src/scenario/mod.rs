//! A scenario: an app, its Dockerfile, and the ordered pipeline of CI runs that follow each other.

pub mod context;
pub mod history;


use std::collections::HashSet;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use sha2::{Digest, Sha256};
use toml::Spanned;

pub use crate::dockerfile::{Dockerfile, DockerfileError, Instruction, Stage};
pub use crate::pipeline::PipelineRunName;

use crate::reference::check_repository;
use crate::strategy::{Op, PlanInput, Strategy};

/// A loaded and validated scenario file.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub name: String,
    /// The scenario file itself.
    pub source: PathBuf,
    /// Build context directory (absolute).
    pub context: PathBuf,
    /// Dockerfile path relative to the context.
    pub dockerfile_path: PathBuf,
    /// The Dockerfile the first pipeline run builds.
    pub dockerfile: Dockerfile,
    /// Every Dockerfile the pipeline builds, in order, each from the run that first builds it: the first is
    /// `dockerfile`; a commit or a change that edits the Dockerfile brings the next.
    pub dockerfiles: Vec<RunDockerfile>,
    /// Image repository name, without registry host or tag (e.g. `flask-app`).
    pub repository: String,
    pub iterations: u32,
    pub strategies: Vec<Strategy>,
    pub pipeline: Vec<PipelineRun>,
    /// How many pipelines of a strategy run at once, level by level (`concurrency = [1, 2, 4]`); `[1]`
    /// when omitted.
    pub concurrency: Vec<u32>,
    /// How often the team runs each pipeline run and what it pays (`[workload]`), when the scenario says.
    pub workload: Option<crate::workload::Workload>,
    /// Where a replayed history's pipeline came from (`[history]`, written by `scenario from-git`).
    pub history: Option<crate::scenario::history::HistoryInfo>,
    /// sha256 (hex) over the scenario file and every context file a build sees (the Dockerfile
    /// included), by sorted relative path.
    pub hash: String,
}

/// A Dockerfile of the pipeline, and the first pipeline run that builds it.
#[derive(Debug, Clone)]
pub struct RunDockerfile {
    /// 0-based index of that pipeline run.
    pub from_run: usize,
    /// Where it was read, for messages: `Dockerfile`, or `<commit>:app/Dockerfile` for a commit's.
    pub shown: String,
    pub dockerfile: Dockerfile,
}

/// One CI pipeline run: what changed in the repository before the job ran.
#[derive(Debug, Clone, PartialEq)]
pub struct PipelineRun {
    pub name: PipelineRunName,
    pub change: Change,
}

/// A change to the per-iteration copy of the context, applied before the pipeline run's jobs.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// Nothing changed (the first run, or a rerun).
    None,
    /// Append a line to a file of the context.
    Append { file: PathBuf, line: String },
    /// Replace the whole content of a file of the context (creating it if needed).
    Write { file: PathBuf, content: String },
    /// Make the context exactly a commit's tree under the context directory (`crate::history`).
    Commit { id: String, repository: PathBuf, dir: PathBuf },
}

/// Stands for the lane's number in a change's `line` or `content`.
pub const LANE_PLACEHOLDER: &str = "{lane}";

impl Change {
    /// The change as `lane` makes it, so that lanes build different images: `{lane}` in the line or
    /// content becomes the lane's number. An appended line without it gets `  # lane K` at its end when
    /// other lanes run beside it (a comment in Python, shell, requirements files, YAML and TOML alike).
    /// A written content without it stays the same for every lane: those lanes build the same files.
    pub fn for_lane(&self, lane: crate::lanes::Lane) -> Change {
        let number = lane.lane.to_string();
        match self {
            Change::None => Change::None,
            Change::Append { file, line } if line.contains(LANE_PLACEHOLDER) => {
                Change::Append { file: file.clone(), line: line.replace(LANE_PLACEHOLDER, &number) }
            }
            Change::Append { file, line } if lane.is_shared() => Change::Append { file: file.clone(), line: format!("{line}  # lane {number}") },
            Change::Append { .. } => self.clone(),
            Change::Write { file, content } => Change::Write { file: file.clone(), content: content.replace(LANE_PLACEHOLDER, &number) },
            // A commit is the same for every lane; `lane_change` moves lanes along a replayed history.
            Change::Commit { .. } => self.clone(),
        }
    }
}

/// The change lane `lane` makes at pipeline run `index`. In a replayed history lane K is K−1 commits ahead
/// (the newest once the history runs out), as branches that started from different commits; every other
/// change is [`Change::for_lane`].
pub fn lane_change(pipeline: &[PipelineRun], index: usize, lane: crate::lanes::Lane) -> Change {
    let own = &pipeline[index].change;
    if !matches!(own, Change::Commit { .. }) {
        return own.for_lane(lane);
    }
    let ahead = (index + lane.lane.saturating_sub(1) as usize).min(pipeline.len() - 1);
    match &pipeline[ahead].change {
        commit @ Change::Commit { .. } => commit.clone(),
        _ => own.clone(),
    }
}

/// Why a scenario cannot be loaded or its context prepared. Each displays as one line.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// A mistake in a file the user wrote: the scenario, its Dockerfile or `.dockerignore`.
    #[error("{}:{line}:{column}: {message}", path.display())]
    Invalid { path: PathBuf, line: usize, column: usize, message: String },
    /// A file or directory could not be read or written.
    #[error("{}: cannot {action}: {error}", path.display())]
    Io { action: &'static str, path: PathBuf, error: std::io::Error },
    /// A change that would leave the context.
    #[error("change to `{}`: {reason}", file.display())]
    Change { file: PathBuf, reason: String },
    /// The scenario is well formed but a chosen strategy cannot build it.
    #[error("{}: {message}", path.display())]
    Strategy { path: PathBuf, message: String },
}

impl ScenarioError {
    pub(crate) fn io(action: &'static str, path: &Path, error: std::io::Error) -> Self {
        ScenarioError::Io { action, path: path.to_path_buf(), error }
    }
}

/// For `map_err`: the I/O error of `action` on `path`.
pub(crate) fn io_at<'a>(
    action: &'static str,
    path: &'a Path,
) -> impl FnOnce(std::io::Error) -> ScenarioError + 'a {
    move |error| ScenarioError::io(action, path, error)
}

impl Scenario {
    /// Checks that every strategy of `strategies` (the scenario's own or `--strategies`) can build
    /// this scenario, so that a run refuses at once instead of failing every job of a strategy.
    ///
    /// Asked of each strategy's own plan for this Dockerfile: a stage it builds with `--target` must be
    /// named, since the classic builder of dind finds a target only by name (`target stage "1" could not
    /// be found`), and the image it pushes such a stage as must be a valid repository. Strategies that
    /// never pass `--target` take unnamed stages.
    pub fn check_strategies(&self, strategies: &[Strategy]) -> Result<(), ScenarioError> {
        for &strategy in strategies {
            for at in &self.dockerfiles {
                self.check_targets(strategy, at)?;
            }
        }
        Ok(())
    }

    /// Every base image the pipeline's Dockerfiles start `FROM`, each with where it is named
    /// (`Dockerfile:3`), in order of appearance (one image may come more than once).
    pub fn base_images(&self) -> Vec<(crate::dockerfile::BaseImage, String)> {
        self.dockerfiles
            .iter()
            .flat_map(|at| {
                // Checked when the scenario was loaded.
                let bases = at.dockerfile.base_images().unwrap_or_default();
                bases.into_iter().map(move |b| {
                    let site = format!("{}:{}", at.shown, b.line);
                    (b, site)
                })
            })
            .collect()
    }

    fn check_targets(&self, strategy: Strategy, at: &RunDockerfile) -> Result<(), ScenarioError> {
        let dockerfile = &at.dockerfile;
        let input = PlanInput { repository: &self.repository, commit_tag: "c1", dockerfile };
        let plan = strategy.plan(&input);
        let targeted: Vec<(&Stage, &str)> = plan
            .ops
            .iter()
            .filter_map(|op| match op {
                Op::Build { target: Some(target), tags, .. } => {
                    let stage = dockerfile.stages.iter().find(|s| s.label() == *target)?;
                    Some((stage, tags.first().map(String::as_str).unwrap_or_default()))
                }
                _ => None,
            })
            .collect();
        let which = if at.from_run == 0 { String::new() } else { format!(" ({})", at.shown) };
        let refuse =
            |message: String| ScenarioError::Strategy { path: self.source.clone(), message: format!("strategy {strategy} {message}{which}") };
        let every_but_last = targeted.len() + 1 == dockerfile.stages.len();
        for (stage, tag) in &targeted {
            let line = stage.instructions[0].line;
            let Some(name) = &stage.name else {
                let which = if every_but_last { "every stage but the last" } else { "every stage it builds with `--target`" };
                return Err(refuse(format!(
                    "needs {which} named (`FROM … AS name`): stage {} (line {line}) has no name",
                    stage.index + 1
                )));
            };
            let image = tag.rsplit_once(':').map_or(*tag, |(repository, _)| repository);
            // 200 leaves room for the registry host and strategy in front, within Docker's 255.
            check_repository(image, 200).map_err(|why| {
                refuse(format!(
                    "pushes stage `{name}` (line {line}) as `{image}`, which is not a valid image repository \
                     ({why}); rename the stage"
                ))
            })?;
        }
        Ok(())
    }
}

/// The strategies a scenario runs when it names none: every one.
pub fn default_strategies() -> Vec<Strategy> {
    Strategy::all().collect()
}

pub const DEFAULT_ITERATIONS: u32 = 3;

/// Longest scenario name, in characters. The name ends the run id (`<19-character UTC time>-<name>`),
/// which names `results/<run-id>/`, every container, network and volume (`lb-<run-id>-<role>`,
/// volumes are directories of at most 255 bytes) and the Kubernetes namespace
/// `layerbench-<run-id>`: 11 + 20 + 32 = 63, a DNS label's limit, so it is never cut short.
pub const MAX_NAME_LEN: usize = 32;

/// Longest pipeline run name, in characters: it ends the commit tag `c<N>-<name>`, and Docker tags
/// have at most 128.
pub const MAX_RUN_NAME_LEN: usize = 64;

/// Longest image repository, in characters. Docker allows 255 for a whole name; the backends put
/// a registry host and the strategy in front (`registry:5000/registry-multistage/…`) and some
/// strategies a suffix after it (`-cache`, `-<stage>`).
pub const MAX_REPOSITORY_LEN: usize = 128;

/// The scenario file as written; spans point errors at the value at fault.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScenario {
    name: Spanned<String>,
    /// Relative to the scenario file's directory.
    context: Spanned<String>,
    /// Relative to the context; `Dockerfile` when omitted.
    dockerfile: Option<Spanned<String>>,
    /// The scenario's name when omitted.
    repository: Option<Spanned<String>>,
    iterations: Option<Spanned<u32>>,
    strategies: Option<Spanned<Vec<Spanned<String>>>>,
    pipeline: Option<Spanned<Vec<RawRun>>>,
    concurrency: Option<Spanned<Vec<u32>>>,
    workload: Option<crate::workload::RawWorkload>,
    history: Option<crate::scenario::history::HistoryInfo>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRun {
    name: Spanned<String>,
    change: Option<Spanned<RawChange>>,
}

/// `{ append = FILE, line = TEXT }`, `{ write = FILE, content = TEXT }` or `{ commit = ID }`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawChange {
    append: Option<Spanned<String>>,
    line: Option<String>,
    write: Option<Spanned<String>>,
    content: Option<String>,
    commit: Option<Spanned<String>>,
}

/// Reads a scenario file and checks everything a run would otherwise trip over later:
/// the context and Dockerfile exist and parse, strategies are known, the pipeline is not empty,
/// and every change names a file inside the context.
pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
    let bytes = std::fs::read(path).map_err(io_at("read the scenario file", path))?;
    let text = std::str::from_utf8(&bytes).map_err(|e| {
        // Everything before `valid_up_to` is intact, so the lossy text locates the bad byte.
        let (line, column) = line_col(&String::from_utf8_lossy(&bytes), e.valid_up_to());
        let message = "the file is not UTF-8 text; save it as UTF-8".into();
        ScenarioError::Invalid { path: path.to_path_buf(), line, column, message }
    })?;
    let at = |span: Range<usize>, message: String| {
        let (line, column) = line_col(text, span.start);
        ScenarioError::Invalid { path: path.to_path_buf(), line, column, message }
    };
    let raw: RawScenario =
        toml::from_str(text).map_err(|e| at(e.span().unwrap_or(0..0), e.message().trim().to_string()))?;
    let (name, repository) = name_and_repository(&raw, &at)?;
    let iterations = match &raw.iterations {
        Some(n) if *n.get_ref() == 0 => return Err(at(n.span(), "iterations must be at least 1".into())),
        Some(n) => *n.get_ref(),
        None => DEFAULT_ITERATIONS,
    };
    let strategies = match &raw.strategies {
        None => default_strategies(),
        Some(list) => parse_strategies(list, &at)?,
    };
    let base_dir = path.parent().unwrap_or(Path::new(""));
    let context_shown = base_dir.join(raw.context.get_ref());
    let context = context_dir(&context_shown, raw.context.span(), &at)?;
    let ignore = context::DockerIgnore::load(&context)?;
    let (dockerfile_path, first) = dockerfile_of(&raw, &context, &context_shown, &ignore, &at)?;
    let pipeline = pipeline(raw.pipeline, &context, &ignore, &at)?;
    let dockerfiles = run_dockerfiles(&pipeline, &context, &dockerfile_path, first, path)?;
    let dockerfile = dockerfiles[0].dockerfile.clone();
    let concurrency = match raw.concurrency {
        None => vec![1],
        Some(levels) => {
            crate::lanes::check_levels(levels.get_ref()).map_err(|e| at(levels.span(), e.to_string()))?;
            levels.into_inner()
        }
    };
    let names: Vec<PipelineRunName> = pipeline.iter().map(|p| p.name.clone()).collect();
    let workload = raw
        .workload
        .map(|w| w.check(&names, raw.history.as_ref().map(|h| h.skipped_untouched)).map_err(|e| at(e.span, format!("[workload]: {}", e.message))))
        .transpose()?;
    let hash = hash_scenario(&bytes, &context)?;
    Ok(Scenario {
        name,
        source: path.to_path_buf(),
        context,
        dockerfile_path,
        dockerfile,
        dockerfiles,
        repository,
        iterations,
        strategies,
        pipeline,
        concurrency,
        workload,
        history: raw.history,
        hash,
    })
}

/// The scenario's name, and the image repository it builds (its own, or the name's).
fn name_and_repository(raw: &RawScenario, at: &impl Fn(Range<usize>, String) -> ScenarioError) -> Result<(String, String), ScenarioError> {
    let name = raw.name.get_ref().clone();
    if let Err(why) = check_name(&name, MAX_NAME_LEN) {
        let why = format!("{why}: it names the run's results directory, containers and Kubernetes namespace");
        return Err(at(raw.name.span(), format!("invalid scenario name `{}`: {why}", shown_name(&name))));
    }
    let repository = match &raw.repository {
        Some(repo) => {
            check_repository(repo.get_ref(), MAX_REPOSITORY_LEN)
                .map_err(|why| at(repo.span(), format!("invalid repository `{}`: {why}", repo.get_ref())))?;
            repo.get_ref().clone()
        }
        None => {
            let repo = name.to_ascii_lowercase();
            check_repository(&repo, MAX_REPOSITORY_LEN).map_err(|why| {
                at(raw.name.span(), format!("the name `{name}` is not a valid image repository ({why}); set `repository`"))
            })?;
            repo
        }
    };
    Ok((name, repository))
}

/// The context directory, absolute.
fn context_dir(shown: &Path, span: Range<usize>, at: &impl Fn(Range<usize>, String) -> ScenarioError) -> Result<PathBuf, ScenarioError> {
    match shown.canonicalize() {
        Ok(dir) if dir.is_dir() => Ok(dir),
        result => {
            let shown = shown.display();
            let message = match result {
                Ok(_) => format!("context {shown} is a file; `context` names the directory the build sees"),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    format!("context directory {shown} does not exist; `context` is relative to the scenario file's directory")
                }
                Err(e) => format!("cannot open the context directory {shown}: {e}"),
            };
            Err(at(span, message))
        }
    }
}

/// The context's Dockerfile as the build reads it: where it was read, and its text.
struct DockerfileText {
    shown: String,
    text: Vec<u8>,
}

/// The Dockerfile's path relative to the context, and the Dockerfile, read; one the build could not read
/// (outside the context, excluded by `.dockerignore`) is refused. It is parsed where a pipeline run builds
/// it (a replayed history builds its commits' Dockerfiles instead).
fn dockerfile_of(
    raw: &RawScenario,
    context: &Path,
    context_shown: &Path,
    ignore: &context::DockerIgnore,
    at: &impl Fn(Range<usize>, String) -> ScenarioError,
) -> Result<(PathBuf, DockerfileText), ScenarioError> {
    let (path, span) = match &raw.dockerfile {
        Some(d) => (d.get_ref().as_str(), d.span()),
        None => ("Dockerfile", raw.context.span()),
    };
    let (resolved, relative) = check_dockerfile_path(path)
        .and_then(|p| Ok((context::resolve_inside(context, &p)?, p)))
        .map_err(|why| at(span.clone(), format!("invalid dockerfile path `{path}`: {why}")))?;
    let shown = context_shown.join(&relative);
    let text = std::fs::read_to_string(context.join(&resolved)).map_err(|e| {
        let name = shown.display();
        let message = match (e.kind(), &raw.dockerfile) {
            (std::io::ErrorKind::NotFound, Some(_)) => format!("no Dockerfile at {name}; `dockerfile` is relative to the context directory"),
            (std::io::ErrorKind::NotFound, None) => format!("no Dockerfile at {name}; set `dockerfile` if it has another name"),
            (std::io::ErrorKind::IsADirectory, _) => format!("{name} is a directory; `dockerfile` names the Dockerfile inside the context"),
            _ => format!("cannot read the Dockerfile {name}: {e}"),
        };
        at(span.clone(), message)
    })?;
    if let Some(line) = ignore.excluded_by(&slash_path(&resolved)) {
        return Err(at(span, format!("the Dockerfile is excluded by .dockerignore line {line}, so the build could not read it")));
    }
    Ok((relative, DockerfileText { shown: shown.display().to_string(), text: text.into_bytes() }))
}

/// The pipeline runs in order, each name unique and each change inside the context.
fn pipeline(
    raw: Option<Spanned<Vec<RawRun>>>,
    context: &Path,
    ignore: &context::DockerIgnore,
    at: &impl Fn(Range<usize>, String) -> ScenarioError,
) -> Result<Vec<PipelineRun>, ScenarioError> {
    let hint = "add [[pipeline]] tables, each with a `name` (e.g. cold, no-change, code-change, deps-change) \
                and an optional `change`";
    let runs = match raw {
        None => return Err(at(0..0, format!("missing `pipeline`: {hint}"))),
        Some(p) if p.get_ref().is_empty() => return Err(at(p.span(), format!("`pipeline` is empty: {hint}"))),
        Some(p) => p.into_inner(),
    };
    let mut pipeline = vec![];
    let mut seen = HashSet::new();
    for run in runs {
        let run_name = run.name.get_ref();
        check_name(run_name, MAX_RUN_NAME_LEN).map_err(|why| {
            let why = format!("{why}: it ends the image tag of the run's commit");
            at(run.name.span(), format!("invalid pipeline run name `{}`: {why}", shown_name(run_name)))
        })?;
        if !seen.insert(run_name.clone()) {
            return Err(at(run.name.span(), format!("duplicate pipeline run `{run_name}`: each run needs its own name")));
        }
        let change = match run.change {
            None => Change::None,
            Some(change) => parse_change(change, context, ignore, at)?,
        };
        pipeline.push(PipelineRun { name: PipelineRunName::new(run_name.clone()), change });
    }
    Ok(pipeline)
}

fn parse_strategies(
    list: &Spanned<Vec<Spanned<String>>>,
    at: &impl Fn(Range<usize>, String) -> ScenarioError,
) -> Result<Vec<Strategy>, ScenarioError> {
    if list.get_ref().is_empty() {
        return Err(at(
            list.span(),
            format!("strategies is empty: list at least one of {}", Strategy::valid_names()),
        ));
    }
    let mut kinds = vec![];
    for name in list.get_ref() {
        let kind = Strategy::parse(name.get_ref()).ok_or_else(|| {
            at(
                name.span(),
                format!(
                    "unknown strategy `{}`: expected one of {}",
                    name.get_ref(),
                    Strategy::valid_names()
                ),
            )
        })?;
        if kinds.contains(&kind) {
            return Err(at(name.span(), format!("strategy `{kind}` is listed twice")));
        }
        kinds.push(kind);
    }
    Ok(kinds)
}

/// Every Dockerfile the pipeline builds, as lane 1 meets them: the context's, or the first commit's for a
/// replayed history, then each one a commit or a change to the Dockerfile brings. Each is parsed and its `FROM`s
/// checked now, so a mistake gets its place (`<commit>:app/Dockerfile:3:1: …` for a commit's) before anything runs.
fn run_dockerfiles(
    pipeline: &[PipelineRun],
    context: &Path,
    dockerfile_path: &Path,
    first: DockerfileText,
    source: &Path,
) -> Result<Vec<RunDockerfile>, ScenarioError> {
    let refuse = |message: String| ScenarioError::Strategy { path: source.to_path_buf(), message };
    let real = context::resolve_inside(context, dockerfile_path).ok();
    let edits = |file: &Path| real.is_some() && context::resolve_inside(context, file).ok() == real;
    let changed_by = |run: &PipelineRun| format!("{} as pipeline run {} leaves it", dockerfile_path.display(), run.name);
    let mut histories: Vec<(PathBuf, crate::git::History)> = vec![];
    let mut out: Vec<RunDockerfile> = vec![];
    let (mut shown, mut text) = (first.shown, first.text);
    for (index, run) in pipeline.iter().enumerate() {
        let next = match &run.change {
            Change::Commit { id, repository, dir } => {
                if !histories.iter().any(|(r, _)| r == repository) {
                    histories.push((repository.clone(), crate::git::History::discover(repository).map_err(|e| refuse(e.to_string()))?));
                }
                let history = &histories.iter().find(|(r, _)| r == repository).expect("opened above").1;
                let path = dir.join(dockerfile_path);
                let missing = || crate::git::HistoryError::DockerfileMissing { repository: repository.clone(), commit: id.clone(), path: path.clone() };
                let bytes = history.file(id, &path).map_err(|e| refuse(e.to_string()))?.ok_or_else(|| refuse(missing().to_string()))?;
                Some((format!("{}:{}", &id[..id.len().min(10)], path.display()), bytes))
            }
            Change::Write { file, content } if edits(file) => Some((changed_by(run), content.replace(LANE_PLACEHOLDER, "1").into_bytes())),
            Change::Append { file, line } if edits(file) => {
                let separator = if text.is_empty() || text.ends_with(b"\n") { "" } else { "\n" };
                let mut appended = text.clone();
                appended.extend(format!("{separator}{line}\n").bytes());
                Some((changed_by(run), appended))
            }
            _ => None,
        };
        let changed = match next {
            Some((where_, bytes)) if index == 0 || bytes != text => {
                (shown, text) = (where_, bytes);
                true
            }
            _ => index == 0,
        };
        if changed {
            let invalid = |e: DockerfileError| ScenarioError::Invalid { path: PathBuf::from(&shown), line: e.line, column: 1, message: e.message };
            let dockerfile = Dockerfile::parse(&String::from_utf8_lossy(&text)).map_err(invalid)?;
            dockerfile.base_images().map_err(invalid)?;
            out.push(RunDockerfile { from_run: index, shown: shown.clone(), dockerfile });
        }
    }
    Ok(out)
}

/// `{ commit = ID }`: the context must lie in a git repository that has the commit.
fn parse_commit(id: Spanned<String>, context: &Path, at: &impl Fn(Range<usize>, String) -> ScenarioError) -> Result<Change, ScenarioError> {
    let history = crate::git::History::discover(context)
        .map_err(|e| at(id.span(), format!("a `commit` change needs the context inside a git repository: {e}")))?;
    let commit = history.commit(id.get_ref()).map_err(|e| at(id.span(), e.to_string()))?;
    let root = history.root().canonicalize().unwrap_or_else(|_| history.root());
    let dir = context.strip_prefix(&root).map(Path::to_path_buf).unwrap_or_default();
    Ok(Change::Commit { id: commit.id, repository: root, dir })
}

fn parse_change(
    change: Spanned<RawChange>,
    context: &Path,
    ignore: &context::DockerIgnore,
    at: &impl Fn(Range<usize>, String) -> ScenarioError,
) -> Result<Change, ScenarioError> {
    let span = change.span();
    let expected = concat!(
        "a change is `{ append = \"FILE\", line = \"TEXT\" }`, `{ write = \"FILE\", content = \"TEXT\" }` ",
        "or `{ commit = \"ID\" }`"
    );
    let problem = match change.get_ref() {
        RawChange { append: Some(_), write: Some(_), .. } => "give either `append` or `write`, not both: ",
        RawChange { append: Some(_), line: None, .. } => "`append` needs a `line`: ",
        RawChange { write: Some(_), content: None, .. } => "`write` needs a `content`: ",
        _ => "",
    };
    let (file, parsed) = match change.into_inner() {
        RawChange { commit: Some(id), append: None, line: None, write: None, content: None } => return parse_commit(id, context, at),
        RawChange { commit: Some(_), .. } => return Err(at(span, format!("give `commit` alone: {expected}"))),
        RawChange { append: Some(file), line: Some(line), write: None, content: None, commit: None } => {
            let parsed = Change::Append { file: PathBuf::from(file.get_ref()), line };
            (file, parsed)
        }
        RawChange { write: Some(file), content: Some(content), append: None, line: None, commit: None } => {
            let parsed = Change::Write { file: PathBuf::from(file.get_ref()), content };
            (file, parsed)
        }
        _ => return Err(at(span, format!("{problem}{expected}"))),
    };
    let rel = Path::new(file.get_ref());
    context::check_inside(rel)
        .map_err(|why| at(file.span(), format!("change file `{}`: {why}", file.get_ref())))?;
    // What the change will write to once every link is followed; the copy keeps the same links.
    let rel = &context::resolve_inside(context, rel)
        .map_err(|why| at(file.span(), format!("change `{}` {why}", file.get_ref())))?;
    if matches!(parsed, Change::Append { .. }) && !context.join(rel).is_file() {
        return Err(at(
            file.span(),
            format!(
                "change file `{}` is not a file of the context {}; appending needs an existing file",
                file.get_ref(),
                context.display()
            ),
        ));
    }
    if let Some(line) = ignore.excluded_by(&slash_path(rel)) {
        return Err(at(
            file.span(),
            format!("change file `{}` is excluded by .dockerignore line {line}, so the change would never reach the build", file.get_ref()),
        ));
    }
    Ok(parsed)
}

/// sha256 over the scenario file's bytes, then each context entry's kind, relative path and content.
fn hash_scenario(scenario_bytes: &[u8], context: &Path) -> Result<String, ScenarioError> {
    let mut hasher = Sha256::new();
    let mut field = |bytes: &[u8]| {
        // Length-prefixed, so that no two different contexts feed the same byte stream.
        hasher.update((bytes.len() as u64).to_le_bytes());
        hasher.update(bytes);
    };
    field(scenario_bytes);
    for entry in context::context_entries(context)? {
        let (kind, content) = if entry.meta.is_dir() {
            ("dir", vec![])
        } else if entry.meta.is_symlink() {
            let target = std::fs::read_link(&entry.path).map_err(io_at("read the link", &entry.path))?;
            ("link", target.to_string_lossy().into_owned().into_bytes())
        } else {
            ("file", std::fs::read(&entry.path).map_err(io_at("read", &entry.path))?)
        };
        field(kind.as_bytes());
        field(entry.rel.as_bytes());
        field(&content);
    }
    Ok(hasher.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// 1-based line and column (in characters) of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..text.floor_char_boundary(offset.min(text.len()))];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
    (line, column)
}

pub(crate) fn slash_path(path: &Path) -> String {
    path.components()
        .filter_map(|c| match c {
            std::path::Component::Normal(s) => Some(s.to_string_lossy().into_owned()),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// Names end up in run ids, file names, container names and image tags.
fn check_name(name: &str, max: usize) -> Result<(), String> {
    let length = name.chars().count();
    if length > max {
        return Err(format!("it has {length} characters, at most {max} are allowed"));
    }
    let ok = name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
    ok.then_some(()).ok_or_else(|| "start with a letter or digit, then use letters, digits, '.', '_' and '-' only".into())
}

/// A name short enough to quote in a one-line error.
fn shown_name(name: &str) -> String {
    const SHOWN: usize = 40;
    if name.chars().count() <= SHOWN {
        return name.to_string();
    }
    format!("{}…", name.chars().take(SHOWN).collect::<String>())
}

/// The Dockerfile path as every builder gets it (`dockerfile` of the build API, `-f`, `--dockerfile`):
/// relative to the context and made of plain names, so it cannot point outside the context however
/// it is joined. Spaces, quotes and `$` are legal in file names and stay; backends pass the path as
/// one argument, never through a shell unquoted.
fn check_dockerfile_path(path: &str) -> Result<PathBuf, context::Outside> {
    context::check_inside(Path::new(path))?;
    if path.ends_with('/') {
        return Err(context::Outside::Directory);
    }
    let normal: PathBuf = Path::new(path).components().filter(|c| matches!(c, std::path::Component::Normal(_))).collect();
    if normal.as_os_str().is_empty() {
        return Err(context::Outside::ContextItself);
    }
    Ok(normal)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_column_count_characters() {
        let text = "a = 1\nbé = \"x\"\n";
        assert_eq!(line_col(text, 0), (1, 1));
        assert_eq!(line_col(text, 6), (2, 1));
        assert_eq!(line_col(text, text.find('"').unwrap()), (2, 6));
        assert_eq!(line_col(text, 10_000), (3, 1));
    }

    #[test]
    fn names_and_repositories() {
        assert!(check_name("code-change_2.x", MAX_NAME_LEN).is_ok());
        assert!(check_name("code change", MAX_NAME_LEN).is_err());
        assert!(check_name("", MAX_NAME_LEN).is_err());
        assert!(check_name("-x", MAX_NAME_LEN).is_err(), "a leading '-' reads as an option in a path");
        assert!(check_name(".hidden", MAX_NAME_LEN).is_err());
        assert!(check_name(&"a".repeat(MAX_NAME_LEN), MAX_NAME_LEN).is_ok());
        assert!(check_name(&"a".repeat(MAX_NAME_LEN + 1), MAX_NAME_LEN).is_err());
    }

    fn write(dir: &Path, rel: &str, content: &str) {
        let path = dir.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
    }

    const SCENARIO: &str = "name = \"t\"\ncontext = \"ctx\"\n[[pipeline]]\nname = \"cold\"\n\
        [[pipeline]]\nname = \"code\"\nchange = { append = \"app/a.py\", line = \"# x\" }\n";

    #[test]
    fn defaults_hash_and_iteration_copy() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "s.toml", SCENARIO);
        write(dir.path(), "ctx/Dockerfile", "FROM python:3.11-slim\nCOPY app .\n");
        write(dir.path(), "ctx/app/a.py", "print(1)\n");
        let scenario = load(&dir.path().join("s.toml")).unwrap();
        assert_eq!((scenario.iterations, scenario.repository.as_str()), (3, "t"));
        assert_eq!(scenario.strategies, default_strategies());
        assert_eq!(scenario.strategies.len(), Strategy::all().count(), "a scenario naming none runs every strategy");
        assert_eq!(scenario.hash.len(), 64);

        let copy = context::prepare_iteration_context(&scenario, &dir.path().join("work/iter-1")).unwrap();
        context::apply_change(&copy, &scenario.pipeline[1].change).unwrap();
        assert_eq!(std::fs::read_to_string(copy.join("app/a.py")).unwrap(), "print(1)\n# x\n");
        assert_eq!(
            std::fs::read_to_string(dir.path().join("ctx/app/a.py")).unwrap(),
            "print(1)\n",
            "the scenario's own files are never changed"
        );
        assert_eq!(load(&dir.path().join("s.toml")).unwrap().hash, scenario.hash, "the hash is stable");
        let err = context::prepare_iteration_context(&scenario, &copy).unwrap_err();
        assert!(err.to_string().contains("not empty"), "{err}");
        let inside = context::prepare_iteration_context(&scenario, &dir.path().join("ctx/copy")).unwrap_err();
        assert!(inside.to_string().contains("inside the context"), "{inside}");

        write(dir.path(), "ctx/app/b.py", "new\n");
        assert_ne!(
            load(&dir.path().join("s.toml")).unwrap().hash,
            scenario.hash,
            "a context change changes the hash"
        );
    }

    #[test]
    fn dockerfile_and_change_must_survive_dockerignore() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "s.toml", SCENARIO);
        write(dir.path(), "ctx/Dockerfile", "FROM python:3.11-slim\n");
        write(dir.path(), "ctx/app/a.py", "");
        write(dir.path(), "ctx/.dockerignore", "app\n");
        let err = load(&dir.path().join("s.toml")).unwrap_err().to_string();
        assert!(err.ends_with("change file `app/a.py` is excluded by .dockerignore line 1, so the change would never reach the build"), "{err}");
        assert!(err.contains("s.toml:7:21:"), "{err}");
        write(dir.path(), "ctx/.dockerignore", "Dockerfile\n");
        let err = load(&dir.path().join("s.toml")).unwrap_err().to_string();
        assert!(err.contains("s.toml:2:11: the Dockerfile is excluded by .dockerignore line 1"), "{err}");
    }
}
