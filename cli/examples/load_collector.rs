//! A load generator for `modelwatch collect`: posts distinct summaries of the reference
//! workload's shape (13 features, 1,000 predictions each, ~11 KB encoded) over several
//! kept-alive connections, as a fleet of agents would, and prints the summaries stored per
//! second. Every summary has its own (instance, sequence), so none is a duplicate.
//!
//! ```sh
//! target/release/modelwatch collect --listen 127.0.0.1:9400 --api-key load-key --store /tmp/load.db &
//! cargo run --release -p modelwatch-cli --example load_collector -- 127.0.0.1:9400 load-key 20000 16
//! ```

use modelwatch::{SummaryBuilder, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

#[path = "../../tests/support/fraud_day.rs"]
mod fraud_day;
use fraud_day::Rng;

const HASH_KEY: [u8; 16] = *b"load-generator-k";

/// One window of 1,000 predictions shaped like the reference workload: ten lognormal
/// floats with 2 % missing, a 20-category string, a 10,000-id string, a flag.
fn template(window_start: i64) -> modelwatch::WindowSummary {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut b = SummaryBuilder::new("load", window_start, 60_000, HASH_KEY);
    let names: Vec<String> = (0..10).map(|i| format!("f{i}")).collect();
    let users: Vec<String> = (0..10_000).map(|i| format!("user-{i}")).collect();
    for _ in 0..1_000 {
        let mut row: Vec<(&str, Value<'_>)> = names
            .iter()
            .map(|n| {
                let v = (rng.next() > 0.02).then(|| (rng.next() * 4.0).exp());
                (n.as_str(), Value::from(v))
            })
            .collect();
        let cat = format!("cat-{}", (rng.next() * rng.next() * 20.0) as usize);
        row.push(("cat_small", Value::from(cat)));
        row.push((
            "user_id",
            Value::from(users[(rng.next() * 10_000.0) as usize].as_str()),
        ));
        row.push(("flag", Value::from(rng.next() < 0.3)));
        b.log_prediction(row, rng.next());
    }
    b.build()
}

/// POSTs `body` on a kept-alive connection; the status.
fn post(
    stream: &mut TcpStream,
    reader: &mut BufReader<TcpStream>,
    key: &str,
    body: &[u8],
) -> std::io::Result<u16> {
    let head = format!(
        "POST /v1/windows HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\nContent-Type: application/x-msgpack\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes())?;
    stream.write_all(body)?;
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let mut length = 0;
    loop {
        line.clear();
        reader.read_line(&mut line)?;
        if line == "\r\n" || line.is_empty() {
            break;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            length = v.trim().parse().unwrap_or(0);
        }
    }
    let mut answer = vec![0; length];
    reader.read_exact(&mut answer)?;
    Ok(status)
}

const USAGE: &str = "usage: load_collector [ADDRESS=127.0.0.1:9400] [API_KEY=load-key] [SUMMARIES=20000] [CONNECTIONS=16]
Posts SUMMARIES distinct window summaries (13 features, 1,000 predictions each) to
`modelwatch collect` at ADDRESS over CONNECTIONS kept-alive connections, and prints
the summaries stored per second. scripts/load-test.sh runs it with the collector's and
the database's CPU measured.";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().skip(1).any(|a| a == "-h" || a == "--help") {
        println!("{USAGE}");
        return Ok(());
    }
    let addr = args
        .get(1)
        .cloned()
        .unwrap_or_else(|| "127.0.0.1:9400".into());
    let key = args.get(2).cloned().unwrap_or_else(|| "load-key".into());
    let number = |i: usize, default: usize| -> Result<usize, String> {
        args.get(i)
            .map_or(Ok(default), |s| s.parse())
            .map_err(|e| format!("{e}: {:?}\n{USAGE}", args[i]))
    };
    let (total, connections) = (number(3, 20_000)?, number(4, 16)?);
    // The current minute, as a fleet's agents send it: the collector's watch merges each
    // summary into the window it evaluates, as it would in production.
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis() as i64;
    let window_start = now_ms - now_ms % 60_000;
    let template = template(window_start);
    let run = Instant::now().elapsed().as_nanos() as u64 ^ u64::from(std::process::id());
    // Distinct (instance, sequence) per summary, encoded before the clock starts.
    let bodies: Arc<Vec<Vec<u8>>> = Arc::new(
        (0..total)
            .map(|i| {
                let mut s = SummaryBuilder::new("load", window_start, 60_000, HASH_KEY)
                    .identity(run ^ (i / 1_000) as u64, 1 + (i % 1_000) as u64)
                    .build();
                s.merge(&template).expect("same key and deployment");
                s.encode()
            })
            .collect(),
    );
    println!(
        "{total} summaries of {} bytes over {connections} connections to {addr}",
        bodies[0].len()
    );
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let workers: Vec<_> = (0..connections)
        .map(|_| {
            let (bodies, next, addr, key) = (
                Arc::clone(&bodies),
                Arc::clone(&next),
                addr.clone(),
                key.clone(),
            );
            std::thread::spawn(move || -> std::io::Result<(usize, usize)> {
                let mut stream = TcpStream::connect(&addr)?;
                stream.set_nodelay(true)?;
                let mut reader = BufReader::new(stream.try_clone()?);
                let (mut stored, mut failed) = (0, 0);
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(body) = bodies.get(i) else {
                        return Ok((stored, failed));
                    };
                    match post(&mut stream, &mut reader, &key, body)? {
                        200 => stored += 1,
                        _ => failed += 1,
                    }
                }
            })
        })
        .collect();
    let (mut stored, mut failed) = (0, 0);
    for w in workers {
        let (s, f) = w.join().expect("no panic")?;
        stored += s;
        failed += f;
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{stored} stored, {failed} not, in {secs:.2} s: {:.0} summaries/s",
        stored as f64 / secs
    );
    Ok(())
}
