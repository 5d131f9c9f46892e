//! `modelwatch collect`: receives `POST /v1/windows` as `docs/delivery.md` specifies and
//! stores every valid summary in SQLite before acknowledging it.

use crate::store::{Store, Stored};
use modelwatch::WindowSummary;
use std::io::Read;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tiny_http::{Header, Method, Request, Response, Server};

/// Largest accepted body: the largest summary `WindowSummary::decode` accepts.
pub const MAX_BODY_BYTES: usize = modelwatch::MAX_SUMMARY_BYTES;

/// Counters of what the collector did, printed at exit.
#[derive(Default, Debug)]
pub struct Counters {
    pub stored: AtomicU64,
    pub duplicates: AtomicU64,
    pub unauthorized: AtomicU64,
    pub too_large: AtomicU64,
    pub invalid: AtomicU64,
    pub store_errors: AtomicU64,
}

pub struct Collector {
    server: Server,
    store: Mutex<Store>,
    keys: Vec<String>,
    pub counters: Counters,
    stopping: AtomicBool,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl Collector {
    /// Binds `listen` and opens the store. `keys`: the accepted API keys (at least one).
    pub fn bind(listen: &str, store: &Path, keys: Vec<String>) -> Result<Arc<Collector>, String> {
        if keys.is_empty() || keys.iter().any(String::is_empty) {
            return Err(
                "no API key: pass --api-key, --api-key-file or set MODELWATCH_API_KEY".into(),
            );
        }
        let store = Store::open(store)
            .map_err(|e| format!("cannot open the store {}: {e}", store.display()))?;
        let server = Server::http(listen).map_err(|e| format!("cannot listen on {listen}: {e}"))?;
        Ok(Arc::new(Collector {
            server,
            store: Mutex::new(store),
            keys,
            counters: Counters::default(),
            stopping: AtomicBool::new(false),
        }))
    }

    /// The address it listens on.
    pub fn addr(&self) -> std::net::SocketAddr {
        self.server.server_addr().to_ip().expect("an IP listener")
    }

    /// Serves on `threads` threads until [`stop`](Self::stop); requests being handled when
    /// it is called are finished (their summaries stored and acknowledged) first.
    pub fn serve(self: &Arc<Self>, threads: usize) {
        let workers: Vec<_> = (0..threads.max(1))
            .map(|_| {
                let me = Arc::clone(self);
                std::thread::spawn(move || {
                    while !me.stopping.load(Ordering::SeqCst) {
                        match me.server.recv() {
                            Ok(request) => me.handle(request),
                            Err(_) => break,
                        }
                    }
                })
            })
            .collect();
        for w in workers {
            let _ = w.join();
        }
    }

    /// Stops accepting; `serve` returns once in-flight requests are answered.
    pub fn stop(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        // Each call wakes one blocked `recv`; wake them all.
        for _ in 0..64 {
            self.server.unblock();
        }
    }

    fn handle(&self, mut request: Request) {
        let (status, body) = match (request.method(), request.url()) {
            (Method::Get, "/healthz") => (200, "ok".to_owned()),
            (Method::Post, "/v1/windows") => self.receive(&mut request),
            (_, "/v1/windows" | "/healthz") => (405, "method not allowed".to_owned()),
            _ => (404, "not found".to_owned()),
        };
        let content_type =
            Header::from_bytes("Content-Type", "text/plain; charset=utf-8").expect("valid header");
        let _ = request.respond(
            Response::from_string(body)
                .with_status_code(status)
                .with_header(content_type),
        );
    }

    fn receive(&self, request: &mut Request) -> (u16, String) {
        let authorized = request.headers().iter().any(|h| {
            h.field.equiv("Authorization")
                && h.value
                    .as_str()
                    .strip_prefix("Bearer ")
                    .is_some_and(|k| self.keys.iter().any(|key| key == k))
        });
        if !authorized {
            self.counters.unauthorized.fetch_add(1, Ordering::Relaxed);
            return (401, "missing or wrong API key".into());
        }
        if request.body_length().is_some_and(|n| n > MAX_BODY_BYTES) {
            self.counters.too_large.fetch_add(1, Ordering::Relaxed);
            return (413, format!("body over {MAX_BODY_BYTES} bytes"));
        }
        let mut body = Vec::new();
        if let Err(e) = request
            .as_reader()
            .take(MAX_BODY_BYTES as u64 + 1)
            .read_to_end(&mut body)
        {
            return (400, format!("cannot read the body: {e}"));
        }
        if body.len() > MAX_BODY_BYTES {
            self.counters.too_large.fetch_add(1, Ordering::Relaxed);
            return (413, format!("body over {MAX_BODY_BYTES} bytes"));
        }
        let summary = match WindowSummary::decode(&body) {
            Ok(s) => s,
            Err(e) => {
                self.counters.invalid.fetch_add(1, Ordering::Relaxed);
                return (400, e.to_string());
            }
        };
        let stored =
            self.store
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(&summary, &body, now_ms());
        match stored {
            Ok(Stored::New) => {
                self.counters.stored.fetch_add(1, Ordering::Relaxed);
                (200, "stored".into())
            }
            Ok(Stored::Duplicate) => {
                self.counters.duplicates.fetch_add(1, Ordering::Relaxed);
                (200, "duplicate".into())
            }
            Err(e) => {
                // Not acknowledged: the agent retries.
                self.counters.store_errors.fetch_add(1, Ordering::Relaxed);
                (503, format!("store error: {e}"))
            }
        }
    }
}

/// Runs `collect` until SIGINT or SIGTERM; returns the exit status.
pub fn run(listen: &str, store: &Path, keys: Vec<String>, threads: usize) -> i32 {
    let collector = match Collector::bind(listen, store, keys) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("modelwatch collect: {e}");
            return 2;
        }
    };
    let stopper = Arc::clone(&collector);
    if let Err(e) = ctrlc::set_handler(move || stopper.stop()) {
        eprintln!("modelwatch collect: cannot handle signals: {e}");
        return 2;
    }
    eprintln!(
        "modelwatch collect: listening on http://{} (store {})",
        collector.addr(),
        store.display()
    );
    collector.serve(threads);
    let c = &collector.counters;
    eprintln!(
        "modelwatch collect: stopped; stored {}, duplicates {}, unauthorized {}, too large {}, invalid {}, store errors {}",
        c.stored.load(Ordering::Relaxed),
        c.duplicates.load(Ordering::Relaxed),
        c.unauthorized.load(Ordering::Relaxed),
        c.too_large.load(Ordering::Relaxed),
        c.invalid.load(Ordering::Relaxed),
        c.store_errors.load(Ordering::Relaxed),
    );
    0
}
