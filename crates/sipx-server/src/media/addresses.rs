//! The media addresses of the configuration, checked at start: each a real address of one
//! family that SDP can name, so that no call is answered with an address its peer cannot reach.

use std::net::IpAddr;

use crate::StartupError;
use crate::config::MediaConfig;

/// `media.second_ip` (bound) and the address its calls' SDP carries, once checked with the
/// rest; `None` without a second address.
pub(crate) fn check(config: &MediaConfig) -> Result<Option<(IpAddr, IpAddr)>, StartupError> {
    let error = |what: String| Err(StartupError::Config(what));
    advertised(
        "media.ip",
        config.ip,
        "media.external_ip",
        config.external_ip,
    )?;
    let Some(second) = config.second_ip else {
        if config.second_external_ip.is_some() {
            return error("media.second_external_ip needs media.second_ip".to_owned());
        }
        return Ok(None);
    };
    let second_advertised = advertised(
        "media.second_ip",
        second,
        "media.second_external_ip",
        config.second_external_ip,
    )?;
    if second.is_ipv4() == config.ip.is_ipv4() {
        return error(
            "media.second_ip must be of the other IP family than media.ip (IPv6 beside IPv4, or IPv4 beside IPv6)"
                .to_owned(),
        );
    }
    Ok(Some((second, second_advertised)))
}

/// The address SDP names for RTP bound on `bind`: `external`, else `bind` itself.
fn advertised(
    bind_key: &str,
    bind: IpAddr,
    external_key: &str,
    external: Option<IpAddr>,
) -> Result<IpAddr, StartupError> {
    let error = |what: String| Err(StartupError::Config(what));
    for (key, ip) in [(bind_key, Some(bind)), (external_key, external)] {
        if let Some(IpAddr::V6(v6)) = ip
            && v6.to_ipv4_mapped().is_some()
        {
            return error(format!("{key} {v6} is an IPv4 address: write it as one"));
        }
    }
    match external {
        Some(ip) if ip.is_ipv4() != bind.is_ipv4() => error(format!(
            "{external_key} must be of {bind_key}'s family (a second family goes in media.second_ip)"
        )),
        Some(ip) if ip.is_unspecified() => {
            error(format!("{external_key} must be an address peers can reach"))
        }
        Some(ip) => Ok(ip),
        None if bind.is_unspecified() => error(format!(
            "{bind_key} {bind} binds every interface: set {external_key} to the address peers reach"
        )),
        None => Ok(bind),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn config(
        ip: &str,
        external: Option<&str>,
        second: Option<&str>,
        second_external: Option<&str>,
    ) -> MediaConfig {
        MediaConfig {
            ip: ip.parse().unwrap(),
            external_ip: external.map(|a| a.parse().unwrap()),
            second_ip: second.map(|a| a.parse().unwrap()),
            second_external_ip: second_external.map(|a| a.parse().unwrap()),
            ..MediaConfig::default()
        }
    }

    #[test]
    fn usable_addresses_pass_and_the_second_is_told() {
        assert_eq!(check(&config("127.0.0.1", None, None, None)).unwrap(), None);
        assert_eq!(check(&config("::1", None, None, None)).unwrap(), None);
        assert_eq!(
            check(&config("0.0.0.0", Some("203.0.113.5"), None, None)).unwrap(),
            None
        );
        let dual = check(&config(
            "10.0.0.2",
            Some("203.0.113.5"),
            Some("::"),
            Some("2001:db8::5"),
        ));
        assert_eq!(
            dual.unwrap(),
            Some(("::".parse().unwrap(), "2001:db8::5".parse().unwrap()))
        );
        let dual = check(&config("::1", None, Some("127.0.0.1"), None));
        assert_eq!(
            dual.unwrap(),
            Some(("127.0.0.1".parse().unwrap(), "127.0.0.1".parse().unwrap()))
        );
    }

    #[test]
    fn addresses_no_peer_could_reach_are_refused() {
        for bad in [
            config("0.0.0.0", None, None, None),
            config("::", None, None, None),
            config("127.0.0.1", Some("2001:db8::6"), None, None),
            config("127.0.0.1", Some("0.0.0.0"), None, None),
            config("::ffff:127.0.0.2", None, None, None),
            config("127.0.0.1", None, Some("127.0.0.2"), None),
            config("127.0.0.1", None, Some("::ffff:127.0.0.2"), None),
            config("127.0.0.1", None, Some("::"), None),
            config("127.0.0.1", None, Some("::1"), Some("192.0.2.9")),
            config("127.0.0.1", None, None, Some("::1")),
        ] {
            assert!(check(&bad).is_err(), "{bad:?}");
        }
    }
}
