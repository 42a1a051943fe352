//! The Kubernetes backend: each CI job is a pod in a per-run namespace.
