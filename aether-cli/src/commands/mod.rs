pub mod completions;
pub mod connection;
pub mod deploy;
pub mod list;
pub mod login;
pub mod logs;
pub mod rollback;
pub mod status;
