#!/usr/bin/env bash
# Renders the demo's HTML report in a real headless browser (Debian's chromium) and checks
# what a person would see: the rendered DOM holds the incidents and the SVG charts, and a
# screenshot is written (target/report-check/report.png) to look at.
set -euo pipefail
cd "$(dirname "$0")/.."
out=target/report-check
mkdir -p "$out"

browser=$(command -v chromium || command -v chromium-browser || true)
if [ -z "$browser" ]; then
    echo "installing Debian's chromium"
    sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
    for attempt in 1 2; do
        $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium > /dev/null && break
        echo "apt-get failed (attempt $attempt)"; sleep 10
    done
    browser=$(command -v chromium || true)
fi
if [ -z "$browser" ]; then
    # The package registry was unreachable: say so loudly rather than fail the build on it.
    echo "SKIPPED: chromium could not be installed; the HTML report was not rendered"
    exit 0
fi

# The demo logs ~12 s of traffic with an injected drift into ./modelwatch-data.
cargo run --release -q -p modelwatch-cli --example demo > "$out/demo.txt" 2>/dev/null
status=0
cargo run --release -q -p modelwatch-cli -- report --dir modelwatch-data --baseline-windows 2 \
    --html "$out/report.html" > "$out/report.txt" || status=$?
[ "$status" = 1 ] || { echo "report: expected incidents (exit 1), got exit $status"; exit 1; }

flags=(--headless --no-sandbox --disable-gpu --disable-quic --no-first-run
       --disable-background-networking --disable-component-update --disable-sync
       "--user-data-dir=$(mktemp -d)")
page="file://$PWD/$out/report.html"
timeout 120 "$browser" "${flags[@]}" --dump-dom "$page" > "$out/dom.html" 2>/dev/null
svgs=$(grep -o "<svg" "$out/dom.html" | wc -l)
incidents=$(grep -o '<tr class="open"\|<tr class="closed"' "$out/dom.html" | wc -l)
grep -q "distribution drift" "$out/dom.html" || { echo "no drift finding in the rendered page"; exit 1; }
grep -q "accuracy_drop" "$out/dom.html" || { echo "no accuracy drop in the rendered page"; exit 1; }
[ "$svgs" -ge 8 ] || { echo "only $svgs charts rendered"; exit 1; }
timeout 120 "$browser" "${flags[@]}" --window-size=1280,2600 --screenshot="$out/report.png" "$page" 2>/dev/null
size=$(stat -c %s "$out/report.png")
[ "$size" -gt 50000 ] || { echo "screenshot of $size bytes: nothing rendered?"; exit 1; }
echo "report page rendered by $("$browser" --version 2>/dev/null | head -1): $svgs charts, $incidents incidents, screenshot $out/report.png ($size bytes)"
