//! Where the master key comes from: the configuration, or a file generated on first start.

use std::io::Write as _;
use std::path::Path;

use sipx_secrets::MasterKey;

use crate::{Config, StartupError};

const FILE: &str = "master.key";

/// The configured master key, else `<data_dir>/master.key`, created (mode 0600) if absent.
///
/// The generated file makes the zero-configuration start work; in production set
/// `SIPX_MASTER_KEY` from a secret store, so a copy of the data directory alone does not
/// reveal stored secrets.
pub fn load_master_key(config: &Config) -> Result<MasterKey, StartupError> {
    if let Some(secret) = &config.master_key {
        return MasterKey::parse(secret.expose())
            .map_err(|e| StartupError::MasterKey(e.to_string()));
    }
    let path = config.data_dir.join(FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => MasterKey::parse(&text)
            .map_err(|e| StartupError::MasterKey(format!("{}: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => create(&path),
        Err(e) => Err(StartupError::MasterKey(format!(
            "cannot read {}: {e}",
            path.display()
        ))),
    }
}

fn create(path: &Path) -> Result<MasterKey, StartupError> {
    let (key, raw) = MasterKey::generate();
    let data_err = |source| StartupError::DataDir {
        path: path.display().to_string(),
        source,
    };
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).map_err(data_err)?;
    writeln!(file, "{}", MasterKey::encode(&raw)).map_err(data_err)?;
    file.sync_all().map_err(data_err)?;
    tracing::warn!(
        path = %path.display(),
        "generated a master key beside the database; back it up with the data directory, \
         or set SIPX_MASTER_KEY in production"
    );
    Ok(key)
}
