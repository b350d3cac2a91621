"""buf (from npm) guards the contract: lint with buf.yaml's rules and exceptions, no breaking change
against the released image, and both fail on the changes they exist to catch."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.e2e import buf_support

pytestmark = pytest.mark.timeout(300)


def _copy_of_the_protos(tmp_path: Path) -> Path:
    copy = tmp_path / "protos"
    shutil.copytree(buf_support.PROTOS / "baton", copy / "baton")
    return copy


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert text.count(old) == 1, f"{old!r} is not in {path.name} once: update the test"
    path.write_text(text.replace(old, new))


def test_buf_lint_passes_with_the_documented_exceptions() -> None:
    linted = buf_support.lint()
    assert linted.returncode == 0, linted.stdout + linted.stderr


def test_every_lint_exception_in_buf_yaml_silences_a_finding_and_no_finding_is_silenced_otherwise() -> None:
    excepted = {(rule, path) for rule, paths in buf_support.config()["lint"]["ignore_only"].items() for path in paths}
    # Exactly the findings the exceptions name: none stale, none missing (lint passing shows the latter too).
    assert buf_support.findings_without_exceptions() == excepted


def test_buf_breaking_finds_no_breaking_change_against_the_released_contract() -> None:
    assert buf_support.RELEASED.is_file(), "protos/released/baton-v1.binpb is missing"
    checked = buf_support.breaking()
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_buf_breaking_fails_on_a_renumbered_field_and_a_removed_one_naming_both(tmp_path: Path) -> None:
    protos = _copy_of_the_protos(tmp_path)
    orchestrator = protos / "baton" / "v1" / "orchestrator.proto"
    _edit(
        orchestrator,
        "  string request_id = 5;\n  // An explicit plan",
        "  string request_id = 15;\n  // An explicit plan",
    )
    _edit(
        orchestrator,
        "  // False when request_id matched an earlier execution, which is returned instead.\n  bool created = 4;\n",
        "",
    )
    checked = buf_support.breaking(protos)
    assert checked.returncode != 0, "buf breaking accepted a renumbered and a removed field"
    assert 'field "5" with name "request_id" on message "ExecuteWorkflowRequest"' in checked.stdout, checked.stdout
    assert 'field "4" with name "created" on message "Execution"' in checked.stdout, checked.stdout
    # The renumbered field is still well-formed: lint has nothing to say, only breaking catches it.
    assert buf_support.lint(protos).returncode == 0


def test_an_additive_change_passes_both_lint_and_breaking(tmp_path: Path) -> None:
    protos = _copy_of_the_protos(tmp_path)
    _edit(
        protos / "baton" / "v1" / "orchestrator.proto",
        "  bool created = 4;\n}",
        "  bool created = 4;\n  // A new field, documented, with a new number.\n  string note = 5;\n}",
    )
    linted, checked = buf_support.lint(protos), buf_support.breaking(protos)
    assert linted.returncode == 0, linted.stdout + linted.stderr
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_buf_lint_fails_on_an_undocumented_field_and_on_a_new_service_the_exceptions_do_not_name(
    tmp_path: Path,
) -> None:
    protos = _copy_of_the_protos(tmp_path)
    _edit(
        protos / "baton" / "v1" / "orchestrator.proto",
        "  bool created = 4;\n}",
        "  bool created = 4;\n  string note = 5;\n}",
    )
    (protos / "baton" / "v1" / "extras.proto").write_text(
        'syntax = "proto3";\n\npackage baton.v1;\n\n'
        "// Extras is a new service.\nservice Extras {\n  // Does it.\n  rpc Do(DoRequest) returns (DoResponse);\n}\n\n"
        "// DoRequest asks.\nmessage DoRequest {}\n\n// DoResponse answers.\nmessage DoResponse {}\n"
    )
    linted = buf_support.lint(protos)
    assert linted.returncode != 0
    assert "protos/baton/v1/orchestrator.proto:" in linted.stdout and 'Field "note"' in linted.stdout, linted.stdout
    assert 'protos/baton/v1/extras.proto:6:9:Service name "Extras" should be suffixed with "Service"' in linted.stdout
