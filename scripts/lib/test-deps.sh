#!/usr/bin/env bash
# Installs what the tests need, on top of scripts/lib/build-deps.sh: Chromium (headless page
# tests), Python tools in ./.venv (pinned in tests/e2e/requirements.txt), SIP.js for browser
# peers (tests/e2e/package-lock.json), cargo-nextest, cargo-fuzz.
# Installs only what is missing; safe to run again.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
source scripts/lib/build-deps.sh

# Test peers: sipp (sip-tester) and baresip drive the SIP tests. The media tests also make their
# audio (espeak-ng, sox with its codec formats), capture on lo (tshark brings dumpcap; its debconf
# question takes the default under DEBIAN_FRONTEND=noninteractive) and build pesq (gcc).
# rtpengine (userspace only) is the SBC's media relay and the G.729 peer (it links bcg729);
# libbcg729-dev builds SIPx's own G.729 (the g729 feature) for that test. dnsmasq (the binary
# alone) is the name server that publishes providers' SRV records (RFC 3263 tests).
apt_install chromium python3 python3-venv python3-dev sip-tester baresip-core kamailio linphone-cli openssl \
  sox libsox-fmt-all espeak-ng tshark rtpengine-daemon libbcg729-dev dnsmasq-base

if [ ! -x .venv/bin/python ]; then
  echo "==> creating .venv"
  python3 -m venv .venv
fi
stamp=.venv/.requirements.sha256
want=$(sha256sum tests/e2e/requirements.txt | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "==> installing Python test tools into .venv"
  .venv/bin/pip install -q --disable-pip-version-check -r tests/e2e/requirements.txt
  echo "$want" > "$stamp"
fi

# Browser-side peers (SIP.js) for the Chromium tests, pinned in tests/e2e/package-lock.json.
command -v npm >/dev/null || apt_install nodejs npm
stamp=tests/e2e/node_modules/.lock.sha256
want=$(sha256sum tests/e2e/package-lock.json | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "==> installing browser test peers into tests/e2e/node_modules"
  (cd tests/e2e && npm ci --no-audit --no-fund --loglevel=error)
  echo "$want" > "$stamp"
fi

if ! cargo nextest --version >/dev/null 2>&1; then
  echo "==> installing cargo-nextest"
  cargo install --locked cargo-nextest
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "==> installing cargo-fuzz"
  cargo install --locked cargo-fuzz
fi
