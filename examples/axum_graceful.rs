//! An axum server with graceful shutdown and modelwatch: the pattern of `docs/delivery.md`.
//!
//! On SIGTERM or Ctrl-C the server stops accepting, finishes the requests under way, then
//! shuts modelwatch down without blocking the runtime (`Guard::shutdown_async`), so the
//! last window, partial, is delivered, and exits with its own status.
//!
//! ```text
//! MODELWATCH_ENDPOINT=http://127.0.0.1:8080 cargo run --example axum_graceful
//! curl -d 'some input' http://127.0.0.1:3000/predict
//! ```
//!
//! Environment: `MODELWATCH_ENDPOINT` (a collector; else summaries go to
//! `./modelwatch-data`), `MODELWATCH_HASH_KEY` (32 hex digits; an endpoint needs one),
//! `PORT` (default 3000; 0 picks a free one). It prints `listening on <address>` once ready.

use axum::routing::post;
use axum::Router;
use std::process::ExitCode;
use std::time::Duration;

/// A stand-in for a model: a score from the input's length.
async fn predict(body: String) -> String {
    let score = (body.len() % 100) as f64 / 100.0;
    modelwatch::session("axum-example").log_prediction([("length", body.len() as f64)], score);
    format!("{score}\n")
}

/// Resolves on Ctrl-C or SIGTERM: the server's own handling. modelwatch's `signals`
/// feature, if on, sees that the host handles them and only flushes.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let mut config = modelwatch::Config::new("example-api-key")
        .window(Duration::from_secs(60))
        .exit_on_signal(cfg!(feature = "signals"));
    if let Ok(endpoint) = std::env::var("MODELWATCH_ENDPOINT") {
        config = config.endpoint(endpoint);
    }
    // Configured before the server installs its signal handling: the natural order.
    let guard = match modelwatch::configure(config) {
        Ok(g) => g,
        Err(e) => {
            eprintln!("modelwatch: {e}");
            return ExitCode::from(2);
        }
    };
    let port: u16 = std::env::var("PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(3000);
    let listener = match tokio::net::TcpListener::bind(("127.0.0.1", port)).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("cannot listen on port {port}: {e}");
            return ExitCode::from(2);
        }
    };
    if let Ok(addr) = listener.local_addr() {
        println!("listening on {addr}");
    }
    let app = Router::new().route("/predict", post(predict));
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await;
    // Every request has been answered: seal and deliver the last window, awaited, not
    // blocking a runtime thread.
    let delivered = guard.shutdown_async(Duration::from_secs(5)).await;
    match (served, delivered) {
        (Ok(()), Ok(())) => ExitCode::SUCCESS,
        (served, delivered) => {
            if let Err(e) = served {
                eprintln!("server: {e}");
            }
            if let Err(e) = delivered {
                eprintln!("modelwatch: {e}");
            }
            ExitCode::from(1)
        }
    }
}
