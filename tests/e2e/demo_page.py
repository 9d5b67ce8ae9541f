"""The demo page at / (web/index.html, demo.js) driven by Chromium in a real room: joining
through its forms, reading its tiles. Used by test_web_rooms.py and scripts/screenshot-demo."""

DESKTOP = {"width": 1280, "height": 800}


def join(browser, server, creds, room, name, viewport=DESKTOP):
    """A demo page (in a context of its own) that joined `room` as `name`; returns the page."""
    page = browser.new_context(viewport=viewport).new_page()
    page.goto(server.url("/") + f"#api_key={creds[0]}&api_secret={creds[1]}")
    page.fill("[data-testid=room-input]", room)
    page.fill("[data-testid=name-input]", name)
    page.click("[data-testid=join-button]")
    page.locator("[data-testid=room-title]").wait_for(state="visible", timeout=15_000)
    return page


def inbound_bytes(page, kind):
    """Bytes received so far on `kind` (from the joined SipxRoom's RTCPeerConnection stats)."""
    return page.evaluate("""(kind) => import('/demo.js').then(async (m) => {
        const stats = await m.currentRoom().peerConnection.getStats();
        let total = 0;
        stats.forEach((s) => { if (s.type === 'inbound-rtp' && s.kind === kind) total += s.bytesReceived; });
        return total;
    })""", kind)


def wait_for_video(page, name):
    """Until the tile of `name` plays video (the page's own tile: its camera preview)."""
    page.wait_for_function(
        "(name) => [...document.querySelectorAll('.tile.has-video')].some("
        "(t) => t.textContent.includes(name) && t.querySelector('video').videoWidth > 0)",
        arg=name, timeout=15_000)


def phone_tile(page):
    """The (first) phone participant's tile, once it is shown."""
    tile = page.locator("[data-testid=tile][data-kind=phone]").first
    tile.wait_for(state="visible", timeout=15_000)
    return tile


def wait_level(page, tile, above=None, below=None, timeout=15_000):
    """Waits until the tile's level meter (aria-valuenow, 0..100) is above or below a value;
    returns the value it showed then."""
    identity = tile.get_attribute("data-identity")
    check = "v > a.above" if above is not None else "v < a.below"
    return page.wait_for_function(
        f"""(a) => {{
            const tile = [...document.querySelectorAll('[data-testid=tile]')]
                .find((t) => t.dataset.identity === a.identity);
            const v = Number(tile?.querySelector('[data-testid=level]').getAttribute('aria-valuenow'));
            return tile && {check} ? {{ v }} : null;  // an object: a level of 0 is an answer too
        }}""", arg={"identity": identity, "above": above, "below": below}, timeout=timeout).json_value()["v"]
