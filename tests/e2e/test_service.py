"""The running service: probes, metrics, logs, docs, and the OpenAPI document."""

import json
import pathlib
import re
import shutil
import subprocess
import tempfile

import requests
from openapi_spec_validator import validate

from conftest import ARTIFACTS, ROOT, auth_header, create_app


def test_health_readiness_and_request_ids(server):
    r = requests.get(server.url("/healthz"), timeout=5)
    assert r.status_code == 200 and r.json()["status"] == "ok"
    rid = r.headers["x-request-id"]
    r = requests.get(server.url("/readyz"), timeout=5)
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "ready"
    assert body["checks"]["database"] == "ok" and body["checks"]["http"] == "ok"
    assert any(k.startswith("sip-udp ") for k in body["checks"]), body
    assert any(k.startswith("sip-tcp ") for k in body["checks"]), body
    assert set(body["checks"].values()) == {"ok"}
    # The request id of the answer is in the server's log line for that request.
    server.wait_log(lambda e: e.get("request_id") == rid or e.get("span", {}).get("request_id") == rid, 10)


def test_metrics_count_requests_by_route_and_status(server):
    key, secret, _ = create_app(server)
    requests.get(server.url("/healthz"), timeout=5)
    requests.get(server.url("/v1/app"), timeout=5)  # 401
    requests.get(server.url("/v1/app"), headers=auth_header(key, secret), timeout=5)
    text = requests.get(server.url("/metrics"), timeout=5).text
    assert re.search(r'sipx_build_info\{version="[^"]+"\} 1', text), text
    assert re.search(r'sipx_http_requests_total\{[^}]*route="/healthz"[^}]*status="200"[^}]*\} [1-9]', text) or \
        re.search(r'sipx_http_requests_total\{[^}]*status="200"[^}]*route="/healthz"[^}]*\} [1-9]', text), text
    assert 'status="401"' in text and 'route="/v1/app"' in text, text
    assert "sipx_http_request_duration_seconds_bucket" in text


def test_openapi_is_valid_30_and_matches_the_committed_file(server):
    served = requests.get(server.url("/openapi.json"), timeout=5).json()
    committed = json.loads((ROOT / "openapi.json").read_text())
    assert served == committed
    assert served["openapi"].startswith("3.0.")
    validate(served)  # raises on any violation of the OpenAPI 3.0 schema
    for path, item in served["paths"].items():
        for method, op in item.items():
            assert op.get("summary"), f"{method} {path}"
            for status, resp in op["responses"].items():
                for media in resp.get("content", {}).values():
                    assert "schema" in media, f"{method} {path} {status}"


def test_docs_and_assets_are_served_offline(server):
    r = requests.get(server.url("/docs/"), timeout=5)
    assert r.status_code == 200 and "text/html" in r.headers["content-type"]
    assets = re.findall(r'(?:src|href)="([^"]+)"', r.text)
    assert assets, r.text
    for asset in assets:
        assert not asset.startswith("http"), f"external asset {asset}"
        a = requests.get(server.url("/docs/") + asset.lstrip("./"), timeout=5)
        assert a.status_code == 200 and len(a.content) > 100, asset
    init = requests.get(server.url("/docs/swagger-initializer.js"), timeout=5)
    assert "/openapi.json" in init.text


def chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    raise AssertionError("chromium is not installed (scripts/test installs it)")


CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--virtual-time-budget=15000",
                  # Without this Chromium resolves Google hosts at every start, even offline.
                  "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE localhost , EXCLUDE 127.0.0.1"]


def test_docs_render_in_headless_chromium(server):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as profile:
        dom = subprocess.run([chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--dump-dom",
                              server.url("/docs/")], capture_output=True, text=True, timeout=120)
    # Swagger UI rendered the document: operation blocks exist, with our operations in them.
    assert "opblock" in dom.stdout, dom.stderr[-2000:]
    assert "SIPx API" in dom.stdout
    assert "/v1/sip-accounts" in dom.stdout
    shot = ARTIFACTS / "docs.png"
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run([chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--window-size=1280,1600",
                        f"--screenshot={shot}", server.url("/docs/")], capture_output=True, timeout=120)
    assert shot.exists() and shot.stat().st_size > 20_000  # a rendered page, not a blank one
