"""A real browser SIP phone: SIP.js in headless Chromium registers to SIPx over WebSocket
(RFC 7118) and secure WebSocket, is listed as such, and un-registers."""

import urllib.parse

import pytest

from browser import chromium, static_server
from conftest import Server, create_app, sip_addr
from test_sip_registrar import account, registrations, self_signed


@pytest.mark.parametrize("scheme", ["ws", "wss"])
def test_sipjs_in_chromium_registers_over_websocket(data_dir, tmp_path, scheme):
    cert, key = self_signed(tmp_path)
    s = Server(data_dir, env={f"SIPX_SIP__{scheme.upper()}": '["127.0.0.1:0"]',
                              "SIPX_SIP__TLS_CERT": str(cert), "SIPX_SIP__TLS_KEY": str(key)}).start()
    try:
        creds = create_app(s)[:2]
        user = f"browser-{scheme}"
        account(s, creds, user, "browser-pw-1")
        host, port = sip_addr(s, scheme)
        query = urllib.parse.urlencode({"ws": f"{scheme}://{host}:{port}", "user": user,
                                        "password": "browser-pw-1"})
        # The self-signed certificate is trusted the way a user would accept it.
        extra = [f"--ignore-certificate-errors-spki-list={spki(cert)}"] if scheme == "wss" else []
        with static_server() as base, chromium(extra) as browser:
            page = browser.new_page()
            page.goto(f"{base}/pages/sip-phone.html?{query}")
            page.wait_for_function("window.sipResult !== undefined", timeout=20_000)
            result = page.evaluate("window.sipResult")
            assert result == {"status": 200}, (result, page.inner_text("#log"))
            regs = [r for r in registrations(s, creds) if r["username"] == user]
            assert len(regs) == 1 and regs[0]["transport"] == scheme.upper(), regs
            assert "transport=ws" in regs[0]["contact"], regs
            page.evaluate("window.unregister()")
            page.wait_for_function("window.sipEvents.includes('Unregistered')", timeout=10_000)
            assert not [r for r in registrations(s, creds) if r["username"] == user]
    finally:
        s.stop()


def spki(cert):
    """Base64 SHA-256 of the certificate's public key, as Chromium's SPKI allow-list wants it."""
    import base64
    import hashlib
    import subprocess
    der = subprocess.run(["openssl", "x509", "-in", str(cert), "-pubkey", "-noout"], capture_output=True,
                         check=True).stdout
    key = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "der"], input=der, capture_output=True,
                         check=True).stdout
    return base64.b64encode(hashlib.sha256(key).digest()).decode()
