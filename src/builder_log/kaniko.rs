//! Parser for the kaniko builder's log.

use super::{LogParser, ParsedStep};
use crate::scenario::Dockerfile;
use crate::Millis;

pub struct KanikoParser {
    steps: Vec<ParsedStep>,
}

impl KanikoParser {
    pub fn new(_dockerfile: &Dockerfile) -> Self {
        KanikoParser { steps: vec![] }
    }
}

impl LogParser for KanikoParser {
    fn push_line(&mut self, _at_ms: Millis, _line: &str) {
        todo!("parse kaniko log lines")
    }
    fn current(&self) -> Option<&ParsedStep> {
        self.steps.last()
    }
    fn finish(&mut self, _end_ms: Millis) -> Vec<ParsedStep> {
        std::mem::take(&mut self.steps)
    }
}
