"""Map steps (for_each): one durable call per item of a list, a concurrency cap, and the join.

Rules (decide.py's rules for a step, applied per item, and these):
1. A map step starts (when an ordinary step would make its first attempt) by evaluating its
   for_each over the context: an error, a value that is not a list, or more than MAX_MAP_ITEMS
   items fail the step at once (EXPRESSION_ERROR, non-retryable, nothing sent) and its fallback
   applies. Otherwise `step_map_started` records the item count, and the step is MAPPING.
2. The items' values are not stored: they are evaluated again whenever an item's call is built.
   The list reads only steps the map step waits for, whose outputs no longer change, so it is
   the same list; one of another length fails the step (EXPRESSION_ERROR).
3. Each item is its own call, with the key `execution/step/<index>` for every attempt, the
   step's timeout and retries, and the plan's backoff; `item` and `item_index` are in its
   context. An open breaker's refusal is a failed attempt of the item like any other (items do
   not wait for the breaker as decide.py's rule 7 lets a step do), retried no sooner than the
   breaker admits a probe. At most the step's max_concurrency items are in flight or waiting for a retry (a
   retry keeps its item's slot); new items start lowest index first.
4. An item whose retries are exhausted is recorded `step_item_failed`: under SKIP_ITEM it is
   skipped (null in the output) and the others go on; under FAIL_STEP no more items start and,
   once none is in flight, the step fails with the first failed item's error and its fallback
   (skip or fail) applies as for an ordinary step.
5. The join: once every item has ended (none failed under FAIL_STEP), `step_succeeded` records
   the mean of the succeeded items' quality and no output: the step's output is the list of the
   items' outputs in item order (null for a skipped one), which the fold builds from the items'
   own events; the step's gates then judge it as any step's.
6. While paused, items in flight finish and nothing starts; while unwinding, items in flight
   are waited for and items in doubt probed (compensation per item is unwind.py's).
"""

from __future__ import annotations

from typing import Any

from baton.v1 import execution_pb2, plan_pb2

from server.engine._decider import DeciderBase, Launch, expression_error
from server.engine.expressions import evaluate
from server.engine.model import MAX_MAP_ITEMS, Step
from server.engine.ports import AgentCall, AgentCallError, AgentReply
from server.engine.state import ItemPhase, ItemRun, StepRun

E = execution_pb2
P = plan_pb2


class MapItemsError(ValueError):
    """A map step's for_each did not give a list it can run."""


class Mapper(DeciderBase):
    """Map steps, as part of the decider."""

    def items_of(self, step: Step) -> list[Any]:
        """The map step's items (rule 2: evaluated once per decision, the same list every time).

        Raises:
            MapItemsError: the value is not a list, or too long.
            Exception: evaluating the expression failed.
        """
        cache = self.map_items
        items = cache.get(step.step_id)
        if items is None:
            spec = step.map
            if spec is None:
                raise MapItemsError(f"step {step.step_id} is not a map step")
            value = evaluate(spec.items, self.context())
            if not isinstance(value, list):
                kind = "null" if value is None else type(value).__name__
                raise MapItemsError(f"for_each ${{{spec.items}}} gave {kind}, not a list")
            if len(value) > MAX_MAP_ITEMS:
                raise MapItemsError(
                    f"for_each ${{{spec.items}}} gave {len(value)} items; a map step runs at most {MAX_MAP_ITEMS}"
                )
            items = cache[step.step_id] = value
        return items

    def start_map(self, step: Step, run: StepRun) -> None:
        """Rule 1: evaluates the items and records step_map_started (or the step's failure)."""
        try:
            items = self.items_of(step)
        except Exception as exc:
            self.exhausted(step, run, expression_error(f"step {step.step_id} for_each", exc))
            return
        self.record("step_map_started", E.StepMapStarted(step_id=step.step_id, item_count=len(items)))
        self.drive_map(step, run)

    def drive_map(self, step: Step, run: StepRun) -> None:
        """Rules 3-5: starts the items that may start, or ends the step when every item has."""
        spec, items, tally = step.map, run.items, run.tally
        if spec is None or items is None or tally is None:
            return
        # The step is driven after every outcome and may have thousands of items: the tally
        # says what to look at (the items in backoff, the first pending one), never all items.
        counts = tally.counts
        if not counts[ItemPhase.FAILED]:
            # Retries that are due (they hold their slots), then new items while slots are free.
            for index in sorted(tally.backoff):
                retried = items[index]
                if retried.due is None or retried.due <= self.now:
                    self.start_item(step, run, retried)
                    if _failed(retried):
                        break
        if not counts[ItemPhase.FAILED]:
            while counts[ItemPhase.IN_FLIGHT] + counts[ItemPhase.BACKOFF] < spec.max_concurrency:
                pending = tally.first_pending(items)
                if pending is None:
                    break
                self.start_item(step, run, pending)
                if _failed(pending):
                    break  # rule 4: the step is failing, nothing more starts
        failing = counts[ItemPhase.FAILED] > 0
        if counts[ItemPhase.IN_FLIGHT] or (not failing and counts[ItemPhase.BACKOFF]):
            return
        if failing:
            first = next(item for item in items if item.phase == ItemPhase.FAILED)
            message = f"item {first.index}: {first.error_message}"
            self.exhausted(step, run, AgentCallError(first.error_type, message, retryable=False))
        elif counts[ItemPhase.COMPLETED] + counts[ItemPhase.SKIPPED] == len(items):
            self.join(step, run, items)

    def join(self, step: Step, run: StepRun, items: list[ItemRun]) -> None:
        """Rule 5: the step succeeds; its output, the list of its items' outputs in item order, is
        built by the fold from the items' events (so the history holds each output once)."""
        succeeded = [item for item in items if item.phase == ItemPhase.COMPLETED]
        score = sum(item.quality_score for item in succeeded) / len(succeeded) if succeeded else 0.0
        metrics: dict[str, float] = {}
        for item in succeeded:
            for name, value in item.quality_metrics.items():
                metrics[name] = metrics.get(name, 0.0) + value / len(succeeded)
        done = E.StepSucceeded(step_id=step.step_id, attempt=run.attempts)
        done.quality.score = score
        done.quality.metrics.update(metrics)
        self.record("step_succeeded", done)
        self.judge(step, run, score, metrics)

    def start_item(self, step: Step, run: StepRun, item: ItemRun) -> None:
        attempt = item.attempts + 1
        started = E.StepItemStarted(
            step_id=step.step_id,
            item=item.index,
            attempt=attempt,
            agent=step.call.agent,
            operation=step.call.operation,
            idempotency_key=self.item_key(step, item.index),
        )
        if self.debug:
            self.record_request(started.request, lambda: self.payload(step.call, self.item_context(step, item.index)))
        self.record("step_item_started", started)
        self.launch_item(step, run, item)

    def launch_item(self, step: Step, run: StepRun, item: ItemRun) -> None:
        """Launches the item's latest attempt (again, after a restart: same key)."""
        call = step.call
        try:
            payload = self.payload(call, self.item_context(step, item.index))
        except Exception as exc:
            self.item_attempt_failed(step, run, item, expression_error(f"step {step.step_id} item {item.index}", exc))
            return
        self.decision.launches.append(
            Launch(
                step_id=step.step_id,
                attempt=item.attempts,
                item=item.index,
                call=AgentCall(
                    agent=call.agent,
                    operation=call.operation,
                    payload=payload,
                    timeout=self.attempt_timeout(step),
                    idempotency_key=self.item_key(step, item.index),
                    attempt=item.attempts,
                    use_breaker=self.plan.retry.use_breaker and self.state.unwinding is None,
                    retry=item.attempts > 1,
                ),
            )
        )

    def item_context(self, step: Step, index: int) -> dict[str, Any]:
        """The context of an item's call: the execution's, with `item` and `item_index`."""
        items = self.items_of(step)
        run = self.state.steps[step.step_id]
        if run.items is not None and len(items) != len(run.items):
            raise MapItemsError(f"for_each now gives {len(items)} items, not the {len(run.items)} it started with")
        return {**self.context(), "item": items[index], "item_index": index}

    def item_key(self, step: Step, index: int) -> str:
        """The idempotency key of an item's call: the same for every attempt."""
        return f"{self.key_prefix()}/{step.step_id}/{index}"

    def item_outcome(self, step: Step, run: StepRun, index: int, attempt: int, result: object) -> None:
        items = run.items
        if items is None or not 0 <= index < len(items):
            return
        item = items[index]
        if item.phase != ItemPhase.IN_FLIGHT or item.attempts != attempt:
            return  # overtaken
        if isinstance(result, AgentReply):
            done = E.StepItemSucceeded(
                step_id=step.step_id,
                item=index,
                attempt=attempt,
                request_bytes=result.request_bytes,
                response_bytes=result.response_bytes,
            )
            done.output.Pack(result.output)
            done.quality.score = result.quality_score
            done.quality.metrics.update(result.quality_metrics)
            self.record("step_item_succeeded", done)
        elif isinstance(result, AgentCallError):
            self.item_attempt_failed(step, run, item, result)

    def item_attempt_failed(self, step: Step, run: StepRun, item: ItemRun, error: AgentCallError) -> None:
        spec = step.map
        unwinding = self.state.unwinding is not None
        if unwinding:
            # A probe (or a call in flight when unwinding began): retried only while the item is
            # in doubt, within its compensation's retries (as a step's, unwind.py rule 3).
            undo = step.compensation
            retry = undo is not None and error.retryable and error.error_type != "CIRCUIT_OPEN"
            retry = retry and 0 < item.probes <= (undo.retries if undo is not None else 0)
            wait = self.plan.retry.backoff(max(item.probes, 1), self.rng()) if retry else 0.0
        else:
            retry = error.retryable and item.attempts <= step.retries
            wait = self.plan.retry.backoff(item.attempts, self.rng()) if retry else 0.0
            if retry and error.error_type == "CIRCUIT_OPEN" and error.retry_after is not None:
                wait = max(wait, error.retry_after)  # no sooner than the breaker admits a probe
        failed = E.StepItemAttemptFailed(
            step_id=step.step_id,
            item=item.index,
            attempt=item.attempts,
            error_type=error.error_type,
            error_message=error.message,
            request_bytes=error.request_bytes,
        )
        if retry:
            failed.retry_at.CopyFrom(self.at(wait))
        self.record("step_item_attempt_failed", failed)
        if retry or unwinding or spec is None:
            return
        action = P.ITEM_FAILURE_SKIP_ITEM if spec.skip_failed_items else P.ITEM_FAILURE_FAIL_STEP
        item_failed = E.StepItemFailed(
            step_id=step.step_id,
            item=item.index,
            error_type=error.error_type,
            error_message=error.message,
            item_failure=action,
        )
        self.record("step_item_failed", item_failed)


def _failed(item: ItemRun) -> bool:
    """Whether the item failed the step, read afresh: starting it may have recorded its failure
    (a request that could not be built)."""
    return item.phase == ItemPhase.FAILED
