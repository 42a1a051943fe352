//! The Dockerfile's stages and instructions, numbered the way builders number their steps.

use std::collections::BTreeMap;

/// The stage label of an `ARG` before the first `FROM`, which belongs to no stage, in every record.
pub const GLOBAL_STAGE: &str = "global";

/// A parsed Dockerfile.
#[derive(Debug, Clone, PartialEq)]
pub struct Dockerfile {
    /// `ARG`s before the first `FROM`. The classic builder counts them as steps 1..=k, so the
    /// first stage's `FROM` is step k+1 (verified on dockerd 20.10, see tests/fixtures/dockerfile/).
    pub global_args: Vec<Instruction>,
    pub stages: Vec<Stage>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Stage {
    /// 0-based position among the Dockerfile's stages.
    pub index: usize,
    /// The `AS name`, if any, lower-cased: builders match stage names case-insensitively.
    pub name: Option<String>,
    /// The image named by `FROM`, as written (`$VAR`s are not expanded).
    pub base: String,
    /// Every instruction of the stage, its `FROM` first.
    pub instructions: Vec<Instruction>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Instruction {
    /// 1-based position in the whole Dockerfile, as the classic builder's `Step N/M` counts.
    pub step: u32,
    /// The instruction as the classic builder prints it after `Step N/M : `: continuation
    /// escapes removed, the lines joined, comment and blank lines inside it dropped, trimmed.
    pub text: String,
    /// 1-based line in the Dockerfile where the instruction starts.
    pub line: usize,
    /// 1-based line where it ends (its last continuation line; `line` when it has none).
    pub last_line: usize,
}

/// A Dockerfile the builders would reject, with the line to look at.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct DockerfileError {
    /// 1-based line of the offending instruction.
    pub line: usize,
    pub message: String,
}

/// Every instruction keyword the classic builder of Docker 20.10 accepts.
const KEYWORDS: [&str; 18] = [
    "ADD",
    "ARG",
    "CMD",
    "COPY",
    "ENTRYPOINT",
    "ENV",
    "EXPOSE",
    "FROM",
    "HEALTHCHECK",
    "LABEL",
    "MAINTAINER",
    "ONBUILD",
    "RUN",
    "SHELL",
    "STOPSIGNAL",
    "USER",
    "VOLUME",
    "WORKDIR",
];

impl Stage {
    /// The stage's name, or its index when it has none (what `--target` and CSV `stage` use).
    pub fn label(&self) -> String {
        self.name.clone().unwrap_or_else(|| self.index.to_string())
    }
}

impl Dockerfile {
    /// Parses a Dockerfile the way Docker 20.10's parser splits it into instructions.
    ///
    /// Supported: comments, blank lines, continuation lines (also with the `# escape=` parser
    /// directive), other parser directives such as `# syntax=` (ignored), global `ARG`s,
    /// `FROM [--flag=...] IMAGE [AS name]`. Heredocs are not (the classic builder has none).
    pub fn parse(text: &str) -> Result<Dockerfile, DockerfileError> {
        let mut global_args = vec![];
        let mut stages: Vec<Stage> = vec![];
        for (index, (line, last_line, text)) in logical_lines(text)?.into_iter().enumerate() {
            let step = index as u32 + 1;
            let instruction = Instruction { step, text, line, last_line };
            let keyword = instruction.keyword();
            if !KEYWORDS.contains(&keyword.as_str()) {
                return Err(DockerfileError {
                    line,
                    message: format!(
                        "unknown instruction `{keyword}`: expected one of {}",
                        KEYWORDS.join(", ")
                    ),
                });
            }
            if keyword == "FROM" {
                let (base, name) = parse_from(&instruction.text, line)?;
                if let Some(name) = &name {
                    if stages.iter().any(|s| s.name.as_ref() == Some(name)) {
                        return Err(DockerfileError {
                            line,
                            message: format!("duplicate stage name `{name}`: stage names must be unique"),
                        });
                    }
                }
                stages.push(Stage { index: stages.len(), name, base, instructions: vec![instruction] });
            } else if let Some(stage) = stages.last_mut() {
                stage.instructions.push(instruction);
            } else if keyword == "ARG" {
                global_args.push(instruction);
            } else {
                return Err(DockerfileError {
                    line,
                    message: format!("`{keyword}` before the first FROM: only ARG may come before it"),
                });
            }
        }
        if stages.is_empty() {
            return Err(DockerfileError {
                line: 1,
                message: "no FROM instruction: a Dockerfile needs at least one `FROM IMAGE`".into(),
            });
        }
        Ok(Dockerfile { global_args, stages })
    }

    pub fn total_steps(&self) -> u32 {
        self.global_args.len() as u32 + self.stages.iter().map(|s| s.instructions.len() as u32).sum::<u32>()
    }

    /// The cacheable steps (see [`Instruction::is_cacheable`]): what `total_steps` in `jobs.csv` counts.
    pub fn cacheable_steps(&self) -> u32 {
        self.steps().filter(|(_, i)| i.is_cacheable()).count() as u32
    }

    /// All instructions of the stages in order with the stage each belongs to
    /// (the global ARGs, which belong to no stage, are in `global_args`).
    pub fn steps(&self) -> impl Iterator<Item = (&Stage, &Instruction)> {
        self.stages.iter().flat_map(|s| s.instructions.iter().map(move |i| (s, i)))
    }

    /// Every step a job's records have a row for, in order, with its stage's label: the global ARGs first
    /// (stage [`GLOBAL_STAGE`]), then each stage's instructions. `steps.csv` and `run.json`'s step table both
    /// read this, so they list the same steps.
    pub fn recorded_steps(&self) -> impl Iterator<Item = (String, &Instruction)> {
        let global = self.global_args.iter().map(|i| (GLOBAL_STAGE.to_string(), i));
        global.chain(self.steps().map(|(stage, i)| (stage.label(), i)))
    }

    /// The stage instruction numbered `step`; `None` for a global ARG or a number out of range.
    pub fn step(&self, step: u32) -> Option<(&Stage, &Instruction)> {
        self.steps().find(|(_, i)| i.step == step)
    }

    /// Any instruction by step number, global ARGs included, with its stage when it has one.
    pub fn instruction(&self, step: u32) -> Option<(Option<&Stage>, &Instruction)> {
        match self.global_args.iter().find(|i| i.step == step) {
            Some(arg) => Some((None, arg)),
            None => self.step(step).map(|(s, i)| (Some(s), i)),
        }
    }

    pub fn final_stage(&self) -> &Stage {
        self.stages.last().expect("a parsed Dockerfile has at least one stage")
    }
}

/// [`Instruction::is_cacheable`] for an instruction's text, as records carry it.
pub fn is_cacheable(text: &str) -> bool {
    let keyword = text.split_whitespace().next().unwrap_or_default().to_ascii_uppercase();
    matches!(keyword.as_str(), "RUN" | "COPY" | "ADD" | "WORKDIR")
}

impl Instruction {
    /// The instruction's keyword, upper-cased (`run` and `RUN` are the same instruction).
    pub fn keyword(&self) -> String {
        self.text.split_whitespace().next().unwrap_or_default().to_ascii_uppercase()
    }

    /// A step a layer cache can serve: it runs a command or changes the filesystem (`RUN`, `COPY`,
    /// `ADD`, `WORKDIR`). Every builder runs these; metadata-only instructions (`ENV`, `CMD`, …) get
    /// no BuildKit vertex, and `FROM` is a base image, not a cached step. `cached_steps` and
    /// `total_steps` count these only, so builders stay comparable.
    pub fn is_cacheable(&self) -> bool {
        is_cacheable(&self.text)
    }

    /// BuildKit runs a vertex (a `[stage k/M]` step) only for these; the others only change the
    /// image config (captured: tests/fixtures/builder_log/buildkit/). A `FROM` of `scratch` or of an
    /// earlier stage gets none either, which the instruction alone cannot tell.
    pub fn runs_vertex(&self) -> bool {
        matches!(self.keyword().as_str(), "FROM" | "RUN" | "COPY" | "ADD" | "WORKDIR")
    }
}

/// Splits the text into instructions: (line where each starts, line where it ends, its text as the builder
/// prints it).
fn logical_lines(text: &str) -> Result<Vec<(usize, usize, String)>, DockerfileError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut lines = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l)).enumerate();
    let mut escape = '\\';
    let mut in_directives = true;
    let mut out = vec![];
    while let Some((index, raw)) = lines.next() {
        if in_directives {
            if let Some((key, value)) = parser_directive(raw) {
                if key == "escape" {
                    escape = match value {
                        "\\" => '\\',
                        "`" => '`',
                        _ => {
                            return Err(DockerfileError {
                                line: index + 1,
                                message: format!("invalid escape directive `{value}`: must be ` or \\"),
                            })
                        }
                    };
                }
                continue;
            }
            // Directives are only recognised before anything else, comments and blank lines included.
            in_directives = false;
        }
        let first = raw.trim_start();
        if first.is_empty() || first.starts_with('#') {
            continue;
        }
        let (mut joined, mut continues) = strip_continuation(first, escape);
        let mut joined_text = joined.to_string();
        let mut last = index;
        while continues {
            let Some((at, next)) = lines.next() else { break };
            last = at;
            let trimmed = next.trim();
            // The builder drops comment lines and (with a warning) empty lines inside a continuation.
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            (joined, continues) = strip_continuation(next, escape);
            joined_text.push_str(joined);
        }
        let instruction = joined_text.trim();
        if !instruction.is_empty() {
            out.push((index + 1, last + 1, instruction.to_string()));
        }
    }
    Ok(out)
}

/// `# key=value` at the top of the file; returns the lower-cased key and the value.
fn parser_directive(line: &str) -> Option<(String, &str)> {
    let rest = line.strip_prefix('#')?;
    let (key, value) = rest.split_once('=')?;
    let key = key.trim_matches([' ', '\t']);
    let mut chars = key.chars();
    let well_formed =
        chars.next().is_some_and(|c| c.is_ascii_alphabetic()) && chars.all(|c| c.is_ascii_alphanumeric());
    let value = value.trim_matches([' ', '\t']);
    (well_formed && !value.is_empty()).then(|| (key.to_ascii_lowercase(), value))
}

/// Removes a trailing escape character (and blanks after it); says whether the line continues.
fn strip_continuation(line: &str, escape: char) -> (&str, bool) {
    match line.trim_end_matches([' ', '\t']).strip_suffix(escape) {
        Some(rest) => (rest, true),
        None => (line, false),
    }
}

/// `FROM [--platform=...] IMAGE [AS name]` → (image, lower-cased name).
fn parse_from(text: &str, line: usize) -> Result<(String, Option<String>), DockerfileError> {
    let args: Vec<&str> = text.split_whitespace().skip(1).skip_while(|a| a.starts_with("--")).collect();
    let malformed = || DockerfileError {
        line,
        message: format!("malformed FROM `{text}`: expected `FROM [--platform=P] IMAGE [AS NAME]`"),
    };
    match args.as_slice() {
        [image] => Ok((image.to_string(), None)),
        [image, as_kw, name] if as_kw.eq_ignore_ascii_case("as") => {
            let name = name.to_ascii_lowercase();
            let mut chars = name.chars();
            let valid = chars.next().is_some_and(|c| c.is_ascii_lowercase())
                && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c));
            if !valid {
                return Err(DockerfileError {
                    line,
                    message: format!(
                        "invalid stage name `{name}`: use a letter followed by letters, digits, '-', '_' or '.'"
                    ),
                });
            }
            Ok((image.to_string(), Some(name)))
        }
        _ => Err(malformed()),
    }
}

/// What a stage's `FROM` starts from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StageBase {
    /// An image, as the Dockerfile names it once the global `ARG` defaults are substituted.
    Image(String),
    /// An earlier stage (its index), named by its name or its index.
    Stage(usize),
    /// `scratch`: no image at all.
    Scratch,
}

/// An image a `FROM` names: a base image of the build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseImage {
    /// The image as the build reads it, the global `ARG` defaults substituted (`python:3.11-slim`).
    pub name: String,
    /// The `FROM`'s image as written (`${PY}`).
    pub written: String,
    /// 1-based line of the `FROM`.
    pub line: usize,
    pub reference: crate::reference::Reference,
}

impl Dockerfile {
    /// The global `ARG`s with their defaults: all a `FROM` sees. Scenarios pass no build arguments, so the
    /// defaults are what every builder substitutes.
    pub fn global_vars(&self) -> Vars {
        let mut vars = Vars::default();
        for arg in &self.global_args {
            vars.declare_arg(&arg.text, &Vars::default());
        }
        vars
    }

    /// What `stage` starts from. A name matches an earlier stage's case-insensitively, as builders match it.
    pub fn stage_base(&self, stage: &Stage) -> StageBase {
        self.base_of(stage, &self.global_vars())
    }

    fn base_of(&self, stage: &Stage, global: &Vars) -> StageBase {
        let base = global.substitute(&stage.base);
        let lower = base.to_ascii_lowercase();
        let earlier = &self.stages[..stage.index];
        if let Some(found) = earlier.iter().find(|s| s.name.as_deref() == Some(lower.as_str())) {
            return StageBase::Stage(found.index);
        }
        match base.parse::<usize>() {
            Ok(index) if index < stage.index => StageBase::Stage(index),
            _ if lower == "scratch" => StageBase::Scratch,
            _ => StageBase::Image(base),
        }
    }

    /// Every image a `FROM` names, one per stage that starts from an image, in order; stage references and
    /// `scratch` are not images. A `FROM` whose image is no valid reference once substituted (an `ARG`
    /// without a default leaves it empty) is refused with its line.
    pub fn base_images(&self) -> Result<Vec<BaseImage>, DockerfileError> {
        let global = self.global_vars();
        let mut out = vec![];
        for stage in &self.stages {
            let StageBase::Image(name) = self.base_of(stage, &global) else { continue };
            let line = stage.instructions[0].line;
            let reference = crate::reference::Reference::parse(&name).map_err(|why| {
                let substituted = if name == stage.base { String::new() } else { format!(" (`{name}` once its ARGs are substituted)") };
                let hint = if name.is_empty() { "; give the global ARG it names a default" } else { "" };
                DockerfileError { line, message: format!("FROM `{}`{substituted} names no image: {why}{hint}", stage.base) }
            })?;
            out.push(BaseImage { name, written: stage.base.clone(), line, reference });
        }
        Ok(out)
    }

    /// `text` (this Dockerfile's own text) with the image of each `FROM` that `replace` maps (given the
    /// image's canonical name, see [`crate::reference::Reference::canonical`]) swapped for the name it
    /// returns; the rest of the file is left byte for byte, so every instruction keeps its line and step.
    /// `None` when nothing is replaced.
    pub fn with_bases_replaced(&self, text: &str, replace: impl Fn(&str) -> Option<String>) -> Option<String> {
        let mut lines: Vec<String> = text.split('\n').map(str::to_string).collect();
        let mut replaced = false;
        for base in self.base_images().ok()? {
            let Some(new) = replace(&base.reference.canonical()) else { continue };
            let Some(from) = self.stages.iter().map(|s| &s.instructions[0]).find(|i| i.line == base.line) else { continue };
            let mut words: Vec<&str> = from.text.split_whitespace().collect();
            let Some(image) = words.iter().skip(1).position(|w| !w.starts_with("--")).map(|i| i + 1) else { continue };
            words[image] = &new;
            let bom = if from.line == 1 && lines[0].starts_with('\u{feff}') { "\u{feff}" } else { "" };
            lines[from.line - 1] = format!("{bom}{}", words.join(" "));
            // Continuation lines become blank lines, so later instructions keep their line numbers.
            for line in &mut lines[from.line..from.last_line] {
                line.clear();
            }
            replaced = true;
        }
        replaced.then(|| lines.join("\n"))
    }
}

/// The `ARG` and `ENV` values a stage has declared so far.
#[derive(Debug, Clone, Default)]
pub struct Vars {
    pub(crate) values: BTreeMap<String, String>,
}

impl Vars {
    /// `ARG NAME[=default]`: a stage's `ARG NAME` without a default takes the global one.
    pub fn declare_arg(&mut self, text: &str, global: &Vars) {
        for word in text.split_whitespace().skip(1) {
            let (name, value) = match word.split_once('=') {
                Some((name, value)) => (name, Some(unquote(value))),
                None => (word, global.values.get(word).cloned()),
            };
            if let Some(value) = value {
                self.values.insert(name.to_string(), value);
            }
        }
    }

    /// `ENV NAME=value ...` or the old `ENV NAME value`.
    pub fn set_env(&mut self, text: &str) {
        let rest = text.split_once(char::is_whitespace).map(|(_, r)| r.trim()).unwrap_or_default();
        let rest = self.substitute(rest);
        if !rest.contains('=') || rest.split_whitespace().next().is_some_and(|w| !w.contains('=')) {
            if let Some((name, value)) = rest.split_once(char::is_whitespace) {
                self.values.insert(name.to_string(), value.trim().to_string());
            }
            return;
        }
        for word in shell_split(&rest) {
            if let Some((name, value)) = word.split_once('=') {
                self.values.insert(name.to_string(), value.to_string());
            }
        }
    }

    /// `$NAME`, `${NAME}`, `${NAME:-word}` and `${NAME:+word}` replaced as the Dockerfile frontend does;
    /// `\$` stays a dollar sign; an unknown name is empty.
    pub fn substitute(&self, text: &str) -> String {
        let mut out = String::with_capacity(text.len());
        let mut chars = text.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '\\' if chars.peek() == Some(&'$') => out.push(chars.next().unwrap_or('$')),
                '$' if chars.peek() == Some(&'{') => {
                    chars.next();
                    let inner: String = chars.by_ref().take_while(|c| *c != '}').collect();
                    out.push_str(&self.expand(&inner));
                }
                '$' if chars.peek().is_some_and(|c| c.is_ascii_alphabetic() || *c == '_') => {
                    let mut name = String::new();
                    while let Some(c) = chars.peek().copied().filter(|c| c.is_ascii_alphanumeric() || *c == '_') {
                        name.push(c);
                        chars.next();
                    }
                    out.push_str(self.values.get(&name).map(String::as_str).unwrap_or_default());
                }
                c => out.push(c),
            }
        }
        out
    }

    fn expand(&self, inner: &str) -> String {
        let value = |name: &str| self.values.get(name).filter(|v| !v.is_empty()).cloned();
        if let Some((name, word)) = inner.split_once(":-") {
            return value(name).unwrap_or_else(|| word.to_string());
        }
        if let Some((name, word)) = inner.split_once(":+") {
            return value(name).map(|_| word.to_string()).unwrap_or_default();
        }
        self.values.get(inner).cloned().unwrap_or_default()
    }
}

fn unquote(value: &str) -> String {
    value.trim_matches('"').trim_matches('\'').to_string()
}

/// Words split on blanks, quotes removed (enough for `ENV A="x y" B=z`).
pub(crate) fn shell_split(text: &str) -> Vec<String> {
    let mut words = vec![];
    let mut word = String::new();
    let mut quote = None;
    for c in text.chars() {
        match (quote, c) {
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, c) if c.is_whitespace() => {
                if !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
            }
            (_, c) => word.push(c),
        }
    }
    if !word.is_empty() {
        words.push(word);
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `Step N/M : TEXT` lines of a classic builder log, as (N, M, TEXT). The capture mixes
    /// in the CLI's stderr (a colour reset can precede `Step`), so the prefix is searched for.
    fn classic_steps(log: &str) -> Vec<(u32, u32, String)> {
        log.lines()
            .filter_map(|l| {
                let rest = &l[l.find("Step ")? + "Step ".len()..];
                let (numbers, text) = rest.split_once(" : ")?;
                let (n, m) = numbers.split_once('/')?;
                Some((n.parse().ok()?, m.parse().ok()?, text.to_string()))
            })
            .collect()
    }

    fn parsed_steps(dockerfile: &Dockerfile) -> Vec<(u32, u32, String)> {
        let total = dockerfile.total_steps();
        (1..=total)
            .map(|n| {
                let (_, i) = dockerfile.instruction(n).expect("every step number up to the total exists");
                (i.step, total, i.text.clone())
            })
            .collect()
    }

    fn assert_matches_capture(name: &str) {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/dockerfile/");
        let text = std::fs::read_to_string(format!("{dir}{name}.Dockerfile")).unwrap();
        let log = std::fs::read_to_string(format!("{dir}{name}.classic.log")).unwrap();
        let expected = classic_steps(&log);
        assert!(!expected.is_empty(), "the capture has Step lines");
        assert_eq!(parsed_steps(&Dockerfile::parse(&text).unwrap()), expected);
    }

    /// Captured with `DOCKER_BUILDKIT=0 /usr/bin/docker build` on dockerd 20.10.24: continuations,
    /// comments and empty lines inside them, global ARGs, three stages, lower-case keywords.
    #[test]
    fn numbers_and_texts_equal_the_classic_builder_capture() {
        assert_matches_capture("continuations");
    }

    #[test]
    fn escape_directive_matches_the_classic_builder_capture() {
        assert_matches_capture("escape-backtick");
    }

    #[test]
    fn stages_global_args_and_lines() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/dockerfile/");
        let text = std::fs::read_to_string(format!("{dir}continuations.Dockerfile")).unwrap();
        let d = Dockerfile::parse(&text).unwrap();
        assert_eq!(d.global_args.iter().map(|i| (i.step, i.line)).collect::<Vec<_>>(), [(1, 3), (2, 4)]);
        let labels: Vec<String> = d.stages.iter().map(Stage::label).collect();
        assert_eq!(labels, ["builder", "second", "2"], "`AS Builder` is matched case-insensitively");
        assert_eq!(d.stages[1].base, "${BASE}", "flags before the image are skipped");
        let (stage, run) = d.step(4).unwrap();
        assert_eq!((stage.index, run.line), (0, 8), "a continued instruction reports its first line");
        assert_eq!(d.step(1), None, "a global ARG belongs to no stage");
        assert_eq!(d.instruction(1).unwrap().0, None);
        assert_eq!(d.final_stage().instructions[0].step, 14);
        assert_eq!(d.total_steps(), 20);
    }

    #[test]
    fn rejects_what_the_builder_rejects_with_the_line() {
        let cases = [
            ("RUN echo hi\nFROM x\n", 1, "before the first FROM"),
            ("# just a comment\n\n", 1, "no FROM"),
            ("FROM a\nFORM b\n", 2, "unknown instruction `FORM`"),
            ("FROM a AS one\nFROM b as ONE\n", 2, "duplicate stage name `one`"),
            ("FROM a AS 1st\n", 1, "invalid stage name"),
            ("FROM a b c d\n", 1, "malformed FROM"),
            ("FROM\n", 1, "malformed FROM"),
            ("# escape=x\nFROM a\n", 1, "invalid escape"),
        ];
        for (text, line, words) in cases {
            let err = Dockerfile::parse(text).unwrap_err();
            assert_eq!(err.line, line, "{text:?}: {err}");
            assert!(err.message.contains(words), "{text:?}: {err}");
        }
    }

    #[test]
    fn only_filesystem_instructions_run_a_buildkit_vertex() {
        let text = "ARG V=1\nFROM a AS b\nENV X=1\nrun x\nCOPY . .\nADD f /f\nWORKDIR /w\nLABEL l=1\n\
                    EXPOSE 1\nUSER u\nVOLUME /v\nSHELL [\"sh\"]\nSTOPSIGNAL 9\nHEALTHCHECK NONE\n\
                    ONBUILD RUN y\nMAINTAINER m\nENTRYPOINT e\nCMD c\n";
        let d = Dockerfile::parse(text).unwrap();
        assert!(!d.global_args[0].runs_vertex());
        let running: Vec<String> =
            d.stages[0].instructions.iter().filter(|i| i.runs_vertex()).map(Instruction::keyword).collect();
        assert_eq!(running, ["FROM", "RUN", "COPY", "ADD", "WORKDIR"]);
    }

    #[test]
    fn directives_only_count_at_the_top() {
        // After an ordinary comment, `# escape=` is just a comment and `\` still continues lines.
        let d = Dockerfile::parse("# hello\n# escape=`\nFROM a\nRUN x \\\n y\n").unwrap();
        assert_eq!(d.stages[0].instructions[1].text, "RUN x  y");
        let d = Dockerfile::parse("\u{feff}# syntax=docker/dockerfile:1\r\nFROM a\r\nRUN b\r\n").unwrap();
        assert_eq!(d.total_steps(), 2);
        assert_eq!(d.stages[0].instructions[1].text, "RUN b");
    }

    #[test]
    fn variables_expand_as_the_frontend_expands_them() {
        let mut vars = Vars::default();
        vars.values.insert("A".into(), "x".into());
        assert_eq!(vars.substitute("$A ${A} ${B:-d} ${A:+y} ${B:+n} \\$A $"), "x x d y  $A $");
        vars.set_env("ENV C=\"a b\" D=$A");
        assert_eq!((vars.values["C"].as_str(), vars.values["D"].as_str()), ("a b", "x"));
        vars.set_env("ENV E some value");
        assert_eq!(vars.values["E"], "some value");
    }

    #[test]
    fn bases_are_the_images_from_names_with_global_args_substituted() {
        let text = "ARG PY=python:3.11-slim\nARG REG=gcr.io\nFROM ${PY} AS build\nRUN x\nFROM build AS again\n\
                    FROM --platform=linux/amd64 $REG/distroless/static:nonroot AS final\nCOPY --from=build /a /a\n\
                    FROM scratch\nFROM 0\nFROM Build\n";
        let d = Dockerfile::parse(text).unwrap();
        let bases = d.base_images().unwrap();
        let seen: Vec<(&str, &str, usize)> = bases.iter().map(|b| (b.name.as_str(), b.written.as_str(), b.line)).collect();
        assert_eq!(seen, [("python:3.11-slim", "${PY}", 3), ("gcr.io/distroless/static:nonroot", "$REG/distroless/static:nonroot", 6)]);
        assert_eq!(d.stage_base(&d.stages[1]), StageBase::Stage(0), "a stage reference is no base");
        assert_eq!(d.stage_base(&d.stages[3]), StageBase::Scratch);
        assert_eq!(d.stage_base(&d.stages[4]), StageBase::Stage(0), "by index");
        assert_eq!(d.stage_base(&d.stages[5]), StageBase::Stage(0), "names match case-insensitively");
        assert_eq!(bases[1].reference.registry(), "gcr.io");
        // A stage's own ARG does not reach its FROM; only the global defaults do.
        let later = Dockerfile::parse("FROM a AS one\nARG X=b\nFROM ${X:-debian}:12\n").unwrap();
        assert_eq!(later.base_images().unwrap()[1].name, "debian:12");
    }

    #[test]
    fn a_from_that_names_no_image_is_refused_with_its_line() {
        let err = Dockerfile::parse("ARG PY\n\nFROM ${PY}\n").unwrap().base_images().unwrap_err();
        assert_eq!(err.line, 3);
        assert!(err.message.contains("FROM `${PY}` (`` once its ARGs are substituted) names no image") && err.message.contains("default"), "{err}");
        let err = Dockerfile::parse("FROM Python:3\n").unwrap().base_images().unwrap_err();
        assert!(err.message.starts_with("FROM `Python:3` names no image: repository `Python`"), "{err}");
    }

    #[test]
    fn replacing_a_base_keeps_every_other_byte_and_line() {
        let text = "# syntax=docker/dockerfile:1\nARG PY=python:3.11-slim\nFROM ${PY} AS build\nRUN x\n\
                    FROM --platform=linux/amd64 \\\n  quay.io/org/img:1 \\\n  AS final\nCOPY --from=build /a /a\n";
        let d = Dockerfile::parse(text).unwrap();
        let served = d
            .with_bases_replaced(text, |canonical| (canonical == "quay.io/org/img:1").then(|| "mirror:5000/quay.io/org/img:1".to_string()))
            .unwrap();
        assert_eq!(
            served,
            "# syntax=docker/dockerfile:1\nARG PY=python:3.11-slim\nFROM ${PY} AS build\nRUN x\n\
             FROM --platform=linux/amd64 mirror:5000/quay.io/org/img:1 AS final\n\n\nCOPY --from=build /a /a\n"
        );
        let again = Dockerfile::parse(&served).unwrap();
        assert_eq!(again.total_steps(), d.total_steps());
        assert_eq!(again.stages[1].instructions[1].line, d.stages[1].instructions[1].line, "later lines stay where they were");
        assert_eq!(d.with_bases_replaced(text, |_| None), None);
        let both = d.with_bases_replaced(text, |c| Some(format!("m/{}", c.replace(['/', ':', '.'], "-")))).unwrap();
        assert!(both.contains("FROM m/docker-io-library-python-3-11-slim AS build\n"), "the ARG-named base is replaced too: {both}");
    }
}
