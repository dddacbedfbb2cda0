#![doc = include_str!("../README.md")]

pub mod block_cache;
pub mod build;
pub mod client;
pub mod config;
pub mod connect;
pub mod deploy;
pub mod describe;
pub mod error;
pub mod install;
pub mod outputs;
pub mod settings;
pub mod status;
pub mod toolchain;
pub mod upload;

pub use build::{BuildEvent, BuildOptions, BuildReport, Phase, build};
pub use deploy::{DeployEvent, DeployOptions, DeployReport, deploy};
pub use error::{Error, ErrorKind};
