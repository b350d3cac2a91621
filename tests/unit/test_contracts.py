"""The contracts: generated/ is what protos/ gives, and every element of every proto is documented."""

from __future__ import annotations

import subprocess
import sys
import sysconfig
from pathlib import Path

from google.protobuf import descriptor_pb2

ROOT = Path(__file__).resolve().parents[2]
PROTOS = ROOT / "protos"


def test_generated_code_matches_the_protos() -> None:
    result = subprocess.run(
        [sys.executable, str(PROTOS / "generate.py"), "--check"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _descriptor_set(tmp_path: Path) -> descriptor_pb2.FileDescriptorSet:
    out = tmp_path / "baton.pb"
    sources = sorted(str(p.relative_to(PROTOS)) for p in (PROTOS / "baton" / "v1").glob("*.proto"))
    subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            f"-I{PROTOS}",
            f"-I{sysconfig.get_paths()['purelib']}",
            "--include_source_info",
            f"--descriptor_set_out={out}",
            *sources,
        ],
        check=True,
        cwd=PROTOS,
        timeout=120,
    )
    return descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())


def test_every_message_field_enum_value_and_rpc_has_a_comment(tmp_path: Path) -> None:
    undocumented = []
    for file in _descriptor_set(tmp_path).file:
        comments = {tuple(loc.path): loc.leading_comments.strip() for loc in file.source_code_info.location}

        def check(path: tuple[int, ...], name: str, file_name: str = file.name, known: dict = comments) -> None:  # type: ignore[type-arg]
            if not known.get(path):
                undocumented.append(f"{file_name}: {name}")

        for m_index, message in enumerate(file.message_type):
            check((4, m_index), message.name)
            for f_index, field in enumerate(message.field):
                check((4, m_index, 2, f_index), f"{message.name}.{field.name}")
        for e_index, enum in enumerate(file.enum_type):
            check((5, e_index), enum.name)
            for v_index, value in enumerate(enum.value):
                check((5, e_index, 2, v_index), f"{enum.name}.{value.name}")
        for s_index, service in enumerate(file.service):
            check((6, s_index), service.name)
            for r_index, method in enumerate(service.method):
                check((6, s_index, 2, r_index), f"{service.name}.{method.name}")
    assert undocumented == []


def test_every_enum_starts_with_a_prefixed_unspecified_zero(tmp_path: Path) -> None:
    import re

    for file in _descriptor_set(tmp_path).file:
        for enum in file.enum_type:
            prefix = re.sub(r"(?<!^)(?=[A-Z])", "_", enum.name).upper()
            assert enum.value[0].number == 0 and enum.value[0].name == f"{prefix}_UNSPECIFIED", enum.name
            assert all(v.name.startswith(prefix + "_") for v in enum.value), enum.name
