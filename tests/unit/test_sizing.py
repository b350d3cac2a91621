"""Fitting statuses and updates into the message budget: largest outputs named, not sent."""

from __future__ import annotations

from baton.v1 import execution_pb2, orchestrator_pb2
from google.protobuf import any_pb2

from server.api.sizing import fit_status, fit_update, message_budget

E = execution_pb2
KIB = 1024


def status_with(primary: dict[str, int], intermediate: dict[str, int] | None = None) -> execution_pb2.ExecutionStatus:
    """A status whose outputs are {"text": "x" * size} for each step."""
    status = E.ExecutionStatus(execution_id="x1", status=E.EXECUTION_STATE_COMPLETED)
    status.results.primary_outputs.update({step: {"text": "x" * size} for step, size in primary.items()})
    status.results.intermediate_results.update(
        {step: {"text": "x" * size} for step, size in (intermediate or {}).items()}
    )
    status.results.recommendations.append("apply early")
    return status


def test_the_budget_is_the_smaller_limit_less_room_for_the_envelope() -> None:
    assert message_budget(8 * 1024 * KIB) == 4 * 1024 * KIB - 64 * KIB
    assert message_budget(1024 * KIB) == 1024 * KIB - 64 * KIB
    assert message_budget(64 * KIB) == 56 * KIB


def test_a_status_within_budget_is_left_whole() -> None:
    status = status_with({"a": 10 * KIB}, {"b": 10 * KIB})
    before = status.SerializeToString()

    assert fit_status(status, 64 * KIB) is status
    assert status.SerializeToString() == before


def test_the_largest_outputs_are_omitted_first_until_the_status_fits() -> None:
    status = status_with({"small": 5 * KIB, "huge": 60 * KIB}, {"big": 30 * KIB, "medium": 20 * KIB})
    sizes = {
        step: value.ByteSize()
        for holder in (status.results.primary_outputs, status.results.intermediate_results)
        for step, value in holder.fields.items()
    }

    fit_status(status, 40 * KIB)

    assert status.ByteSize() <= 40 * KIB
    assert dict(status.results.omitted_outputs) == {"huge": sizes["huge"], "big": sizes["big"]}
    assert set(status.results.primary_outputs.fields) == {"small"}
    assert set(status.results.intermediate_results.fields) == {"medium"}
    assert list(status.results.recommendations) == ["apply early"]


def test_when_outputs_are_not_enough_error_messages_are_shortened_then_recovered_errors_dropped() -> None:
    status = status_with({"a": 1 * KIB})
    summary = status.error_summary
    for index in range(40):
        summary.error_details.add(step_id=f"s{index}", error_message="e" * 4 * KIB, impact=E.IMPACT_LOW)
    summary.error_details.add(step_id="fatal", error_message="f" * 4 * KIB, impact=E.IMPACT_CRITICAL)
    summary.total_errors = 41

    fit_status(status, 20 * KIB)

    assert status.ByteSize() <= 20 * KIB
    assert list(status.results.omitted_outputs) == ["a"]
    assert list(status.results.recommendations) == []
    details = status.error_summary.error_details
    assert details[-1].step_id == "fatal"
    assert details[-1].error_message == "f" * 1024 + "…"
    assert details[0].step_id != "s0"
    assert status.error_summary.total_errors == 41


def test_an_update_whose_event_carries_a_huge_output_gets_a_copy_without_it() -> None:
    event = E.ExecutionEvent(sequence=7)
    event.step_succeeded.step_id = "search"
    event.step_succeeded.output.CopyFrom(any_pb2.Any(type_url="type.googleapis.com/x", value=b"j" * 100 * KIB))
    update = orchestrator_pb2.ExecutionUpdate(sequence=7, event=event, status=status_with({}))

    fit_update(update, 64 * KIB)

    assert update.ByteSize() <= 64 * KIB
    assert not update.event.step_succeeded.HasField("output")
    assert update.event.step_succeeded.step_id == "search"
    assert dict(update.status.results.omitted_outputs) == {"search": event.step_succeeded.output.ByteSize()}
    assert event.step_succeeded.HasField("output")  # the shared event is untouched


def test_an_update_whose_map_item_carries_a_huge_output_gets_a_copy_without_it() -> None:
    event = E.ExecutionEvent(sequence=7)
    event.step_item_succeeded.step_id, event.step_item_succeeded.item = "submit", 4
    event.step_item_succeeded.output.CopyFrom(any_pb2.Any(type_url="type.googleapis.com/x", value=b"j" * 100 * KIB))
    update = orchestrator_pb2.ExecutionUpdate(sequence=7, event=event, status=status_with({}))

    fit_update(update, 64 * KIB)

    assert update.ByteSize() <= 64 * KIB
    assert not update.event.step_item_succeeded.HasField("output")
    assert update.event.step_item_succeeded.item == 4
    assert dict(update.status.results.omitted_outputs) == {"submit": event.step_item_succeeded.output.ByteSize()}


def test_an_update_that_fits_keeps_its_event_output() -> None:
    event = E.ExecutionEvent(sequence=7)
    event.step_succeeded.step_id = "search"
    event.step_succeeded.output.CopyFrom(any_pb2.Any(type_url="type.googleapis.com/x", value=b"j" * KIB))
    update = orchestrator_pb2.ExecutionUpdate(sequence=7, event=event, status=status_with({"search": KIB}))

    fit_update(update, 64 * KIB)

    assert update.event == event
    assert not update.status.results.omitted_outputs


def test_a_terminal_update_sheds_status_outputs_and_keeps_its_small_event() -> None:
    event = E.ExecutionEvent(sequence=9)
    event.execution_completed.SetInParent()
    update = orchestrator_pb2.ExecutionUpdate(
        sequence=9, event=event, status=status_with({f"s{i}": 10 * KIB for i in range(10)})
    )

    fit_update(update, 64 * KIB)

    assert update.ByteSize() <= 64 * KIB
    assert update.event == event
    assert len(update.status.results.omitted_outputs) >= 4


def test_an_update_is_measured_exactly_only_when_its_execution_could_come_near_the_limit() -> None:
    from server.api.sizing import ENVELOPE_BYTES, surely_fits

    budget = 4 * 1024 * 1024 - ENVELOPE_BYTES
    assert surely_fits(6_000, 5, budget)  # an ordinary journey: no exact measure needed
    assert not surely_fits(budget // 8, 5, budget)  # outputs that could grow past the limit
    assert not surely_fits(0, budget // 2048, budget)  # so many steps their reports could


def test_an_update_without_a_status_sheds_its_event_output_and_makes_up_no_status() -> None:
    # WATCH_VIEW_EVENTS: most updates carry no status; one must not appear with only the omission.
    update = orchestrator_pb2.ExecutionUpdate(sequence=3)
    output = any_pb2.Any(type_url="type.googleapis.com/google.protobuf.StringValue", value=b"x" * 100 * KIB)
    update.event.step_succeeded.step_id = "A"
    update.event.step_succeeded.output.CopyFrom(output)
    fitted = fit_update(update, 64 * KIB)
    assert not fitted.HasField("status")
    assert not fitted.event.step_succeeded.HasField("output")
    assert fitted.ByteSize() <= 64 * KIB
