//! HTTPS: the same routes over TLS, with HTTP/2 for browsers.
//!
//! Browsers open at most six HTTP/1.1 connections to a host, so with a seventh tab
//! an event stream hangs; over HTTP/2 every tab's stream shares one connection.
//! Browsers speak HTTP/2 only over TLS, and warp 0.4 has no TLS of its own: the
//! server loop (`server.rs`) runs a rustls handshake (ring provider, ALPN `h2` then
//! `http/1.1`) before serving the very filter the plain server runs.
//!
//! [`TlsSettings::load`] reads and checks the PEM files (the command line does it
//! while it is parsed, so a wrong file is a start-up error); the server loop in
//! `server.rs` runs the handshake with [`TlsSettings::acceptor`].

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::{self, InconsistentKeys, ServerConfig};

/// Protocols offered in ALPN, preferred first.
const ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// A certificate chain and its private key, read from PEM files and checked
/// against each other: what `--tls-cert` and `--tls-key` name.
#[derive(Clone)]
pub struct TlsSettings {
    pub cert_path: PathBuf,
    pub key_path: PathBuf,
    server_config: Arc<ServerConfig>,
}

impl fmt::Debug for TlsSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsSettings")
            .field("cert_path", &self.cert_path)
            .field("key_path", &self.key_path)
            .finish_non_exhaustive()
    }
}

impl TlsSettings {
    /// Runs the server side of the TLS handshake on accepted connections.
    pub fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(Arc::clone(&self.server_config))
    }

    /// Reads the certificate chain (leaf first) and the private key (PKCS#8,
    /// PKCS#1 or SEC1), and builds the server's TLS configuration with ALPN.
    pub fn load(cert_path: &Path, key_path: &Path) -> Result<Self, TlsError> {
        let certs = read_certificates(cert_path)?;
        let key = read_private_key(key_path)?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut server_config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .and_then(|builder| builder.with_no_client_auth().with_single_cert(certs, key))
            .map_err(|source| TlsError::Unusable {
                cert: cert_path.to_owned(),
                key: key_path.to_owned(),
                source,
            })?;
        server_config.alpn_protocols = ALPN.iter().map(|protocol| protocol.to_vec()).collect();
        Ok(Self {
            cert_path: cert_path.to_owned(),
            key_path: key_path.to_owned(),
            server_config: Arc::new(server_config),
        })
    }
}

/// Which of the two files a [`TlsError`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsFile {
    Certificate,
    Key,
}

impl TlsFile {
    fn describe(self) -> &'static str {
        match self {
            Self::Certificate => "TLS certificate (--tls-cert)",
            Self::Key => "TLS private key (--tls-key)",
        }
    }
}

/// Why the certificate and key cannot be used; each says which file and why.
#[derive(Debug)]
pub enum TlsError {
    /// The file cannot be read (missing, a directory, no permission…).
    Read {
        file: TlsFile,
        path: PathBuf,
        source: io::Error,
    },
    /// The file is not PEM, or a PEM block in it is broken.
    Pem {
        file: TlsFile,
        path: PathBuf,
        source: pem::Error,
    },
    /// The file is PEM but holds no block of the kind needed.
    Missing { file: TlsFile, path: PathBuf },
    /// rustls refuses the pair: the key does not belong to the certificate, or
    /// is of a kind it cannot sign with.
    Unusable {
        cert: PathBuf,
        key: PathBuf,
        source: rustls::Error,
    },
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Read { file, path, source } => write!(
                f,
                "cannot read the {} {}: {source}",
                file.describe(),
                path.display()
            ),
            Self::Pem { file, path, source } => write!(
                f,
                "the {} {} is not valid PEM: {source}",
                file.describe(),
                path.display()
            ),
            Self::Missing { file, path } => {
                let wanted = match file {
                    TlsFile::Certificate => "no `BEGIN CERTIFICATE` block",
                    TlsFile::Key => "no `BEGIN PRIVATE KEY` (or RSA/EC PRIVATE KEY) block",
                };
                write!(f, "the {} {} has {wanted}", file.describe(), path.display())
            }
            Self::Unusable {
                cert,
                key,
                source: rustls::Error::InconsistentKeys(InconsistentKeys::KeyMismatch),
            } => write!(
                f,
                "the TLS private key (--tls-key) {} is not the key of the certificate \
                 (--tls-cert) {}",
                key.display(),
                cert.display()
            ),
            Self::Unusable { cert, key, source } => write!(
                f,
                "the TLS private key (--tls-key) {} cannot be used with the certificate \
                 (--tls-cert) {}: {source}",
                key.display(),
                cert.display()
            ),
        }
    }
}

impl std::error::Error for TlsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Read { source, .. } => Some(source),
            Self::Pem { source, .. } => Some(source),
            Self::Missing { .. } => None,
            Self::Unusable { source, .. } => Some(source),
        }
    }
}

fn read_pem(file: TlsFile, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        file,
        path: path.to_owned(),
        source,
    })
}

fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let file = TlsFile::Certificate;
    let pem = read_pem(file, path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| TlsError::Pem {
            file,
            path: path.to_owned(),
            source,
        })?;
    if certs.is_empty() {
        return Err(TlsError::Missing {
            file,
            path: path.to_owned(),
        });
    }
    Ok(certs)
}

fn read_private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let file = TlsFile::Key;
    let pem = read_pem(file, path)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|source| match source {
        pem::Error::NoItemsFound => TlsError::Missing {
            file,
            path: path.to_owned(),
        },
        source => TlsError::Pem {
            file,
            path: path.to_owned(),
            source,
        },
    })
}
