'use strict';

const http = require('http');
const ms = require('ms');

const port = Number(process.env.PORT || 3000);
const startedAt = Date.now();

const server = http.createServer((req, res) => {
  if (req.url === '/healthz') {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end('ok\n');
    return;
  }
  const body = {
    service: 'sample-node',
    version: process.env.APP_VERSION || '1.0.0',
    uptime: ms(Date.now() - startedAt),
  };
  res.writeHead(200, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body) + '\n');
});

server.listen(port, () => {
  console.log(`sample-node listening on port ${port}`);
});

process.on('SIGTERM', () => server.close(() => process.exit(0)));
