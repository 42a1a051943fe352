//! Orchestration tests against a scripted API server (kube-rs mock-service pattern).
