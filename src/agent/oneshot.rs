//! A one-value channel that can be waited on from a thread (with a timeout) or awaited
//! from any async runtime: the worker's answer to `flush` and `shutdown`. Hand-written so
//! that the library depends on no runtime.

use parking_lot::{Condvar, Mutex};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Instant;

struct Slot<T> {
    value: Option<T>,
    /// The sender is gone: no value will come.
    closed: bool,
    waker: Option<Waker>,
}

struct Inner<T> {
    slot: Mutex<Slot<T>>,
    ready: Condvar,
}

/// Gives the one value; dropped unused, it tells the receiver that none will come.
pub(crate) struct Sender<T>(Arc<Inner<T>>);

/// Receives the one value, blocking or as a future (`None`: the sender dropped unused).
pub(crate) struct Receiver<T>(Arc<Inner<T>>);

pub(crate) fn channel<T>() -> (Sender<T>, Receiver<T>) {
    let inner = Arc::new(Inner {
        slot: Mutex::new(Slot {
            value: None,
            closed: false,
            waker: None,
        }),
        ready: Condvar::new(),
    });
    (Sender(Arc::clone(&inner)), Receiver(inner))
}

impl<T> Sender<T> {
    pub(crate) fn send(self, value: T) {
        self.0.slot.lock().value = Some(value);
        // Drop closes the slot and wakes the receiver.
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        let waker = {
            let mut slot = self.0.slot.lock();
            slot.closed = true;
            slot.waker.take()
        };
        self.0.ready.notify_all();
        // Woken outside the lock: a waker may run the task's poll inline.
        if let Some(w) = waker {
            w.wake();
        }
    }
}

/// Why no value was received.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum RecvError {
    Timeout,
    Closed,
}

impl<T> Receiver<T> {
    /// Waits for the value until `deadline`.
    pub(crate) fn recv_until(&self, deadline: Instant) -> Result<T, RecvError> {
        let mut slot = self.0.slot.lock();
        loop {
            if let Some(v) = slot.value.take() {
                return Ok(v);
            }
            if slot.closed {
                return Err(RecvError::Closed);
            }
            if self.0.ready.wait_until(&mut slot, deadline).timed_out() {
                return slot.value.take().ok_or(RecvError::Timeout);
            }
        }
    }
}

impl<T> Future for Receiver<T> {
    type Output = Option<T>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        let mut slot = self.0.slot.lock();
        if let Some(v) = slot.value.take() {
            return Poll::Ready(Some(v));
        }
        if slot.closed {
            return Poll::Ready(None);
        }
        match &mut slot.waker {
            Some(w) => w.clone_from(cx.waker()),
            None => slot.waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Polls a future to completion on this thread, parking between wake-ups.
    fn block_on<F: Future>(f: F) -> F::Output {
        struct Unpark(std::thread::Thread);
        impl std::task::Wake for Unpark {
            fn wake(self: Arc<Self>) {
                self.0.unpark();
            }
        }
        let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
        let mut cx = Context::from_waker(&waker);
        let mut f = std::pin::pin!(f);
        loop {
            if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
                return v;
            }
            std::thread::park();
        }
    }

    #[test]
    fn a_value_sent_from_another_thread_wakes_the_future() {
        let (tx, rx) = channel();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            tx.send(7);
        });
        assert_eq!(block_on(rx), Some(7));
        t.join().unwrap();
    }

    #[test]
    fn a_dropped_sender_ends_both_kinds_of_wait() {
        let (tx, rx) = channel::<u8>();
        drop(tx);
        assert_eq!(
            rx.recv_until(Instant::now() + Duration::from_secs(60)),
            Err(RecvError::Closed)
        );
        let (tx, rx) = channel::<u8>();
        std::thread::spawn(move || drop(tx));
        assert_eq!(block_on(rx), None);
    }

    #[test]
    fn the_blocking_wait_times_out_then_still_gets_a_late_value() {
        let (tx, rx) = channel();
        assert_eq!(rx.recv_until(Instant::now()), Err(RecvError::Timeout));
        tx.send(1);
        assert_eq!(rx.recv_until(Instant::now()), Ok(1));
    }
}
