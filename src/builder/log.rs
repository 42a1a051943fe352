//! What every builder's log parser shares: the per-step record, the streaming parser trait, the log's clock.
//! Each parser lives in its builder's home (`classic/log.rs`, `buildah/log.rs`, …).

use crate::dockerfile::Dockerfile;
use crate::Millis;

/// One Dockerfile step as a builder's log reported it.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedStep {
    /// 1-based position in the whole Dockerfile (see `scenario::Instruction::step`).
    pub step: u32,
    /// The instruction as the builder printed it (kaniko prints no `FROM`: that one is the
    /// Dockerfile's text).
    pub instruction: String,
    /// The builder said it reused a cached layer for this step. Only BuildKit ever says so for a
    /// `FROM` (when the daemon already has the base image).
    pub cached: bool,
    /// Log time of the line that started the step, in ms since the log began (BuildKit: the
    /// vertex's own start, since the log's first vertex start).
    pub started_ms: Millis,
    /// From the step's first line to the next step's first line (or the end of the build);
    /// `None` when the log gave no time for its end.
    pub duration_ms: Option<Millis>,
    /// The builder's error message, when this step failed.
    pub error: Option<String>,
}

impl ParsedStep {
    /// What the job's outcome keeps of the step.
    pub fn outcome(&self) -> crate::job::StepOutcome {
        crate::job::StepOutcome { step: self.step, cached: self.cached, duration_ms: self.duration_ms }
    }
}

/// How a builder's home makes its log parser for a Dockerfile (`classic::log::parser`, `buildah::log::parser`,
/// `kaniko::log::parser`, `buildkit::log::parser`): the one table from builder to parser is the homes.
pub type ParserOf = fn(&Dockerfile) -> Box<dyn LogParser>;

/// A streaming parser: fed the log line by line as it arrives, with each line's time.
///
/// A `line` may also be a chunk holding several whole lines (each is parsed in turn); it must
/// not end in the middle of a line.
pub trait LogParser: Send {
    /// `at_ms` is the line's time in ms since the log began (builder timestamp or arrival time).
    fn push_line(&mut self, at_ms: Millis, line: &str);
    /// The builder's error, delivered apart from its log: the Engine API's `error` /
    /// `errorDetail.message` of a classic build (`The command '/bin/sh -c exit 3' returned a
    /// non-zero code: 3`). It fails the running step and ends it at `at_ms`. Builders that
    /// print their errors into the log (buildah, kaniko) need no call; the default treats the
    /// message as a log line.
    fn push_error(&mut self, at_ms: Millis, message: &str) {
        self.push_line(at_ms, message);
    }
    /// The step running now, for progress display; `None` before the first step and once the
    /// builder said the build is over.
    fn current(&self) -> Option<&ParsedStep>;
    /// The first error the builder reported, also when no step was running (a failed pull
    /// of the base image, a failed push).
    fn error(&self) -> Option<&str> {
        None
    }
    /// Closes the last step at `end_ms` and returns every step seen, in order.
    fn finish(&mut self, end_ms: Millis) -> Vec<ParsedStep>;
    /// Time the builder itself reported for phases inside its build command (BuildKit's cache
    /// import, cache export and push), by its own clock; empty for builders that report none.
    fn phases(&self) -> Vec<(crate::strategy::Phase, Millis)> {
        vec![]
    }
}

/// Splits a line of `docker logs --timestamps` (the Engine API's `timestamps=true`) into its
/// time, in ms since the Unix epoch, and the text the container printed. `None` when the
/// line does not start with an RFC 3339 timestamp followed by a space.
///
/// Subtract the first line's time to get the `at_ms` the parsers take.
pub fn split_docker_timestamp(line: &str) -> Option<(Millis, &str)> {
    let (stamp, text) = line.split_once(' ')?;
    let time = chrono::DateTime::parse_from_rfc3339(stamp).ok()?;
    let ms = u64::try_from(time.timestamp_millis()).ok()?;
    Some((ms, text))
}

/// Turns the absolute times of a log's lines (ms since the Unix epoch) into the `at_ms` the parsers
/// take, the same way for every backend.
///
/// A container's stdout and stderr are stamped apart, so a line may carry an earlier time than the
/// one before it; the parsers leave a duration that would come out negative empty. A line stamped
/// before the first one has no offset at all: it gets the latest time seen, never a made-up 0.
#[derive(Debug, Default, Clone)]
pub struct LogClock {
    first_ms: Option<Millis>,
    last_ms: Millis,
}

impl LogClock {
    /// The line's offset from the log's first line.
    pub fn at(&mut self, time_ms: Millis) -> Millis {
        let first = *self.first_ms.get_or_insert(time_ms);
        let at_ms = time_ms.checked_sub(first).unwrap_or(self.last_ms);
        self.last_ms = self.last_ms.max(at_ms);
        at_ms
    }

    /// The latest offset seen: where the log ended.
    pub fn last_ms(&self) -> Millis {
        self.last_ms
    }
}

/// A log that arrives in chunks, as whole lines. The last line of a log need not end in a newline: it is
/// still a line, given by [`LineBuffer::rest`] at the end.
#[derive(Debug, Default)]
pub struct LineBuffer {
    pending: String,
}

impl LineBuffer {
    /// The whole lines `chunk` completes, without their `\n`.
    pub fn push(&mut self, chunk: &str) -> Vec<String> {
        self.pending.push_str(chunk);
        let mut lines = vec![];
        while let Some(newline) = self.pending.find('\n') {
            let line: String = self.pending.drain(..=newline).collect();
            lines.push(line.trim_end_matches(['\n', '\r']).to_string());
        }
        lines
    }

    /// What is left once the log ended: its last line, when that had no newline.
    pub fn rest(&mut self) -> Option<String> {
        let rest = std::mem::take(&mut self.pending);
        (!rest.trim().is_empty()).then(|| rest.trim_end_matches('\r').to_string())
    }
}

/// Says when the builder starts a step it had not started before (for progress display).
pub fn announce_step(parser: &dyn LogParser, dockerfile: &Dockerfile, current: &mut u32, events: &crate::events::EventSink) {
    if let Some(step) = parser.current() {
        if step.step != *current {
            *current = step.step;
            events.emit(crate::events::Event::StepStarted {
                step: step.step,
                total_steps: dockerfile.total_steps(),
                instruction: step.instruction.clone(),
            });
        }
    }
}

/// The lines of a chunk, without their `\n` or `\r\n` ends.
pub(crate) fn lines(chunk: &str) -> impl Iterator<Item = &str> {
    chunk.split_terminator('\n').map(|l| l.strip_suffix('\r').unwrap_or(l))
}

/// Plain decimal digits only (`str::parse` would also take a sign).
pub(crate) fn parse_number(digits: &str) -> Option<u32> {
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_stamped_before_the_first_gets_the_latest_time_not_zero() {
        let mut clock = LogClock::default();
        assert_eq!(clock.at(10_000), 0);
        assert_eq!(clock.at(12_500), 2_500);
        // stderr stamped earlier than stdout's latest: its own offset, earlier than the latest.
        assert_eq!(clock.at(11_000), 1_000);
        // before the log's first line: no offset exists, so the latest seen, never 0.
        assert_eq!(clock.at(9_000), 2_500);
        assert_eq!(clock.last_ms(), 2_500);
    }
}
