//! Terminal reporters: indicatif progress on a TTY, plain log lines otherwise.

use std::io::Write;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

use crate::events::{Event, Reporter};
use crate::cause::Cause;
use crate::results::{JobRecord, JobStatus, StepRecord};

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

fn job_line(job: &JobRecord, steps: &[StepRecord]) -> String {
    let status = match job.status {
        JobStatus::Ok => "ok".to_string(),
        JobStatus::Failed => format!("FAILED: {}", job.error.as_deref().unwrap_or_default().lines().next().unwrap_or_default()),
    };
    let pushed = job.bytes_pushed.map(human_bytes).unwrap_or_else(|| "n/a".into());
    let misses = miss_summary(steps);
    format!(
        "[{}] {:<12} {:<22} {:>8}  cached {:>2}/{:<2}  pushed {:>9}  {status}{misses}",
        position(job.iteration, job.lane()),
        job.pipeline_run,
        job.strategy,
        seconds(job.wall_ms),
        job.cached_steps.map(|n| n.to_string()).unwrap_or_else(|| "-".into()),
        job.total_steps,
        pushed,
    )
}

/// `iteration 1`, and `iteration 1, lane 2/4` when lanes ran at once.
fn position(iteration: u32, lane: crate::lanes::Lane) -> String {
    match lane.is_shared() {
        false => format!("iteration {iteration}"),
        true => format!("iteration {iteration}, {lane}"),
    }
}

/// Why the job's steps missed, step ranges by cause: `  misses: 9 changed (app/main.py), 10-11 after miss`;
/// empty when nothing missed or no cause was recorded. A step of a skipped stage is no miss.
fn miss_summary(steps: &[StepRecord]) -> String {
    let mut groups: Vec<(Cause, Option<&str>, u32, u32)> = vec![];
    for s in steps.iter().filter(|s| s.cause.is_some_and(Cause::is_miss)) {
        let cause = s.cause.expect("filtered");
        match groups.last_mut() {
            Some((c, changed, _, last)) if *c == cause && changed.is_none() && s.changed.is_none() && *last + 1 >= s.step => *last = s.step,
            _ => groups.push((cause, s.changed.as_deref(), s.step, s.step)),
        }
    }
    if groups.is_empty() {
        return String::new();
    }
    if groups.iter().all(|(c, ..)| *c == Cause::NoCache) {
        return "  misses: no cache".into();
    }
    let parts: Vec<String> = groups
        .iter()
        .map(|(cause, changed, first, last)| {
            let steps = if first == last { first.to_string() } else { format!("{first}-{last}") };
            let changed = changed.map(|c| format!(" ({c})")).unwrap_or_default();
            format!("{steps} {}{changed}", cause.short())
        })
        .collect();
    format!("  misses: {}", parts.join(", "))
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
            Event::JobFinished { record, steps } => job_line(record, steps),
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
            Event::JobStarted { iteration, pipeline_run, strategy, lane } => {
                self.job = format!("{} · {pipeline_run} · {strategy}", position(*iteration, *lane));
                self.current.set_message(self.job.clone());
            }
            Event::PhaseStarted { detail, .. } => self.current.set_message(format!("{} · {detail}", self.job)),
            Event::StepStarted { step, total_steps, instruction } => {
                let short: String = instruction.chars().take(60).collect();
                self.current.set_message(format!("{} · step {step}/{total_steps} {short}", self.job));
            }
            Event::JobFinished { record, steps } => {
                let _ = self.multi.println(job_line(record, steps));
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

    fn step(step: u32, cause: Option<Cause>, changed: Option<&str>) -> StepRecord {
        StepRecord {
            run_id: "r".into(),
            backend: crate::results::BackendKind::Docker,
            concurrency: 1,
            lane: 1,
            iteration: 1,
            pipeline_run: "code-change".into(),
            strategy: crate::strategy::Strategy::named("shared-dind"),
            stage: "0".into(),
            step,
            total_steps: 11,
            instruction: "RUN x".into(),
            cached: Some(cause.is_none()),
            duration_ms: None,
            input_key: None,
            cause,
            changed: changed.map(str::to_string),
        }
    }

    #[test]
    fn a_jobs_line_says_why_its_steps_missed() {
        let code_change = [
            step(8, None, None),
            step(9, Some(Cause::InputChanged), Some("app/main.py")),
            step(10, Some(Cause::AfterMiss), None),
            step(11, Some(Cause::AfterMiss), None),
        ];
        assert_eq!(miss_summary(&code_change), "  misses: 9 changed (app/main.py), 10-11 after miss");
        assert_eq!(miss_summary(&[step(2, Some(Cause::NoCache), None), step(3, Some(Cause::NoCache), None)]), "  misses: no cache");
        assert_eq!(miss_summary(&[step(2, None, None)]), "", "every step hit");
    }

    #[test]
    fn bytes_read_like_people_write_them() {
        assert_eq!(human_bytes(999), "999 B");
        assert_eq!(human_bytes(12_345_678), "12.3 MB");
    }
}
