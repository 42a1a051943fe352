//! A job container's log read the same way on every backend: the builder's version line, the phases
//! its script marks, and the builder's steps through its parser.

use std::collections::{BTreeMap, VecDeque};

use super::log::{announce_step, split_docker_timestamp, LogClock, LogParser, ParsedStep};
use super::command::{phase_marked, JobCommand, VersionLine};
use crate::dockerfile::Dockerfile;
use crate::events::EventSink;
use crate::job::{JobError, JobOutcome};
use crate::strategy::{JobBuilder, Phase};
use crate::Millis;

/// Lines kept to say what a builder that failed without a parsed error printed last.
const TAIL_LINES: usize = 20;

/// Reads one job's log as it streams, line by line.
pub struct JobLog {
    parser: Box<dyn LogParser>,
    version: Option<VersionLine>,
    inner_phases: Vec<Phase>,
    clock: LogClock,
    /// Where the script left its build phase (buildah's pushes follow): the builder's last step ends there.
    build_end_ms: Option<Millis>,
    /// The phases the script marked, each with its mark's offset on the log's clock, and whether a line
    /// came after the last one (so that the last phase has an end).
    marks: Vec<(Phase, Millis)>,
    line_after_last_mark: bool,
    /// The job's phase times as they were when the log started (its provision, say), and the phase it was
    /// in until then.
    phases_before: BTreeMap<Phase, Millis>,
    preceding: Option<Phase>,
    tail: VecDeque<String>,
    /// The step last announced as started.
    announced: u32,
}

impl JobLog {
    /// Starts reading the log of a job running `command`. The job enters its build phase now: a
    /// builder without phase marks (kaniko) builds and pushes in one go, and all of it is the build.
    pub fn start(command: &JobCommand, dockerfile: &Dockerfile, outcome: &mut JobOutcome) -> JobLog {
        let preceding = outcome.phase();
        outcome.enter(Phase::Build);
        let phases_before = outcome.phases.clone();
        JobLog {
            marks: vec![],
            line_after_last_mark: false,
            phases_before,
            preceding,
            parser: (command.parser)(dockerfile),
            version: command.version,
            inner_phases: command.inner_phases.clone(),
            clock: LogClock::default(),
            build_end_ms: None,
            tail: VecDeque::new(),
            announced: 0,
        }
    }

    /// Reads one line as the runtime stamped it (`timestamps=true`: the engine's and the kubelet's
    /// format alike). A phase mark enters its phase on the job's clock as it arrives. Returns the
    /// builder's name and version when the line reports them.
    pub fn push(&mut self, stamped: &str, outcome: &mut JobOutcome) -> Option<(&'static str, String)> {
        let (time_ms, text) = split_docker_timestamp(stamped.trim_end())?;
        let at_ms = self.clock.at(time_ms);
        if let Some(phase) = phase_marked(text) {
            if outcome.phase() == Some(Phase::Build) && phase != Phase::Build {
                self.build_end_ms = Some(at_ms);
            }
            outcome.enter(phase);
            self.marks.push((phase, at_ms));
            self.line_after_last_mark = false;
            return None;
        }
        if self.marks.is_empty() {
            // The job is in its build from its first line (see `start`): kaniko's executor marks nothing else.
            self.marks.push((Phase::Build, at_ms));
        }
        self.line_after_last_mark = true;
        let version = self.version.and_then(|line| line.version(text).map(|v| (line.builder, v)));
        self.parser.push_line(at_ms, text);
        self.tail.push_back(text.to_string());
        if self.tail.len() > TAIL_LINES {
            self.tail.pop_front();
        }
        version
    }

    /// Says when the builder starts a step it had not started before (progress display).
    pub fn announce(&mut self, dockerfile: &Dockerfile, events: &EventSink) {
        announce_step(self.parser.as_ref(), dockerfile, &mut self.announced, events);
    }

    /// Ends the log: the builder's steps go into `outcome`, and the time the builder reported for
    /// phases inside its one build command (BuildKit's cache import, export and push) is split off
    /// the build.
    pub fn finish(mut self, outcome: &mut JobOutcome) -> FinishedLog {
        let steps = self.parser.finish(self.build_end_ms.unwrap_or(self.clock.last_ms()));
        outcome.merge_steps(steps.iter().map(ParsedStep::outcome));
        self.time_marked_phases(outcome);
        let timed: std::collections::BTreeMap<Phase, Millis> = self.parser.phases().into_iter().collect();
        for phase in &self.inner_phases {
            // A phase the builder did not time, or timed longer than the whole command, stays empty, and
            // the job says that its build includes it.
            let why = match timed.get(phase) {
                None => "the builder's progress showed no step for it".to_string(),
                Some(ms) => match outcome.split_phase(Phase::Build, *phase, *ms) {
                    true => continue,
                    false => format!("the builder timed it at {ms} ms, more than layerbench's clock gave the whole build command"),
                },
            };
            outcome.unmeasured.push(format!("{} left empty, its time is in build: {why}", phase.name()));
        }
        let last_line = self.tail.iter().rev().find(|l| !l.trim().is_empty()).cloned();
        FinishedLog { steps, error: self.parser.error().map(str::to_string), last_line }
    }
}

impl JobLog {
    /// The phases the script marked, timed on one clock: the runtime's stamps on the script's own lines,
    /// from each mark to the next, the last to the log's last line. Not by when the lines reached
    /// layerbench: a kubelet's log stream delivers them in bursts, and a build of 200 ms whose lines all
    /// arrive at once would be given a few ms, less than the builder itself timed its push inside it.
    ///
    /// The job's phases still add up to its wall time: the time layerbench's clock gave the log (from its
    /// start to now) is shared out, each marked phase its stamped time and the rest to the build, which the
    /// job is in from the log's start to the first mark (the script's set-up, the log's delivery). When the
    /// stamps hold more than that, the script ran before layerbench started reading its log; the excess
    /// comes out of the phase before (provision), which layerbench's clock ran on meanwhile. The clock runs
    /// on in the last marked phase, as before. The job is in its build from its first line, marked or not:
    /// kaniko's executor, which marks nothing, has its build from its first line to its last. A job whose
    /// last mark has no line after it, or whose stamps cannot be fitted, keeps its times by layerbench's clock.
    fn time_marked_phases(&self, outcome: &mut JobOutcome) {
        let Some(&(last_phase, _)) = self.marks.last() else { return };
        if !self.line_after_last_mark {
            return;
        }
        outcome.end_phase();
        let total = |phases: &BTreeMap<Phase, Millis>| phases.values().sum::<Millis>();
        // Phases only grow: what they gained since the log started is the time layerbench's clock gave it.
        let span = total(&outcome.phases) - total(&self.phases_before);
        // Each mark to the next, the last to the log's end. A mark stamped before the one it follows (a
        // container's stdout and stderr are stamped apart) leaves the stamps unable to order the phases.
        let mut stamped: BTreeMap<Phase, Millis> = BTreeMap::new();
        let ends = self.marks.iter().skip(1).map(|&(_, at)| at).chain([self.clock.last_ms()]);
        for (&(phase, from), until) in self.marks.iter().zip(ends) {
            let Some(ms) = until.checked_sub(from) else {
                outcome.enter(last_phase);
                return;
            };
            *stamped.entry(phase).or_default() += ms;
        }
        let stamped_total = total(&stamped);
        let mut phases = self.phases_before.clone();
        match span.checked_sub(stamped_total) {
            Some(unclaimed) => *phases.entry(Phase::Build).or_default() += unclaimed,
            None => {
                let excess = stamped_total - span;
                let Some(before) = self.preceding.and_then(|p| phases.get_mut(&p)).filter(|ms| **ms >= excess) else {
                    outcome.enter(last_phase);
                    return;
                };
                *before -= excess;
            }
        }
        for (phase, ms) in stamped {
            *phases.entry(phase).or_default() += ms;
        }
        outcome.phases = phases;
        outcome.enter(last_phase);
    }
}

/// What a finished log says about the job.
#[derive(Debug, Clone, PartialEq)]
pub struct FinishedLog {
    pub steps: Vec<ParsedStep>,
    /// The first error the builder reported.
    pub error: Option<String>,
    /// The last line the job printed that is not blank.
    pub last_line: Option<String>,
}

impl FinishedLog {
    /// Why the job failed when its builder exited with `code`: a build failure at the step that
    /// failed, or an infrastructure failure with the builder's error or the last thing it printed
    /// (`fallback` when it printed nothing: a message the runtime kept, say).
    pub fn exit_failure(&self, builder: JobBuilder, code: i64, total_steps: u32, fallback: Option<&str>) -> JobError {
        let reason = self
            .error
            .clone()
            .or_else(|| self.last_line.clone())
            .or_else(|| fallback.map(str::trim).filter(|f| !f.is_empty()).map(str::to_string))
            .unwrap_or_else(|| "it printed nothing".into());
        match self.steps.iter().find(|s| s.error.is_some()) {
            Some(step) => JobError::build(format!(
                "{builder:?} failed at step {}/{total_steps} `{}` (exit code {code}): {reason}",
                step.step, step.instruction
            )),
            None => JobError::infrastructure(format!("{builder:?} exited with code {code}: {reason}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::builder::{job_command, Endpoints};
    use crate::strategy::{BuildRequest, CacheExport, CacheImport};

    fn buildah() -> JobCommand {
        let request = BuildRequest {
            builder: JobBuilder::Buildah,
            destinations: vec!["r:5000/a:c1".into()],
            cache_from: vec![CacheImport::Registry { reference: "r:5000/a-cache".into() }],
            cache_to: Some(CacheExport::Registry { reference: "r:5000/a-cache".into(), every_stage: true }),
        };
        job_command(&request, Path::new("Dockerfile"), &Endpoints { registry: "r:5000", hub_mirror: None, daemon_host: None })
    }

    #[test]
    fn marks_enter_phases_the_version_is_read_and_the_last_step_ends_at_the_push_mark() {
        let dockerfile = Dockerfile::parse("FROM python:3.11-slim\nRUN echo hi\n").unwrap();
        let mut outcome = JobOutcome::default();
        // The script ran before its log was read: 10 s of provision by layerbench's clock hold its 8.9 s.
        outcome.phases.insert(Phase::Provision, 10_000);
        outcome.enter(Phase::Provision);
        let mut log = JobLog::start(&buildah(), &dockerfile, &mut outcome);
        let lines = [
            "2026-11-27T18:00:00.000000000Z buildah version 1.28.2 (image-spec 1.0.2-dev, runtime-spec 1.0.2-dev)",
            "2026-11-27T18:00:00.100000000Z ::layerbench-phase build",
            "2026-11-27T18:00:00.200000000Z STEP 1/2: FROM python:3.11-slim",
            "2026-11-27T18:00:01.000000000Z STEP 2/2: RUN echo hi",
            "2026-11-27T18:00:03.000000000Z ::layerbench-phase push",
            "2026-11-27T18:00:09.000000000Z Writing manifest to image destination",
        ];
        let versions: Vec<_> = lines.iter().filter_map(|l| log.push(l, &mut outcome)).collect();
        assert_eq!(versions, vec![("buildah", "1.28.2".to_string())]);
        assert_eq!(outcome.phase(), Some(Phase::Push));
        let finished = log.finish(&mut outcome);
        assert_eq!(finished.steps[1].duration_ms, Some(2000), "step 2 ends at the push mark, not at the log's end");
        // The lines came all at once; the phases come from their stamps: the build from the first line (the
        // version) to the push mark, the push to the last line.
        assert_eq!((outcome.phases.get(&Phase::Build), outcome.phases.get(&Phase::Push)), (Some(&3000), Some(&6000)));
        assert!(outcome.phases[&Phase::Provision] <= 1_100, "{:?}", outcome.phases);
        assert_eq!(outcome.phase(), Some(Phase::Push), "layerbench's clock runs on in the last phase");
        assert_eq!(finished.last_line.as_deref(), Some("Writing manifest to image destination"));
        let failure = finished.exit_failure(JobBuilder::Buildah, 125, 2, None);
        assert_eq!(failure.message, "Buildah exited with code 125: Writing manifest to image destination");
    }

    /// Stamped times that exceed what layerbench's clock gave the log come out of the phase before it (the
    /// script ran before its log was read); the phases still add up. A last mark with nothing after it has no
    /// stamped end: the times stay layerbench's.
    #[test]
    fn stamps_before_the_log_was_read_come_out_of_the_phase_before_and_a_last_mark_alone_keeps_the_clock() {
        let dockerfile = Dockerfile::parse("FROM python:3.11-slim\nRUN echo hi\n").unwrap();
        let mut outcome = JobOutcome::default();
        outcome.enter(Phase::Provision);
        outcome.end_phase();
        outcome.phases.insert(Phase::Provision, 5000);
        outcome.enter(Phase::Provision);
        let mut log = JobLog::start(&buildah(), &dockerfile, &mut outcome);
        let provision = outcome.phases[&Phase::Provision];
        for line in ["2026-11-27T18:00:00.100000000Z ::layerbench-phase build", "2026-11-27T18:00:01.000000000Z STEP 1/2: FROM python:3.11-slim", "2026-11-27T18:00:03.000000000Z ::layerbench-phase push", "2026-11-27T18:00:03.500000000Z done"] {
            log.push(line, &mut outcome);
        }
        log.finish(&mut outcome);
        outcome.end_phase();
        assert_eq!((outcome.phases.get(&Phase::Build), outcome.phases.get(&Phase::Push).map(|ms| *ms >= 500)), (Some(&2900), Some(true)));
        let sum: Millis = outcome.phases.values().sum();
        assert!(sum >= provision && sum <= provision + 50, "the phases keep their sum: {sum} for {provision} ms and a log read at once");
        assert!(outcome.phases[&Phase::Provision] <= provision - 3400 + 50, "{:?}", outcome.phases);

        let mut outcome = JobOutcome::default();
        let mut log = JobLog::start(&buildah(), &dockerfile, &mut outcome);
        for line in ["2026-11-27T18:00:00.100000000Z ::layerbench-phase build", "2026-11-27T18:00:01.000000000Z STEP 1/2: FROM python:3.11-slim", "2026-11-27T18:00:03.000000000Z ::layerbench-phase push"] {
            log.push(line, &mut outcome);
        }
        log.finish(&mut outcome);
        assert!(outcome.phases.get(&Phase::Build).is_some_and(|ms| *ms < 100), "layerbench's clock, for a log read at once: {:?}", outcome.phases);
    }

    /// A mark stamped before the one it follows cannot order the phases: the times stay layerbench's clock's,
    /// never a made-up 0 for the interval between them.
    #[test]
    fn marks_out_of_order_keep_layerbenchs_clock() {
        let dockerfile = Dockerfile::parse("FROM python:3.11-slim\nRUN echo hi\n").unwrap();
        let mut outcome = JobOutcome::default();
        outcome.phases.insert(Phase::Provision, 10_000);
        outcome.enter(Phase::Provision);
        let mut log = JobLog::start(&buildah(), &dockerfile, &mut outcome);
        for line in ["2026-11-27T18:00:01.000000000Z buildah version 1.28.2", "2026-11-27T18:00:03.000000000Z ::layerbench-phase push", "2026-11-27T18:00:02.000000000Z ::layerbench-phase build", "2026-11-27T18:00:04.000000000Z done"] {
            log.push(line, &mut outcome);
        }
        log.finish(&mut outcome);
        outcome.end_phase();
        assert!(outcome.phases[&Phase::Provision] >= 10_000, "nothing taken out of provision: {:?}", outcome.phases);
        assert!(outcome.phases.values().sum::<Millis>() < 10_100, "the clock's times, a log read at once: {:?}", outcome.phases);
    }

    /// A builder that marks nothing (kaniko) has its build from its first line to its last by their stamps,
    /// however late the lines were read: an executor done before its pod was seen running is not a build of
    /// a few ms with its time in provision.
    #[test]
    fn an_unmarked_build_runs_from_its_first_line_to_its_last() {
        let dockerfile = Dockerfile::parse("FROM python:3.11-slim\nRUN echo hi\n").unwrap();
        let request = BuildRequest { builder: JobBuilder::Kaniko, destinations: vec!["r:5000/a:c1".into()], cache_from: vec![], cache_to: None };
        let kaniko = job_command(&request, Path::new("Dockerfile"), &Endpoints { registry: "r:5000", hub_mirror: None, daemon_host: None });
        let mut outcome = JobOutcome::default();
        outcome.phases.insert(Phase::Provision, 5000);
        outcome.enter(Phase::Provision);
        let mut log = JobLog::start(&kaniko, &dockerfile, &mut outcome);
        for line in ["2026-11-27T18:00:00.100000000Z INFO[0000] Retrieving image manifest python:3.11-slim", "2026-11-27T18:00:01.600000000Z INFO[0001] Pushing image to r:5000/a:c1"] {
            log.push(line, &mut outcome);
        }
        log.finish(&mut outcome);
        outcome.end_phase();
        assert_eq!(outcome.phases.get(&Phase::Build), Some(&1500), "{:?}", outcome.phases);
        assert!(outcome.phases[&Phase::Provision] <= 3500, "the 1.5 s come out of provision: {:?}", outcome.phases);
    }

    /// A phase BuildKit's progress shows no vertex for stays empty, its time stays in build, and the job's
    /// notes say so: a capture of a persistent daemon's build (every step cached, no cache import, export or
    /// push vertex) read as a registry-cache buildx job's log.
    #[test]
    fn a_buildkit_phase_without_a_vertex_stays_empty_with_a_note() {
        let request = BuildRequest {
            builder: JobBuilder::Buildx,
            destinations: vec!["r:5000/a:c1".into()],
            cache_from: vec![CacheImport::Registry { reference: "r:5000/a:buildcache".into() }],
            cache_to: Some(CacheExport::Registry { reference: "r:5000/a:buildcache".into(), every_stage: true }),
        };
        let command = job_command(&request, Path::new("Dockerfile"), &Endpoints { registry: "r:5000", hub_mirror: None, daemon_host: None });
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/builder_log/buildkit");
        let dockerfile = Dockerfile::parse(&std::fs::read_to_string(root.join("small.Dockerfile")).unwrap()).unwrap();
        let capture = std::fs::read_to_string(root.join("local_warm.log")).unwrap();
        let mut outcome = JobOutcome::default();
        let mut log = JobLog::start(&command, &dockerfile, &mut outcome);
        log.push("2026-12-02T10:17:05.000000000Z ::layerbench-phase build", &mut outcome);
        for line in capture.lines() {
            log.push(&format!("2026-12-02T10:17:06.000000000Z {line}"), &mut outcome);
        }
        let finished = log.finish(&mut outcome);
        assert!(finished.steps.iter().skip(1).all(|s| s.cached), "every step but FROM cached");
        for phase in [Phase::CacheImport, Phase::Push, Phase::CacheExport] {
            assert_eq!(outcome.phases.get(&phase), None, "{}: not timed, so not there", phase.name());
            let note = format!("{} left empty, its time is in build: the builder's progress showed no step for it", phase.name());
            assert!(outcome.unmeasured.contains(&note), "{note}: {:?}", outcome.unmeasured);
        }
        assert!(outcome.phases.contains_key(&Phase::Build));
    }
}
