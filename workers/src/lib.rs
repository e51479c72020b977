//! The export engine of pipeline-export: everything that turns a user's jobs into a file.
//!
//! A single pipeline serves every way an export leaves the service:
//!
//! ```text
//! PostgreSQL snapshot ──rows──▶ format writer ──bytes──▶ compression ──chunks──▶ sink
//! (query::Snapshot)            (format::*)              (compress)              (sink::ByteSink)
//! ```
//!
//! The synchronous HTTP endpoint plugs an HTTP body into the sink; background exports plug
//! object storage into it. Both get the same rows, the same field order and the same escaping.
//!
//! This crate never speaks HTTP, and never collects all rows of an export in memory: rows are
//! decoded one at a time from a streaming query and written into a bounded buffer.

pub mod cadence;
pub mod clock;
pub mod compress;
pub mod engine;
pub mod exports;
pub mod filters;
pub mod format;
pub mod import;
pub mod job;
pub mod links;
pub mod mail;
pub mod metrics;
pub mod query;
pub mod queue;
pub mod schedules;
pub mod sink;
pub mod storage;
pub mod tasks;
pub mod timestamp;

pub use compress::Compression;
pub use engine::{ExportError, ExportPlan, ExportSummary, run_export};
pub use filters::{ExportFilters, FilterError, Status};
pub use format::Format;
pub use job::{Field, JobRecord};
pub use query::{ExportQuery, Snapshot};
pub use sink::{ByteSink, SinkError};
