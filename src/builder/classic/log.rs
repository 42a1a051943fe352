//! Parser for the classic builder's log, as the Engine API's build stream delivers it.
//!
//! ```text
//! Step 2/6 : RUN mkdir -p /data
//!  ---> Using cache                      <- only for a step the cache served
//!  ---> 8c7fa780995d
//! Step 3/6 : RUN cat /data/app.txt
//!  ---> Running in 311016280b3c
//! ...whatever the command prints...
//! Removing intermediate container 311016280b3c
//!  ---> 3b729b045248
//! Successfully built 3b729b045248
//! ```
//!
//! `N` in `Step N/M` is the step's number in the whole Dockerfile; with `--target`, `M` counts
//! the steps up to the target. A failing step's error is not in the stream: the API sends it
//! as an `error` message, which the caller hands over with `push_error`.

use crate::builder::tracker::{LineReader, StepTracker, Tracked};
use crate::builder::log::{parse_number, LogParser};
use crate::dockerfile::Dockerfile;
use crate::Millis;

/// This builder's log parser, as a job command names it.
pub fn parser(dockerfile: &Dockerfile) -> Box<dyn LogParser> {
    Box::new(Tracked::new(ClassicParser::new(dockerfile)))
}

pub struct ClassicParser {
    /// `(N, M)` of the last `Step N/M :` header. A RUN may print a look-alike line; the real
    /// next header is always `N + 1` of the same `M`.
    last_header: Option<(u32, u32)>,
    /// No ` ---> ` line yet since the header. The first one tells whether the cache served
    /// the step (` ---> Using cache`); later ones may be the RUN's own output.
    awaiting_marker: bool,
}

impl ClassicParser {
    /// The classic builder numbers every step itself, so the Dockerfile is not needed.
    pub fn new(_dockerfile: &Dockerfile) -> Self {
        ClassicParser { last_header: None, awaiting_marker: false }
    }
}

impl LineReader for ClassicParser {
    fn line(&mut self, steps: &mut StepTracker, at_ms: Millis, line: &str) {
        if let Some((n, m, instruction)) = parse_header(line) {
            let expected = match self.last_header {
                None => true,
                Some((last_n, last_m)) => n == last_n + 1 && m == last_m,
            };
            if expected {
                steps.start(at_ms, n, instruction);
                self.last_header = Some((n, m));
                self.awaiting_marker = true;
                return;
            }
        }
        if self.awaiting_marker {
            if let Some(marker) = line.strip_prefix(" ---> ") {
                self.awaiting_marker = false;
                if marker.starts_with("Using cache") {
                    steps.mark_cached();
                }
            }
        } else if line.starts_with("Successfully built ")
            && matches!(self.last_header, Some((n, m)) if n == m)
        {
            // Ends the last step here rather than when the caller finishes (after tagging).
            steps.end(at_ms);
        }
    }
}

/// `Step N/M : INSTRUCTION` at the very start of the line.
fn parse_header(line: &str) -> Option<(u32, u32, &str)> {
    let rest = line.strip_prefix("Step ")?;
    let (n, rest) = rest.split_once('/')?;
    let (m, instruction) = rest.split_once(" : ")?;
    Some((parse_number(n)?, parse_number(m)?, instruction))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_needs_the_exact_shape() {
        assert_eq!(parse_header("Step 3/15 : RUN echo"), Some((3, 15, "RUN echo")));
        assert_eq!(parse_header(" Step 3/15 : RUN echo"), None);
        assert_eq!(parse_header("Step +3/15 : RUN echo"), None);
        assert_eq!(parse_header("Step 3/15: RUN echo"), None);
    }
}
