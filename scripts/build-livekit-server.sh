#!/usr/bin/env bash
# Build the e2e layer's real livekit-server from the Go module proxy into the cache (once; reused
# after), the same binary `farm livekit-server` finds or builds (farm/devtools/livekit_server.py holds
# the version). Needs no virtualenv, so `make test` builds it while pip installs. Skipped when
# LIVEKIT_URL names a server, LIVEKIT_SERVER_BIN names a binary or livekit-server is on PATH.
# Prints what it does on stderr and the binary's path on stdout.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -n "${LIVEKIT_URL:-}" ]; then echo "livekit-server: e2e against LIVEKIT_URL=$LIVEKIT_URL" >&2; exit 0; fi
if [ -n "${LIVEKIT_SERVER_BIN:-}" ]; then echo "$LIVEKIT_SERVER_BIN"; exit 0; fi
if command -v livekit-server >/dev/null; then command -v livekit-server; exit 0; fi
VERSION=$(sed -n 's/^LIVEKIT_SERVER_VERSION = "\(v[0-9.]*\)"$/\1/p' farm/devtools/livekit_server.py)
[ -n "$VERSION" ] || { echo "livekit-server: no LIVEKIT_SERVER_VERSION in farm/devtools/livekit_server.py" >&2; exit 1; }
BIN="${XDG_CACHE_HOME:-$HOME/.cache}/avatar-farm/livekit-server-$VERSION"
if [ -x "$BIN/livekit-server" ]; then
  echo "livekit-server: using $BIN/livekit-server" >&2
  echo "$BIN/livekit-server"
  exit 0
fi
command -v go >/dev/null || { echo "livekit-server: 'go' not found; install Go >= 1.26, or set LIVEKIT_SERVER_BIN" >&2; exit 1; }
mkdir -p "$BIN"
echo "livekit-server: building github.com/livekit/livekit-server/cmd/server@$VERSION into $BIN (first run: ~2 min)" >&2
GOBIN="$BIN" GOFLAGS=-buildvcs=false go install >&2 "github.com/livekit/livekit-server/cmd/server@$VERSION"
mv "$BIN/server" "$BIN/livekit-server"
echo "livekit-server: built $BIN/livekit-server" >&2
echo "$BIN/livekit-server"
