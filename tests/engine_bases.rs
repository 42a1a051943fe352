//! The team's own Dockerfile, whatever it starts FROM: one real run of every strategy over a Dockerfile with two
//! different bases, both named through global `ARG`s: a Docker Hub name, served through each builder's Docker
//! Hub mirror setting, and another registry's, served by name from the run's mirror; only local images mapped
//! with `--base-image NAME=LOCAL` provide them (both tiny, so eleven jobs stay quick). And the one line a run
//! gives, before any job, for a base that cannot be had. The Python base and its stand-in go through every
//! other engine test; tests/history.rs checks how run.json records it.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use layerbench::results::{BaseServing, BaseSource, DigestKind, JobStatus};
use layerbench::session::{self, Ending, SessionError};
use layerbench::strategy::Strategy;
use layerbench::toolchain::{BaseMapping, ToolchainConfig};

/// The first base's name in the Dockerfile: a Docker Hub repository of a user, as a team's own base would be.
const FIRST: &str = "layerbench/test-first:1";
/// The second base's name: another registry than Docker Hub. Neither exists anywhere: only the mappings
/// provide them.
const SECOND: &str = "quay.io/layerbench-test/second:1";

/// Steps: 1 ARG, 2 ARG, 3 FROM ${FIRST}, 4 RUN, 5 FROM $SECOND, 6 COPY --from, 7 RUN, 8 CMD. Each stage's `RUN`
/// fails unless its builder got the base that stage's `FROM` names (each base's `/base` says which it is; the
/// bases hold nothing but a shell, so the steps use its builtins).
const DOCKERFILE: &str = "ARG FIRST=layerbench/test-first:1\nARG SECOND=quay.io/layerbench-test/second:1\n\
                          FROM ${FIRST} AS build\nRUN read v < /base && test \"$v\" = first && echo built > /built\n\
                          FROM $SECOND AS final\nCOPY --from=build /built /built\n\
                          RUN read v < /base && test \"$v\" = second && read b < /built && test \"$b\" = built\nCMD [\"/bin/sh\"]\n";

fn scenario(dir: &Path, dockerfile: &str) -> layerbench::scenario::Scenario {
    std::fs::create_dir_all(dir.join("ctx")).unwrap();
    std::fs::write(dir.join("ctx/Dockerfile"), dockerfile).unwrap();
    std::fs::write(dir.join("s.toml"), "name = \"bases\"\ncontext = \"ctx\"\niterations = 1\n[[pipeline]]\nname = \"cold\"\n").unwrap();
    layerbench::scenario::load(&dir.join("s.toml")).unwrap_or_else(|e| panic!("{e}"))
}

fn request<'a>(scenario: &'a layerbench::scenario::Scenario, strategies: Vec<Strategy>, root: &Path, toolchain: ToolchainConfig) -> session::Request<'a> {
    session::Request {
        scenario,
        strategies,
        iterations: 1,
        concurrency: vec![1],
        results_root: root.to_path_buf(),
        keep: false,
        toolchain,
        backend: session::BackendChoice::Docker,
    }
}

#[test]
fn two_bases_named_by_args_and_mapped_to_local_images_build_with_every_strategy() {
    let _engine = lock_engine();
    let dir = tempfile::tempdir().unwrap();
    let loaded = scenario(dir.path(), DOCKERFILE);
    let strategies: Vec<Strategy> = Strategy::all().collect();
    let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("engine-bases");
    let locals = ["first", "second"].map(|which| format!("layerbench-test/{which}-base:{}", std::process::id()));
    let (outcome, ids) = runtime().block_on(async {
        let docker = engine().await;
        let events = events(vec![]);
        let python = layerbench::toolchain::resolve_roles(&docker, &ToolchainConfig::default(), &Default::default(), &events).await.unwrap();
        let mut ids = vec![];
        for (local, marker) in locals.iter().zip(["first", "second"]) {
            ids.push(common::tiny_image(&docker, &python.base().name, local, &[], &[("/base", marker)]).await);
        }
        let base_map = [FIRST, SECOND].iter().zip(&locals).map(|(name, local)| BaseMapping { name: name.to_string(), local: local.clone() }).collect();
        let config = ToolchainConfig { base_map, ..ToolchainConfig::default() };
        let outcome = session::execute(&docker, &request(&loaded, strategies.clone(), &root, config), &events, std::future::pending()).await;
        let left = match &outcome {
            Ok(o) => leftovers(&o.run_id).await,
            Err(_) => 0,
        };
        for local in &locals {
            let _ = docker.remove_image(local, None::<bollard::query_parameters::RemoveImageOptions>, None).await;
        }
        assert_eq!(left, 0, "the run left labelled resources behind");
        (outcome.unwrap_or_else(|e| panic!("{e}")), ids)
    });
    assert!(matches!(outcome.ending, Ending::Finished(_)), "{:?}", outcome.ending);
    let results = &outcome.results_dir;

    // Every strategy built it, each stage's RUN proving its builder got the base its FROM names.
    let jobs = jobs(results);
    assert_eq!(jobs.len(), strategies.len(), "one cold job per strategy");
    for job in &jobs {
        assert_eq!(job.status, JobStatus::Ok, "{}: {}", job.strategy, job.error.as_deref().unwrap_or_default());
    }
    let steps = steps(results);
    for strategy in &strategies {
        let reported: Vec<(u32, Option<bool>)> = steps.iter().filter(|s| s.strategy == *strategy).map(|s| (s.step, s.cached)).collect();
        for step in [4, 7] {
            assert!(reported.contains(&(step, Some(false))), "{strategy}: its RUN {step} ran on a cold run: {reported:?}");
        }
        let froms: Vec<&str> = steps.iter().filter(|s| s.strategy == *strategy && s.instruction.starts_with("FROM")).map(|s| s.instruction.as_str()).collect();
        assert_eq!(froms, ["FROM ${FIRST} AS build", "FROM $SECOND AS final"], "{strategy}: the steps as the Dockerfile writes them");
    }

    // run.json: both bases, as written and as resolved, where each came from and how the builders got it.
    let info = layerbench::results::read_run_info(results).unwrap();
    let seen: Vec<_> = info
        .bases
        .iter()
        .map(|b| (b.name.as_str(), b.written.as_deref(), b.reference.as_str(), b.resolved.as_str(), b.source, b.served))
        .collect();
    assert_eq!(
        seen,
        [
            (FIRST, Some("${FIRST}"), "docker.io/layerbench/test-first:1", locals[0].as_str(), BaseSource::LocalImage, BaseServing::HubMirror),
            (SECOND, Some("$SECOND"), SECOND, locals[1].as_str(), BaseSource::LocalImage, BaseServing::RunMirror),
        ]
    );
    for (base, id) in info.bases.iter().zip(&ids) {
        assert_eq!((base.digest.as_ref(), base.digest_kind), (Some(id), Some(DigestKind::ImageId)), "{}: its local image ID, said as such", base.name);
    }

    // The report's Environment table shows both.
    let report = dir.path().join("report");
    let index = layerbench::report::generate(results, &report).unwrap();
    let html = std::fs::read_to_string(index).unwrap();
    let table = &html[html.find("<table id=\"bases\"").expect("the bases table")..];
    let table = &table[..table.find("</table>").unwrap()];
    assert!(table.contains(FIRST) && table.contains(SECOND) && table.contains("as Docker Hub") && table.contains("named in the FROM"), "{table}");
}

/// A base no mapping, local image or pull provides stops the run before anything of it exists, with one line
/// naming the image, where the Dockerfile names it, and both ways to provide it; a mapping to an image the
/// engine lacks says so. `.invalid` never resolves (RFC 2606), so the pull fails at once, online or not.
#[test]
fn a_base_that_cannot_be_had_fails_before_any_job_with_one_line() {
    let _engine = lock_engine();
    let dir = tempfile::tempdir().unwrap();
    let loaded = scenario(dir.path(), "ARG BASE=registry.invalid/layerbench/absent:1\nFROM $BASE\nRUN true\n");
    let root = dir.path().join("results");
    let strategies = vec![common::strategies::DAEMONLESS];
    let mapped = ToolchainConfig {
        base_map: vec![BaseMapping { name: "registry.invalid/layerbench/absent:1".into(), local: "layerbench-test/not-loaded:0".into() }],
        ..ToolchainConfig::default()
    };
    let errors: Vec<String> = runtime().block_on(async {
        let docker = engine().await;
        let mut errors = vec![];
        for config in [ToolchainConfig::default(), mapped] {
            let result = session::execute(&docker, &request(&loaded, strategies.clone(), &root, config), &events(vec![]), std::future::pending()).await;
            match result {
                Err(e @ SessionError::Base(_)) => errors.push(e.to_string()),
                other => panic!("expected a base error, got {other:?}"),
            }
        }
        errors
    });
    let site = format!("{}:2", dir.path().join("ctx/Dockerfile").display());
    assert!(
        errors[0].starts_with(&format!("base image registry.invalid/layerbench/absent:1 ({site}) cannot be had: the pull failed: ")),
        "{}",
        errors[0]
    );
    assert!(errors[0].contains("`docker load -i FILE`") && errors[0].contains("`--base-image registry.invalid/layerbench/absent:1=LOCAL_IMAGE`"), "{}", errors[0]);
    assert_eq!(
        errors[1],
        format!(
            "--base-image registry.invalid/layerbench/absent:1=layerbench-test/not-loaded:0: the engine has no image \
             layerbench-test/not-loaded:0 ({site} names registry.invalid/layerbench/absent:1); build it or `docker load` it first"
        )
    );
    for error in &errors {
        assert_eq!(error.lines().count(), 1, "{error}");
    }
    assert!(!root.exists() || std::fs::read_dir(&root).unwrap().next().is_none(), "no results directory: the run never started");
}
