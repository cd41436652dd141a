#!/usr/bin/env bash
# Make Debian's prometheus package (prometheus + promtool) present, then print the paths of
# promtool and prometheus, one per line, for the observability tests (CLOUDCTL_PROMTOOL,
# CLOUDCTL_PROMETHEUS). Installing never leaves a prometheus service running: a temporary
# policy-rc.d refuses service starts during the install, and a daemon started anyway is stopped,
# so nothing keeps port 9090 and the tests start their own Prometheus on a free loopback port.
set -euo pipefail

find_tools() {
    PROMTOOL="${CLOUDCTL_PROMTOOL:-$(command -v promtool || true)}"
    PROMETHEUS="${CLOUDCTL_PROMETHEUS:-$(command -v prometheus || true)}"
}

find_tools
if [ -z "$PROMTOOL" ] || [ -z "$PROMETHEUS" ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "ensure-prometheus: promtool/prometheus missing and not root; apt-get install prometheus" >&2
        exit 1
    fi
    policy=/usr/sbin/policy-rc.d
    backup=""
    if [ -e "$policy" ]; then
        backup="$(mktemp)"
        cp -p "$policy" "$backup"
    fi
    restore_policy() {
        if [ -n "$backup" ]; then mv -f "$backup" "$policy"; else rm -f "$policy"; fi
    }
    trap restore_policy EXIT
    printf '#!/bin/sh\n# ensure-prometheus.sh: no service starts during the install\nexit 101\n' >"$policy"
    chmod 755 "$policy"
    echo "ensure-prometheus: installing Debian's prometheus package" >&2
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >&2
    restore_policy
    trap - EXIT
    # Belt and braces: a package whose service started anyway must not hold port 9090.
    if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet prometheus 2>/dev/null; then
        systemctl stop prometheus >&2 || true
    fi
    if [ -x /etc/init.d/prometheus ]; then
        /etc/init.d/prometheus stop >/dev/null 2>&1 || true
    fi
    find_tools
fi

if [ -z "$PROMTOOL" ] || [ -z "$PROMETHEUS" ]; then
    echo "ensure-prometheus: promtool or prometheus still missing after the install" >&2
    exit 1
fi
echo "$PROMTOOL"
echo "$PROMETHEUS"
