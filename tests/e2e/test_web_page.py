"""The demo page at / and the browser client /sipx-client.js, served by the real binary to
headless Chromium: the page loads without console errors under a Content-Security-Policy that
blocks what it should; its layout fits a phone and a desktop; the requests it signs in the
browser (WebCrypto) are accepted by the server, and a wrong secret is refused; the client module
imports and fails cleanly when the server refuses its token."""

import pytest

from browser import chromium
from conftest import create_app, sign

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 800}

# Records CSP violations from the first script on, before the page's own module runs.
RECORD_VIOLATIONS = """
window.__csp = [];
document.addEventListener('securitypolicyviolation',
  (e) => window.__csp.push({directive: e.effectiveDirective, blocked: e.blockedURI}));
"""


class Page:
    """A fresh browser context on the demo page, with its console errors and requests."""

    def __init__(self, browser, server, fragment="", viewport=DESKTOP):
        self.context = browser.new_context(viewport=viewport)
        self.page = self.context.new_page()
        self.errors, self.requests = [], []
        self.page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        self.page.on("pageerror", lambda e: self.errors.append(f"uncaught: {e}"))
        self.page.on("request", lambda r: self.requests.append(r))
        self.page.add_init_script(RECORD_VIOLATIONS)
        self.response = self.page.goto(server.url("/") + fragment)

    def chip(self, state):
        """Waits for the credentials chip to reach `state` and returns its text."""
        chip = self.page.locator("[data-testid=credentials-status]")
        self.page.wait_for_function(
            "s => document.querySelector('[data-testid=credentials-status]').dataset.state === s",
            arg=state, timeout=10_000)
        return chip.inner_text()

    def overflow(self):
        return self.page.evaluate(
            "[document.documentElement.scrollWidth, document.documentElement.clientWidth]")

    def close(self):
        self.context.close()


@pytest.fixture(scope="module")
def browser():
    with chromium() as b:
        yield b


def test_page_loads_without_errors_under_a_policy_that_holds(server, browser):
    key, secret, _ = create_app(server, "Acme Support")
    p = Page(browser, server, f"#api_key={key}&api_secret={secret}")
    try:
        assert p.response.status == 200
        headers = p.response.headers
        assert headers["content-type"] == "text/html; charset=utf-8"
        assert headers["cache-control"] == "no-cache"
        csp = headers["content-security-policy"]
        host = server.base.split("://", 1)[1]
        for directive in ["default-src 'none'", "script-src 'self';", "style-src 'self';",
                          f"connect-src 'self' ws://{host} wss://{host};", "frame-ancestors 'none'"]:
            assert directive in csp, csp
        assert "unsafe" not in csp
        assert p.chip("ok") == "Acme Support"
        # Every subresource arrived (module script, client, stylesheet, icon) and nothing broke.
        p.page.wait_for_load_state("networkidle")
        assert p.errors == [] and p.page.evaluate("window.__csp") == []
        loaded = {r.url.removeprefix(server.base) for r in p.requests}
        assert {"/", "/demo.js", "/sipx-client.js", "/demo.css", "/favicon.svg"} <= loaded, loaded
        assert p.page.evaluate("getComputedStyle(document.body).display") == "flex", "demo.css applied"

        # The policy holds: inline script, inline style and a foreign origin are refused, the
        # room signalling socket of the same host is not.
        p.page.evaluate("""() => {
            const s = document.createElement('script');
            s.textContent = 'window.__injected = true';
            document.body.append(s);
            document.body.insertAdjacentHTML('beforeend', '<p id="styled" style="color: rgb(1, 2, 3)">x</p>');
            fetch('http://127.0.0.2:9/').catch(() => {});
            new WebSocket(`ws://${location.host}/v1/rtc`).onerror = () => {};
        }""")
        p.page.wait_for_function("window.__csp.length >= 3", timeout=5000)
        violations = p.page.evaluate("window.__csp")
        directives = sorted(v["directive"] for v in violations)
        assert directives == ["connect-src", "script-src-elem", "style-src-attr"], violations
        assert p.page.evaluate("window.__injected") is None
        assert p.page.evaluate("getComputedStyle(document.getElementById('styled')).color") != "rgb(1, 2, 3)"
    finally:
        p.close()


@pytest.mark.parametrize("viewport", [PHONE, DESKTOP], ids=["phone", "desktop"])
def test_layout_fits_the_viewport_without_horizontal_scrolling(server, browser, viewport):
    p = Page(browser, server, viewport=viewport)
    try:
        p.chip("none")
        width = viewport["width"]
        assert p.overflow() == [width, width]
        form = p.page.locator("[data-testid=join-form]").bounding_box()
        button = p.page.locator("[data-testid=join-button]").bounding_box()
        assert form["x"] >= 0 and form["x"] + form["width"] <= width, form
        assert button["x"] + button["width"] <= width and button["height"] >= 40, button
        if viewport is PHONE:
            # One column: the form takes the width, below the headline.
            assert form["width"] >= width - 48, form
        else:
            assert form["width"] <= 460 and form["x"] > width / 2, form
        # The settings dialog fits too, with the needs-credentials notice that opens it.
        p.page.click("[data-open-settings]")
        dialog = p.page.locator("[data-testid=settings]")
        dialog.wait_for(state="visible")
        box = dialog.bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= width, box
        assert p.overflow() == [width, width]
        assert p.errors == []
    finally:
        p.close()


# The test vector published with the first SIPx's API (crates/sipx-secrets/src/signature.rs).
VECTOR = ("23456789", "1893456000", "k69x50j0", "d7vG2xBURXT-M-BdmFcCLYTHIh1chSo6SG3KT9SNhMk")

CALL_APP = """() => import('/demo.js').then((m) => m.api('GET', '/v1/app')
    .then((app) => ({status: 200, name: app.name}), (e) => ({status: e.status, type: e.problem.type})))"""


def test_requests_signed_in_the_page_are_accepted_and_a_wrong_secret_is_refused(server, browser):
    key, secret, app_id = create_app(server, "Signer App")
    p = Page(browser, server, f"#api_key={key}&api_secret={secret}")
    try:
        assert p.chip("ok") == "Signer App"
        assert p.page.evaluate(CALL_APP) == {"status": 200, "name": "Signer App"}
        assert p.page.evaluate("(v) => import('/demo.js').then((m) => m.sign(v[0], v[1], v[2]))",
                               list(VECTOR[:3])) == VECTOR[3]
        # The page's signature matches this harness's for any key, expiry and secret.
        assert p.page.evaluate("(a) => import('/demo.js').then((m) => m.sign(...a))",
                               [key, "2000000000", secret]) == sign(key, secret, 2000000000)
        # The credentials left the address bar for local storage, and the secret never left.
        assert p.page.evaluate("location.hash") == ""
        assert p.page.evaluate("localStorage.getItem('sipx.demo.api_key')") == key
        for r in p.requests:
            assert secret not in r.url and secret not in str(r.all_headers()) and secret not in (r.post_data or "")
        auth = [r.header_value("authorization") for r in p.requests if r.url.endswith("/v1/app")]
        assert auth and all(a.startswith(f"Sipx api_key={key}, expire_at=") for a in auth), auth
        ok = [e for e in server.events() if e.get("message") == "request"
              and e.get("span", {}).get("route") == "/v1/app"]
        assert ok and all(e["status"] == 200 for e in ok), ok

        # A wrong secret: refused by the server, shown as such, and as a problem on submit.
        p.page.click("[data-testid=credentials-status]")
        p.page.fill("[data-testid=api-secret-input]", secret + "x")
        p.page.click("[data-testid=save-credentials]")
        assert p.chip("error") == "Credentials refused"
        problem = p.page.locator("[data-testid=settings-error]")
        problem.wait_for(state="visible")
        assert "urn:sipx:problem:unauthorized" in problem.inner_text()
        assert "invalid api_key or signature" in problem.inner_text()
        assert p.page.evaluate(CALL_APP) == {"status": 401, "type": "urn:sipx:problem:unauthorized"}
        p.page.click("#close-settings")
        p.page.fill("[data-testid=name-input]", "Ada")
        p.page.click("[data-testid=join-button]")
        join_error = p.page.locator("[data-testid=join-error]")
        join_error.wait_for(state="visible")
        assert "Could not get a join token" in join_error.inner_text()
        assert "urn:sipx:problem:" in join_error.inner_text()

        # Corrected in the settings dialog: accepted again.
        p.page.click("[data-testid=credentials-status]")
        p.page.fill("[data-testid=api-secret-input]", secret)
        p.page.click("[data-testid=save-credentials]")
        assert p.chip("ok") == "Signer App"
        p.page.locator("[data-testid=settings]").wait_for(state="hidden")
    finally:
        p.close()


def test_client_module_exposes_its_api_and_refuses_a_forged_token(server, browser):
    p = Page(browser, server)
    try:
        api = p.page.evaluate("""() => import('/sipx-client.js').then((m) => ({
            exports: Object.keys(m),
            isEventTarget: m.SipxRoom.prototype instanceof EventTarget,
            join: typeof m.SipxRoom.join,
            methods: ['publish', 'setMuted', 'leave'].filter((k) => typeof m.SipxRoom.prototype[k] === 'function'),
            getters: ['tracks', 'peerConnection'].filter(
                (k) => typeof Object.getOwnPropertyDescriptor(m.SipxRoom.prototype, k)?.get === 'function'),
        }))""")
        assert api == {"exports": ["SipxRoom"], "isEventTarget": True, "join": "function",
                       "methods": ["publish", "setMuted", "leave"], "getters": ["tracks", "peerConnection"]}
        no_token = p.page.evaluate("""() => import('/sipx-client.js')
            .then((m) => m.SipxRoom.join({publish: false})).then(() => 'joined', (e) => e.name)""")
        assert no_token == "TypeError"
        # A forged token never gets a welcome: join rejects (the server refuses the socket)
        # rather than hanging or resolving.
        forged = p.page.evaluate("""() => import('/sipx-client.js')
            .then((m) => m.SipxRoom.join({token: 'forged.token.value', publish: false}))
            .then(() => 'joined', (e) => e.message)""")
        assert forged.startswith("SipxRoom.join: "), forged
    finally:
        p.close()
