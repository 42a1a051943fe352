//! Throughput of each builder-log parser over a large log made by repeating and renumbering
//! the captured fixtures (tests/fixtures/builder_log/), fed line by line as a job would.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use layerbench::builder::log::split_docker_timestamp;
use layerbench::builder::log::ParserOf;
use layerbench::builder::{buildah, buildkit, classic, kaniko};
use layerbench::scenario::Dockerfile;
use layerbench::Millis;

/// Copies of each fixture's stages: 2 stages of 5 and 6 steps, so 11 000 steps.
const REPEATS: usize = 1_000;

fn fixture(path: &str) -> String {
    let full = format!("{}/tests/fixtures/builder_log/{path}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("read {full}: {e}"))
}

/// The log's lines without `#` comments or `docker logs --timestamps` prefixes.
fn bare_lines(log: &str) -> Vec<String> {
    log.lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| split_docker_timestamp(l).map_or(l, |(_, text)| text).to_string())
        .collect()
}

/// The Dockerfile's stages `copies` times over, stage names made unique.
fn repeated_dockerfile(path: &str, copies: usize) -> Dockerfile {
    let text = fixture(path);
    let mut out = String::new();
    for copy in 0..copies {
        out.push_str(&text.replace(" AS builder", &format!(" AS builder{copy}")));
        out.push('\n');
    }
    Dockerfile::parse(&out).expect("the repeated fixture Dockerfile parses")
}

/// Prefixes each line with a docker-logs timestamp, 3 ms apart.
fn timestamped(lines: &[String]) -> String {
    let start = chrono::DateTime::parse_from_rfc3339("2026-11-27T19:05:00.000000000Z").unwrap();
    let mut out = String::new();
    for (i, line) in lines.iter().enumerate() {
        let at = start + chrono::Duration::milliseconds(3 * i as i64);
        out.push_str(&at.format("%Y-%m-%dT%H:%M:%S%.9fZ ").to_string());
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// Classic: the step blocks of three real builds (cached, executed, multi-line RUN output),
/// renumbered into one build of `steps` steps.
fn classic_log(steps: usize) -> String {
    let mut blocks: Vec<(String, Vec<String>)> = vec![];
    for path in ["classic/multistage.log", "classic/multiline_run.log", "classic/partial_cache.log"] {
        for line in bare_lines(&fixture(path)) {
            if let Some((_, instruction)) = line.split_once(" : ").filter(|_| line.starts_with("Step ")) {
                blocks.push((instruction.to_string(), vec![]));
            } else if let Some((_, body)) = blocks.last_mut().filter(|_| !line.starts_with("Successfully")) {
                body.push(line);
            }
        }
    }
    let mut log = String::from("Sending build context to Docker daemon  6.144kB\n");
    for step in 1..=steps {
        let (instruction, body) = &blocks[step % blocks.len()];
        log.push_str(&format!("Step {step}/{steps} : {instruction}\n"));
        for line in body {
            log.push_str(line);
            log.push('\n');
        }
    }
    log.push_str("Successfully built 30a28b83837b\nSuccessfully tagged app:1\n");
    log
}

/// buildah: the cold and the remote-cache builds in turns, stages renumbered `[x/y]`.
fn buildah_log() -> String {
    let stages = 2 * REPEATS;
    let mut lines = vec![];
    for copy in 0..REPEATS {
        let path = if copy % 2 == 0 { "buildah/cold.log" } else { "buildah/remote_cache.log" };
        let last = copy + 1 == REPEATS;
        for line in bare_lines(&fixture(path)) {
            let renumbered = match (line.strip_prefix("[1/2] "), line.strip_prefix("[2/2] ")) {
                (Some(rest), _) => format!("[{}/{stages}] {rest}", 2 * copy + 1),
                (_, Some(rest)) => format!("[{}/{stages}] {rest}", 2 * copy + 2),
                _ => line,
            };
            // The image is committed and tagged once, at the end.
            if !last && renumbered.contains("] COMMIT ") {
                break;
            }
            lines.push(renumbered);
        }
    }
    timestamped(&lines)
}

/// kaniko: the hand-written cold build (see its header), stage indices renumbered.
fn kaniko_log() -> String {
    let fixture_lines = bare_lines(&fixture("kaniko/cold.log"));
    let second_stage = fixture_lines.iter().position(|l| l.contains("Deleting filesystem...")).unwrap() + 1;
    let push = fixture_lines.iter().position(|l| l.contains("Pushing image to registry:5000/app:latest")).unwrap();
    let mut lines = vec![];
    for copy in 0..REPEATS {
        let stages = [(0, &fixture_lines[..second_stage]), (1, &fixture_lines[second_stage..push])];
        for (stage, chunk) in stages {
            let from = format!("[idx: '{stage}'");
            let to = format!("[idx: '{}'", 2 * copy + stage);
            lines.extend(chunk.iter().map(|l| l.replace(&from, &to)));
        }
    }
    lines.extend(fixture_lines[push..].iter().cloned());
    timestamped(&lines)
}

/// Copies of the BuildKit fixture: 8 step vertexes each (4 builder, 4 final), so 11 000 steps.
const BUILDKIT_REPEATS: usize = 1_375;

/// BuildKit: the captured cold registry-cache build, once per copy of the Dockerfile, stages and
/// digests renumbered so that every copy's vertexes are new ones.
fn buildkit_log() -> String {
    let log = fixture("buildkit/registry_cold.log");
    let mut out = String::with_capacity(log.len() * BUILDKIT_REPEATS);
    for copy in 0..BUILDKIT_REPEATS {
        out.push_str(
            &log.replace("[builder ", &format!("[builder{copy} "))
                .replace("[stage-1 ", &format!("[stage-{} ", 2 * copy + 1))
                .replace("\"sha256:", &format!("\"sha256:{copy:05}")),
        );
    }
    out
}

fn parse(parser_of: ParserOf, dockerfile: &Dockerfile, log: &str, timestamps: bool) -> usize {
    let mut parser = parser_of(dockerfile);
    let mut first_ms = None;
    let mut last_ms: Millis = 0;
    for line in log.lines() {
        let (at_ms, text) = match split_docker_timestamp(line).filter(|_| timestamps) {
            Some((ms, text)) => (ms - *first_ms.get_or_insert(ms), text),
            None => (last_ms, line),
        };
        last_ms = at_ms;
        parser.push_line(at_ms, text);
    }
    parser.finish(last_ms).len()
}

fn parsers(c: &mut Criterion) {
    let cases = [
        ("classic", classic::log::parser as ParserOf, repeated_dockerfile("classic/multistage.Dockerfile", 1), classic_log(11_000), false),
        ("buildah", buildah::log::parser, repeated_dockerfile("buildah/multistage.Dockerfile", REPEATS), buildah_log(), true),
        ("kaniko", kaniko::log::parser, repeated_dockerfile("kaniko/multistage.Dockerfile", REPEATS), kaniko_log(), true),
        ("buildkit", buildkit::log::parser, repeated_dockerfile("buildkit/small.Dockerfile", BUILDKIT_REPEATS), buildkit_log(), false),
    ];
    let mut group = c.benchmark_group("parse");
    for (name, format, dockerfile, log, timestamps) in &cases {
        // Measure only a log the parser reads right: every step found.
        assert_eq!(parse(*format, dockerfile, log, *timestamps), 11_000, "{name}: steps found");
        group.throughput(Throughput::Bytes(log.len() as u64));
        group.bench_function(*name, |b| b.iter(|| parse(*format, dockerfile, black_box(log), *timestamps)));
    }
    group.finish();
}

criterion_group! {
    name = benches;
    // Short runs: this machine has two cores that other work shares.
    config = Criterion::default().sample_size(20).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    targets = parsers
}
criterion_main!(benches);
