'use strict';
/**
 * A Node client's whole journey against the real server: submit, watch across broken streams
 * (resumed by after_sequence), approve the step that waits, and read the results.
 */

const assert = require('node:assert/strict');
const { after, before, test } = require('node:test');

const { call, fromStruct, loadBaton, orchestrator, toStruct, watchExecution } = require('./baton');
const { cuttableProxy, target } = require('./support');

const loaded = loadBaton();
let client;
before(() => {
  client = orchestrator(target(), loaded);
});
after(() => client.close());

/** Asserts that the updates' sequences are 1, 2, ... N: each once and in order. */
function assertGapless(updates) {
  const sequences = updates.map((u) => u.sequence);
  assert.deepEqual(
    sequences,
    sequences.map((_, i) => i + 1),
  );
}

test('a watch the client cancels resumes with after_sequence, without gaps or repeats', async () => {
  const execution = await call(client, 'ExecuteWorkflow', {
    workflow_type: 'job_search',
    user_context: { user_id: 'node-cancel' },
  });
  const first = [];
  for await (const update of watchExecution(client, execution.execution_id)) {
    first.push(update);
    // Leaving the loop cancels the call (the stream is cut on the client's side).
    if (first.length === 3) break;
  }
  const rest = [];
  const last = first.at(-1).sequence;
  for await (const update of watchExecution(client, execution.execution_id, { afterSequence: last })) {
    rest.push(update);
  }
  assert.equal(rest[0].sequence, 4);
  const updates = [...first, ...rest];
  assertGapless(updates);
  assert.equal(updates[0].event.kind, 'execution_started');
  assert.equal(updates.at(-1).event.kind, 'execution_completed');
  assert.equal(updates.at(-1).status.status, 'EXECUTION_STATE_COMPLETED');
});

test('a journey is submitted, watched across a cut connection, approved and its results read', async () => {
  const proxy = await cuttableProxy(target());
  const throughProxy = orchestrator(proxy.address, loaded);
  try {
    const execution = await call(throughProxy, 'ExecuteWorkflow', {
      workflow_type: 'application_automation',
      request_id: `node-journey-${process.pid}-${Date.now()}`,
      user_context: {
        user_id: 'node-journey',
        journey_context: { user_preferences: { automation_level: 'AUTOMATION_LEVEL_MANUAL' } },
        data: toStruct({ keywords: ['backend'], cover_note: 'Sent from Node.js' }),
      },
    });
    assert.equal(execution.created, true);
    assert.ok(execution.plan.workflow_steps.some((s) => s.step_id === 'approve_applications'));

    const updates = [];
    let streams = 0;
    let chosen;
    const watch = watchExecution(throughProxy, execution.execution_id, {
      onCall: () => {
        streams += 1;
      },
    });
    for await (const update of watch) {
      updates.push(update);
      if (update.event.kind !== 'step_waiting') continue;
      // The execution waits for approval; its stream is open and idle. Cut every connection
      // through the proxy, as a load balancer restarting would: the watch breaks (UNAVAILABLE)
      // and resumes from the last sequence it yielded.
      const [waiting] = update.status.waiting;
      assert.equal(waiting.step_id, 'approve_applications');
      assert.equal(waiting.kind, 'WAIT_KIND_APPROVAL');
      const offered = fromStruct(waiting.data).job_ids;
      assert.ok(offered.length >= 2, `the approval should offer jobs to choose from: ${offered}`);
      chosen = offered[1];
      proxy.cut();
      // Approve only one of the jobs offered; the payload is a Struct built from a plain object.
      const approved = await call(client, 'SignalExecution', {
        execution_id: execution.execution_id,
        signal: 'SIGNAL_APPROVE',
        payload: toStruct({ job_ids: [chosen] }),
        reason: 'approved from Node.js',
      });
      assert.deepEqual(approved.waiting, []);
    }
    assert.ok(streams >= 2, 'the watch should have resumed after the cut');
    assert.ok(proxy.accepted >= 2, 'the resumed stream should have come through a new connection');
    assertGapless(updates);
    const final = updates.at(-1).status;
    assert.equal(final.status, 'EXECUTION_STATE_COMPLETED', final.failure_reason);
    const signals = updates.filter((u) => u.event.kind === 'signal_received').map((u) => u.event.signal_received);
    assert.deepEqual(
      signals.map((s) => [s.step_id, s.signal]),
      [['approve_applications', 'SIGNAL_APPROVE']],
    );

    // The agents' responses ride in the events as google.protobuf.Any, decoded by json: true.
    const items = updates.filter((u) => u.event.kind === 'step_item_succeeded').map((u) => u.event.step_item_succeeded);
    assert.equal(items.length, 1, 'only the approved job is applied to');
    const submitted = items[0].output;
    assert.equal(submitted['@type'], 'type.googleapis.com/baton.v1.SubmitApplicationResponse');
    assert.deepEqual(
      submitted.applications.map((a) => [a.job_id, a.state]),
      [[chosen, 'APPLICATION_STATE_SUBMITTED']],
    );
    const scored = updates.find((u) => u.event.step_succeeded?.step_id === 'score_matches').event.step_succeeded;
    assert.equal(scored.output['@type'], 'type.googleapis.com/baton.v1.ScoreMatchesResponse');
    assert.equal(typeof scored.output.matches[0].score, 'number');
    assert.equal(scored.quality.score, scored.output.quality.score);

    // The results: the status's Structs, and one step's output on its own.
    const status = await call(client, 'GetExecution', { execution_id: execution.execution_id });
    assert.equal(status.last_sequence, updates.at(-1).sequence);
    const primary = fromStruct(status.results.primary_outputs);
    const intermediate = fromStruct(status.results.intermediate_results);
    assert.ok('notify_user' in primary || 'record_applications' in primary, Object.keys(primary).join());
    assert.equal(intermediate.analyze_resume.candidate_name, 'Jordan Rivera');
    const output = await call(client, 'GetStepOutput', {
      execution_id: execution.execution_id,
      step_id: 'submit_applications',
    });
    const perJob = fromStruct(output.output).value;
    assert.deepEqual(
      perJob.map((response) => response.applications.map((a) => a.job_id)),
      [[chosen]],
    );
    assert.equal(fromStruct(status.results.metadata).workflow_type, 'application_automation');
  } finally {
    throughProxy.close();
    await proxy.close();
  }
});
