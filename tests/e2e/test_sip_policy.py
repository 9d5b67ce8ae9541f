"""Who may talk to SIPx: unknown sources, trunk networks, scanners, rate limits."""

import requests

from conftest import Server, auth_header, create_app, sip_addr, sip_transaction


def test_unknown_sources_are_refused_and_trunk_networks_are_not(server):
    target = sip_addr(server, "udp")
    # Not a trunk's network, not a registered device: 403.
    assert sip_transaction(target, "127.0.0.61", "INVITE") == 403
    # OPTIONS is answered to anyone.
    assert sip_transaction(target, "127.0.0.61", "OPTIONS") == 200
    creds = create_app(server)[:2]
    r = requests.post(server.url("/v1/trunks"), headers=auth_header(*creds), timeout=5,
                      json={"name": "carrier", "inbound": {"allowed_cidrs": ["127.0.0.62/32"]}})
    assert r.status_code == 201
    # The SIP service reloads trunks on the change; then the carrier's INVITE gets past the
    # gate (no routing rule of the application matches: routing.no_rule_status, 404).
    server.wait_log(lambda e: e.get("message") == "trunks loaded" and e.get("inbound_networks") == 1, 10)
    assert sip_transaction(target, "127.0.0.62", "INVITE") == 404
    assert sip_transaction(target, "127.0.0.63", "INVITE") == 403


def test_silent_mode_and_scanners_get_no_answer(data_dir):
    s = Server(data_dir, env={"SIPX_SIP__UNKNOWN_SOURCE": "silent"}).start()
    try:
        target = sip_addr(s, "udp")
        assert sip_transaction(target, "127.0.0.64", "INVITE") is None
        assert sip_transaction(target, "127.0.0.64", "OPTIONS") is None
        metrics = requests.get(s.url("/metrics"), timeout=5).text
        assert "sipx_sip_unknown_source_total 2" in metrics
    finally:
        s.stop()
    s = Server(data_dir).start()
    try:
        target = sip_addr(s, "udp")
        assert sip_transaction(target, "127.0.0.65", "OPTIONS", ua="friendly-scanner") is None
        assert sip_transaction(target, "127.0.0.65", "OPTIONS") == 200
    finally:
        s.stop()


def test_a_flooding_source_is_rate_limited_but_a_trunk_network_is_not(data_dir):
    s = Server(data_dir, env={"SIPX_SIP__RATE_LIMIT_PER_SEC": "5", "SIPX_SIP__RATE_LIMIT_BURST": "5"}).start()
    try:
        target = sip_addr(s, "udp")
        answered = sum(sip_transaction(target, "127.0.0.66", "OPTIONS") == 200 for _ in range(8))
        assert 5 <= answered < 8, answered
        assert 'reason="rate"' in requests.get(s.url("/metrics"), timeout=5).text

        # A provider's edge sends as fast as its callers call: its trunk network is not limited.
        key, secret, _ = create_app(s)
        r = requests.post(s.url("/v1/trunks"), headers=auth_header(key, secret), timeout=5,
                          json={"name": "carrier", "inbound": {"allowed_cidrs": ["127.0.0.67/32"]}})
        assert r.status_code == 201, r.text
        answered = sum(sip_transaction(target, "127.0.0.67", "OPTIONS") == 200 for _ in range(12))
        assert answered == 12, answered
    finally:
        s.stop()
