#![doc = include_str!("../README.md")]

pub mod api;
pub mod artifacts;
pub mod auth;
pub mod config;
pub mod deployer;
pub mod error;
pub mod extract;
pub mod fetcher;
pub mod gc;
pub mod lease;
pub mod metrics;
pub mod model;
pub mod openapi;
pub mod ports;
pub mod render;
pub mod routes;
pub mod runtime;
pub mod service;
pub mod state;
pub mod store;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
