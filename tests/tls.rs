//! TLS and passwords against a cluster of the test's own that requires
//! TLS and a password: every sslmode, certificate checks, and passwords
//! that never show in messages.

use fwload::Database;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa,
    KeyPair,
};

use crate::pg::Cluster;
use crate::util::{Dir, fwload, repo, stderr, stdout};

const PASSWORD: &str = "S3cret-pa55word";

fn ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.distinguished_name.push(DnType::CommonName, name);
    CertifiedIssuer::self_signed(p, KeyPair::generate().unwrap()).unwrap()
}

fn connect(url: &str) -> Result<postgres::Client, String> {
    Database::resolve(Some(url))
        .and_then(|d| d.connect())
        .map_err(|e| e.line())
}

/// The error of a connection that must fail.
fn refused(url: &str) -> String {
    match connect(url) {
        Ok(_) => panic!("connected to {url}"),
        Err(e) => e,
    }
}

#[test]
fn tls_modes_certificates_and_passwords() {
    let d = Dir::new();
    let authority = ca("fwload test CA");
    let other = ca("some other CA");
    let key = KeyPair::generate().unwrap();
    let server = CertificateParams::new(vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
    ])
    .unwrap()
    .signed_by(&key, &authority)
    .unwrap();
    let ca_file = d.write("ca.pem", authority.pem());
    let other_file = d.write("other.pem", other.pem());
    let cluster = Cluster::start(
        "\nssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\npassword_encryption = 'scram-sha-256'\n",
        Some(
            "local all all trust\nhostssl all all 127.0.0.1/32 scram-sha-256\nhost all all 127.0.0.1/32 reject\n",
        ),
        &[
            ("server.crt", server.pem().as_bytes()),
            ("server.key", key.serialize_pem().as_bytes()),
        ],
    );
    let mut admin = cluster.local();
    admin
        .batch_execute(&format!(
            "CREATE ROLE loader LOGIN SUPERUSER PASSWORD '{PASSWORD}'"
        ))
        .unwrap();
    admin.batch_execute("CREATE DATABASE tax OWNER loader").unwrap();
    let url =
        |host: &str, mode: &str, root: Option<&std::path::Path>, pw: &str| {
            let mut u = format!(
                "postgres://loader:{pw}@{host}:{}/tax?sslmode={mode}",
                cluster.port
            );
            if let Some(r) = root {
                u.push_str(&format!("&sslrootcert={}", r.display()));
            }
            u
        };
    // verify-full with the right CA, by name and by address: encrypted.
    for host in ["localhost", "127.0.0.1"] {
        let mut c =
            connect(&url(host, "verify-full", Some(&ca_file), PASSWORD))
                .unwrap_or_else(|e| panic!("{host}: {e}"));
        let ssl: bool = c
            .query_one(
                "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
                &[],
            )
            .unwrap()
            .get(0);
        assert!(ssl, "{host}");
    }
    // require checks nothing but still encrypts.
    assert!(connect(&url("localhost", "require", None, PASSWORD)).is_ok());
    // verify-full against the public web roots, or another CA: refused.
    let e = refused(&url("localhost", "verify-full", None, PASSWORD));
    assert!(e.contains("certificate"), "{e}");
    let e =
        refused(&url("localhost", "verify-ca", Some(&other_file), PASSWORD));
    assert!(e.contains("certificate"), "{e}");
    // disable: the server only accepts TLS.
    let e = refused(&url("localhost", "disable", None, PASSWORD));
    assert!(e.contains("no encryption") || e.contains("pg_hba.conf"), "{e}");
    // A wrong password: a clear message that shows neither password.
    let e = refused(&url(
        "localhost",
        "verify-full",
        Some(&ca_file),
        "wrong-pa55",
    ));
    assert!(e.contains("password authentication failed"), "{e}");
    assert!(!e.contains("wrong-pa55") && !e.contains(PASSWORD), "{e}");
    assert!(
        e.contains("user=loader") && e.contains("sslmode=verify-full"),
        "{e}"
    );
    // The whole load over verify-full; the password is in no output and no
    // run record.
    let zip = d.join("h.zip");
    let g = fwload(&[
        "gen",
        "--schema",
        &repo("schemas/hcad"),
        "--rows",
        "100",
        "--out",
        zip.to_str().unwrap(),
    ]);
    assert!(g.status.success());
    let good = url("localhost", "verify-full", Some(&ca_file), PASSWORD);
    let o = fwload(&[
        "load",
        "-q",
        "--schema",
        &repo("schemas/hcad"),
        "--create",
        "--database-url",
        &good,
        zip.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!stdout(&o).contains(PASSWORD) && !stderr(&o).contains(PASSWORD));
    let mut c = connect(&good).unwrap();
    let options: String = c
        .query_one("SELECT options::text FROM fwload.runs", &[])
        .unwrap()
        .get(0);
    assert!(
        options.contains("sslmode=verify-full") && !options.contains(PASSWORD),
        "{options}"
    );
    let o = fwload(&[
        "load",
        "-q",
        "--schema",
        &repo("schemas/hcad"),
        "--database-url",
        &url("localhost", "verify-full", Some(&ca_file), "nope-x1"),
        zip.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(4));
    assert!(!stderr(&o).contains("nope-x1"), "{}", stderr(&o));
    // The PG* variables, as psql reads them.
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_fwload"))
        .args(["runs"])
        .env_remove("DATABASE_URL")
        .env("PGHOST", "localhost")
        .env("PGPORT", cluster.port.to_string())
        .env("PGUSER", "loader")
        .env("PGPASSWORD", PASSWORD)
        .env("PGDATABASE", "tax")
        .env("PGSSLMODE", "verify-full")
        .env("PGSSLROOTCERT", &ca_file)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("succeeded"), "{}", stdout(&o));
}
