//! The native module of the `modelwatch` Python package (`modelwatch._modelwatch`): the
//! Graphsignal logger's API on the modelwatch core. The Python layer
//! (`python/modelwatch/__init__.py`) adds exit and signal handling, the fork hook and the
//! numpy/pandas dispatch of batches; everything that touches values is here.
//!
//! - `convert`: Python values to modelwatch values (the one conversion function).
//! - `batch`: numpy and pandas columns read in place, folded with the GIL released.
//! - `agent`: the process's agent, its configuration, flush, shutdown and fork.
//! - `session`: the session handle.
//! - `summary`: `read_summary`.

mod agent;
mod batch;
mod convert;
mod session;
mod summary;

use pyo3::prelude::*;

#[pymodule]
fn _modelwatch(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("Error", m.py().get_type::<agent::Error>())?;
    m.add_class::<session::NativeSession>()?;
    m.add_function(wrap_pyfunction!(agent::configure, m)?)?;
    m.add_function(wrap_pyfunction!(agent::is_configured, m)?)?;
    m.add_function(wrap_pyfunction!(agent::flush, m)?)?;
    m.add_function(wrap_pyfunction!(agent::shutdown, m)?)?;
    m.add_function(wrap_pyfunction!(agent::stats, m)?)?;
    m.add_function(wrap_pyfunction!(agent::_after_fork_child, m)?)?;
    m.add_function(wrap_pyfunction!(summary::read_summary, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
