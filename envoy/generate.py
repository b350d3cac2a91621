"""Writes Envoy configurations from a checkout: a shortcut for `python -m server.envoy` (see its help).

Run: python envoy/generate.py front --orchestrator 127.0.0.1:50051 --orchestrator 127.0.0.1:50052 --out /tmp/envoy
     python envoy/generate.py agents --agents agents.yaml --out /tmp/envoy
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "generated")]

from server.envoy.__main__ import main  # noqa: E402 (after the path is set)

if __name__ == "__main__":
    sys.exit(main())
