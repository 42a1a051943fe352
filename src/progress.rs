//! Terminal reporters: indicatif progress on a TTY, plain log lines otherwise.

use std::io::Write;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

use crate::events::{Event, Reporter};
use crate::results::{JobRecord, JobStatus};

/// Seconds with one decimal, for people.
pub fn seconds(ms: u64) -> String {
    format!("{:.1} s", ms as f64 / 1000.0)
}

/// Bytes in the largest unit that keeps the number readable.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KB", "MB", "GB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 { format!("{bytes} B") } else { format!("{value:.1} {}", UNITS[unit]) }
}

fn job_line(job: &JobRecord) -> String {
    let status = match job.status {
        JobStatus::Ok => "ok".to_string(),
        JobStatus::Failed => format!("FAILED: {}", job.error.as_deref().unwrap_or_default().lines().next().unwrap_or_default()),
    };
    let pushed = job.bytes_pushed.map(human_bytes).unwrap_or_else(|| "n/a".into());
    format!(
        "[iteration {}] {:<12} {:<22} {:>8}  cached {:>2}/{:<2}  pushed {:>9}  {status}",
        job.iteration,
        job.pipeline_run,
        job.strategy,
        seconds(job.wall_ms),
        job.cached_steps.map(|n| n.to_string()).unwrap_or_else(|| "-".into()),
        job.total_steps,
        pushed,
    )
}

/// One line per event worth a line, to stderr: for CI logs and pipes.
pub struct PlainReporter<W: Write + Send> {
    out: W,
}

impl<W: Write + Send> PlainReporter<W> {
    pub fn new(out: W) -> Self {
        PlainReporter { out }
    }
}

impl<W: Write + Send> Reporter for PlainReporter<W> {
    fn event(&mut self, event: &Event) {
        let line = match event {
            Event::RunStarted { run_id, results_dir, total_jobs } => {
                format!("run {run_id}: {total_jobs} jobs, results in {}", results_dir.display())
            }
            Event::Notice { message } => format!("note: {message}"),
            Event::Setup { message } => format!("setup: {message}"),
            Event::ServiceStarted { iteration, strategy, service, startup_ms } => {
                format!("[iteration {iteration}] {strategy}: {service} service ready in {}", seconds(*startup_ms))
            }
            Event::JobFinished { record } => job_line(record),
            Event::RunFinished { results_dir, interrupted } => match interrupted {
                true => format!("interrupted; results so far are in {}", results_dir.display()),
                false => format!("done; results in {}", results_dir.display()),
            },
            Event::JobStarted { .. } | Event::PhaseStarted { .. } | Event::StepStarted { .. } => return,
        };
        let _ = writeln!(self.out, "{line}");
    }
}

/// A bar over the whole job matrix and a spinner for the job running now.
pub struct ProgressReporter {
    multi: MultiProgress,
    jobs: ProgressBar,
    current: ProgressBar,
    job: String,
}

impl Default for ProgressReporter {
    fn default() -> Self {
        let multi = MultiProgress::new();
        let jobs = multi.add(ProgressBar::new(0));
        jobs.set_style(
            ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} jobs")
                .expect("valid template")
                .progress_chars("=> "),
        );
        let current = multi.add(ProgressBar::new_spinner());
        current.set_style(ProgressStyle::with_template("{spinner} {msg}").expect("valid template"));
        current.enable_steady_tick(Duration::from_millis(120));
        ProgressReporter { multi, jobs, current, job: String::new() }
    }
}

impl Reporter for ProgressReporter {
    fn event(&mut self, event: &Event) {
        match event {
            Event::RunStarted { total_jobs, .. } => self.jobs.set_length(*total_jobs),
            Event::Setup { message } => self.current.set_message(message.clone()),
            Event::JobStarted { iteration, pipeline_run, strategy } => {
                self.job = format!("iteration {iteration} · {pipeline_run} · {strategy}");
                self.current.set_message(self.job.clone());
            }
            Event::PhaseStarted { detail, .. } => self.current.set_message(format!("{} · {detail}", self.job)),
            Event::StepStarted { step, total_steps, instruction } => {
                let short: String = instruction.chars().take(60).collect();
                self.current.set_message(format!("{} · step {step}/{total_steps} {short}", self.job));
            }
            Event::JobFinished { record } => {
                let _ = self.multi.println(job_line(record));
                self.jobs.inc(1);
            }
            Event::RunFinished { .. } => {
                self.current.finish_and_clear();
                self.jobs.finish();
            }
            other => {
                let mut plain = PlainReporter::new(Vec::new());
                plain.event(other);
                let _ = self.multi.println(String::from_utf8_lossy(&plain.out).trim_end());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_read_like_people_write_them() {
        assert_eq!(human_bytes(999), "999 B");
        assert_eq!(human_bytes(12_345_678), "12.3 MB");
    }
}
