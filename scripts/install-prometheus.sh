#!/usr/bin/env bash
# Installs Debian's prometheus and prometheus-alertmanager when missing: the collector's
# tests run against them (cli/tests/prometheus.rs, cli/tests/alerts.rs). Those tests say
# SKIPPED where the binaries are absent, and fail under CI=true, where they are expected.
set -euo pipefail
missing=()
[ -x /usr/bin/prometheus ] || missing+=(prometheus)
[ -x /usr/bin/prometheus-alertmanager ] || missing+=(prometheus-alertmanager)
if [ ${#missing[@]} -gt 0 ]; then
    echo "installing Debian's ${missing[*]}"
    sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
    for attempt in 1 2; do
        # The packages' services are not needed (the tests start their own on loopback).
        $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq \
            --no-install-recommends "${missing[@]}" > /dev/null && break
        echo "apt-get failed (attempt $attempt)"; sleep 10
    done
fi
for bin in prometheus prometheus-alertmanager; do
    if [ -x "/usr/bin/$bin" ]; then
        echo "$bin: $("/usr/bin/$bin" --version 2>&1 | head -1)"
    else
        echo "NOT INSTALLED: $bin; the tests that need it fail under CI=true and say SKIPPED elsewhere"
    fi
done
