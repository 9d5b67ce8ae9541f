"""Routing rules over real HTTP against the real binary: created in match order, kept across a
restart with their PIN sealed, refused with the field at fault, invisible to other applications,
and `routing.no_rule_status` in the configuration."""

import requests

from conftest import Server, auth_header, create_app, run_cli


def api(server, creds, method, path, body=None):
    key, secret, _ = creds
    return requests.request(method, server.url(path), json=body, headers=auth_header(key, secret),
                            timeout=10)


def test_rules_round_trip_in_match_order_and_survive_a_restart(data_dir):
    server = Server(data_dir).start()
    try:
        app = create_app(server, "a")
        trunk = api(server, app, "POST", "/v1/trunks",
                    {"name": "in", "inbound": {"allowed_cidrs": ["127.0.0.1/32"]}}).json()
        made = []
        for priority, action in [
            (50, {"type": "reject", "sip_code": 486, "reason": "Busy Here"}),
            (10, {"type": "fixed_room", "room": "support", "pin": "4711"}),
            (30, {"type": "webhook", "url": "https://example.com/route", "fallback_room": "lobby"}),
            (10, {"type": "room_by_called_number", "prefix": "did-"}),
            (20, {"type": "room_per_caller", "prefix": "call-"}),
        ]:
            r = api(server, app, "POST", "/v1/routing-rules", {
                "priority": priority,
                "match": {"trunk_id": trunk["id"], "called": {"kind": "prefix", "value": "+4930"}},
                "action": action,
            })
            assert r.status_code == 201, r.text
            made.append((priority, r.json()["id"]))
        made.sort()
    finally:
        server.stop()

    # A restart reads them back from the database, in match order, the PIN still write-only.
    server = Server(data_dir).start()
    try:
        listed = api(server, app, "GET", "/v1/routing-rules?limit=2")
        items = listed.json()["items"]
        cursor = listed.json()["next_cursor"]
        for _ in range(5):
            if not cursor:
                break
            page = api(server, app, "GET", f"/v1/routing-rules?limit=2&cursor={cursor}").json()
            items += page["items"]
            cursor = page["next_cursor"]
        assert [(r["priority"], r["id"]) for r in items] == made
        pinned = next(r for r in items if r["action"]["type"] == "fixed_room")
        assert pinned["action"] == {"type": "fixed_room", "room": "support", "has_pin": True}
        assert "4711" not in listed.text
        assert pinned["match"]["trunk_id"] == trunk["id"]
    finally:
        server.stop()
    # The database and its write-ahead log, whichever holds the row now.
    stored = b"".join(p.read_bytes() for p in data_dir.glob("sipx.db*"))
    assert b"support" in stored and b"4711" not in stored, "the PIN is sealed at rest"


def test_bad_rules_are_422_and_other_applications_see_nothing(server):
    a = create_app(server, "a")
    b = create_app(server, "b")
    theirs = api(server, b, "POST", "/v1/trunks", {"name": "b's"}).json()
    for body, field in [
        ({"match": {"called": {"kind": "pattern", "value": "(12"}}, "action": {"type": "reject", "sip_code": 404}},
         "match.called.value"),
        ({"action": {"type": "fixed_room", "room": "no spaces"}}, "action.room"),
        ({"match": {"trunk_id": theirs["id"]}, "action": {"type": "reject", "sip_code": 404}}, "match.trunk_id"),
        ({"action": {"type": "fixed_room", "room": "ok", "pin": "12"}}, "action.pin"),
        ({"action": {"type": "reject", "sip_code": 401}}, "action.sip_code"),
    ]:
        r = api(server, a, "POST", "/v1/routing-rules", body)
        assert r.status_code == 422, r.text
        assert r.headers["content-type"] == "application/problem+json"
        assert field in [e["field"] for e in r.json()["errors"]], r.text

    rule = api(server, a, "POST", "/v1/routing-rules", {"action": {"type": "reject", "sip_code": 603}}).json()
    path = f"/v1/routing-rules/{rule['id']}"
    for method, body in [("GET", None), ("PATCH", {"priority": 1}), ("DELETE", None)]:
        r = api(server, b, method, path, body)
        assert r.status_code == 404, (method, r.text)
    assert api(server, b, "GET", "/v1/routing-rules").json()["items"] == []
    assert api(server, a, "DELETE", path).status_code == 204
    assert api(server, a, "GET", path).status_code == 404


def test_no_rule_status_is_configured(data_dir):
    shown = run_cli(data_dir, "config")
    assert "no_rule_status = 404" in shown.stdout
    shown = run_cli(data_dir, "config", env={"SIPX_ROUTING__NO_RULE_STATUS": "480"})
    assert "no_rule_status = 480" in shown.stdout
    refused = run_cli(data_dir, "config", env={"SIPX_ROUTING__NO_RULE_STATUS": "503"}, check=False)
    assert refused.returncode == 78, refused.stderr
    assert "404 or 480" in refused.stderr
