"""Regenerates generated/ (Python stubs and type stubs) from protos/; the only way to change it.

Run: python protos/generate.py          (rewrites generated/baton/v1/)
     python protos/generate.py --check  (exits 1 when generated/ differs from what protos/ gives)
"""

from __future__ import annotations

import argparse
import filecmp
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTOS = ROOT / "protos"
GENERATED = ROOT / "generated"


def generate(out: Path) -> None:
    """Runs protoc over every .proto under protos/baton/v1 into `out`."""
    # googleapis-common-protos ships google/api/*.proto in site-packages; grpc_tools does not.
    site_packages = sysconfig.get_paths()["purelib"]
    sources = sorted(str(p.relative_to(PROTOS)) for p in (PROTOS / "baton" / "v1").glob("*.proto"))
    out.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            f"-I{PROTOS}",
            f"-I{site_packages}",
            f"--python_out={out}",
            f"--pyi_out={out}",
            f"--grpc_python_out={out}",
            *sources,
        ],
        check=True,
        cwd=PROTOS,
    )


def differences(left: Path, right: Path) -> list[str]:
    """Lists the files that differ between two generated trees, relative to them."""
    names = {p.relative_to(left) for p in left.rglob("*") if p.is_file() and "__pycache__" not in p.parts}
    names |= {p.relative_to(right) for p in right.rglob("*") if p.is_file() and "__pycache__" not in p.parts}
    return sorted(
        str(n)
        for n in names
        if not (left / n).is_file() or not (right / n).is_file() or not filecmp.cmp(left / n, right / n, shallow=False)
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail when generated/ has drifted")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        fresh = Path(tmp) / "generated"
        generate(fresh)
        if args.check:
            drift = differences(fresh / "baton", GENERATED / "baton")
            if drift:
                print("generated/ drifted from protos/ (run python protos/generate.py):", *drift, sep="\n  ")
                return 1
            print("generated/ matches protos/")
            return 0
        shutil.rmtree(GENERATED / "baton", ignore_errors=True)
        shutil.copytree(fresh / "baton", GENERATED / "baton")
    print(f"regenerated {GENERATED / 'baton'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
