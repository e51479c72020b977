//! pipeline-export: gives PIPELINE users their job-search data back.
//!
//! This crate is the front: configuration, authentication, the HTTP API and the command
//! line. Everything that produces an export lives in the `workers` crate; the HTTP layer only
//! validates, authenticates and hands the bytes to the client.

pub mod auth;
pub mod cli;
pub mod config;
pub mod db;
pub mod doctor;
pub mod http;
pub mod local_export;
pub mod progress;
pub mod seed;
pub mod telemetry;
