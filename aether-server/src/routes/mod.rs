//! HTTP handlers, one module per resource; they translate between the wire and the services.

pub mod apps;
pub mod artifacts;
pub mod deployments;
pub mod health;
pub mod tokens;
pub mod uploads;
