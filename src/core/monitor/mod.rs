//! Checks over summaries: drift between a window and a baseline. Depends on the summary only.

pub(crate) mod drift;
