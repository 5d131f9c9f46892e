//! Shutdown of the agents still running when the process exits (Unix): an agent kept in a
//! `static` is never dropped, and `std::process::exit` runs no destructor, but both run the
//! C library's `atexit` handlers. The handler asks every agent still registered to shut
//! down (seal the current windows, marked partial, and deliver) and waits up to each one's
//! shutdown timeout, all at once. An agent shut down or dropped before leaves the registry.

use super::oneshot;
use super::worker::{Control, Request};
use super::Agent;
use parking_lot::Mutex;
use std::sync::mpsc::SyncSender;
use std::time::{Duration, Instant};

struct Running {
    id: u64,
    /// The process that started the agent: a child made by `fork()` inherits this registry
    /// but not the agent's threads, and must not wait at its exit for answers that never come.
    pid: u32,
    control: SyncSender<Control>,
    timeout: Duration,
}

static RUNNING: Mutex<Vec<Running>> = Mutex::new(Vec::new());

/// Registers a started agent; the handler is installed with the first one.
pub(crate) fn register(id: u64, control: SyncSender<Control>, timeout: Duration) {
    static INSTALL: std::sync::Once = std::sync::Once::new();
    INSTALL.call_once(|| {
        // SAFETY: registers a plain `extern "C"` function; failure only means no hook.
        unsafe {
            libc::atexit(on_exit);
        }
    });
    RUNNING.lock().push(Running {
        id,
        pid: std::process::id(),
        control,
        timeout,
    });
}

/// Unregisters an agent that is shutting down on its own.
pub(crate) fn unregister(id: u64) {
    RUNNING.lock().retain(|r| r.id != id);
}

extern "C" fn on_exit() {
    // Taken out so that the lock is not held while waiting (and a second exit finds none).
    let running = std::mem::take(&mut *RUNNING.lock());
    let pid = std::process::id();
    let (ours, inherited): (Vec<_>, Vec<_>) = running.into_iter().partition(|r| r.pid == pid);
    // Not even dropped: a channel's internals may be locked by a thread the fork left behind.
    std::mem::forget(inherited);
    let waits: Vec<_> = ours
        .into_iter()
        .filter_map(|r| {
            let (reply, rx) = oneshot::channel();
            let request = Request {
                reply,
                deadline: Agent::worker_deadline(r.timeout),
            };
            r.control
                .try_send(Control::Shutdown(request))
                .ok()
                .map(|()| (rx, Instant::now() + r.timeout))
        })
        .collect();
    for (rx, until) in waits {
        let _ = rx.recv_until(until);
    }
}
