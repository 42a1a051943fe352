//! Parser for the kaniko executor's log (strings from kaniko's source, pkg/executor/build.go).
//!
//! kaniko prints no step numbers. Per stage it prints, in this order (kaniko v1.24.0, abridged from
//! tests/fixtures/builder_log/kaniko/warm.log; colours and padding left out):
//!
//! ```text
//! INFO[0000] Resolved base name python:3.11-slim to builder    <- the build's first line
//! INFO[0000] Retrieving image python:3.11-slim from mapped registry mirror:5000
//! INFO[0000] Built cross stage deps: map[0:[/out]]
//! INFO[0000] Retrieving image manifest python:3.11-slim        <- fetching the stage's base
//! INFO[0000] Executing 0 build triggers
//! INFO[0000] Building stage 'python:3.11-slim' [idx: '0', base-idx: '-1']
//! INFO[0000] Checking for cached layer registry:5000/app-cache:aa0f...
//! INFO[0000] Using caching version of cmd: RUN mkdir -p /out   <- the cache will serve it
//! INFO[0000] No cached layer found for cmd RUN make            <- this one and all after run
//! INFO[0000] Unpacking rootfs as cmd COPY deps.txt . requires it.
//! INFO[0011] RUN mkdir -p /out                                 <- the step starts
//! INFO[0011] Found cached layer, extracting to filesystem
//! INFO[0011] COPY deps.txt .
//! INFO[0011] RUN make
//! INFO[0011] Pushing layer registry:5000/app-cache:9251... to cache now   <- an executed RUN's
//! INFO[0011] Pushing image to registry:5000/app-cache:9251...   <- layer, pushed in the background
//! INFO[0011] Saving file out for later use                     <- the stage is over: its files
//! INFO[0011] Deleting filesystem...                            <- are kept, the rest wiped
//! INFO[0017] Retrieving image manifest python:3.11-slim        <- the next stage's base
//! ...
//! INFO[0032] Pushing image to registry:5000/app:c2             <- the build has ended
//! error building image: error building stage: failed to execute command: waiting for process to exit: exit status 3
//! ```
//!
//! So each stage's `FROM` is a step that starts when kaniko leaves the previous stage (saving
//! its files for later stages, wiping the filesystem) or, for the first, at the first line; its
//! other instructions are matched in Dockerfile order by keyword. A step is cached when kaniko
//! said so: `Using caching version of cmd:` (its cache probes come first, in order, and stop at
//! the first miss) or `Found cached layer, extracting to filesystem`. By default only `RUN` is
//! looked up (`COPY` too with `--cache-copy-layers`); metadata steps never are.
//!
//! kaniko's own times are whole seconds (`[0011]` since its start, or `time="..."` in the text
//! format), so durations come from the times the caller gives each line (the engine's log
//! timestamps). Understood log formats: `--log-format=color` (the default, `INFO[0001] msg` in
//! ANSI colours, also without them, and with `--log-timestamp`) and `--log-format=text`
//! (`time="..." level=info msg="..."`). Stage indices are the Dockerfile's, which holds unless
//! `--skip-unused-stages` is given.

use std::borrow::Cow;
use std::collections::VecDeque;

use crate::builder::tracker::{LineReader, StepTracker, Tracked};
use crate::builder::log::LogParser;
use crate::dockerfile::Dockerfile;
use crate::Millis;

/// This builder's log parser, as a job command names it.
pub fn parser(dockerfile: &Dockerfile) -> Box<dyn LogParser> {
    Box::new(Tracked::new(KanikoParser::new(dockerfile)))
}

pub struct KanikoParser {
    /// Per Dockerfile stage: `(step number, instruction text)`, `FROM` first.
    stages: Vec<Vec<(u32, String)>>,
    /// The stage being built and the position in it of the next instruction expected.
    stage: Option<usize>,
    next: usize,
    /// The stage started at least one instruction after its `FROM`.
    stage_ran_command: bool,
    /// Commands kaniko said the cache will serve, in this stage, in order, until each starts.
    cached_commands: VecDeque<String>,
    /// Time of the first line of the next stage's set-up (leaving the previous stage, fetching
    /// the base image) since the last step started.
    preamble_ms: Option<Millis>,
    /// kaniko has logged a line: its command-line errors (`Error: ...`) come before any.
    began: bool,
    /// Tags of the cache layers being pushed: their pushes print `Pushing image to` too.
    cache_tags: Vec<String>,
}

impl KanikoParser {
    pub fn new(dockerfile: &Dockerfile) -> Self {
        let stages = dockerfile
            .stages
            .iter()
            .map(|s| s.instructions.iter().map(|i| (i.step, i.text.clone())).collect())
            .collect();
        KanikoParser {
            stages,
            stage: None,
            next: 0,
            stage_ran_command: false,
            cached_commands: VecDeque::new(),
            preamble_ms: None,
            began: false,
            cache_tags: vec![],
        }
    }

    fn info(&mut self, steps: &mut StepTracker, at_ms: Millis, message: &str) {
        if let Some(rest) = message.strip_prefix("Building stage '") {
            if let Some(index) = stage_index(rest) {
                if self.stage != Some(index) {
                    self.enter_stage(steps, at_ms, index);
                }
            }
        } else if message.starts_with("Executing ") && message.ends_with(" build triggers") {
            // Upstream prints this once per stage, before `Building stage` (older versions
            // print only this).
            match self.stage {
                None => self.enter_stage(steps, at_ms, 0),
                Some(stage) if self.stage_ran_command => self.enter_stage(steps, at_ms, stage + 1),
                Some(_) => {}
            }
        } else if let Some(command) = message.strip_prefix("Using caching version of cmd: ") {
            self.cached_commands.push_back(command.to_string());
        } else if message == "Found cached layer, extracting to filesystem" {
            if steps.running().is_some_and(|s| !is_from(&s.instruction)) {
                steps.mark_cached();
            }
        } else if PREAMBLE.iter().any(|p| message.starts_with(p)) {
            self.preamble_ms.get_or_insert(at_ms);
        } else if let Some(layer) =
            message.strip_prefix("Pushing layer ").and_then(|m| m.strip_suffix(" to cache now"))
        {
            self.cache_tags.push(tag_of(layer).to_string());
        } else if let Some(image) = message.strip_prefix("Pushing image to ") {
            if !self.cache_tags.iter().any(|t| t == tag_of(image)) {
                self.end_build(steps, at_ms);
            }
        } else if message.starts_with("Skipping push to container registry") {
            self.end_build(steps, at_ms);
        } else {
            self.maybe_start_command(steps, at_ms, message);
        }
    }

    /// The final image is being pushed (or not): the last step is over.
    fn end_build(&mut self, steps: &mut StepTracker, at_ms: Millis) {
        steps.end(at_ms);
        self.stage = None;
    }

    fn enter_stage(&mut self, steps: &mut StepTracker, at_ms: Millis, index: usize) {
        let Some((step, from)) = self.stages.get(index).and_then(|s| s.first()) else {
            return;
        };
        let started_ms = self.preamble_ms.take().unwrap_or(at_ms);
        steps.start(started_ms, *step, from);
        self.stage = Some(index);
        self.next = 1;
        self.stage_ran_command = false;
        self.cached_commands.clear();
        self.skip_unprinted();
    }

    /// kaniko logs each instruction's text as it starts it; it is the next one in the stage.
    fn maybe_start_command(&mut self, steps: &mut StepTracker, at_ms: Millis, message: &str) {
        let Some(stage) = self.stage.and_then(|s| self.stages.get(s)) else { return };
        let Some((step, text)) = stage.get(self.next) else { return };
        if !same_keyword(text, message) {
            return;
        }
        steps.start(at_ms, *step, message);
        // kaniko probes the cache in Dockerfile order, so a hit is the next one announced; the
        // same text later in the stage (after a miss) is not served.
        if self.cached_commands.front().is_some_and(|c| c == message) {
            self.cached_commands.pop_front();
            steps.mark_cached();
        }
        self.next += 1;
        self.stage_ran_command = true;
        self.preamble_ms = None;
        self.skip_unprinted();
    }

    /// kaniko skips `MAINTAINER` without logging it as a command.
    fn skip_unprinted(&mut self) {
        if let Some(stage) = self.stage.and_then(|s| self.stages.get(s)) {
            while stage.get(self.next).is_some_and(|(_, text)| same_keyword(text, "MAINTAINER ")) {
                self.next += 1;
            }
        }
    }
}

impl LineReader for KanikoParser {
    fn line(&mut self, steps: &mut StepTracker, at_ms: Millis, line: &str) {
        match log_message(line) {
            Some((level, message)) => {
                self.began = true;
                if level.eq_ignore_ascii_case("info") {
                    self.info(steps, at_ms, message.trim_end());
                }
            }
            None => {
                // kaniko prints its fatal error without a level, as the last line; a bad command
                // line gets cobra's `Error: ...` (and the usage) before anything else.
                let fatal = FATAL.iter().any(|p| line.starts_with(p));
                if fatal || (!self.began && line.starts_with("Error: ")) {
                    steps.fail(at_ms, line);
                }
            }
        }
    }
}

/// Lines of a stage's set-up: leaving the previous stage (its files saved for later stages, the
/// filesystem wiped) and fetching the stage's base image. The `FROM` step begins with the first.
const PREAMBLE: [&str; 7] = [
    "Saving file ",
    "Deleting filesystem",
    "Resolved base name ",
    "Retrieving image ",
    "Returning cached image manifest",
    "Base image from previous stage ",
    "No base image, nothing to extract",
];

/// kaniko's fatal errors, printed without a level as its last line (cmd/executor/cmd/root.go).
const FATAL: [&str; 6] = [
    "error building image: ",
    "error pushing image: ",
    "error checking push permissions",
    "error resolving relative paths",
    "error changing to root dir",
    "kaniko should only be run inside of a container",
];

fn is_from(instruction: &str) -> bool {
    same_keyword(instruction, "FROM ")
}

/// Both start with the same instruction keyword (case-insensitively), followed by whitespace.
fn same_keyword(instruction: &str, message: &str) -> bool {
    let keyword = instruction.split_whitespace().next().unwrap_or_default();
    message.len() > keyword.len()
        && message.as_bytes()[..keyword.len()].eq_ignore_ascii_case(keyword.as_bytes())
        && message.as_bytes()[keyword.len()].is_ascii_whitespace()
}

/// `KEY` of `REGISTRY/REPO:KEY` (kaniko's cache tags are 64 hex digits).
fn tag_of(reference: &str) -> &str {
    reference.rsplit_once(':').map_or(reference, |(_, tag)| tag)
}

/// `'python:3.11-slim' [idx: '1', base-idx: '-1']` after `Building stage '` gives 1.
fn stage_index(rest: &str) -> Option<usize> {
    let (_, after) = rest.rsplit_once("[idx: '")?;
    let (index, _) = after.split_once('\'')?;
    index.parse().ok()
}

/// A kaniko (logrus) log line's level and message; `None` for anything else, such as a
/// RUN's own output.
fn log_message(line: &str) -> Option<(&str, Cow<'_, str>)> {
    if let Some(rest) = line.strip_prefix("time=\"") {
        return logfmt_message(rest);
    }
    // `--log-format=color`: `ESC[36mINFOESC[0m[0001] message`, padded to 44 columns.
    let (level, rest) = match line.strip_prefix("\x1b[") {
        Some(colored) => {
            let (_, rest) = colored.split_once('m')?;
            rest.split_once("\x1b[0m")?
        }
        // Without colours: `INFO[0001] message`; logrus cuts level names to 4 letters.
        None if line.as_bytes().get(4) == Some(&b'[') => line.split_at(4),
        None => return None,
    };
    if level.is_empty() || !level.bytes().all(|b| b.is_ascii_uppercase()) {
        return None;
    }
    let (_, message) = rest.strip_prefix('[')?.split_once("] ")?;
    Some((level, Cow::Borrowed(message)))
}

/// `--log-format=text`: after `time="`, `2025-06-27T11:32:25Z" level=info msg="Cmd: /bin/sh"`.
fn logfmt_message(rest: &str) -> Option<(&str, Cow<'_, str>)> {
    let (_, rest) = rest.split_once("\" level=")?;
    let (level, rest) = rest.split_once(' ')?;
    let value = rest.strip_prefix("msg=")?;
    let Some(quoted) = value.strip_prefix('"') else {
        // logrus leaves values of plain characters unquoted.
        return Some((level, Cow::Borrowed(value.split(' ').next().unwrap_or_default())));
    };
    let mut end = None;
    let mut escaped = false;
    for (i, b) in quoted.bytes().enumerate() {
        match b {
            _ if escaped => escaped = false,
            b'\\' => escaped = true,
            b'"' => {
                end = Some(i);
                break;
            }
            _ => {}
        }
    }
    let body = &quoted[..end?];
    if !body.contains('\\') {
        return Some((level, Cow::Borrowed(body)));
    }
    let mut message = String::with_capacity(body.len());
    let mut chars = body.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            message.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => message.push('\n'),
            Some('t') => message.push('\t'),
            Some('r') => message.push('\r'),
            Some(other) => message.push(other),
            None => {}
        }
    }
    Some((level, Cow::Owned(message)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builder::log::ParsedStep;

    #[test]
    fn messages_in_each_log_format() {
        let color = "\x1b[36mINFO\x1b[0m[0002] RUN echo hi                                  ";
        assert_eq!(log_message(color), Some(("INFO", Cow::Borrowed("RUN echo hi                                  "))));
        assert_eq!(log_message("INFO[0002] RUN echo hi "), Some(("INFO", Cow::Borrowed("RUN echo hi "))));
        let text = r#"time="2025-06-27T11:32:25Z" level=info msg="Args: [-c echo \"hi\"]""#;
        assert_eq!(log_message(text), Some(("info", Cow::Owned(r#"Args: [-c echo "hi"]"#.to_string()))));
        let bare = r#"time="2025-06-27T11:32:25Z" level=info msg=Unpacking"#;
        assert_eq!(log_message(bare), Some(("info", Cow::Borrowed("Unpacking"))));
        assert_eq!(log_message("some RUN output [1] here"), None);
        assert_eq!(log_message("Step [0001] x"), None);
    }

    #[test]
    fn keywords_match_whole_words_only() {
        assert!(same_keyword("RUN pip install", "RUN pip install"));
        assert!(same_keyword("run pip install", "RUN pip install"));
        assert!(!same_keyword("CMD flask run", "Cmd: /bin/sh"));
        assert!(!same_keyword("ENV A=1", "ENVIRONMENT"));
    }

    fn parse(dockerfile: &str, log: &[&str]) -> (Vec<ParsedStep>, Tracked<KanikoParser>) {
        let mut parser = Tracked::new(KanikoParser::new(&Dockerfile::parse(dockerfile).unwrap()));
        for (i, line) in log.iter().enumerate() {
            parser.push_line(i as Millis * 10, line);
        }
        (parser.finish(log.len() as Millis * 10), parser)
    }

    #[test]
    fn a_hit_is_the_next_one_announced_not_any_with_the_same_text() {
        let dockerfile = "FROM base\nRUN make\nCOPY src /src\nRUN make\n";
        let log = [
            "INFO[0000] Building stage 'base' [idx: '0', base-idx: '-1']",
            "INFO[0000] Using caching version of cmd: RUN make",
            "INFO[0000] No cached layer found for cmd RUN make",
            "INFO[0001] RUN make",
            "INFO[0001] Found cached layer, extracting to filesystem",
            "INFO[0001] COPY src /src",
            "INFO[0001] RUN make",
            "INFO[0002] Pushing image to registry:5000/app:latest",
        ];
        let (steps, _) = parse(dockerfile, &log);
        let hits: Vec<(u32, bool)> = steps.iter().map(|s| (s.step, s.cached)).collect();
        assert_eq!(hits, [(1, false), (2, true), (3, false), (4, false)]);
    }

    #[test]
    fn command_line_errors_come_before_any_log_line_and_run_output_is_not_one() {
        let usage = "Error: you must provide --destination, or use --no-push";
        let (steps, parser) = parse("FROM base\n", &[usage, "Usage:"]);
        assert!(steps.is_empty());
        assert_eq!(parser.error(), Some(usage));
        let log = [
            "INFO[0000] Building stage 'base' [idx: '0', base-idx: '-1']",
            "INFO[0000] RUN ./x",
            "Error: not fatal",
            "INFO[0001] Pushing image to r/app:c1",
        ];
        let (steps, parser) = parse("FROM base\nRUN ./x\n", &log);
        assert_eq!(parser.error(), None);
        assert!(steps.iter().all(|s| s.error.is_none()));
        // Without --insecure-registry for a plain-HTTP registry (captured).
        let push = "error checking push permissions -- make sure you entered the correct tag name, and that you are \
                    authenticated correctly, and try again: checking push permission for \"registry:5000/probe:x\": \
                    creating push check transport for registry:5000 failed: Get \"https://registry:5000/v2/\": http: \
                    server gave HTTP response to HTTPS client";
        let (_, parser) = parse("FROM base\n", &[push]);
        assert_eq!(parser.error(), Some(push));
    }

    #[test]
    fn stage_index_from_building_stage() {
        assert_eq!(stage_index("python:3.11-slim' [idx: '1', base-idx: '-1']"), Some(1));
        assert_eq!(stage_index("x"), None);
    }
}
