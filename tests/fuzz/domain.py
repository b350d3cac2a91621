"""Domain-aware strategies: requests likelier to get past the first check and deep into the server.

- explicit plans (`ExecuteWorkflowRequest.plan`) of real agents and operations, steps depending on
  earlier ones (sometimes on later or unknown ones: cycles), with step inputs and conditions drawn
  from a small grammar of the engine's expression language (JMESPath inside "${...}", over the
  context ``user``, ``steps``, ``execution``), deep nesting and long chains included, and garbage;
- the built-in workflow types and their aliases;
- ids that sometimes name what the run created (an `IdPool` fed by earlier answers);
- page tokens: random base64, and base64 of odd shapes near the real ones (``1:MICROS:ID``,
  ``a1:N``) with extreme numbers.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from baton.v1 import orchestrator_pb2, plan_pb2, seed_api_pb2
from google.protobuf import message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from hypothesis import strategies as st

from agents_clients.catalog import AGENTS, operations
from tests.fuzz.strategies import INT64, json_values, messages, odds, text

__all__ = ["WORKFLOW_TYPES", "IdPool", "expressions", "page_tokens", "plans", "requests"]

WORKFLOW_TYPES = (
    "application_automation",
    "document_analysis",
    "job_discovery",
    "optimization",
    "application",
    "job_search",
)

_OPERATIONS = {agent: operations(agent) for agent in AGENTS}


class IdPool:
    """Ids and tokens the server gave back, so later requests can name real things."""

    def __init__(self) -> None:
        self.values: dict[str, list[str]] = {}

    def add(self, kind: str, value: str) -> None:
        """Remembers `value` (an execution id, a step id, a page token ...), at most 500 per kind."""
        if value:
            values = self.values.setdefault(kind, [])
            if value not in values:
                values.append(value)
                if len(values) > 500:
                    del values[0]

    def learn(self, message: Message) -> None:
        """Remembers every id-like string field of an answer, recursively."""
        for field, value in message.ListFields():
            if field.type == FieldDescriptor.TYPE_MESSAGE:
                items = value.values() if _is_map(field) else value if field.is_repeated else [value]
                for item in items:
                    if isinstance(item, Message):
                        self.learn(item)
            elif field.type == FieldDescriptor.TYPE_STRING and not field.is_repeated and _kind(field.name):
                self.add(_kind(field.name) or "", value)

    def pick(self, draw: st.DrawFn, kind: str, fallback: st.SearchStrategy[str]) -> str:
        """A remembered value of `kind` most of the time there is one, else one from `fallback`.

        The same draws are made whatever the pool holds (Hypothesis requires a strategy's shape
        not to depend on outside state), and only then is the pool consulted.
        """
        remembered, index, other = odds(draw) < 0.7, draw(st.integers(0, 2**16)), draw(fallback)
        known = self.values.get(kind, [])
        return known[index % len(known)] if known and remembered else other


def _is_map(field: FieldDescriptor) -> bool:
    return field.type == FieldDescriptor.TYPE_MESSAGE and field.message_type.GetOptions().map_entry


def _kind(name: str) -> str | None:
    """The pool a string field's values belong to, by its name."""
    if name in ("execution_id", "step_id", "request_id", "user_id", "workflow_type", "plan_id"):
        return name
    if name.endswith("page_token"):
        return "page_token"
    return None


# ---- the expression language ---------------------------------------------------------------

_PATHS = (
    "user.user_id",
    "user.data",
    "user.data.resume_text",
    "user.data.keywords",
    "execution.execution_id",
    "steps",
    "@",
    "`null`",
    "`true`",
    "`[]`",
    "`{}`",
    "'raw'",
    "`1`",
    "`-1e400`",
    '"quoted field"',
)
_FUNCTIONS = ("length", "contains", "to_string", "keys", "max_by", "sort", "join", "abs", "not_a_function", "type")


def _step_path(step_ids: list[str]) -> st.SearchStrategy[str]:
    fields = st.sampled_from(("skills", "titles", "matches", "jobs", "document_id", "applications", "x"))
    if not step_ids:
        return st.builds(lambda f: f"steps.nope.{f}", fields)
    return st.builds(lambda s, f: f"steps.{s}.{f}", st.sampled_from(step_ids), fields)


_DEEP = {
    "not": lambda leaf, n: "!" * n + leaf,
    "paren": lambda leaf, n: "(" * n + leaf + ")" * n,
    "or": lambda leaf, n: " || ".join([leaf] * n),
    "pipe": lambda leaf, n: " | ".join([leaf] * n),
    "dot": lambda leaf, n: leaf + ".a" * n,
    "index": lambda leaf, n: leaf + "[0]" * n,
    "call": lambda leaf, n: "length(" * n + leaf + ")" * n,
}


def _deep(shape: str, n: int, leaf: str) -> str:
    """`leaf` nested `n` levels deep: ``!!!!x``, ``((((x))))``, ``x || x || ...`` ..."""
    return _DEEP[shape](leaf, n)


def expressions(step_ids: list[str] | None = None) -> st.SearchStrategy[str]:
    """JMESPath expressions as the engine reads them: valid ones of every shape, very deep or long
    ones, and garbage."""
    atoms = st.one_of(st.sampled_from(_PATHS), _step_path(step_ids or []))

    def extend(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
        return st.one_of(
            st.builds(lambda e: f"!{e}", inner),
            st.builds(lambda e: f"({e})", inner),
            st.builds(
                lambda a, op, b: f"{a} {op} {b}",
                inner,
                st.sampled_from(["&&", "||", "==", "!=", "<", ">=", "|"]),
                inner,
            ),
            st.builds(lambda f, e: f"{f}({e})", st.sampled_from(_FUNCTIONS), inner),
            st.builds(
                lambda e, i: f"{e}[{i}]",
                inner,
                st.sampled_from(["0", "-1", ":3", "*", "", "?@ > `1`", "::-1", "99999999999999999999"]),
            ),
            st.builds(lambda e: f"{e}.{{a: @, b: length(@)}}", inner),
            st.builds(lambda e: f"{e}[*].x", inner),
        )

    valid = st.recursive(atoms, extend, max_leaves=6)
    deep = st.builds(_deep, st.sampled_from(sorted(_DEEP)), st.sampled_from([30, 32, 33, 100, 1000, 2000]), atoms)
    garbage = st.one_of(
        text(),
        st.sampled_from(["", " ", "(", ")", "[", "`", "'", "${", "}", "&&", "a..b", "[?", "`{`", "\x00", "@@", "*"]),
    )
    return st.one_of(valid, valid, valid, deep, garbage)


def _configuration(step_ids: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    value = st.one_of(
        st.builds(lambda e: "${" + e + "}", expressions(step_ids)),
        st.builds(lambda e: "${" + e + "}", expressions(step_ids)),
        json_values(max_leaves=4),
    )
    keys = st.one_of(st.sampled_from(["user_id", "content", "job_ids", "skills", "jobs", "events", "x"]), text())
    return st.dictionaries(keys, value, max_size=5)


# ---- explicit plans ------------------------------------------------------------------------


def _duration(seconds: float) -> Any:
    from google.protobuf import duration_pb2

    d = duration_pb2.Duration()
    d.FromNanoseconds(int(seconds * 1e9))
    return d


@st.composite
def _step(draw: st.DrawFn, index: int, earlier: list[str], ids: list[str]) -> plan_pb2.WorkflowStep:
    if odds(draw) < 0.1:
        step = draw(messages(plan_pb2.WorkflowStep.DESCRIPTOR, depth=3))
        assert isinstance(step, plan_pb2.WorkflowStep)
    else:
        step = plan_pb2.WorkflowStep()
    step.step_id = ids[index]
    agent = draw(st.sampled_from(AGENTS)) if odds(draw) < 0.95 else draw(text())
    step.agent = agent
    step.operation = draw(st.sampled_from(_OPERATIONS[agent])) if agent in _OPERATIONS else draw(text())
    roll = odds(draw)
    if earlier and roll < 0.6:
        step.dependencies.extend(draw(st.lists(st.sampled_from(earlier), max_size=3, unique=True)))
    elif roll < 0.7:
        step.dependencies.extend(draw(st.lists(st.sampled_from(ids), min_size=1, max_size=2)))  # later: a cycle
    elif roll < 0.75:
        step.dependencies.append(draw(text()))
    step.inputs.configuration.update(draw(_configuration(earlier)))
    if odds(draw) < 0.3:
        step.timing.condition = draw(expressions(earlier))
        step.timing.scheduling = plan_pb2.SCHEDULING_CONDITIONAL
    if odds(draw) < 0.3:
        step.timing.timeout.CopyFrom(_duration(draw(st.sampled_from([0.001, 0.05, 1, 5, 30, -1, 86_400 * 400]))))
    if odds(draw) < 0.2:
        step.timing.delay.CopyFrom(_duration(draw(st.sampled_from([0.01, 0.2, -1, 3600]))))
    if odds(draw) < 0.25:
        step.error_handling.fallback_action = draw(st.sampled_from([0, 1, 2, 3, 99]))
        step.error_handling.retry_count = draw(st.sampled_from([0, 1, 3, -1, 2**31 - 1]))
        alt_agent = draw(st.sampled_from(AGENTS))
        step.error_handling.alternative.agent = alt_agent
        step.error_handling.alternative.operation = draw(st.sampled_from(_OPERATIONS[alt_agent]))
    if odds(draw) < 0.15:
        comp_agent = draw(st.sampled_from(AGENTS))
        step.compensation.agent = comp_agent
        step.compensation.operation = draw(st.sampled_from(_OPERATIONS[comp_agent]))
        step.compensation.configuration.update(draw(_configuration(earlier)))
    if odds(draw) < 0.12:
        step.kind = plan_pb2.STEP_KIND_APPROVAL
        step.approval.prompt = draw(text())
        step.approval.on_timeout = draw(st.sampled_from([0, 1, 2, 3, 7]))
        step.approval.timeout.CopyFrom(_duration(draw(st.sampled_from([0.05, 1, 60, 3600, -5]))))
    if odds(draw) < 0.15:
        # A map step: its list, hostile or not, its cap and its per-item failure policy.
        items = draw(st.one_of(expressions(earlier), st.just("user.data.jobs"), st.just("`[1, 2, 3]`")))
        step.for_each = f"${{{items}}}" if odds(draw) < 0.9 else items
        step.max_concurrency = draw(st.sampled_from([0, 1, 8, 64, 65, 2**32 - 1]))
        step.item_failure = draw(st.sampled_from([0, 1, 2, 9]))
        if odds(draw) < 0.5:
            step.inputs.configuration.update({"item": "${item}", "index": "${item_index}"})
    step.optional = draw(st.booleans())
    return step


@st.composite
def plans(draw: st.DrawFn) -> plan_pb2.OrchestrationPlan:
    """An explicit plan: real agents and operations, dependencies, expressions, gates."""
    count = draw(st.sampled_from([1, 1, 2, 3, 4, 5, 8, 0, 201]))
    ids = [f"s{i}" for i in range(count)]
    if odds(draw) < 0.1 and ids:
        ids[draw(st.integers(0, count - 1))] = draw(st.one_of(text(), st.sampled_from(ids)))  # odd or duplicate
    plan = plan_pb2.OrchestrationPlan(workflow_type=draw(st.one_of(st.just("explicit"), text())))
    if count > 20:
        plan.workflow_steps.extend(
            plan_pb2.WorkflowStep(step_id=i, agent="analytics", operation="RecordEvents") for i in ids
        )
        return plan
    for i in range(count):
        plan.workflow_steps.append(draw(_step(i, ids[:i], ids)))
    if odds(draw) < 0.3:
        plan.timeout.CopyFrom(_duration(draw(st.sampled_from([0.2, 2, 60, 0, -3, 10**9]))))
    if odds(draw) < 0.2:
        plan.execution_strategy.CopyFrom(draw(messages(plan_pb2.ExecutionStrategy.DESCRIPTOR)))
    if odds(draw) < 0.25 and ids:
        gate = plan.quality_gates.add(
            gate_id=draw(st.sampled_from(["g", "g", ""])), checkpoint=draw(st.sampled_from(ids))
        )
        gate.action_on_failure = draw(st.sampled_from([0, 1, 2, 3, 4, 42]))
        gate.pass_score = draw(st.sampled_from([0.0, 50.0, 100.0, 101.0, float("nan")]))
        gate.criteria.add(
            metric=draw(st.sampled_from(["quality", "score", "completeness", ""])),
            operator=draw(st.sampled_from([0, 1, 2, 3, 4, 5, 9])),
            value=draw(st.sampled_from([0.0, 50.0, float("inf"), -1.0])),
            weight=draw(st.sampled_from([1.0, 0.0, -1.0])),
        )
    return plan


# ---- ids and page tokens -------------------------------------------------------------------


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def page_tokens() -> st.SearchStrategy[str]:
    """Random base64, base64 of odd JSON and ints, and the stores' two shapes with extreme values."""
    numbers = st.sampled_from([0, -1, 1, 2**63, 2**63 - 1, -(2**63) - 1, 2**64, 10**30, 253_402_300_800_000_000])
    odd_json = st.sampled_from([2**63, -1, None, [], {}, {"offset": 2**63}, "1:0:x", float("inf")]).map(
        lambda v: _b64(json.dumps(v).encode())
    )
    return st.one_of(
        st.binary(max_size=40).map(_b64),
        odd_json,
        st.builds(
            lambda n, i: _b64(f"1:{n}:{i}".encode()), numbers, st.sampled_from(["x", "", "\x00", "a" * 300, "é"])
        ),
        st.builds(
            lambda n: _b64(f"a1:{n}".encode()), st.one_of(numbers, st.sampled_from(["+1", " 1", "1_000", "0x1"]))
        ),
        st.sampled_from(["", "=", "====", "!!!", "a", "@@@@", "MTox" * 1000]),
        text(),
    )


def _fallback(kind: str) -> st.SearchStrategy[str]:
    if kind == "page_token":
        return page_tokens()
    if kind == "workflow_type":
        return st.one_of(st.sampled_from(WORKFLOW_TYPES), text())
    if kind == "execution_id":
        return st.one_of(st.uuids().map(str), text())
    if kind == "user_id":
        return st.one_of(st.sampled_from(["u1", "u2", "fuzz-user", "demo-user"]), text())
    return text()


_EXECUTE = orchestrator_pb2.ExecuteWorkflowRequest.DESCRIPTOR.full_name
_PLAN = orchestrator_pb2.PlanWorkflowRequest.DESCRIPTOR.full_name
_SEED_EXECUTE = seed_api_pb2.SeedExecuteRequest.DESCRIPTOR.full_name


@st.composite
def requests(draw: st.DrawFn, descriptor: Descriptor, pool: IdPool) -> Message:
    """A request of `descriptor`'s type: generic, then (mostly) with its id-like fields pointing at
    what the run created. Half the requests that start executions are instead built to pass the
    first checks: a built-in workflow type or an explicit plan, a user, a pooled request id."""
    name = descriptor.full_name
    if name in (_EXECUTE, _PLAN, _SEED_EXECUTE) and odds(draw) < 0.5:
        return draw(_submission(descriptor, pool))
    message = draw(messages(descriptor))
    if odds(draw) < 0.8:
        _patch(draw, message, pool)
    return message


@st.composite
def _submission(draw: st.DrawFn, descriptor: Descriptor, pool: IdPool) -> Message:
    name = descriptor.full_name
    cls = message_factory.GetMessageClass(descriptor)
    message: Any = cls()
    if odds(draw) < 0.25:
        message.CopyFrom(draw(messages(descriptor, depth=2)))
    user = pool.pick(draw, "user_id", _fallback("user_id"))
    if name == _EXECUTE and odds(draw) < 0.6:
        message.plan.CopyFrom(draw(plans()))
        message.ClearField("workflow_type")
    else:
        if name == _EXECUTE:
            message.ClearField("plan")
        message.workflow_type = draw(st.sampled_from(WORKFLOW_TYPES)) if odds(draw) < 0.9 else draw(text())
    if name == _SEED_EXECUTE:
        message.user_context.update({"user_id": user})
    else:
        message.user_context.user_id = user
    if name != _PLAN:
        if odds(draw) < 0.7:
            message.ClearField("callback_url")
        if odds(draw) < 0.5:
            message.request_id = pool.pick(draw, "request_id", st.uuids().map(str))
    return message


def _patch(draw: st.DrawFn, message: Message, pool: IdPool) -> None:
    for field in message.DESCRIPTOR.fields:
        kind = _kind(field.name)
        if field.type == FieldDescriptor.TYPE_STRING and not field.is_repeated and kind:
            setattr(message, field.name, pool.pick(draw, kind, _fallback(kind)))
        elif field.type == FieldDescriptor.TYPE_INT64 and field.name == "after_sequence":
            setattr(message, field.name, draw(st.sampled_from([0, 1, 5, -1, *INT64])))
