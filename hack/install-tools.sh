#!/usr/bin/env bash
# Installs the Go tools the Makefile uses (golangci-lint) into a cache
# outside the repository, from the Go module proxy, and prints their folder.
set -euo pipefail
GOLANGCI_LINT_VERSION=v2.15.0
CACHE=${MIRRORLET_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mirrorlet}
BIN="$CACHE/bin"
mkdir -p "$BIN"
if ! "$BIN/golangci-lint" version 2>/dev/null | grep -q "${GOLANGCI_LINT_VERSION#v}"; then
  echo "install-tools: building golangci-lint $GOLANGCI_LINT_VERSION" >&2
  GOBIN="$BIN" go install "github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$GOLANGCI_LINT_VERSION"
fi
echo "$BIN"
