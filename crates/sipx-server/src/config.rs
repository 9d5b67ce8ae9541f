//! Configuration, layered: built-in defaults < TOML file (`--config`) < environment (`SIPX_…`,
//! nested keys joined by `__`, e.g. `SIPX_HTTP__LISTEN`) < command-line flags.
//!
//! The tree mirrors the components (one section per subsystem); every field has a default, so
//! `sipx serve` runs with no file at all. Secrets are [`Secret`]s: printed as `<redacted>`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize, Serializer};

use crate::StartupError;

/// A configured secret. Serializes as `<redacted>` so `sipx config` can print the rest.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("<redacted>")
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Where the database, generated keys and dev certificates live.
    pub data_dir: PathBuf,
    /// 32 bytes (base64 or hex) sealing stored secrets. When unset, a key is generated into
    /// `<data_dir>/master.key` on first start.
    pub master_key: Option<Secret>,
    pub log: LogConfig,
    pub http: HttpConfig,
    pub auth: AuthConfig,
    pub admin: AdminConfig,
    pub sip: SipConfig,
    pub media: MediaConfig,
    pub rooms: RoomsConfig,
    pub routing: RoutingConfig,
    pub webhooks: WebhooksConfig,
    pub shutdown: ShutdownConfig,
}

/// Delivery of application events to webhooks (docs/webhooks.md).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct WebhooksConfig {
    /// Wait before the first retry of a failed delivery; each further retry waits twice as
    /// long, up to `max_backoff_ms`.
    pub initial_backoff_ms: u64,
    pub max_backoff_ms: u64,
    /// A delivery is retried until this long after its event; then it is marked failed.
    pub retry_for_secs: u64,
    /// Time allowed to open the TCP connection.
    pub connect_timeout_ms: u64,
    /// Time allowed for a whole attempt: connection, TLS, request and answer.
    pub request_timeout_ms: u64,
    /// Attempts in progress at once, across every receiver. 0 pauses sending: deliveries are
    /// logged and stay pending (maintenance, or tests that must not reach outside).
    pub max_in_flight: usize,
    /// Attempts in progress at once for one application: a tenant whose receiver is slow or
    /// down cannot hold every slot while the others' events wait.
    pub max_in_flight_per_app: usize,
    /// Finished deliveries (and their attempts) are kept in the log this long (0: forever).
    pub retention_hours: u64,
    /// Extra trusted CAs (PEM) for HTTPS receivers, beside the system's roots.
    pub tls_ca_file: Option<PathBuf>,
    /// Networks webhooks are never sent to (`webhooks/deny.rs`): link-local (cloud metadata)
    /// and addresses no receiver has by default. A SIPx whose tenants should not reach its
    /// own host or network adds `127.0.0.0/8`, `::1` and its private ranges.
    pub deny_networks: Vec<String>,
}

impl Default for WebhooksConfig {
    fn default() -> Self {
        WebhooksConfig {
            initial_backoff_ms: 1000,
            max_backoff_ms: 60_000,
            retry_for_secs: 3600,
            connect_timeout_ms: 5000,
            request_timeout_ms: 10_000,
            max_in_flight: 64,
            max_in_flight_per_app: 8,
            retention_hours: 7 * 24,
            tls_ca_file: None,
            deny_networks: crate::webhooks::DEFAULT_DENY
                .iter()
                .map(|n| (*n).to_owned())
                .collect(),
        }
    }
}

/// The media engine: RTP sockets, codecs, SRTP, jitter buffers.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct MediaConfig {
    /// Address the RTP/RTCP sockets bind to.
    pub ip: std::net::IpAddr,
    /// Address written into SDP when it differs from `ip` (1:1 NAT: cloud VMs, Docker).
    pub external_ip: Option<std::net::IpAddr>,
    /// A second RTP address, of the other IP family than `ip`, for a dual-stack SIPx (an
    /// IPv4 trunk and an IPv6 IMS core): each call's media uses the address of its peer's
    /// family, from the same port range.
    pub second_ip: Option<std::net::IpAddr>,
    /// Address written into SDP for `second_ip`'s calls when it differs from it.
    pub second_external_ip: Option<std::net::IpAddr>,
    /// RTP port range (even ports for RTP, the next odd one for RTCP).
    pub rtp_port_min: u16,
    pub rtp_port_max: u16,
    /// Media threads; 0: one per CPU core.
    pub threads: usize,
    /// Each media thread on a core of its own, when there are as many threads as cores the
    /// process may use (`media/scheduling.rs` says why).
    pub pin_threads: bool,
    /// The media threads' nice value, below the rest of the process so audio stays on time on
    /// a busy machine; needs root or CAP_SYS_NICE (without, a warning). 0: leave it.
    pub thread_nice: i32,
    /// Codecs offered and accepted on SIP legs, in order of preference:
    /// `opus`, `G722`, `PCMU`, `PCMA` (and `G729` in builds with the `g729` feature).
    pub codecs: Vec<String>,
    /// SRTP (SDES) on SIP legs: `disabled`, `allowed` (used when the peer offers it) or
    /// `required` (plain RTP offers are refused with 488).
    pub srtp: String,
    /// SDES suites taken, most preferred first; an offer lists the first three:
    /// `AEAD_AES_128_GCM`, `AES_CM_128_HMAC_SHA1_80`, `AES_CM_128_HMAC_SHA1_32`,
    /// `AEAD_AES_256_GCM`, `AES_256_CM_HMAC_SHA1_80`, `AES_256_CM_HMAC_SHA1_32`.
    pub srtp_suites: Vec<String>,
    /// Packetisation SIPx sends, in ms.
    pub ptime_ms: u32,
    /// Adaptive jitter buffer bounds, in ms.
    pub jitter_min_ms: u64,
    pub jitter_max_ms: u64,
    /// A call whose peer sends no RTP or RTCP for this long is hung up (0: never).
    pub media_timeout_secs: u64,
    /// Listen for DTMF tones in the audio of calls that did not negotiate `telephone-event`
    /// (gateways and analogue lines that send keys only as tones), and report them as digits.
    pub inband_dtmf: bool,
    /// User part of a Request-URI that reaches the echo test (audio and DTMF sent back);
    /// empty: no echo test.
    pub echo_extension: String,
    /// User part that reaches the echo test through Opus: the caller's audio is encoded to
    /// Opus and decoded again before it comes back (the transcoding work of a phone in a room,
    /// for tests and `bench/media.py`); empty: none.
    pub opus_echo_extension: String,
}

impl Default for MediaConfig {
    fn default() -> Self {
        MediaConfig {
            ip: std::net::IpAddr::from([127, 0, 0, 1]),
            external_ip: None,
            second_ip: None,
            second_external_ip: None,
            rtp_port_min: 20_000,
            rtp_port_max: 29_999,
            threads: 0,
            pin_threads: true,
            thread_nice: -10,
            codecs: ["opus", "G722", "PCMU", "PCMA"].map(str::to_owned).to_vec(),
            srtp: "allowed".to_owned(),
            srtp_suites: sipx_sdp::SrtpSuite::ALL
                .map(|s| s.name().to_owned())
                .to_vec(),
            ptime_ms: 20,
            jitter_min_ms: 20,
            jitter_max_ms: 200,
            media_timeout_secs: 30,
            inband_dtmf: true,
            echo_extension: "echo".to_owned(),
            opus_echo_extension: "echo-opus".to_owned(),
        }
    }
}

/// Inbound routing rules (`/v1/routing-rules`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct RoutingConfig {
    /// The answer to a call that no rule of its application matches: 404 or 480.
    pub no_rule_status: NoRuleStatus,
}

/// The SIP status a call no rule matches gets: `404` (Not Found: the number does not exist
/// here) or `480` (Temporarily Unavailable: try again later, for instance while rules are
/// being set up).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(try_from = "u16", into = "u16")]
pub enum NoRuleStatus {
    #[default]
    NotFound,
    TemporarilyUnavailable,
}

impl NoRuleStatus {
    pub fn code(self) -> u16 {
        match self {
            NoRuleStatus::NotFound => 404,
            NoRuleStatus::TemporarilyUnavailable => 480,
        }
    }
}

impl TryFrom<u16> for NoRuleStatus {
    type Error = String;

    fn try_from(code: u16) -> Result<Self, String> {
        match code {
            404 => Ok(NoRuleStatus::NotFound),
            480 => Ok(NoRuleStatus::TemporarilyUnavailable),
            other => Err(format!(
                "routing.no_rule_status must be 404 or 480, not {other}"
            )),
        }
    }
}

impl From<NoRuleStatus> for u16 {
    fn from(s: NoRuleStatus) -> u16 {
        s.code()
    }
}

/// The built-in WebRTC rooms (an SFU: ICE-lite and DTLS-SRTP on one UDP port).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct RoomsConfig {
    pub enabled: bool,
    /// The UDP address browsers' media reaches (one port for every room).
    pub udp: SocketAddr,
    /// The address browsers are told to use, when it differs from `udp`'s (1:1 NAT); required
    /// when `udp` binds all interfaces.
    pub external_ip: Option<std::net::IpAddr>,
    /// A join to a room that does not exist creates it (else rooms are made through the API).
    pub auto_create: bool,
    /// An auto-created room is closed after being empty this long.
    pub empty_room_timeout_secs: u64,
    pub max_participants: usize,
    /// A call whose Request-URI user is this prefix plus a room name joins that room of the
    /// application the call came through (its trunk or SIP account); empty: no dial-in.
    pub dial_in_prefix: String,
    /// Longest lifetime of a join token the API mints.
    pub max_token_ttl_secs: u64,
}

impl Default for RoomsConfig {
    fn default() -> Self {
        RoomsConfig {
            enabled: true,
            udp: SocketAddr::from(([127, 0, 0, 1], 7882)),
            external_ip: None,
            auto_create: true,
            empty_room_timeout_secs: 300,
            max_participants: 100,
            dial_in_prefix: "room-".to_owned(),
            max_token_ttl_secs: 24 * 3600,
        }
    }
}

/// SIP listeners and registrar.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct SipConfig {
    pub enabled: bool,
    /// UDP listen addresses.
    pub udp: Vec<SocketAddr>,
    /// TCP listen addresses.
    pub tcp: Vec<SocketAddr>,
    /// TLS listen addresses (`sips:`, `transport=tls`; conventionally port 5061). The
    /// certificate is `tls_cert`/`tls_key`, else the HTTP API's (`http.tls`, or the dev one).
    pub tls: Vec<SocketAddr>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// Extra trusted CAs (PEM) for SIPx's own TLS connections to providers, beside the system's
    /// roots (a private PKI, or a provider with a self-signed certificate).
    pub tls_ca_file: Option<PathBuf>,
    /// WebSocket (RFC 7118) listen addresses, for browser SIP phones; `wss` over TLS.
    pub ws: Vec<SocketAddr>,
    pub wss: Vec<SocketAddr>,
    /// Host (name or address) to advertise in Via/Contact behind 1:1 NAT; the listen address
    /// otherwise.
    pub external_host: Option<String>,
    /// Name servers (`ip` or `ip:port`) asked for the SRV records of providers' hosts given
    /// without a port (RFC 3263); empty: the system's (`/etc/resolv.conf`).
    pub dns_servers: Vec<String>,
    /// Digest realm.
    pub realm: String,
    /// Transaction timers (RFC 3261 §17), in milliseconds.
    pub t1_ms: u64,
    pub t2_ms: u64,
    pub t4_ms: u64,
    /// Lifetime of a digest nonce before `stale=true`.
    pub nonce_ttl_secs: u64,
    /// Digest algorithms challenged with, in order (`MD5`, `SHA-256`). Credentials of either
    /// algorithm are always verified. Only MD5 is offered by default: sipp reads only the first
    /// challenge, and libre-based UAs (baresip 1.x) fail the whole registration on a challenge
    /// whose algorithm they lack instead of skipping it.
    pub digest_algorithms: Vec<String>,
    pub min_expires: u32,
    pub max_expires: u32,
    pub default_expires: u32,
    /// Failed authentications from one address within `failure_window_secs` that earn a ban.
    pub max_auth_failures: u32,
    pub failure_window_secs: u64,
    pub ban_secs: u64,
    /// Drop requests from well-known scanners without answering.
    pub drop_scanners: bool,
    /// Messages per second one source address may send (0: unlimited), and the burst.
    pub rate_limit_per_sec: u32,
    pub rate_limit_burst: u32,
    /// Proxies in front of SIPx (addresses or networks): never banned or rate-limited.
    pub trusted_proxies: Vec<String>,
    /// What requests other than REGISTER get from a source that is neither a trunk's inbound
    /// network, a registered device, nor a trusted proxy: `reject` (403), `challenge` (401),
    /// or `silent` (no answer at all, what scanners deserve).
    pub unknown_source: UnknownSourcePolicy,
    /// Keep-alives to devices registered over UDP, so NAT bindings stay open (0: off).
    pub nat_keepalive_secs: u64,
    /// Socket receive buffer for UDP, in bytes.
    pub udp_recv_buffer: usize,
    /// The smallest session timer interval (RFC 4028) taken from a caller, in seconds; a
    /// shorter `Session-Expires` gets 422 with this `Min-SE`. RFC 4028 asks for 90 at least;
    /// lower values are for tests.
    pub session_min_se_secs: u32,
    /// The RFC 4028 session timer SIPx's own INVITEs (dial-outs) offer, in seconds, asking the
    /// called side to refresh (`refresher=uas`); 0 offers none. Below `session_min_se_secs`,
    /// that is offered.
    pub session_expires_secs: u32,
    /// Blind transfers phones ask for by REFER (RFC 3515): SIPx calls the `Refer-To` into the
    /// phone's room, to the application's account of that name, else as a number back through
    /// the account the phone's call came by (`accounts`, the default) or also its trunk
    /// (`all`); `off`: REFER gets 405.
    pub accept_refer: ReferPolicy,
    /// Stream connections (TCP, TLS, WS, WSS) others may hold open at once, in all and from
    /// one address; past either, a new one is closed at once. Bounded below the process's
    /// open-file limit, which SIPx raises to its hard limit at start.
    pub max_connections: usize,
    pub max_connections_per_source: usize,
    /// Seconds a new connection has to send its first message, and any connection to finish
    /// a message it began (slow senders hold no connection for long). Once a connection has
    /// carried SIP, it may stay silent for `max_expires` + 60 s (a registration's life).
    pub stream_setup_timeout_secs: u64,
}

impl Default for SipConfig {
    fn default() -> Self {
        SipConfig {
            enabled: true,
            udp: vec![SocketAddr::from(([127, 0, 0, 1], 5060))],
            tcp: vec![SocketAddr::from(([127, 0, 0, 1], 5060))],
            tls: Vec::new(),
            tls_cert: None,
            tls_key: None,
            tls_ca_file: None,
            ws: Vec::new(),
            wss: Vec::new(),
            external_host: None,
            dns_servers: Vec::new(),
            realm: "sipx".to_owned(),
            t1_ms: 500,
            t2_ms: 4000,
            t4_ms: 5000,
            nonce_ttl_secs: 300,
            digest_algorithms: vec!["MD5".to_owned()],
            min_expires: 60,
            max_expires: 7200,
            default_expires: 3600,
            max_auth_failures: 5,
            failure_window_secs: 60,
            ban_secs: 300,
            drop_scanners: true,
            rate_limit_per_sec: 200,
            rate_limit_burst: 400,
            trusted_proxies: Vec::new(),
            unknown_source: UnknownSourcePolicy::Reject,
            nat_keepalive_secs: 30,
            udp_recv_buffer: 4 << 20,
            session_min_se_secs: sipx_sip::session_timer::MIN_SE_FLOOR,
            session_expires_secs: 1800,
            accept_refer: ReferPolicy::Accounts,
            max_connections: 8192,
            max_connections_per_source: 256,
            stream_setup_timeout_secs: 30,
        }
    }
}

/// Which transfers phones may ask for (`sip.accept_refer`).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ReferPolicy {
    /// REFER gets 405.
    Off,
    /// To the application's accounts, or back through the referring call's account: never
    /// through a trunk, where a caller could place calls on the operator's account.
    Accounts,
    /// Also back through the referring call's trunk.
    All,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum UnknownSourcePolicy {
    #[default]
    Reject,
    Challenge,
    Silent,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Human,
    Json,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    pub format: LogFormat,
    /// A `tracing` filter, e.g. `info` or `info,sipx_api=debug`.
    pub filter: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    pub listen: SocketAddr,
    /// Largest accepted request body, in bytes.
    pub body_limit: usize,
    pub tls: TlsConfig,
    /// Connections others may hold open to the API at once (WebSocket signalling and event
    /// streams included), in all and from one address; past either, a new one is closed at once.
    pub max_connections: usize,
    pub max_connections_per_source: usize,
    /// Seconds a connection has to send a request's headers, and may wait idle between
    /// requests (slow or silent clients hold no connection for long). Upgraded WebSockets and
    /// event streams are not bound by it.
    pub header_timeout_secs: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate chain; with `key`, the API serves HTTPS.
    pub cert: Option<PathBuf>,
    /// PEM private key.
    pub key: Option<PathBuf>,
    /// Generate (once) a self-signed certificate in `<data_dir>/dev-tls/` and serve HTTPS.
    pub dev: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// How far ahead a signature's `expire_at` may lie, in seconds.
    pub max_expiry_ahead_secs: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct AdminConfig {
    /// The operator's API key for `/v1/apps`; with `api_secret`, enables the operator API.
    pub api_key: Option<String>,
    pub api_secret: Option<Secret>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ShutdownConfig {
    /// On SIGTERM, how long to wait for live calls and requests before stopping anyway.
    pub drain_timeout_secs: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("data"),
            master_key: None,
            log: LogConfig::default(),
            http: HttpConfig::default(),
            auth: AuthConfig::default(),
            admin: AdminConfig::default(),
            sip: SipConfig::default(),
            media: MediaConfig::default(),
            rooms: RoomsConfig::default(),
            routing: RoutingConfig::default(),
            webhooks: WebhooksConfig::default(),
            shutdown: ShutdownConfig::default(),
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: LogFormat::Human,
            filter: "info,sqlx=warn".to_owned(),
        }
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            body_limit: 1 << 20,
            tls: TlsConfig::default(),
            max_connections: 4096,
            max_connections_per_source: 256,
            header_timeout_secs: 30,
        }
    }
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            max_expiry_ahead_secs: 24 * 3600,
        }
    }
}

impl Default for ShutdownConfig {
    fn default() -> Self {
        ShutdownConfig {
            drain_timeout_secs: 30,
        }
    }
}

/// Keys whose environment values are taken as written. figment parses other values (`8080` is a
/// number, `true` a boolean), which would turn an all-digit API key such as `23456789` into a
/// number, drop the leading zeros of `007…`, and put the value in a type error.
const VERBATIM_ENV: &[(&str, &str)] = &[
    ("MASTER_KEY", "master_key"),
    ("ADMIN__API_KEY", "admin.api_key"),
    ("ADMIN__API_SECRET", "admin.api_secret"),
    ("DATA_DIR", "data_dir"),
    ("LOG__FILTER", "log.filter"),
    ("SIP__REALM", "sip.realm"),
    ("SIP__EXTERNAL_HOST", "sip.external_host"),
    ("MEDIA__ECHO_EXTENSION", "media.echo_extension"),
    ("MEDIA__OPUS_ECHO_EXTENSION", "media.opus_echo_extension"),
    ("MEDIA__SRTP", "media.srtp"),
];

/// Values given as command-line flags: the top layer. Keys are dotted paths (`http.listen`).
#[derive(Debug, Default)]
pub struct Overrides(Vec<(&'static str, figment::value::Value)>);

impl Overrides {
    pub fn set(&mut self, key: &'static str, value: impl Serialize) -> &mut Self {
        if let Ok(v) = figment::value::Value::serialize(value) {
            self.0.push((key, v));
        }
        self
    }
}

impl Config {
    /// Loads the layers. `file` must exist when given.
    pub fn load(file: Option<&Path>, overrides: &Overrides) -> Result<Config, StartupError> {
        Self::figment(file, overrides)?
            .extract()
            .map_err(|e| StartupError::Config(one_line(&e.to_string())))
    }

    fn figment(file: Option<&Path>, overrides: &Overrides) -> Result<Figment, StartupError> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|e| {
                StartupError::Config(format!("cannot read {}: {e}", path.display()))
            })?;
            // Parse here to name the file in the error.
            toml::from_str::<toml::Table>(&text).map_err(|e| {
                StartupError::Config(format!("{}: {}", path.display(), one_line(&e.to_string())))
            })?;
            figment = figment.merge(Toml::string(&text));
        }
        let verbatim = |key: &str| {
            VERBATIM_ENV
                .iter()
                .any(|(k, _)| k.eq_ignore_ascii_case(key))
        };
        figment = figment.merge(
            Env::prefixed("SIPX_")
                .ignore(&["CONFIG"])
                .filter(move |k| !verbatim(k.as_str()))
                .split("__"),
        );
        for (env_key, path) in VERBATIM_ENV {
            if let Ok(value) = std::env::var(format!("SIPX_{env_key}")) {
                figment = figment.merge(Serialized::global(path, value));
            }
        }
        for (key, value) in &overrides.0 {
            figment = figment.merge(Serialized::global(key, value.clone()));
        }
        Ok(figment)
    }

    /// The effective configuration as TOML, secrets redacted.
    pub fn to_redacted_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_else(|e| format!("# cannot render: {e}\n"))
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
#[allow(clippy::result_large_err)] // figment::Jail closures return figment::Error.
mod tests {
    use super::*;

    #[test]
    fn defaults_need_no_file() {
        figment::Jail::expect_with(|_| {
            let c = Config::load(None, &Overrides::default()).unwrap();
            assert_eq!(c, Config::default());
            assert_eq!(c.http.listen.to_string(), "127.0.0.1:8080");
            assert_eq!(c.http.body_limit, 1 << 20);
            assert_eq!(c.webhooks.initial_backoff_ms, 1000);
            assert_eq!(c.webhooks.max_backoff_ms, 60_000);
            assert_eq!(c.webhooks.retry_for_secs, 3600);
            Ok(())
        });
    }

    #[test]
    fn layers_override_in_order() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "sipx.toml",
                r#"
                data_dir = "/var/lib/sipx"
                [http]
                listen = "0.0.0.0:9000"
                body_limit = 2048
                [admin]
                api_key = "from-file"
                "#,
            )?;
            jail.set_env("SIPX_HTTP__LISTEN", "127.0.0.1:9100");
            jail.set_env("SIPX_ADMIN__API_SECRET", "env-secret");
            jail.set_env("SIPX_WEBHOOKS__INITIAL_BACKOFF_MS", "100");
            let mut flags = Overrides::default();
            flags.set("data_dir", "/tmp/flag");
            let c = Config::load(Some(Path::new("sipx.toml")), &flags).unwrap();
            assert_eq!(c.data_dir, PathBuf::from("/tmp/flag"), "flag beats file");
            assert_eq!(
                c.http.listen.to_string(),
                "127.0.0.1:9100",
                "env beats file"
            );
            assert_eq!(c.http.body_limit, 2048, "file beats default");
            assert_eq!(c.webhooks.initial_backoff_ms, 100);
            assert_eq!(c.admin.api_key.as_deref(), Some("from-file"));
            assert_eq!(c.admin.api_secret.as_ref().unwrap().expose(), "env-secret");
            Ok(())
        });
    }

    #[test]
    fn printed_config_redacts_secrets() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("SIPX_ADMIN__API_SECRET", "super-secret-value");
            jail.set_env(
                "SIPX_MASTER_KEY",
                "c2VjcmV0LW1hc3Rlci1rZXktMzItYnl0ZXMtbG9uZyE=",
            );
            let c = Config::load(None, &Overrides::default()).unwrap();
            let text = c.to_redacted_toml();
            assert!(!text.contains("super-secret-value"));
            assert!(!text.contains("c2VjcmV0"));
            assert!(text.contains("<redacted>"));
            assert!(!format!("{c:?}").contains("super-secret-value"));
            Ok(())
        });
    }

    #[test]
    fn numeric_looking_secrets_stay_verbatim() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("SIPX_ADMIN__API_KEY", "0023456789");
            jail.set_env("SIPX_ADMIN__API_SECRET", "1.50");
            let c = Config::load(None, &Overrides::default()).unwrap();
            assert_eq!(c.admin.api_key.as_deref(), Some("0023456789"));
            assert_eq!(c.admin.api_secret.unwrap().expose(), "1.50");
            Ok(())
        });
    }

    #[test]
    fn no_rule_status_is_404_or_480() {
        figment::Jail::expect_with(|jail| {
            let c = Config::load(None, &Overrides::default()).unwrap();
            assert_eq!(c.routing.no_rule_status.code(), 404);
            assert!(c.to_redacted_toml().contains("no_rule_status = 404"));
            jail.set_env("SIPX_ROUTING__NO_RULE_STATUS", "480");
            let c = Config::load(None, &Overrides::default()).unwrap();
            assert_eq!(
                c.routing.no_rule_status,
                NoRuleStatus::TemporarilyUnavailable
            );
            jail.set_env("SIPX_ROUTING__NO_RULE_STATUS", "500");
            let e = Config::load(None, &Overrides::default()).unwrap_err();
            assert!(e.to_string().contains("404 or 480"), "{e}");
            Ok(())
        });
    }

    #[test]
    fn errors_are_one_line() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("bad.toml", "[http]\nlisten = 12\n")?;
            let e = Config::load(Some(Path::new("bad.toml")), &Overrides::default()).unwrap_err();
            assert!(!e.to_string().contains('\n'), "{e}");
            assert!(e.to_string().contains("listen"), "{e}");
            jail.create_file("syntax.toml", "[http\n")?;
            let e =
                Config::load(Some(Path::new("syntax.toml")), &Overrides::default()).unwrap_err();
            assert!(
                !e.to_string().contains('\n') && e.to_string().contains("syntax.toml"),
                "{e}"
            );
            let e =
                Config::load(Some(Path::new("missing.toml")), &Overrides::default()).unwrap_err();
            assert!(e.to_string().contains("cannot read missing.toml"), "{e}");
            jail.set_env("SIPX_HTTP__NOPE", "1");
            let e = Config::load(None, &Overrides::default()).unwrap_err();
            assert!(e.to_string().contains("nope"), "{e}");
            Ok(())
        });
    }
}
