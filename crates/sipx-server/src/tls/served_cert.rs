//! The certificate a TLS listener (HTTPS, SIP over TLS, secure WebSocket) presents, read again
//! when its files change: certificates are renewed every few months (ACME every 60 to 90
//! days), and a restart to pick one up would cut every call's signalling connection.
//!
//! Each handshake looks at both files' metadata (two `stat`s, nothing beside a handshake's
//! cost), so a renewed pair is served from the next handshake on, whether the files were
//! rewritten, renamed over or re-pointed by a symbolic link. A pair that cannot be used (a
//! certificate written before its key, a key that does not match) is logged once per change
//! and the previous pair is served until the files change again.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// What tells one version of a file from another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
    #[cfg(unix)]
    inode: u64,
}

fn stamp(path: &Path) -> Option<Stamp> {
    // Follows symbolic links: a link re-pointed at a renewed file is a change.
    let meta = std::fs::metadata(path).ok()?;
    Some(Stamp {
        modified: meta.modified().ok(),
        len: meta.len(),
        #[cfg(unix)]
        inode: std::os::unix::fs::MetadataExt::ino(&meta),
    })
}

struct Served {
    key: Arc<CertifiedKey>,
    /// The files as last read or tried: (certificate, key).
    stamps: (Option<Stamp>, Option<Stamp>),
}

pub(crate) struct ServedCert {
    cert_path: PathBuf,
    key_path: PathBuf,
    provider: Arc<CryptoProvider>,
    state: Mutex<Served>,
}

impl fmt::Debug for ServedCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServedCert")
            .field("cert", &self.cert_path)
            .field("key", &self.key_path)
            .finish_non_exhaustive()
    }
}

impl ServedCert {
    /// Reads the pair once; an error names the file at fault.
    pub(crate) fn load(
        cert: &Path,
        key: &Path,
        provider: Arc<CryptoProvider>,
    ) -> Result<ServedCert, String> {
        let stamps = (stamp(cert), stamp(key));
        let pair = read_pair(cert, key, &provider)?;
        Ok(ServedCert {
            cert_path: cert.to_owned(),
            key_path: key.to_owned(),
            provider,
            state: Mutex::new(Served {
                key: Arc::new(pair),
                stamps,
            }),
        })
    }

    /// The pair to present now: read again first when either file changed.
    pub(crate) fn current(&self) -> Arc<CertifiedKey> {
        let mut served = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let now = (stamp(&self.cert_path), stamp(&self.key_path));
        if now != served.stamps {
            served.stamps = now;
            match read_pair(&self.cert_path, &self.key_path, &self.provider) {
                Ok(pair) => {
                    let fingerprint = pair.cert.first().map(|c| super::fingerprint(c));
                    tracing::info!(cert = %self.cert_path.display(), fingerprint = fingerprint.as_deref().unwrap_or(""),
                        "TLS certificate reloaded");
                    served.key = Arc::new(pair);
                }
                Err(error) => {
                    tracing::warn!(%error, "the TLS certificate files changed but do not form a usable pair: still serving the previous one")
                }
            }
        }
        served.key.clone()
    }
}

impl ResolvesServerCert for ServedCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

/// A certificate chain and its private key from PEM files, checked to belong together.
fn read_pair(cert: &Path, key: &Path, provider: &CryptoProvider) -> Result<CertifiedKey, String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| format!("cannot read certificate {}: {e}", cert.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("bad certificate PEM in {}: {e}", cert.display()))?;
    if certs.is_empty() {
        return Err(format!("no certificate in {}", cert.display()));
    }
    let key_der = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| format!("cannot read private key {}: {e}", key.display()))?;
    CertifiedKey::from_der(certs, key_der, provider)
        .map_err(|e| format!("certificate and key do not form a usable pair: {e}"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn provider() -> Arc<CryptoProvider> {
        Arc::new(rustls::crypto::aws_lc_rs::default_provider())
    }

    /// A fresh self-signed pair, as PEM (certificate, key).
    fn pair() -> (String, String) {
        let made = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        (made.cert.pem(), made.signing_key.serialize_pem())
    }

    fn presented(served: &ServedCert) -> Vec<u8> {
        served.current().cert[0].to_vec()
    }

    fn der(pem: &str) -> Vec<u8> {
        CertificateDer::from_pem_slice(pem.as_bytes())
            .unwrap()
            .to_vec()
    }

    /// Writes `text` to `path` by renaming a new file over it, as renewal tools do.
    fn replace(path: &Path, text: &str) {
        let next = path.with_extension("next");
        std::fs::write(&next, text).unwrap();
        std::fs::rename(&next, path).unwrap();
    }

    /// A pair written in `dir` and served: (served, cert path, key path, certificate PEM).
    fn served_in(dir: &Path) -> (ServedCert, PathBuf, PathBuf, String) {
        let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
        let (a_cert, a_key) = pair();
        std::fs::write(&cert, &a_cert).unwrap();
        std::fs::write(&key, &a_key).unwrap();
        let served = ServedCert::load(&cert, &key, provider()).unwrap();
        (served, cert, key, a_cert)
    }

    #[test]
    fn a_renewed_pair_is_served_from_the_next_handshake() {
        let dir = tempfile::tempdir().unwrap();
        let (served, cert, key, a_cert) = served_in(dir.path());
        assert_eq!(presented(&served), der(&a_cert));
        assert_eq!(
            presented(&served),
            der(&a_cert),
            "unchanged files: the same pair"
        );

        let (b_cert, b_key) = pair();
        replace(&key, &b_key);
        replace(&cert, &b_cert);
        assert_eq!(presented(&served), der(&b_cert));
    }

    #[test]
    fn a_half_written_or_mismatched_pair_keeps_the_previous_one_until_it_is_whole() {
        let dir = tempfile::tempdir().unwrap();
        let (served, cert, key, a_cert) = served_in(dir.path());

        // The new certificate first: it does not match the old key.
        let (b_cert, b_key) = pair();
        replace(&cert, &b_cert);
        assert_eq!(presented(&served), der(&a_cert));
        // A key cut short, then a key file gone: still the old pair.
        replace(&key, &b_key[..b_key.len() / 2]);
        assert_eq!(presented(&served), der(&a_cert));
        std::fs::remove_file(&key).unwrap();
        assert_eq!(presented(&served), der(&a_cert));
        // The whole key: the new pair.
        replace(&key, &b_key);
        assert_eq!(presented(&served), der(&b_cert));
    }

    #[cfg(unix)]
    #[test]
    fn a_symbolic_link_pointed_at_a_renewed_file_is_followed() {
        let dir = tempfile::tempdir().unwrap();
        let (a_cert, a_key) = pair();
        let (b_cert, b_key) = pair();
        for (name, text) in [
            ("a.crt", &a_cert),
            ("a.key", &a_key),
            ("b.crt", &b_cert),
            ("b.key", &b_key),
        ] {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        let (cert, key) = (dir.path().join("live.crt"), dir.path().join("live.key"));
        std::os::unix::fs::symlink(dir.path().join("a.crt"), &cert).unwrap();
        std::os::unix::fs::symlink(dir.path().join("a.key"), &key).unwrap();
        let served = ServedCert::load(&cert, &key, provider()).unwrap();
        assert_eq!(presented(&served), der(&a_cert));
        for (link, target) in [(&cert, "b.crt"), (&key, "b.key")] {
            let next = link.with_extension("next");
            std::os::unix::fs::symlink(dir.path().join(target), &next).unwrap();
            std::fs::rename(&next, link).unwrap();
        }
        assert_eq!(presented(&served), der(&b_cert));
    }
}
