#!/usr/bin/env bash
# Build promtool from the Go module proxy into ~/.cache/avatar-farm/ (once; reused after).
# `make test` (target `rules`) calls this before `promtool check rules` / `promtool test rules`.
# Prints what it does on stderr and the promtool path on stdout.
set -euo pipefail
VERSION="${PROMTOOL_VERSION:-v0.316.0}"   # Prometheus 3.x module tag; builds with go >= 1.25
CACHE="${AVATAR_FARM_CACHE:-$HOME/.cache/avatar-farm}"
BIN="$CACHE/promtool-$VERSION"
if [ -x "$BIN/promtool" ]; then
  echo "promtool: using $BIN/promtool" >&2
  echo "$BIN/promtool"
  exit 0
fi
command -v go >/dev/null || { echo "promtool: 'go' not found; install Go >= 1.25 to build promtool" >&2; exit 1; }
mkdir -p "$BIN"
echo "promtool: building github.com/prometheus/prometheus/cmd/promtool@$VERSION into $BIN (first run: several minutes)" >&2
GOBIN="$BIN" GOFLAGS=-buildvcs=false nice -n 15 go install >&2 "github.com/prometheus/prometheus/cmd/promtool@$VERSION"
echo "promtool: built $BIN/promtool" >&2
echo "$BIN/promtool"
