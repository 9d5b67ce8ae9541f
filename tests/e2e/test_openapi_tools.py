"""Third-party tools against the running server: a generated client (its dial-out reaches a sipp
phone on 127.0.0.190), and schemathesis."""

import importlib
import os
import pathlib
import signal
import subprocess
import sys
import time

import pytest

from conftest import ADMIN_KEY, ADMIN_SECRET, PEERS, ROOT, Server, auth_header, create_app

VENV_BIN = pathlib.Path(sys.executable).parent


def test_generated_python_client_creates_and_lists(server, tmp_path):
    out = tmp_path / "client"
    p = subprocess.run([str(VENV_BIN / "openapi-python-client"), "generate", "--path", str(ROOT / "openapi.json"),
                        "--output-path", str(out), "--meta", "none"], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr
    sys.path.insert(0, str(out.parent))
    try:
        pkg = out.name
        client_mod = importlib.import_module(f"{pkg}.client")
        models = importlib.import_module(f"{pkg}.models")
        create_app_op = importlib.import_module(f"{pkg}.api.apps.create_app")
        create_acct = importlib.import_module(f"{pkg}.api.sip_accounts.create_sip_account")
        list_accts = importlib.import_module(f"{pkg}.api.sip_accounts.list_sip_accounts")

        def client(key, secret):
            token = auth_header(key, secret)["Authorization"].removeprefix("Sipx ")
            return client_mod.AuthenticatedClient(base_url=server.base, token=token, prefix="Sipx")

        created = create_app_op.sync(client=client(ADMIN_KEY, ADMIN_SECRET),
                                     body=models.CreateApp(name="generated"))
        assert created.app.name == "generated"
        tenant = client(created.app.api_key, created.api_secret)
        acct = create_acct.sync(client=tenant, body=models.CreateSipAccount(username="gen-gw", password="password-123"))
        assert acct.username == "gen-gw" and acct.max_bindings == 5
        page = list_accts.sync(client=tenant)
        assert [a.id for a in page.items] == [acct.id]

        # A dial-out through the generated client, to a phone (sipp) that answers; its state
        # read back until CONFIRMED, then hung up.
        create_call = importlib.import_module(f"{pkg}.api.calls.create_call")
        get_call = importlib.import_module(f"{pkg}.api.calls.get_call")
        hangup_call = importlib.import_module(f"{pkg}.api.calls.hangup_call")
        scenario = tmp_path / "uas_answer.xml"
        scenario.write_text((PEERS / "sipp" / "uas_answer.xml").read_text())
        sipp = subprocess.Popen(["sipp", "-sf", str(scenario), "-i", "127.0.0.190", "-p", "5060", "-m", "1",
                                 "-nostdin", "-recv_timeout", "60000"], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, cwd=tmp_path)
        try:
            call = create_call.sync(client=tenant, body=models.CreateCall(
                to="sip:+4930123@127.0.0.190:5060", room=models.RoomInput(name="generated-room")))
            assert call.state == "CALLING" and call.direction == "outbound", call
            deadline = time.monotonic() + 20
            while (got := get_call.sync(client=tenant, call_id=call.id)).state != "CONFIRMED":
                assert time.monotonic() < deadline, got
                time.sleep(0.1)
            assert [h.state for h in got.history] == ["CALLING", "EARLY", "CONNECTING", "CONFIRMED"], got
            hangup_call.sync(client=tenant, call_id=call.id)
            assert sipp.wait(15) == 0  # it got its BYE
        finally:
            if sipp.poll() is None:
                sipp.kill()
    finally:
        sys.path.remove(str(out.parent))


def test_responses_validate_strictly_against_the_document(server):
    """Every `null` a response carries is one the document allows, read as OpenAPI 3.0.3 says
    (`nullable` acts only beside a `type`): what strict validators and clients check."""
    import json

    import requests
    from openapi_schema_validator import OAS30Validator

    doc = json.loads((ROOT / "openapi.json").read_text())
    key, secret, _ = create_app(server)
    headers = auth_header(key, secret)

    def check(method, path, schema, body=None, status=200):
        r = requests.request(method, server.url(path), json=body, headers=headers, timeout=10)
        assert r.status_code == status, r.text
        OAS30Validator({"$ref": f"#/components/schemas/{schema}", "components": doc["components"]}).validate(r.json())
        return r.json()

    trunk = check("POST", "/v1/trunks", "Trunk", {"name": "t", "inbound": {"allowed_cidrs": ["127.0.0.191/32"]}},
                  status=201)
    assert trunk["registration"] is None and trunk["srtp"] is None and trunk["outbound"] is None, trunk
    check("GET", f"/v1/trunks/{trunk['id']}", "Trunk")
    check("GET", "/v1/trunks", "TrunkList")
    account = check("POST", "/v1/sip-accounts", "SipAccount", {"username": "strict-gw", "password": "password-123"},
                    status=201)
    assert account["srtp"] is None, account
    check("GET", "/v1/sip-accounts", "SipAccountList")
    rule = check("POST", "/v1/routing-rules", "RoutingRule",
                 {"match": {"called": {"kind": "exact", "value": "300"}},
                  "action": {"type": "fixed_room", "room": "strict"}}, status=201)
    assert rule["match"]["caller"] is None, rule
    check("GET", "/v1/routing-rules", "RoutingRuleList")


# positive_data_acceptance is left out: rules such as "a valid CIDR" or "a cursor this API
# issued" are not expressible in JSON Schema, so schema-valid input may rightly get a 4xx.
CHECKS = ",".join([
    "not_a_server_error", "status_code_conformance", "content_type_conformance",
    "response_headers_conformance", "response_schema_conformance", "negative_data_rejection",
    "missing_required_header", "unsupported_method", "allow_header_conformance", "use_after_free",
    "ensure_resource_availability", "ignored_auth",
])


def schemathesis(server, header, *filters):
    cmd = [str(VENV_BIN / "schemathesis"), "run", server.url("/openapi.json"), "-H",
           f"Authorization: {header}", "--checks", CHECKS, "--max-examples",
           os.environ.get("SIPX_SCHEMATHESIS_EXAMPLES", "40"), "--workers", "1", "--seed", "20261128",
           "--no-color", *filters]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert p.returncode == 0, p.stdout[-8000:] + p.stderr[-2000:]
    assert "No issues found" in p.stdout or " passed" in p.stdout, p.stdout[-3000:]


@pytest.fixture
def quiet_server(data_dir):
    """A server that sends no webhooks: the documents' example URLs must not be called."""
    s = Server(data_dir, env={"SIPX_WEBHOOKS__MAX_IN_FLIGHT": "0"}).start()
    yield s
    s.stop(signal.SIGKILL)


def test_schemathesis_application_operations(quiet_server):
    server = quiet_server
    key, secret, _ = create_app(server)
    # /v1/events is a stream that stays open: a request/response fuzzer would wait on it forever
    # (tests/e2e/test_webhooks.py covers it). DELETE /v1/calls/{call_id} hangs a call up and
    # the call's record stays readable (as the first SIPx's callstate did), which schemathesis'
    # stateful phase reads as a use after free; test_calls_dialout.py covers hanging up.
    schemathesis(server, auth_header(key, secret)["Authorization"], "--exclude-path-regex",
                 "^/v1/(apps|events$)", "--exclude-operation-id", "hangup_call")


def test_schemathesis_operator_operations(server):
    schemathesis(server, auth_header(ADMIN_KEY, ADMIN_SECRET)["Authorization"], "--include-path-regex",
                 "^/v1/apps")
