//! Where the database is and how to reach it: `--database-url`, else
//! `DATABASE_URL`, else libpq's `PG*` variables, as psql users expect; TLS
//! (rustls) when `sslmode` asks for it, `verify-full` included. Passwords
//! never appear in what this module displays.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;

use postgres::Client;
use postgres::config::{Host, SslMode as PgSslMode};
use rustls::client::danger::{
    HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier,
};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

use super::LoadError;

/// libpq's `sslmode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SslMode {
    /// No TLS.
    Disable,
    /// TLS when the server offers it, without checking its certificate.
    Prefer,
    /// TLS, without checking the certificate (unless a root certificate is
    /// given, as libpq does: then like `VerifyCa`).
    Require,
    /// TLS; the certificate must chain to a trusted root.
    VerifyCa,
    /// TLS; the certificate must chain to a trusted root and name the host.
    VerifyFull,
}

impl SslMode {
    fn parse(s: &str) -> Result<SslMode, LoadError> {
        Ok(match s {
            "disable" => SslMode::Disable,
            "allow" | "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            other => {
                return Err(LoadError::config(format!(
                    "sslmode {other:?} is not one of disable, prefer, require, verify-ca, verify-full"
                )));
            }
        })
    }

    /// libpq's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

/// A resolved connection target.
#[derive(Clone)]
pub struct Database {
    config: postgres::Config,
    ssl: SslMode,
    root_cert: Option<PathBuf>,
}

impl fmt::Debug for Database {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Database({self})")
    }
}

impl fmt::Display for Database {
    /// `host=… port=… user=… dbname=… sslmode=…`, never the password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hosts: Vec<String> = self
            .config
            .get_hosts()
            .iter()
            .map(|h| match h {
                Host::Tcp(s) => s.clone(),
                #[cfg(unix)]
                Host::Unix(p) => p.display().to_string(),
            })
            .collect();
        let ports: Vec<String> =
            self.config.get_ports().iter().map(|p| p.to_string()).collect();
        write!(
            f,
            "host={} port={} user={} dbname={} sslmode={}",
            hosts.join(","),
            ports.join(","),
            self.config.get_user().unwrap_or("?"),
            self.config.get_dbname().unwrap_or("?"),
            self.ssl.as_str()
        )
    }
}

/// Splits `sslmode` and `sslrootcert` off a URL or `key=value` string,
/// since the driver knows only disable/prefer/require.
fn take_tls_params(s: &str) -> (String, Option<String>, Option<String>) {
    let mut mode = None;
    let mut root = None;
    if s.starts_with("postgres://") || s.starts_with("postgresql://") {
        let Some((base, query)) = s.split_once('?') else {
            return (s.to_owned(), None, None);
        };
        let mut kept = Vec::new();
        for pair in query.split('&') {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            match k {
                "sslmode" => mode = Some(percent_decode(v)),
                "sslrootcert" => root = Some(percent_decode(v)),
                _ => kept.push(pair),
            }
        }
        let rest = if kept.is_empty() {
            base.to_owned()
        } else {
            format!("{base}?{}", kept.join("&"))
        };
        (rest, mode, root)
    } else {
        let mut kept = Vec::new();
        for part in s.split_whitespace() {
            match part.split_once('=') {
                Some(("sslmode", v)) => {
                    mode = Some(v.trim_matches('\'').to_owned())
                }
                Some(("sslrootcert", v)) => {
                    root = Some(v.trim_matches('\'').to_owned())
                }
                _ => kept.push(part),
            }
        }
        (kept.join(" "), mode, root)
    }
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let Ok(v) = u8::from_str_radix(
                std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("zz"),
                16,
            )
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// fwload writes to the database it is given and never guesses one (a
/// default would put its tables in whatever database the user's name
/// happens to match).
fn no_database(why: &str) -> LoadError {
    LoadError::config(format!(
        "no database named ({why}); name one with --database-url postgres://USER@HOST:PORT/DATABASE, DATABASE_URL or PGDATABASE"
    ))
}

impl Database {
    /// Resolves the target: `url` (from `--database-url`), else
    /// `DATABASE_URL`, else the `PG*` variables (`PGHOST`, `PGPORT`,
    /// `PGUSER`, `PGPASSWORD`, `PGDATABASE`, `PGSSLMODE`, `PGSSLROOTCERT`,
    /// `PGAPPNAME`, `PGCONNECT_TIMEOUT`). The database must be named.
    ///
    /// # Errors
    /// A connection string that does not parse (the message never shows
    /// the password), or no database named.
    pub fn resolve(url: Option<&str>) -> Result<Database, LoadError> {
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let from_url = url.map(str::to_owned).or_else(|| env("DATABASE_URL"));
        let (mut config, mode, root) = match from_url {
            Some(u) => {
                let (rest, mode, root) = take_tls_params(&u);
                let config =
                    postgres::Config::from_str(&rest).map_err(|e| {
                        LoadError::config(format!(
                            "cannot parse the database URL: {e}"
                        ))
                    })?;
                if config.get_dbname().is_none() {
                    return Err(no_database("the database URL names none"));
                }
                (
                    config,
                    mode.or_else(|| env("PGSSLMODE")),
                    root.or_else(|| env("PGSSLROOTCERT")),
                )
            }
            None => {
                let mut c = postgres::Config::new();
                let host = env("PGHOST").unwrap_or_else(|| {
                    if std::path::Path::new("/var/run/postgresql").exists() {
                        "/var/run/postgresql".into()
                    } else {
                        "localhost".into()
                    }
                });
                for h in host.split(',') {
                    c.host(h);
                }
                if let Some(p) = env("PGPORT") {
                    for port in p.split(',') {
                        c.port(port.trim().parse().map_err(|_| {
                            LoadError::config(format!(
                                "PGPORT {port:?} is not a port"
                            ))
                        })?);
                    }
                }
                let user = env("PGUSER")
                    .or_else(|| env("USER"))
                    .unwrap_or_else(|| "postgres".into());
                c.user(&user);
                let Some(dbname) = env("PGDATABASE") else {
                    return Err(no_database(
                        "neither --database-url, DATABASE_URL nor PGDATABASE is set",
                    ));
                };
                c.dbname(&dbname);
                if let Some(p) = env("PGPASSWORD") {
                    c.password(p);
                }
                if let Some(t) = env("PGCONNECT_TIMEOUT")
                    .and_then(|t| t.parse::<u64>().ok())
                {
                    c.connect_timeout(std::time::Duration::from_secs(t));
                }
                (c, env("PGSSLMODE"), env("PGSSLROOTCERT"))
            }
        };
        if config.get_application_name().is_none() {
            config.application_name(
                env("PGAPPNAME").as_deref().unwrap_or("fwload"),
            );
        }
        if config.get_user().is_none() {
            config.user(
                env("PGUSER")
                    .or_else(|| env("USER"))
                    .as_deref()
                    .unwrap_or("postgres"),
            );
        }
        if config.get_hosts().is_empty() {
            config.host("localhost");
        }
        let ssl = SslMode::parse(mode.as_deref().unwrap_or("prefer"))?;
        config.ssl_mode(match ssl {
            SslMode::Disable => PgSslMode::Disable,
            SslMode::Prefer => PgSslMode::Prefer,
            _ => PgSslMode::Require,
        });
        Ok(Database { config, ssl, root_cert: root.map(PathBuf::from) })
    }

    /// The TLS mode in effect.
    pub fn ssl_mode(&self) -> SslMode {
        self.ssl
    }

    /// Opens a connection.
    ///
    /// # Errors
    /// The server cannot be reached, refuses, or its certificate does not
    /// pass the mode's checks.
    pub fn connect(&self) -> Result<Client, LoadError> {
        let ctx = |e: postgres::Error| LoadError::connect(self, e);
        if self.ssl == SslMode::Disable {
            return self.config.connect(postgres::NoTls).map_err(ctx);
        }
        let tls =
            tokio_postgres_rustls::MakeRustlsConnect::new(self.tls_config()?);
        self.config.connect(tls).map_err(ctx)
    }

    /// Asks the server to cancel the statement running on the connection
    /// `token` belongs to.
    ///
    /// # Errors
    /// The server cannot be reached.
    pub fn cancel(
        &self,
        token: &postgres::CancelToken,
    ) -> Result<(), LoadError> {
        let ctx = |e: postgres::Error| LoadError::connect(self, e);
        if self.ssl == SslMode::Disable {
            return token.cancel_query(postgres::NoTls).map_err(ctx);
        }
        let tls =
            tokio_postgres_rustls::MakeRustlsConnect::new(self.tls_config()?);
        token.cancel_query(tls).map_err(ctx)
    }

    fn tls_config(&self) -> Result<rustls::ClientConfig, LoadError> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut roots = rustls::RootCertStore::empty();
        match &self.root_cert {
            Some(path) => {
                let data = std::fs::read(path).map_err(|e| {
                    LoadError::config(format!(
                        "cannot read sslrootcert {}: {e}",
                        path.display()
                    ))
                })?;
                let mut rd = std::io::Cursor::new(data);
                let mut n = 0;
                for cert in rustls_pemfile::certs(&mut rd) {
                    let cert = cert.map_err(|e| {
                        LoadError::config(format!(
                            "sslrootcert {}: {e}",
                            path.display()
                        ))
                    })?;
                    roots.add(cert).map_err(|e| {
                        LoadError::config(format!(
                            "sslrootcert {}: {e}",
                            path.display()
                        ))
                    })?;
                    n += 1;
                }
                if n == 0 {
                    return Err(LoadError::config(format!(
                        "sslrootcert {} holds no PEM certificate",
                        path.display()
                    )));
                }
            }
            None => {
                roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned())
            }
        }
        let roots = Arc::new(roots);
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder =
            rustls::ClientConfig::builder_with_provider(provider.clone())
                .with_safe_default_protocol_versions()
                .map_err(|e| LoadError::config(format!("TLS setup: {e}")))?;
        let verify = match self.ssl {
            SslMode::Prefer | SslMode::Require if self.root_cert.is_none() => {
                Verify::Nothing
            }
            SslMode::VerifyFull => Verify::Full,
            _ => Verify::Chain,
        };
        let config = match verify {
            Verify::Full => {
                builder.with_root_certificates(roots).with_no_client_auth()
            }
            Verify::Chain | Verify::Nothing => {
                let inner = rustls::client::WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
                    .build()
                    .map_err(|e| LoadError::config(format!("TLS setup: {e}")))?;
                builder
                    .dangerous()
                    .with_custom_certificate_verifier(Arc::new(Relaxed {
                        inner,
                        provider,
                        verify,
                    }))
                    .with_no_client_auth()
            }
        };
        Ok(config)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Verify {
    Nothing,
    Chain,
    Full,
}

/// libpq's weaker modes: `require` checks nothing, `verify-ca` checks the
/// chain but not the host name. Signatures are always checked.
#[derive(Debug)]
struct Relaxed {
    inner: Arc<rustls::client::WebPkiServerVerifier>,
    provider: Arc<rustls::crypto::CryptoProvider>,
    verify: Verify,
}

impl ServerCertVerifier for Relaxed {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if self.verify == Verify::Nothing {
            return Ok(ServerCertVerified::assertion());
        }
        match self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp,
            now,
        ) {
            Ok(v) => Ok(v),
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidForName,
            ))
            | Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            Err(e) => Err(e),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_params_are_split_off() {
        let (rest, mode, root) = take_tls_params(
            "postgres://u:secret@h:5433/db?sslmode=verify-full&application_name=x&sslrootcert=%2Ftmp%2Fca.pem",
        );
        assert_eq!(rest, "postgres://u:secret@h:5433/db?application_name=x");
        assert_eq!(mode.as_deref(), Some("verify-full"));
        assert_eq!(root.as_deref(), Some("/tmp/ca.pem"));
        let (rest, mode, _) =
            take_tls_params("host=h user=u sslmode=verify-ca password=x");
        assert_eq!(rest, "host=h user=u password=x");
        assert_eq!(mode.as_deref(), Some("verify-ca"));
    }

    #[test]
    fn display_hides_the_password() {
        let d = Database::resolve(Some(
            "postgres://alice:s3cret@db.example:6543/tax?sslmode=require",
        ))
        .unwrap();
        let shown = d.to_string();
        assert_eq!(
            shown,
            "host=db.example port=6543 user=alice dbname=tax sslmode=require"
        );
        assert!(!format!("{d:?}").contains("s3cret"));
        assert!(
            Database::resolve(Some("postgres://x@h/db?sslmode=bogus"))
                .is_err()
        );
    }

    /// Issue 19: with no database named, fwload created its metadata in
    /// whatever database the user's name matched.
    #[test]
    fn a_database_must_be_named() {
        for url in ["postgres://alice@db.example:5432", "host=h user=u"] {
            let e = Database::resolve(Some(url)).unwrap_err().to_string();
            assert!(e.contains("no database named"), "{url}: {e}");
        }
        assert!(Database::resolve(Some("host=h dbname=tax")).is_ok());
    }
}
