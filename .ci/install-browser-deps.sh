#!/usr/bin/env bash
# Installs Debian's headless-capable Chromium for the examples/browser end-to-end test, which drives
# it through playwright-core (no browser download). Idempotent: does nothing when it is present.
set -euo pipefail

if [ -x /usr/bin/chromium ]; then
  echo "chromium: $(/usr/bin/chromium --version 2>/dev/null || echo present) (already installed)"
  exit 0
fi

# CI runs as root; elsewhere fall back to sudo so a developer can run the same script.
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends chromium >/dev/null
echo "chromium: $(/usr/bin/chromium --version 2>/dev/null) installed"
