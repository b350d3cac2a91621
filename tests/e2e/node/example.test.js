'use strict';
/** The README's example (example.js) runs as shown: approved, completed, its updates in order. */

const assert = require('node:assert/strict');
const { execFile } = require('node:child_process');
const path = require('node:path');
const { test } = require('node:test');

const { target } = require('./support');

test("the README's example runs to completion against the real server", async () => {
  const { stdout } = await new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      [path.join(__dirname, 'example.js')],
      { env: { ...process.env, BATON_TARGET: target() }, timeout: 60_000 },
      (err, out, errOut) => (err ? reject(new Error(`${err.message}\n${out}\n${errOut}`)) : resolve({ stdout: out })),
    );
  });
  const lines = stdout.trim().split('\n');
  const sequences = lines.filter((line) => /^\d+ /.test(line)).map((line) => Number(line.split(' ')[0]));
  assert.deepEqual(
    sequences,
    sequences.map((_, i) => i + 1),
  );
  assert.ok(lines.some((line) => line.startsWith(`${sequences.length} execution_completed`)), stdout);
  assert.ok(lines.some((line) => / signal_received /.test(line)), stdout);
  assert.match(lines.at(-1), /^EXECUTION_STATE_COMPLETED \[ 'job-\d+' \]$/);
});
