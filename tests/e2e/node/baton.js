'use strict';
/**
 * A small Node.js client of baton's gRPC contract, written as a Node user would: @grpc/grpc-js and
 * @grpc/proto-loader over the .proto files in protos/, no generated code.
 *
 * The loader options (LOADER_OPTIONS) are the part that matters; each is chosen against a pitfall:
 *
 * - keepCase: true. Request and response objects use the proto's own snake_case names
 *   (workflow_type, execution_id, after_sequence), the names in baton's README, its JSON, grpcurl
 *   and the seed's API. With the default (false) proto-loader camelCases every field, and a
 *   snake_case key in a request is silently ignored: the request arrives empty. keepCase also keeps
 *   `type_url` as protobufjs's Any wrapper expects it, so `json: true` can expand Any values.
 * - longs: Number. baton's int64 fields are sequences, counts and byte sizes, all far below 2^53, so
 *   plain numbers are exact and `after_sequence: last` needs no conversion (pick String for int64
 *   identifiers; baton has none).
 * - enums: String. States read as 'EXECUTION_STATE_COMPLETED' instead of 3.
 * - defaults: true. Unset scalars read as their proto3 default (0, '', false, []), as every other
 *   language sees them, instead of undefined.
 * - oneofs: true. A oneof's name holds the name of the member that is set: an ExecutionEvent's
 *   `kind` is 'step_succeeded', and the payload is `event.step_succeeded`.
 * - json: true. A google.protobuf.Any whose type the loaded protos know (every agent's response)
 *   arrives decoded, {'@type': 'type.googleapis.com/baton.v1.X', ...fields}, instead of bytes
 *   (see unpackAny for an Any loaded without it).
 *
 * The well-known types (google/protobuf/{any,duration,struct,timestamp}.proto) come with
 * protobufjs; google/api/annotations.proto (the REST mapping on the service) comes from the
 * googleapis protos, found through BATON_GOOGLEAPIS_PROTOS or the project's .venv (the Python
 * package googleapis-common-protos ships them; the npm package google-proto-files does too).
 */

const fs = require('node:fs');
const path = require('node:path');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

const REPO = path.resolve(__dirname, '..', '..', '..');
const PROTOS = path.join(REPO, 'protos');

/** proto-loader options that make baton's messages natural in JavaScript (see the top of this file). */
const LOADER_OPTIONS = Object.freeze({
  keepCase: true,
  longs: Number,
  enums: String,
  defaults: true,
  oneofs: true,
  json: true,
});


/** Finds the directory holding google/api/annotations.proto. */
function googleapisProtos() {
  const candidates = [];
  if (process.env.BATON_GOOGLEAPIS_PROTOS) candidates.push(process.env.BATON_GOOGLEAPIS_PROTOS);
  const lib = path.join(REPO, '.venv', 'lib');
  if (fs.existsSync(lib)) {
    for (const python of fs.readdirSync(lib)) candidates.push(path.join(lib, python, 'site-packages'));
  }
  const found = candidates.find((dir) => fs.existsSync(path.join(dir, 'google', 'api', 'annotations.proto')));
  if (!found) {
    throw new Error(
      'google/api/annotations.proto not found: set BATON_GOOGLEAPIS_PROTOS to a directory holding it ' +
        "(the site-packages of Python's googleapis-common-protos, or node_modules/google-proto-files)",
    );
  }
  return found;
}

/**
 * Loads baton's contract.
 *
 * @param {object} [overrides] proto-loader options replacing LOADER_OPTIONS' (the tests use it to
 *   show what the defaults do).
 * @returns {{definition: object, v1: object}} the package definition (message types by full name)
 *   and the loaded `baton.v1` namespace (service constructors).
 */
function loadBaton(overrides = {}) {
  const dir = path.join(PROTOS, 'baton', 'v1');
  const files = fs
    .readdirSync(dir)
    .filter((name) => name.endsWith('.proto'))
    .sort()
    .map((name) => `baton/v1/${name}`);
  const definition = protoLoader.loadSync(files, {
    ...LOADER_OPTIONS,
    ...overrides,
    includeDirs: [PROTOS, googleapisProtos()],
  });
  return { definition, v1: grpc.loadPackageDefinition(definition).baton.v1 };
}

/** Returns an Orchestrator client to `target` (HOST:PORT), plaintext. */
function orchestrator(target, baton = loadBaton()) {
  return new baton.v1.Orchestrator(target, grpc.credentials.createInsecure());
}

/** Calls a unary RPC and resolves with its answer, with a deadline (default 10 s). */
function call(client, method, request, { timeoutMs = 10_000 } = {}) {
  return new Promise((resolve, reject) => {
    client[method](request, { deadline: Date.now() + timeoutMs }, (err, answer) =>
      err ? reject(err) : resolve(answer),
    );
  });
}

// google.protobuf.Struct. proto-loader sends a Struct as its message shape
// ({fields: {key: {stringValue: ...}}}); a plain JS object given in its place has no `fields`
// and is sent as an empty Struct, silently. These convert both ways. Mind the names: protobufjs
// always uses its own bundled google/protobuf/*.proto, whose Value members are camelCase
// (stringValue, structValue, ...) whatever keepCase says (Any's stay type_url and value).

/** Converts a JSON-like JS value to a google.protobuf.Value. */
function toValue(value) {
  if (value === null || value === undefined) return { nullValue: 'NULL_VALUE' };
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new TypeError(`a Struct holds finite numbers only, not ${value}`);
    return { numberValue: value };
  }
  if (typeof value === 'string') return { stringValue: value };
  if (typeof value === 'boolean') return { boolValue: value };
  if (Array.isArray(value)) return { listValue: { values: value.map(toValue) } };
  if (typeof value === 'object') return { structValue: toStruct(value) };
  throw new TypeError(`a Struct cannot hold a ${typeof value}`);
}

/** Converts a plain JS object to a google.protobuf.Struct. */
function toStruct(object) {
  if (object === null || typeof object !== 'object' || Array.isArray(object)) {
    throw new TypeError('a Struct is made from a plain object');
  }
  return { fields: Object.fromEntries(Object.entries(object).map(([key, value]) => [key, toValue(value)])) };
}

/** Converts a google.protobuf.Value (as loaded, or as toValue builds it) to a JS value. */
function fromValue(value) {
  if (!value) return null;
  // Loaded with oneofs: true, `kind` names the member; toValue's objects have only the member.
  const kind = value.kind || Object.keys(value).find((key) => value[key] !== undefined && value[key] !== null);
  switch (kind) {
    case 'numberValue':
      return value.numberValue;
    case 'stringValue':
      return value.stringValue;
    case 'boolValue':
      return value.boolValue;
    case 'listValue':
      return (value.listValue.values || []).map(fromValue);
    case 'structValue':
      return fromStruct(value.structValue);
    default:
      return null;
  }
}

/** Converts a google.protobuf.Struct to a plain JS object ({} for an unset Struct). */
function fromStruct(struct) {
  if (!struct || !struct.fields) return {};
  return Object.fromEntries(Object.entries(struct.fields).map(([key, value]) => [key, fromValue(value)]));
}

// google.protobuf.Duration: an object {seconds, nanos}, never a bare number (proto-loader throws
// "object expected" for one).

/** Returns a google.protobuf.Duration of `ms` milliseconds. */
function durationFromMs(ms) {
  if (!Number.isFinite(ms)) throw new TypeError(`a Duration needs a finite number of milliseconds, not ${ms}`);
  const seconds = Math.trunc(ms / 1000);
  return { seconds, nanos: Math.round((ms - seconds * 1000) * 1e6) };
}

/** Returns a google.protobuf.Duration's length in milliseconds (0 for an unset one). */
function durationToMs(duration) {
  if (!duration) return 0;
  return Number(duration.seconds) * 1000 + duration.nanos / 1e6;
}

/**
 * Decodes a google.protobuf.Any into a plain object of its message type, looked up by its type URL
 * in the loaded protos. An Any that `json: true` already expanded is returned as it is.
 *
 * @returns {object | null} the message's fields plus '@type' (null for an unset Any).
 */
function unpackAny(any, baton) {
  if (!any) return null;
  if (any['@type']) return any;
  const typeName = any.type_url.slice(any.type_url.lastIndexOf('/') + 1);
  const type = baton.definition[typeName];
  if (!type || type.format !== 'Protocol Buffer 3 DescriptorProto') {
    throw new Error(`unknown message type in an Any: ${any.type_url}`);
  }
  return { '@type': any.type_url, ...type.deserialize(Buffer.from(any.value)) };
}

/**
 * Watches an execution to its end, resuming a broken stream where it broke.
 *
 * Yields every update once and in sequence order (heartbeats are skipped). When the stream breaks
 * (UNAVAILABLE: the server restarted or a proxy cut it) it opens a new one with after_sequence set
 * to the last sequence yielded, so nothing is missed or repeated. It ends when the server ends the
 * stream (after the terminal event); it throws on any other error, or after `maxResumes` resumes
 * in a row without progress.
 *
 * @param {object} client an Orchestrator client.
 * @param {string} executionId the execution.
 * @param {object} [options]
 * @param {number} [options.afterSequence] the last sequence already seen (0: from the start).
 * @param {number} [options.maxResumes] resumes allowed in a row without an update (default 5).
 * @param {number} [options.resumeDelayMs] the wait before each resume (default 200 ms).
 * @param {string} [options.view] the WatchView (default 'WATCH_VIEW_FULL': every event, in order
 *   without gaps; the other views skip events, never repeat them).
 * @param {(call: object) => void} [options.onCall] called with each stream opened (the tests use
 *   it to break one).
 */
async function* watchExecution(client, executionId, options = {}) {
  const { maxResumes = 5, resumeDelayMs = 200, onCall = () => {}, view = 'WATCH_VIEW_FULL' } = options;
  let last = options.afterSequence || 0;
  let fruitless = 0;
  for (;;) {
    const stream = client.WatchExecution({ execution_id: executionId, after_sequence: last, view });
    onCall(stream);
    try {
      for await (const update of stream) {
        if (update.heartbeat) continue;
        // A resumed stream starts after `last`; a repeat would be a server bug worth seeing.
        if (update.sequence <= last) throw new Error(`update ${update.sequence} repeated (after ${last})`);
        last = update.sequence;
        fruitless = 0;
        yield update;
      }
      return;
    } catch (err) {
      // UNAVAILABLE is what a cut connection and a server shutting down give (the server ends
      // its watches UNAVAILABLE on SIGTERM); any other code is an answer, not a break.
      if (err.code !== grpc.status.UNAVAILABLE || ++fruitless > maxResumes) throw err;
      await new Promise((resolve) => setTimeout(resolve, resumeDelayMs));
    } finally {
      stream.cancel();
    }
  }
}

module.exports = {
  LOADER_OPTIONS,
  call,
  durationFromMs,
  durationToMs,
  fromStruct,
  fromValue,
  grpc,
  loadBaton,
  orchestrator,
  toStruct,
  toValue,
  unpackAny,
  watchExecution,
};
