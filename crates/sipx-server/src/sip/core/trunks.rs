//! The core's outbound side of trunks: SIPx registering to its providers over UDP, TCP or TLS.
//!
//! Over UDP a REGISTER leaves from a listening socket. Over TCP/TLS SIPx opens a connection of
//! its own (the provider's registrar answers, and later sends calls, over it); when that
//! connection fails or closes the registration is lost with it and retried after a back-off.

use std::net::SocketAddr;
use std::time::Instant;

use sipx_api::TrunkRegistrationState;
use sipx_sip::msg::Response;
use sipx_sip::outbound::{OutboundRegistration, RegState, RegistrationConfig};
use sipx_sip::{ClientTxnId, FlowId, Peer, Transport};
use sipx_store::TrunkWithSecrets;

use super::provider_hosts::Key;
use super::{Core, CoreInput, unix_now};
use crate::sip::call_service::transport_of;
use crate::sip::transport;

/// SIPx registering to one trunk's provider.
pub(crate) struct TrunkReg {
    reg: OutboundRegistration,
    /// Where the REGISTERs go, or why they cannot be sent.
    target: Result<Target, &'static str>,
}

#[derive(Debug, Clone, PartialEq)]
struct Target {
    transport: Transport,
    addr: SocketAddr,
    /// The provider's host, which its TLS certificate must name.
    host: String,
    link: Link,
}

/// The state of the way to the provider.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Link {
    /// A UDP listening socket: always usable.
    Udp(FlowId),
    /// No connection (yet, or any more): one is opened when a REGISTER is due.
    Down,
    Connecting(FlowId),
    Up(FlowId),
}

impl TrunkReg {
    fn peer(&self) -> Option<Peer> {
        let t = self.target.as_ref().ok()?;
        match t.link {
            Link::Udp(flow) | Link::Up(flow) => Some(Peer {
                transport: t.transport,
                flow,
                addr: t.addr,
            }),
            Link::Down | Link::Connecting(_) => None,
        }
    }

    /// When the core must next act for this trunk (nothing while a connection is being made:
    /// its outcome comes as an input).
    pub(crate) fn due(&self) -> Option<Instant> {
        match &self.target {
            Ok(Target {
                link: Link::Connecting(_),
                ..
            }) => None,
            _ => self.reg.next_at(),
        }
    }

    /// The provider's server as the trunk names it, one of whose addresses `target` is.
    fn server(&self) -> Key {
        let c = self.reg.config();
        let transport = transport_of(&c.transport);
        (c.registrar_host.clone(), c.registrar_port, transport)
    }

    /// Where the REGISTERs go.
    pub(crate) fn addr(&self) -> Option<SocketAddr> {
        self.target.as_ref().ok().map(|t| t.addr)
    }

    /// The open connection to the provider, for calls over TCP/TLS.
    pub(crate) fn stream_flow(&self) -> Option<FlowId> {
        match self.target.as_ref().ok()?.link {
            Link::Up(flow) => Some(flow),
            _ => None,
        }
    }

    fn link_on(&mut self, flow: FlowId) -> Option<&mut Link> {
        let t = self.target.as_mut().ok()?;
        matches!(t.link, Link::Connecting(f) | Link::Up(f) if f == flow).then_some(&mut t.link)
    }
}

/// Whether `host` (a name, or an address in URI form) may stand for SIPx towards `dest`: a
/// name, or an address of `dest`'s family.
fn of_family_or_a_name(host: &str, dest: SocketAddr) -> bool {
    host.trim_matches(['[', ']'])
        .parse::<std::net::IpAddr>()
        .ok()
        .is_none_or(|ip| ip.is_ipv4() == dest.is_ipv4())
}

impl Core {
    /// Reads the trunks and resolves their providers' addresses off the core task
    /// (`provider_hosts`: briefly for a new host, then in the background, loading again when
    /// it resolves).
    pub(super) fn load_trunks(&self) {
        let store = self.store.clone();
        let inputs = self.inputs.clone();
        let hosts = self.provider_hosts.clone();
        // Where each registration goes now: it stays there while that server is fine.
        let in_use: std::collections::HashMap<String, SocketAddr> = self
            .trunk_regs
            .iter()
            .filter_map(|(id, t)| Some((id.clone(), t.addr()?)))
            .collect();
        // Read before the trunks: they hold at least every write up to it.
        let version = store.change_version();
        tokio::spawn(async move {
            let trunks = match store.trunks_for_sip().await {
                Ok(t) => t,
                Err(e) => {
                    tracing::error!(error = %e, "cannot load trunks");
                    return;
                }
            };
            // Only registering trunks send to their host; the others need no address.
            let wanted: Vec<_> = trunks
                .iter()
                .map(|t| {
                    let d = &t.trunk.data;
                    let host = d.host.as_ref().filter(|_| d.register)?;
                    let server = (host.clone(), d.port, transport_of(&d.transport));
                    Some((server, in_use.get(&t.trunk.id).copied()))
                })
                .collect();
            let (addrs, later) = hosts.addresses(&wanted).await;
            let resolved: Vec<_> = trunks.into_iter().zip(addrs).collect();
            // `None` when they cannot be read: the core keeps those it has.
            let accounts = store
                .sip_account_call_settings()
                .await
                .inspect_err(|e| {
                    tracing::error!(error = %e, "cannot load the SIP accounts' SRTP policies, number rules and codecs: keeping those loaded before");
                })
                .ok();
            let registrants = match store.registrants().await {
                Ok(r) => Some(r.into_iter().collect()),
                Err(e) => {
                    tracing::error!(error = %e, "cannot load the SIP account names");
                    None
                }
            };
            let _ = inputs
                .send(CoreInput::TrunksLoaded {
                    trunks: resolved,
                    accounts,
                    registrants,
                    version,
                })
                .await;
            if !later.is_empty() && hosts.refresh(later).await {
                let _ = inputs.send(CoreInput::ProviderHostsResolved).await;
            }
        });
    }

    /// A Via for a new request of ours to `peer` (a fresh branch; `rport` for NAT).
    pub(super) fn new_via(&mut self, peer: &Peer) -> String {
        let branch = self.endpoint.new_branch();
        let host = self
            .local_host_for(peer.addr, peer.transport)
            .unwrap_or_else(|| "invalid".to_owned());
        format!(
            "SIP/2.0/{} {host};branch={branch};rport",
            peer.transport.via_name()
        )
    }

    /// The listener of `transport` and of `dest`'s family (a dual-stack SIPx has both).
    pub(super) fn listener_for(
        &self,
        dest: SocketAddr,
        transport: Transport,
    ) -> Option<SocketAddr> {
        self.settings
            .listeners
            .iter()
            .find(|(t, a)| *t == transport && a.is_ipv4() == dest.is_ipv4())
            .map(|(_, a)| *a)
    }

    /// The `host:port` to put in Via/Contact for requests to `dest`: the external host when
    /// set, else the local address that routes to `dest`; the port of a listener of the same
    /// transport, so the provider can reach SIPx there too.
    pub(super) fn local_host_for(&self, dest: SocketAddr, transport: Transport) -> Option<String> {
        let listeners = &self.settings.listeners;
        let local = self
            .listener_for(dest, transport)
            .or_else(|| {
                listeners
                    .iter()
                    .find(|(t, _)| *t == transport)
                    .map(|(_, a)| *a)
            })
            .or_else(|| listeners.first().map(|(_, a)| *a))?;
        // An external address of the other family than `dest`'s is not how it reaches us (a
        // dual-stack SIPx behind an IPv4 NAT still has its IPv6 address): a name always is.
        if let Some(host) = &self.settings.external_host
            && of_family_or_a_name(host, dest)
        {
            return Some(format!("{host}:{}", local.port()));
        }
        let ip = if local.ip().is_unspecified() {
            // Ask the routing table which address reaches `dest`.
            let probe = std::net::UdpSocket::bind((local.ip(), 0)).ok()?;
            probe.connect(dest).ok()?;
            probe.local_addr().ok()?.ip()
        } else {
            local.ip()
        };
        Some(SocketAddr::new(ip, local.port()).to_string())
    }

    fn target_for(
        &self,
        transport: Transport,
        host: &str,
        addr: Option<SocketAddr>,
    ) -> Result<(Target, String), &'static str> {
        let addr = addr.ok_or("the provider host does not resolve")?;
        let link = match transport {
            Transport::Udp => Link::Udp(
                self.udp_flow_for(addr)
                    .ok_or("no UDP listener to send from")?,
            ),
            Transport::Tls if self.tls_client.is_none() => {
                return Err("no TLS client configuration");
            }
            _ => Link::Down,
        };
        let local = self
            .local_host_for(addr, transport)
            .ok_or("no local address reaches the provider")?;
        let host = host.trim_matches(['[', ']']).to_owned();
        Ok((
            Target {
                transport,
                addr,
                host,
                link,
            },
            local,
        ))
    }

    pub(super) fn apply_trunks(
        &mut self,
        now: Instant,
        trunks: Vec<(TrunkWithSecrets, Option<SocketAddr>)>,
        accounts: Option<Vec<sipx_store::AccountCallSettings>>,
    ) {
        let previous = std::mem::take(&mut self.origins);
        self.origins = super::Origins::new(trunks.iter().map(|(t, _)| t), accounts, previous);
        tracing::info!(
            trunks = trunks.len(),
            inbound_networks = self.origins.network_count(),
            inbound_users = self.origins.user_count(),
            "trunks loaded"
        );
        // Connections of trunks deleted, or registering now (they have their own), close.
        let unregistered: std::collections::HashSet<String> = trunks
            .iter()
            .filter(|(t, _)| !t.trunk.data.register)
            .map(|(t, _)| t.trunk.id.clone())
            .collect();
        self.keep_trunk_links(now, &unregistered);
        let mut keep = std::collections::HashMap::new();
        for (t, addr) in trunks {
            let d = &t.trunk.data;
            let (Some(host), Some(user), Some(password), true) =
                (&d.host, &d.username, &t.password, d.register)
            else {
                continue;
            };
            let id = t.trunk.id.clone();
            let transport = transport_of(&d.transport);
            let (target, local_host) = match self.target_for(transport, host, addr) {
                Ok((target, local)) => (Ok(target), local),
                Err(reason) => (Err(reason), String::new()),
            };
            let cfg = RegistrationConfig {
                registrar_host: host.clone(),
                registrar_port: d.port,
                transport: d.transport.clone(),
                user: user.clone(),
                auth_user: d.auth_username.clone().unwrap_or_else(|| user.clone()),
                password: password.expose().clone(),
                expires: d.register_expires,
                local_host,
                via_transport: transport.via_name(),
            };
            // An unchanged trunk keeps its registration (its Call-ID: refreshes must reuse it)
            // and its connection.
            let old = self.trunk_regs.remove(&id);
            let had_one = old.is_some();
            let existing = old.filter(|r| {
                let same_target = match (&r.target, &target) {
                    (Ok(a), Ok(b)) => {
                        (a.transport, a.addr, &a.host) == (b.transport, b.addr, &b.host)
                    }
                    (Err(a), Err(b)) => a == b,
                    _ => false,
                };
                same_target && same_registration(r.reg.config(), &cfg)
            });
            if had_one && existing.is_none() {
                self.retire_registration(&id);
            }
            let entry = match existing {
                Some(e) => e,
                None => {
                    let call_id = self.endpoint.new_call_id();
                    let tag = self.endpoint.new_tag();
                    let mut reg = OutboundRegistration::new(cfg, call_id, tag, now);
                    if let Err(reason) = target {
                        tracing::warn!(trunk_id = %id, reason, "trunk cannot register");
                        reg.on_transport_error(now, reason);
                    }
                    TrunkReg { reg, target }
                }
            };
            keep.insert(id, entry);
        }
        let gone = std::mem::replace(&mut self.trunk_regs, keep);
        for (id, t) in gone {
            self.runtime.set_trunk_registration(&id, None);
            // Closing the writer ends the connection of a removed trunk.
            if let Ok(Target {
                link: Link::Up(flow),
                ..
            }) = t.target
            {
                self.close_stream(flow);
            }
        }
        let ids: Vec<String> = self.trunk_regs.keys().cloned().collect();
        for id in ids {
            self.publish(&id);
        }
    }

    /// A registration replaced by another (the trunk changed, or moved to another server):
    /// answers to its REGISTERs must not reach the new one. Its connection is left open: calls
    /// placed over it may still need it, and the provider closes it when it is idle.
    fn retire_registration(&mut self, id: &str) {
        self.reg_txns.retain(|_, trunk| trunk != id);
    }

    /// Sends the REGISTERs that are due, opening connections first where needed.
    pub(super) fn poll_registrations(&mut self, now: Instant) {
        let ids: Vec<String> = self.trunk_regs.keys().cloned().collect();
        let mut reload = false;
        for id in ids {
            let branch = self.endpoint.new_branch();
            let Some(t) = self.trunk_regs.get_mut(&id) else {
                continue;
            };
            if t.due().is_none_or(|at| at > now) {
                continue;
            }
            let target = match &mut t.target {
                Ok(target) => target,
                Err(reason) => {
                    // Perhaps the provider's name resolves now: read the trunks again.
                    t.reg.on_transport_error(now, reason);
                    reload = true;
                    self.publish(&id);
                    continue;
                }
            };
            if target.link == Link::Down {
                let tls = transport::provider_tls(
                    self.tls_client.as_ref(),
                    target.transport,
                    &target.host,
                );
                let tls = match tls {
                    Ok(tls) => tls,
                    Err(reason) => {
                        t.reg.on_transport_error(now, reason);
                        self.publish(&id);
                        continue;
                    }
                };
                tracing::debug!(trunk_id = %id, addr = %target.addr, transport = %target.transport, "connecting to provider");
                let addr = target.addr;
                let flow = self.connect_own(addr, tls);
                if let Some(Ok(target)) = self.trunk_regs.get_mut(&id).map(|t| &mut t.target) {
                    target.link = Link::Connecting(flow);
                }
                continue;
            }
            let Some(peer) = t.peer() else { continue };
            if let Some(req) = t.reg.poll(now, &branch) {
                let txn = self.endpoint.send_request(now, peer, req);
                self.reg_txns.insert(txn, id.clone());
                self.publish(&id);
            }
        }
        if reload {
            self.load_trunks();
        }
    }

    /// A connection is up: if it is a trunk's, its REGISTER goes now.
    pub(super) fn on_trunk_flow_opened(&mut self, now: Instant, flow: FlowId) {
        let mut opened = false;
        for t in self.trunk_regs.values_mut() {
            if let Some(link) = t.link_on(flow) {
                *link = Link::Up(flow);
                opened = true;
            }
        }
        if opened {
            self.poll_registrations(now);
        }
    }

    /// A trunk's connection failed to open, or closed: its registration is lost.
    pub(super) fn on_trunk_flow_failed(&mut self, now: Instant, flow: FlowId, reason: &str) {
        let Some(id) = self
            .trunk_regs
            .iter()
            .find(|(_, t)| {
                matches!(&t.target, Ok(Target { link: Link::Connecting(f) | Link::Up(f), .. }) if *f == flow)
            })
            .map(|(id, _)| id.clone())
        else {
            return;
        };
        // Answers to REGISTERs sent on the lost connection will never come.
        self.reg_txns.retain(|_, trunk| *trunk != id);
        let mut unreachable = false;
        if let Some(t) = self.trunk_regs.get_mut(&id) {
            if let Some(link) = t.link_on(flow) {
                // One that never opened says the server is down; one that closed is opened
                // again to the same server (providers close idle connections).
                unreachable = matches!(link, Link::Connecting(_));
                *link = Link::Down;
            }
            t.reg.on_transport_error(now, reason);
        }
        tracing::warn!(trunk_id = %id, reason, "trunk connection lost");
        self.publish(&id);
        if unreachable {
            self.try_next_server(&id);
        }
    }

    /// The provider's server in use failed (no answer, no connection, 503): if the trunk's
    /// host has another address that has not failed, the trunks load again and the
    /// registration moves there (RFC 3263 §4.3). It stays there while that server works.
    fn try_next_server(&mut self, id: &str) {
        let Some((server, failed)) = self
            .trunk_regs
            .get(id)
            .and_then(|t| Some((t.server(), t.addr()?)))
        else {
            return;
        };
        if self.provider_hosts.set_aside(&server, failed) {
            tracing::info!(trunk_id = %id, %failed, "provider server failed: registering at its next address");
            self.load_trunks();
        }
    }

    pub(super) fn on_registration_response(
        &mut self,
        now: Instant,
        txn: ClientTxnId,
        response: &Response,
    ) {
        let Some(id) = self.reg_txns.get(&txn).cloned() else {
            return;
        };
        if response.status >= 200 {
            self.reg_txns.remove(&txn);
        }
        let branch = self.endpoint.new_branch();
        let cnonce = self.endpoint.new_tag();
        let Some(t) = self.trunk_regs.get_mut(&id) else {
            return;
        };
        let next = t.reg.on_response(now, response, &branch, &cnonce);
        let peer = t.peer();
        let server_down = response.status == 503 && next.is_none();
        if response.status >= 300 && next.is_none() {
            tracing::warn!(trunk_id = %id, status = response.status, reason = %response.reason, "trunk registration failed");
        } else if (200..300).contains(&response.status) {
            tracing::info!(trunk_id = %id, "trunk registered");
        }
        if let (Some(req), Some(peer)) = (next, peer) {
            let txn = self.endpoint.send_request(now, peer, req);
            self.reg_txns.insert(txn, id.clone());
        }
        self.publish(&id);
        if server_down {
            self.try_next_server(&id);
        }
    }

    /// No answer to a trunk's REGISTER.
    pub(super) fn on_registration_timeout(&mut self, now: Instant, txn: ClientTxnId) {
        if let Some(id) = self.reg_txns.remove(&txn)
            && let Some(t) = self.trunk_regs.get_mut(&id)
        {
            t.reg.on_timeout(now);
            tracing::warn!(trunk_id = %id, "trunk registration timed out");
            self.publish(&id);
            self.try_next_server(&id);
        }
    }

    /// Shows a trunk's registration state to the API.
    pub(super) fn publish(&self, id: &str) {
        let Some(t) = self.trunk_regs.get(id) else {
            return;
        };
        let s = t.reg.status();
        let state = match s.state {
            RegState::Idle => "idle",
            RegState::Registering => "registering",
            RegState::Registered => "registered",
            RegState::Failed => "failed",
        };
        self.runtime.set_trunk_registration(
            id,
            Some(TrunkRegistrationState {
                state,
                last_status: s.last_status,
                last_reason: s.last_reason,
                expires_at: s.granted_expires.map(|g| unix_now() + u64::from(g)),
            }),
        );
    }
}

/// Whether two configurations register the same identity the same way.
fn same_registration(a: &RegistrationConfig, b: &RegistrationConfig) -> bool {
    (
        &a.registrar_host,
        a.registrar_port,
        &a.transport,
        &a.user,
        &a.auth_user,
        &a.password,
        a.expires,
        &a.local_host,
    ) == (
        &b.registrar_host,
        b.registrar_port,
        &b.transport,
        &b.user,
        &b.auth_user,
        &b.password,
        b.expires,
        &b.local_host,
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::of_family_or_a_name;

    #[test]
    fn an_external_address_stands_for_sipx_only_towards_its_family() {
        let v4 = "192.0.2.1:5060".parse().unwrap();
        let v6 = "[2001:db8::1]:5060".parse().unwrap();
        assert!(of_family_or_a_name("198.51.100.5", v4));
        assert!(!of_family_or_a_name("198.51.100.5", v6));
        assert!(of_family_or_a_name("[2001:db8::5]", v6));
        assert!(!of_family_or_a_name("[2001:db8::5]", v4));
        assert!(of_family_or_a_name("sip.example.com", v4));
        assert!(of_family_or_a_name("sip.example.com", v6));
    }
}
