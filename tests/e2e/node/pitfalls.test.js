'use strict';
/**
 * The pitfalls a Node user meets with grpc-js + proto-loader, each shown against the real server
 * and each handled by baton.js: snake_case keys, a plain object sent as a Struct, Durations, Any.
 */

const assert = require('node:assert/strict');
const { after, before, describe, test } = require('node:test');

const baton = require('./baton');
const { target } = require('./support');

const { call, durationFromMs, durationToMs, fromStruct, grpc, loadBaton, orchestrator, toStruct, watchExecution } =
  baton;

const RESUME = [
  'Ada Lovelace',
  'Compiler Engineer',
  'Skills: haskell, ocaml, erlang',
  '2015 - 2024 Compiler Engineer at Analytical Engines',
].join('\n');

/** The proto-loader defaults, as a first attempt would use them. */
const DEFAULTS = { keepCase: false, longs: undefined, enums: undefined, defaults: false, oneofs: false, json: false };

/** Runs a journey to its end and returns its updates. */
async function runToEnd(client, request) {
  const execution = await call(client, 'ExecuteWorkflow', request);
  const updates = [];
  for await (const update of watchExecution(client, execution.execution_id)) updates.push(update);
  return { execution, updates };
}

/** The decoded output of the step's succeeded event. */
function outputOf(updates, stepId) {
  const event = updates.find((u) => u.event.kind === 'step_succeeded' && u.event.step_succeeded.step_id === stepId);
  assert.ok(event, `no step_succeeded for ${stepId}`);
  return event.event.step_succeeded.output;
}

describe('against the real server', () => {
  const loaded = loadBaton();
  let client;
  before(() => {
    client = orchestrator(target(), loaded);
  });
  after(() => client.close());

  test('snake_case request keys are lost with the loader defaults and arrive with keepCase', async () => {
    const request = { workflow_type: 'job_search', user_context: { user_id: 'node-keys' } };
    const camel = orchestrator(target(), loadBaton(DEFAULTS));
    try {
      // With the defaults the loader expects workflowType: the snake_case keys are dropped, and
      // the server sees an empty request.
      await assert.rejects(call(camel, 'PlanWorkflow', request), (err) => {
        assert.equal(err.code, grpc.status.INVALID_ARGUMENT);
        assert.match(err.details, /workflow_type/);
        return true;
      });
    } finally {
      camel.close();
    }
    const plan = await call(client, 'PlanWorkflow', request);
    assert.equal(plan.workflow_type, 'job_discovery');
    assert.deepEqual(
      plan.workflow_steps.map((s) => s.step_id).slice(0, 3),
      ['analyze_resume', 'search_jobs', 'score_matches'],
    );
    // enums: String; longs: Number; defaults: true.
    assert.equal(plan.workflow_steps[0].timing.scheduling, 'SCHEDULING_IMMEDIATE');
    assert.equal(typeof plan.workflow_steps[0].timing.timeout.seconds, 'number');
    assert.deepEqual(plan.workflow_steps[0].dependencies, []);
  });

  test('user data reaches the agents as a Struct built by toStruct, and a plain object is dropped', async () => {
    const journey = (data) => ({
      workflow_type: 'document_analysis',
      user_context: { user_id: 'node-struct', data },
    });
    const built = await runToEnd(client, journey(toStruct({ resume_text: RESUME, keywords: ['compilers'] })));
    assert.equal(built.updates.at(-1).status.status, 'EXECUTION_STATE_COMPLETED');
    assert.equal(outputOf(built.updates, 'analyze_resume').candidate_name, 'Ada Lovelace');

    // The same data as a plain object is sent as an empty Struct, without an error: the agent
    // analyses the bundled sample resume instead of the user's.
    const plain = await runToEnd(client, journey({ resume_text: RESUME }));
    assert.equal(plain.updates.at(-1).status.status, 'EXECUTION_STATE_COMPLETED');
    assert.notEqual(outputOf(plain.updates, 'analyze_resume').candidate_name, 'Ada Lovelace');
  });

  test('an execution timeout is a Duration object: durationFromMs works, a bare number is refused', async () => {
    const request = (timeout) => ({
      workflow_type: 'job_search',
      user_context: { user_id: 'node-duration' },
      execution_options: { timeout, priority: 'PRIORITY_LOW' },
    });
    const execution = await call(client, 'ExecuteWorkflow', request(durationFromMs(90_500)));
    assert.deepEqual(execution.plan.timeout, { seconds: 90, nanos: 500_000_000 });
    assert.equal(durationToMs(execution.plan.timeout), 90_500);

    // A number where a Duration goes fails in the client, before anything is sent. (A short
    // deadline: grpc-js keeps the failed call's deadline timer, which holds the process that long.)
    await assert.rejects(
      call(client, 'ExecuteWorkflow', request(90_000), { timeoutMs: 500 }),
      /timeout: object expected/,
    );
    // A Duration the server will not take is refused naming the field.
    await assert.rejects(call(client, 'ExecuteWorkflow', request(durationFromMs(25 * 3600 * 1000))), (err) => {
      assert.equal(err.code, grpc.status.INVALID_ARGUMENT);
      assert.match(err.details, /execution_options\.timeout/);
      return true;
    });
    const updates = [];
    for await (const update of watchExecution(client, execution.execution_id)) updates.push(update);
    assert.equal(updates.at(-1).status.status, 'EXECUTION_STATE_COMPLETED');
  });

  test('Any outputs arrive as bytes without json: true, and unpackAny decodes them to the same objects', async () => {
    const { execution, updates } = await runToEnd(client, {
      workflow_type: 'job_search',
      user_context: { user_id: 'node-any' },
    });
    const decoded = updates.filter((u) => u.event.kind === 'step_succeeded').map((u) => u.event.step_succeeded);
    assert.ok(decoded.length >= 3, `too few steps succeeded: ${decoded.map((s) => s.step_id)}`);
    const search = decoded.find((s) => s.step_id === 'search_jobs').output;
    assert.equal(search['@type'], 'type.googleapis.com/baton.v1.SearchJobsResponse');
    assert.ok(search.jobs.length > 0 && typeof search.jobs[0].job_id === 'string');

    const raw = loadBaton({ json: false });
    const rawClient = orchestrator(target(), raw);
    try {
      const rawUpdates = [];
      for await (const update of watchExecution(rawClient, execution.execution_id)) rawUpdates.push(update);
      const rawOutputs = rawUpdates
        .filter((u) => u.event.kind === 'step_succeeded')
        .map((u) => u.event.step_succeeded.output);
      assert.ok(Buffer.isBuffer(rawOutputs[0].value), 'without json: true an Any is type_url and bytes');
      assert.deepEqual(
        rawOutputs.map((any) => baton.unpackAny(any, raw)),
        decoded.map((s) => s.output),
      );
    } finally {
      rawClient.close();
    }
    // The status's results are the same outputs as JSON (Structs, in the proto JSON mapping:
    // int64 as strings, Timestamps as RFC 3339 strings, default values left out).
    const status = await call(client, 'GetExecution', { execution_id: execution.execution_id });
    const results = { ...fromStruct(status.results.intermediate_results), ...fromStruct(status.results.primary_outputs) };
    const [typed, json] = [search.jobs[0], results.search_jobs.jobs[0]];
    assert.deepEqual([json.job_id, json.title, json.skills], [typed.job_id, typed.title, typed.skills]);
    assert.equal(json.salary_max, String(typed.salary_max));
    assert.equal(Date.parse(json.posted_at), typed.posted_at.seconds * 1000);
  });
});

describe('helpers', () => {
  test('toStruct and fromStruct round-trip JSON values and refuse what JSON cannot hold', () => {
    const value = { a: 1.5, b: 'x', c: true, d: null, e: [1, 'two', { f: [] }], g: { h: { i: false } } };
    assert.deepEqual(fromStruct(toStruct(value)), value);
    assert.throws(() => toStruct([1]), /plain object/);
    assert.throws(() => toStruct({ n: Number.NaN }), /finite/);
    assert.throws(() => toStruct({ f: () => 1 }), /function/);
    assert.deepEqual(fromStruct(null), {});
  });

  test('durations convert both ways, sign and fractions kept', () => {
    assert.deepEqual(durationFromMs(1500), { seconds: 1, nanos: 500_000_000 });
    assert.deepEqual(durationFromMs(-1500), { seconds: -1, nanos: -500_000_000 });
    assert.equal(durationToMs(durationFromMs(0.25)), 0.25);
    assert.equal(durationToMs({ seconds: '90', nanos: 0 }), 90_000);
    assert.equal(durationToMs(null), 0);
    assert.throws(() => durationFromMs(Number.POSITIVE_INFINITY), /finite/);
  });
});
