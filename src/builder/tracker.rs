//! Step bookkeeping the parsers share: steps open, close, fail and get cached in log order.

use super::log::{lines, LogParser, ParsedStep};
use crate::Millis;

#[derive(Debug, Default)]
pub(crate) struct StepTracker {
    steps: Vec<ParsedStep>,
    /// The last step has not ended yet: the next step's start (or the build's end) ends it.
    running: bool,
    error: Option<String>,
}

impl StepTracker {
    /// Ends the running step at `at_ms` and starts `step`.
    pub fn start(&mut self, at_ms: Millis, step: u32, instruction: &str) {
        self.end(at_ms);
        self.steps.push(ParsedStep {
            step,
            instruction: instruction.to_string(),
            cached: false,
            started_ms: at_ms,
            duration_ms: None,
            error: None,
        });
        self.running = true;
    }

    /// Ends the running step, if any. When the end's time is before the start's (stdout and
    /// stderr of a container are stamped apart), the clocks disagree and the duration is left
    /// empty: unmeasured, never a made-up 0.
    pub fn end(&mut self, at_ms: Millis) {
        if let (true, Some(step)) = (self.running, self.steps.last_mut()) {
            step.duration_ms = at_ms.checked_sub(step.started_ms);
        }
        self.running = false;
    }

    pub fn running(&self) -> Option<&ParsedStep> {
        if self.running {
            self.steps.last()
        } else {
            None
        }
    }

    pub fn mark_cached(&mut self) {
        if let (true, Some(step)) = (self.running, self.steps.last_mut()) {
            step.cached = true;
        }
    }

    /// Records the builder's error on the running step and ends it; the build's first error
    /// is kept even when no step was running.
    pub fn fail(&mut self, at_ms: Millis, message: &str) {
        let message = message.trim();
        if let (true, Some(step)) = (self.running, self.steps.last_mut()) {
            step.error = Some(message.to_string());
        }
        self.end(at_ms);
        if self.error.is_none() {
            self.error = Some(message.to_string());
        }
    }

    pub fn error(&self) -> Option<&str> {
        self.error.as_deref()
    }

    pub fn finish(&mut self, end_ms: Millis) -> Vec<ParsedStep> {
        self.end(end_ms);
        std::mem::take(&mut self.steps)
    }
}

/// How a line-by-line builder log is read (the classic builder's, buildah's, kaniko's): what one line does to
/// the steps, which [`Tracked`] keeps. Everything else a [`LogParser`] does is the tracker's, written once.
pub(crate) trait LineReader: Send {
    fn line(&mut self, steps: &mut StepTracker, at_ms: Millis, line: &str);
    /// An error the reader holds back (buildah prints its last words after the step has ended).
    fn held_error(&self) -> Option<&str> {
        None
    }
    /// Called before the last step is closed.
    fn before_finish(&mut self, _steps: &mut StepTracker) {}
}

/// A [`LineReader`] with the steps it has read: the one [`LogParser`] of every line-by-line log.
pub(crate) struct Tracked<R> {
    pub steps: StepTracker,
    pub reader: R,
}

impl<R: LineReader> Tracked<R> {
    pub fn new(reader: R) -> Self {
        Tracked { steps: StepTracker::default(), reader }
    }
}

impl<R: LineReader> LogParser for Tracked<R> {
    fn push_line(&mut self, at_ms: Millis, chunk: &str) {
        for line in lines(chunk) {
            self.reader.line(&mut self.steps, at_ms, line);
        }
    }
    fn push_error(&mut self, at_ms: Millis, message: &str) {
        self.steps.fail(at_ms, message);
    }
    fn current(&self) -> Option<&ParsedStep> {
        self.steps.running()
    }
    fn error(&self) -> Option<&str> {
        self.steps.error().or(self.reader.held_error())
    }
    fn finish(&mut self, end_ms: Millis) -> Vec<ParsedStep> {
        self.reader.before_finish(&mut self.steps);
        self.steps.finish(end_ms)
    }
}
