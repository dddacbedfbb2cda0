pub mod completions;
pub mod deploy;
