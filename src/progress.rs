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

/// Why steps missed over a whole run, per strategy: what the end-of-run summary says.
#[derive(Debug, Default)]
pub struct MissTally {
    /// Per strategy, how many step rows of its jobs had each miss cause.
    causes: std::collections::BTreeMap<crate::strategy::Strategy, std::collections::BTreeMap<Cause, usize>>,
}

impl MissTally {
    pub fn add(&mut self, steps: &[StepRecord]) {
        for step in steps {
            if let Some(cause) = step.cause.filter(|c| c.is_miss()) {
                *self.causes.entry(step.strategy).or_default().entry(cause).or_default() += 1;
            }
        }
    }

    /// One line per strategy that missed (`  registry-final: 3 stage not pushed, 9 after miss; push the builder
    /// stage too: registry-multistage`), under a heading; nothing when no step missed.
    pub fn lines(&self) -> Vec<String> {
        if self.causes.is_empty() {
            return vec![];
        }
        let width = self.causes.keys().map(|s| s.name().len()).max().unwrap_or(0);
        let mut lines = vec!["why steps missed, per strategy (step rows over every job):".to_string()];
        for (strategy, counts) in &self.causes {
            let parts: Vec<String> = counts.iter().map(|(cause, n)| format!("{n} {}", cause.short())).collect();
            let advice: Vec<&str> = counts.keys().filter_map(|c| c.advice(strategy.keeps_cache())).collect();
            let advice = match advice.is_empty() {
                true => String::new(),
                false => format!("; would hit with: {}", advice.join("; ")),
            };
            lines.push(format!("  {:<width$}  {}{advice}", strategy.name(), parts.join(", ")));
        }
        lines
    }
}

/// One line per event worth a line, to stderr: for CI logs and pipes.
pub struct PlainReporter<W: Write + Send> {
    out: W,
    tally: MissTally,
}

impl<W: Write + Send> PlainReporter<W> {
    pub fn new(out: W) -> Self {
        PlainReporter { out, tally: MissTally::default() }
    }
}

impl<W: Write + Send> Reporter for PlainReporter<W> {
    fn event(&mut self, event: &Event) {
        if let Event::JobFinished { steps, .. } = event {
            self.tally.add(steps);
        }
        if let Event::RunFinished { .. } = event {
            for line in self.tally.lines() {
                let _ = writeln!(self.out, "{line}");
            }
        }
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
    tally: MissTally,
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
        ProgressReporter { multi, jobs, current, job: String::new(), tally: MissTally::default() }
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
                self.tally.add(steps);
                self.jobs.inc(1);
            }
            Event::RunFinished { .. } => {
                self.current.finish_and_clear();
                self.jobs.finish();
                for line in self.tally.lines() {
                    let _ = self.multi.println(line);
                }
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

    fn job_record(strategy: crate::strategy::Strategy) -> JobRecord {
        JobRecord {
            run_id: "r".into(),
            backend: crate::results::BackendKind::Docker,
            concurrency: 1,
            lane: 1,
            iteration: 1,
            pipeline_index: 1,
            pipeline_run: "no-change".into(),
            strategy,
            status: JobStatus::Ok,
            failure_kind: None,
            error: None,
            started_at: "2026-01-15T02:00:00Z".into(),
            wall_ms: 1000,
            provision_ms: None,
            pull_ms: None,
            cache_import_ms: None,
            build_ms: None,
            cache_export_ms: None,
            push_ms: None,
            teardown_ms: None,
            measure_ms: None,
            cached_steps: None,
            total_steps: 7,
            image_bytes: None,
            bytes_pulled: None,
            bytes_pushed: None,
            cpu_ms: None,
            peak_memory_bytes: None,
            node: None,
            host_load_1m: None,
            notes: None,
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

    /// At the end of a run, plain output (not a terminal) gets the miss causes per strategy, with what would make
    /// them hits (none for the first job of a strategy that keeps a cache); a skipped stage's steps are no misses.
    #[test]
    fn the_end_of_a_run_sums_up_why_steps_missed_per_strategy() {
        let mut plain = PlainReporter::new(Vec::new());
        let of = |strategy: &str, rows: Vec<StepRecord>| rows.into_iter().map(|r| StepRecord { strategy: crate::strategy::Strategy::named(strategy), ..r }).collect::<Vec<_>>();
        let mut job = |strategy: &str, rows: Vec<StepRecord>| {
            let rows = of(strategy, rows);
            let record = job_record(rows[0].strategy);
            plain.event(&Event::JobFinished { record: Box::new(record), steps: rows });
        };
        job("registry-final", vec![step(2, Some(Cause::StageNotPushed), None), step(3, Some(Cause::AfterMiss), None), step(4, Some(Cause::AfterMiss), None)]);
        job("registry-final", vec![step(2, Some(Cause::StageNotPushed), None)]);
        job("shared-dind", vec![step(9, Some(Cause::InputChanged), Some("app/main.py")), step(4, Some(Cause::NotRun), None), step(2, None, None)]);
        job("shared-dind", vec![step(2, Some(Cause::NoCache), None)]);
        job("ephemeral-dind", vec![step(2, Some(Cause::NoCache), None)]);
        plain.event(&Event::RunFinished { results_dir: "results/r".into(), interrupted: false });
        let out = String::from_utf8(plain.out).unwrap();
        let summary: Vec<&str> = out.lines().skip_while(|l| !l.starts_with("why steps missed")).collect();
        assert_eq!(
            summary,
            [
                "why steps missed, per strategy (step rows over every job):",
                "  ephemeral-dind  1 no cache; would hit with: keep a cache between jobs: any strategy but a fresh daemon without a cache import",
                "  registry-final  2 after miss, 2 stage not pushed; would hit with: push the builder stage too: registry-multistage",
                "  shared-dind     1 no cache, 1 changed",
                "done; results in results/r",
            ],
            "{out}"
        );
        let mut quiet = PlainReporter::new(Vec::new());
        quiet.event(&Event::RunFinished { results_dir: "results/r".into(), interrupted: false });
        assert_eq!(String::from_utf8(quiet.out).unwrap(), "done; results in results/r\n", "nothing missed, nothing to sum up");
    }

    #[test]
    fn bytes_read_like_people_write_them() {
        assert_eq!(human_bytes(999), "999 B");
        assert_eq!(human_bytes(12_345_678), "12.3 MB");
    }
}
