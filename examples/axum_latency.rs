//! `Session::log_prediction` timed inside a real axum handler, as a server calls it
//! (docs/benchmarks.md, "Inside an axum handler"): requests arrive over HTTP/1.1 at a
//! fixed rate, the handler first does its own work (writes a buffer of several MiB, as
//! the cold-cache benchmark does), then logs a row of the reference workload; only the
//! logging call is timed. The agent is the default one (one-minute windows into a
//! temporary folder), its worker sealing windows beside the server.
//!
//! ```sh
//! cargo run --release --example axum_latency -- [requests=10000] [per_second=500] [work_mib=8] [warm=none]
//! ```
//!
//! `warm` tells where the time of a cold call goes: `code` logs another row into another
//! session just before the timed call (its code warm, this session's data cold), `data`
//! into the same session (both warm); `none` times the call as a server makes it.
//!
//! Prints the median, p90 and p99 of the logging call, the same for an empty timed region
//! (the clock's own cost, included in every figure), and the rate reached.

#[path = "../tests/common/mod.rs"]
mod common;

use axum::extract::State;
use axum::routing::post;
use axum::Router;
use std::cell::RefCell;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

struct App {
    rows: Vec<common::Row>,
    session: modelwatch::Session,
    /// Logged into just before the timed call, if any (`warm`): another session, or the
    /// same one.
    warm: Option<modelwatch::Session>,
    work_bytes: usize,
    /// Nanoseconds of each logging call, and of an empty timed region.
    logging: Mutex<Vec<u64>>,
    clock: Mutex<Vec<u64>>,
}

thread_local! {
    /// The request's own memory: each runtime thread writes its own.
    static WORK: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

async fn predict(State(app): State<Arc<App>>, body: String) -> &'static str {
    let i = body.trim().parse::<usize>().unwrap_or(0) % app.rows.len();
    WORK.with(|w| {
        let mut w = w.borrow_mut();
        w.resize(app.work_bytes, 0);
        for line in w.chunks_mut(64) {
            line[0] = line[0].wrapping_add(1);
        }
        std::hint::black_box(&*w);
    });
    if let Some(warm) = &app.warm {
        let other = &app.rows[(i + 7) % app.rows.len()];
        warm.log_prediction(other.pairs(), other.prediction);
    }
    let row = &app.rows[i];
    let t0 = Instant::now();
    app.session.log_prediction(row.pairs(), row.prediction);
    let logging = t0.elapsed();
    let t1 = Instant::now();
    let clock = t1.elapsed();
    app.logging.lock().unwrap().push(logging.as_nanos() as u64);
    app.clock.lock().unwrap().push(clock.as_nanos() as u64);
    "ok"
}

fn quantiles(mut ns: Vec<u64>) -> String {
    ns.sort_unstable();
    let q = |p: f64| ns[((ns.len() - 1) as f64 * p).round() as usize];
    format!(
        "median {} ns, p90 {} ns, p99 {} ns",
        q(0.5),
        q(0.9),
        q(0.99)
    )
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let number = |i: usize, default: usize| {
        args.get(i).map_or(default, |a| {
            a.parse()
                .expect("requests, per_second and work_mib are numbers")
        })
    };
    let (requests, per_second, work_mib) = (number(0, 10_000), number(1, 500), number(2, 8));
    let warm = args.get(3).map_or("none", String::as_str);

    let dir = std::env::temp_dir().join(format!("modelwatch-axum-latency-{}", std::process::id()));
    let agent = modelwatch::Agent::start(modelwatch::Config::new("example-api-key").data_dir(&dir))
        .expect("agent");
    let session = agent.session("axum-latency");
    let warm_session = match warm {
        "none" => None,
        "code" => Some(agent.session("axum-latency-other")),
        "data" => Some(session.clone()),
        other => panic!("warm is none, code or data, not {other:?}"),
    };
    let app = Arc::new(App {
        rows: common::workload(),
        session,
        warm: warm_session,
        work_bytes: work_mib << 20,
        logging: Mutex::new(Vec::with_capacity(requests)),
        clock: Mutex::new(Vec::with_capacity(requests)),
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("listen");
    let addr = listener.local_addr().expect("address");
    let router = Router::new()
        .route("/predict", post(predict))
        .with_state(app.clone());
    runtime.spawn(async move { axum::serve(listener, router).await });

    // One client on one kept-alive connection, paced to the rate (it sends at once when
    // behind, so the rate reached is printed).
    let client = ureq::Agent::new_with_defaults();
    let url = format!("http://{addr}/predict");
    let period = Duration::from_secs(1) / per_second as u32;
    let start = Instant::now();
    for i in 0..requests {
        let due = start + period * i as u32;
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        client
            .post(&url)
            .send(i.to_string())
            .expect("request")
            .into_body()
            .read_to_string()
            .expect("response");
    }
    let elapsed = start.elapsed();

    let logging = std::mem::take(&mut *app.logging.lock().unwrap());
    let clock = std::mem::take(&mut *app.clock.lock().unwrap());
    println!(
        "{requests} requests in {:.1} s ({:.0}/s), {work_mib} MiB of the handler's own work each, warm: {warm}",
        elapsed.as_secs_f64(),
        requests as f64 / elapsed.as_secs_f64()
    );
    println!("log_prediction in the handler: {}", quantiles(logging));
    println!("an empty timed region:         {}", quantiles(clock));
    drop(agent);
    let _ = std::fs::remove_dir_all(&dir);
}
