#!/usr/bin/env bash
# Install Debian's Chromium for the dashboard's browser tests (idempotent; never a browser
# download: Playwright drives /usr/bin/chromium through executable_path).
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "install-chromium: not root; run: sudo apt-get install -y chromium" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq chromium >/dev/null
chromium --version
