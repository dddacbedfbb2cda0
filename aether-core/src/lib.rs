#![doc = include_str!("../README.md")]

pub mod api;
pub mod deployment;
pub mod digest;
pub mod gzip;
pub mod lockfile;
pub mod manifest;
pub mod pack;
pub mod presign;
pub mod project;
pub mod provenance;
pub mod sbom;
pub mod selection;
pub mod signing;
pub mod timestamp;
pub mod unpack;
pub mod wire;
