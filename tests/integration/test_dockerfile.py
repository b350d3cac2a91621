"""The Dockerfile, checked statically (no Docker engine runs here, so the image is never built):
what it copies exists and is everything the package needs, what it runs is baton's console
script with arguments baton accepts, and it runs as the non-root user the Helm chart expects."""

from __future__ import annotations

import fnmatch
import json
import shlex
import tomllib
from dataclasses import dataclass, field
from importlib import import_module
from pathlib import Path
from typing import Any

import pytest
import yaml

from server.cli._parser import build_parser
from server.config import ServerConfig

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Stage:
    """One FROM … stage: its base, name, and instructions in order (keyword, argument text)."""

    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [text for kw, text in self.instructions if kw == keyword]

    def last(self, keyword: str) -> str:
        found = self.all(keyword)
        assert found, f"stage {self.name or self.base} has no {keyword}"
        return found[-1]


def _instructions(text: str) -> list[tuple[str, str]]:
    """(KEYWORD, arguments) per instruction: continuation lines joined, comments dropped."""
    result: list[tuple[str, str]] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):  # Docker drops comment lines, even inside a continuation
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, rest = (pending + line).partition(" ")
        result.append((keyword.upper(), rest.strip()))
        pending = ""
    return result


def _stages() -> list[Stage]:
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for keyword, text in _instructions((ROOT / "Dockerfile").read_text()):
        if keyword == "ARG" and not stages:
            name, _, default = text.partition("=")
            args[name] = default
        elif keyword == "FROM":
            words = text.split()
            base = words[0]
            for name, value in args.items():
                base = base.replace("${" + name + "}", value).replace("$" + name, value)
            stages.append(Stage(base, words[2] if len(words) == 3 and words[1].upper() == "AS" else None))
        else:
            stages[-1].instructions.append((keyword, text))
    return stages


def _copies(stage: Stage) -> list[tuple[str | None, list[str]]]:
    """(the --from stage or None, the sources) of each COPY."""
    result = []
    for text in stage.all("COPY"):
        words = shlex.split(text)
        source = next((w.removeprefix("--from=") for w in words if w.startswith("--from=")), None)
        paths = [w for w in words if not w.startswith("--")]
        result.append((source, paths[:-1]))
    return result


def _pyproject() -> dict[str, Any]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_every_stage_builds_on_python_3_11_slim() -> None:
    stages = _stages()
    assert len(stages) >= 2, "expected a builder stage and a runtime stage"
    assert {s.base for s in stages} == {"python:3.11-slim"}


def test_every_copy_from_the_build_context_names_a_file_of_the_repository_not_ignored() -> None:
    ignored = [
        line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines() if line.strip() and line[0] != "#"
    ]
    copied = [path for stage in _stages() for source, paths in _copies(stage) if source is None for path in paths]
    assert copied
    for path in copied:
        assert ".." not in Path(path).parts
        assert (ROOT / path).exists(), f"COPY {path}: no such file in the repository"
        top = path.rstrip("/")
        assert not [p for p in ignored if fnmatch.fnmatch(top, p.rstrip("/"))], f"COPY {path} is in .dockerignore"


def test_the_runtime_stage_copies_only_the_builders_virtualenv() -> None:
    stages = _stages()
    names = {s.name for s in stages[:-1]}
    copies = _copies(stages[-1])
    assert copies == [("builder", ["/opt/venv"])]
    assert "builder" in names


def test_the_builder_copies_every_package_and_file_the_build_needs() -> None:
    # A package directory added to pyproject's find patterns but not copied would be missing
    # from the image, and nothing else would notice before it ran.
    project = _pyproject()
    find = project["tool"]["setuptools"]["packages"]["find"]
    needed = {"pyproject.toml", project["project"]["readme"]}
    for where in find["where"]:
        for directory in (ROOT / where).iterdir():
            # A top-level package setuptools finds: a directory of Python modules the include patterns match.
            if any(fnmatch.fnmatch(directory.name, pattern) for pattern in find["include"]) and any(
                directory.rglob("*.py")
            ):
                needed.add(str(directory.relative_to(ROOT)))
    builder = _stages()[0]
    copied = {p.rstrip("/") for source, paths in _copies(builder) if source is None for p in paths}
    missing = [n for n in needed if not any(Path(n) == Path(c) or Path(c) in Path(n).parents for c in copied)]
    assert not missing, f"the builder stage does not copy {missing}"


def test_the_entrypoint_is_batons_console_script() -> None:
    final = _stages()[-1]
    entrypoint = json.loads(final.last("ENTRYPOINT"))
    assert entrypoint == ["baton"]
    target = _pyproject()["project"]["scripts"]["baton"]
    module, _, function = target.partition(":")
    assert callable(getattr(import_module(module), function))


def test_the_default_command_serves_grpc_on_the_exposed_port() -> None:
    final = _stages()[-1]
    command = json.loads(final.last("CMD"))
    parsed = build_parser().parse_args(command)
    assert parsed.command == "serve"
    port = int(parsed.listen.rpartition(":")[2])
    assert parsed.listen.startswith("0.0.0.0:")
    assert parsed.plaintext  # plaintext off loopback must be asked for (server/tls.py)
    assert final.all("EXPOSE") == [str(port)]
    # The default SQLite store lives in the working directory, the one place the user may write.
    assert parsed.store == f"sqlite:///{final.last('WORKDIR')}/baton.db"
    # Listening on every address, the start-up check wants --auth said explicitly.
    ServerConfig(listen=parsed.listen, auth=parsed.auth or "")


def test_the_image_runs_as_the_non_root_user_the_chart_expects() -> None:
    final = _stages()[-1]
    user, _, group = final.last("USER").partition(":")
    # Numeric, so Kubernetes' runAsNonRoot can verify it without reading /etc/passwd.
    assert user.isdigit() and group.isdigit()
    assert int(user) > 0 and int(group) > 0
    keywords = [kw for kw, _ in final.instructions]
    assert keywords.index("USER") < keywords.index("ENTRYPOINT")
    values = yaml.safe_load((ROOT / "helm" / "baton" / "values.yaml").read_text())
    assert values["podSecurityContext"]["runAsUser"] == int(user)
    assert values["podSecurityContext"]["runAsGroup"] == int(group)
    assert values["orchestrator"]["port"] == int(final.last("EXPOSE"))


@pytest.mark.parametrize("keyword", ["HEALTHCHECK", "ADD"])
def test_the_image_uses_no_healthcheck_and_no_add(keyword: str) -> None:
    # Kubernetes ignores HEALTHCHECK (the chart probes grpc.health.v1); ADD can fetch URLs and unpack archives.
    assert not [kw for stage in _stages() for kw, _ in stage.instructions if kw == keyword]
