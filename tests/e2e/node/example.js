'use strict';
// The README's Node.js example (tests/e2e/node/example.test.js runs it against the real server).
const { call, durationFromMs, fromStruct, orchestrator, toStruct, watchExecution } = require('./baton');

async function main() {
  const client = orchestrator(process.env.BATON_TARGET || '127.0.0.1:50051');
  const { execution_id } = await call(client, 'ExecuteWorkflow', {
    workflow_type: 'application_automation',
    user_context: {
      user_id: 'u1',
      journey_context: { user_preferences: { automation_level: 'AUTOMATION_LEVEL_MANUAL' } },
      data: toStruct({ keywords: ['backend'], location: 'remote' }), // a Struct, never a plain object
    },
    execution_options: { timeout: durationFromMs(120_000) }, // a Duration object, never a number
  });
  // Every update once and in order; a broken stream is resumed with after_sequence.
  for await (const { sequence, event, status } of watchExecution(client, execution_id)) {
    console.log(sequence, event.kind, status?.status ?? '');
    // An agent's response is an Any, decoded: {'@type': ..., ...fields} (a map step's join has none).
    const output = event.step_succeeded?.output;
    if (output) console.log('   ', output['@type'], output.quality.score);
    if (event.kind === 'step_waiting') {
      const { job_ids } = fromStruct(status.waiting[0].data);
      await call(client, 'SignalExecution', {
        execution_id,
        signal: 'SIGNAL_APPROVE',
        payload: toStruct({ job_ids: job_ids.slice(0, 1) }), // apply to the first job only
      });
    }
  }
  const status = await call(client, 'GetExecution', { execution_id });
  const { submit_applications } = fromStruct(status.results.intermediate_results);
  console.log(status.status, submit_applications.map((r) => r.applications[0].job_id));
  client.close();
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
