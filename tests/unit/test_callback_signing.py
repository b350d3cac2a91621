"""Callback signatures, and bodies fitted to their byte limit."""

from __future__ import annotations

import json

from baton.v1 import execution_pb2
from hypothesis import given
from hypothesis import strategies as st

from server.callbacks import delivery_id_of, signature_header, verify_signature
from server.callbacks._body import callback_body, encode

E = execution_pb2
SECRET = b"0123456789abcdef0123456789abcdef"
BODY = b'{"execution_id": "e1", "status": "EXECUTION_STATE_COMPLETED"}'
NOW = 1_700_000_000


def test_a_signature_verifies_with_the_same_secret_body_and_a_recent_timestamp() -> None:
    header = signature_header(SECRET, BODY, NOW)
    assert header.startswith(f"t={NOW},v1=") and len(header.rpartition("v1=")[2]) == 64
    assert verify_signature(SECRET, header, BODY, now=NOW + 10)
    assert verify_signature(SECRET, header, BODY, tolerance=300, now=NOW - 299)


def test_a_signature_fails_for_another_body_secret_or_an_old_timestamp() -> None:
    header = signature_header(SECRET, BODY, NOW)
    assert not verify_signature(SECRET, header, BODY + b" ", now=NOW)
    assert not verify_signature(b"another secret of enough bytes", header, BODY, now=NOW)
    assert not verify_signature(SECRET, header, BODY, tolerance=300, now=NOW + 301)
    # The timestamp is signed too: moving it breaks the signature.
    forged = header.replace(f"t={NOW}", f"t={NOW + 1000}")
    assert not verify_signature(SECRET, forged, BODY, now=NOW + 1000)


def test_any_of_several_signatures_may_match_while_a_secret_is_rotated() -> None:
    old = signature_header(b"the old secret, long enough", BODY, NOW).rpartition("v1=")[2]
    new = signature_header(SECRET, BODY, NOW)
    assert verify_signature(SECRET, f"{new},v1={old}", BODY, now=NOW)
    assert verify_signature(SECRET, f"t={NOW},v1={old},{new.partition(',')[2]}", BODY, now=NOW)


@given(st.text(max_size=200))
def test_verifying_a_malformed_header_answers_false_and_never_raises(header: str) -> None:
    assert verify_signature(SECRET, header, BODY, now=NOW) is False


def test_the_delivery_id_is_stable_per_execution_and_differs_between_executions() -> None:
    assert delivery_id_of("e1") == delivery_id_of("e1") != delivery_id_of("e2")


def _status_with_outputs(outputs: int, size: int) -> execution_pb2.ExecutionStatus:
    status = E.ExecutionStatus(execution_id="e1", status=E.EXECUTION_STATE_COMPLETED, user_id="u1")
    for i in range(outputs):
        status.results.intermediate_results[f"step{i}"] = {"text": "x" * size}
    return status


def test_a_small_status_is_sent_whole() -> None:
    status = _status_with_outputs(3, 100)
    body, abridged = callback_body(E.ExecutionStatus(status=status.status), 1024)
    assert not abridged and body == encode(E.ExecutionStatus(status=status.status))
    body, abridged = callback_body(status, 64 * 1024)
    assert not abridged and json.loads(body)["results"]["intermediate_results"]["step2"]["text"] == "x" * 100


def test_an_oversized_status_leaves_out_its_largest_outputs_and_names_them() -> None:
    status = _status_with_outputs(5, 300_000)
    status.results.intermediate_results["small"] = {"n": 1}
    body, abridged = callback_body(status, 256 * 1024)
    assert abridged and len(body) <= 256 * 1024
    sent = json.loads(body)
    omitted = sent["results"]["omitted_outputs"]
    assert {f"step{i}" for i in range(5)} <= set(omitted)
    assert all(int(size) > 300_000 for name, size in omitted.items() if name.startswith("step"))
    assert sent["results"]["intermediate_results"] == {"small": {"n": 1.0}}
    assert sent["execution_id"] == "e1" and sent["status"] == "EXECUTION_STATE_COMPLETED"


def test_a_status_too_large_even_without_outputs_is_cut_to_its_essentials() -> None:
    status = E.ExecutionStatus(execution_id="e1", status=E.EXECUTION_STATE_FAILED, failure_reason="r" * 5000)
    for i in range(3000):
        status.performance_metrics.step_timings.add(step_id=f"step-{i}", agent="analytics")
    body, abridged = callback_body(status, 4096)
    assert abridged and len(body) <= 4096
    sent = json.loads(body)
    assert sent["execution_id"] == "e1" and sent["status"] == "EXECUTION_STATE_FAILED"
    assert sent["failure_reason"] == "r" * 1024
