//! A container's log followed to the container's end through the API server, resumed where a
//! stream broke off, so that a job's steps are never read from a log known incomplete.

use std::collections::VecDeque;
use std::time::Duration;

use futures_util::{AsyncBufReadExt, TryStreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::api::LogParams;
use kube::Api;
use tokio::time::Instant;

use super::orchestrate::{api_error, exit_of};
use crate::builder::log::split_docker_timestamp;
use crate::Millis;

/// Times a stream may break off in a row, with nothing new read in between, before the log is given up.
const MAX_BREAKS: u32 = 6;
const BACKOFF_FIRST: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(10);

/// Why a followed log did not reach the container's end.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LogBreak {
    #[error("the deadline passed while following the log")]
    Deadline,
    /// The stream broke off before the container exited and could not be opened again.
    #[error("the log of pod {pod} broke off before container {container} exited and could not be resumed ({cause}); the job's steps would be incomplete")]
    BrokeOff { pod: String, container: String, cause: String },
}

/// Follows `container`'s log in `pod` (`timestamps=true`) until the container has exited and its
/// whole log was read, handing each line to `line` once. A stream that fails, or ends while the
/// container still runs, is opened again from a second before the last timestamp read; the lines
/// it gives again are skipped. With `last_line`, the line a container that exits with 0 prints
/// last, a stream that ends without it is opened again too: the kubelet ends a followed log when
/// the container has exited, which may be before the runtime wrote the container's last lines.
pub async fn follow_log(
    pods: &Api<Pod>,
    pod: &str,
    container: &str,
    deadline: Instant,
    last_line: Option<&str>,
    mut line: impl FnMut(&str),
) -> Result<(), LogBreak> {
    let mut ended = last_line.is_none();
    let mut resume = LogResume::default();
    let mut breaks = 0;
    let mut backoff = BACKOFF_FIRST;
    loop {
        resume.reopen();
        let params = LogParams {
            container: Some(container.into()),
            follow: true,
            timestamps: true,
            since_time: resume.since(),
            ..Default::default()
        };
        let cause = match tokio::time::timeout_at(deadline, pods.log_stream(pod, &params)).await {
            Err(_) => return Err(LogBreak::Deadline),
            Ok(Err(e)) => api_error(format!("open the log of pod {pod}"), e).to_string(),
            Ok(Ok(stream)) => {
                let mut lines = std::pin::pin!(stream.lines());
                let mut progressed = false;
                let failed = loop {
                    match tokio::time::timeout_at(deadline, lines.try_next()).await {
                        Err(_) => return Err(LogBreak::Deadline),
                        Ok(Ok(Some(text))) => {
                            if resume.first_time(&text) {
                                progressed = true;
                                ended = ended || last_line.is_some_and(|last| text_of(&text).trim_end() == last);
                                line(&text);
                            }
                        }
                        Ok(Ok(None)) => break None,
                        Ok(Err(e)) => break Some(format!("reading the log of pod {pod} failed: {e}")),
                    }
                };
                if progressed {
                    breaks = 0;
                    backoff = BACKOFF_FIRST;
                }
                match failed {
                    Some(cause) => cause,
                    // A follow ends by itself once the container has exited and its log is read.
                    None => match pods.get_opt(pod).await {
                        Ok(Some(p)) => match exit_of(&p, container) {
                            // A container that failed may have been killed before its last line: its exit
                            // status tells the job's outcome.
                            Some((code, _)) if ended || code != 0 => return Ok(()),
                            Some(_) => format!("the log ended before its last line ({})", last_line.unwrap_or_default()),
                            None => format!("the log stream ended while container {container} was still running"),
                        },
                        Ok(None) => {
                            return Err(LogBreak::BrokeOff {
                                pod: pod.into(),
                                container: container.into(),
                                cause: "the pod was deleted".into(),
                            })
                        }
                        Err(e) => api_error(format!("get pod {pod}"), e).to_string(),
                    },
                }
            }
        };
        breaks += 1;
        if breaks >= MAX_BREAKS {
            return Err(LogBreak::BrokeOff { pod: pod.into(), container: container.into(), cause });
        }
        if tokio::time::timeout_at(deadline, tokio::time::sleep(backoff)).await.is_err() {
            return Err(LogBreak::Deadline);
        }
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

/// A log line without the kubelet's timestamp.
fn text_of(stamped: &str) -> &str {
    split_docker_timestamp(stamped).map_or(stamped, |(_, text)| text)
}

/// Where to re-open a log, and which of the lines a re-opened stream gives again were read already.
///
/// The kubelet's `sinceTime` is in whole seconds (kube-rs rounds it) and keeps lines stamped at or
/// after it, and a container's stdout and stderr are stamped apart (a line may carry a slightly
/// earlier time than the one before it). So the stream is re-opened a second before the second of
/// the latest time read, and every line read since then is kept to be recognised.
#[derive(Debug, Default)]
struct LogResume {
    /// The latest time a line carried, in ms since the Unix epoch.
    latest_ms: Option<Millis>,
    /// The lines stamped at or after [`LogResume::since_ms`], as read.
    recent: VecDeque<(Millis, String)>,
    /// The lines of `recent` that the current stream has not given again yet.
    replay: Vec<String>,
    reopened: bool,
}

impl LogResume {
    fn since_ms(&self) -> Option<Millis> {
        self.latest_ms.map(|ms| (ms / 1000).saturating_sub(1) * 1000)
    }

    /// `sinceTime` for the next stream; `None` for the first.
    fn since(&self) -> Option<k8s_openapi::jiff::Timestamp> {
        let ms = i64::try_from(self.since_ms()?).ok()?;
        k8s_openapi::jiff::Timestamp::from_millisecond(ms).ok()
    }

    /// A new stream starts: it gives the recent lines again.
    fn reopen(&mut self) {
        self.replay = self.recent.iter().map(|(_, line)| line.clone()).collect();
        self.reopened = self.latest_ms.is_some();
    }

    /// True the first time `line` (with its timestamp) is read.
    fn first_time(&mut self, line: &str) -> bool {
        let Some((ms, _)) = split_docker_timestamp(line) else { return true };
        if let Some(i) = self.replay.iter().position(|seen| seen == line) {
            self.replay.swap_remove(i);
            return false;
        }
        // Older than the window: read before, if the server ignored sinceTime.
        if self.reopened && self.since_ms().is_some_and(|since| ms < since) {
            return false;
        }
        self.latest_ms = Some(self.latest_ms.map_or(ms, |latest| latest.max(ms)));
        self.recent.push_back((ms, line.to_string()));
        let since = self.since_ms().unwrap_or(0);
        while self.recent.front().is_some_and(|(at, _)| *at < since) {
            self.recent.pop_front();
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reopened_stream_skips_what_was_read_and_keeps_what_is_new() {
        let mut resume = LogResume::default();
        resume.reopen();
        assert_eq!(resume.since(), None, "the first stream starts at the beginning");
        for line in ["2026-11-27T18:00:00.900Z a", "2026-11-27T18:00:02.100Z b", "2026-11-27T18:00:02.100Z b2"] {
            assert!(resume.first_time(line));
        }
        resume.reopen();
        assert_eq!(resume.since().unwrap().to_string(), "2026-11-27T18:00:01Z");
        let again: Vec<bool> = ["2026-11-27T18:00:02.100Z b2", "2026-11-27T18:00:02.100Z b", "2026-11-27T18:00:02.100Z b3", "2026-11-27T18:00:00.900Z a"]
            .iter()
            .map(|l| resume.first_time(l))
            .collect();
        assert_eq!(again, vec![false, false, true, false]);
        assert!(resume.first_time("no timestamp"), "a line without a time cannot be recognised");
    }
}
