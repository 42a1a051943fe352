//! Drives a scenario: iterations x pipeline runs x strategies, writing results as each job ends.
