//! The HTTP client: rustls with the webpki roots plus any extra PEM roots,
//! proxies from the environment, and how its errors are classified.

use std::error::Error as StdError;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::RootCertStore;
use rustls::pki_types::CertificateDer;

use super::error::{FetchError, FetchErrorKind};

/// Builds the client shared by a run's downloads.
///
/// Proxies come from `HTTP_PROXY`, `HTTPS_PROXY`, `ALL_PROXY` and
/// `NO_PROXY` (and their lower-case forms). Bodies are never decoded:
/// the bytes saved are the bytes published.
///
/// # Errors
/// A CA file cannot be read or holds no certificate, or the TLS setup
/// fails.
pub(crate) fn build(
    ca_certs: &[impl AsRef<Path>],
    connect_timeout: Duration,
) -> Result<reqwest::Client, FetchError> {
    // Other parts of fwload may use rustls without naming a provider;
    // installing one twice is refused, which is harmless.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut roots = RootCertStore::from_iter(
        webpki_roots::TLS_SERVER_ROOTS.iter().cloned(),
    );
    for path in ca_certs {
        add_pem_roots(&mut roots, path.as_ref())?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| FetchError::new(FetchErrorKind::Client).caused_by(e))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .connect_timeout(connect_timeout)
        .user_agent(concat!("fwload/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| FetchError::new(FetchErrorKind::Client).caused_by(e))
}

/// Adds every certificate of a PEM file to `roots`.
fn add_pem_roots(
    roots: &mut RootCertStore,
    path: &Path,
) -> Result<(), FetchError> {
    let bad = |m: String| FetchError::at_path(FetchErrorKind::CaCert(m), path);
    let data = std::fs::read(path).map_err(|e| {
        bad("cannot read CA certificate file".into()).caused_by(e)
    })?;
    let certs: Vec<CertificateDer<'static>> =
        rustls_pemfile::certs(&mut data.as_slice())
            .collect::<Result<_, _>>()
            .map_err(|e| bad("not a PEM file".into()).caused_by(e))?;
    if certs.is_empty() {
        return Err(bad("holds no PEM certificate".into()));
    }
    for (i, c) in certs.into_iter().enumerate() {
        roots.add(c).map_err(|e| {
            bad(format!("certificate {} is not usable as a root", i + 1))
                .caused_by(e)
        })?;
    }
    Ok(())
}

/// Classifies a client error for `url`: a rejected server certificate is
/// permanent; other failures to connect, send or receive are transient.
pub(crate) fn classify(e: reqwest::Error, url: &str) -> FetchError {
    let kind = if rejected_certificate(&e) {
        FetchErrorKind::Certificate
    } else if e.is_builder() {
        FetchErrorKind::InvalidSource("not a usable URL".into())
    } else if e.is_redirect() {
        FetchErrorKind::Protocol("too many redirects".into())
    } else {
        FetchErrorKind::Connection
    };
    FetchError::at_url(kind, url).caused_by(e)
}

/// Whether a rustls certificate error is in the cause chain. I/O errors
/// hide what they wrap from `source()` (and the TLS connector wraps one
/// I/O error in another), so they are opened too.
fn rejected_certificate(e: &(dyn StdError + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if is_certificate_error(err) {
            return true;
        }
        cur = err.source();
    }
    false
}

fn is_certificate_error(e: &(dyn StdError + 'static)) -> bool {
    if let Some(tls) = e.downcast_ref::<rustls::Error>() {
        return matches!(
            tls,
            rustls::Error::InvalidCertificate(_)
                | rustls::Error::NoCertificatesPresented
        );
    }
    match e.downcast_ref::<std::io::Error>().and_then(|io| io.get_ref()) {
        Some(inner) => is_certificate_error(inner),
        None => false,
    }
}
