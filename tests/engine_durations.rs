//! Durations proven on the real engine, for every builder that runs here: a step known to take 2 s
//! (scenarios/timed: step 3 is `RUN sleep 2`), phases that add up to the job's wall time, and a job's CPU
//! time against a step known to burn 6 CPU-seconds (step 7 in the `busy` run) or none (`asleep`).

mod common;

use std::path::PathBuf;
use std::sync::OnceLock;

use common::*;
use layerbench::results::{JobRecord, JobStatus, StepRecord};
use common::strategies::*;
use layerbench::strategy::Phase;

/// shared-dind: the classic builder; daemonless: buildah; buildkit-shared: BuildKit.
const BUILDERS: [&str; 3] = ["shared-dind", "daemonless", "buildkit-shared"];
const SLEEP_STEP: u32 = 3;
/// `RUN python3 work.py`: 2 CPU-seconds busy in the `busy` run, 2 s asleep in `asleep`.
const WORK_STEP: u32 = 7;

fn timed() -> &'static PathBuf {
    static RESULTS: OnceLock<PathBuf> = OnceLock::new();
    RESULTS.get_or_init(|| run_to_the_end("engine-timed", "scenarios/timed.toml", &[SHARED_DIND, DAEMONLESS, BUILDKIT_SHARED]))
}

fn job<'a>(jobs: &'a [JobRecord], strategy: &str, run: &str) -> &'a JobRecord {
    let job = jobs.iter().find(|j| j.strategy == strategy && j.pipeline_run == run).expect("job recorded");
    assert_eq!(job.status, JobStatus::Ok, "{strategy} {run}: {:?}", job.error);
    job
}

fn step<'a>(steps: &'a [StepRecord], strategy: &str, run: &str, n: u32) -> &'a StepRecord {
    steps.iter().find(|s| s.strategy == strategy && s.pipeline_run == run && s.step == n).expect("step recorded")
}

#[test]
fn a_two_second_step_takes_at_least_two_seconds_and_less_than_the_build() {
    let (jobs, steps) = (jobs(timed()), steps(timed()));
    for strategy in BUILDERS {
        let sleep = step(&steps, strategy, "cold", SLEEP_STEP);
        assert_eq!(sleep.cached, Some(false), "{strategy}");
        let ms = sleep.duration_ms.unwrap_or_else(|| panic!("{strategy}: the sleep step has no duration"));
        let build = job(&jobs, strategy, "cold").build_ms.expect("build timed");
        eprintln!("{strategy}: sleep step {ms} ms, build {build} ms");
        assert!(ms >= 2000, "{strategy}: `RUN sleep 2` took {ms} ms");
        assert!(build > ms, "{strategy}: the build ({build} ms) includes the 2 s step ({ms} ms)");
    }
}

/// Step durations cover the build from the first step to the last; what they leave out is the
/// builder's start (context upload, reading the Dockerfile, resolving the base image) and, for
/// buildah, the commit of the image. One stage, so no two steps overlap.
#[test]
fn step_durations_add_up_to_most_of_the_build() {
    let (jobs, steps) = (jobs(timed()), steps(timed()));
    for strategy in BUILDERS {
        let sum: u64 = steps
            .iter()
            .filter(|s| s.strategy == strategy && s.pipeline_run == "cold")
            .filter_map(|s| s.duration_ms)
            .sum();
        let build = job(&jobs, strategy, "cold").build_ms.unwrap();
        let share = sum as f64 / build as f64;
        eprintln!("{strategy}: steps {sum} ms of build {build} ms ({:.0}%)", share * 100.0);
        assert!(sum <= build, "{strategy}: steps ({sum} ms) cannot take longer than the build ({build} ms)");
        assert!(share >= 0.5, "{strategy}: steps cover only {:.0}% of the build", share * 100.0);
    }
}

#[test]
fn a_cached_step_is_faster_than_the_same_step_executed() {
    let steps = steps(timed());
    for strategy in BUILDERS {
        let cold = step(&steps, strategy, "cold", SLEEP_STEP);
        let warm = step(&steps, strategy, "no-change", SLEEP_STEP);
        assert_eq!(warm.cached, Some(true), "{strategy}: the sleep step is cached on no-change");
        let (c, w) = (cold.duration_ms.unwrap(), warm.duration_ms.expect("a cached step has a duration too"));
        assert!(w < c, "{strategy}: cached {w} ms, executed {c} ms");
        assert!(w < 2000, "{strategy}: a cached `sleep 2` took {w} ms");
    }
}

#[test]
fn phases_add_up_to_the_wall_time_within_one_percent() {
    for job in jobs(timed()) {
        let phases: Vec<u64> = Phase::ALL.iter().filter_map(|&p| job.phase_ms(p)).collect();
        let sum: u64 = phases.iter().sum();
        // Each phase is whole milliseconds, rounded: a job of a few tens of ms (shared-dind on
        // no-change) can miss 1% by rounding alone, so allow a millisecond per phase as well.
        let allowed = (job.wall_ms as f64 * 0.01).max(phases.len() as f64);
        eprintln!("{} {}: wall {} ms, phases {sum} ms", job.strategy, job.pipeline_run, job.wall_ms);
        assert!(
            job.wall_ms.abs_diff(sum) as f64 <= allowed,
            "{} {}: phases {sum} ms vs wall {} ms",
            job.strategy,
            job.pipeline_run,
            job.wall_ms
        );
        assert!(job.teardown_ms.is_some() && job.measure_ms.is_some(), "teardown and measure are phases of their own");
    }
}

/// A job's CPU time counts what its build steps ran, in the shared daemon (the classic builder, BuildKit in
/// dind). buildah's is not checked (below). `busy` and `asleep` run the same steps, one
/// busy for 6 CPU-seconds by its own process clock, the other asleep for 2 s; everything else (the builder,
/// its daemon, the COPY) is the same work. So `busy − asleep` is the busy loop's 6 CPU-seconds plus the
/// noise between two like jobs; the documented tolerance is 4.5 to 9 s (README, Tests).
#[test]
fn a_step_that_burns_cpu_shows_in_the_jobs_cpu_time_and_a_sleep_does_not() {
    let (jobs, steps) = (jobs(timed()), steps(timed()));
    for strategy in BUILDERS {
        for run in ["busy", "asleep"] {
            let work = step(&steps, strategy, run, WORK_STEP);
            assert_eq!(work.cached, Some(false), "{strategy} {run}: the swapped work step runs again");
            assert!(work.duration_ms.is_some_and(|ms| ms >= 2000), "{strategy} {run}: step 7 takes 2 s or more: {:?}", work.duration_ms);
        }
        let cpu = |run: &str| job(&jobs, strategy, run).cpu_ms.unwrap_or_else(|| panic!("{strategy} {run}: no CPU time"));
        let (busy, asleep) = (cpu("busy"), cpu("asleep"));
        let extra = busy as i64 - asleep as i64;
        eprintln!("{strategy}: busy {busy} ms of CPU, asleep {asleep} ms: the busy loop added {extra} ms");
        if strategy == "daemonless" {
            // Said in the README's `cpu_ms`: buildah's steps run in its job container's cgroup (seen by hand),
            // but two like buildah jobs differ by more than the step (it added 2.3 s in one run, 10.2 s in
            // another), so the figure cannot be checked this way.
            continue;
        }
        assert!((4500..=9000).contains(&extra), "{strategy}: 6 CPU-seconds of busy loop added {extra} ms (busy {busy}, asleep {asleep})");
    }
}
