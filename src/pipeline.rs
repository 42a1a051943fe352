//! The name of a pipeline run (`cold`, `code-change`): what a scenario calls each CI run, and every record,
//! weight and comparison row carries.

/// A pipeline run's name (`cold`, `code-change`), as the scenario gives it and every record carries it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct PipelineRunName(String);

impl PipelineRunName {
    pub fn new(name: impl Into<String>) -> Self {
        PipelineRunName(name.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for PipelineRunName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(&self.0)
    }
}

impl PartialEq<str> for PipelineRunName {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for PipelineRunName {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl From<&str> for PipelineRunName {
    fn from(name: &str) -> Self {
        PipelineRunName(name.to_string())
    }
}

impl AsRef<str> for PipelineRunName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl std::borrow::Borrow<str> for PipelineRunName {
    fn borrow(&self) -> &str {
        &self.0
    }
}
