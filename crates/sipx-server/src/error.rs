/// Why SIPx could not start. `Display` is one line meant for the operator.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartupError {
    #[error("configuration: {0}")]
    Config(String),
    #[error("cannot listen on {addr} for {what}: {source}")]
    Bind {
        what: &'static str,
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("TLS: {0}")]
    Tls(String),
    #[error("data directory {path}: {source}")]
    DataDir {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("master key: {0}")]
    MasterKey(String),
    #[error("database: {0}")]
    Store(#[from] sipx_store::StoreError),
}

impl StartupError {
    /// The exit status for this error: 78 (EX_CONFIG) for configuration problems, 1 otherwise.
    pub fn exit_code(&self) -> i32 {
        match self {
            StartupError::Config(_) | StartupError::Tls(_) | StartupError::MasterKey(_) => 78,
            _ => 1,
        }
    }
}
