//! Parsers that turn a builder's output into per-step records: what it cached, and when each step ran.

pub mod buildah;
pub mod classic;
pub mod kaniko;

use crate::scenario::Dockerfile;
use crate::Millis;

/// One Dockerfile step as a builder's log reported it.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedStep {
    /// 1-based position in the whole Dockerfile (see `scenario::Instruction::step`).
    pub step: u32,
    /// The instruction as the builder printed it.
    pub instruction: String,
    /// The builder said it reused a cached layer for this step.
    pub cached: bool,
    /// Log time of the line that started the step, in ms since the log began.
    pub started_ms: Millis,
    /// From the step's first line to the next step's first line (or the end of the build);
    /// `None` when the log gave no time for its end.
    pub duration_ms: Option<Millis>,
    /// The builder's error message, when this step failed.
    pub error: Option<String>,
}

/// A streaming parser: fed the log line by line as it arrives, with each line's time.
pub trait LogParser: Send {
    /// `at_ms` is the line's time in ms since the log began (builder timestamp or arrival time).
    fn push_line(&mut self, at_ms: Millis, line: &str);
    /// The step running now, for progress display.
    fn current(&self) -> Option<&ParsedStep>;
    /// Closes the last step at `end_ms` and returns every step seen, in order.
    fn finish(&mut self, end_ms: Millis) -> Vec<ParsedStep>;
}

/// Which builder produced a log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Docker's classic builder (`Step 3/15 : RUN ...`, ` ---> Using cache`).
    Classic,
    /// `buildah bud` (`[1/2] STEP 2/6: RUN ...`, `--> Using cache ...`).
    Buildah,
    /// kaniko executor (`Using caching version of cmd: ...`).
    Kaniko,
}

impl LogFormat {
    pub fn parser(self, dockerfile: &Dockerfile) -> Box<dyn LogParser> {
        match self {
            LogFormat::Classic => Box::new(classic::ClassicParser::new(dockerfile)),
            LogFormat::Buildah => Box::new(buildah::BuildahParser::new(dockerfile)),
            LogFormat::Kaniko => Box::new(kaniko::KanikoParser::new(dockerfile)),
        }
    }
}
