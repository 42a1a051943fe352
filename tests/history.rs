//! `scenario from-git` on a repository built here with git2: the profile of commits that touch only code,
//! `requirements.txt`, rename, delete, flip an executable bit, touch nothing in the context, and edit the
//! Dockerfile; the scenario it writes and what `run` loads from it; each commit's tree as a context; the
//! one-line errors for a repository that cannot be read as asked; and one real engine run over the history
//! (shared-dind) with the cache pattern each commit gives.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use layerbench::history::profile::FirstChange;
use layerbench::history::scenario::{read, write, FromGit};
use layerbench::git::{History, Selection};
use layerbench::scenario::{self, Change};

/// Steps: 1 FROM, 2 COPY requirements.txt, 3 RUN, 4 COPY src/, 5 COPY run.sh, 6 CMD. Builds offline.
const DOCKERFILE: &str = "FROM python:3.11-slim\nCOPY requirements.txt .\nRUN wc -l requirements.txt > /deps\nCOPY src/ src/\nCOPY run.sh .\nCMD [\"./run.sh\"]\n";

struct Repo {
    dir: tempfile::TempDir,
    repo: git2::Repository,
}

impl Repo {
    fn new() -> Repo {
        let dir = tempfile::tempdir().unwrap();
        let repo = git2::Repository::init(dir.path()).unwrap();
        Repo { dir, repo }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn write(&self, rel: &str, content: &str) {
        let path = self.path().join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
    }

    fn chmod(&self, rel: &str, mode: u32) {
        std::fs::set_permissions(self.path().join(rel), std::fs::Permissions::from_mode(mode)).unwrap();
    }

    /// Commits the whole work tree as it is (additions, edits, deletions, modes).
    fn commit(&self, message: &str) -> String {
        let mut index = self.repo.index().unwrap();
        index.add_all(["*"], git2::IndexAddOption::DEFAULT, None).unwrap();
        index.update_all(["*"], None).unwrap();
        index.write().unwrap();
        let tree = self.repo.find_tree(index.write_tree().unwrap()).unwrap();
        let who = git2::Signature::new("layerbench test", "test@example.invalid", &git2::Time::new(1_700_000_000, 0)).unwrap();
        let parents: Vec<git2::Commit> = self.repo.head().ok().and_then(|h| h.peel_to_commit().ok()).into_iter().collect();
        let parents: Vec<&git2::Commit> = parents.iter().collect();
        self.repo.commit(Some("HEAD"), &who, &who, message, &tree, &parents).unwrap().to_string()
    }
}

/// The history the issue names, in `app/` of a repository that has a README outside it.
fn history() -> (Repo, Vec<String>) {
    let r = Repo::new();
    r.write("README.md", "# demo\n");
    r.write("app/Dockerfile", DOCKERFILE);
    r.write("app/requirements.txt", "flask==3.0.0\n");
    r.write("app/src/main.py", "print('hi')\n");
    r.write("app/src/util.py", "X = 1\n");
    r.write("app/run.sh", "#!/bin/sh\npython src/main.py\n");
    r.chmod("app/run.sh", 0o644);
    let mut ids = vec![r.commit("initial")];
    r.write("app/src/main.py", "print('hello')\n");
    ids.push(r.commit("code only"));
    r.write("app/requirements.txt", "flask==3.0.0\nitsdangerous==2.2.0\n");
    ids.push(r.commit("a dependency"));
    std::fs::rename(r.path().join("app/src/main.py"), r.path().join("app/src/app.py")).unwrap();
    ids.push(r.commit("rename main.py"));
    std::fs::remove_file(r.path().join("app/src/util.py")).unwrap();
    ids.push(r.commit("delete util.py"));
    r.chmod("app/run.sh", 0o755);
    ids.push(r.commit("make run.sh executable"));
    r.write("README.md", "# demo\n\nmore words\n");
    ids.push(r.commit("docs outside the context"));
    r.write("app/Dockerfile", &DOCKERFILE.replace("CMD", "ENV MODE=prod\nCMD"));
    ids.push(r.commit("edit the Dockerfile"));
    (r, ids)
}

fn request(repo: &Path, selection: Selection) -> FromGit {
    FromGit {
        repository: repo.to_path_buf(),
        context: PathBuf::from("app"),
        dockerfile: PathBuf::from("Dockerfile"),
        selection,
        skip_untouched: false,
        sample: None,
    }
}

fn last(count: usize) -> Selection {
    Selection::Last { count, branch: None }
}

#[test]
fn the_profile_names_the_first_step_each_commit_changes() {
    let (repo, ids) = history();
    let (_, commits, profile) = read(&request(repo.path(), last(7))).unwrap();
    assert_eq!(commits.iter().map(|c| c.id.clone()).collect::<Vec<_>>(), ids[1..], "the last 7, oldest first");
    let firsts: Vec<String> = profile.commits.iter().map(|(_, f)| f.to_string()).collect();
    assert_eq!(
        firsts,
        [
            "step 4 `COPY src/ src/` (src/main.py)",
            "step 2 `COPY requirements.txt .` (requirements.txt)",
            "step 4 `COPY src/ src/` (src/app.py (added), src/main.py (removed))",
            "step 4 `COPY src/ src/` (src/util.py (removed))",
            "step 5 `COPY run.sh .` (run.sh (mode))",
            "nothing in the context",
            "the Dockerfile",
        ]
    );
    assert_eq!(
        profile.summarise().summary,
        "of 7 commits, 3 first change step 4 (`COPY src/ src/`), 1 first change step 2 (`COPY requirements.txt .`), \
         1 first change step 5 (`COPY run.sh .`), 1 the Dockerfile, 1 touch nothing in app/"
    );
    assert!(matches!(&profile.commits[4].1, FirstChange::Step { step: 5, .. }), "the executable bit misses from its COPY");
}

#[test]
fn the_scenario_replays_the_commits_and_run_loads_each_commits_tree() {
    let (repo, ids) = history();
    let out = repo.path().join("history.toml");
    // Up to the commit before the Dockerfile edit: one Dockerfile for the whole pipeline.
    let range = Selection::Range { from: ids[0].clone(), to: ids[6].clone() };
    let (text, info) = write(&FromGit { skip_untouched: true, ..request(repo.path(), range) }, &out).unwrap();
    std::fs::write(&out, &text).unwrap();
    assert_eq!((info.commits, info.runs, info.skipped_untouched, info.sampled), (6, 5, 1, false), "{text}");
    let loaded = scenario::load(&out).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let runs: Vec<&str> = loaded.pipeline.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(runs[0], "cold");
    assert_eq!(runs.len(), 5);
    let commits: Vec<&str> = loaded
        .pipeline
        .iter()
        .map(|r| match &r.change {
            Change::Commit { id, .. } => id.as_str(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(commits, [&ids[1], &ids[2], &ids[3], &ids[4], &ids[5]].map(String::as_str));
    assert_eq!(loaded.history.as_ref().unwrap().profile.commits, 6);
    // Lanes of a level replay the history offset: lane K is K-1 commits ahead, the newest once it runs out.
    let lane = |lane: u32| layerbench::lanes::Lane { level: 3, lane };
    assert_eq!(scenario::lane_change(&loaded.pipeline, 0, lane(1)), loaded.pipeline[0].change);
    assert_eq!(scenario::lane_change(&loaded.pipeline, 0, lane(3)), loaded.pipeline[2].change);
    assert_eq!(scenario::lane_change(&loaded.pipeline, 4, lane(2)), loaded.pipeline[4].change);
    assert_eq!(loaded.dockerfile.total_steps(), 6);

    // The executable-bit commit's tree, applied to a context copy: the mode, the rename and the deletion.
    let copy = tempfile::tempdir().unwrap();
    let copy = scenario::context::prepare_iteration_context(&loaded, &copy.path().join("ctx")).unwrap();
    scenario::context::apply_change(&copy, &loaded.pipeline[4].change).unwrap();
    assert_eq!(std::fs::metadata(copy.join("run.sh")).unwrap().permissions().mode() & 0o777, 0o755);
    assert!(copy.join("src/app.py").is_file() && !copy.join("src/main.py").exists() && !copy.join("src/util.py").exists());
    assert!(!copy.join("README.md").exists(), "only the context directory's tree");
    scenario::context::apply_change(&copy, &loaded.pipeline[0].change).unwrap();
    assert!(copy.join("src/main.py").is_file() && copy.join("src/util.py").is_file(), "back to the oldest commit");
    assert_eq!(std::fs::metadata(copy.join("run.sh")).unwrap().permissions().mode() & 0o777, 0o644);

    // Across the Dockerfile edit, each run builds its commit's Dockerfile.
    let (text, _) = write(&request(repo.path(), last(3)), &out).unwrap();
    assert!(text.contains(&format!("# Commit {} edits the Dockerfile", &ids[7][..10])), "{text}");
    std::fs::write(&out, &text).unwrap();
    let edited = scenario::load(&out).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let dockerfiles: Vec<(usize, &str, u32)> =
        edited.dockerfiles.iter().map(|d| (d.from_run, d.shown.as_str(), d.dockerfile.total_steps())).collect();
    assert_eq!(dockerfiles, [(0, format!("{}:app/Dockerfile", &ids[5][..10]).as_str(), 6), (2, format!("{}:app/Dockerfile", &ids[7][..10]).as_str(), 7)]);

    // A commit whose Dockerfile cannot be read as one gets one line naming the commit (from `from-git` too),
    // and so does a FROM that names no image.
    for (broken, words) in [("FROM python:3.11-slim\nFORM x\n", ":2:1: unknown instruction `FORM`"), ("ARG B\nFROM $B\n", ":2:1: FROM `$B`")] {
        repo.write("app/Dockerfile", broken);
        let id = repo.commit("break the Dockerfile");
        let hand = format!("name = \"h\"\ncontext = \"app\"\n[[pipeline]]\nname = \"cold\"\nchange = {{ commit = \"{}\" }}\n", ids[6]);
        std::fs::write(&out, format!("{hand}[[pipeline]]\nname = \"broken\"\nchange = {{ commit = \"{id}\" }}\n")).unwrap();
        let error = scenario::load(&out).unwrap_err().to_string();
        assert!(error.starts_with(&format!("{}:app/Dockerfile{words}", &id[..10])), "{error}");
        assert_eq!(error.lines().count(), 1);
    }
    let from_git = read(&request(repo.path(), last(2))).err().map(|e| e.to_string()).unwrap_or_default();
    assert!(from_git.contains("app/Dockerfile:2: unknown instruction `FORM`") && from_git.contains(" commit "), "{from_git}");
}

#[test]
fn a_sample_keeps_the_oldest_and_the_newest_and_says_so() {
    let (repo, _) = history();
    let out = repo.path().join("sampled.toml");
    let (text, info) = write(&FromGit { sample: Some(3), ..request(repo.path(), last(6)) }, &out).unwrap();
    assert_eq!((info.commits, info.runs, info.sampled), (6, 3, true));
    assert!(info.describe().contains("sampled 3 of 6"), "{}", info.describe());
    assert_eq!(text.matches("[[pipeline]]").count(), 3);
}

#[test]
fn a_repository_that_cannot_be_read_as_asked_gets_one_line_naming_it() {
    let (repo, ids) = history();
    let not_a_repo = tempfile::tempdir().unwrap();
    let message = |request: FromGit| read(&request).err().map(|e| e.to_string()).expect("an error");

    let not_repo = message(request(not_a_repo.path(), last(3)));
    assert!(not_repo.starts_with(&format!("{}: not a git repository", not_a_repo.path().display())), "{not_repo}");
    let unknown = message(request(repo.path(), Selection::Range { from: "v9.9".into(), to: "HEAD".into() }));
    assert!(unknown.contains("unknown revision `v9.9`"), "{unknown}");
    let absent = message(FromGit { dockerfile: PathBuf::from("Containerfile"), ..request(repo.path(), last(2)) });
    // The commit outside the context needs no Dockerfile read; the next one does.
    assert!(absent.contains(&format!("commit {} has no app/Containerfile", ids[7])), "{absent}");
    for error in [&not_repo, &unknown, &absent] {
        assert_eq!(error.lines().count(), 1, "{error}");
    }
    assert!(History::discover(repo.path()).unwrap().commit(&ids[3][..8]).is_ok(), "a short id resolves");
}

#[test]
fn a_shallow_clone_without_the_range_is_told_apart_from_an_unknown_revision() {
    let (repo, ids) = history();
    let clone = tempfile::tempdir().unwrap();
    let status = std::process::Command::new("git")
        .args(["clone", "--quiet", "--depth", "3"])
        .arg(format!("file://{}", repo.path().display()))
        .arg(clone.path())
        .status()
        .expect("the git command (Debian's git, which the set-up installs)");
    assert!(status.success());
    let message = |selection: Selection| read(&request(clone.path(), selection)).err().map(|e| e.to_string()).expect("an error");
    let hint = "a shallow clone without";
    let deeper = message(last(5));
    assert!(deeper.contains(hint) && deeper.contains("git fetch --deepen"), "{deeper}");
    let beyond = message(Selection::Range { from: ids[1].clone(), to: "HEAD".into() });
    assert!(beyond.contains(hint), "{beyond}");
    let typo = message(Selection::Range { from: "no-such-branch".into(), to: "HEAD".into() });
    assert!(typo.contains("unknown revision `no-such-branch`"), "a name the clone lacks is unknown, not shallow: {typo}");
    assert!(read(&request(clone.path(), last(3))).is_ok(), "what the clone holds reads");
}

/// The history through shared-dind on the real engine, one iteration: each commit misses from the first step
/// it changes (the executable bit from its `COPY`), with the cause the profile gave, and the commit outside
/// the context hits every step.
#[test]
fn a_real_run_over_the_history_misses_where_each_commit_changes_the_build() {
    use layerbench::cause::Cause;
    let (repo, ids) = history();
    let out = repo.path().join("history.toml");
    let (text, _) = write(&request(repo.path(), Selection::Range { from: ids[0].clone(), to: ids[7].clone() }), &out).unwrap();
    std::fs::write(&out, &text).unwrap();
    let loaded = scenario::load(&out).unwrap();
    // The Python base itself (not the tests' small one), whose record in run.json is checked below.
    let toolchain = layerbench::toolchain::ToolchainConfig::default();
    let results = common::run_scenario_to_the_end_with("engine-history", &loaded, &[common::strategies::SHARED_DIND], toolchain);
    let jobs = common::jobs(&results);
    assert!(jobs.iter().all(|j| j.status == layerbench::results::JobStatus::Ok), "{:?}", jobs.iter().map(|j| &j.error).collect::<Vec<_>>());
    let steps = common::steps(&results);
    let runs: Vec<String> = loaded.pipeline.iter().map(|r| r.name.to_string()).collect();
    // (hits, misses) per run, FROM left out (the classic builder reports `CMD`, step 6, too): requirements,
    // rename, delete, executable bit, outside the context, and the Dockerfile edit, which builds the edited
    // Dockerfile: `ENV MODE=prod` (6) is new, and `CMD` (now 7) after it.
    let expected: [(&[u32], &[u32]); 6] = [
        (&[], &[2, 3, 4, 5, 6]),
        (&[2, 3], &[4, 5, 6]),
        (&[2, 3], &[4, 5, 6]),
        (&[2, 3, 4], &[5, 6]),
        (&[2, 3, 4, 5, 6], &[]),
        (&[2, 3, 4, 5], &[6, 7]),
    ];
    for (run, (hits, misses)) in runs[1..].iter().zip(expected) {
        let (got_hits, got_misses) = common::cache_pattern(&steps, run, "shared-dind");
        assert_eq!((got_hits.as_slice(), got_misses.as_slice()), (hits, misses), "{run}");
    }
    let cause = |run: &str, step: u32| steps.iter().find(|s| s.pipeline_run == run && s.step == step).map(|s| (s.cause, s.changed.clone())).unwrap();
    assert_eq!(cause(&runs[4], 5), (Some(Cause::InputChanged), Some("run.sh (mode)".to_string())), "the executable bit");
    assert_eq!(cause(&runs[1], 2), (Some(Cause::InputChanged), Some("requirements.txt".to_string())));
    assert_eq!(cause(&runs[1], 3).0, Some(Cause::AfterMiss));
    // The Python base, as run.json records it: through each builder's Docker Hub mirror setting, from the
    // toolchain's image (the official one, or its stand-in where it cannot be pulled, as here).
    let info = layerbench::results::read_run_info(&results).unwrap();
    let base = &info.bases[..];
    assert_eq!(base.len(), 1, "{base:?}");
    assert_eq!((base[0].name.as_str(), base[0].written.as_deref(), base[0].served), ("python:3.11-slim", None, layerbench::results::BaseServing::HubMirror));
    let python = info.images.iter().find(|i| i.role == "base").unwrap();
    assert_eq!(base[0].resolved, python.name);
    if python.source == layerbench::results::ImageSource::LocalStandIn {
        assert_eq!(base[0].source, layerbench::results::BaseSource::LocalStandIn);
        assert_eq!((base[0].digest.as_ref(), base[0].digest_kind), (python.id.as_ref(), Some(layerbench::results::DigestKind::ImageId)));
    }
    let edit: Vec<(u32, String)> = steps.iter().filter(|s| s.pipeline_run == *runs[6]).map(|s| (s.step, s.instruction.clone())).collect();
    assert_eq!(edit.last(), Some(&(7, "CMD [\"./run.sh\"]".to_string())), "the edited Dockerfile's steps: {edit:?}");
    assert!(steps.iter().filter(|s| s.pipeline_run == *runs[6]).all(|s| s.total_steps == 7));
}
