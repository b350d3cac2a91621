#!/usr/bin/env bash
# The whole test suite from a fresh clone: installs what it needs, then checks and tests everything.
set -euo pipefail
cd "$(dirname "$0")/.."

python="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$python" -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[dev]'

# Debian packages, installed once when missing: Chromium for the web view's browser tests
# (Playwright cannot download its own here), node and npm for the Node.js client and buf.
missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# Local services the suite may use: start them when installed but not running.
if command -v pg_ctlcluster >/dev/null 2>&1 && ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n 1)" main start || true
fi

# The Node.js client's tests and buf (tests/e2e/node): the committed package-lock.json, installed
# again only when it changed since the last install.
if [ ! tests/e2e/node/node_modules/.package-lock.json -nt tests/e2e/node/package-lock.json ]; then
  (cd tests/e2e/node && npm ci --no-audit --no-fund --loglevel=error)
fi

echo "== generated code matches protos/"
.venv/bin/python protos/generate.py --check
echo "== ruff"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
echo "== mypy (server/, agents_clients/)"
.venv/bin/mypy server agents_clients
echo "== pytest"
# On as many workers as the machine has cores, at most BATON_TEST_WORKERS (default 2: CI's machine).
workers="${BATON_TEST_WORKERS:-2}"
cores="$(nproc 2>/dev/null || echo 1)"
[ "$cores" -lt "$workers" ] && workers="$cores"
.venv/bin/python -m pytest -q -n "$workers" "$@"
