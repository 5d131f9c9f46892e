//! A real HTTP/1.1 collector on 127.0.0.1 for the delivery tests, with scripted behaviour:
//! accept, answer a status, 429 with Retry-After, close mid-response, or never answer.
#![allow(dead_code)]

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Clone, Debug)]
pub enum Mode {
    /// 200 when the API key is right, 401 otherwise.
    Accept,
    /// Answer this status, store nothing.
    Status(u16),
    /// 429 with `Retry-After: n` seconds.
    TooMany(u64),
    /// Store the body, then close the connection in the middle of the status line: the agent
    /// sees an error and retries, the collector has a duplicate to drop.
    StoreThenClose,
    /// Read the request and never answer.
    Hang,
}

pub struct Request {
    pub at: Instant,
    pub method: String,
    pub path: String,
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
}

struct State {
    api_key: String,
    mode: Mutex<Mode>,
    script: Mutex<VecDeque<Mode>>,
    /// Every request received, whatever was answered.
    requests: Mutex<Vec<Request>>,
    /// Bodies stored (accepted, or stored before a broken answer).
    stored: Mutex<Vec<Vec<u8>>>,
    stop: AtomicBool,
    open: AtomicUsize,
}

pub struct Collector {
    pub addr: SocketAddr,
    state: Arc<State>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// A port nothing listens on (yet).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Collector {
    pub fn start(api_key: &str) -> Collector {
        Self::start_on(0, api_key)
    }

    pub fn start_on(port: u16, api_key: &str) -> Collector {
        let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(State {
            api_key: api_key.to_owned(),
            mode: Mutex::new(Mode::Accept),
            script: Mutex::new(VecDeque::new()),
            requests: Mutex::new(Vec::new()),
            stored: Mutex::new(Vec::new()),
            stop: AtomicBool::new(false),
            open: AtomicUsize::new(0),
        });
        let s = Arc::clone(&state);
        let thread = std::thread::spawn(move || {
            while !s.stop.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let s = Arc::clone(&s);
                        s.open.fetch_add(1, Ordering::Relaxed);
                        std::thread::spawn(move || {
                            let _ = serve(stream, &s);
                            s.open.fetch_sub(1, Ordering::Relaxed);
                        });
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Collector {
            addr,
            state,
            thread: Some(thread),
        }
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn set_mode(&self, mode: Mode) {
        *self.state.mode.lock().unwrap() = mode;
    }

    /// Behaviours for the next requests, one each, before the mode applies again.
    pub fn script(&self, modes: impl IntoIterator<Item = Mode>) {
        self.state.script.lock().unwrap().extend(modes);
    }

    pub fn requests(&self) -> usize {
        self.state.requests.lock().unwrap().len()
    }

    pub fn with_requests<T>(&self, f: impl FnOnce(&[Request]) -> T) -> T {
        f(&self.state.requests.lock().unwrap())
    }

    pub fn stored(&self) -> Vec<Vec<u8>> {
        self.state.stored.lock().unwrap().clone()
    }

    /// Stored summaries, each (instance, sequence) once: what a collector keeps.
    pub fn unique_summaries(&self) -> Vec<modelwatch::WindowSummary> {
        let mut seen = BTreeSet::new();
        self.stored()
            .iter()
            .map(|b| modelwatch::WindowSummary::decode(b).expect("the agent sends valid summaries"))
            .filter(|s| seen.insert((s.instance(), s.sequence())))
            .collect()
    }

    pub fn predictions(&self) -> u64 {
        self.unique_summaries()
            .iter()
            .map(|s| s.predictions())
            .sum()
    }

    pub fn wait_for(
        &self,
        what: &str,
        mut done: impl FnMut(&Collector) -> bool,
        timeout: Duration,
    ) {
        let start = Instant::now();
        while !done(self) {
            assert!(
                start.elapsed() < timeout,
                "collector: {what} not reached in {timeout:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        self.state.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(stream: TcpStream, s: &State) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let (method, path) = (
        parts.next().unwrap_or("").to_owned(),
        parts.next().unwrap_or("").to_owned(),
    );
    let mut headers = HashMap::new();
    loop {
        line.clear();
        reader.read_line(&mut line)?;
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
        }
    }
    let len: usize = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; len];
    reader.read_exact(&mut body)?;
    let mode = s
        .script
        .lock()
        .unwrap()
        .pop_front()
        .unwrap_or_else(|| s.mode.lock().unwrap().clone());
    let authorized =
        headers.get("authorization").map(String::as_str) == Some(&format!("Bearer {}", s.api_key));
    s.requests.lock().unwrap().push(Request {
        at: Instant::now(),
        method,
        path,
        headers,
        body: body.clone(),
    });
    let mut out = stream;
    let answer = |out: &mut TcpStream, status: u16, extra: &str| {
        write!(
            out,
            "HTTP/1.1 {status} X\r\nContent-Length: 2\r\nConnection: close\r\n{extra}\r\nok"
        )
    };
    match mode {
        Mode::Accept if authorized => {
            s.stored.lock().unwrap().push(body);
            answer(&mut out, 200, "")
        }
        Mode::Accept => answer(&mut out, 401, ""),
        Mode::Status(code) => answer(&mut out, code, ""),
        Mode::TooMany(secs) => answer(&mut out, 429, &format!("Retry-After: {secs}\r\n")),
        Mode::StoreThenClose => {
            s.stored.lock().unwrap().push(body);
            out.write_all(b"HTTP/1.1 20")
        }
        Mode::Hang => {
            while !s.stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(20));
            }
            Ok(())
        }
    }
}
