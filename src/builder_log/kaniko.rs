//! Parser for the kaniko executor's log (strings from kaniko's source, pkg/executor/build.go).
//!
//! kaniko prints no step numbers. Per stage it prints, in this order:
//!
//! ```text
//! INFO[0000] Retrieving image manifest python:3.11-slim        <- fetching the stage's base
//! INFO[0001] Executing 0 build triggers                        <- (upstream only)
//! INFO[0001] Building stage 'python:3.11-slim' [idx: '0', base-idx: '-1']
//! INFO[0001] Checking for cached layer registry:5000/app-cache:4c1e...
//! INFO[0001] Using caching version of cmd: RUN pip install flask  <- the cache will serve it
//! INFO[0001] No cached layer found for cmd RUN make            <- this one and all after run
//! INFO[0001] Unpacking rootfs as cmd RUN pip install flask requires it.
//! INFO[0009] RUN pip install flask                             <- the step starts
//! INFO[0009] Found cached layer, extracting to filesystem
//! INFO[0012] Pushing layer registry:5000/app-cache:9f3a... to cache now   <- an executed RUN's
//! INFO[0012] Pushing image to registry:5000/app-cache:9f3a...   <- layer, pushed in the background
//! ...
//! INFO[0030] Pushing image to registry:5000/app:latest         <- the build has ended
//! error building image: error building stage: failed to execute command: waiting for process to exit: exit status 3
//! ```
//!
//! So each stage's `FROM` is a step that starts with the stage's first preamble line, and its
//! other instructions are matched in Dockerfile order by keyword. Understood log formats:
//! `--log-format=color` (the default, `INFO[0001] msg` in ANSI colours, also without them) and
//! `--log-format=text` (`time="..." level=info msg="..."`). Stage indices are the Dockerfile's,
//! which holds unless `--skip-unused-stages` is given.

use std::borrow::Cow;

use super::tracker::StepTracker;
use super::{lines, LogParser, ParsedStep};
use crate::scenario::Dockerfile;
use crate::Millis;

pub struct KanikoParser {
    steps: StepTracker,
    /// Per Dockerfile stage: `(step number, instruction text)`, `FROM` first.
    stages: Vec<Vec<(u32, String)>>,
    /// The stage being built and the position in it of the next instruction expected.
    stage: Option<usize>,
    next: usize,
    /// The stage started at least one instruction after its `FROM`.
    stage_ran_command: bool,
    /// Commands kaniko said the cache will serve, in this stage.
    cached_commands: Vec<String>,
    /// Time of the first line about the next stage's base image since the last step started.
    preamble_ms: Option<Millis>,
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
            steps: StepTracker::default(),
            stages,
            stage: None,
            next: 0,
            stage_ran_command: false,
            cached_commands: vec![],
            preamble_ms: None,
            cache_tags: vec![],
        }
    }

    fn line(&mut self, at_ms: Millis, line: &str) {
        match log_message(line) {
            Some((level, message)) if level.eq_ignore_ascii_case("info") => self.info(at_ms, message.trim_end()),
            Some(_) => {}
            None => {
                // kaniko prints its fatal error without a level, as the last line.
                if line.starts_with("error building image: ") || line.starts_with("error pushing image: ") {
                    self.steps.fail(at_ms, line);
                }
            }
        }
    }

    fn info(&mut self, at_ms: Millis, message: &str) {
        if let Some(rest) = message.strip_prefix("Building stage '") {
            if let Some(index) = stage_index(rest) {
                if self.stage != Some(index) {
                    self.enter_stage(at_ms, index);
                }
            }
        } else if message.starts_with("Executing ") && message.ends_with(" build triggers") {
            // Upstream prints this once per stage, before `Building stage` (older versions
            // print only this).
            match self.stage {
                None => self.enter_stage(at_ms, 0),
                Some(stage) if self.stage_ran_command => self.enter_stage(at_ms, stage + 1),
                Some(_) => {}
            }
        } else if let Some(command) = message.strip_prefix("Using caching version of cmd: ") {
            self.cached_commands.push(command.to_string());
        } else if message == "Found cached layer, extracting to filesystem" {
            if self.steps.running().is_some_and(|s| !is_from(&s.instruction)) {
                self.steps.mark_cached();
            }
        } else if PREAMBLE.iter().any(|p| message.starts_with(p)) {
            self.preamble_ms.get_or_insert(at_ms);
        } else if let Some(layer) =
            message.strip_prefix("Pushing layer ").and_then(|m| m.strip_suffix(" to cache now"))
        {
            self.cache_tags.push(tag_of(layer).to_string());
        } else if let Some(image) = message.strip_prefix("Pushing image to ") {
            if !self.cache_tags.iter().any(|t| t == tag_of(image)) {
                self.end_build(at_ms);
            }
        } else if message.starts_with("Skipping push to container registry") {
            self.end_build(at_ms);
        } else {
            self.maybe_start_command(at_ms, message);
        }
    }

    /// The final image is being pushed (or not): the last step is over.
    fn end_build(&mut self, at_ms: Millis) {
        self.steps.end(at_ms);
        self.stage = None;
    }

    fn enter_stage(&mut self, at_ms: Millis, index: usize) {
        let Some((step, from)) = self.stages.get(index).and_then(|s| s.first()) else {
            return;
        };
        let started_ms = self.preamble_ms.take().unwrap_or(at_ms);
        self.steps.start(started_ms, *step, from);
        self.stage = Some(index);
        self.next = 1;
        self.stage_ran_command = false;
        self.cached_commands.clear();
        self.skip_unprinted();
    }

    /// kaniko logs each instruction's text as it starts it; it is the next one in the stage.
    fn maybe_start_command(&mut self, at_ms: Millis, message: &str) {
        let Some(stage) = self.stage.and_then(|s| self.stages.get(s)) else { return };
        let Some((step, text)) = stage.get(self.next) else { return };
        if !same_keyword(text, message) {
            return;
        }
        self.steps.start(at_ms, *step, message);
        if self.cached_commands.iter().any(|c| c == message) {
            self.steps.mark_cached();
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

/// Lines about fetching a stage's base image: the `FROM` step's work begins with the first.
const PREAMBLE: [&str; 5] = [
    "Resolved base name ",
    "Retrieving image ",
    "Returning cached image manifest",
    "Base image from previous stage ",
    "No base image, nothing to extract",
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

impl LogParser for KanikoParser {
    fn push_line(&mut self, at_ms: Millis, chunk: &str) {
        for line in lines(chunk) {
            self.line(at_ms, line);
        }
    }
    fn push_error(&mut self, at_ms: Millis, message: &str) {
        self.steps.fail(at_ms, message);
    }
    fn current(&self) -> Option<&ParsedStep> {
        self.steps.running()
    }
    fn error(&self) -> Option<&str> {
        self.steps.error()
    }
    fn finish(&mut self, end_ms: Millis) -> Vec<ParsedStep> {
        self.steps.finish(end_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn stage_index_from_building_stage() {
        assert_eq!(stage_index("python:3.11-slim' [idx: '1', base-idx: '-1']"), Some(1));
        assert_eq!(stage_index("x"), None);
    }
}
