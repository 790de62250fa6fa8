//! TLS settings: the server's certificate chain and key, and optionally the certificate
//! authority that client certificates must chain to (mutual TLS, as fleets with one
//! certificate per device use).
//!
//! Pure: PEM text in, a shared [`rustls::ServerConfig`] out. The files are read by
//! [`crate::config::Config::load_tls_files`]; records are sealed and opened in
//! `src/runtime/` (rustls does no I/O of its own). The crypto provider is *ring*: no C
//! toolchain beyond what `cc` needs, and the same provider the test clients use.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use std::sync::Arc;
use thiserror::Error;

/// Why the TLS settings cannot be used; the config loader names the key and the file.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum TlsError {
    /// The certificate file holds no PEM certificate.
    #[error("no PEM certificate (-----BEGIN CERTIFICATE-----) found")]
    NoCertificate,
    /// A PEM block could not be decoded.
    #[error("bad PEM: {0}")]
    BadPem(String),
    /// The key file holds no private key.
    #[error("no PEM private key (PKCS#8, PKCS#1 or SEC1) found")]
    NoKey,
    /// rustls refused the certificate, the key, or their pairing.
    #[error("{0}")]
    Rejected(String),
}

fn certificates(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::BadPem(e.to_string()))?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate);
    }
    Ok(certs)
}

/// The server side of TLS 1.2 and 1.3 with rustls' safe defaults. `client_ca_pem`:
/// every client must present a certificate chaining to one of these authorities; without
/// it, clients present none.
///
/// Errors say which input is wrong: `Err((0, _))` the chain, `(1, _)` the key, `(2, _)`
/// the client CA.
pub fn server_config(
    chain_pem: &[u8],
    key_pem: &[u8],
    client_ca_pem: Option<&[u8]>,
) -> Result<Arc<ServerConfig>, (usize, TlsError)> {
    let chain = certificates(chain_pem).map_err(|e| (0, e))?;
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| {
        (
            1,
            match e {
                rustls::pki_types::pem::Error::NoItemsFound => TlsError::NoKey,
                other => TlsError::BadPem(other.to_string()),
            },
        )
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| (0, TlsError::Rejected(e.to_string())))?;
    let builder = match client_ca_pem {
        None => builder.with_no_client_auth(),
        Some(pem) => {
            let mut roots = RootCertStore::empty();
            for ca in certificates(pem).map_err(|e| (2, e))? {
                roots
                    .add(ca)
                    .map_err(|e| (2, TlsError::Rejected(e.to_string())))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| (2, TlsError::Rejected(e.to_string())))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let config = builder
        .with_single_cert(chain, key)
        .map_err(|e| (1, TlsError::Rejected(e.to_string())))?;
    Ok(Arc::new(config))
}

/// The subject's Common Name of a DER certificate (the first one, as mosquitto's
/// `use_identity_as_username` takes it); None without one, or for a certificate that does not
/// parse (rustls verified it already, so only an odd subject gets here).
pub fn common_name(certificate_der: &[u8]) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(certificate_der).ok()?;
    let name = cert.subject().iter_common_name().next()?.as_str().ok()?;
    (!name.is_empty()).then(|| name.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const CERT: &[u8] = include_bytes!("../tests/fixtures/tls/server.pem");
    const KEY: &[u8] = include_bytes!("../tests/fixtures/tls/server.key");
    const CA: &[u8] = include_bytes!("../tests/fixtures/tls/ca.pem");
    const OTHER_KEY: &[u8] = include_bytes!("../tests/fixtures/tls/client.key");

    #[test]
    fn a_matching_chain_and_key_make_a_config() {
        assert!(server_config(CERT, KEY, None).is_ok());
        assert!(server_config(CERT, KEY, Some(CA)).is_ok());
    }

    #[test]
    fn the_common_name_of_a_client_certificate() {
        const CLIENT: &[u8] = include_bytes!("../tests/fixtures/tls/client.pem");
        let der = CertificateDer::from_pem_slice(CLIENT).unwrap();
        assert_eq!(common_name(&der).as_deref(), Some("dev1"));
        let server = CertificateDer::from_pem_slice(CERT).unwrap();
        assert_eq!(common_name(&server).as_deref(), Some("localhost"));
        assert_eq!(common_name(b"not a certificate"), None);
    }

    #[test]
    fn each_bad_input_is_named() {
        let err = |r: Result<Arc<ServerConfig>, (usize, TlsError)>| r.err().unwrap();
        assert_eq!(
            err(server_config(b"", KEY, None)),
            (0, TlsError::NoCertificate)
        );
        assert_eq!(
            err(server_config(KEY, KEY, None)),
            (0, TlsError::NoCertificate)
        );
        assert_eq!(err(server_config(CERT, CERT, None)), (1, TlsError::NoKey));
        assert_eq!(err(server_config(CERT, KEY, Some(b"x"))).0, 2);
        let (which, e) = err(server_config(CERT, OTHER_KEY, None));
        assert_eq!(which, 1, "a key that does not match the certificate: {e}");
        let broken = b"-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n";
        assert!(matches!(
            err(server_config(broken, KEY, None)),
            (0, TlsError::BadPem(_))
        ));
    }
}
