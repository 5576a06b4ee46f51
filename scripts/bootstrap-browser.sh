#!/usr/bin/env bash
# Installs Debian's Chromium for the console's browser tests (tests/e2e/), only when missing.
# Playwright drives it through its executable path; `playwright install` is never run: it
# downloads a browser build of its own, which this project does not use. Safe to run again;
# needs root (or sudo) only when Chromium must be installed.
set -euo pipefail

if command -v chromium >/dev/null 2>&1; then
  exit 0
fi

echo "bootstrap-browser: installing chromium"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 || { echo "bootstrap-browser: need root or sudo to install chromium" >&2; exit 1; }
  SUDO=sudo
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
echo "bootstrap-browser: $(chromium --version 2>/dev/null || echo 'chromium installed')"
