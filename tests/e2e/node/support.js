'use strict';
/** What the tests share: the server's address, and a TCP proxy whose connections a test can cut. */

const net = require('node:net');

/** The orchestrator under test (HOST:PORT), from BATON_TARGET; tests/e2e/test_node_client.py sets it. */
function target() {
  const address = process.env.BATON_TARGET;
  if (!address) {
    throw new Error('BATON_TARGET is not set: start `baton serve` and set it to its HOST:PORT');
  }
  return address;
}

/**
 * A TCP proxy on 127.0.0.1 in front of `upstream`, as a load balancer that drops connections:
 * cut() destroys every connection open through it (new ones are still accepted).
 */
async function cuttableProxy(upstream) {
  const separator = upstream.lastIndexOf(':');
  const host = upstream.slice(0, separator);
  const port = Number(upstream.slice(separator + 1));
  const sockets = new Set();
  let accepted = 0;
  const track = (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => socket.destroy());
  };
  const server = net.createServer((downstream) => {
    accepted += 1;
    const up = net.connect(port, host);
    track(downstream);
    track(up);
    downstream.pipe(up);
    up.pipe(downstream);
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  return {
    address: `127.0.0.1:${server.address().port}`,
    /** Connections accepted so far. */
    get accepted() {
      return accepted;
    },
    /** Destroys every open connection, both sides. */
    cut() {
      for (const socket of sockets) socket.destroy();
    },
    /** Stops accepting and closes what is open. */
    close() {
      this.cut();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

module.exports = { cuttableProxy, target };
