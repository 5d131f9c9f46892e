#!/usr/bin/env bash
# Installs Debian's prometheus and prometheus-alertmanager when missing: the collector's
# tests run against them (cli/tests/prometheus.rs, cli/tests/alerts.rs). Those tests say
# SKIPPED where the binaries are absent, and fail under CI=true, where they are expected.
# cli/tests/prometheus.rs also runs prometheus with --enable-feature=native-histograms,
# which needs 2.40 or later (Debian bookworm's is 2.42).
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
if [ -x /usr/bin/prometheus ]; then
    version=$(/usr/bin/prometheus --version 2>&1 | sed -n 's/^prometheus, version \([0-9]*\)\.\([0-9]*\).*/\1 \2/p')
    read -r major minor <<< "${version:-0 0}"
    if [ "$major" -lt 2 ] || { [ "$major" -eq 2 ] && [ "$minor" -lt 40 ]; }; then
        echo "prometheus older than 2.40: no native histograms; cli/tests/prometheus.rs will fail"
    fi
fi
for bin in prometheus prometheus-alertmanager; do
    if [ -x "/usr/bin/$bin" ]; then
        echo "$bin: $("/usr/bin/$bin" --version 2>&1 | head -1)"
    else
        echo "NOT INSTALLED: $bin; the tests that need it fail under CI=true and say SKIPPED elsewhere"
    fi
done
