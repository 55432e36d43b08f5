//! A small fault-injecting HTTP/1.1 server on 127.0.0.1 for the fetch
//! tests, plain or TLS (rustls).
//!
//! It serves in-memory resources with `ETag`, `Last-Modified`,
//! `Accept-Ranges`, answers `Range` (honouring `If-Range`),
//! `If-None-Match` and `If-Modified-Since`, and logs every request. Faults
//! are queued per path and used up one per request: an error status, a
//! body cut off after some bytes, a stall mid-body, a delay before the
//! answer. One thread per connection, one request per connection
//! (`Connection: close`); a request in absolute form (through a proxy) is
//! served by its path.

#![allow(dead_code)]

use std::collections::{HashMap, VecDeque};
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

/// A file the server publishes.
#[derive(Clone, Debug)]
pub struct Resource {
    /// The bytes.
    pub body: Vec<u8>,
    /// `ETag` sent (and matched), when any.
    pub etag: Option<String>,
    /// `Last-Modified` sent (and matched), when any.
    pub last_modified: Option<String>,
    /// Whether `Range` requests are answered with 206.
    pub ranges: bool,
}

impl Resource {
    /// `body` with a strong ETag derived from its contents, a fixed
    /// Last-Modified and range support.
    pub fn new(body: impl Into<Vec<u8>>) -> Resource {
        let body = body.into();
        let sum = body
            .iter()
            .fold(0u64, |h, &b| h.wrapping_mul(31).wrapping_add(u64::from(b)));
        Resource {
            etag: Some(format!("\"{}-{sum:x}\"", body.len())),
            last_modified: Some("Wed, 21 Oct 2015 07:28:00 GMT".into()),
            ranges: true,
            body,
        }
    }

    /// Without range support (always 200 with the whole body).
    pub fn no_ranges(mut self) -> Resource {
        self.ranges = false;
        self
    }

    /// With this ETag (`None`: no ETag).
    pub fn etag(mut self, etag: Option<&str>) -> Resource {
        self.etag = etag.map(str::to_owned);
        self
    }
}

/// A fault for one request.
#[derive(Clone, Debug)]
pub enum Fault {
    /// Answer with this status and extra headers instead.
    Status(u16, Vec<(String, String)>),
    /// Send the headers (announcing the full length) and this many body
    /// bytes, then close the connection.
    Cut(usize),
    /// Send this many body bytes, wait, then send the rest.
    Stall(usize, Duration),
    /// Wait before answering.
    Delay(Duration),
}

/// One request the server received.
#[derive(Clone, Debug)]
pub struct Logged {
    /// The method.
    pub method: String,
    /// The request target as sent (absolute form through a proxy).
    pub target: String,
    /// The path (with query).
    pub path: String,
    /// Headers, names lower-cased.
    pub headers: Vec<(String, String)>,
    /// The status answered.
    pub status: u16,
}

impl Logged {
    /// The value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_str())
    }
}

#[derive(Default)]
struct State {
    resources: Mutex<HashMap<String, Resource>>,
    faults: Mutex<HashMap<String, VecDeque<Fault>>>,
    log: Mutex<Vec<Logged>>,
    connections: AtomicUsize,
    active: AtomicUsize,
    max_active: AtomicUsize,
}

/// A running server; stops when dropped.
pub struct Server {
    addr: SocketAddr,
    scheme: &'static str,
    state: Arc<State>,
    stop: Arc<AtomicBool>,
}

impl Server {
    /// A plain HTTP server on an ephemeral port.
    pub fn http() -> Server {
        Server::start(None)
    }

    /// An HTTPS server with this certificate chain and PKCS#8 key (DER).
    pub fn https(cert: Vec<u8>, key: Vec<u8>) -> Server {
        use rustls::pki_types::{CertificateDer, PrivatePkcs8KeyDer};
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("tls versions")
            .with_no_client_auth()
            .with_single_cert(
                vec![CertificateDer::from(cert)],
                PrivatePkcs8KeyDer::from(key).into(),
            )
            .expect("server certificate");
        Server::start(Some(Arc::new(config)))
    }

    fn start(tls: Option<Arc<rustls::ServerConfig>>) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let scheme = if tls.is_some() { "https" } else { "http" };
        let state = Arc::new(State::default());
        let stop = Arc::new(AtomicBool::new(false));
        let (st, sp) = (state.clone(), stop.clone());
        thread::spawn(move || {
            for conn in listener.incoming() {
                if sp.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                st.connections.fetch_add(1, Ordering::SeqCst);
                let (st, tls) = (st.clone(), tls.clone());
                thread::spawn(move || {
                    let _ = serve_connection(conn, &st, tls);
                });
            }
        });
        Server { addr, scheme, state, stop }
    }

    /// The server's port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The URL of `path` (starting with `/`).
    pub fn url(&self, path: &str) -> String {
        format!("{}://{}{path}", self.scheme, self.addr)
    }

    /// Publishes `res` at `path` (replacing what was there).
    pub fn put(&self, path: &str, res: Resource) {
        self.state.resources.lock().expect("lock").insert(path.into(), res);
    }

    /// Queues `fault` for the next request of `path` not yet faulted.
    pub fn fault(&self, path: &str, fault: Fault) {
        let mut f = self.state.faults.lock().expect("lock");
        f.entry(path.into()).or_default().push_back(fault);
    }

    /// Every request received so far for `path` (all when `None`).
    pub fn requests(&self, path: Option<&str>) -> Vec<Logged> {
        let log = self.state.log.lock().expect("lock");
        log.iter()
            .filter(|r| path.is_none_or(|p| r.path == p))
            .cloned()
            .collect()
    }

    /// TCP connections accepted so far.
    pub fn connections(&self) -> usize {
        self.state.connections.load(Ordering::SeqCst)
    }

    /// The most requests that were being answered at the same time.
    pub fn max_active(&self) -> usize {
        self.state.max_active.load(Ordering::SeqCst)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(self.addr);
    }
}

/// Serves the one request of a connection (after the TLS handshake).
fn serve_connection(
    tcp: TcpStream,
    state: &State,
    tls: Option<Arc<rustls::ServerConfig>>,
) -> io::Result<()> {
    tcp.set_read_timeout(Some(Duration::from_secs(10)))?;
    tcp.set_nodelay(true)?;
    let sock = tcp.try_clone()?;
    let complete = match tls {
        None => serve(&mut &tcp, state)?,
        Some(cfg) => {
            let conn = rustls::ServerConnection::new(cfg)
                .map_err(io::Error::other)?;
            let mut tls = rustls::StreamOwned::new(conn, tcp);
            let complete = serve(&mut tls, state)?;
            if complete {
                tls.conn.send_close_notify();
                tls.flush()?;
            }
            complete
        }
    };
    if !complete {
        // A cut: close at once, the body short of its announced length.
        let _ = sock.shutdown(Shutdown::Both);
        return Ok(());
    }
    let _ = sock.shutdown(Shutdown::Write);
    // Wait for the client to close its side, so the close is orderly.
    let mut sink = [0u8; 256];
    while matches!((&sock).read(&mut sink), Ok(n) if n > 0) {}
    Ok(())
}

/// The parsed request head.
struct Request {
    method: String,
    target: String,
    path: String,
    headers: Vec<(String, String)>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// Reads the request head (up to the blank line).
fn read_head(stream: &mut impl Read) -> io::Result<Request> {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte)? == 0 || buf.len() > 64 * 1024 {
            return Err(io::Error::other("incomplete request head"));
        }
        buf.push(byte[0]);
    }
    let text = String::from_utf8_lossy(&buf);
    let mut lines = text.split("\r\n");
    let mut first = lines.next().unwrap_or("").split(' ');
    let method = first.next().unwrap_or("").to_owned();
    let target = first.next().unwrap_or("").to_owned();
    let path = match target.split_once("://") {
        Some((_, rest)) => {
            rest.find('/').map_or("/".into(), |i| rest[i..].to_owned())
        }
        None => target.clone(),
    };
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Ok(Request { method, target, path, headers })
}

/// What to send: status, headers and the body bytes.
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        206 => "Partial Content",
        304 => "Not Modified",
        403 => "Forbidden",
        404 => "Not Found",
        416 => "Range Not Satisfiable",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Other",
    }
}

/// The answer to `req` from the published resources, ignoring faults.
fn answer(req: &Request, res: Option<&Resource>) -> Answer {
    let Some(res) = res else {
        return Answer {
            status: 404,
            headers: vec![],
            body: b"not found\n".to_vec(),
        };
    };
    let mut headers = Vec::new();
    if let Some(e) = &res.etag {
        headers.push(("ETag".to_owned(), e.clone()));
    }
    if let Some(lm) = &res.last_modified {
        headers.push(("Last-Modified".to_owned(), lm.clone()));
    }
    let matches = |v: &str| {
        res.etag.as_deref() == Some(v)
            || res.last_modified.as_deref() == Some(v)
    };
    let not_modified = match req.header("if-none-match") {
        Some(inm) => res
            .etag
            .as_deref()
            .is_some_and(|e| inm.split(',').any(|t| t.trim() == e)),
        None => req
            .header("if-modified-since")
            .is_some_and(|d| res.last_modified.as_deref() == Some(d)),
    };
    if not_modified {
        return Answer { status: 304, headers, body: vec![] };
    }
    if res.ranges {
        headers.push(("Accept-Ranges".to_owned(), "bytes".to_owned()));
    }
    let range = req
        .header("range")
        .filter(|_| res.ranges)
        .filter(|_| req.header("if-range").is_none_or(matches))
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.split_once('-'))
        .and_then(|(a, _)| a.parse::<usize>().ok());
    let len = res.body.len();
    match range {
        Some(start) if start >= len => {
            headers
                .push(("Content-Range".to_owned(), format!("bytes */{len}")));
            Answer { status: 416, headers, body: vec![] }
        }
        Some(start) => {
            headers.push((
                "Content-Range".to_owned(),
                format!("bytes {start}-{}/{len}", len - 1),
            ));
            Answer { status: 206, headers, body: res.body[start..].to_vec() }
        }
        None => Answer { status: 200, headers, body: res.body.clone() },
    }
}

/// Counts a request in flight while alive.
struct Active<'a>(&'a State);

impl<'a> Active<'a> {
    fn new(state: &'a State) -> Active<'a> {
        let now = state.active.fetch_add(1, Ordering::SeqCst) + 1;
        state.max_active.fetch_max(now, Ordering::SeqCst);
        Active(state)
    }
}

impl Drop for Active<'_> {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Answers one request; false when the answer was cut off on purpose.
fn serve(stream: &mut (impl Read + Write), state: &State) -> io::Result<bool> {
    let req = read_head(stream)?;
    let _active = Active::new(state);
    let fault = state
        .faults
        .lock()
        .expect("lock")
        .get_mut(&req.path)
        .and_then(VecDeque::pop_front);
    let mut ans = match &fault {
        Some(Fault::Status(code, extra)) => Answer {
            status: *code,
            headers: extra.clone(),
            body: format!("status {code}\n").into_bytes(),
        },
        _ => {
            let res =
                state.resources.lock().expect("lock").get(&req.path).cloned();
            answer(&req, res.as_ref())
        }
    };
    state.log.lock().expect("lock").push(Logged {
        method: req.method.clone(),
        target: req.target.clone(),
        path: req.path.clone(),
        headers: req.headers.clone(),
        status: ans.status,
    });
    if let Some(Fault::Delay(d)) = &fault {
        thread::sleep(*d);
    }
    if req.method == "HEAD" {
        ans.body.clear();
    }
    let mut head =
        format!("HTTP/1.1 {} {}\r\n", ans.status, reason(ans.status));
    for (n, v) in &ans.headers {
        head.push_str(&format!("{n}: {v}\r\n"));
    }
    head.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n",
        ans.body.len()
    ));
    stream.write_all(head.as_bytes())?;
    match fault {
        Some(Fault::Cut(n)) => {
            stream.write_all(&ans.body[..n.min(ans.body.len())])?;
            stream.flush()?;
            return Ok(false);
        }
        Some(Fault::Stall(n, wait)) => {
            let n = n.min(ans.body.len());
            stream.write_all(&ans.body[..n])?;
            stream.flush()?;
            thread::sleep(wait);
            stream.write_all(&ans.body[n..])?;
        }
        _ => stream.write_all(&ans.body)?,
    }
    stream.flush()?;
    Ok(true)
}
