//! A team's real history as a pipeline: [`profile`] says which Dockerfile step each commit of a repository
//! (`crate::git`) first changes; [`scenario`] is `layerbench scenario from-git`, which writes a scenario whose
//! pipeline runs are the commits.

pub mod profile;
pub mod scenario;
