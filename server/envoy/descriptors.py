"""The descriptor set Envoy's gRPC-JSON transcoder reads, built from the generated code, not protoc.

The generated `baton.v1.*_pb2` modules embed each .proto file's descriptor exactly as protoc
compiled it from protos/ (options such as google.api.http included; `protos/generate.py --check`
keeps them equal to protos/). Serializing those, with every file they import, gives what
`protoc --include_imports --descriptor_set_out` gives, without needing grpcio-tools or the
.proto files at run time: `baton serve --http` works from an installed package.

Every baton.v1 file is included, not only the transcoded services' closure: step outputs travel
in google.protobuf.Any values (ExecutionEvent.output) whose types live in the agents' files, and
the transcoder can print an Any only when its type is in the set.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterable

import baton.v1
from google.protobuf import descriptor_pb2
from google.protobuf.descriptor import FileDescriptor


def baton_files() -> list[FileDescriptor]:
    """Every file of the baton.v1 package, sorted by name."""
    files = []
    for module in pkgutil.iter_modules(baton.v1.__path__):
        if module.name.endswith("_pb2"):
            files.append(importlib.import_module(f"baton.v1.{module.name}").DESCRIPTOR)
    return sorted(files, key=lambda f: f.name)


def _with_imports(roots: Iterable[FileDescriptor]) -> list[FileDescriptor]:
    """The roots and every file they import, each after its imports (the order protoc writes)."""
    ordered: list[FileDescriptor] = []
    seen: set[str] = set()

    def visit(file: FileDescriptor) -> None:
        if file.name in seen:
            return
        seen.add(file.name)
        for dependency in file.dependencies:
            visit(dependency)
        ordered.append(file)

    for root in roots:
        visit(root)
    return ordered


def descriptor_set() -> descriptor_pb2.FileDescriptorSet:
    """The FileDescriptorSet of every baton.v1 file and everything it imports."""
    result = descriptor_pb2.FileDescriptorSet()
    for file in _with_imports(baton_files()):
        result.file.add().MergeFromString(file.serialized_pb)
    return result


def descriptor_set_bytes() -> bytes:
    """descriptor_set(), serialized deterministically (the same code gives the same bytes)."""
    return descriptor_set().SerializeToString(deterministic=True)
