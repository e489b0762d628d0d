#!/usr/bin/env bash
# What backend-native builds against at install (`npm ci` runs its node-gyp build): a C++
# compiler and make (on the machine already), and OpenBLAS's and oneDNN's (2.x) headers and
# libraries from Debian.
# Without them the install still succeeds and the native device says why it is unavailable; CI
# installs them so the native device is built and tested. Idempotent.
set -euo pipefail
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
if ! dpkg -s libopenblas-dev libdnnl-dev >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends libopenblas-dev libdnnl-dev >/dev/null
fi
echo "native build deps: OpenBLAS $(dpkg -s libopenblas-dev | sed -n 's/^Version: //p'), oneDNN $(dpkg -s libdnnl-dev | sed -n 's/^Version: //p'), $(g++ --version | head -1)"
