#!/usr/bin/env bash
# Chromium and its WebDriver for squall's browser tests, CI and local runs: Debian's
# `chromium` and `chromium-driver` packages, installed when missing (apt-get, as root or
# with sudo). Prints where they are:
#
#   scripts/chromium-up.sh     CHROMIUM=/usr/bin/chromium and CHROMEDRIVER=/usr/bin/chromedriver
#
# Environment: SQUALL_CHROMIUM, SQUALL_CHROMEDRIVER (use these binaries instead).
set -euo pipefail

chromium=${SQUALL_CHROMIUM:-$(command -v chromium || true)}
driver=${SQUALL_CHROMEDRIVER:-$(command -v chromedriver || true)}
if [ -z "$chromium" ] || [ -z "$driver" ]; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO=sudo
  echo "installing chromium and chromium-driver" >&2
  $SUDO apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium chromium-driver >&2
  chromium=$(command -v chromium)
  driver=$(command -v chromedriver)
fi
echo "CHROMIUM=$chromium"
echo "CHROMEDRIVER=$driver"
