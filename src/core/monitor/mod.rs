//! Monitoring over time: checks of each window against a baseline, evidence accumulated
//! per check and subject, and incidents that open once and close once. Pure: windows come
//! in, incidents and their events go out; time is the windows' own.
//!
//! Depends on the summary only. The design and its measured false-alarm rates are in
//! `docs/monitoring.md`.

mod checks;
pub(crate) mod drift;
mod engine;

pub use engine::{
    Baseline, ConstraintFailure, Incident, IncidentEvent, IncidentKind, Monitor, MonitorError,
    DEFAULT_CLOSE_AFTER, DEFAULT_THRESHOLD,
};
