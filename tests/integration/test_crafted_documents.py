"""Documents crafted against DocumentIntelligence's patterns are read in linear time, over real gRPC.

Before the patterns were made linear, a 20,000-character line of spaces between a date range and
a title took 12 s to analyze, a run of 20,000 digits 2 s (the e-mail pattern), and the embedded
fleet answered nobody meanwhile: each of these 100,000-character documents took minutes.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import grpc
import pytest
from baton.v1 import document_intelligence_pb2, document_intelligence_pb2_grpc

from agents import Fleet, FleetConfig, start_fleet
from agents._documents import MAX_TARGET_LENGTH, MAX_TARGETS

N = 100_000

CRAFTED = {
    "spaces inside a dated line": "2020 - 2021 a" + " " * N + "x engineer",
    "spaces inside the headline": "John Smith\na" + " " * N + "x engineer",
    "a run of digits": "1" * N,
    "a run of word characters and dots": "a." * (N // 2),
    "spaces in a name line": "name: a" + " " * N + "b",
    "blank lines": "\n" * N + "x",
}


@pytest.fixture
async def documents() -> AsyncIterator[tuple[Fleet, document_intelligence_pb2_grpc.DocumentIntelligenceStub]]:
    fleet = await start_fleet(FleetConfig())
    try:
        async with grpc.aio.insecure_channel(fleet.address) as channel:
            yield fleet, document_intelligence_pb2_grpc.DocumentIntelligenceStub(channel)
    finally:
        await fleet.stop()


@pytest.mark.parametrize("name", list(CRAFTED))
async def test_a_crafted_document_is_analyzed_in_linear_time(
    documents: tuple[Fleet, document_intelligence_pb2_grpc.DocumentIntelligenceStub], name: str
) -> None:
    _, stub = documents
    started = time.monotonic()
    request = document_intelligence_pb2.AnalyzeDocumentRequest(user_id="u", content=CRAFTED[name])
    answer = await stub.AnalyzeDocument(request, timeout=20)
    optimized = await stub.OptimizeDocument(
        document_intelligence_pb2.OptimizeDocumentRequest(user_id="u", content=CRAFTED[name], target_skills=["rust"]),
        timeout=20,
    )
    # Linear: well under a second each here; quadratic: minutes (the deadline fails the test).
    assert time.monotonic() - started < 20
    assert answer.word_count == len(CRAFTED[name].split())
    assert list(optimized.missing_skills) == ["rust"]


async def test_target_skills_are_bounded_in_number_and_length(
    documents: tuple[Fleet, document_intelligence_pb2_grpc.DocumentIntelligenceStub],
) -> None:
    _, stub = documents
    too_many = [f"skill{i}" for i in range(MAX_TARGETS + 1)]
    too_long = ["x" * (MAX_TARGET_LENGTH + 1)]
    for targets, field in ((too_many, "target_skills "), (too_long, "target_skills[0] ")):
        request = document_intelligence_pb2.OptimizeDocumentRequest(user_id="u", content="a", target_skills=targets)
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await stub.OptimizeDocument(request, timeout=10)
        assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert (raised.value.details() or "").startswith(field), raised.value.details()
    fine = document_intelligence_pb2.OptimizeDocumentRequest(
        user_id="u", content="Python and Go", target_skills=too_many[:MAX_TARGETS]
    )
    assert len((await stub.OptimizeDocument(fine, timeout=10)).missing_skills) == MAX_TARGETS
