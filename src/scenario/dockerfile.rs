//! The Dockerfile's stages and instructions, numbered the way builders number their steps.

/// A parsed Dockerfile.
#[derive(Debug, Clone, PartialEq)]
pub struct Dockerfile {
    pub stages: Vec<Stage>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Stage {
    /// 0-based position among the Dockerfile's stages.
    pub index: usize,
    /// The `AS name`, if any.
    pub name: Option<String>,
    /// The image named by `FROM`.
    pub base: String,
    /// Every instruction of the stage, its `FROM` first.
    pub instructions: Vec<Instruction>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Instruction {
    /// 1-based position in the whole Dockerfile, as the classic builder's `Step N/M` counts.
    pub step: u32,
    /// The instruction as written, continuation lines joined.
    pub text: String,
    /// 1-based line in the Dockerfile where the instruction starts.
    pub line: usize,
}

impl Stage {
    /// The stage's name, or its index when it has none (what `--target` and CSV `stage` use).
    pub fn label(&self) -> String {
        self.name.clone().unwrap_or_else(|| self.index.to_string())
    }
}

impl Dockerfile {
    pub fn total_steps(&self) -> u32 {
        self.stages.iter().map(|s| s.instructions.len() as u32).sum()
    }

    /// All instructions in order with the stage each belongs to.
    pub fn steps(&self) -> impl Iterator<Item = (&Stage, &Instruction)> {
        self.stages.iter().flat_map(|s| s.instructions.iter().map(move |i| (s, i)))
    }

    pub fn step(&self, step: u32) -> Option<(&Stage, &Instruction)> {
        self.steps().find(|(_, i)| i.step == step)
    }

    pub fn final_stage(&self) -> &Stage {
        self.stages.last().expect("a parsed Dockerfile has at least one stage")
    }
}
