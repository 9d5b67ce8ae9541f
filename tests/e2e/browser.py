"""Headless Chromium driven by Playwright, and a static server for the test pages in tests/e2e
(pages/ and the browser peers npm installed into node_modules/)."""

import contextlib
import functools
import http.server
import shutil
import threading

from playwright.sync_api import sync_playwright

from conftest import ROOT

E2E = ROOT / "tests" / "e2e"

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 # Without this Chromium resolves Google hosts at every start, even offline.
                 "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE localhost , EXCLUDE 127.0.0.1",
                 # Fake microphone and camera, granted without a prompt.
                 "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream"]


def chromium_path():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    raise AssertionError("chromium is not installed (scripts/test installs it)")


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@contextlib.contextmanager
def static_server():
    """Serves tests/e2e on 127.0.0.1 (a secure context for WebCrypto and getUserMedia)."""
    handler = functools.partial(_Quiet, directory=str(E2E))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


@contextlib.contextmanager
def chromium(extra_args=()):
    """A headless Chromium (Debian's) with fake media devices."""
    with chromiums([extra_args]) as (browser,):
        yield browser


@contextlib.contextmanager
def chromiums(args_per_browser):
    """Several headless Chromiums (separate processes: each fake microphone plays its own file)."""
    with sync_playwright() as p:
        browsers = []
        try:
            for extra_args in args_per_browser:
                browsers.append(p.chromium.launch(executable_path=chromium_path(), headless=True,
                                                  args=[*CHROMIUM_ARGS, *extra_args]))
            yield browsers
        finally:
            for b in browsers:
                b.close()
