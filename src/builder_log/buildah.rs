//! Parser for the buildah builder's log.

use super::{LogParser, ParsedStep};
use crate::scenario::Dockerfile;
use crate::Millis;

pub struct BuildahParser {
    steps: Vec<ParsedStep>,
}

impl BuildahParser {
    pub fn new(_dockerfile: &Dockerfile) -> Self {
        BuildahParser { steps: vec![] }
    }
}

impl LogParser for BuildahParser {
    fn push_line(&mut self, _at_ms: Millis, _line: &str) {
        todo!("parse buildah log lines")
    }
    fn current(&self) -> Option<&ParsedStep> {
        self.steps.last()
    }
    fn finish(&mut self, _end_ms: Millis) -> Vec<ParsedStep> {
        std::mem::take(&mut self.steps)
    }
}
