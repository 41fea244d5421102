#!/usr/bin/env bash
# The browser tests drive Debian's Chromium (Playwright's own download does not
# work here). Install it when we can; otherwise say in one line how.
set -euo pipefail
command -v chromium >/dev/null 2>&1 && exit 0
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing Debian's chromium for the browser tests…"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq chromium >/dev/null
  exit 0
fi
echo "make test needs Debian's Chromium for the browser tests: run 'sudo apt-get install chromium', then make test again." >&2
exit 2
