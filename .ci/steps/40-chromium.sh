#!/usr/bin/env bash
# Headless Chromium (Debian's package) for the kpool-cli HTML report test,
# which opens a report in a real browser and checks its charts were drawn.
# .ci/run runs these steps after the main test step, where the test skips
# when Chromium is missing, so this step installs it and then runs the
# browser test again, now required to find Chromium.
set -euo pipefail
cd "$(dirname "$0")/../.."
if [ ! -x /usr/bin/chromium ]; then
  echo "installing chromium"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium
fi
/usr/bin/chromium --version
KPOOL_REQUIRE_CHROMIUM=1 cargo test -p kpool-cli --locked --test html
