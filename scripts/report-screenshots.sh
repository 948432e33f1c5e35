#!/usr/bin/env bash
# Renders harness pages to PNG in headless Chromium, to look at them as a person would.
#
#   scripts/report-screenshots.sh results/latest [more run folders or .html files...]
#
# Each page is written next to it as index.png (or <name>.png). Installs Debian's chromium
# package when it is missing (needs root and the package registry). Chromium runs with no
# network access of its own (the pages fetch nothing anyway).
set -euo pipefail
if [ $# -eq 0 ]; then
    echo "usage: $0 RUN_DIR_OR_HTML..." >&2
    exit 254
fi
browser=$(command -v chromium || command -v chromium-browser || true)
if [ -z "$browser" ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "chromium is not installed; as root: apt-get update && apt-get install -y chromium" >&2
        exit 255
    fi
    echo "installing chromium (Debian package)..." >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
    browser=$(command -v chromium)
fi
profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
for target in "$@"; do
    page="$target"
    [ -d "$target" ] && page="$target/index.html"
    if [ ! -f "$page" ]; then
        echo "$page: no such page (render it with: harness report $target)" >&2
        exit 254
    fi
    png="${page%.html}.png"
    # Tall enough for the whole page; the screenshot is cut at the window's height.
    "$browser" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
        --disable-background-networking --disable-component-update --disable-sync \
        --hide-scrollbars --user-data-dir="$profile" --window-size=1040,${REPORT_SHOT_HEIGHT:-4200} \
        --screenshot="$(realpath -m "$png")" "file://$(realpath "$page")" 2>/dev/null
    echo "$png"
done
