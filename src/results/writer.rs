//! Appends records to the results directory as they happen, so an interrupted run leaves valid files.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::{CacheRecord, JobRecord, RunInfo, ServiceRecord, StepRecord};

/// Each displays its cause and has no `source()`: a caller that prints the chain (`{:#}`) would
/// otherwise print the cause twice.
#[derive(Debug, thiserror::Error)]
pub enum ResultsError {
    #[error("cannot write {}: {error}", path.display())]
    Io { path: PathBuf, error: std::io::Error },
    #[error("cannot write a row to {}: {error}", path.display())]
    Csv { path: PathBuf, error: csv::Error },
    #[error("cannot read {}: {error}", path.display())]
    Read { path: PathBuf, error: csv::Error },
    #[error("cannot read {}: {error}", path.display())]
    ReadFile { path: PathBuf, error: std::io::Error },
    #[error("{} is not a directory", path.display())]
    NotADirectory { path: PathBuf },
}

pub const STEPS_CSV: &str = "steps.csv";
pub const JOBS_CSV: &str = "jobs.csv";
pub const CACHE_CSV: &str = "cache.csv";
pub const SERVICES_CSV: &str = "services.csv";
pub const RUN_JSON: &str = "run.json";

/// One CSV file that is appended to and flushed row by row.
struct Table {
    path: PathBuf,
    writer: csv::Writer<File>,
}

impl Table {
    fn create(dir: &Path, name: &str, header: &[&str]) -> Result<Self, ResultsError> {
        let path = dir.join(name);
        let file = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(&path)
            .map_err(|error| ResultsError::Io { path: path.clone(), error })?;
        let mut writer = csv::WriterBuilder::new().has_headers(false).from_writer(file);
        if let Err(error) = writer.write_record(header) {
            return Err(ResultsError::Csv { path, error });
        }
        let mut table = Table { path, writer };
        table.flush()?;
        Ok(table)
    }

    fn append<T: Serialize>(&mut self, row: &T) -> Result<(), ResultsError> {
        self.writer
            .serialize(row)
            .map_err(|error| ResultsError::Csv { path: self.path.clone(), error })?;
        self.flush()
    }

    fn flush(&mut self) -> Result<(), ResultsError> {
        self.writer
            .flush()
            .map_err(|error| ResultsError::Io { path: self.path.clone(), error })
    }
}

/// The files of `results/<run-id>/`.
pub struct ResultsWriter {
    dir: PathBuf,
    steps: Table,
    jobs: Table,
    cache: Table,
    services: Table,
}

pub const STEP_COLUMNS: &[&str] = &[
    "run_id", "backend", "iteration", "pipeline_run", "strategy", "stage", "step", "total_steps",
    "instruction", "cached", "duration_ms", "input_key", "cause", "changed", "concurrency", "lane",
];
pub const JOB_COLUMNS: &[&str] = &[
    "run_id", "backend", "iteration", "pipeline_index", "pipeline_run", "strategy", "status",
    "failure_kind", "error", "started_at", "wall_ms", "provision_ms", "pull_ms", "cache_import_ms",
    "build_ms", "cache_export_ms", "push_ms", "teardown_ms", "measure_ms", "cached_steps",
    "total_steps", "image_bytes", "bytes_pulled", "bytes_pushed", "host_load_1m", "notes", "cpu_ms", "peak_memory_bytes", "node",
    "concurrency", "lane",
];
pub const CACHE_COLUMNS: &[&str] = &[
    "run_id", "backend", "iteration", "pipeline_run", "strategy", "registry_bytes",
    "daemon_volume_bytes", "concurrency",
];
pub const SERVICE_COLUMNS: &[&str] =
    &["run_id", "backend", "iteration", "strategy", "service", "startup_ms", "concurrency", "cpu_ms", "peak_memory_bytes"];

/// Creates `dir` (where run directories go) if needed and checks that a file can be made in it, so
/// that a `--results` path that is a file or read-only is refused before any slow work, not after.
pub fn prepare_dir(dir: &Path) -> Result<(), ResultsError> {
    if dir.exists() && !dir.is_dir() {
        return Err(ResultsError::NotADirectory { path: dir.to_path_buf() });
    }
    let io = |error| ResultsError::Io { path: dir.to_path_buf(), error };
    std::fs::create_dir_all(dir).map_err(io)?;
    // An unnamed temporary file: it disappears when dropped, even if the process dies.
    tempfile::tempfile_in(dir).map(drop).map_err(io)
}

impl ResultsWriter {
    pub fn create(dir: &Path) -> Result<Self, ResultsError> {
        std::fs::create_dir_all(dir)
            .map_err(|error| ResultsError::Io { path: dir.to_path_buf(), error })?;
        Ok(ResultsWriter {
            dir: dir.to_path_buf(),
            steps: Table::create(dir, STEPS_CSV, STEP_COLUMNS)?,
            jobs: Table::create(dir, JOBS_CSV, JOB_COLUMNS)?,
            cache: Table::create(dir, CACHE_CSV, CACHE_COLUMNS)?,
            services: Table::create(dir, SERVICES_CSV, SERVICE_COLUMNS)?,
        })
    }

    /// Writes a finished job and its steps; both files are flushed before this returns.
    pub fn append_job(&mut self, job: &JobRecord, steps: &[StepRecord]) -> Result<(), ResultsError> {
        for step in steps {
            self.steps.append(step)?;
        }
        self.jobs.append(job)
    }

    pub fn append_cache(&mut self, row: &CacheRecord) -> Result<(), ResultsError> {
        self.cache.append(row)
    }

    pub fn append_service(&mut self, row: &ServiceRecord) -> Result<(), ResultsError> {
        self.services.append(row)
    }

    /// Rewrites `run.json` whole (via a temporary file, so it is never half-written).
    pub fn write_run_info(&self, info: &RunInfo) -> Result<(), ResultsError> {
        let path = self.dir.join(RUN_JSON);
        let tmp = self.dir.join(".run.json.tmp");
        let text = serde_json::to_string_pretty(info).expect("RunInfo serializes");
        std::fs::write(&tmp, text + "\n")
            .and_then(|()| std::fs::rename(&tmp, &path))
            .map_err(|error| ResultsError::Io { path, error })
    }
}

fn read_csv<T: DeserializeOwned>(path: &Path) -> Result<Vec<T>, ResultsError> {
    let err = |error| ResultsError::Read { path: path.to_path_buf(), error };
    let mut reader = csv::Reader::from_path(path).map_err(err)?;
    reader.deserialize().collect::<Result<Vec<T>, _>>().map_err(err)
}

pub fn read_steps(dir: &Path) -> Result<Vec<StepRecord>, ResultsError> {
    read_csv(&dir.join(STEPS_CSV))
}

pub fn read_jobs(dir: &Path) -> Result<Vec<JobRecord>, ResultsError> {
    read_csv(&dir.join(JOBS_CSV))
}

pub fn read_cache(dir: &Path) -> Result<Vec<CacheRecord>, ResultsError> {
    read_csv(&dir.join(CACHE_CSV))
}

pub fn read_services(dir: &Path) -> Result<Vec<ServiceRecord>, ResultsError> {
    read_csv(&dir.join(SERVICES_CSV))
}

pub fn read_run_info(dir: &Path) -> Result<RunInfo, ResultsError> {
    let path = dir.join(RUN_JSON);
    let text = std::fs::read_to_string(&path)
        .map_err(|error| ResultsError::ReadFile { path: path.clone(), error })?;
    serde_json::from_str(&text).map_err(|e| ResultsError::ReadFile {
        path,
        error: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::JobStatus;

    fn header_of<T: Serialize>(row: &T) -> Vec<String> {
        let mut w = csv::Writer::from_writer(vec![]);
        w.serialize(row).unwrap();
        let text = String::from_utf8(w.into_inner().unwrap()).unwrap();
        text.lines().next().unwrap().split(',').map(str::to_string).collect()
    }

    fn job() -> JobRecord {
        JobRecord {
            run_id: "r".into(),
            backend: crate::results::BackendKind::Docker,
            concurrency: 1,
            lane: 1,
            iteration: 1,
            pipeline_index: 0,
            pipeline_run: "cold".into(),
            strategy: crate::strategy::Strategy::named("shared-dind"),
            status: JobStatus::Failed,
            failure_kind: Some(crate::results::FailureKind::Build),
            error: Some("build failed: \"quoted\", with comma\nand newline".into()),
            started_at: "2026-01-01T00:00:00Z".into(),
            wall_ms: 10,
            provision_ms: None,
            pull_ms: Some(1),
            cache_import_ms: None,
            build_ms: Some(2),
            cache_export_ms: Some(0),
            push_ms: None,
            teardown_ms: Some(3),
            measure_ms: None,
            cached_steps: None,
            total_steps: 3,
            image_bytes: None,
            bytes_pulled: None,
            bytes_pushed: Some(5),
            cpu_ms: Some(1500),
            peak_memory_bytes: Some(1 << 20),
            node: Some("host".into()),
            host_load_1m: Some(1.25),
            notes: None,
        }
    }

    #[test]
    fn declared_columns_match_the_records() {
        assert_eq!(header_of(&job()), JOB_COLUMNS);
        let step = StepRecord {
            run_id: "r".into(),
            backend: crate::results::BackendKind::Docker,
            concurrency: 1,
            lane: 1,
            iteration: 1,
            pipeline_run: "cold".into(),
            strategy: crate::strategy::Strategy::named("shared-dind"),
            stage: "builder".into(),
            step: 1,
            total_steps: 2,
            instruction: "RUN x".into(),
            cached: None,
            duration_ms: None,
            input_key: None,
            cause: None,
            changed: None,
        };
        assert_eq!(header_of(&step), STEP_COLUMNS);
        let cache = CacheRecord {
            run_id: "r".into(),
            backend: crate::results::BackendKind::Docker,
            concurrency: 1,
            iteration: 1,
            pipeline_run: "cold".into(),
            strategy: crate::strategy::Strategy::named("shared-dind"),
            registry_bytes: None,
            daemon_volume_bytes: Some(1),
        };
        assert_eq!(header_of(&cache), CACHE_COLUMNS);
        let service = ServiceRecord {
            run_id: "r".into(),
            backend: crate::results::BackendKind::Docker,
            concurrency: 1,
            iteration: 1,
            strategy: crate::strategy::Strategy::named("shared-dind"),
            service: "dind".into(),
            startup_ms: 3,
            cpu_ms: None,
            peak_memory_bytes: Some(5),
        };
        assert_eq!(header_of(&service), SERVICE_COLUMNS);
    }

    #[test]
    fn an_error_shows_its_cause_once_even_as_a_chain() {
        let dir = tempfile::tempdir().unwrap();
        let err = read_run_info(&dir.path().join("missing")).unwrap_err();
        let chain = format!("{:#}", anyhow::Error::from(err));
        assert_eq!(chain.matches("No such file or directory").count(), 1, "{chain}");
        assert!(chain.starts_with("cannot read ") && chain.contains("missing/run.json"), "{chain}");
    }

    #[test]
    fn an_output_directory_that_is_a_file_or_under_one_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("file");
        std::fs::write(&file, "").unwrap();
        let err = prepare_dir(&file).unwrap_err().to_string();
        assert_eq!(err, format!("{} is not a directory", file.display()));
        let err = prepare_dir(&file.join("results")).unwrap_err().to_string();
        assert!(err.contains("Not a directory"), "{err}");
        let fresh = dir.path().join("a/b");
        prepare_dir(&fresh).unwrap();
        assert!(fresh.is_dir() && std::fs::read_dir(&fresh).unwrap().next().is_none(), "created and left empty");
    }

    #[test]
    fn rows_are_readable_back_after_every_append() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = ResultsWriter::create(dir.path()).unwrap();
        assert!(read_jobs(dir.path()).unwrap().is_empty(), "header-only file is valid");
        w.append_job(&job(), &[]).unwrap();
        // Not dropped: the row must already be on disk.
        let back = read_jobs(dir.path()).unwrap();
        assert_eq!(back, vec![job()]);
    }
}
