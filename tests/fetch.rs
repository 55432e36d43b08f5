//! `fwload fetch` and the `fetch` library against a fault-injecting HTTP
//! server on 127.0.0.1 (see `fetch/http_server.rs`): retries, resume,
//! checksums, conditional requests, parallelism, rate limit, TLS,
//! proxies and datasets. Each test has its own server and folder.

use std::path::Path;
use std::process::{Command, Output};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use fwload::fetch::{
    FetchError, FetchOptions, FetchOutcome, FetchProgress, NoProgress, Source,
    Status, fetch_all,
};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::http_server::{Fault, Resource, Server};
use crate::util::{Dir, stderr, stdout};

// ------------------------------------------------------------- helpers

/// `n` bytes that do not repeat in short cycles.
fn data(n: usize, seed: u8) -> Vec<u8> {
    let mut x = 0x9e37_79b9_u32 ^ u32::from(seed);
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 24) as u8
        })
        .collect()
}

fn sha(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// Runs the binary with `args`, with no proxy from the environment.
fn fetch_cmd(args: &[&str]) -> Output {
    fetch_cmd_env(args, &[])
}

fn fetch_cmd_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_fwload"));
    cmd.arg("fetch").args(args);
    for v in [
        "HTTP_PROXY",
        "http_proxy",
        "HTTPS_PROXY",
        "https_proxy",
        "ALL_PROXY",
        "all_proxy",
    ] {
        cmd.env_remove(v);
    }
    cmd.env("NO_PROXY", "127.0.0.1").env("no_proxy", "127.0.0.1");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run fwload")
}

fn code(o: &Output) -> i32 {
    o.status.code().expect("exit code")
}

fn manifest(dir: &Path) -> Value {
    let text = std::fs::read_to_string(dir.join("fwload-manifest.json"))
        .expect("manifest");
    serde_json::from_str(&text).expect("manifest json")
}

/// Asserts the manifest entry of `name` describes `body` from `url`.
fn assert_manifest(dir: &Path, name: &str, url: &str, body: &[u8]) {
    let m = manifest(dir);
    let e = &m["files"][name];
    assert_eq!(e["url"], url, "{m:#}");
    assert_eq!(e["size"], body.len() as u64, "{m:#}");
    assert_eq!(e["sha256"], sha(body), "{m:#}");
    assert!(e["fetched"].as_str().is_some_and(|t| t.ends_with('Z')), "{m:#}");
    assert!(e["checked"].is_string(), "{m:#}");
}

/// No partial or temporary file is left in `dir`.
fn assert_no_leftovers(dir: &Path) {
    for entry in std::fs::read_dir(dir).expect("read dir") {
        let name = entry.expect("entry").file_name();
        let name = name.to_string_lossy();
        assert!(
            !name.ends_with(".part")
                && !name.ends_with(".part.json")
                && !name.ends_with(".tmp"),
            "leftover {name}"
        );
    }
}

fn options(dir: &Path) -> FetchOptions {
    FetchOptions {
        retry_base: Duration::from_millis(5),
        timeout: Duration::from_secs(10),
        ..FetchOptions::new(dir)
    }
}

async fn fetch(
    sources: Vec<Source>,
    opts: &FetchOptions,
) -> Vec<FetchOutcome> {
    fetch_all(sources, opts, &NoProgress).await.expect("set-up")
}

fn source(srv: &Server, path: &str) -> Source {
    Source::parse(&srv.url(path)).expect("source")
}

/// Records retries and bodies seen through the progress trait.
#[derive(Default)]
struct Recorder {
    retries: Mutex<Vec<(u32, String)>>,
    bodies: Mutex<Vec<(Option<u64>, u64)>>,
    received: Mutex<u64>,
}

impl FetchProgress for Recorder {
    fn body(&self, _: usize, _: &str, total: Option<u64>, offset: u64) {
        self.bodies.lock().unwrap().push((total, offset));
    }
    fn advance(&self, _: usize, bytes: u64) {
        *self.received.lock().unwrap() += bytes;
    }
    fn retry(&self, _: usize, _: &str, n: u32, _: Duration, e: &FetchError) {
        self.retries.lock().unwrap().push((n, e.to_string()));
    }
}

// ------------------------------------------------------ retries, errors

#[tokio::test]
async fn retries_503_then_downloads() {
    let srv = Server::http();
    let body = data(10_000, 1);
    srv.put("/a.bin", Resource::new(body.clone()));
    srv.fault("/a.bin", Fault::Status(503, vec![]));
    srv.fault("/a.bin", Fault::Status(502, vec![]));
    let dir = Dir::new();
    let rec = Recorder::default();
    let out =
        fetch_all(vec![source(&srv, "/a.bin")], &options(dir.path()), &rec)
            .await
            .expect("set-up");
    let o = &out[0];
    let f = o.result.as_ref().expect("downloaded");
    assert_eq!(f.status, Status::Downloaded);
    assert_eq!((f.size, f.sha256.clone()), (10_000, sha(&body)));
    assert_eq!(o.attempts, 3);
    assert_eq!(o.path, dir.join("a.bin"));
    assert_eq!(srv.requests(Some("/a.bin")).len(), 3);
    let url = srv.url("/a.bin");
    assert_eq!(
        *rec.retries.lock().unwrap(),
        vec![
            (1, format!("{url}: server answered 503 Service Unavailable")),
            (2, format!("{url}: server answered 502 Bad Gateway")),
        ]
    );
    assert_eq!(*rec.received.lock().unwrap(), 10_000);
    assert_eq!(std::fs::read(dir.join("a.bin")).unwrap(), body);
    assert_manifest(dir.path(), "a.bin", &url, &body);
    assert_no_leftovers(dir.path());
}

#[test]
fn honours_retry_after_on_429() {
    let srv = Server::http();
    let body = data(3000, 2);
    srv.put("/r.bin", Resource::new(body.clone()));
    let wait = vec![("Retry-After".to_owned(), "1".to_owned())];
    srv.fault("/r.bin", Fault::Status(429, wait));
    let dir = Dir::new();
    let start = Instant::now();
    let out = fetch_cmd(&[
        "--dir",
        dir.path().to_str().unwrap(),
        "--retry-base-ms",
        "5",
        &srv.url("/r.bin"),
    ]);
    let took = start.elapsed();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(took >= Duration::from_millis(950), "waited only {took:?}");
    assert_eq!(srv.requests(Some("/r.bin")).len(), 2);
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "fwload: r.bin: attempt 1 failed: {}: server answered 429 Too Many \
             Requests; retrying in 1.0 s",
            srv.url("/r.bin")
        )),
        "{err}"
    );
    assert!(stdout(&out).starts_with("downloaded r.bin"), "{}", stdout(&out));
    assert_eq!(std::fs::read(dir.join("r.bin")).unwrap(), body);
    assert_manifest(dir.path(), "r.bin", &srv.url("/r.bin"), &body);
}

#[test]
fn not_found_is_not_retried() {
    let srv = Server::http();
    let dir = Dir::new();
    let url = srv.url("/missing.zip");
    let out = fetch_cmd(&[
        "--dir",
        dir.path().to_str().unwrap(),
        "--retry-base-ms",
        "5",
        &url,
    ]);
    assert_eq!(code(&out), 5);
    assert_eq!(srv.requests(Some("/missing.zip")).len(), 1);
    let line = format!("{url}: server answered 404 Not Found (1 attempt)");
    assert!(
        stdout(&out).contains(&format!("failed     missing.zip {line}")),
        "{}",
        stdout(&out)
    );
    assert_eq!(
        stderr(&out),
        format!("fwload: error: 1 of 1 downloads failed\n  {line}\n")
    );
    assert!(!dir.join("missing.zip").exists());
    assert_no_leftovers(dir.path());
}

#[tokio::test]
async fn gives_up_after_the_retries_naming_the_last_error() {
    let srv = Server::http();
    srv.put("/busy.bin", Resource::new(data(100, 3)));
    for _ in 0..3 {
        srv.fault("/busy.bin", Fault::Status(500, vec![]));
    }
    let dir = Dir::new();
    let opts = FetchOptions { retries: 2, ..options(dir.path()) };
    let out = fetch(vec![source(&srv, "/busy.bin")], &opts).await;
    assert_eq!(out[0].status(), Status::Failed);
    assert_eq!(out[0].attempts, 3);
    let e = out[0].result.as_ref().expect_err("failed");
    assert_eq!(e.status(), Some(500));
    assert_eq!(
        e.to_string(),
        format!(
            "{}: server answered 500 Internal Server Error",
            srv.url("/busy.bin")
        )
    );
    assert_eq!(srv.requests(Some("/busy.bin")).len(), 3);
    assert!(!dir.join("fwload-manifest.json").exists());
}

#[tokio::test]
async fn forbidden_is_not_retried() {
    let srv = Server::http();
    srv.put("/f.bin", Resource::new(data(100, 24)));
    srv.fault("/f.bin", Fault::Status(403, vec![]));
    let dir = Dir::new();
    let out = fetch(vec![source(&srv, "/f.bin")], &options(dir.path())).await;
    assert_eq!(out[0].attempts, 1);
    let e = out[0].result.as_ref().expect_err("failed");
    assert_eq!(e.status(), Some(403));
    assert!(!e.is_transient());
    assert_eq!(srv.requests(Some("/f.bin")).len(), 1);
    assert!(!dir.join("f.bin").exists());
}

#[tokio::test]
async fn connection_refused_is_retried_then_reported() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let url = format!("http://127.0.0.1:{port}/gone.bin");
    let dir = Dir::new();
    let opts = FetchOptions { retries: 1, ..options(dir.path()) };
    let out = fetch(vec![Source::parse(&url).expect("source")], &opts).await;
    assert_eq!(out[0].attempts, 2);
    let e = out[0].result.as_ref().expect_err("failed");
    assert_eq!(e.to_string(), format!("{url}: connection failed"));
    assert!(e.is_transient());
}

// ---------------------------------------------------------------- resume

#[tokio::test]
async fn resumes_after_a_cut_with_a_range_request() {
    let srv = Server::http();
    let body = data(200_000, 4);
    let res = Resource::new(body.clone());
    let etag = res.etag.clone().expect("etag");
    srv.put("/big.bin", res);
    srv.fault("/big.bin", Fault::Cut(70_000));
    let dir = Dir::new();
    let rec = Recorder::default();
    let out =
        fetch_all(vec![source(&srv, "/big.bin")], &options(dir.path()), &rec)
            .await
            .expect("set-up");
    let f = out[0].result.as_ref().expect("resumed");
    assert_eq!(f.status, Status::Resumed);
    assert_eq!(f.resumed_from, 70_000);
    assert_eq!(f.sha256, sha(&body));
    let reqs = srv.requests(Some("/big.bin"));
    assert_eq!(reqs.len(), 2);
    assert_eq!(reqs[0].header("range"), None);
    assert_eq!(reqs[1].header("range"), Some("bytes=70000-"));
    assert_eq!(reqs[1].header("if-range"), Some(etag.as_str()));
    assert_eq!(reqs[1].status, 206);
    assert_eq!(
        *rec.bodies.lock().unwrap(),
        vec![(Some(200_000), 0), (Some(200_000), 70_000)]
    );
    assert_eq!(std::fs::read(dir.join("big.bin")).unwrap(), body);
    assert_manifest(dir.path(), "big.bin", &srv.url("/big.bin"), &body);
    assert_eq!(manifest(dir.path())["files"]["big.bin"]["etag"], etag);
    assert_no_leftovers(dir.path());
}

#[tokio::test]
async fn starts_over_when_the_server_ignores_ranges() {
    let srv = Server::http();
    let body = data(50_000, 5);
    srv.put("/nr.bin", Resource::new(body.clone()).no_ranges());
    srv.fault("/nr.bin", Fault::Cut(20_000));
    let dir = Dir::new();
    let out = fetch(vec![source(&srv, "/nr.bin")], &options(dir.path())).await;
    let f = out[0].result.as_ref().expect("downloaded");
    assert_eq!(f.status, Status::Downloaded);
    assert_eq!(f.resumed_from, 0);
    let reqs = srv.requests(Some("/nr.bin"));
    assert_eq!(reqs.len(), 2);
    assert_eq!(reqs[1].header("range"), Some("bytes=20000-"));
    assert_eq!(reqs[1].status, 200);
    assert_eq!(std::fs::read(dir.join("nr.bin")).unwrap(), body);
    assert_eq!(f.sha256, sha(&body));
    assert_manifest(dir.path(), "nr.bin", &srv.url("/nr.bin"), &body);
    assert_no_leftovers(dir.path());
}

#[tokio::test]
async fn a_stall_times_out_and_resumes() {
    let srv = Server::http();
    let body = data(30_000, 6);
    srv.put("/slow.bin", Resource::new(body.clone()));
    srv.fault("/slow.bin", Fault::Stall(10_000, Duration::from_secs(3)));
    let dir = Dir::new();
    let opts = FetchOptions {
        timeout: Duration::from_millis(300),
        ..options(dir.path())
    };
    let out = fetch(vec![source(&srv, "/slow.bin")], &opts).await;
    let f = out[0].result.as_ref().expect("resumed");
    assert_eq!((f.status, f.resumed_from), (Status::Resumed, 10_000));
    assert_eq!(std::fs::read(dir.join("slow.bin")).unwrap(), body);
    let reqs = srv.requests(Some("/slow.bin"));
    assert_eq!(reqs[1].header("range"), Some("bytes=10000-"));
}

#[test]
fn resumes_the_partial_file_of_an_earlier_run() {
    let srv = Server::http();
    let body = data(80_000, 7);
    srv.put("/p.bin", Resource::new(body.clone()));
    srv.fault("/p.bin", Fault::Cut(30_000));
    let dir = Dir::new();
    let d = dir.path().to_str().unwrap();
    let url = srv.url("/p.bin");
    let first = fetch_cmd(&["--dir", d, "--retries", "0", &url]);
    assert_eq!(code(&first), 5, "{}", stderr(&first));
    assert!(stdout(&first).contains("failed     p.bin"), "{}", stdout(&first));
    assert!(!dir.join("p.bin").exists());
    assert_eq!(
        std::fs::read(dir.join("p.bin.part")).unwrap(),
        &body[..30_000]
    );
    let sidecar =
        std::fs::read_to_string(dir.join("p.bin.part.json")).unwrap();
    assert!(sidecar.contains(&url), "{sidecar}");

    let second = fetch_cmd(&["--dir", d, &url]);
    assert_eq!(code(&second), 0, "{}", stderr(&second));
    assert!(
        stdout(&second).contains(&format!(
            "resumed    p.bin        80000 bytes  sha256 {}  (resumed at byte 30000)",
            sha(&body)
        )),
        "{}",
        stdout(&second)
    );
    let reqs = srv.requests(Some("/p.bin"));
    assert_eq!(reqs[1].header("range"), Some("bytes=30000-"));
    assert_eq!(std::fs::read(dir.join("p.bin")).unwrap(), body);
    assert_manifest(dir.path(), "p.bin", &url, &body);
    assert_no_leftovers(dir.path());
}

#[test]
fn starts_over_when_the_file_changed_between_attempts() {
    let srv = Server::http();
    let old = data(60_000, 8);
    let new = data(65_000, 9);
    let old_res = Resource::new(old.clone());
    let old_etag = old_res.etag.clone().expect("etag");
    srv.put("/c.bin", old_res);
    srv.fault("/c.bin", Fault::Cut(25_000));
    let dir = Dir::new();
    let d = dir.path().to_str().unwrap();
    let url = srv.url("/c.bin");
    let first = fetch_cmd(&["--dir", d, "--retries", "0", &url]);
    assert_eq!(code(&first), 5);
    assert!(dir.join("c.bin.part").exists());

    let new_res = Resource::new(new.clone());
    let new_etag = new_res.etag.clone().expect("etag");
    srv.put("/c.bin", new_res);
    let second = fetch_cmd(&["--dir", d, &url]);
    assert_eq!(code(&second), 0, "{}", stderr(&second));
    let reqs = srv.requests(Some("/c.bin"));
    assert_eq!(reqs.len(), 2);
    assert_eq!(reqs[1].header("range"), Some("bytes=25000-"));
    assert_eq!(reqs[1].header("if-range"), Some(old_etag.as_str()));
    assert_eq!(reqs[1].status, 200);
    assert!(
        stdout(&second).starts_with("downloaded c.bin"),
        "{}",
        stdout(&second)
    );
    assert_eq!(std::fs::read(dir.join("c.bin")).unwrap(), new);
    assert_manifest(dir.path(), "c.bin", &url, &new);
    assert_eq!(manifest(dir.path())["files"]["c.bin"]["etag"], new_etag);
    assert_no_leftovers(dir.path());
}

#[tokio::test]
async fn a_partial_file_longer_than_the_remote_one_starts_over() {
    let srv = Server::http();
    let body = data(20_000, 25);
    srv.put("/l.bin", Resource::new(body.clone()).etag(Some("\"e\"")));
    let dir = Dir::new();
    std::fs::write(dir.join("l.bin.part"), data(30_000, 26)).unwrap();
    let sidecar =
        serde_json::json!({"url": srv.url("/l.bin"), "etag": "\"e\""});
    std::fs::write(dir.join("l.bin.part.json"), sidecar.to_string()).unwrap();
    let out = fetch(vec![source(&srv, "/l.bin")], &options(dir.path())).await;
    assert_eq!(out[0].status(), Status::Downloaded);
    let reqs = srv.requests(Some("/l.bin"));
    assert_eq!(reqs[0].header("range"), Some("bytes=30000-"));
    assert_eq!(reqs[0].status, 416);
    assert_eq!(reqs[1].header("range"), None);
    assert_eq!(std::fs::read(dir.join("l.bin")).unwrap(), body);
    assert_no_leftovers(dir.path());
}

// ------------------------------------------------------------- integrity

#[test]
fn checksum_mismatch_leaves_no_file() {
    let srv = Server::http();
    srv.put("/x.bin", Resource::new(data(5000, 10)));
    let dir = Dir::new();
    let wrong = "0".repeat(64);
    let url = srv.url("/x.bin");
    let out = fetch_cmd(&[
        "--dir",
        dir.path().to_str().unwrap(),
        "--sha256",
        &wrong,
        &url,
    ]);
    assert_eq!(code(&out), 5);
    assert_eq!(
        srv.requests(Some("/x.bin")).len(),
        1,
        "a mismatch is not retried"
    );
    let expected = format!(
        "{url}: sha256 mismatch: expected {wrong}, downloaded {} (1 attempt)",
        sha(&data(5000, 10))
    );
    assert!(stderr(&out).contains(&expected), "{}", stderr(&out));
    assert!(!dir.join("x.bin").exists());
    assert!(!dir.join("fwload-manifest.json").exists());
    assert_no_leftovers(dir.path());
}

#[test]
fn checksum_mismatch_keeps_the_earlier_good_file() {
    let srv = Server::http();
    let good = data(40_000, 11);
    srv.put("/g.bin", Resource::new(good.clone()));
    let dir = Dir::new();
    let d = dir.path().to_str().unwrap();
    let url = srv.url("/g.bin");
    let good_sha = sha(&good);
    let first = fetch_cmd(&["--dir", d, "--sha256", &good_sha, &url]);
    assert_eq!(code(&first), 0, "{}", stderr(&first));
    let manifest_before = manifest(dir.path());

    // The server now publishes different bytes under the same name.
    let bad = data(40_000, 12);
    srv.put("/g.bin", Resource::new(bad.clone()));
    let second = fetch_cmd(&["--dir", d, "--sha256", &good_sha, &url]);
    assert_eq!(code(&second), 5);
    assert!(
        stderr(&second).contains(&format!(
            "{url}: sha256 mismatch: expected {good_sha}, downloaded {}",
            sha(&bad)
        )),
        "{}",
        stderr(&second)
    );
    assert_eq!(std::fs::read(dir.join("g.bin")).unwrap(), good);
    assert_eq!(manifest(dir.path()), manifest_before);
    assert_no_leftovers(dir.path());
}

#[tokio::test]
async fn a_resumed_download_that_mismatches_starts_over_once() {
    // The partial file holds bytes of another version with the same
    // validator (a server that reuses ETags): the check catches it and
    // the file is fetched again from byte 0.
    let srv = Server::http();
    let body = data(20_000, 13);
    let res = Resource::new(body.clone()).etag(Some("\"same\""));
    srv.put("/s.bin", res);
    let dir = Dir::new();
    std::fs::write(dir.join("s.bin.part"), data(5000, 14)).unwrap();
    let sidecar =
        serde_json::json!({"url": srv.url("/s.bin"), "etag": "\"same\""});
    std::fs::write(dir.join("s.bin.part.json"), sidecar.to_string()).unwrap();
    let src = source(&srv, "/s.bin").with_sha256(&sha(&body)).unwrap();
    let out = fetch(vec![src], &options(dir.path())).await;
    let f = out[0].result.as_ref().expect("downloaded");
    assert_eq!(f.status, Status::Downloaded);
    assert_eq!(out[0].attempts, 2);
    let reqs = srv.requests(Some("/s.bin"));
    assert_eq!(reqs[0].header("range"), Some("bytes=5000-"));
    assert_eq!(reqs[1].header("range"), None);
    assert_eq!(std::fs::read(dir.join("s.bin")).unwrap(), body);
    assert_no_leftovers(dir.path());
}

// ---------------------------------------------------- change detection

#[test]
fn unchanged_files_are_skipped_with_a_conditional_request() {
    let srv = Server::http();
    let body = data(12_345, 15);
    let res = Resource::new(body.clone());
    let (etag, lm) =
        (res.etag.clone().unwrap(), res.last_modified.clone().unwrap());
    srv.put("/u.bin", res);
    let dir = Dir::new();
    let d = dir.path().to_str().unwrap();
    let url = srv.url("/u.bin");
    let first = fetch_cmd(&["--dir", d, &url]);
    assert_eq!(code(&first), 0, "{}", stderr(&first));
    let fetched = manifest(dir.path())["files"]["u.bin"]["fetched"].clone();

    let second = fetch_cmd(&["--dir", d, &url]);
    assert_eq!(code(&second), 0, "{}", stderr(&second));
    assert_eq!(
        stdout(&second),
        format!(
            "unchanged  u.bin        12345 bytes  sha256 {}\n1 file: 1 unchanged\n",
            sha(&body)
        )
    );
    let reqs = srv.requests(Some("/u.bin"));
    assert_eq!(reqs.len(), 2);
    assert_eq!(reqs[0].header("if-none-match"), None);
    assert_eq!(reqs[1].header("if-none-match"), Some(etag.as_str()));
    assert_eq!(reqs[1].header("if-modified-since"), Some(lm.as_str()));
    assert_eq!(reqs[1].status, 304);
    assert_eq!(std::fs::read(dir.join("u.bin")).unwrap(), body);
    assert_manifest(dir.path(), "u.bin", &url, &body);
    assert_eq!(manifest(dir.path())["files"]["u.bin"]["fetched"], fetched);

    // A file missing locally is downloaded again, unconditionally.
    std::fs::remove_file(dir.join("u.bin")).unwrap();
    let third = fetch_cmd(&["--dir", d, &url]);
    assert_eq!(code(&third), 0, "{}", stderr(&third));
    assert!(
        stdout(&third).starts_with("downloaded u.bin"),
        "{}",
        stdout(&third)
    );
    let reqs = srv.requests(Some("/u.bin"));
    assert_eq!(reqs[2].header("if-none-match"), None);
    assert_eq!(reqs[2].status, 200);
    assert_eq!(std::fs::read(dir.join("u.bin")).unwrap(), body);

    // --force skips the conditional request.
    let fourth = fetch_cmd(&["--dir", d, "--force", &url]);
    assert_eq!(code(&fourth), 0);
    assert_eq!(srv.requests(Some("/u.bin"))[3].header("if-none-match"), None);
}

#[tokio::test]
async fn last_modified_alone_is_enough_to_skip() {
    let srv = Server::http();
    let body = data(999, 16);
    srv.put("/lm.bin", Resource::new(body.clone()).etag(None));
    let dir = Dir::new();
    let opts = options(dir.path());
    let first = fetch(vec![source(&srv, "/lm.bin")], &opts).await;
    assert_eq!(first[0].status(), Status::Downloaded);
    let second = fetch(vec![source(&srv, "/lm.bin")], &opts).await;
    let f = second[0].result.as_ref().expect("unchanged");
    assert_eq!(
        (f.status, f.size, f.sha256.clone()),
        (Status::Unchanged, 999, sha(&body))
    );
    assert_eq!(srv.requests(Some("/lm.bin"))[1].status, 304);
}

// ------------------------------------------------- parallel, rate limit

#[tokio::test]
async fn downloads_several_files_in_parallel() {
    let srv = Server::http();
    let dir = Dir::new();
    let mut sources = Vec::new();
    for i in 0..6u8 {
        let path = format!("/f{i}.bin");
        srv.put(&path, Resource::new(data(20_000 + usize::from(i), i)));
        srv.fault(&path, Fault::Delay(Duration::from_millis(150)));
        sources.push(source(&srv, &path));
    }
    let opts = FetchOptions { parallel: 3, ..options(dir.path()) };
    let out = fetch(sources, &opts).await;
    assert_eq!(out.len(), 6);
    for (i, o) in out.iter().enumerate() {
        let name = format!("f{i}.bin");
        assert_eq!(o.source.name, name, "outcomes keep the input order");
        assert_eq!(o.status(), Status::Downloaded);
        let body = data(20_000 + i, i as u8);
        assert_eq!(std::fs::read(dir.join(&name)).unwrap(), body);
        assert_manifest(
            dir.path(),
            &name,
            &srv.url(&format!("/{name}")),
            &body,
        );
    }
    let max = srv.max_active();
    assert!((2..=3).contains(&max), "{max} requests at once");
    assert_no_leftovers(dir.path());
}

#[test]
fn limit_rate_slows_the_download() {
    let srv = Server::http();
    let body = data(96 * 1024, 17);
    srv.put("/rl.bin", Resource::new(body.clone()));
    let dir = Dir::new();
    let start = Instant::now();
    let out = fetch_cmd(&[
        "--dir",
        dir.path().to_str().unwrap(),
        "--limit-rate",
        "192K",
        &srv.url("/rl.bin"),
    ]);
    let took = start.elapsed();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    // 96 KiB at 192 KiB/s is 0.5 s; allow 20% for the first chunk's burst.
    assert!(took >= Duration::from_millis(400), "took only {took:?}");
    assert_eq!(std::fs::read(dir.join("rl.bin")).unwrap(), body);
}

// ------------------------------------------------------ TLS and proxies

fn self_signed() -> (rcgen::Certificate, rcgen::KeyPair) {
    let ck = rcgen::generate_simple_self_signed(vec![
        "127.0.0.1".to_owned(),
        "localhost".to_owned(),
    ])
    .expect("certificate");
    (ck.cert, ck.signing_key)
}

#[test]
fn https_with_a_self_signed_certificate() {
    let (cert, key) = self_signed();
    let srv = Server::https(cert.der().to_vec(), key.serialize_der());
    let body = data(70_000, 18);
    srv.put("/t.bin", Resource::new(body.clone()));
    srv.fault("/t.bin", Fault::Cut(20_000));
    let dir = Dir::new();
    let ca = dir.write("ca.pem", cert.pem());
    let d = dir.join("out");
    let url = srv.url("/t.bin");
    assert!(url.starts_with("https://127.0.0.1:"));

    // Not trusted without --ca-cert: a permanent failure, no retry.
    let out = fetch_cmd(&[
        "--dir",
        d.to_str().unwrap(),
        "--retry-base-ms",
        "5",
        &url,
    ]);
    assert_eq!(code(&out), 5);
    let err = stderr(&out);
    assert!(
        err.contains(&format!("{url}: server certificate not trusted")),
        "{err}"
    );
    assert!(err.contains("(1 attempt)"), "{err}");
    assert_eq!(srv.connections(), 1);

    let out = fetch_cmd(&[
        "--dir",
        d.to_str().unwrap(),
        "--ca-cert",
        ca.to_str().unwrap(),
        "--retry-base-ms",
        "5",
        &url,
    ]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(stdout(&out).starts_with("resumed    t.bin"), "{}", stdout(&out));
    assert_eq!(std::fs::read(d.join("t.bin")).unwrap(), body);
    assert_manifest(&d, "t.bin", &url, &body);
    let reqs = srv.requests(Some("/t.bin"));
    assert_eq!(reqs[1].header("range"), Some("bytes=20000-"));
}

#[tokio::test]
async fn https_through_the_library() {
    let (cert, key) = self_signed();
    let srv = Server::https(cert.der().to_vec(), key.serialize_der());
    let body = data(4096, 19);
    srv.put("/l.bin", Resource::new(body.clone()));
    let dir = Dir::new();
    let ca = dir.write("ca.pem", cert.pem());
    let opts =
        FetchOptions { ca_certs: vec![ca], ..options(&dir.join("out")) };
    let out = fetch(vec![source(&srv, "/l.bin")], &opts).await;
    assert_eq!(out[0].status(), Status::Downloaded);
    assert_eq!(std::fs::read(dir.join("out/l.bin")).unwrap(), body);
}

#[test]
fn uses_the_proxy_from_the_environment() {
    let proxy = Server::http();
    let body = data(2048, 20);
    proxy.put("/via/proxy.bin", Resource::new(body.clone()));
    let dir = Dir::new();
    let url = "http://fwload-test.invalid/via/proxy.bin";
    let p = proxy.url("");
    let out = fetch_cmd_env(
        &["--dir", dir.path().to_str().unwrap(), "--retries", "0", url],
        &[
            ("HTTP_PROXY", &p),
            ("http_proxy", &p),
            ("NO_PROXY", ""),
            ("no_proxy", ""),
        ],
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let reqs = proxy.requests(Some("/via/proxy.bin"));
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].target, url, "the proxy gets the absolute URL");
    assert_eq!(std::fs::read(dir.join("proxy.bin")).unwrap(), body);
    assert_manifest(dir.path(), "proxy.bin", url, &body);
}

// --------------------------------------------------------------- dataset

const LAYOUT: &str = "# test layout, 2024\n\
                      members = [\"*.txt\"]\n\
                      format = \"delimited\"\n\
                      [[field]]\n\
                      name = \"acct\"\n\
                      type = \"text\"\n";

fn dataset(srv: &Server, sha256: &str) -> String {
    format!(
        "# test dataset\n\
         name = \"tiny\"\n\
         [[archive]]\n\
         name = \"tiny_{{year}}.zip\"\n\
         url = \"{}\"\n\
         sha256 = \"{sha256}\"\n\
         layouts = [\"tiny\"]\n\
         [[archive]]\n\
         name = \"offline.zip\"\n\
         layouts = [\"tiny\"]\n",
        srv.url("/data/{year}/tiny.zip")
    )
}

#[test]
fn fetches_a_dataset_with_year_substitution() {
    let srv = Server::http();
    let body = data(3333, 21);
    srv.put("/data/2024/tiny.zip", Resource::new(body.clone()));
    let schema = Dir::new();
    schema.write("tiny.toml", LAYOUT);
    let ds = schema.write("dataset.toml", dataset(&srv, &sha(&body)));
    let dir = Dir::new();
    let d = dir.path().to_str().unwrap();
    let s = schema.path().to_str().unwrap();
    let out = fetch_cmd(&["--schema", s, "--year", "2024", "--dir", d]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(
        stdout(&out).starts_with("downloaded tiny_2024.zip"),
        "{}",
        stdout(&out)
    );
    assert_eq!(srv.requests(Some("/data/2024/tiny.zip")).len(), 1);
    assert_eq!(std::fs::read(dir.join("tiny_2024.zip")).unwrap(), body);
    assert_manifest(
        dir.path(),
        "tiny_2024.zip",
        &srv.url("/data/2024/tiny.zip"),
        &body,
    );

    // The dataset file itself may be named; --archive picks archives.
    let out = fetch_cmd(&[
        "--schema",
        ds.to_str().unwrap(),
        "--year",
        "2024",
        "--archive",
        "TINY_2024.ZIP",
        "--dir",
        d,
    ]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(
        stdout(&out).starts_with("unchanged  tiny_2024.zip"),
        "{}",
        stdout(&out)
    );

    let out = fetch_cmd(&["--schema", s, "--dir", d]);
    assert_eq!(code(&out), 2);
    assert!(
        stderr(&out).contains("the file name contains {year}: give --year"),
        "{}",
        stderr(&out)
    );

    let out = fetch_cmd(&[
        "--schema",
        s,
        "--year",
        "2024",
        "--archive",
        "nope.zip",
        "--dir",
        d,
    ]);
    assert_eq!(code(&out), 2);
    assert!(
        stderr(&out).contains(
            "has no archive \"nope.zip\" with a url (it has: tiny_2024.zip)"
        ),
        "{}",
        stderr(&out)
    );
}

#[test]
fn dataset_checksum_is_enforced() {
    let srv = Server::http();
    srv.put("/data/2023/tiny.zip", Resource::new(data(100, 22)));
    let schema = Dir::new();
    schema.write("tiny.toml", LAYOUT);
    schema.write("dataset.toml", dataset(&srv, &"a".repeat(64)));
    let dir = Dir::new();
    let out = fetch_cmd(&[
        "--schema",
        schema.path().to_str().unwrap(),
        "--year",
        "2023",
        "--dir",
        dir.path().to_str().unwrap(),
    ]);
    assert_eq!(code(&out), 5);
    assert!(
        stderr(&out).contains("sha256 mismatch: expected aaaa"),
        "{}",
        stderr(&out)
    );
    assert!(!dir.join("tiny_2023.zip").exists());
}

#[tokio::test]
async fn dataset_sources_through_the_library() {
    let srv = Server::http();
    let schema = Dir::new();
    schema.write("tiny.toml", LAYOUT);
    schema.write("dataset.toml", dataset(&srv, &"b".repeat(64)));
    let set = fwload::schema::SchemaSet::load(&[schema.path().to_owned()])
        .expect("schema");
    let ds = set.dataset.expect("dataset");
    let sources = Source::from_dataset(&ds, Some("2025")).expect("sources");
    assert_eq!(
        sources,
        vec![Source {
            name: "tiny_2025.zip".into(),
            url: srv.url("/data/2025/tiny.zip"),
            sha256: Some("b".repeat(64)),
        }]
    );
}

// ----------------------------------------------------------------- usage

#[test]
fn bad_arguments_are_usage_errors() {
    let dir = Dir::new();
    let d = dir.path().to_str().unwrap();
    let cases: &[(&[&str], &str)] = &[
        (&["--dir", d], "nothing to fetch"),
        (&["--dir", d, "--limit-rate", "fast", "http://h/a"], "not a rate"),
        (
            &["--dir", d, "--timeout", "0", "http://h/a"],
            "not a positive number",
        ),
        (&["--dir", d, "--parallel", "0", "http://h/a"], "--parallel"),
        (
            &["--dir", d, "--sha256", "abc", "http://h/a"],
            "is not 64 hex digits",
        ),
        (
            &[
                "--dir",
                d,
                "--sha256",
                &"a".repeat(64),
                "http://h/a",
                "http://h/b",
            ],
            "2 files",
        ),
        (&["--dir", d, "ftp://h/a"], "is not http or https"),
        (&["--dir", d, "http://h/a", "http://g/a"], "also saved as \"a\""),
        (
            &["--dir", d, "--ca-cert", "/nonexistent/ca.pem", "http://h/a"],
            "cannot read CA certificate",
        ),
    ];
    for (args, msg) in cases {
        let out = fetch_cmd(args);
        assert_eq!(code(&out), 2, "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(msg), "{args:?}: {}", stderr(&out));
    }
}

#[tokio::test]
async fn corrupt_manifest_stops_before_downloading() {
    let srv = Server::http();
    srv.put("/m.bin", Resource::new(data(10, 23)));
    let dir = Dir::new();
    dir.write("fwload-manifest.json", "not json");
    let e = fetch_all(
        vec![source(&srv, "/m.bin")],
        &options(dir.path()),
        &NoProgress,
    )
    .await
    .expect_err("corrupt manifest");
    assert!(
        e.to_string().contains("fwload-manifest.json: line 1, column 2"),
        "{e}"
    );
    assert!(srv.requests(None).is_empty());
}
