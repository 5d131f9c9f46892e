//! Runs `examples/axum_graceful.rs` as users would: start the server, send it requests,
//! SIGTERM it, and check that the last window reached a real collector on 127.0.0.1 and
//! that the process exited with the server's own status (its graceful shutdown ran to the
//! end, modelwatch did not cut it short).
#![cfg(unix)]

mod common;

use common::collector::Collector;
use std::io::{BufRead, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};

const REQUESTS: u64 = 50;

/// The example's binary, built by `cargo test` beside this test's.
fn example_binary() -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    let path = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>/deps")
        .join("examples")
        .join("axum_graceful");
    assert!(
        path.exists(),
        "{} not built: run through cargo test, which builds the examples",
        path.display()
    );
    path
}

fn post(addr: &str, body: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    write!(
        s,
        "POST /predict HTTP/1.1\r\nHost: {addr}\r\nContent-Type: text/plain\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    answer
}

#[test]
fn the_axum_example_delivers_its_last_window_on_sigterm_and_exits_with_its_own_status() {
    let collector = Collector::start("example-api-key");
    let mut server = Command::new(example_binary())
        .env("PORT", "0")
        .env("MODELWATCH_ENDPOINT", collector.endpoint())
        .env("MODELWATCH_HASH_KEY", "000102030405060708090a0b0c0d0e0f")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut out = std::io::BufReader::new(server.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();
    for i in 0..REQUESTS {
        let answer = post(&addr, &"x".repeat(i as usize + 1));
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    }
    assert!(Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .unwrap()
        .success());
    let status = server.wait().unwrap();
    assert_eq!(
        status.code(),
        Some(0),
        "the server's own status: {status:?}"
    );
    let summaries = collector.unique_summaries();
    assert_eq!(
        collector.predictions(),
        REQUESTS,
        "every request's prediction"
    );
    assert!(
        summaries.iter().any(|s| s.is_partial()),
        "the last window, sealed at shutdown, arrived"
    );
}
