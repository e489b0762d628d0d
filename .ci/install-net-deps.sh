#!/usr/bin/env bash
# Tools the network tests use from outside the code under test: openssl makes a throwaway TLS
# certificate, iproute2 (`ip netns`, veth, `tc`) puts workers on hosts of their own and slows their
# links, nftables drops their packets (all, some, or those to one address). Idempotent.
set -euo pipefail
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
missing=()
command -v openssl >/dev/null || missing+=(openssl)
command -v ip >/dev/null || missing+=(iproute2)
command -v nft >/dev/null || missing+=(nftables)
if [ "${#missing[@]}" -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
echo "net test tools: $(openssl version), $(ip -V), $(nft --version)"
