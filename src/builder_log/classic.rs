//! Parser for the classic builder's log.

use super::{LogParser, ParsedStep};
use crate::scenario::Dockerfile;
use crate::Millis;

pub struct ClassicParser {
    steps: Vec<ParsedStep>,
}

impl ClassicParser {
    pub fn new(_dockerfile: &Dockerfile) -> Self {
        ClassicParser { steps: vec![] }
    }
}

impl LogParser for ClassicParser {
    fn push_line(&mut self, _at_ms: Millis, _line: &str) {
        todo!("parse classic log lines")
    }
    fn current(&self) -> Option<&ParsedStep> {
        self.steps.last()
    }
    fn finish(&mut self, _end_ms: Millis) -> Vec<ParsedStep> {
        std::mem::take(&mut self.steps)
    }
}
