#!/usr/bin/env bash
# Installs a Vulkan driver that gives Dawn (the `webgpu` npm package) a real adapter on machines
# without a GPU: Mesa's CPU driver lavapipe. It comes from bookworm-backports because the bookworm
# build lacks a Vulkan feature Dawn requires. Idempotent, quiet and non-interactive: safe to rerun.
set -euo pipefail

export DEBIAN_FRONTEND=noninteractive
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

# Already installed from backports with a loader present: nothing to do.
if dpkg-query -W -f='${Version}' mesa-vulkan-drivers 2>/dev/null | grep -q 'bpo' &&
  dpkg-query -W -f='${Status}' libvulkan1 2>/dev/null | grep -q 'ok installed'; then
  exit 0
fi

# Reuse the Debian mirror that the system's own apt sources already name.
mirror="$(grep -rhE --include='*.list' --include='*.sources' '^[[:space:]]*(URIs:|deb )' /etc/apt/sources.list /etc/apt/sources.list.d/ 2>/dev/null |
  grep -oE 'https?://[^ ]+/debian/?( |$)' | head -n 1 | tr -d ' ' || true)"
mirror="${mirror%/}"
if [ -z "$mirror" ]; then
  echo "install-webgpu-deps: no Debian mirror found in the apt sources" >&2
  exit 1
fi

if ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
  $SUDO tee /etc/apt/sources.list.d/bookworm-backports.sources >/dev/null <<SOURCES
Types: deb
URIs: ${mirror}
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SOURCES
fi

# Quiet unless something fails: then the whole apt log is shown.
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
if ! { $SUDO apt-get update -qq && $SUDO apt-get install -y -qq -o=Dpkg::Use-Pty=0 \
  -t bookworm-backports mesa-vulkan-drivers libvulkan1; } >"$log" 2>&1; then
  cat "$log" >&2
  echo "install-webgpu-deps: installing lavapipe from bookworm-backports failed" >&2
  exit 1
fi
