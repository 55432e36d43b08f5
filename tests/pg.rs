//! The PostgreSQL the tests use: `FWLOAD_TEST_DATABASE_URL` when set, else
//! the local server on 127.0.0.1:5432, else a throwaway cluster started
//! from the installed PostgreSQL binaries. Each test gets its own schemas
//! (targets and fwload's metadata), dropped when it ends, so tests run in
//! parallel and never see each other's tables.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

static SERVER: OnceLock<String> = OnceLock::new();
static NEXT: AtomicU32 = AtomicU32::new(0);
/// The data directory of the throwaway cluster, when one was started; the
/// atexit hook stops it.
static THROWAWAY: OnceLock<String> = OnceLock::new();

/// The base URL of the test server (without sslmode).
pub fn server() -> &'static str {
    SERVER.get_or_init(|| {
        if let Ok(url) = std::env::var("FWLOAD_TEST_DATABASE_URL") {
            return url;
        }
        // FWLOAD_TEST_THROWAWAY=1 skips the local server (to test the
        // harness itself, or to keep tests off a shared server).
        let local = "postgres://postgres@127.0.0.1:5432/test";
        if std::env::var("FWLOAD_TEST_THROWAWAY").is_err()
            && postgres::Client::connect(
                &format!("{local}?connect_timeout=3"),
                postgres::NoTls,
            )
            .is_ok()
        {
            return local.to_owned();
        }
        throwaway_cluster()
    })
}

fn pg_bin(name: &str) -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|rd| {
            rd.filter_map(|e| e.ok()).map(|e| e.path().join("bin")).collect()
        })
        .unwrap_or_default();
    dirs.sort();
    dirs.into_iter().rev().map(|d| d.join(name)).find(|p| p.exists())
}

/// Runs `cmd` as the `postgres` user when we are root (initdb refuses
/// root).
fn as_postgres(cmd: &Path, args: &[&str]) -> std::process::Output {
    let root = unsafe { libc::geteuid() } == 0;
    let mut c = if root {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(cmd);
        c
    } else {
        Command::new(cmd)
    };
    c.args(args)
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", cmd.display()))
}

extern "C" fn stop_cluster() {
    if let Some(dir) = THROWAWAY.get() {
        stop(dir);
    }
}

fn stop(data: &str) {
    if let Some(pg_ctl) = pg_bin("pg_ctl") {
        let _ = as_postgres(&pg_ctl, &["-D", data, "-m", "immediate", "stop"]);
    }
    if let Some(parent) = Path::new(data).parent() {
        let _ = std::fs::remove_dir_all(parent);
    }
}

/// A throwaway PostgreSQL cluster, stopped and removed on drop.
pub struct Cluster {
    /// TCP port on 127.0.0.1.
    pub port: u16,
    /// The directory holding the data directory and the socket.
    pub dir: String,
    data: String,
    keep: bool,
}

impl Cluster {
    /// Starts a cluster: `conf` lines are appended to postgresql.conf,
    /// `hba` replaces pg_hba.conf when given, `files` are written into the
    /// data directory (owned by the server, mode 0600).
    pub fn start(
        conf: &str,
        hba: Option<&str>,
        files: &[(&str, &[u8])],
    ) -> Cluster {
        let (Some(initdb), Some(pg_ctl)) =
            (pg_bin("initdb"), pg_bin("pg_ctl"))
        else {
            panic!(
                "the tests need PostgreSQL: set FWLOAD_TEST_DATABASE_URL, run a server on 127.0.0.1:5432 \
                 (user postgres, database test), or install the server binaries \
                 (Debian/Ubuntu: apt-get install postgresql) so a throwaway cluster can be started"
            );
        };
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir()
            .join(format!("fwload-test-pg-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let d = dir.display().to_string();
        let root = unsafe { libc::geteuid() } == 0;
        let chown = |p: &str| {
            if root {
                let o = Command::new("chown")
                    .args(["-R", "postgres:postgres", p])
                    .output()
                    .unwrap();
                assert!(
                    o.status.success(),
                    "chown {p}: {}",
                    String::from_utf8_lossy(&o.stderr)
                );
            }
        };
        chown(&d);
        let data = format!("{d}/data");
        let o = as_postgres(
            &initdb,
            &["-D", &data, "-U", "postgres", "-A", "trust", "--no-sync"],
        );
        assert!(
            o.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        if !conf.is_empty() {
            let p = format!("{data}/postgresql.conf");
            let mut text = std::fs::read_to_string(&p).unwrap();
            text.push_str(conf);
            std::fs::write(&p, text).unwrap();
        }
        if let Some(h) = hba {
            std::fs::write(format!("{data}/pg_hba.conf"), h).unwrap();
        }
        for (name, bytes) in files {
            let p = format!("{data}/{name}");
            std::fs::write(&p, bytes).unwrap();
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(
                &p,
                std::fs::Permissions::from_mode(0o600),
            )
            .unwrap();
        }
        chown(&data);
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let opts = format!(
            "-p {port} -k {d} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"
        );
        let o = as_postgres(
            &pg_ctl,
            &[
                "-D",
                &data,
                "-o",
                &opts,
                "-l",
                &format!("{d}/log"),
                "-w",
                "start",
            ],
        );
        assert!(
            o.status.success(),
            "pg_ctl start failed: {}{}",
            String::from_utf8_lossy(&o.stderr),
            std::fs::read_to_string(format!("{d}/log")).unwrap_or_default()
        );
        Cluster { port, dir: d, data, keep: false }
    }

    /// The URL of database `db` over TCP (TLS off).
    pub fn url(&self, db: &str) -> String {
        format!(
            "postgres://postgres@127.0.0.1:{}/{db}?sslmode=disable",
            self.port
        )
    }

    /// Restarts the server as a crash would: `pg_ctl restart -m
    /// immediate`, so crash recovery runs (and empties UNLOGGED tables).
    /// The server's output goes to the log: a restarted postmaster
    /// inherits pg_ctl's pipes, and reading them would never end.
    pub fn crash_restart(&self) {
        let pg_ctl = pg_bin("pg_ctl").expect("pg_ctl");
        let o = as_postgres(
            &pg_ctl,
            &[
                "-D",
                &self.data,
                "-l",
                &format!("{}/log", self.dir),
                "-m",
                "immediate",
                "-w",
                "restart",
            ],
        );
        assert!(
            o.status.success(),
            "pg_ctl restart failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }

    /// A superuser connection over the cluster's Unix socket.
    pub fn local(&self) -> postgres::Client {
        let mut c = postgres::Config::new();
        c.host(&self.dir).port(self.port).user("postgres").dbname("postgres");
        c.connect(postgres::NoTls).expect("local socket connection")
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if !self.keep {
            stop(&self.data);
        }
    }
}

fn throwaway_cluster() -> String {
    let mut cluster = Cluster::start("", None, &[]);
    cluster.keep = true;
    THROWAWAY
        .set(cluster.data.clone())
        .expect("one throwaway cluster per test process");
    // SAFETY: registers a plain `extern "C" fn` that only reads a OnceLock
    // and runs pg_ctl; atexit has no other precondition.
    unsafe {
        libc::atexit(stop_cluster);
    }
    cluster.local().batch_execute("CREATE DATABASE test").unwrap();
    format!("postgres://postgres@127.0.0.1:{}/test", cluster.port)
}

/// A test's own schemas on the test server, dropped on drop.
pub struct TestDb {
    /// Target schema.
    pub schema: String,
    /// fwload's metadata schema.
    pub meta: String,
}

impl TestDb {
    /// New, empty schemas.
    pub fn new() -> TestDb {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let tag = format!("fwt_{}_{n}", std::process::id());
        let db = TestDb { schema: tag.clone(), meta: format!("{tag}_meta") };
        db.client()
            .batch_execute(&format!("CREATE SCHEMA {}", db.schema))
            .unwrap();
        db
    }

    /// The connection URL (TLS off).
    pub fn url(&self) -> String {
        format!("{}?sslmode=disable", server())
    }

    /// A new connection.
    pub fn client(&self) -> postgres::Client {
        postgres::Client::connect(server(), postgres::NoTls)
            .expect("test server")
    }

    /// `fwload load` arguments for this database: URL, target and meta
    /// schemas.
    pub fn args(&self) -> Vec<String> {
        vec![
            "--database-url".into(),
            self.url(),
            "--target-schema".into(),
            self.schema.clone(),
            "--meta-schema".into(),
            self.meta.clone(),
        ]
    }

    /// One value of a query.
    pub fn one<T: for<'a> postgres::types::FromSql<'a>>(
        &self,
        sql: &str,
    ) -> T {
        self.client()
            .query_one(sql, &[])
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
            .get(0)
    }

    /// A checksum of a table's rows in key order (every column as text).
    pub fn checksum(&self, table: &str, order: &str) -> String {
        self.one(&format!(
            "SELECT coalesce(md5(string_agg(t::text, '\n' ORDER BY {order})), 'empty') FROM {}.{table} t",
            self.schema
        ))
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Ok(mut c) = postgres::Client::connect(server(), postgres::NoTls)
        {
            let _ = c.batch_execute(&format!(
                "DROP SCHEMA IF EXISTS {} CASCADE; DROP SCHEMA IF EXISTS {} CASCADE",
                self.schema, self.meta
            ));
        }
    }
}
