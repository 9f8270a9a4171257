#!/usr/bin/env bash
# Headless Chromium (Debian's package) for the kpool-cli HTML report test,
# which opens the report in a real browser and checks the charts were drawn.
set -euo pipefail
if [ ! -x /usr/bin/chromium ]; then
  echo "installing chromium"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium
fi
/usr/bin/chromium --version
