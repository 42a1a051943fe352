//! Parser for `buildah bud --layers` output (buildah 1.28, as captured in tests/fixtures/).
//!
//! ```text
//! [1/2] STEP 2/5: RUN mkdir -p /out
//! --> Cache pulled from remote registry:5000/app-cache:a5dd5d...   <- served by --cache-from
//! --> Using cache e802c9b31c3f...                                   <- served by local storage
//! --> e802c9b31c3
//! [2/2] STEP 1/6: FROM python:3.11-slim
//! [2/2] STEP 2/6: ENV VENV=/venv
//! ...RUN output...
//! --> Pushing cache registry:5000/app-cache:800420...               <- executed, pushed by --cache-to
//! --> 225330e6f18
//! [2/2] COMMIT app:1
//! Successfully tagged localhost/app:1
//! Error: building at STEP "RUN exit 3": exit status 3
//! ```
//!
//! `[x/y]` is the stage's 1-based position in the Dockerfile (stages the target does not need
//! are skipped and keep their numbers); `STEP a/b` counts within the stage. A build of a single
//! stage (also `--target` of the first stage) prints no `[x/y]`.
//!
//! A step is cached when buildah printed `--> Using cache ID` right after its header and ended
//! it with that layer. A failing step's `Error:` is the log's last words: an `Error:` line
//! followed by more steps was a RUN's output.

use crate::builder::tracker::{LineReader, StepTracker, Tracked};
use crate::builder::log::{parse_number, LogParser};
use crate::dockerfile::Dockerfile;
use crate::Millis;

/// This builder's log parser, as a job command names it.
pub fn parser(dockerfile: &Dockerfile) -> Box<dyn LogParser> {
    Box::new(Tracked::new(BuildahParser::new(dockerfile)))
}

pub struct BuildahParser {
    /// For each stage, the global step number of its `FROM` minus one.
    stage_offsets: Vec<u32>,
    last_header: Option<Header>,
    /// Global step number of the last header's stage `FROM`, minus one.
    last_offset: u32,
    /// Only lines right after a header can be cache markers: later ones may be a RUN's output.
    awaiting_marker: bool,
    /// The layer ID of `--> Using cache ID`. The step counts as cached once buildah ends it
    /// with `--> SHORT-ID` of that layer: a RUN whose output starts with a look-alike ends
    /// with the ID of the layer it made.
    cache_id: Option<String>,
    /// `Error: ...` and its time. It is buildah's own error only if no step follows it: a RUN
    /// may print such a line and go on.
    error_line: Option<(Millis, String)>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Header {
    /// 0-based stage index, and the stage count, from `[x/y]` (`(0, 1)` when absent).
    stage: usize,
    stages: usize,
    /// `STEP a/b`.
    step: u32,
    steps: u32,
}

impl BuildahParser {
    pub fn new(dockerfile: &Dockerfile) -> Self {
        BuildahParser {
            stage_offsets: dockerfile.stages.iter().map(|s| s.instructions[0].step - 1).collect(),
            last_header: None,
            last_offset: 0,
            awaiting_marker: false,
            cache_id: None,
            error_line: None,
        }
    }

    /// A look-alike header printed by a RUN does not continue the sequence buildah follows.
    fn follows(&self, next: &Header) -> bool {
        match self.last_header {
            None => next.step == 1,
            Some(last) if next.stage == last.stage => {
                next.stages == last.stages && next.steps == last.steps && next.step == last.step + 1
            }
            Some(last) => next.stages == last.stages && next.stage > last.stage && next.step == 1,
        }
    }

}

impl LineReader for BuildahParser {
    fn line(&mut self, steps: &mut StepTracker, at_ms: Millis, line: &str) {
        if let Some((header, instruction)) = parse_header(line) {
            if self.follows(&header) {
                // A stage the Dockerfile lacks (a mismatch) is numbered on from the log.
                let offset = match (self.stage_offsets.get(header.stage), self.last_header) {
                    (Some(offset), _) => *offset,
                    (None, Some(last)) if last.stage == header.stage => self.last_offset,
                    (None, Some(last)) => self.last_offset + last.steps,
                    (None, None) => 0,
                };
                steps.start(at_ms, offset + header.step, instruction);
                self.last_header = Some(header);
                self.last_offset = offset;
                self.awaiting_marker = true;
                self.cache_id = None;
                self.error_line = None;
                return;
            }
        }
        if self.awaiting_marker {
            // `--> Cache pulled from remote REF` comes before the `Using cache` of that layer.
            if line.starts_with("--> Cache pulled from remote ") {
                return;
            }
            self.awaiting_marker = false;
            if let Some(id) = line.strip_prefix("--> Using cache ").filter(|id| is_hex(id)) {
                self.cache_id = Some(id.to_string());
                return;
            }
        }
        if let Some(short_id) = line.strip_prefix("--> ").filter(|id| is_hex(id)) {
            if self.cache_id.take_if(|id| id.starts_with(short_id)).is_some() {
                steps.mark_cached();
            }
        } else if let Some(message) = line.strip_prefix("Error: ") {
            self.error_line = Some((at_ms, message.to_string()));
        } else if line.starts_with("Successfully tagged ")
            && matches!(self.last_header, Some(h) if h.stage + 1 == h.stages && h.step == h.steps)
        {
            self.error_line = None;
            steps.end(at_ms);
        }
    }

    fn held_error(&self) -> Option<&str> {
        self.error_line.as_ref().map(|(_, message)| message.as_str())
    }

    fn before_finish(&mut self, steps: &mut StepTracker) {
        if let Some((at_ms, message)) = self.error_line.take() {
            steps.fail(at_ms, &message);
        }
    }
}

/// `[x/y] STEP a/b: INSTRUCTION` or `STEP a/b: INSTRUCTION` at the very start of the line.
fn parse_header(line: &str) -> Option<(Header, &str)> {
    let (stage, stages, rest) = match line.strip_prefix('[') {
        Some(rest) => {
            let (stage, rest) = rest.split_once('/')?;
            let (stages, rest) = rest.split_once("] ")?;
            let stage = parse_number(stage)?;
            (stage.checked_sub(1)? as usize, parse_number(stages)? as usize, rest)
        }
        None => (0, 1, line),
    };
    let rest = rest.strip_prefix("STEP ")?;
    let (step, rest) = rest.split_once('/')?;
    let (steps, instruction) = rest.split_once(": ")?;
    let header = Header { stage, stages, step: parse_number(step)?, steps: parse_number(steps)? };
    Some((header, instruction))
}

fn is_hex(id: &str) -> bool {
    !id.is_empty() && id.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_with_and_without_stage_prefix() {
        let (h, text) = parse_header("[2/3] STEP 4/6: COPY --from=builder /a /b").unwrap();
        assert_eq!((h.stage, h.stages, h.step, h.steps, text), (1, 3, 4, 6, "COPY --from=builder /a /b"));
        let (h, text) = parse_header("STEP 1/4: FROM python AS builder").unwrap();
        assert_eq!((h.stage, h.stages, h.step, h.steps, text), (0, 1, 1, 4, "FROM python AS builder"));
        assert!(parse_header("[0/3] STEP 1/4: FROM x").is_none());
        assert!(parse_header(" STEP 1/4: FROM x").is_none());
    }
}
