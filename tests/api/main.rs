//! Integration tests over real HTTP against a real PostgreSQL. One binary, so the database is
//! created and migrated once per run; every test makes its own users.

mod auth;
mod browser;
mod cli;
mod deploy;
mod export;
mod exports;
mod faults;
mod filters;
mod formats;
mod helpers;
mod import;
mod limits;
mod metrics;
mod openapi;
mod reports;
mod schedules;
mod security;
