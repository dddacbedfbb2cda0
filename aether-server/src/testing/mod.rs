//! Test support shared by this crate's tests and the sdk's (feature `testing`).

pub mod kube;
pub mod postgres;
pub mod process;
pub mod s3;
pub mod secrets;
pub mod server;
