#!/usr/bin/env bash
# Installs what building SIPx needs on Debian 12: system packages (through apt, as root or via
# sudo) and the Rust toolchain (through rustup, when cargo is missing). Installs only what is
# missing, so running it again is cheap and changes nothing.
set -euo pipefail

# Debian packages the build needs: libopus-dev for the Opus codec (linked, not bundled).
BUILD_PACKAGES=(build-essential pkg-config ca-certificates curl git libopus-dev)

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    echo "error: need root (or sudo) to run: $*" >&2; exit 1; fi
}

apt_install() {
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "==> installing Debian packages: ${missing[*]}"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
  fi
}

apt_install "${BUILD_PACKAGES[@]}"

if ! command -v cargo >/dev/null; then
  [ -x "$HOME/.cargo/bin/cargo" ] || {
    echo "==> installing the Rust toolchain with rustup"
    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal \
      --component rustfmt,clippy
  }
fi
