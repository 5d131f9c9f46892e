//! A minimal HTTP/1.1 client for the command's tests: raw requests on a real socket.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::time::Duration;

/// A minimal HTTP/1.1 exchange: (status, body); status 0 if the connection failed or
/// nothing came back within 10 s.
pub fn http(addr: &str, request: &[u8]) -> (u16, String) {
    let Ok(mut s) = TcpStream::connect(addr) else {
        return (0, String::new());
    };
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    if s.write_all(request).is_err() {
        return (0, String::new());
    }
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    let status = answer
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (
        status,
        answer.split("\r\n\r\n").nth(1).unwrap_or("").to_owned(),
    )
}

/// `POST /v1/windows` with `body` under `key`.
pub fn post(addr: &str, key: &str, body: &[u8]) -> (u16, String) {
    let mut req = format!(
        "POST /v1/windows HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\nContent-Type: application/x-msgpack\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(body);
    http(addr, &req)
}

/// A fresh folder for a test's files, named after its suite, its tag and this process.
#[allow(dead_code)] // not every suite that speaks HTTP makes folders
pub fn temp_dir(suite: &str, tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("modelwatch-{suite}-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A port free on 127.0.0.1 now (the system's pick), for a server the test starts.
#[allow(dead_code)]
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
