//! The `layerbench` command line: the only place that prints, picks reporters and maps errors to exit codes.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::anyhow;
use clap::{Parser, Subcommand};

use layerbench::error::exit;
use layerbench::events::{EventSink, Reporter};
use layerbench::progress::{PlainReporter, ProgressReporter};
use layerbench::runner;
use layerbench::scenario::{self, Scenario};
use layerbench::strategy::Strategy;
use layerbench::backend::kube::{self, KubeOptions};
use layerbench::toolchain::{self, ToolchainConfig};
use layerbench::{compare, report, resources, session};

/// Every strategy, from the registry, for `run --help` and `layerbench strategies`.
fn strategies_help() -> String {
    let lines: Vec<String> = Strategy::all().map(|s| format!("  {:<24}{}", s.name(), s.description)).collect();
    format!("Strategies:\n{}", lines.join("\n"))
}

/// The README's table of strategies, from the registry: what one job does, the privileges as the report
/// states them (its daemon's and its builder's, with the strategy's risk), and how the kube backend places it.
fn strategies_markdown() -> String {
    let mut out = String::from("| strategy | what one job does | privileges | on kube |\n|---|---|---|---|\n");
    for strategy in Strategy::all() {
        let privileges = layerbench::builder::privilege_summary(strategy);
        let kube = kube::placement(strategy);
        out.push_str(&format!("| `{}` | {} | {} | {} |\n", strategy.name(), strategy.job, privileges, kube));
    }
    out
}

const EXAMPLES: &str = "\
Examples:
  layerbench run scenarios/flask.toml
  layerbench run scenarios/flask.toml --strategies shared-dind,registry-multistage --iterations 5
  layerbench run scenarios/flask.toml --strategies shared-dind,buildkit-daemon-shared --concurrency 1,2,4
  layerbench report results/20261127T190501Z-flask
  layerbench compare results/baseline results/candidate --threshold 10% --markdown summary.md
  layerbench clean
  layerbench run scenarios/flask.toml --backend kube --context kind-layerbench
  layerbench manifests scenarios/flask.toml --strategy shared-dind | kubectl apply -f -

Exit codes: 0 success (compare: no regression); 1 a job failed (compare: regression);
2 usage or data error; 3 environment error (engine, registry, images; or a concurrency level the host's
memory cannot hold, refused before it starts, after the levels below it ran and were reported);
130 interrupted (SIGINT, Ctrl-C); 143 stopped by SIGTERM (a cancelled CI job). Either way, what the run
created is removed first.";

#[derive(Parser)]
#[command(name = "layerbench", version, about = "Measures how container image builds behave under the caching strategies CI systems use", after_help = EXAMPLES)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a scenario through every strategy and write results/<run-id>/ and a report.
    #[command(after_help = strategies_help())]
    Run {
        /// The scenario file (TOML), e.g. scenarios/flask.toml.
        scenario: PathBuf,
        /// Comma-separated strategies to run instead of the scenario's.
        #[arg(long, value_delimiter = ',', value_parser = parse_strategy)]
        strategies: Option<Vec<Strategy>>,
        /// Iterations instead of the scenario's (each starts from empty caches).
        #[arg(long)]
        iterations: Option<u32>,
        /// Concurrency levels instead of the scenario's, e.g. `1,2,4`: at level N each pipeline run of a
        /// strategy starts N pipelines at once, sharing its cache as branches do (at most 16).
        #[arg(long, value_name = "LEVELS")]
        concurrency: Option<String>,
        /// Where results/<run-id>/ goes.
        #[arg(long, default_value = "results")]
        results: PathBuf,
        /// Where reports/<run-id>/ goes.
        #[arg(long, default_value = "reports")]
        reports: PathBuf,
        /// Do not write the HTML report at the end.
        #[arg(long)]
        no_report: bool,
        /// Keep every container, volume and network for debugging (also: LAYERBENCH_KEEP=1).
        #[arg(long)]
        keep: bool,
        #[command(flatten)]
        images: ImageArgs,
        #[command(flatten)]
        target: BackendArgs,
    },
    /// Write reports/<run-id>/index.html and its charts from a results directory alone.
    Report {
        results_dir: PathBuf,
        /// Output directory (default: reports/<run-id>).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Compare two results directories; exit 1 on a regression.
    Compare {
        baseline: PathBuf,
        candidate: PathBuf,
        /// Relative change of a median below which it is noise: `10%` or `0.1`.
        #[arg(long, default_value = "10%")]
        threshold: String,
        /// Also write a Markdown summary (for $GITHUB_STEP_SUMMARY or a merge request comment).
        #[arg(long)]
        markdown: Option<PathBuf>,
        /// Also write GitLab's metrics report (OpenMetrics text).
        #[arg(long)]
        openmetrics: Option<PathBuf>,
    },
    /// Remove every container, volume and network (or, with --backend kube, namespace) left by any run.
    Clean {
        #[command(flatten)]
        target: BackendArgs,
    },
    /// Print the Kubernetes objects the kube backend would apply for a strategy (for `kubectl apply -f`).
    Manifests {
        scenario: PathBuf,
        #[arg(long, value_parser = parse_strategy)]
        strategy: Strategy,
        /// Namespace to put the objects in (default: layerbench-manifests).
        #[arg(long)]
        namespace: Option<String>,
    },
    /// Pull the toolchain images, or build local stand-ins (from Debian packages and Go modules) when pulls fail.
    Images {
        #[command(flatten)]
        images: ImageArgs,
    },
    /// A local kind cluster for `--backend kube`, built offline from Go modules (kind, Kubernetes, its images).
    #[command(after_help = CLUSTER_HELP)]
    Cluster {
        #[command(subcommand)]
        action: ClusterAction,
    },
    /// List the strategies the registry holds (`--markdown`: the README's table).
    Strategies {
        /// A Markdown table: each strategy, what one job does and the privileges it needs.
        #[arg(long)]
        markdown: bool,
    },
    /// Write scenarios: `from-git` replays a repository's commits.
    Scenario {
        #[command(subcommand)]
        action: ScenarioAction,
    },
}

#[derive(Subcommand)]
enum ScenarioAction {
    /// Write a scenario whose pipeline runs are a git repository's commits, oldest (cold) first.
    #[command(after_help = FROM_GIT_HELP)]
    FromGit(FromGitArgs),
}

const FROM_GIT_HELP: &str = "\
Examples:
  layerbench scenario from-git ../vote --context vote --last 30 -o scenarios/vote.toml
  layerbench scenario from-git ../vote --context vote --range v1.2..v1.3 --skip-untouched --sample 10 -o s.toml
  layerbench scenario from-git ../vote --context vote --last 200 --profile

Each run is `change = { commit = \"<id>\" }`: its context is exactly that commit's tree under --context, with its
.dockerignore, deletions, renames, modes and symbolic links. Commits are followed along first parents.";

#[derive(clap::Args)]
struct FromGitArgs {
    /// The repository: its work tree, or a directory inside it.
    repository: PathBuf,
    /// The build context, relative to the repository's root (default: the root).
    #[arg(long, default_value = "")]
    context: PathBuf,
    /// The Dockerfile, relative to the context.
    #[arg(long, default_value = "Dockerfile")]
    dockerfile: PathBuf,
    /// The last N commits of --branch.
    #[arg(long, value_name = "N", conflicts_with = "range")]
    last: Option<usize>,
    /// The commits after A up to B (`A..B`).
    #[arg(long, value_name = "A..B")]
    range: Option<String>,
    /// The branch (or any revision) --last counts back from (default: HEAD).
    #[arg(long, conflicts_with = "range")]
    branch: Option<String>,
    /// Fold commits that touch nothing in the context into a count instead of runs.
    #[arg(long)]
    skip_untouched: bool,
    /// Keep K commits spread evenly over the range (the oldest and the newest included).
    #[arg(long, value_name = "K")]
    sample: Option<usize>,
    /// Print the change profile (which step each commit first changes) and write nothing.
    #[arg(long)]
    profile: bool,
    /// Where to write the scenario (default: standard output).
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    output: Option<PathBuf>,
}

impl FromGitArgs {
    fn request(&self) -> Result<layerbench::history::scenario::FromGit, Failure> {
        use layerbench::git::Selection;
        let selection = match (&self.range, self.last) {
            (Some(range), _) => {
                let (from, to) = range
                    .split_once("..")
                    .filter(|(a, b)| !a.is_empty() && !b.is_empty() && !b.starts_with('.'))
                    .ok_or_else(|| usage(anyhow!("--range: `{range}` is not A..B (two revisions joined by `..`)")))?;
                Selection::Range { from: from.into(), to: to.into() }
            }
            (None, last) => Selection::Last { count: last.unwrap_or(20), branch: self.branch.clone() },
        };
        if self.sample == Some(0) || self.last == Some(0) {
            return Err(usage(anyhow!("--sample and --last need at least 1")));
        }
        Ok(layerbench::history::scenario::FromGit {
            repository: self.repository.clone(),
            context: self.context.clone(),
            dockerfile: self.dockerfile.clone(),
            selection,
            skip_untouched: self.skip_untouched,
            sample: self.sample,
        })
    }
}

fn from_git(args: &FromGitArgs) -> Result<i32, Failure> {
    use layerbench::history::scenario;
    let request = args.request()?;
    if args.profile {
        let (_, commits, profile) = scenario::read(&request).map_err(usage)?;
        for (commit, first) in &profile.commits {
            println!("{}  {:<40}  {first}", commit.short(), commit.summary.chars().take(40).collect::<String>());
        }
        println!("{} ({} commits read)", profile.summarise().summary, commits.len());
        return Ok(exit::OK);
    }
    let out = args.output.clone().unwrap_or_else(|| PathBuf::from("scenario.toml"));
    let (text, info) = scenario::write(&request, &out).map_err(usage)?;
    match &args.output {
        Some(path) => {
            std::fs::write(path, &text).map_err(|e| usage(anyhow!("{}: cannot write the scenario: {e}", path.display())))?;
            eprintln!("{}: {}; {}", path.display(), info.describe(), info.profile.summary);
        }
        None => print!("{text}"),
    }
    Ok(exit::OK)
}

const CLUSTER_HELP: &str = "\
Examples:
  layerbench cluster up       # build what is missing; create or reuse kind-layerbench (one node)
  layerbench cluster up --nodes 2 --name lb2   # a control plane and a worker: kind-lb2
  layerbench run scenarios/small.toml --backend kube --context kind-layerbench
  layerbench cluster down

`up` prints the kubeconfig context on stdout. The first `up` builds kind, Kubernetes, Cilium (the network and
NetworkPolicy agent) and the node image from Go modules (15 min or more on 2 cores); later ones take a minute or
two, or seconds with the cluster running.";

#[derive(Subcommand)]
enum ClusterAction {
    /// Create the cluster, or reuse a running one made from the current node image; load the toolchain images.
    Up {
        #[command(flatten)]
        cluster: ClusterArgs,
        #[command(flatten)]
        images: ImageArgs,
    },
    /// Delete the cluster.
    Down {
        #[command(flatten)]
        cluster: ClusterArgs,
    },
}

#[derive(clap::Args)]
struct ClusterArgs {
    /// kind's cluster name (the context is kind-NAME).
    #[arg(long, default_value = "layerbench")]
    name: String,
    /// kind's cluster configuration (its `nodes` list is replaced: see --nodes).
    #[arg(long, default_value = "scenarios/kind-cluster.yaml")]
    config: PathBuf,
    /// Nodes: one control plane and N-1 workers; a running cluster of another size is recreated (`up` only).
    #[arg(long, default_value_t = 1, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=i64::from(layerbench::cluster::MAX_NODES)))]
    nodes: u32,
}

impl ClusterArgs {
    fn options(&self) -> layerbench::cluster::ClusterOptions {
        layerbench::cluster::ClusterOptions { name: self.name.clone(), config: self.config.clone(), nodes: self.nodes }
    }
}

#[derive(clap::Args)]
struct BackendArgs {
    /// Where jobs run: the local Docker engine, or the cluster of a kubeconfig.
    #[arg(long, value_enum, default_value_t = BackendName::Docker)]
    backend: BackendName,
    /// kubeconfig context (with --backend kube; default: the current context).
    #[arg(long)]
    context: Option<String>,
    /// Namespace (with --backend kube; default: a new layerbench-<run id>).
    #[arg(long)]
    namespace: Option<String>,
    /// Docker Hub mirror for the pods' builders (with --backend kube): HOST:PORT of an existing plain-HTTP
    /// mirror, or `none` to pull from Docker Hub; default: one per run, seeded with the base images from
    /// the local engine and served read-only.
    #[arg(long, value_name = "HOST:PORT")]
    hub_mirror: Option<String>,
    /// StorageClass of the volumes a run claims (with --backend kube: the shared daemon's /var/lib/docker,
    /// the mirror's blobs); default: the cluster's default class.
    #[arg(long, value_name = "NAME")]
    storage_class: Option<String>,
}

/// A strategy named on the command line, from the registry (`--strategy`, `--strategies`).
fn parse_strategy(name: &str) -> Result<Strategy, layerbench::strategy::UnknownStrategy> {
    name.parse()
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum BackendName {
    Docker,
    Kube,
}

impl BackendArgs {
    /// The kube backend's options; a `--hub-mirror` that is not `HOST:PORT` or `none` is a usage error, found
    /// before anything starts (the address goes into every daemon's and builder's configuration).
    fn kube_options(&self) -> Result<KubeOptions, Failure> {
        let hub_mirror = match &self.hub_mirror {
            Some(value) => kube::mirror::HubMirror::parse(value).map_err(usage)?,
            None => kube::mirror::HubMirror::default(),
        };
        Ok(KubeOptions {
            context: self.context.clone(),
            namespace: self.namespace.clone(),
            hub_mirror,
            storage_class: self.storage_class.clone(),
            ..KubeOptions::default()
        })
    }

    fn choice(&self) -> Result<session::BackendChoice, Failure> {
        Ok(match self.backend {
            BackendName::Docker => session::BackendChoice::Docker,
            BackendName::Kube => session::BackendChoice::Kube(Box::new(self.kube_options()?)),
        })
    }
}

#[derive(clap::Args)]
struct ImageArgs {
    /// A base image: `NAME=LOCAL_IMAGE` serves the engine's image LOCAL_IMAGE wherever a Dockerfile starts
    /// `FROM NAME` (repeatable, one per name); a bare NAME (at most one) is the Python base, for which a local
    /// stand-in is built when it cannot be pulled [default: python:3.11-slim].
    #[arg(long = "base-image", value_name = "NAME[=LOCAL_IMAGE]")]
    base_image: Vec<String>,
    /// docker-in-docker daemon image.
    #[arg(long, default_value_t = ToolchainConfig::default().dind)]
    dind_image: String,
    /// CNCF Distribution registry image (the run's registry and Docker Hub mirror).
    #[arg(long, default_value_t = ToolchainConfig::default().registry)]
    registry_image: String,
    /// buildah image for the daemonless strategy.
    #[arg(long, default_value_t = ToolchainConfig::default().buildah)]
    buildah_image: String,
    /// kaniko executor image, debug flavour (upstream's last release; the project was archived in 2025).
    #[arg(long, default_value_t = ToolchainConfig::default().kaniko)]
    kaniko_image: String,
    /// BuildKit image: buildkitd for the standalone-daemon strategies, and the buildctl their jobs run.
    #[arg(long, default_value_t = ToolchainConfig::default().buildkit)]
    buildkit_image: String,
    /// Image BuildKit jobs run `docker buildx build` in (the docker CLI with its buildx plugin).
    #[arg(long, default_value_t = ToolchainConfig::default().job)]
    job_image: String,
}

impl ImageArgs {
    /// The toolchain configuration the flags give, every image in it checked as an image reference: a
    /// malformed one is a usage error, refused before anything starts.
    fn config(&self) -> Result<ToolchainConfig, Failure> {
        let config = ToolchainConfig {
            dind: self.dind_image.clone(),
            registry: self.registry_image.clone(),
            buildah: self.buildah_image.clone(),
            kaniko: self.kaniko_image.clone(),
            buildkit: self.buildkit_image.clone(),
            job: self.job_image.clone(),
            ..ToolchainConfig::default()
        }
        .with_base_flags(&self.base_image)
        .map_err(usage)?;
        config.check().map_err(usage)?;
        Ok(config)
    }
}

/// An error with the exit code it maps to.
struct Failure {
    code: i32,
    error: anyhow::Error,
}

fn usage(error: impl Into<anyhow::Error>) -> Failure {
    Failure { code: exit::USAGE, error: error.into() }
}

fn environment(error: impl Into<anyhow::Error>) -> Failure {
    Failure { code: exit::ENVIRONMENT, error: error.into() }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // A mistake on the command line gets one line, as every other bad input does; help and version as clap
        // prints them.
        Err(e) if e.use_stderr() => {
            // clap's message up to its first blank line (its usage and tip follow), joined on one line.
            let rendered = e.render().to_string();
            let message: Vec<&str> = rendered.lines().take_while(|l| !l.trim().is_empty()).map(str::trim).collect();
            eprintln!("{}", message.join(" "));
            return ExitCode::from(exit::USAGE as u8);
        }
        Err(e) => e.exit(),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
    let code = match runtime.block_on(dispatch(cli)) {
        Ok(code) => code,
        Err(Failure { code, error }) => {
            eprintln!("error: {}", one_line(&error));
            code
        }
    };
    ExitCode::from(code as u8)
}

/// The error and its causes on one line, each cause once. Module errors display their cause
/// (`cannot read X: <why>`), so a cause the line already shows is not appended again.
fn one_line(error: &anyhow::Error) -> String {
    let mut line = error.to_string();
    for cause in error.chain().skip(1) {
        let cause = cause.to_string();
        if !line.contains(&cause) {
            line = format!("{line}: {cause}");
        }
    }
    line
}

async fn dispatch(cli: Cli) -> Result<i32, Failure> {
    match cli.command {
        Command::Run { scenario, strategies, iterations, concurrency, results, reports, no_report, keep, images, target } => {
            let reports = (!no_report).then_some(reports.as_path());
            let choices = RunChoices { strategies, iterations, concurrency };
            // Every mistake that can be seen here is refused before the engine and the toolchain images,
            // which can take minutes.
            let images = images.config()?;
            run(&scenario, choices, &results, reports, keep, &images, target.choice()?).await
        }
        Command::Report { results_dir, out } => {
            let out = out.unwrap_or_else(|| session::default_report_dir(Path::new("reports"), &results_dir));
            let index = report::generate(&results_dir, &out).map_err(usage)?;
            println!("{}", index.display());
            Ok(exit::OK)
        }
        Command::Compare { baseline, candidate, threshold, markdown, openmetrics } => {
            let threshold = compare::parse_threshold(&threshold).map_err(usage)?;
            let options = compare::CompareOptions { baseline, candidate, threshold, markdown, openmetrics };
            let result = compare::compare(&options);
            let code = compare::exit_code(&result);
            print!("{}", result.map_err(usage)?.table);
            Ok(code)
        }
        Command::Clean { target } if target.backend == BackendName::Kube => {
            let started = kube::clean(&target.kube_options()?).await.map_err(environment)?;
            println!("started {started} deletions of objects labelled {}", layerbench::RUN_ID_LABEL);
            Ok(exit::OK)
        }
        Command::Manifests { scenario, strategy, namespace } => {
            let scenario = scenario::load(&scenario).map_err(usage)?;
            let options = KubeOptions { namespace, ..KubeOptions::default() };
            print!("{}", kube::manifests_yaml(&scenario, strategy, &options).map_err(usage)?);
            Ok(exit::OK)
        }
        Command::Clean { .. } => {
            let engine = connect_engine().await?;
            let removed = resources::remove_labelled(&engine, None).await.map_err(environment)?;
            println!("removed {removed}");
            Ok(exit::OK)
        }
        Command::Cluster { action: ClusterAction::Up { cluster, images } } => cluster_up(&cluster, &images).await,
        Command::Cluster { action: ClusterAction::Down { cluster } } => {
            let events = reporters();
            layerbench::cluster::down(&cluster.options(), &events).await.map_err(environment)?;
            Ok(exit::OK)
        }
        Command::Scenario { action: ScenarioAction::FromGit(args) } => from_git(&args),
        Command::Strategies { markdown } => {
            print!("{}", if markdown { strategies_markdown() } else { format!("{}\n", strategies_help()) });
            Ok(exit::OK)
        }
        Command::Images { images } => list_images(&images).await,
    }
}

/// `cluster up`: the cluster's name and configuration are checked before anything is built.
async fn cluster_up(cluster: &ClusterArgs, images: &ImageArgs) -> Result<i32, Failure> {
    if !kube::names::is_dns_label(&cluster.name) {
        return Err(usage(anyhow!("--name: `{}` is not a valid cluster name: lower-case letters, digits and '-'", cluster.name)));
    }
    let images = images.config()?;
    // A configuration `up` cannot size is the user's to fix: refused before anything is built.
    let text = std::fs::read_to_string(&cluster.config).map_err(|e| {
        usage(anyhow!("--config: cannot read {}: {e}; run from the repository root, or pass --config", cluster.config.display()))
    })?;
    layerbench::cluster::kind_config(&text, cluster.nodes).map_err(|e| usage(anyhow!("--config: {}: {e}", cluster.config.display())))?;
    let engine = connect_engine().await?;
    let events = reporters();
    let up = layerbench::cluster::up(&engine, &images, &cluster.options(), &events).await.map_err(environment)?;
    println!("{}", up.context);
    Ok(exit::OK)
}

/// `images`: each toolchain image, official or local stand-in, and where it came from.
async fn list_images(images: &ImageArgs) -> Result<i32, Failure> {
    let images = images.config()?;
    let engine = connect_engine().await?;
    let events = reporters();
    let toolchain = toolchain::resolve(&engine, &images, &events).await.map_err(environment)?;
    for image in toolchain.images() {
        let source = serde_json::to_string(&image.source).unwrap_or_default();
        let from = image.built_from.map(|go| format!(" ({go})")).unwrap_or_default();
        println!("{:<9} {:<45} {}{from}", image.role, image.name, source.trim_matches('"'));
    }
    Ok(exit::OK)
}

/// Progress bars on a terminal, plain lines elsewhere (CI logs, pipes).
fn reporters() -> EventSink {
    let reporter: Box<dyn Reporter> = if std::io::stderr().is_terminal() {
        Box::new(ProgressReporter::default())
    } else {
        Box::new(PlainReporter::new(std::io::stderr()))
    };
    EventSink::new(vec![reporter])
}

async fn connect_engine() -> Result<bollard::Docker, Failure> {
    let hint = "start one (`make run` starts a private engine) or point DOCKER_HOST at one";
    let engine = bollard::Docker::connect_with_defaults()
        .map_err(|e| environment(anyhow!("cannot use the Docker engine address: {e}; {hint}")))?;
    match tokio::time::timeout(Duration::from_secs(10), engine.ping()).await {
        // Speak the engine's API version, whatever bollard's default is.
        Ok(Ok(_)) => engine
            .negotiate_version()
            .await
            .map_err(|e| environment(anyhow!("cannot agree an API version with the Docker engine ({}): {e}", engine_address()))),
        Ok(Err(e)) => Err(environment(anyhow!("cannot reach the Docker engine ({}): {e}; {hint}", engine_address()))),
        Err(_) => Err(environment(anyhow!("the Docker engine ({}) did not answer within 10 s; {hint}", engine_address()))),
    }
}

fn engine_address() -> String {
    std::env::var("DOCKER_HOST").unwrap_or_else(|_| "unix:///var/run/docker.sock".into())
}

/// A `--namespace` Kubernetes would refuse, refused before anything is created.
fn check_namespace(namespace: Option<&str>) -> Result<(), Failure> {
    match namespace {
        Some(ns) if !kube::names::is_dns_label(ns) => Err(usage(anyhow!(
            "--namespace: `{ns}` is not a valid namespace: at most {} lower-case letters, digits and '-', \
             starting and ending with a letter or digit",
            kube::names::MAX_NAME_LEN
        ))),
        _ => Ok(()),
    }
}


/// What `run`'s flags narrow or replace of the scenario's own choices.
struct RunChoices {
    strategies: Option<Vec<Strategy>>,
    iterations: Option<u32>,
    concurrency: Option<String>,
}

async fn run(
    scenario_path: &Path,
    choices: RunChoices,
    results_root: &Path,
    reports_root: Option<&Path>,
    keep: bool,
    images: &ToolchainConfig,
    backend: session::BackendChoice,
) -> Result<i32, Failure> {
    let scenario = scenario::load(scenario_path).map_err(usage)?;
    let strategies = run_strategies(&scenario, choices.strategies, &backend)?;
    let iterations = choices.iterations.unwrap_or(scenario.iterations);
    if iterations == 0 {
        return Err(usage(anyhow!("--iterations must be at least 1")));
    }
    let concurrency = match &choices.concurrency {
        Some(levels) => layerbench::lanes::parse_levels(levels).map_err(|e| usage(anyhow!("--concurrency: {e}")))?,
        None => scenario.concurrency.clone(),
    };
    for (flag, dir) in [("--results", Some(results_root)), ("--reports", reports_root)] {
        if let Some(dir) = dir {
            layerbench::results::prepare_dir(dir).map_err(|e| usage(anyhow!("{flag}: {e}")))?;
        }
    }
    let engine = connect_engine().await?;
    let events = reporters();
    let request = session::Request {
        scenario: &scenario,
        strategies,
        iterations,
        concurrency,
        results_root: results_root.to_path_buf(),
        keep: resources::keep_requested(keep),
        toolchain: images.clone(),
        backend,
    };
    let signal = std::sync::OnceLock::new();
    let outcome = session::execute(&engine, &request, &events, interrupted(&signal)).await.map_err(environment)?;
    finish(outcome, reports_root, signal.get().copied())
}

/// The strategies a run runs: `--strategies` or the scenario's, each able to build it; on the kube backend,
/// in a namespace that can be a Kubernetes name.
fn run_strategies(scenario: &Scenario, chosen: Option<Vec<Strategy>>, backend: &session::BackendChoice) -> Result<Vec<Strategy>, Failure> {
    let strategies = chosen.unwrap_or_else(|| scenario.strategies.clone());
    scenario.check_strategies(&strategies).map_err(usage)?;
    if let session::BackendChoice::Kube(options) = backend {
        check_namespace(options.namespace.as_deref())?;
    }
    Ok(strategies)
}

/// How a run ended, as the exit code says it; the report is written when the run finished.
fn finish(outcome: session::Outcome, reports_root: Option<&Path>, signal: Option<i32>) -> Result<i32, Failure> {
    let results_dir = &outcome.results_dir;
    let summary = match outcome.ending {
        session::Ending::Interrupted => {
            eprintln!("interrupted: the results written so far are valid in {}", results_dir.display());
            return Ok(signal.unwrap_or(exit::INTERRUPTED));
        }
        session::Ending::Failed(e) => {
            let code = match e {
                runner::RunError::Scenario(_) => exit::USAGE,
                _ => exit::ENVIRONMENT,
            };
            let error = anyhow::Error::from(e).context(format!("run stopped; results so far are in {}", results_dir.display()));
            return Err(Failure { code, error });
        }
        session::Ending::Finished(summary) => summary,
    };
    if let Some(reports_root) = reports_root {
        let out = session::default_report_dir(reports_root, results_dir);
        match report::generate(results_dir, &out) {
            Ok(index) => println!("report: {}", index.display()),
            Err(e) => eprintln!("warning: could not write the report ({e}); `layerbench report {}` retries", results_dir.display()),
        }
    }
    println!("results: {}", results_dir.display());
    if let Some(refused) = &summary.refused {
        let level = match refused {
            layerbench::lanes::LevelError::TooLittleMemory { level, .. } => format!("concurrency {level}"),
            _ => "a concurrency level".into(),
        };
        eprintln!("stopped before {level}: the host cannot hold it (see the note above); the levels before it ran and are reported");
        return Ok(exit::ENVIRONMENT);
    }
    if summary.failed_jobs > 0 {
        eprintln!("{} of {} jobs failed; see the error column of {}", summary.failed_jobs, summary.jobs, results_dir.join("jobs.csv").display());
        return Ok(exit::REGRESSION_OR_FAILED_JOB);
    }
    Ok(exit::OK)
}

/// Ctrl-C, or SIGTERM as CI systems send when they cancel a job; `code` gets the exit code a shell
/// would report for the signal (130 or 143), since the run exits normally after cleaning up.
async fn interrupted(code: &std::sync::OnceLock<i32>) {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
    let signal = tokio::select! {
        _ = tokio::signal::ctrl_c() => exit::INTERRUPTED,
        _ = term.recv() => exit::TERMINATED,
    };
    let _ = code.set(signal);
}

#[cfg(test)]
mod tests {
    /// The README's table of strategies is the registry's, as `layerbench strategies --markdown` prints it:
    /// after editing a strategy, paste that output over the table.
    #[test]
    fn the_readmes_strategy_table_is_the_generated_one() {
        let readme = std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
        let section = &readme[readme.find("\n## Strategies\n").expect("a Strategies section")..];
        let table: Vec<&str> = section.lines().skip_while(|l| !l.starts_with('|')).take_while(|l| l.starts_with('|')).collect();
        let generated = super::strategies_markdown();
        assert_eq!(table, generated.lines().collect::<Vec<_>>(), "README.md's table differs: run `layerbench strategies --markdown`");
    }

    #[test]
    fn run_help_names_every_strategy_with_its_description() {
        let help = super::strategies_help();
        for strategy in layerbench::strategy::Strategy::all() {
            let line = help.lines().find(|l| l.trim_start().starts_with(&format!("{} ", strategy.name())));
            assert!(line.is_some_and(|l| l.ends_with(strategy.description)), "{strategy}: {help}");
        }
    }
}
