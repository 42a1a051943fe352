//! Builder-log parsers against logs of real builds (classic, buildah, kaniko, BuildKit) captured
//! on this machine's engine. How each fixture was made: tests/fixtures/builder_log/README.md and
//! tests/fixtures/builder_log/buildkit/README.md.

use std::path::PathBuf;

use layerbench::builder::buildkit::log::{BuildkitParser, BuildkitPhases};
use layerbench::builder::log::{split_docker_timestamp, LogParser, ParsedStep};
use layerbench::builder::log::ParserOf;
use layerbench::builder::{buildah, classic, kaniko};
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
fn parse(parser_of: ParserOf, dockerfile_path: &str, log_path: &str) -> (Vec<ParsedStep>, Box<dyn LogParser>) {
    let log = fixture(log_path);
    let mut parser = parser_of(&dockerfile(dockerfile_path));
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
    let (steps, parser) = parse(classic::log::parser, "classic/basic.Dockerfile", "classic/executed.log");
    assert_eq!(numbers(&steps), [1, 2, 3, 4, 5, 6]);
    assert_eq!(cached(&steps), [false; 6]);
    assert_instructions_match(&steps, "classic/basic.Dockerfile");
    assert_no_errors(&steps);
    assert_eq!(parser.error(), None);
}

#[test]
fn classic_change_to_copied_file_misses_from_the_copy_on() {
    let (steps, _) = parse(classic::log::parser, "classic/basic.Dockerfile", "classic/partial_cache.log");
    assert_eq!(numbers(&steps), [1, 2, 3, 4, 5, 6]);
    // FROM: the builder prints no cache marker for it.
    assert_eq!(cached(&steps), [false, true, true, false, false, false]);
    assert_eq!(steps[3].instruction, "COPY app.txt /data/app.txt");
}

#[test]
fn classic_rebuild_hits_every_step_after_from() {
    let (steps, _) = parse(classic::log::parser, "classic/basic.Dockerfile", "classic/all_cached.log");
    assert_eq!(cached(&steps), [false, true, true, true, true, true]);
}

#[test]
fn classic_failing_run_fails_its_step_and_no_later_one_starts() {
    let log = fixture("classic/failing_run.log");
    // The CLI printed the stream to stdout and the API's error message to stderr.
    let error = fixture("classic/failing_run.error");
    let mut parser = classic::log::parser(&dockerfile("classic/fail.Dockerfile"));
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
    let mut parser = classic::log::parser(&dockerfile("classic/missing_base.Dockerfile"));
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
    let mut parser = classic::log::parser(&dockerfile("classic/multiline.Dockerfile"));
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
    let (steps, _) = parse(classic::log::parser, "classic/multistage.Dockerfile", "classic/target_builder.log");
    assert_eq!(numbers(&steps), [1, 2, 3, 4]);
    assert_eq!(cached(&steps), [false; 4]);
    assert_instructions_match(&steps, "classic/multistage.Dockerfile");
}

#[test]
fn classic_multistage_after_target_build_reuses_the_built_stage() {
    let (steps, _) = parse(classic::log::parser, "classic/multistage.Dockerfile", "classic/multistage.log");
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
    let (steps, _) = parse(classic::log::parser, "classic/multistage.Dockerfile", "classic/dind_multistage_cold.log");
    assert_eq!(numbers(&steps), (1..=11).collect::<Vec<_>>());
    assert_eq!(cached(&steps), [false; 11]);
}

#[test]
fn classic_cache_from_final_image_hits_only_the_final_stage() {
    let (steps, _) = parse(classic::log::parser, "classic/multistage.Dockerfile", "classic/dind_cache_from.log");
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
    let mut parser = classic::log::parser(&dockerfile("classic/multistage.Dockerfile"));
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
    let mut parser = classic::log::parser(&dockerfile("classic/basic.Dockerfile"));
    parser.push_line(0, &log);
    let steps = parser.finish(10);
    assert_eq!(cached(&steps), [false, true, true, false, false, false]);
}

// ---- buildah bud --layers (buildah 1.28), read with docker logs --timestamps ----

#[test]
fn buildah_cold_build_pushes_every_layer_and_hits_none() {
    let (steps, parser) = parse(buildah::log::parser, "buildah/multistage.Dockerfile", "buildah/cold.log");
    assert_eq!(numbers(&steps), (1..=11).collect::<Vec<_>>());
    assert_eq!(cached(&steps), [false; 11]);
    assert_instructions_match(&steps, "buildah/multistage.Dockerfile");
    assert_no_errors(&steps);
    assert_eq!(parser.error(), None);
}

const EVERY_STEP_BUT_FROM: [bool; 11] = [false, true, true, true, true, false, true, true, true, true, true];

#[test]
fn buildah_rebuild_on_kept_storage_uses_local_cache() {
    let (steps, _) = parse(buildah::log::parser, "buildah/multistage.Dockerfile", "buildah/local_cache.log");
    assert_eq!(numbers(&steps), (1..=11).collect::<Vec<_>>());
    assert_eq!(cached(&steps), EVERY_STEP_BUT_FROM);
}

#[test]
fn buildah_fresh_container_pulls_every_step_from_the_remote_cache() {
    let (steps, _) = parse(buildah::log::parser, "buildah/multistage.Dockerfile", "buildah/remote_cache.log");
    assert_eq!(numbers(&steps), (1..=11).collect::<Vec<_>>());
    assert_eq!(cached(&steps), EVERY_STEP_BUT_FROM);
    assert_instructions_match(&steps, "buildah/multistage.Dockerfile");
}

#[test]
fn buildah_failing_run_fails_its_step() {
    let (steps, parser) = parse(buildah::log::parser, "buildah/fail.Dockerfile", "buildah/failing_run.log");
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
        parse(buildah::log::parser, "buildah/lookalike.Dockerfile", "buildah/lookalike_output.log");
    assert_eq!(numbers(&steps), [1, 2, 3]);
    assert_eq!(cached(&steps), [false, false, false]);
    assert_no_errors(&steps);
    assert_eq!(parser.error(), None);
    assert_instructions_match(&steps, "buildah/lookalike.Dockerfile");
}

#[test]
fn buildah_skips_stages_the_final_one_does_not_need_and_keeps_numbering() {
    let (steps, _) =
        parse(buildah::log::parser, "buildah/unused_stage.Dockerfile", "buildah/unused_stage_skipped.log");
    assert_eq!(numbers(&steps), [1, 2, 3, 4, 7, 8, 9, 10, 11]);
    assert_eq!(cached(&steps), [false; 9]);
    assert_instructions_match(&steps, "buildah/unused_stage.Dockerfile");
}

#[test]
fn buildah_target_of_the_first_stage_prints_no_stage_prefix() {
    let (steps, _) = parse(buildah::log::parser, "buildah/unused_stage.Dockerfile", "buildah/target_builder.log");
    assert_eq!(numbers(&steps), [1, 2, 3, 4]);
    assert_eq!(cached(&steps), [false, true, true, true]);
}

#[test]
fn buildah_durations_come_from_the_log_timestamps() {
    let log = fixture("buildah/remote_cache.log");
    let lines = timed_lines(&log);
    let (steps, _) = parse(buildah::log::parser, "buildah/multistage.Dockerfile", "buildah/remote_cache.log");
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

// ---- kaniko v1.24.0 (the executor built from the Go module, in the debug image's stand-in) ----

/// The log's time of the first line containing `needle` (ms from the log's first line).
fn time_of(lines: &[(Millis, &str)], needle: &str) -> Millis {
    lines.iter().find(|(_, l)| l.contains(needle)).unwrap_or_else(|| panic!("no line with {needle:?}")).0
}

/// A parsed fixture: its steps, the parser (for its error and phases), and the log's timed lines.
type TimedParse = (Vec<ParsedStep>, Box<dyn LogParser>, Vec<(Millis, String)>);

/// Parses a `docker logs --timestamps` kaniko fixture as the harness does; also returns its lines.
fn kaniko_timed(dockerfile_path: &str, log_path: &str) -> TimedParse {
    let (steps, parser) = parse(kaniko::log::parser, dockerfile_path, log_path);
    let log = fixture(log_path);
    let lines = timed_lines(&log).into_iter().map(|(ms, l)| (ms, l.to_string())).collect();
    (steps, parser, lines)
}

/// scenarios/small/Dockerfile: 1 FROM, 2 RUN, 3 COPY deps.txt, 4 RUN | 5 FROM, 6 ENV,
/// 7 COPY --from=builder, 8 WORKDIR, 9 COPY app ., 10 RUN, 11 CMD.
const KANIKO_SMALL_STEPS: std::ops::RangeInclusive<u32> = 1..=11;

#[test]
fn kaniko_the_harness_reads_the_same_lines_as_docker_logs() {
    // The harness reads the log with the engine's timestamps and strips them.
    for name in ["cold", "warm", "code_change", "failing_run"] {
        let stamped = fixture(&format!("kaniko/{name}.timestamps.log"));
        let plain = fixture(&format!("kaniko/{name}.log"));
        let stripped: Vec<&str> = stamped.lines().map(|l| split_docker_timestamp(l).unwrap().1).collect();
        assert_eq!(stripped, plain.lines().collect::<Vec<_>>(), "{name}");
    }
}

#[test]
fn kaniko_cold_build_maps_unnumbered_lines_to_dockerfile_steps() {
    for log in ["kaniko/cold.log", "kaniko/cold.timestamps.log"] {
        let (steps, parser) = parse(kaniko::log::parser, "kaniko/small.Dockerfile", log);
        assert_eq!(numbers(&steps), KANIKO_SMALL_STEPS.collect::<Vec<_>>(), "{log}");
        // An empty cache repo: every lookup says `No cached layer found`.
        assert_eq!(cached(&steps), [false; 11], "{log}");
        // kaniko prints no FROM: those come from the Dockerfile; the rest are kaniko's text.
        assert_instructions_match(&steps, "kaniko/small.Dockerfile");
        assert_no_errors(&steps);
        assert_eq!(parser.error(), None);
    }
}

#[test]
fn kaniko_no_change_rebuild_hits_the_run_steps_only() {
    let (steps, _) = parse(kaniko::log::parser, "kaniko/small.Dockerfile", "kaniko/warm.log");
    assert_eq!(numbers(&steps), KANIKO_SMALL_STEPS.collect::<Vec<_>>());
    // A fresh container with the cache repo only: kaniko looks up RUN layers (steps 2, 4, 10);
    // COPY runs again without --cache-copy-layers, and ENV, WORKDIR, CMD change metadata only.
    assert_eq!(cached(&steps), [false, true, false, true, false, false, false, false, false, true, false]);
    assert_instructions_match(&steps, "kaniko/small.Dockerfile");
    assert_no_errors(&steps);
}

#[test]
fn kaniko_caches_copy_too_with_cache_copy_layers() {
    let (steps, _) = parse(kaniko::log::parser, "kaniko/small.Dockerfile", "kaniko/warm_cache_copy_layers.log");
    assert_eq!(numbers(&steps), KANIKO_SMALL_STEPS.collect::<Vec<_>>());
    // Every RUN and COPY (2, 3, 4, 7, 9, 10) is served; kaniko then skips unpacking the final stage's base.
    assert_eq!(cached(&steps), [false, true, true, true, false, false, true, false, true, true, false]);
    assert_instructions_match(&steps, "kaniko/small.Dockerfile");
}

#[test]
fn kaniko_late_copy_change_misses_the_run_after_it() {
    let (steps, parser) = parse(kaniko::log::parser, "kaniko/small.Dockerfile", "kaniko/code_change.log");
    assert_eq!(numbers(&steps), KANIKO_SMALL_STEPS.collect::<Vec<_>>());
    // app/main.py changed (step 9): the RUN after it (step 10) has a new key, the builder's RUNs hit.
    assert_eq!(cached(&steps), [false, true, false, true, false, false, false, false, false, false, false]);
    assert_eq!(parser.error(), None);
}

#[test]
fn kaniko_durations_come_from_the_engine_timestamps() {
    let (steps, _, lines) = kaniko_timed("kaniko/small.Dockerfile", "kaniko/cold.timestamps.log");
    let lines: Vec<(Millis, &str)> = lines.iter().map(|(ms, l)| (*ms, l.as_str())).collect();
    let started: Vec<Millis> = steps.iter().map(|s| s.started_ms).collect();
    assert_eq!(
        started,
        [
            0,
            time_of(&lines, "] RUN mkdir -p /out &&"),
            time_of(&lines, "] COPY deps.txt ."),
            time_of(&lines, "] RUN mkdir -p /out/deps"),
            // The final stage's FROM starts when kaniko leaves the builder stage: saving its
            // files and wiping the filesystem are that stage's set-up, not the last RUN's work.
            time_of(&lines, "Saving file out for later use"),
            time_of(&lines, "] ENV OUT=/out"),
            time_of(&lines, "] COPY --from=builder"),
            time_of(&lines, "] WORKDIR /app"),
            time_of(&lines, "] COPY app ."),
            time_of(&lines, "] RUN ls /app"),
            time_of(&lines, "] CMD [\"python3\""),
        ]
    );
    assert_eq!(started[1], 3354, "the first RUN waited 3.4 s for the base image's rootfs");
    for pair in steps.windows(2) {
        assert_eq!(pair[0].duration_ms, Some(pair[1].started_ms - pair[0].started_ms));
    }
    // Cache-layer pushes mid-stage do not end the build; the push of the image does.
    let last = &steps[10];
    let pushed = time_of(&lines, "Pushing image to registry:5000/daemonless-kaniko/small-app:c1");
    assert_eq!(last.started_ms + last.duration_ms.unwrap(), pushed);
}

#[test]
fn kaniko_warm_durations_put_unpacking_in_the_from_steps() {
    let (steps, _, lines) = kaniko_timed("kaniko/small.Dockerfile", "kaniko/warm.timestamps.log");
    let lines: Vec<(Millis, &str)> = lines.iter().map(|(ms, l)| (*ms, l.as_str())).collect();
    // The FROM steps hold the unpacking of the base image; the cached RUNs only extract a layer.
    assert_eq!(steps[0].duration_ms, Some(time_of(&lines, "] RUN mkdir -p /out &&")));
    assert_eq!(steps[4].started_ms, time_of(&lines, "Saving file out for later use"));
    assert_eq!(steps[4].started_ms + steps[4].duration_ms.unwrap(), time_of(&lines, "] ENV OUT=/out"));
    for i in [1, 3, 9] {
        assert!(steps[i].cached && steps[i].duration_ms.unwrap() < 100, "{:?}", steps[i]);
    }
}

#[test]
fn kaniko_failing_run_fails_its_step() {
    let message = "error building image: error building stage: failed to execute command: \
                   waiting for process to exit: exit status 3";
    let (steps, parser, lines) = kaniko_timed("kaniko/fail.Dockerfile", "kaniko/failing_run.timestamps.log");
    assert_eq!(numbers(&steps), [1, 2, 3]);
    // Nothing was cached; the RUN before the failure ran, and its cache push never finished.
    assert_eq!(cached(&steps), [false, false, false]);
    assert_eq!(steps[2].instruction, "RUN echo about to fail && exit 3");
    assert_eq!(steps[2].error.as_deref(), Some(message));
    assert!(steps[..2].iter().all(|s| s.error.is_none()));
    assert_eq!(parser.error(), Some(message));
    assert_eq!(parser.current(), None, "a failed step is over");
    let lines: Vec<(Millis, &str)> = lines.iter().map(|(ms, l)| (*ms, l.as_str())).collect();
    assert_eq!(steps[2].started_ms + steps[2].duration_ms.unwrap(), time_of(&lines, "error building image"));
}

#[test]
fn kaniko_failure_in_the_final_stage_fails_that_step() {
    let (steps, parser) = parse(kaniko::log::parser, "kaniko/small-failing.Dockerfile", "kaniko/small_failing.log");
    // 1 FROM, 2 RUN, 3 COPY | 4 FROM, 5 COPY --from, 6 WORKDIR, 7 COPY app ., 8 RUN ... exit 3; 9 CMD never starts.
    assert_eq!(numbers(&steps), (1..=8).collect::<Vec<_>>());
    assert_instructions_match(&steps, "kaniko/small-failing.Dockerfile");
    assert!(steps[7].error.as_deref().unwrap().ends_with("exit status 3"));
    assert!(steps[..7].iter().all(|s| s.error.is_none()));
    assert!(parser.error().is_some());
}

#[test]
fn kaniko_multistage_build_with_run_output() {
    let (steps, parser) = parse(kaniko::log::parser, "kaniko/multistage.Dockerfile", "kaniko/multistage.log");
    assert_eq!(numbers(&steps), (1..=11).collect::<Vec<_>>());
    assert_eq!(cached(&steps), [false; 11]);
    // The RUN's own output (`first output line`) is not a kaniko line; `\n` stays as written.
    assert_instructions_match(&steps, "kaniko/multistage.Dockerfile");
    assert_no_errors(&steps);
    assert_eq!(parser.error(), None);
}

#[test]
fn kaniko_text_log_format_reports_the_same_hits() {
    let (steps, _) = parse(kaniko::log::parser, "kaniko/multistage.Dockerfile", "kaniko/multistage_text.log");
    assert_eq!(numbers(&steps), (1..=11).collect::<Vec<_>>());
    assert_eq!(cached(&steps), [false, true, false, false, true, false, false, false, false, true, false]);
    // msg="..." is Go-quoted: `\\n` in the log is `\n` in the RUN.
    assert_instructions_match(&steps, "kaniko/multistage.Dockerfile");
}

#[test]
fn kaniko_three_stages_each_start_with_their_from() {
    let (steps, _) = parse(kaniko::log::parser, "kaniko/small-3stage.Dockerfile", "kaniko/three_stage.log");
    assert_eq!(numbers(&steps), (1..=13).collect::<Vec<_>>());
    assert_eq!(cached(&steps), [false; 13]);
    assert_instructions_match(&steps, "kaniko/small-3stage.Dockerfile");
    assert_no_errors(&steps);
}

// ---- BuildKit, docker buildx build --progress=rawjson (buildx 0.13.1, Docker 26.1 dind) ----

/// Feeds a BuildKit log line by line (the times given do not matter: BuildKit's own are used).
fn buildkit_text(dockerfile_path: &str, log: &str) -> (Vec<ParsedStep>, BuildkitParser) {
    let mut parser = BuildkitParser::new(&dockerfile(dockerfile_path));
    for (i, line) in log.lines().enumerate() {
        parser.push_line(i as Millis, line);
    }
    (parser.finish(1_000_000), parser)
}

fn buildkit(dockerfile_path: &str, log_path: &str) -> (Vec<ParsedStep>, BuildkitParser) {
    buildkit_text(&format!("buildkit/{dockerfile_path}.Dockerfile"), &fixture(&format!("buildkit/{log_path}.log")))
}

/// The two stages of scenarios/small/Dockerfile: BuildKit runs no vertex for the final stage's
/// `FROM` (it is the builder's, one vertex), `ENV` and `CMD` (steps 5, 6 and 11).
const SMALL_STEPS: [u32; 8] = [1, 2, 3, 4, 7, 8, 9, 10];
const SMALL_EVERY_STEP_BUT_FROM: [bool; 8] = [false, true, true, true, true, true, true, true];
/// `FROM python:3.11-slim` as BuildKit resolved it through the mirror.
const RESOLVED_FROM: &str = "FROM docker.io/library/python:3.11-slim@sha256:2a77968415396f3ab3fd8fa5c8e497b8";

/// BuildKit prints the instruction as the Dockerfile has it, `FROM` resolved to a digest.
fn assert_buildkit_instructions(steps: &[ParsedStep], dockerfile_path: &str) {
    let dockerfile = dockerfile(&format!("buildkit/{dockerfile_path}.Dockerfile"));
    for step in steps {
        let (_, instruction) = dockerfile.step(step.step).unwrap_or_else(|| panic!("no step {}", step.step));
        if instruction.keyword() == "FROM" {
            assert!(step.instruction.starts_with(RESOLVED_FROM), "step {}: {}", step.step, step.instruction);
        } else {
            assert_eq!(step.instruction, instruction.text, "step {}", step.step);
        }
    }
}

fn assert_phases_classified(phases: &BuildkitPhases) {
    assert_eq!(phases.other_names, Vec::<String>::new(), "every vertex of the capture has a phase");
    assert_eq!(phases.unplaced_steps, Vec::<String>::new(), "every step vertex is a Dockerfile step");
}

#[test]
fn buildkit_registry_cold_build_runs_every_step() {
    let (steps, parser) = buildkit("small", "registry_cold");
    assert_eq!(numbers(&steps), SMALL_STEPS);
    assert_eq!(cached(&steps), [false; 8]);
    assert_buildkit_instructions(&steps, "small");
    assert_no_errors(&steps);
    // The first build's cache import finds nothing; BuildKit says so on the vertex and builds on.
    assert_eq!(parser.error(), None);
    let phases = parser.phases();
    assert_eq!(
        phases.cache_import_errors,
        ["failed to configure registry cache importer: registry:5000/t:buildcache: not found"]
    );
    assert_phases_classified(&phases);
}

#[test]
fn buildkit_registry_cache_in_a_fresh_daemon_serves_every_step() {
    let (steps, parser) = buildkit("small", "registry_warm");
    assert_eq!(numbers(&steps), SMALL_STEPS);
    assert_eq!(cached(&steps), SMALL_EVERY_STEP_BUT_FROM);
    assert_buildkit_instructions(&steps, "small");
    assert_eq!(parser.error(), None);
    assert_eq!(parser.phases().cache_import_errors, Vec::<String>::new());
    // The final RUN's vertex, cached, runs again during the export (its layer is pulled then):
    // the later update has no `cached` flag, and the step stays cached.
    let log = fixture("buildkit/registry_warm.log");
    // Listed, cached (running, then completed), run again (started, then completed).
    assert_eq!(log.matches(r#""name": "[stage-1 5/5] RUN ls /app \u003e /out/listing""#).count(), 5);
    assert_eq!(steps[7].duration_ms, Some(1786), "22.764 s (cached) to 24.551 s (pulled)");
}

#[test]
fn buildkit_shared_from_is_the_first_stage_whichever_stage_names_it() {
    // One vertex (same digest) for both stages' `FROM python:3.11-slim`, named after either.
    let digest = "sha256:f18d520fdd33d4be5f41f471b4980cfb1e4be3623c7b14eba8ef73397e9fc6ed";
    for (log, name) in [("registry_cold", "[builder 1/4] FROM"), ("registry_warm", "[stage-1 1/5] FROM")] {
        let text = fixture(&format!("buildkit/{log}.log"));
        let lines: Vec<&str> = text.lines().collect();
        let names: Vec<&str> =
            (1..lines.len()).filter(|&i| lines[i - 1].contains(&format!(r#""digest": "{digest}""#))).map(|i| lines[i]).collect();
        assert!(names.len() >= 3 && names.iter().all(|l| l.contains(name)), "{log}: {names:?}");
        assert!(!text.contains(if log == "registry_cold" { "[stage-1 1/5]" } else { "[builder 1/4]" }));
        let (steps, _) = buildkit("small", log);
        assert_eq!(steps[0].step, 1, "{log}");
        assert!(steps[0].instruction.starts_with(RESOLVED_FROM));
    }
}

#[test]
fn buildkit_inline_cache_cold_then_warm_in_a_fresh_daemon() {
    let (steps, parser) = buildkit("small", "inline_cold");
    assert_eq!(numbers(&steps), SMALL_STEPS);
    assert_eq!(cached(&steps), [false; 8]);
    let phases = parser.phases();
    assert_eq!(phases.cache_import_errors, ["failed to configure registry cache importer: registry:5000/i:latest: not found"]);
    // Inline cache: no `exporting cache to` vertex, only a status inside `exporting to image`.
    assert_eq!(phases.cache_export.vertexes, 0);
    assert_eq!(phases.cache_export.duration_ms, 49, "preparing layers for inline cache: 17.632 s to 17.682 s");

    // mode=min keeps only the final image's layers, yet BuildKit reports the builder stage cached
    // too: once `COPY --from=builder` hits, the builder's results are not needed and never run.
    let (steps, parser) = buildkit("small", "inline_warm");
    assert_eq!(numbers(&steps), SMALL_STEPS);
    assert_eq!(cached(&steps), SMALL_EVERY_STEP_BUT_FROM);
    assert_eq!(parser.phases().cache_import_errors, Vec::<String>::new());
}

#[test]
fn buildkit_late_copy_change_hits_up_to_the_copy_and_misses_after() {
    let (steps, _) = buildkit("small", "copy_change");
    assert_eq!(numbers(&steps), SMALL_STEPS);
    assert_eq!(cached(&steps), [false, true, true, true, true, true, false, false]);
    assert_eq!(steps[6].instruction, "COPY app .");
    // The cached WORKDIR runs again four times, pulling the layers the COPY needs: 52.732 s to 59.834 s.
    assert_eq!(steps[5].duration_ms, Some(7102));
}

#[test]
fn buildkit_local_cache_of_a_persistent_daemon_serves_every_step() {
    let (steps, parser) = buildkit("small", "local_warm");
    assert_eq!(numbers(&steps), SMALL_STEPS);
    assert_eq!(cached(&steps), SMALL_EVERY_STEP_BUT_FROM);
    // Cached vertexes start and complete at the same instant.
    assert!(steps[1..].iter().all(|s| s.duration_ms == Some(0)), "{steps:#?}");
    let phases = parser.phases();
    assert_eq!((phases.cache_import.vertexes, phases.cache_export.vertexes, phases.push.vertexes), (0, 0, 0));
    assert!(phases.export.duration_ms > 0);
}

#[test]
fn buildkit_failing_run_fails_its_step_and_the_build() {
    let (steps, parser) = buildkit("small-failing", "failing_run");
    let message = r#"process "/bin/sh -c echo about to fail && exit 3" did not complete successfully: exit code: 3"#;
    assert_eq!(numbers(&steps), [1, 2, 3, 5, 6, 7, 8]);
    assert_eq!(steps[6].instruction, "RUN echo about to fail && exit 3");
    assert_eq!(steps[6].error.as_deref(), Some(message));
    assert_eq!(steps[6].duration_ms, Some(221), "08.612 s to 08.833 s");
    assert!(steps[..6].iter().all(|s| s.error.is_none()));
    // The base was already in this daemon: BuildKit flags the FROM vertex cached.
    assert_eq!(cached(&steps), [true, false, false, false, false, false, false]);
    assert_eq!(parser.error(), Some(message), "the vertex's error came first");
    assert_eq!(parser.current(), None);
}

/// buildx's own `ERROR:` line after the JSON: the build's error even when no vertex carried one.
#[test]
fn buildkit_buildx_error_line_is_the_error() {
    let log = fixture("buildkit/failing_run.log");
    let tail = &log[log.rfind("\n}\n").unwrap() + 3..];
    assert!(tail.starts_with("Dockerfile.failing:10\n"), "the Dockerfile excerpt follows the JSON");
    let mut parser = BuildkitParser::new(&dockerfile("buildkit/small-failing.Dockerfile"));
    for line in tail.lines() {
        parser.push_line(0, line);
    }
    assert_eq!(
        parser.error(),
        Some(r#"failed to solve: process "/bin/sh -c echo about to fail && exit 3" did not complete successfully: exit code: 3"#)
    );
    assert_eq!(parser.finish(0), []);
}

#[test]
fn buildkit_three_stages_name_the_unnamed_one_by_index() {
    let (steps, parser) = buildkit("small-3stage", "three_stage");
    // deps: FROM RUN COPY; builder: (FROM shared) COPY RUN; stage-2: (FROM) COPY WORKDIR COPY RUN.
    assert_eq!(numbers(&steps), [1, 2, 3, 5, 6, 9, 10, 11, 12]);
    assert_eq!(cached(&steps), [false; 9]);
    assert_buildkit_instructions(&steps, "small-3stage");
    let log = fixture("buildkit/three_stage.log");
    assert!(log.contains("[deps 1/3] FROM") && log.contains("[builder 3/3] RUN") && log.contains("[stage-2 5/5] RUN"));
    assert_phases_classified(&parser.phases());
}

#[test]
fn buildkit_flask_cold_build_with_real_installs() {
    let (steps, parser) = buildkit("flask", "flask_cold");
    // ENV (3, 4, 8, 9), EXPOSE, ENV and CMD (13-15) and the final stage's FROM (7) run no vertex.
    assert_eq!(numbers(&steps), [1, 2, 5, 6, 10, 11, 12]);
    assert_eq!(cached(&steps), [false; 7]);
    assert_eq!(steps[4].instruction, "COPY --from=builder /venv /venv", "BuildKit expands $VENV");
    // apt-get: 10:18:00.7264176 to 10:18:32.197282947 in BuildKit's times.
    assert_eq!(steps[1].duration_ms, Some(31_470));
    assert!(steps[1].instruction.starts_with("RUN apt-get update"));
    let phases = parser.phases();
    assert_eq!(phases.cache_export.duration_ms, 22_138, "exporting cache to registry: 21.455 s to 43.593 s");
    assert_phases_classified(&phases);
}

/// Durations are BuildKit's `completed - started`; `started_ms` counts from the log's first vertex start.
#[test]
fn buildkit_durations_and_starts_come_from_vertex_timestamps() {
    let (steps, _) = buildkit("small", "registry_cold");
    // `[builder 2/4] RUN`: started 10:14:22.588742737, completed 10:14:25.665932373; the first vertex
    // (`load build definition`) started 10:14:13.702046633.
    assert_eq!(steps[1].started_ms, 8_886);
    assert_eq!(steps[1].duration_ms, Some(3_077));
    // The FROM vertex restarts five times (resolve, pull, extract): first start to last completion.
    assert_eq!((steps[0].started_ms, steps[0].duration_ms), (260, Some(8_193)));
    let started: Vec<Millis> = steps.iter().map(|s| s.started_ms).collect();
    assert!(started.windows(2).all(|w| w[0] <= w[1]), "one stage after the other: {started:?}");
}

#[test]
fn buildkit_vertex_repeated_as_it_updates_is_one_step() {
    let log = fixture("buildkit/registry_cold.log");
    let name = r#""name": "[builder 2/4] RUN mkdir -p /out \u0026\u0026 echo built \u003e /out/a \u0026\u0026 date +%s%N \u003e /out/built-at""#;
    // Once listed, once started, once started and completed.
    assert_eq!(log.matches(name).count(), 3);
    let (steps, _) = buildkit("small", "registry_cold");
    assert_eq!(steps.iter().filter(|s| s.step == 2).count(), 1);
    assert_eq!(steps[1].instruction, "RUN mkdir -p /out && echo built > /out/a && date +%s%N > /out/built-at");
}

#[test]
fn buildkit_current_step_follows_the_running_vertex() {
    let mut parser = BuildkitParser::new(&dockerfile("buildkit/small.Dockerfile"));
    let mut running = vec![];
    for line in fixture("buildkit/registry_cold.log").lines() {
        parser.push_line(0, line);
        let now = parser.current().map(|s| s.step);
        if running.last() != Some(&now) {
            running.push(now);
        }
    }
    let mut expected = vec![None];
    // The FROM vertex runs four times before the pull and extraction end.
    for step in [1, 1, 1, 1, 2, 3, 4, 7, 8, 9, 10] {
        expected.extend([Some(step), None]);
    }
    assert_eq!(running, expected);
}

fn steps_fed(dockerfile_path: &str, pieces: impl IntoIterator<Item = String>) -> Vec<ParsedStep> {
    let mut parser = BuildkitParser::new(&dockerfile(dockerfile_path));
    for piece in pieces {
        parser.push_line(0, &piece);
    }
    parser.finish(0)
}

#[test]
fn buildkit_pretty_compact_and_chunked_input_parse_alike() {
    let log = fixture("buildkit/registry_cold.log");
    let (expected, _) = buildkit("small", "registry_cold");
    assert!(log.lines().count() > 1000, "pretty-printed: one object over many lines");
    // The whole log as one chunk, and chunks of 7 lines.
    assert_eq!(steps_fed("buildkit/small.Dockerfile", [log.clone()]), expected);
    let lines: Vec<&str> = log.lines().collect();
    let chunks = lines.chunks(7).map(|c| c.iter().map(|l| format!("{l}\n")).collect::<String>());
    assert_eq!(steps_fed("buildkit/small.Dockerfile", chunks), expected);
    // The same objects compact, one per line, and two to a line.
    let objects: Vec<String> = serde_json::Deserializer::from_str(&log)
        .into_iter::<serde_json::Value>()
        .map(|v| v.unwrap().to_string())
        .collect();
    assert!(objects.len() > 90);
    assert_eq!(steps_fed("buildkit/small.Dockerfile", objects.clone()), expected);
    let pairs = objects.chunks(2).map(|pair| pair.concat());
    assert_eq!(steps_fed("buildkit/small.Dockerfile", pairs), expected);
}

/// `registry_cold.log` cut inside the object in which `[stage-1 5/5] RUN` completes.
fn cut_before_last_run_completes(log: &str) -> (Vec<&str>, Vec<&str>) {
    let lines: Vec<&str> = log.lines().collect();
    let name = lines.iter().rposition(|l| l.contains(r#""name": "[stage-1 5/5] RUN ls /app"#)).unwrap();
    assert!(lines[name + 2].contains(r#""completed""#), "{}", lines[name + 2]);
    let next_object = name + lines[name..].iter().position(|l| *l == "{").unwrap();
    (lines[..=name].to_vec(), lines[next_object..].to_vec())
}

#[test]
fn buildkit_truncated_last_object_is_dropped() {
    let log = fixture("buildkit/registry_cold.log");
    let (head, _) = cut_before_last_run_completes(&log);
    let mut parser = BuildkitParser::new(&dockerfile("buildkit/small.Dockerfile"));
    for line in &head {
        parser.push_line(0, line);
    }
    assert_eq!(parser.current().map(|s| s.step), Some(10), "the last RUN had started");
    let steps = parser.finish(0);
    assert_eq!(parser.current(), None);
    assert_eq!(numbers(&steps), SMALL_STEPS);
    assert_eq!(steps[7].duration_ms, None, "its completion was in the cut-off object");
    assert!(steps[..7].iter().all(|s| s.duration_ms.is_some()));
    assert_eq!(parser.error(), None);
}

#[test]
fn buildkit_truncated_object_followed_by_more_output_resumes() {
    // A cut-off object, then the next object at column 0: the later objects still count.
    let log = fixture("buildkit/registry_cold.log");
    let (head, tail) = cut_before_last_run_completes(&log);
    let text = [head, tail].concat().join("\n");
    let (steps, parser) = buildkit_text("buildkit/small.Dockerfile", &text);
    assert_eq!(steps[7].duration_ms, None);
    let phases = parser.phases();
    assert!(phases.export.duration_ms > 0 && phases.push.duration_ms > 0, "{phases:?}");

    // A cut-off object, then buildx's error text.
    let log = fixture("buildkit/failing_run.log");
    let lines: Vec<&str> = log.lines().collect();
    let error_vertex = lines.iter().rposition(|l| l.contains(r#""error": "process"#)).unwrap();
    let excerpt = lines.iter().position(|l| l.starts_with("Dockerfile.failing:")).unwrap();
    let text = [&lines[..error_vertex], &lines[excerpt..]].concat().join("\n");
    let (steps, parser) = buildkit_text("buildkit/small-failing.Dockerfile", &text);
    assert_eq!(numbers(&steps), [1, 2, 3, 5, 6, 7, 8]);
    assert_eq!(steps[6].error, None, "the vertex's error was in the cut-off object");
    assert!(parser.error().is_some_and(|e| e.starts_with("failed to solve: process")), "{:?}", parser.error());
}

#[test]
fn buildkit_phases_of_each_capture() {
    // Vertexes in context, cache import, cache export, export, push; then which took time. The
    // inline cache export is no vertex but a status inside `exporting to image`.
    let cases = [
        ("registry_cold", [4, 1, 1, 1, 1], [true; 5]),
        ("registry_warm", [4, 1, 1, 1, 1], [true; 5]),
        ("copy_change", [4, 1, 1, 1, 1], [true; 5]),
        ("inline_cold", [4, 1, 0, 1, 1], [true; 5]),
        ("inline_warm", [4, 1, 0, 1, 1], [true; 5]),
        ("local_warm", [4, 0, 0, 1, 0], [true, false, false, true, false]),
        ("failing_run", [4, 0, 0, 0, 0], [true, false, false, false, false]),
    ];
    for (log, counts, busy) in cases {
        let dockerfile = if log == "failing_run" { "small-failing" } else { "small" };
        let (_, parser) = buildkit(dockerfile, log);
        let p = parser.phases();
        let phases = [p.context, p.cache_import, p.cache_export, p.export, p.push];
        assert_eq!(phases.map(|t| t.vertexes), counts, "{log}");
        assert_eq!(phases.map(|t| t.duration_ms > 0), busy, "{log}: {p:?}");
        assert_phases_classified(&p);
        let span = p.last_completed_unix_ms.unwrap() - p.first_started_unix_ms.unwrap();
        assert!(p.steps.duration_ms <= span, "{log}");
    }
}

#[test]
fn buildkit_push_inside_the_export_counts_as_push() {
    let (_, parser) = buildkit("small", "registry_cold");
    let p = parser.phases();
    // `exporting to image` 27.204 s to 29.375 s; inside it `pushing layers` from 27.828 s and
    // `pushing manifest for ...` to 29.375 s; then `pushing ... with docker` 29.868 s to 29.954 s.
    assert_eq!(p.export.duration_ms, 624);
    assert_eq!(p.push.duration_ms, 1_632);
    assert_eq!(p.cache_import.duration_ms, 11, "importing cache manifest: 13.959 s to 13.971 s");
    assert_eq!(p.cache_export.duration_ms, 395, "exporting cache to registry: 29.375 s to 29.771 s");
    assert_eq!(p.first_started_unix_ms, Some(1_796_206_453_702));
    assert_eq!(p.last_completed_unix_ms, Some(1_796_206_469_954));
}

// Hand-written objects, for what no capture shows.

fn vertex_json(digest: &str, name: &str, started: &str, completed: &str) -> String {
    format!(
        r#"{{"vertexes":[{{"digest":"sha256:{digest}","name":"{name}","started":"2026-12-02T10:00:{started}Z","completed":"2026-12-02T10:00:{completed}Z"}}]}}"#
    )
}

#[test]
fn buildkit_time_going_backwards_gives_no_duration() {
    // A single-stage Dockerfile: `[k/M]` without a stage name.
    let log = [
        vertex_json("a", "[1/2] FROM docker.io/library/a", "00.500", "01.000"),
        vertex_json("b", "[2/2] RUN x", "02.000", "01.500"),
    ]
    .join("\n");
    let mut parser = BuildkitParser::new(&Dockerfile::parse("FROM a\nENV X=1\nRUN x\n").unwrap());
    parser.push_line(0, &log);
    let steps = parser.finish(0);
    assert_eq!(numbers(&steps), [1, 3]);
    assert_eq!((steps[0].started_ms, steps[0].duration_ms), (0, Some(500)));
    assert_eq!((steps[1].started_ms, steps[1].duration_ms), (1_500, None), "never clamped to 0");
}

#[test]
fn buildkit_parallel_vertexes_of_a_phase_count_once_and_unknown_ones_are_listed() {
    let log = [
        vertex_json("a", "pushing registry:5000/a:1 with docker", "00.000", "01.000"),
        vertex_json("b", "pushing registry:5000/b:1 with docker", "00.500", "01.500"),
        vertex_json("c", "[internal] helper image for file operations", "00.000", "00.250"),
        vertex_json("d", "[builder 9/9] RUN not in this Dockerfile", "00.000", "00.100"),
    ]
    .join("\n");
    let (_, parser) = buildkit_text("buildkit/small.Dockerfile", &log);
    let p = parser.phases();
    assert_eq!((p.push.duration_ms, p.push.vertexes), (1_500, 2));
    assert_eq!(p.other_names, ["[internal] helper image for file operations"]);
    assert_eq!(p.other.duration_ms, 250);
    assert_eq!(p.unplaced_steps, ["[builder 9/9] RUN not in this Dockerfile"]);
}

// ---- BuildKit, buildctl build --progress=rawjson (BuildKit v0.34.2, standalone buildkitd) ----

/// `FROM python:3.11-slim` as the v0.34.2 daemon resolved it through the mirror (the base stand-in
/// was rebuilt after the buildx captures, hence another digest).
const BUILDCTL_RESOLVED_FROM: &str = "FROM docker.io/library/python:3.11-slim@sha256:d14e1291149cee9a2c64e2c5ba81cad4";

/// buildctl's rawjson: one compact object per line, nothing else unless the build failed.
fn buildctl(dockerfile_path: &str, log_path: &str) -> (Vec<ParsedStep>, BuildkitParser) {
    let log = fixture(&format!("buildkit/{log_path}.log"));
    let objects = log.lines().take_while(|l| l.starts_with('{')).count();
    assert!(objects > 30, "{log_path}: {objects} objects");
    assert!(log.lines().take(objects).all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok()), "{log_path}");
    buildkit(dockerfile_path, log_path)
}

fn assert_buildctl_instructions(steps: &[ParsedStep], dockerfile_path: &str) {
    let dockerfile = dockerfile(&format!("buildkit/{dockerfile_path}.Dockerfile"));
    for step in steps {
        let (_, instruction) = dockerfile.step(step.step).unwrap_or_else(|| panic!("no step {}", step.step));
        if instruction.keyword() == "FROM" {
            assert!(step.instruction.starts_with(BUILDCTL_RESOLVED_FROM), "step {}: {}", step.step, step.instruction);
        } else {
            assert_eq!(step.instruction, instruction.text, "step {}", step.step);
        }
    }
}

/// Cache import, cache export and push as the harness takes them out of the build command.
fn harness_phases(parser: &BuildkitParser) -> Vec<(layerbench::strategy::Phase, Millis)> {
    LogParser::phases(parser)
}

#[test]
fn buildctl_cold_build_runs_every_step() {
    let (steps, parser) = buildctl("small", "buildctl_cold");
    assert_eq!(numbers(&steps), SMALL_STEPS);
    assert_eq!(cached(&steps), [false; 8]);
    assert_buildctl_instructions(&steps, "small");
    assert_no_errors(&steps);
    assert_eq!(parser.error(), None);
    let phases = parser.phases();
    assert_eq!(
        phases.cache_import_errors,
        ["failed to configure registry cache importer: registry:5000/s/app:buildcache: not found"]
    );
    assert_phases_classified(&phases);
    // The base is pulled from the mirror and extracted under the FROM vertex: 55.037656 s to 02.647541 s.
    assert_eq!(steps[0].duration_ms, Some(7_609));
}

#[test]
fn buildctl_registry_cache_in_a_fresh_daemon_serves_every_step() {
    let (steps, parser) = buildctl("small", "buildctl_warm_registry");
    assert_eq!(numbers(&steps), SMALL_STEPS);
    assert_eq!(cached(&steps), SMALL_EVERY_STEP_BUT_FROM);
    assert_buildctl_instructions(&steps, "small");
    assert_eq!(parser.error(), None);
    assert_eq!(parser.phases().cache_import_errors, Vec::<String>::new());
    // Every layer the push needs is in the registry already: the base is resolved, never pulled.
    let log = fixture("buildkit/buildctl_warm_registry.log");
    assert!(!log.contains(r#""id":"extracting sha256:"#));
    assert!(log.contains(r#""id":"inferred cache manifest type: application/vnd.oci.image.manifest.v1+json""#));
}

/// The daemon of `buildctl_warm_registry.log`, the same build again without `--import-cache` and
/// `--export-cache`: what the registry cache served was never stored in the daemon's own cache.
#[test]
fn buildctl_registry_hits_leave_nothing_in_the_daemons_own_cache() {
    let (steps, parser) = buildctl("small", "buildctl_shared_after_import");
    assert_eq!(numbers(&steps), SMALL_STEPS);
    assert_eq!(cached(&steps), [false; 8]);
    assert_buildctl_instructions(&steps, "small");
    let log = fixture("buildkit/buildctl_shared_after_import.log");
    assert!(log.contains(r#""id":"extracting sha256:"#), "the base is pulled now");
    let p = parser.phases();
    assert_eq!((p.cache_import.vertexes, p.cache_export.vertexes), (0, 0));
    assert_phases_classified(&p);
}

#[test]
fn buildctl_own_cache_of_the_same_daemon_serves_every_step() {
    let (steps, parser) = buildctl("small", "buildctl_shared_warm");
    assert_eq!(numbers(&steps), SMALL_STEPS);
    assert_eq!(cached(&steps), SMALL_EVERY_STEP_BUT_FROM);
    assert_buildctl_instructions(&steps, "small");
    // Cached vertexes start and complete at the same instant.
    assert!(steps[1..].iter().all(|s| s.duration_ms == Some(0)), "{steps:#?}");
    assert_eq!(parser.error(), None);
}

#[test]
fn buildctl_failing_run_fails_its_step_and_the_build() {
    let (steps, parser) = buildctl("small-failing", "buildctl_failing_run");
    let message = r#"process "/bin/sh -c echo about to fail && exit 3" did not complete successfully: exit code: 3"#;
    assert_eq!(numbers(&steps), [1, 2, 3, 5, 6, 7, 8]);
    assert_eq!(steps[6].instruction, "RUN echo about to fail && exit 3");
    assert_eq!(steps[6].error.as_deref(), Some(message));
    assert!(steps[..6].iter().all(|s| s.error.is_none()));
    // The base was already in this daemon (`buildctl_shared_warm.log`); the other steps differ
    // from the small Dockerfile's from the builder stage's RUN on.
    assert_eq!(cached(&steps), [true, false, false, false, false, false, false]);
    assert_eq!(parser.error(), Some(message), "the vertex's error came first");
    assert_eq!(parser.current(), None);
    assert!(parser.phases().cache_import_errors.is_empty());
}

/// buildctl's own `error: ` line after the Dockerfile excerpt: the build's error even when no
/// vertex carried one.
#[test]
fn buildctl_error_line_is_the_error() {
    let log = fixture("buildkit/buildctl_failing_run.log");
    let tail: Vec<&str> = log.lines().skip_while(|l| l.starts_with('{')).collect();
    assert_eq!(tail[0], "Dockerfile.failing:10", "the Dockerfile excerpt follows the JSON");
    assert_eq!(tail.len(), 9);
    let mut parser = BuildkitParser::new(&dockerfile("buildkit/small-failing.Dockerfile"));
    for line in &tail {
        parser.push_line(0, line);
    }
    let message = r#"process "/bin/sh -c echo about to fail && exit 3" did not complete successfully: exit code: 3"#;
    assert_eq!(parser.error(), Some(format!("failed to solve: {message}").as_str()));
    assert_eq!(parser.finish(0), []);
}

#[test]
fn buildctl_phases_of_each_capture() {
    // Vertexes, then statuses inside another phase's vertex, in context, cache import, cache
    // export, export, push. buildctl pushes from inside `exporting to image`: no push vertex.
    let cases = [
        ("buildctl_cold", [4, 1, 1, 1, 0], [0, 0, 0, 0, 3]),
        ("buildctl_warm_registry", [4, 1, 1, 1, 0], [0, 0, 0, 0, 3]),
        ("buildctl_shared_after_import", [4, 0, 0, 1, 0], [0, 0, 0, 0, 3]),
        ("buildctl_shared_warm", [4, 0, 0, 1, 0], [0, 0, 0, 0, 3]),
        ("buildctl_failing_run", [4, 1, 0, 0, 0], [0, 0, 0, 0, 0]),
    ];
    for (log, vertexes, statuses) in cases {
        let dockerfile = if log == "buildctl_failing_run" { "small-failing" } else { "small" };
        let (_, parser) = buildctl(dockerfile, log);
        let p = parser.phases();
        let phases = [p.context, p.cache_import, p.cache_export, p.export, p.push];
        assert_eq!(phases.map(|t| t.vertexes), vertexes, "{log}");
        assert_eq!(phases.map(|t| t.statuses), statuses, "{log}");
        assert_phases_classified(&p);
        let span = p.last_completed_unix_ms.unwrap() - p.first_started_unix_ms.unwrap();
        assert!(p.steps.duration_ms <= span, "{log}");
        // What the harness gets: only phases BuildKit reported, never longer together than the build.
        let reported: Vec<_> = harness_phases(&parser).into_iter().map(|(phase, _)| phase).collect();
        use layerbench::strategy::Phase as P;
        let expected: &[P] = match (vertexes[1], vertexes[2], statuses[4]) {
            (1, 1, 3) => &[P::CacheImport, P::CacheExport, P::Push],
            (0, 0, 3) => &[P::Push],
            _ => &[P::CacheImport],
        };
        assert_eq!(reported, expected, "{log}");
        assert!(harness_phases(&parser).iter().map(|(_, ms)| ms).sum::<Millis>() <= span, "{log}");
    }
}

/// BuildKit v0.34 pushes the image (inside `exporting to image`) while it exports the cache. Each
/// kind of work keeps its own time; the harness gets the overlap once, as push.
#[test]
fn buildctl_push_and_cache_export_run_together_and_the_harness_counts_them_once() {
    use layerbench::strategy::Phase as P;
    let (_, parser) = buildctl("small", "buildctl_cold");
    let p = parser.phases();
    // `importing cache manifest`: 55.036153 s to 55.043504 s.
    assert_eq!(p.cache_import.duration_ms, 7);
    // `exporting cache to registry`: 04.765985 s to 06.433171 s.
    assert_eq!(p.cache_export.duration_ms, 1_667);
    // `pushing layers` 04.767202 s to 06.430570 s, then the two `pushing manifest for` to 06.448131 s.
    assert_eq!(p.push.duration_ms, 1_680);
    // `exporting to image` 04.671113 s to 06.448137 s, less the push inside it.
    assert_eq!(p.export.duration_ms, 96);
    assert_eq!(p.first_started_unix_ms, Some(1_796_268_054_896));
    assert_eq!(p.last_completed_unix_ms, Some(1_796_268_066_448));
    // The cache export ran alone only before the push started (1.2 ms) and between two pushes.
    assert_eq!(harness_phases(&parser), [(P::CacheImport, 7), (P::CacheExport, 1), (P::Push, 1_680)]);

    // buildx 0.13 ran them one after the other: the harness gets each phase's own time.
    let (_, parser) = buildkit("small", "registry_cold");
    let p = parser.phases();
    let own = [p.cache_import, p.cache_export, p.push].map(|t| t.duration_ms);
    assert_eq!(harness_phases(&parser), [(P::CacheImport, own[0]), (P::CacheExport, own[1]), (P::Push, own[2])]);
}

#[test]
fn buildctl_and_buildx_logs_of_the_same_build_agree_on_hits() {
    // The same Dockerfile, no change, a fresh daemon on the registry cache: buildx (Docker 26.1's
    // BuildKit) and buildctl (v0.34.2) report the same steps, all cached but the FROM.
    let (buildx, _) = buildkit("small", "registry_warm");
    let (buildctl, _) = buildctl("small", "buildctl_warm_registry");
    assert_eq!(numbers(&buildx), numbers(&buildctl));
    assert_eq!(cached(&buildx), cached(&buildctl));
    let instructions = |steps: &[ParsedStep]| steps[1..].iter().map(|s| s.instruction.clone()).collect::<Vec<_>>();
    assert_eq!(instructions(&buildx), instructions(&buildctl));
}

/// A log streamed in chunks whose last line has no newline (a builder that exits mid-line): the last line
/// is still read, once, as the job log's last words; every line before it is read whole.
#[test]
fn a_last_line_without_a_newline_is_read() {
    use layerbench::builder::log::LineBuffer;
    let stamped = fixture("kaniko/warm.timestamps.log");
    let log = stamped.trim_end_matches('\n');
    let chunks: Vec<String> = log.as_bytes().chunks(37).map(|c| String::from_utf8_lossy(c).into_owned()).collect();
    // The fixture is ASCII, so 37-byte chunks never split a character.
    assert_eq!(chunks.concat(), log);
    let mut buffer = LineBuffer::default();
    let mut lines: Vec<String> = chunks.iter().flat_map(|c| buffer.push(c)).collect();
    lines.extend(buffer.rest());
    assert_eq!(lines, log.lines().collect::<Vec<_>>());
    assert_eq!(buffer.rest(), None, "read once");
    let (steps, _) = parse_lines(kaniko::log::parser, "kaniko/small.Dockerfile", &lines);
    assert_eq!(numbers(&steps), KANIKO_SMALL_STEPS.collect::<Vec<_>>());
}

fn parse_lines(parser_of: ParserOf, dockerfile_path: &str, lines: &[String]) -> (Vec<ParsedStep>, Box<dyn LogParser>) {
    let mut parser = parser_of(&dockerfile(dockerfile_path));
    let mut clock = layerbench::builder::log::LogClock::default();
    for line in lines {
        let (ms, text) = split_docker_timestamp(line).expect("a stamped line");
        parser.push_line(clock.at(ms), text);
    }
    let end = clock.last_ms();
    (parser.finish(end), parser)
}
