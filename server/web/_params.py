"""The web view's inputs, every one hostile: query parameters, path segments, headers and bodies, bounded and checked.

Rules:
1. Every query parameter a route takes is named in its table; an unknown one, or one given twice
   where a single value is expected, is a 400 naming it (a typo must not silently list everything).
2. Strings are bounded in bytes and refuse control characters, which no stored key holds; numbers
   are decimal integers inside a stated range. The message of every refusal names the parameter
   and never echoes more than a short prefix of what was sent.
3. The orchestrator checks everything again (these checks only keep junk off the gRPC hop and make
   the answer a 400 that names the web parameter rather than the proto field).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from baton.v1 import execution_pb2

MAX_TEXT_BYTES = 256
"""The longest user id, workflow type or execution id accepted, in UTF-8 bytes."""
MAX_PAGE_TOKEN_BYTES = 1024
"""The longest page token accepted (the orchestrator's are far shorter)."""
MAX_PAGE_SIZE = 200
"""The most executions one page of the list holds."""
DEFAULT_PAGE_SIZE = 25
MAX_SEQUENCE = 2**62
"""The largest sequence a client may resume after (Last-Event-ID)."""
MAX_REASON_CHARS = 1024
"""The longest reason recorded with an action (the orchestrator's own bound)."""
MAX_TOKEN_BYTES = 8192
"""The longest Authorization header forwarded to the orchestrator."""
MAX_BODY_BYTES = 64 * 1024
"""The largest action body (a reason, a step id, an approval's payload)."""

STATES: dict[str, int] = {
    name.removeprefix("EXECUTION_STATE_").lower(): number
    for name, number in execution_pb2.ExecutionState.items()
    if number != execution_pb2.EXECUTION_STATE_UNSPECIFIED
}
"""The execution states a list may be filtered by, by their short lower-case names (running, completed...)."""


class BadRequest(web.HTTPBadRequest):
    """A 400 whose JSON body names the parameter and says what was expected."""

    def __init__(self, parameter: str, message: str) -> None:
        body = {"error": {"code": "INVALID_ARGUMENT", "parameter": parameter, "message": f"{parameter}: {message}"}}
        super().__init__(text=json.dumps(body), content_type="application/json")


def _shown(value: str) -> str:
    return repr(value[:32] + ("…" if len(value) > 32 else ""))


def text(parameter: str, value: str, *, max_bytes: int = MAX_TEXT_BYTES, required: bool = False) -> str:
    """Checks a string: at most `max_bytes` of UTF-8, no control characters; empty only when not required."""
    if not value:
        if required:
            raise BadRequest(parameter, "required")
        return ""
    size = len(value.encode("utf-8", "surrogatepass"))
    if size > max_bytes:
        raise BadRequest(parameter, f"at most {max_bytes} bytes, got {size}")
    if any(ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 for c in value) or any(0xD800 <= ord(c) < 0xE000 for c in value):
        raise BadRequest(parameter, "must not contain control characters")
    return value


def integer(parameter: str, value: str, low: int, high: int) -> int:
    """Checks a decimal integer from `low` to `high` (no sign, no spaces, at most 20 digits)."""
    if not value.isascii() or not value.isdigit() or len(value) > 20:
        raise BadRequest(parameter, f"expected an integer from {low} to {high}, got {_shown(value)}")
    number = int(value)
    if not low <= number <= high:
        raise BadRequest(parameter, f"expected an integer from {low} to {high}, got {number}")
    return number


def query(request: web.Request, allowed: Mapping[str, bool]) -> dict[str, list[str]]:
    """The request's query parameters, checked against `allowed` (name → whether it may repeat)."""
    found: dict[str, list[str]] = {}
    for name, value in request.query.items():
        if name not in allowed:
            raise BadRequest(name[:64], f"unknown parameter; expected one of {', '.join(sorted(allowed))}")
        values = found.setdefault(name, [])
        if values and not allowed[name]:
            raise BadRequest(name, "given more than once")
        if len(values) >= 16:
            raise BadRequest(name, "given more than 16 times")
        values.append(value)
    return found


@dataclass(frozen=True)
class ListQuery:
    """GET /api/executions's filters and page."""

    user: str
    states: tuple[int, ...]
    workflow: str
    page_size: int
    page_token: str


_LIST_PARAMETERS = {"user": False, "state": True, "workflow": False, "page_size": False, "page_token": False}


def list_query(request: web.Request) -> ListQuery:
    """Reads GET /api/executions?user=&state=&workflow=&page_size=&page_token= (state repeats or is comma-separated)."""
    found = query(request, _LIST_PARAMETERS)

    def one(name: str) -> str:
        return found.get(name, [""])[0]

    states: list[int] = []
    for value in found.get("state", []):
        for word in filter(None, (w.strip().lower().removeprefix("execution_state_") for w in value.split(","))):
            if word not in STATES:
                raise BadRequest("state", f"expected one of {', '.join(STATES)}, got {_shown(word)}")
            if STATES[word] not in states:
                states.append(STATES[word])
    size = one("page_size")
    return ListQuery(
        user=text("user", one("user").strip()),
        states=tuple(states),
        workflow=text("workflow", one("workflow").strip()),
        page_size=integer("page_size", size, 1, MAX_PAGE_SIZE) if size else DEFAULT_PAGE_SIZE,
        page_token=text("page_token", one("page_token"), max_bytes=MAX_PAGE_TOKEN_BYTES),
    )


def execution_id(request: web.Request) -> str:
    """The execution id in the path."""
    return text("execution_id", request.match_info.get("execution_id", ""), required=True)


def resume_after(request: web.Request) -> int:
    """The sequence a stream resumes after: the Last-Event-ID header (what EventSource sends on a
    reconnect), else ?after=N, else 0 (the whole history)."""
    found = query(request, {"after": False})
    header = request.headers.get("Last-Event-ID", "").strip()
    if header:
        return integer("Last-Event-ID", header, 0, MAX_SEQUENCE)
    after = found.get("after", [""])[0]
    return integer("after", after, 0, MAX_SEQUENCE) if after else 0


def authorization(request: web.Request) -> tuple[tuple[str, str], ...]:
    """The gRPC metadata carrying the request's Authorization header, if it has one."""
    values = request.headers.getall("Authorization", [])
    if not values:
        return ()
    if len(values) > 1:
        raise BadRequest("Authorization", "given more than once")
    value = values[0].strip()
    if len(value) > MAX_TOKEN_BYTES or not value.isascii() or not value.isprintable():
        raise BadRequest("Authorization", f"expected printable ASCII of at most {MAX_TOKEN_BYTES} bytes")
    return (("authorization", value),) if value else ()


@dataclass(frozen=True)
class Action:
    """The body of POST /api/executions/{id}/{action}: all optional."""

    reason: str
    step_id: str
    payload: dict[str, Any] | None


async def action_body(request: web.Request) -> Action:
    """Reads an action's JSON body ({} or empty is fine): reason, step_id, and payload (approve only)."""
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise BadRequest("body", f"at most {MAX_BODY_BYTES} bytes")
    raw = await request.content.read(MAX_BODY_BYTES + 1)
    if len(raw) > MAX_BODY_BYTES:
        raise BadRequest("body", f"at most {MAX_BODY_BYTES} bytes")
    if not raw.strip():
        return Action("", "", None)
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):
        raise BadRequest("body", "expected a JSON object") from None
    if not isinstance(body, dict):
        raise BadRequest("body", "expected a JSON object")
    unknown = set(body) - {"reason", "step_id", "payload"}
    if unknown:
        raise BadRequest(sorted(unknown)[0][:64], "unknown field; expected reason, step_id, payload")
    reason, step_id, payload = body.get("reason", ""), body.get("step_id", ""), body.get("payload")
    if not isinstance(reason, str) or len(reason) > MAX_REASON_CHARS:
        raise BadRequest("reason", f"expected a string of at most {MAX_REASON_CHARS} characters")
    if not isinstance(step_id, str):
        raise BadRequest("step_id", "expected a string")
    if payload is not None and not isinstance(payload, dict):
        raise BadRequest("payload", "expected a JSON object")
    return Action(text("reason", reason, max_bytes=4 * MAX_REASON_CHARS), text("step_id", step_id), payload)
