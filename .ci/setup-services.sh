#!/usr/bin/env bash
# Installs what the test suite needs outside npm: headless Chromium for the
# browser test of the chat example. A no-op when it is already there.
set -euo pipefail
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "setup-services: chromium is missing and this user cannot apt-get install it" >&2
  fi
fi
