#!/usr/bin/env bash
# Find or fetch promtool for `make rules` (`promtool check rules` / `promtool test rules`); prints
# what it does on stderr and the promtool path on stdout. In order:
#   1. PROMTOOL (a path), else promtool on PATH;
#   2. the cache, ~/.cache/avatar-farm/promtool-<version>/ (either kind below, once fetched);
#   3. Debian's prometheus package (bookworm: 2.42): `apt-get download` and its promtool binary
#      extracted into the cache, nothing installed (no daemon, no root; ~20 MB, seconds);
#   4. built from the Go module proxy (PROMTOOL_VERSION, a Prometheus 3.x module tag; go >= 1.25;
#      several minutes on 2 cores) where there is no apt.
set -euo pipefail
CACHE="${AVATAR_FARM_CACHE:-$HOME/.cache/avatar-farm}"
if [ -n "${PROMTOOL:-}" ]; then echo "$PROMTOOL"; exit 0; fi
if command -v promtool >/dev/null; then command -v promtool; exit 0; fi
for cached in "$CACHE"/promtool-*/promtool; do
  if [ -x "$cached" ]; then echo "promtool: using $cached" >&2; echo "$cached"; exit 0; fi
done
if command -v apt-get >/dev/null && command -v dpkg-deb >/dev/null; then
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  if (cd "$work" && apt-get download -q prometheus >&2 || { apt-get update -q >&2 && apt-get download -q prometheus >&2; }) 2>/dev/null; then
    deb=$(ls "$work"/prometheus_*.deb)
    version=$(dpkg-deb -f "$deb" Version | sed 's/[^A-Za-z0-9.+-]/_/g')
    dpkg-deb -x "$deb" "$work/x"
    mkdir -p "$CACHE/promtool-debian-$version"
    mv "$work/x/usr/bin/promtool" "$CACHE/promtool-debian-$version/promtool"
    echo "promtool: Debian's prometheus $version, extracted into $CACHE/promtool-debian-$version" >&2
    echo "$CACHE/promtool-debian-$version/promtool"
    exit 0
  fi
  echo "promtool: apt-get download prometheus failed; building it with Go" >&2
fi
VERSION="${PROMTOOL_VERSION:-v0.316.0}"
BIN="$CACHE/promtool-$VERSION"
command -v go >/dev/null || { echo "promtool: no apt and no 'go'; install Go >= 1.25 to build promtool, or set PROMTOOL" >&2; exit 1; }
mkdir -p "$BIN"
echo "promtool: building github.com/prometheus/prometheus/cmd/promtool@$VERSION into $BIN (several minutes)" >&2
GOBIN="$BIN" GOFLAGS=-buildvcs=false nice -n 15 go install >&2 "github.com/prometheus/prometheus/cmd/promtool@$VERSION"
echo "promtool: built $BIN/promtool" >&2
echo "$BIN/promtool"
