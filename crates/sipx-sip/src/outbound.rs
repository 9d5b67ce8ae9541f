//! Registering *to* a provider (RFC 3261 §10.2), as a state machine fed with time and
//! responses. The driver sends the requests it builds and reports what came back.

use std::time::{Duration, Instant};

use crate::digest::{answer_challenge, best_challenge};
use crate::msg::{Headers, Method, Request, Response, SipUri, Uri, lex::parse_u32};

/// What the registration needs to know.
#[derive(Debug, Clone)]
pub struct RegistrationConfig {
    /// The provider's host (as written in the Request-URI and To).
    pub registrar_host: String,
    pub registrar_port: Option<u16>,
    /// `udp`, `tcp` or `tls`: goes into the Request-URI's `transport` parameter unless UDP.
    pub transport: String,
    /// The user part of the address-of-record.
    pub user: String,
    pub auth_user: String,
    pub password: String,
    pub expires: u32,
    /// `host:port` to put in Via and Contact.
    pub local_host: String,
    pub via_transport: &'static str,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegState {
    /// Nothing sent yet, or waiting to retry.
    Idle,
    /// A REGISTER is in flight.
    Registering,
    /// Registered until `expires_at`.
    Registered,
    /// The last attempt failed; retrying at `next_at`.
    Failed,
}

/// A report of where the registration stands, for the API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegStatus {
    pub state: RegState,
    pub last_status: Option<u16>,
    pub last_reason: Option<String>,
    /// Seconds the provider granted, on success.
    pub granted_expires: Option<u32>,
}

pub struct OutboundRegistration {
    cfg: RegistrationConfig,
    state: RegState,
    call_id: String,
    from_tag: String,
    cseq: u32,
    nc: u32,
    /// Challenges answered in a row without success: a wrong password stops at one retry.
    auth_attempts: u32,
    next_at: Option<Instant>,
    failures: u32,
    status: RegStatus,
}

/// A SIP URI as text without its parameters (`;transport=tcp`…), for comparing contacts.
fn without_params(uri: &Uri) -> Option<String> {
    match uri {
        Uri::Sip(u) => Some(
            Uri::Sip(SipUri {
                params: Vec::new(),
                headers: Vec::new(),
                ..u.clone()
            })
            .to_string(),
        ),
        _ => None,
    }
}

/// Retry delays after failures: 5 s, 10 s, 20 s … up to 5 minutes.
fn backoff(failures: u32) -> Duration {
    Duration::from_secs((5u64 << failures.min(6)).min(300))
}

impl OutboundRegistration {
    pub fn new(cfg: RegistrationConfig, call_id: String, from_tag: String, now: Instant) -> Self {
        OutboundRegistration {
            cfg,
            state: RegState::Idle,
            call_id,
            from_tag,
            cseq: 0,
            nc: 0,
            auth_attempts: 0,
            next_at: Some(now),
            failures: 0,
            status: RegStatus {
                state: RegState::Idle,
                last_status: None,
                last_reason: None,
                granted_expires: None,
            },
        }
    }

    pub fn config(&self) -> &RegistrationConfig {
        &self.cfg
    }

    pub fn status(&self) -> RegStatus {
        RegStatus {
            state: self.state,
            ..self.status.clone()
        }
    }

    /// When the driver should call [`OutboundRegistration::poll`] next.
    pub fn next_at(&self) -> Option<Instant> {
        self.next_at
    }

    /// The Request-URI: also the digest `uri`, which strict SBCs compare with it exactly.
    fn request_uri(&self) -> Uri {
        let mut params = Vec::new();
        if self.cfg.transport != "udp" {
            params.push(("transport".to_owned(), Some(self.cfg.transport.clone())));
        }
        Uri::Sip(SipUri {
            secure: false,
            user: None,
            password: None,
            host: self.cfg.registrar_host.clone(),
            port: self.cfg.registrar_port,
            params,
            headers: Vec::new(),
        })
    }

    fn build(
        &mut self,
        branch: &str,
        expires: u32,
        authorization: Option<(bool, String)>,
    ) -> Request {
        self.cseq += 1;
        let aor = format!("sip:{}@{}", self.cfg.user, self.cfg.registrar_host);
        let mut h = Headers::new();
        h.push(
            "Via",
            format!(
                "SIP/2.0/{} {};branch={branch};rport",
                self.cfg.via_transport, self.cfg.local_host
            ),
        );
        h.push("Max-Forwards", "70");
        h.push("From", format!("<{aor}>;tag={}", self.from_tag));
        h.push("To", format!("<{aor}>"));
        h.push("Call-ID", self.call_id.clone());
        h.push("CSeq", format!("{} REGISTER", self.cseq));
        // Over TCP/TLS the registrar must call back with the same transport.
        let contact_transport = match self.cfg.transport.as_str() {
            "udp" => String::new(),
            t => format!(";transport={t}"),
        };
        h.push(
            "Contact",
            format!(
                "<sip:{}@{}{contact_transport}>",
                self.cfg.user, self.cfg.local_host
            ),
        );
        h.push("Expires", expires.to_string());
        if let Some((proxy, value)) = authorization {
            h.push(
                if proxy {
                    "Proxy-Authorization"
                } else {
                    "Authorization"
                },
                value,
            );
        }
        h.push("User-Agent", concat!("SIPx/", env!("CARGO_PKG_VERSION")));
        Request {
            method: Method::Register,
            uri: self.request_uri(),
            headers: h,
            body: Vec::new(),
        }
    }

    /// A REGISTER to send now, if one is due. `branch` comes from the endpoint.
    pub fn poll(&mut self, now: Instant, branch: &str) -> Option<Request> {
        if self.state == RegState::Registering || self.next_at.is_none_or(|t| t > now) {
            return None;
        }
        self.state = RegState::Registering;
        self.next_at = None;
        self.auth_attempts = 0;
        let expires = self.cfg.expires;
        Some(self.build(branch, expires, None))
    }

    /// A response to our REGISTER. Returns the next REGISTER (with credentials) when challenged.
    pub fn on_response(
        &mut self,
        now: Instant,
        response: &Response,
        branch: &str,
        cnonce: &str,
    ) -> Option<Request> {
        self.status.last_status = Some(response.status);
        self.status.last_reason = Some(response.reason.clone());
        match response.status {
            100..=199 => None,
            200..=299 => {
                // The granted time: our Contact's expires, else Expires, else what we asked.
                let ours = format!("sip:{}@{}", self.cfg.user, self.cfg.local_host);
                let granted = response
                    .headers
                    .list("Contact")
                    .iter()
                    .filter_map(|c| crate::msg::NameAddr::parse(c))
                    .find(|c| without_params(&c.uri).is_some_and(|u| u == ours))
                    .and_then(|c| c.param("expires").flatten().and_then(parse_u32))
                    .or_else(|| response.headers.get("Expires").and_then(parse_u32))
                    .unwrap_or(self.cfg.expires)
                    .max(1);
                self.status.granted_expires = Some(granted);
                self.state = RegState::Registered;
                self.failures = 0;
                self.auth_attempts = 0;
                // Refresh at half the time for short registrations, else a minute early.
                let refresh = if granted <= 120 {
                    granted / 2
                } else {
                    granted - 60
                };
                self.next_at = Some(now + Duration::from_secs(u64::from(refresh.max(1))));
                None
            }
            401 | 407 if self.auth_attempts == 0 => {
                let proxy = response.status == 407;
                let header = if proxy {
                    "Proxy-Authenticate"
                } else {
                    "WWW-Authenticate"
                };
                let Some(challenge) = best_challenge(response.headers.get_all(header)) else {
                    self.fail(now);
                    return None;
                };
                self.auth_attempts += 1;
                self.nc += 1;
                let uri = self.request_uri().to_string();
                let Some(value) = answer_challenge(
                    &challenge,
                    "REGISTER",
                    &uri,
                    &self.cfg.auth_user,
                    &self.cfg.password,
                    cnonce,
                    self.nc,
                ) else {
                    self.fail(now);
                    return None;
                };
                let expires = self.cfg.expires;
                Some(self.build(branch, expires, Some((proxy, value))))
            }
            423 => {
                // Interval too brief: take the registrar's minimum and retry at once.
                if let Some(min) = response.headers.get("Min-Expires").and_then(parse_u32) {
                    self.cfg.expires = min;
                }
                self.state = RegState::Idle;
                self.next_at = Some(now);
                None
            }
            _ => {
                self.fail(now);
                None
            }
        }
    }

    /// No answer (Timer F).
    pub fn on_timeout(&mut self, now: Instant) {
        self.status.last_status = Some(408);
        self.status.last_reason = Some("Request Timeout".to_owned());
        self.fail(now);
    }

    /// The connection to the registrar failed or closed (TCP/TLS): the registration is lost
    /// with it, and is retried after the usual back-off.
    pub fn on_transport_error(&mut self, now: Instant, reason: &str) {
        self.status.last_status = None;
        self.status.last_reason = Some(reason.to_owned());
        self.fail(now);
    }

    fn fail(&mut self, now: Instant) {
        self.state = RegState::Failed;
        self.next_at = Some(now + backoff(self.failures));
        self.failures = self.failures.saturating_add(1);
        self.status.granted_expires = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::DigestServer;
    use crate::msg::HasHeaders;

    fn reg(now: Instant) -> OutboundRegistration {
        OutboundRegistration::new(
            RegistrationConfig {
                registrar_host: "127.0.0.25".into(),
                registrar_port: Some(5060),
                transport: "udp".into(),
                user: "alice".into(),
                auth_user: "alice".into(),
                password: "alicepw".into(),
                expires: 60,
                local_host: "127.0.0.1:5060".into(),
                via_transport: "UDP",
            },
            "call-1".into(),
            "tag1".into(),
            now,
        )
    }

    #[test]
    fn challenge_success_refresh_and_backoff() {
        let t0 = Instant::now();
        let mut r = reg(t0);
        let first = r.poll(t0, "z9hG4bK1").unwrap();
        assert_eq!(first.uri.to_string(), "sip:127.0.0.25:5060");
        assert!(
            r.poll(t0, "z9hG4bK2").is_none(),
            "one REGISTER in flight at a time"
        );

        let mut server = DigestServer::new("sipx.test", [1; 32], 300);
        let mut challenge = first.response(401, Some("r"));
        for c in server.challenges(100, false) {
            challenge.headers.push("WWW-Authenticate", c);
        }
        let second = r.on_response(t0, &challenge, "z9hG4bK3", "cn").unwrap();
        assert_eq!(second.cseq().unwrap().seq, 2);
        let creds =
            crate::digest::DigestParams::parse(second.headers.get("Authorization").unwrap())
                .unwrap();
        assert_eq!(
            creds.get("uri"),
            Some("sip:127.0.0.25:5060"),
            "digest uri = Request-URI"
        );
        assert!(server.verify(&creds, "REGISTER", "alicepw", 100).is_ok());

        // A second 401 in a row means the password is wrong: give up, back off.
        assert!(r.on_response(t0, &challenge, "z9hG4bK4", "cn").is_none());
        assert_eq!(r.status().state, RegState::Failed);
        assert_eq!(r.next_at(), Some(t0 + Duration::from_secs(5)));

        let again = r.poll(t0 + Duration::from_secs(5), "z9hG4bK5").unwrap();
        let ok = again
            .response(200, Some("r"))
            .with_header("Contact", "<sip:alice@127.0.0.1:5060>;expires=40");
        assert!(r.on_response(t0, &ok, "z9hG4bK6", "cn").is_none());
        let s = r.status();
        assert_eq!(
            (s.state, s.granted_expires),
            (RegState::Registered, Some(40))
        );
        assert_eq!(
            r.next_at(),
            Some(t0 + Duration::from_secs(20)),
            "refresh at half of a short interval"
        );
    }

    #[test]
    fn over_tcp_contact_names_the_transport_and_the_granted_time_is_found_with_its_params() {
        let t0 = Instant::now();
        let mut r = reg(t0);
        r.cfg.transport = "tcp".into();
        r.cfg.via_transport = "TCP";
        let req = r.poll(t0, "z9hG4bK1").unwrap();
        assert_eq!(req.uri.to_string(), "sip:127.0.0.25:5060;transport=tcp");
        assert_eq!(
            req.headers.get("Contact"),
            Some("<sip:alice@127.0.0.1:5060;transport=tcp>")
        );
        assert!(req.headers.get("Via").unwrap().starts_with("SIP/2.0/TCP "));
        // Registrars echo the contact with its parameters; other contacts are not ours.
        let ok = req
            .response(200, Some("r"))
            .with_header("Contact", "<sip:alice@10.0.0.9:5060>;expires=99")
            .with_header(
                "Contact",
                "<sip:alice@127.0.0.1:5060;transport=tcp>;expires=10",
            );
        assert!(r.on_response(t0, &ok, "z9hG4bK2", "cn").is_none());
        assert_eq!(r.status().granted_expires, Some(10));
        assert_eq!(r.next_at(), Some(t0 + Duration::from_secs(5)));
    }

    #[test]
    fn a_lost_connection_fails_the_registration_and_backs_off() {
        let t0 = Instant::now();
        let mut r = reg(t0);
        r.poll(t0, "z9hG4bK1").unwrap();
        r.on_transport_error(t0, "connection closed");
        let s = r.status();
        assert_eq!(s.state, RegState::Failed);
        assert_eq!(
            (s.last_status, s.last_reason.as_deref()),
            (None, Some("connection closed"))
        );
        assert_eq!(r.next_at(), Some(t0 + Duration::from_secs(5)));
        assert!(r.poll(t0 + Duration::from_secs(5), "z9hG4bK2").is_some());
    }
}
