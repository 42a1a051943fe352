//! Builder-log parsers against logs of real builds (classic, buildah) captured on this machine's
//! engine, and against kaniko logs written from kaniko's source (its image cannot be pulled
//! here). How each fixture was made: tests/fixtures/builder_log/README.md.

use std::path::PathBuf;

use layerbench::builder_log::{split_docker_timestamp, LogFormat, LogParser, ParsedStep};
use layerbench::scenario::Dockerfile;
use layerbench::Millis;

fn fixture(path: &str) -> String {
    let full: PathBuf = [env!("CARGO_MANIFEST_DIR"), "tests/fixtures/builder_log", path].iter().collect();
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("read {}: {e}", full.display()))
}

fn dockerfile(path: &str) -> Dockerfile {
    Dockerfile::parse(&fixture(path)).unwrap_or_else(|e| panic!("parse {path}: {e}"))
}

/// Lines of a log as (time, text): `docker logs --timestamps` lines keep their own time
/// (from the first line), plain logs get one line every 10 ms. `#` lines are fixture comments.
fn timed_lines(log: &str) -> Vec<(Millis, &str)> {
    let lines: Vec<&str> = log.lines().filter(|l| !l.starts_with('#')).collect();
    match lines.first().and_then(|l| split_docker_timestamp(l)) {
        Some((first_ms, _)) => lines
            .iter()
            .map(|l| {
                let (ms, text) = split_docker_timestamp(l).expect("every line of the fixture is timestamped");
                (ms - first_ms, text)
            })
            .collect(),
        None => lines.iter().enumerate().map(|(i, l)| (i as Millis * 10, *l)).collect(),
    }
}

/// Feeds the log line by line; the build ends 1 s after the last line.
fn parse(format: LogFormat, dockerfile_path: &str, log_path: &str) -> (Vec<ParsedStep>, Box<dyn LogParser>) {
    let log = fixture(log_path);
    let mut parser = format.parser(&dockerfile(dockerfile_path));
    let lines = timed_lines(&log);
    for (at_ms, line) in &lines {
        parser.push_line(*at_ms, line);
    }
    let end_ms = lines.last().map_or(0, |(ms, _)| ms + 1000);
    (parser.finish(end_ms), parser)
}

fn numbers(steps: &[ParsedStep]) -> Vec<u32> {
    steps.iter().map(|s| s.step).collect()
}

fn cached(steps: &[ParsedStep]) -> Vec<bool> {
    steps.iter().map(|s| s.cached).collect()
}

/// The builder printed each instruction as the Dockerfile's parser numbers and joins it.
fn assert_instructions_match(steps: &[ParsedStep], dockerfile_path: &str) {
    let dockerfile = dockerfile(dockerfile_path);
    for step in steps {
        let (_, instruction) = dockerfile.step(step.step).unwrap_or_else(|| panic!("no step {}", step.step));
        assert_eq!(step.instruction, instruction.text, "step {}", step.step);
    }
}

fn assert_no_errors(steps: &[ParsedStep]) {
    assert!(steps.iter().all(|s| s.error.is_none()), "{steps:#?}");
}

// ---- classic builder (DOCKER_BUILDKIT=0, dockerd 20.10) ----

#[test]
fn classic_cold_build_executes_every_step() {
    let (steps, parser) = parse(LogFormat::Classic, "classic/basic.Dockerfile", "classic/executed.log");
    assert_eq!(numbers(&steps), [1, 2, 3, 4, 5, 6]);
    assert_eq!(cached(&steps), [false; 6]);
    assert_instructions_match(&steps, "classic/basic.Dockerfile");
    assert_no_errors(&steps);
    assert_eq!(parser.error(), None);
}

#[test]
fn classic_change_to_copied_file_misses_from_the_copy_on() {
    let (steps, _) = parse(LogFormat::Classic, "classic/basic.Dockerfile", "classic/partial_cache.log");
    assert_eq!(numbers(&steps), [1, 2, 3, 4, 5, 6]);
    // FROM: the builder prints no cache marker for it.
    assert_eq!(cached(&steps), [false, true, true, false, false, false]);
    assert_eq!(steps[3].instruction, "COPY app.txt /data/app.txt");
}

#[test]
fn classic_rebuild_hits_every_step_after_from() {
    let (steps, _) = parse(LogFormat::Classic, "classic/basic.Dockerfile", "classic/all_cached.log");
    assert_eq!(cached(&steps), [false, true, true, true, true, true]);
}

#[test]
fn classic_failing_run_fails_its_step_and_no_later_one_starts() {
    let log = fixture("classic/failing_run.log");
    // The CLI printed the stream to stdout and the API's error message to stderr.
    let error = fixture("classic/failing_run.error");
    let mut parser = LogFormat::Classic.parser(&dockerfile("classic/fail.Dockerfile"));
    let lines = timed_lines(&log);
    for (at_ms, line) in &lines {
        parser.push_line(*at_ms, line);
    }
    parser.push_error(500, &error);
    assert_eq!(parser.current(), None, "a failed step is over");
    let steps = parser.finish(900);
    let message = "The command '/bin/sh -c echo about to fail && exit 3' returned a non-zero code: 3";
    assert_eq!(numbers(&steps), [1, 2, 3]);
    assert_eq!(steps[2].instruction, "RUN echo about to fail && exit 3");
    assert_eq!(steps[2].error.as_deref(), Some(message));
    assert_eq!(steps[2].duration_ms, Some(500 - steps[2].started_ms), "ends when the error arrives");
    assert!(steps[..2].iter().all(|s| s.error.is_none()));
    assert_eq!(parser.error(), Some(message));
}

#[test]
fn classic_base_image_pull_failure_fails_the_from_step() {
    let mut parser = LogFormat::Classic.parser(&dockerfile("classic/missing_base.Dockerfile"));
    for (at_ms, line) in timed_lines(&fixture("classic/missing_base.log")) {
        parser.push_line(at_ms, line);
    }
    parser.push_error(100, &fixture("classic/missing_base.error"));
    let steps = parser.finish(200);
    assert_eq!(numbers(&steps), [1]);
    assert!(steps[0].error.as_deref().is_some_and(|e| e.contains("registry-1.docker.io")), "{steps:?}");
}

#[test]
fn classic_run_output_that_looks_like_builder_lines_is_output() {
    let log = fixture("classic/multiline_run.log");
    let mut parser = LogFormat::Classic.parser(&dockerfile("classic/multiline.Dockerfile"));
    let mut running = vec![];
    for (at_ms, line) in timed_lines(&log) {
        parser.push_line(at_ms, line);
        let now = parser.current().map(|s| s.step);
        if running.last() != Some(&now) {
            running.push(now);
        }
    }
    // The RUN printed `Step 1/2 : FROM ...` and ` ---> Using cache` among its own lines.
    assert_eq!(running, [None, Some(1), Some(2), Some(3), None]);
    let steps = parser.finish(10_000);
    assert_eq!(numbers(&steps), [1, 2, 3]);
    assert_eq!(cached(&steps), [false, false, false]);
    assert_instructions_match(&steps, "classic/multiline.Dockerfile");
}

#[test]
fn classic_target_build_numbers_steps_up_to_the_target() {
    let (steps, _) = parse(LogFormat::Classic, "classic/multistage.Dockerfile", "classic/target_builder.log");
    assert_eq!(numbers(&steps), [1, 2, 3, 4]);
    assert_eq!(cached(&steps), [false; 4]);
    assert_instructions_match(&steps, "classic/multistage.Dockerfile");
}

#[test]
fn classic_multistage_after_target_build_reuses_the_built_stage() {
    let (steps, _) = parse(LogFormat::Classic, "classic/multistage.Dockerfile", "classic/multistage.log");
    assert_eq!(numbers(&steps), (1..=11).collect::<Vec<_>>());
    assert_eq!(
        cached(&steps),
        [false, true, true, true, false, false, false, false, false, false, false]
    );
    assert_instructions_match(&steps, "classic/multistage.Dockerfile");
    assert_no_errors(&steps);
}

#[test]
fn classic_in_a_fresh_dind_executes_every_step() {
    let (steps, _) = parse(LogFormat::Classic, "classic/multistage.Dockerfile", "classic/dind_multistage_cold.log");
    assert_eq!(numbers(&steps), (1..=11).collect::<Vec<_>>());
    assert_eq!(cached(&steps), [false; 11]);
}

#[test]
fn classic_cache_from_final_image_hits_only_the_final_stage() {
    let (steps, _) = parse(LogFormat::Classic, "classic/multistage.Dockerfile", "classic/dind_cache_from.log");
    assert_eq!(
        cached(&steps),
        [false, false, false, false, false, false, false, true, true, true, true]
    );
}

/// Each step lasts from its header to the next header; the last one to `Successfully built`.
#[test]
fn classic_durations_are_the_gaps_between_step_lines() {
    let log = fixture("classic/multistage.log");
    let lines: Vec<&str> = log.lines().collect();
    let mut parser = LogFormat::Classic.parser(&dockerfile("classic/multistage.Dockerfile"));
    let time = |i: usize| 1_000 + (i as Millis) * (i as Millis) * 3; // uneven, increasing
    for (i, line) in lines.iter().enumerate() {
        parser.push_line(time(i), line);
    }
    let steps = parser.finish(1_000_000);
    let header_times: Vec<Millis> =
        lines.iter().enumerate().filter(|(_, l)| l.starts_with("Step ")).map(|(i, _)| time(i)).collect();
    assert_eq!(steps.iter().map(|s| s.started_ms).collect::<Vec<_>>(), header_times);
    for pair in steps.windows(2) {
        assert_eq!(pair[0].duration_ms, Some(pair[1].started_ms - pair[0].started_ms));
    }
    let built = lines.iter().position(|l| l.starts_with("Successfully built")).unwrap();
    assert_eq!(steps[10].duration_ms, Some(time(built) - steps[10].started_ms));
}

#[test]
fn chunks_of_several_lines_parse_like_single_lines() {
    let log = fixture("classic/partial_cache.log");
    let mut parser = LogFormat::Classic.parser(&dockerfile("classic/basic.Dockerfile"));
    parser.push_line(0, &log);
    let steps = parser.finish(10);
    assert_eq!(cached(&steps), [false, true, true, false, false, false]);
}

// ---- buildah bud --layers (buildah 1.28), read with docker logs --timestamps ----

#[test]
fn buildah_cold_build_pushes_every_layer_and_hits_none() {
    let (steps, parser) = parse(LogFormat::Buildah, "buildah/multistage.Dockerfile", "buildah/cold.log");
    assert_eq!(numbers(&steps), (1..=11).collect::<Vec<_>>());
    assert_eq!(cached(&steps), [false; 11]);
    assert_instructions_match(&steps, "buildah/multistage.Dockerfile");
    assert_no_errors(&steps);
    assert_eq!(parser.error(), None);
}

const EVERY_STEP_BUT_FROM: [bool; 11] = [false, true, true, true, true, false, true, true, true, true, true];

#[test]
fn buildah_rebuild_on_kept_storage_uses_local_cache() {
    let (steps, _) = parse(LogFormat::Buildah, "buildah/multistage.Dockerfile", "buildah/local_cache.log");
    assert_eq!(numbers(&steps), (1..=11).collect::<Vec<_>>());
    assert_eq!(cached(&steps), EVERY_STEP_BUT_FROM);
}

#[test]
fn buildah_fresh_container_pulls_every_step_from_the_remote_cache() {
    let (steps, _) = parse(LogFormat::Buildah, "buildah/multistage.Dockerfile", "buildah/remote_cache.log");
    assert_eq!(numbers(&steps), (1..=11).collect::<Vec<_>>());
    assert_eq!(cached(&steps), EVERY_STEP_BUT_FROM);
    assert_instructions_match(&steps, "buildah/multistage.Dockerfile");
}

#[test]
fn buildah_failing_run_fails_its_step() {
    let (steps, parser) = parse(LogFormat::Buildah, "buildah/fail.Dockerfile", "buildah/failing_run.log");
    let message = r#"building at STEP "RUN echo about to fail && exit 3": exit status 3"#;
    assert_eq!(numbers(&steps), [1, 2, 3]);
    assert_eq!(steps[2].error.as_deref(), Some(message));
    assert!(steps[..2].iter().all(|s| s.error.is_none()));
    assert_eq!(parser.error(), Some(message));
    // It ended when buildah reported the error, not when the caller finished.
    let log = fixture("buildah/failing_run.log");
    let lines = timed_lines(&log);
    let error_ms = lines.iter().find(|(_, l)| l.starts_with("Error: ")).unwrap().0;
    assert_eq!(steps[2].started_ms + steps[2].duration_ms.unwrap(), error_ms);
}

#[test]
fn buildah_run_output_that_looks_like_buildah_lines_is_output() {
    // The RUN's first output line is a perfect `--> Using cache ID`, then a `STEP` header
    // look-alike and an `Error:` line; the RUN succeeds.
    let (steps, parser) =
        parse(LogFormat::Buildah, "buildah/lookalike.Dockerfile", "buildah/lookalike_output.log");
    assert_eq!(numbers(&steps), [1, 2, 3]);
    assert_eq!(cached(&steps), [false, false, false]);
    assert_no_errors(&steps);
    assert_eq!(parser.error(), None);
    assert_instructions_match(&steps, "buildah/lookalike.Dockerfile");
}

#[test]
fn buildah_skips_stages_the_final_one_does_not_need_and_keeps_numbering() {
    let (steps, _) =
        parse(LogFormat::Buildah, "buildah/unused_stage.Dockerfile", "buildah/unused_stage_skipped.log");
    assert_eq!(numbers(&steps), [1, 2, 3, 4, 7, 8, 9, 10, 11]);
    assert_eq!(cached(&steps), [false; 9]);
    assert_instructions_match(&steps, "buildah/unused_stage.Dockerfile");
}

#[test]
fn buildah_target_of_the_first_stage_prints_no_stage_prefix() {
    let (steps, _) = parse(LogFormat::Buildah, "buildah/unused_stage.Dockerfile", "buildah/target_builder.log");
    assert_eq!(numbers(&steps), [1, 2, 3, 4]);
    assert_eq!(cached(&steps), [false, true, true, true]);
}

#[test]
fn buildah_durations_come_from_the_log_timestamps() {
    let log = fixture("buildah/remote_cache.log");
    let lines = timed_lines(&log);
    let (steps, _) = parse(LogFormat::Buildah, "buildah/multistage.Dockerfile", "buildah/remote_cache.log");
    let header_times: Vec<Millis> =
        lines.iter().filter(|(_, l)| l.contains("] STEP ")).map(|(ms, _)| *ms).collect();
    assert_eq!(steps.iter().map(|s| s.started_ms).collect::<Vec<_>>(), header_times);
    for pair in steps.windows(2) {
        assert_eq!(pair[0].duration_ms, Some(pair[1].started_ms - pair[0].started_ms));
    }
    // The FROM of the first stage pulled the base image: 5.7 s of this log (25.471 s to 31.192 s).
    assert_eq!(steps[0].duration_ms, Some(5721));
    let tagged_ms = lines.iter().find(|(_, l)| l.starts_with("Successfully tagged")).unwrap().0;
    assert_eq!(steps[10].started_ms + steps[10].duration_ms.unwrap(), tagged_ms);
}

#[test]
fn docker_log_timestamps_split_into_epoch_ms_and_text() {
    let (ms, text) = split_docker_timestamp("2026-11-27T18:54:08.519309647Z [1/2] STEP 1/5: FROM x").unwrap();
    assert_eq!(ms, 1_795_805_648_519);
    assert_eq!(text, "[1/2] STEP 1/5: FROM x");
    let (_, text) = split_docker_timestamp("2026-11-27T18:54:16.632567142Z --> e802c9b31c3").unwrap();
    assert_eq!(text, "--> e802c9b31c3");
    // Leading spaces of the container's line are kept.
    let (_, text) = split_docker_timestamp("2026-11-27T18:54:16.632567142Z  ---> Using cache").unwrap();
    assert_eq!(text, " ---> Using cache");
    assert_eq!(split_docker_timestamp("Step 1/2 : FROM x"), None);
    assert_eq!(split_docker_timestamp("2026-11-27T18:54:16Z"), None);
}

// ---- kaniko: HAND-WRITTEN from kaniko's source strings, not captured (see the fixtures' heads) ----

#[test]
fn kaniko_cold_build_maps_unnumbered_lines_to_dockerfile_steps() {
    let (steps, parser) = parse(LogFormat::Kaniko, "kaniko/multistage.Dockerfile", "kaniko/cold.log");
    assert_eq!(numbers(&steps), (1..=11).collect::<Vec<_>>());
    assert_eq!(cached(&steps), [false; 11]);
    // kaniko prints no FROM: those come from the Dockerfile; the rest are kaniko's text.
    assert_instructions_match(&steps, "kaniko/multistage.Dockerfile");
    assert_no_errors(&steps);
    assert_eq!(parser.error(), None);
}

#[test]
fn kaniko_warm_build_reports_the_cache_repo_hits_in_text_format() {
    let (steps, _) = parse(LogFormat::Kaniko, "kaniko/multistage.Dockerfile", "kaniko/warm.log");
    assert_eq!(numbers(&steps), (1..=11).collect::<Vec<_>>());
    // Only RUN layers are cached by default (--cache-copy-layers=false); ENV, WORKDIR, CMD
    // change metadata only and kaniko says nothing about caching them.
    assert_eq!(
        cached(&steps),
        [false, true, false, false, true, false, false, false, false, true, false]
    );
    // msg="..." is Go-quoted: `\\n` in the log is `\n` in the RUN.
    assert_instructions_match(&steps, "kaniko/multistage.Dockerfile");
}

#[test]
fn kaniko_failing_run_fails_its_step() {
    let (steps, parser) = parse(LogFormat::Kaniko, "kaniko/fail.Dockerfile", "kaniko/failing_run.log");
    let message = "error building image: error building stage: failed to execute command: \
                   waiting for process to exit: exit status 3";
    assert_eq!(numbers(&steps), [1, 2, 3]);
    assert_eq!(cached(&steps), [false, true, false]);
    assert_eq!(steps[2].error.as_deref(), Some(message));
    assert_eq!(parser.error(), Some(message));
}

#[test]
fn kaniko_durations_span_stage_preambles_and_end_at_the_image_push() {
    let (steps, _) = parse(LogFormat::Kaniko, "kaniko/multistage.Dockerfile", "kaniko/cold.log");
    let started: Vec<Millis> = steps.iter().map(|s| s.started_ms).collect();
    // Stage 1's FROM starts with its first base-image line (after stage 0 saved its files),
    // not at `Building stage`; cache-layer pushes mid-stage do not end the build.
    assert_eq!(started, [0, 6912, 8708, 8711, 8801, 10903, 17508, 17509, 17560, 17600, 19302]);
    for pair in steps.windows(2) {
        assert_eq!(pair[0].duration_ms, Some(pair[1].started_ms - pair[0].started_ms));
    }
    assert_eq!(steps[10].duration_ms, Some(19391 - 19302), "ends at `Pushing image to` the destination");
}
