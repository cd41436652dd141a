#!/usr/bin/env bash
# Make the portal's browser tests runnable, then print two paths, one per line: Debian's
# chromium (CLOUDCTL_CHROMIUM) and axe-core's axe.min.js (CLOUDCTL_AXE).
#
# - chromium and a CJK font (the portal speaks Chinese first) come from Debian's packages;
#   Playwright drives that binary, it never downloads a browser of its own.
# - axe-core comes from the npm registry at the version pinned below, into .cache/ of the
#   worktree (ignored by git); the tests inject it into the pages they check.
set -euo pipefail
cd "$(dirname "$0")/.."

AXE_VERSION=4.14.1
AXE_PREFIX=.cache/npm-axe
CHROMIUM="${CLOUDCTL_CHROMIUM:-/usr/bin/chromium}"
AXE="$AXE_PREFIX/node_modules/axe-core/axe.min.js"

if [ ! -x "$CHROMIUM" ] || ! fc-list 2>/dev/null | grep -qi "wenquanyi"; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "ensure-browser: chromium or fonts-wqy-microhei missing and not root; apt-get install chromium fonts-wqy-microhei" >&2
        exit 1
    fi
    echo "ensure-browser: installing Debian's chromium and fonts-wqy-microhei" >&2
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        chromium fonts-wqy-microhei fontconfig >&2
fi
if [ ! -x "$CHROMIUM" ]; then
    echo "ensure-browser: $CHROMIUM still missing after the install" >&2
    exit 1
fi

installed=""
if [ -f "$AXE_PREFIX/node_modules/axe-core/package.json" ]; then
    installed=$(sed -n 's/^ *"version": *"\([^"]*\)".*/\1/p' "$AXE_PREFIX/node_modules/axe-core/package.json" | head -1)
fi
if [ "$installed" != "$AXE_VERSION" ]; then
    if ! command -v npm >/dev/null 2>&1; then
        if [ "$(id -u)" -ne 0 ]; then
            echo "ensure-browser: npm missing and not root; apt-get install npm" >&2
            exit 1
        fi
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends npm >&2
    fi
    echo "ensure-browser: installing axe-core $AXE_VERSION with npm" >&2
    mkdir -p "$AXE_PREFIX"
    npm install --silent --no-audit --no-fund --no-save --no-package-lock \
        --prefix "$AXE_PREFIX" "axe-core@$AXE_VERSION" >&2
fi
if [ ! -f "$AXE" ]; then
    echo "ensure-browser: $AXE missing after the npm install" >&2
    exit 1
fi
echo "$CHROMIUM"
echo "$(pwd)/$AXE"
