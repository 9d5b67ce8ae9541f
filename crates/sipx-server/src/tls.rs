//! TLS for the API and SIP: operator-provided PEM files, read again when they change, or a
//! self-signed development certificate; and the trust SIPx's own TLS connections use.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::ServerConfig;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

use crate::StartupError;
use served_cert::ServedCert;

mod served_cert;

fn tls_err(msg: String) -> StartupError {
    StartupError::Tls(msg)
}

/// Builds a server configuration from PEM files, with ALPN for HTTP/1.1 (the API serves no
/// HTTP/2: `http.rs` says why).
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, StartupError> {
    let mut config = plain_server_config(cert, key)?;
    if let Some(c) = Arc::get_mut(&mut config) {
        c.alpn_protocols = vec![b"http/1.1".to_vec()];
    }
    Ok(config)
}

/// A server configuration from PEM files, without ALPN (SIP over TLS). The files are read
/// again when they change (`served_cert.rs`), so a renewed certificate needs no restart.
pub fn plain_server_config(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, StartupError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let served = ServedCert::load(cert, key, provider.clone()).map_err(tls_err)?;
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_err(e.to_string()))?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(served));
    Ok(Arc::new(config))
}

/// A self-signed certificate for `localhost`, `127.0.0.1` and `::1`, created once in
/// `<data_dir>/dev-tls/`. Returns the cert and key paths and the certificate's SHA-256
/// fingerprint, so a client can pin it.
pub fn dev_certificate(data_dir: &Path) -> Result<(PathBuf, PathBuf, String), StartupError> {
    let dir = data_dir.join("dev-tls");
    let cert_path = dir.join("cert.pem");
    let key_path = dir.join("key.pem");
    if !cert_path.exists() || !key_path.exists() {
        std::fs::create_dir_all(&dir)
            .map_err(|e| tls_err(format!("cannot create {}: {e}", dir.display())))?;
        let names = vec![
            "localhost".to_owned(),
            "127.0.0.1".to_owned(),
            "::1".to_owned(),
        ];
        let generated = rcgen::generate_simple_self_signed(names)
            .map_err(|e| tls_err(format!("cannot generate a certificate: {e}")))?;
        write_private(&key_path, generated.signing_key.serialize_pem().as_bytes())?;
        std::fs::write(&cert_path, generated.cert.pem())
            .map_err(|e| tls_err(format!("cannot write {}: {e}", cert_path.display())))?;
    }
    let der = CertificateDer::from_pem_file(&cert_path)
        .map_err(|e| tls_err(format!("cannot read {}: {e}", cert_path.display())))?;
    Ok((cert_path, key_path, fingerprint(&der)))
}

/// SHA-256 of the DER certificate, as colon-separated upper-case hex.
pub fn fingerprint(der: &[u8]) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der);
    digest
        .as_ref()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<(), StartupError> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options
        .open(path)
        .and_then(|mut f| f.write_all(bytes))
        .map_err(|e| tls_err(format!("cannot write {}: {e}", path.display())))
}

/// The client configuration for SIPx's own TLS connections (registering to a provider over
/// TLS): the system's trusted roots plus those in `extra_ca` (PEM), certificates verified.
pub fn client_config(extra_ca: Option<&Path>) -> Result<Arc<rustls::ClientConfig>, StartupError> {
    let mut roots = rustls::RootCertStore::empty();
    let system = rustls_native_certs::load_native_certs();
    for e in &system.errors {
        tracing::warn!(error = %e, "cannot read a system trust store certificate");
    }
    let (added, _ignored) = roots.add_parsable_certificates(system.certs);
    if let Some(path) = extra_ca {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
            .map_err(|e| tls_err(format!("cannot read CA file {}: {e}", path.display())))?
            .collect::<Result<_, _>>()
            .map_err(|e| tls_err(format!("bad certificate PEM in {}: {e}", path.display())))?;
        if certs.is_empty() {
            return Err(tls_err(format!("no certificate in {}", path.display())));
        }
        for c in certs {
            roots
                .add(c)
                .map_err(|e| tls_err(format!("unusable CA in {}: {e}", path.display())))?;
        }
    } else if added == 0 {
        tracing::warn!("no trusted root certificates: TLS connections to providers will fail");
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| tls_err(e.to_string()))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_certificate_is_created_once_and_loads() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key, fp) = dev_certificate(dir.path()).unwrap();
        assert_eq!(fp.len(), 32 * 3 - 1);
        let (_, _, again) = dev_certificate(dir.path()).unwrap();
        assert_eq!(fp, again, "the certificate is reused");
        server_config(&cert, &key).unwrap();
    }

    #[test]
    fn bad_files_give_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.pem");
        let e = server_config(&missing, &missing).unwrap_err().to_string();
        assert!(e.contains("nope.pem"), "{e}");
        let junk = dir.path().join("junk.pem");
        std::fs::write(&junk, "not a pem").unwrap();
        let e = server_config(&junk, &junk).unwrap_err().to_string();
        assert!(e.contains("junk.pem"), "{e}");
    }

    #[test]
    fn client_trust_takes_an_extra_ca_and_refuses_a_bad_one() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, _, _) = dev_certificate(dir.path()).unwrap();
        client_config(Some(&cert)).unwrap();
        client_config(None).unwrap();
        let junk = dir.path().join("junk-ca.pem");
        std::fs::write(&junk, "not a pem").unwrap();
        let e = client_config(Some(&junk)).unwrap_err().to_string();
        assert!(e.contains("junk-ca.pem"), "{e}");
    }
}
