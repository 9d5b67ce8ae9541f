//! Which trunk or SIP account a new call came through, and the media policy that follows from
//! it. The layers, first set wins: the call's own (API dial-out, coming) > its trunk's or
//! account's > the server's (`media.srtp`).

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};

use ipnet::IpNet;
use sipx_call::NumberRules;
use sipx_call::routing::NumberMatch;
use sipx_sdp::{LocalCodec, SrtpPolicy};
use sipx_secrets::Redacted;
use sipx_store::TrunkWithSecrets;

use super::sources::BindingSources;
use sipx_api::stored_number_rules;

/// Where a call came from, as far as its policies go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Origin {
    Trunk(String),
    Account(String),
    /// A source known otherwise (a trusted proxy) or not at all: the server's policies.
    Unknown,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Trunk(id) => write!(f, "trunk:{id}"),
            Origin::Account(user) => write!(f, "account:{user}"),
            Origin::Unknown => f.write_str("unknown"),
        }
    }
}

/// The stored spelling of a policy, mapped to the SDP engine's.
pub(crate) fn sdp_policy(p: sipx_store::SrtpPolicy) -> SrtpPolicy {
    match p {
        sipx_store::SrtpPolicy::Disabled => SrtpPolicy::Disabled,
        sipx_store::SrtpPolicy::Allowed => SrtpPolicy::Allowed,
        sipx_store::SrtpPolicy::Required => SrtpPolicy::Required,
    }
}

pub(crate) fn policy_name(p: SrtpPolicy) -> &'static str {
    match p {
        SrtpPolicy::Disabled => "disabled",
        SrtpPolicy::Allowed => "allowed",
        SrtpPolicy::Required => "required",
    }
}

/// A call's SRTP policy: its own when set (dial-out through the API), else its origin's, else
/// the server's.
pub(crate) fn srtp_policy(
    call: Option<SrtpPolicy>,
    origin: Option<SrtpPolicy>,
    server: SrtpPolicy,
) -> SrtpPolicy {
    call.or(origin).unwrap_or(server)
}

/// A trunk's or account's codec names as codecs of this build; a name it lacks (G729 without
/// the `g729` feature) is left out, and a list left empty is none (the server's).
fn local_codecs(names: &[String], owner: &str) -> Option<Vec<LocalCodec>> {
    let codecs: Vec<LocalCodec> = names
        .iter()
        .filter_map(|name| match crate::media::codec_named(name) {
            Ok(codec) => Some(LocalCodec::new(codec)),
            Err(error) => {
                tracing::warn!(owner, %error, "a codec of its list is left out");
                None
            }
        })
        .collect();
    if codecs.is_empty() {
        tracing::warn!(
            owner,
            "none of its codecs is in this build: the server's media.codecs apply"
        );
        return None;
    }
    Some(codecs)
}

/// What a trunk or account sets for its own calls, over the server's settings.
#[derive(Debug, Default)]
struct OwnSettings {
    srtp: Option<SrtpPolicy>,
    /// Into the application's form, for the numbers of calls in.
    number_rules: NumberRules,
    codecs: Option<Vec<LocalCodec>>,
}

impl OwnSettings {
    fn new(
        srtp: Option<sipx_store::SrtpPolicy>,
        number_rules: &str,
        codecs: Option<&[String]>,
        owner: &str,
    ) -> OwnSettings {
        OwnSettings {
            srtp: srtp.map(sdp_policy),
            number_rules: stored_number_rules(number_rules),
            codecs: codecs.and_then(|c| local_codecs(c, owner)),
        }
    }
}

/// What the core knows to tell a call's origin: the trunks' inbound networks and digest users,
/// and what trunks and accounts set for their own calls.
#[derive(Debug, Default)]
pub(crate) struct Origins {
    /// Inbound networks with the index of their trunk, most specific first.
    nets: Vec<(IpNet, usize)>,
    /// Inbound digest users: password and trunk index.
    users: HashMap<String, (Redacted<String>, usize)>,
    /// Trunk ids, by index.
    trunks: Vec<String>,
    /// Trunks' own settings, by trunk id.
    trunk_settings: HashMap<String, OwnSettings>,
    /// Accounts' own settings, by username (only accounts that set any).
    account_settings: HashMap<String, OwnSettings>,
    /// The application of each trunk, by trunk id.
    trunk_apps: HashMap<String, String>,
    /// The numbers a trunk may reach (its DIDs), matched as routing rules match an exact
    /// number, by trunk id; a trunk without any may reach every number.
    trunk_numbers: HashMap<String, Vec<NumberMatch>>,
}

/// What a call through a trunk may reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reach<'a> {
    /// The trunk lists no numbers: whatever it was sent to.
    Any,
    /// This number, one of the trunk's: the call is routed by it, whatever else it names.
    Listed(&'a str),
    /// None of the trunk's numbers.
    NotListed,
}

impl Origins {
    /// `accounts`: `None` keeps the accounts' settings of `previous` (they could not be read).
    pub fn new<'a>(
        trunks: impl IntoIterator<Item = &'a TrunkWithSecrets>,
        accounts: Option<Vec<sipx_store::AccountCallSettings>>,
        mut previous: Origins,
    ) -> Self {
        let account_settings = match accounts {
            Some(accounts) => accounts
                .into_iter()
                .map(|a| {
                    let own =
                        OwnSettings::new(a.srtp, &a.number_rules, a.codecs.as_deref(), &a.username);
                    (a.username, own)
                })
                .collect(),
            None => std::mem::take(&mut previous.account_settings),
        };
        let mut o = Origins {
            account_settings,
            ..Origins::default()
        };
        for (i, t) in trunks.into_iter().enumerate() {
            let d = &t.trunk.data;
            o.trunks.push(t.trunk.id.clone());
            let own = OwnSettings::new(
                d.srtp,
                &d.inbound_number_rules,
                d.codecs.as_deref(),
                &t.trunk.id,
            );
            o.trunk_settings.insert(t.trunk.id.clone(), own);
            o.trunk_apps
                .insert(t.trunk.id.clone(), t.trunk.app_id.clone());
            o.nets.extend(
                d.inbound_cidrs
                    .iter()
                    // The API stores networks; a bare address is a host network all the same.
                    .filter_map(|c| {
                        c.parse::<IpNet>()
                            .ok()
                            .or_else(|| c.parse::<IpAddr>().ok().map(IpNet::from))
                    })
                    .inspect(|n| {
                        // Stored before the API bounded networks (`sipx-api` trunks.rs): say so,
                        // it takes other applications' calls.
                        if sipx_api::too_wide_to_claim(n) {
                            tracing::warn!(trunk = %t.trunk.id, network = %n,
                                "a trunk's inbound network is wider than an IPv4 /16 or IPv6 /32: it takes every other application's calls from there; narrow it");
                        }
                    })
                    .map(|n| (n, i)),
            );
            if let (Some(user), Some(password)) = (&d.inbound_username, &t.inbound_password) {
                o.users.insert(user.clone(), (password.clone(), i));
            }
            if !d.inbound_numbers.is_empty() {
                o.trunk_numbers.insert(
                    t.trunk.id.clone(),
                    d.inbound_numbers
                        .iter()
                        .map(|n| NumberMatch::Exact(n.clone()))
                        .collect(),
                );
            }
        }
        // Longest prefix first; a stable sort keeps the store's order (by id) among equals.
        o.nets
            .sort_by_key(|(n, _)| std::cmp::Reverse(n.prefix_len()));
        o
    }

    /// Which of `dialled` (the numbers a call was sent to, in order: its Request-URI's, its
    /// To's) a call through trunk `trunk_id` reaches.
    pub fn reached<'a>(&self, trunk_id: &str, dialled: &[&'a str]) -> Reach<'a> {
        let Some(numbers) = self.trunk_numbers.get(trunk_id) else {
            return Reach::Any;
        };
        dialled
            .iter()
            .find(|d| numbers.iter().any(|n| n.matches(d)))
            .map_or(Reach::NotListed, |d| Reach::Listed(d))
    }

    /// What `origin` sets for its own calls, if anything.
    fn own(&self, origin: &Origin) -> Option<&OwnSettings> {
        match origin {
            Origin::Trunk(id) => self.trunk_settings.get(id),
            Origin::Account(user) => self.account_settings.get(user),
            Origin::Unknown => None,
        }
    }

    /// A number of a call in through `origin` (called or calling) in the application's form:
    /// rewritten by its trunk's inbound number rules, or its account's.
    pub fn inbound_number<'a>(&self, origin: &Origin, number: &'a str) -> Cow<'a, str> {
        self.own(origin)
            .map_or(Cow::Borrowed(number), |o| o.number_rules.apply(number))
    }

    /// The codecs of calls through `origin`, when it has its own (else the server's).
    pub fn codecs(&self, origin: &Origin) -> Option<&[LocalCodec]> {
        self.own(origin)?.codecs.as_deref()
    }

    /// The application a trunk belongs to.
    pub fn trunk_app(&self, trunk_id: &str) -> Option<&str> {
        self.trunk_apps.get(trunk_id).map(String::as_str)
    }

    pub fn network_count(&self) -> usize {
        self.nets.len()
    }

    pub fn user_count(&self) -> usize {
        self.users.len()
    }

    /// The trunk whose inbound networks hold `ip` (the most specific network wins).
    pub fn trunk_by_network(&self, ip: IpAddr) -> Option<usize> {
        self.nets
            .iter()
            .find(|(n, _)| n.contains(&ip))
            .map(|&(_, i)| i)
    }

    /// The password and trunk of an inbound digest user.
    pub fn trunk_user(&self, username: &str) -> Option<(&Redacted<String>, usize)> {
        self.users.get(username).map(|(p, i)| (p, *i))
    }

    /// Where a new call from `source` came from: the trunk whose inbound user it authenticated
    /// as (`trunk_by_digest`), else the account registered from that very address, else the
    /// trunk whose inbound network holds it, else the only account registered from its IP.
    pub fn origin(
        &self,
        source: SocketAddr,
        trunk_by_digest: Option<usize>,
        registered: &BindingSources,
    ) -> Origin {
        let trunk = |i: usize| self.trunks.get(i).map(|id| Origin::Trunk(id.clone()));
        if let Some(o) = trunk_by_digest.and_then(trunk) {
            return o;
        }
        if let Some(user) = registered.registered_at(source) {
            return Origin::Account(user.to_owned());
        }
        if let Some(o) = self.trunk_by_network(source.ip()).and_then(trunk) {
            return o;
        }
        registered
            .sole_account_on(source.ip())
            .map_or(Origin::Unknown, |u| Origin::Account(u.to_owned()))
    }

    /// The SRTP policy of an origin, when it has one of its own.
    pub fn srtp(&self, origin: &Origin) -> Option<SrtpPolicy> {
        self.own(origin)?.srtp
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::sip::core::sources::tests::binding;
    use sipx_store::{TrunkData, TrunkRecord};

    fn trunk(
        id: &str,
        cidrs: &[&str],
        user: Option<&str>,
        srtp: Option<sipx_store::SrtpPolicy>,
    ) -> TrunkWithSecrets {
        TrunkWithSecrets {
            trunk: TrunkRecord {
                id: id.to_owned(),
                app_id: "app".to_owned(),
                data: TrunkData {
                    inbound_cidrs: cidrs.iter().map(|c| (*c).to_owned()).collect(),
                    inbound_username: user.map(str::to_owned),
                    srtp,
                    ..TrunkData::new(id)
                },
                has_password: false,
                has_inbound_password: user.is_some(),
                created_at_ms: 0,
                updated_at_ms: 0,
            },
            password: None,
            inbound_password: user.map(|_| Redacted::new("pw".to_owned())),
        }
    }

    fn registered(list: &[(&str, &str)]) -> BindingSources {
        let mut s = BindingSources::default();
        for (user, source) in list {
            s.replace(user, &[], &[binding(source)]);
        }
        s
    }

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    use sipx_store::SrtpPolicy as Stored;

    fn origins() -> Origins {
        Origins::new(
            &[
                trunk("trunk_wide", &["192.0.2.0/24"], None, Some(Stored::Allowed)),
                trunk(
                    "trunk_narrow",
                    &["192.0.2.128/25"],
                    Some("carrier"),
                    Some(Stored::Required),
                ),
                trunk("trunk_plain", &["198.51.100.7"], None, None),
            ],
            Some(vec![sipx_store::AccountCallSettings {
                username: "alice".to_owned(),
                srtp: Some(Stored::Disabled),
                number_rules: "[]".to_owned(),
                codecs: None,
            }]),
            Origins::default(),
        )
    }

    #[test]
    fn the_most_specific_trunk_network_wins() {
        let o = origins();
        let none = BindingSources::default();
        let at = |a: &str| o.origin(addr(a), None, &none);
        assert_eq!(at("192.0.2.200:5060"), Origin::Trunk("trunk_narrow".into()));
        assert_eq!(at("192.0.2.10:5060"), Origin::Trunk("trunk_wide".into()));
        assert_eq!(at("198.51.100.7:5060"), Origin::Trunk("trunk_plain".into()));
        assert_eq!(at("203.0.113.1:5060"), Origin::Unknown);
        assert_eq!((o.network_count(), o.user_count()), (3, 1));
    }

    #[test]
    fn digest_then_registered_address_then_network_then_registered_ip() {
        let o = origins();
        let (_, carrier) = o.trunk_user("carrier").unwrap();
        let regs = registered(&[("alice", "192.0.2.10:5060"), ("bob", "203.0.113.5:5060")]);
        // Credentials of a trunk's inbound user name that trunk, wherever the call comes from.
        assert_eq!(
            o.origin(addr("192.0.2.10:5060"), Some(carrier), &regs),
            Origin::Trunk("trunk_narrow".into())
        );
        // A device's own registered address is its account, inside a trunk's network or not.
        assert_eq!(
            o.origin(addr("192.0.2.10:5060"), None, &regs),
            Origin::Account("alice".into())
        );
        // Another port of that address inside a trunk's network: the trunk.
        assert_eq!(
            o.origin(addr("192.0.2.10:7000"), None, &regs),
            Origin::Trunk("trunk_wide".into())
        );
        // Outside any trunk network: the only account registered from that IP.
        assert_eq!(
            o.origin(addr("203.0.113.5:7000"), None, &regs),
            Origin::Account("bob".into())
        );
    }

    #[test]
    fn the_call_layer_beats_the_origin_which_beats_the_server() {
        let o = origins();
        let server = SrtpPolicy::Allowed;
        let trunk = o.srtp(&Origin::Trunk("trunk_narrow".into()));
        assert_eq!(trunk, Some(SrtpPolicy::Required));
        assert_eq!(srtp_policy(None, trunk, server), SrtpPolicy::Required);
        assert_eq!(
            srtp_policy(Some(SrtpPolicy::Disabled), trunk, server),
            SrtpPolicy::Disabled
        );
        // No policy of its own: the server's.
        let plain = o.srtp(&Origin::Trunk("trunk_plain".into()));
        assert_eq!(srtp_policy(None, plain, server), SrtpPolicy::Allowed);
        let alice = o.srtp(&Origin::Account("alice".into()));
        assert_eq!(srtp_policy(None, alice, server), SrtpPolicy::Disabled);
        assert_eq!(o.srtp(&Origin::Account("bob".into())), None);
        assert_eq!(o.srtp(&Origin::Unknown), None);
        assert_eq!(Origin::Trunk("t1".into()).to_string(), "trunk:t1");
    }

    #[test]
    fn a_trunk_with_numbers_reaches_only_them() {
        let mut limited = trunk("t_dids", &["192.0.2.0/24"], None, None);
        limited.trunk.data.inbound_numbers = vec!["+49 30 123456".to_owned(), "4930999".to_owned()];
        let open = trunk("t_open", &["198.51.100.0/24"], None, None);
        let o = Origins::new([&limited, &open], Some(Vec::new()), Origins::default());
        let reached = |dialled: &[&'static str]| o.reached("t_dids", dialled);
        assert_eq!(reached(&["+4930123456"]), Reach::Listed("+4930123456"));
        assert_eq!(
            reached(&["4930123456;npdi"]),
            Reach::Listed("4930123456;npdi")
        );
        assert_eq!(reached(&["+49-30-999"]), Reach::Listed("+49-30-999"));
        // A room's name or the echo test in the Request-URI with a listed number in To: the
        // call goes by the number, not to the room.
        assert_eq!(
            reached(&["room-secret", "+4930123456"]),
            Reach::Listed("+4930123456")
        );
        for refused in [
            ["+4930123457"].as_slice(),
            &["room-secret"],
            &["echo"],
            &[""],
            &[],
        ] {
            assert_eq!(reached(refused), Reach::NotListed, "{refused:?}");
        }
        assert_eq!(o.reached("t_open", &["anything"]), Reach::Any);
    }

    #[test]
    fn number_rules_rewrite_the_numbers_of_their_trunk_or_account_only() {
        let mut national = trunk("t_de", &["192.0.2.0/24"], None, None);
        national.trunk.data.inbound_number_rules =
            r#"[{"prefix":"00","replace_with":"+"},{"prefix":"0","replace_with":"+49"}]"#.into();
        let plain = trunk("t_plain", &["198.51.100.0/24"], None, None);
        let gateway = sipx_store::AccountCallSettings {
            username: "gsm-gw".to_owned(),
            srtp: None,
            number_rules: r#"[{"prefix":"0","replace_with":"+33"}]"#.to_owned(),
            codecs: None,
        };
        let o = Origins::new([&national, &plain], Some(vec![gateway]), Origins::default());
        let de = Origin::Trunk("t_de".into());
        assert_eq!(o.inbound_number(&de, "030123456"), "+4930123456");
        assert_eq!(o.inbound_number(&de, "00441632960"), "+441632960");
        assert_eq!(o.inbound_number(&de, "+4930123456"), "+4930123456");
        // An account's rules are its own, and set no SRTP policy.
        let gsm = Origin::Account("gsm-gw".into());
        assert_eq!(o.inbound_number(&gsm, "0612345678"), "+33612345678");
        assert_eq!(o.srtp(&gsm), None);
        for other in [
            Origin::Trunk("t_plain".into()),
            Origin::Account("alice".into()),
            Origin::Unknown,
        ] {
            assert_eq!(o.inbound_number(&other, "030123456"), "030123456");
        }
    }

    #[test]
    fn codecs_of_their_own_in_their_order_without_those_the_build_lacks() {
        let names = |n: &[&str]| Some(n.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>());
        let mut pcma_first = trunk("t_pcma", &["192.0.2.0/24"], None, None);
        pcma_first.trunk.data.codecs = names(&["PCMA", "opus"]);
        let mut unknown_only = trunk("t_odd", &["198.51.100.0/24"], None, None);
        unknown_only.trunk.data.codecs = names(&["AMR"]);
        let gateway = sipx_store::AccountCallSettings {
            username: "gw".to_owned(),
            srtp: None,
            number_rules: "[]".to_owned(),
            codecs: names(&["g722"]),
        };
        let o = Origins::new(
            [&pcma_first, &unknown_only],
            Some(vec![gateway]),
            Origins::default(),
        );
        let of = |origin: &Origin| {
            o.codecs(origin)
                .map(|c| c.iter().map(|l| l.codec).collect::<Vec<_>>())
        };
        use sipx_sdp::Codec;
        assert_eq!(
            of(&Origin::Trunk("t_pcma".into())),
            Some(vec![Codec::Pcma, Codec::Opus])
        );
        assert_eq!(of(&Origin::Account("gw".into())), Some(vec![Codec::G722]));
        // Nothing usable left: the server's list, as for a trunk without one.
        assert_eq!(of(&Origin::Trunk("t_odd".into())), None);
        assert_eq!(of(&Origin::Unknown), None);
    }
}
