// The FHIR server of the tests: Medplum's transaction engine (@medplum/fhir-router, the code the Medplum
// server runs) over ServerRepository, behind plain node:http. It answers the FHIR REST API at BASE:
// transaction and batch Bundles POSTed to BASE, create (conditional with If-None-Exist), read, vread,
// update (conditional with a search URL; If-Match), patch, delete, search (GET and POST _search),
// instance history, Patient/ID/$everything and GET metadata.
//
//   node server.mjs [--port 0] [--base /fhir] [--token SECRET]
//
// It listens on 127.0.0.1 only and prints one JSON line when it is ready: {"ready": true, "port": N,
// "base": "http://127.0.0.1:N/fhir"} (port 0: the system picks a free one). With --token every request
// must carry `Authorization: Bearer SECRET` (401 otherwise). Transaction Bundles are transactions (the
// engine's `transactions` setting; a Medplum project without the transaction-bundles feature processes
// them as batches). One request runs at a time, so each transaction is isolated as the engine's
// serializable transactions are.
import {
  OperationOutcomeError,
  allOk,
  badRequest,
  getStatus,
  isOk,
  normalizeOperationOutcome,
  notFound,
  unauthorized,
} from '@medplum/core';
import { FhirRouter } from '@medplum/fhir-router';
import { createServer } from 'node:http';
import { parseArgs } from 'node:util';
import { loadR4Definitions, patientCompartment } from './definitions.mjs';
import { ServerRepository } from './repository.mjs';

const MAX_BODY_BYTES = 64 * 1024 * 1024;

const { values: args } = parseArgs({
  options: {
    port: { type: 'string', default: '0' },
    base: { type: 'string', default: '/fhir' },
    token: { type: 'string', default: '' },
  },
});
const basePath = '/' + args.base.replace(/^\/+|\/+$/g, '');

loadR4Definitions();
const repo = new ServerRepository();
const router = new FhirRouter();
router.add('GET', 'Patient/:id/$everything', everything);
const config = { transactions: true };
const compartment = patientCompartment();
let baseUrl = '';
let queue = Promise.resolve();

/** Patient/ID/$everything: the patient and every resource of its compartment (R4 CompartmentDefinition). */
async function everything(req, repository) {
  const patient = await repository.readResource('Patient', req.params.id);
  const seen = new Set([`Patient/${patient.id}`]);
  const entry = [{ resource: patient, search: { mode: 'match' } }];
  for (const { code, param } of compartment.resource) {
    for (const name of param ?? []) {
      const found = await repository.searchResources({
        resourceType: code,
        filters: [{ code: name, operator: 'eq', value: `Patient/${patient.id}` }],
      }).catch(() => []); // a compartment parameter Medplum has no SearchParameter for
      for (const resource of found) {
        const key = `${resource.resourceType}/${resource.id}`;
        if (!seen.has(key)) {
          seen.add(key);
          entry.push({ resource, search: { mode: 'include' } });
        }
      }
    }
  }
  return [allOk, { resourceType: 'Bundle', type: 'searchset', total: entry.length, entry }];
}

function capabilityStatement() {
  return {
    resourceType: 'CapabilityStatement',
    status: 'active',
    date: new Date().toISOString(),
    kind: 'instance',
    fhirVersion: '4.0.1',
    format: ['application/fhir+json'],
    software: { name: 'oligo-adapter test FHIR server (Medplum fhir-router)' },
    rest: [{ mode: 'server', interaction: [{ code: 'transaction' }, { code: 'batch' }] }],
  };
}

/** fullUrl on every entry that names a stored resource, as a server's answers carry. */
function addFullUrls(bundle) {
  for (const entry of bundle.entry ?? []) {
    if (entry?.resource?.id && entry.resource.resourceType && !entry.fullUrl) {
      entry.fullUrl = `${baseUrl}/${entry.resource.resourceType}/${entry.resource.id}`;
    }
  }
  return bundle;
}

async function readBody(req) {
  const chunks = [];
  let size = 0;
  for await (const chunk of req) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) {
      throw new OperationOutcomeError(badRequest('Request body too large'));
    }
    chunks.push(chunk);
  }
  if (!size) {
    return undefined;
  }
  const text = Buffer.concat(chunks).toString('utf8');
  const contentType = req.headers['content-type'] ?? '';
  if (contentType.startsWith('application/x-www-form-urlencoded')) {
    return Object.fromEntries(new URLSearchParams(text));
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new OperationOutcomeError(badRequest(`Request body is not JSON: ${err.message}`));
  }
}

function send(res, status, body, headers = {}) {
  const data = body === undefined ? '' : JSON.stringify(body);
  res.writeHead(status, {
    'Content-Type': 'application/fhir+json; charset=utf-8',
    'Content-Length': Buffer.byteLength(data),
    ...headers,
  });
  res.end(data);
}

async function answer(req, res) {
  if (args.token && req.headers.authorization !== `Bearer ${args.token}`) {
    send(res, 401, unauthorized);
    return;
  }
  const url = new URL(req.url, baseUrl);
  if (url.pathname !== basePath && !url.pathname.startsWith(basePath + '/')) {
    send(res, 404, notFound);
    return;
  }
  const path = url.pathname.slice(basePath.length).replace(/^\/+/, '');
  if (req.method === 'GET' && path === 'metadata') {
    send(res, 200, capabilityStatement());
    return;
  }
  const body = await readBody(req);
  const [outcome, resource] = await router.handleRequest(
    {
      method: req.method,
      url: path + url.search,
      pathname: '',
      params: {},
      query: {},
      body,
      headers: req.headers,
      config,
    },
    repo
  );
  const status = getStatus(outcome);
  if (!isOk(outcome) || !resource) {
    send(res, status, outcome);
    return;
  }
  const headers = {};
  if (resource.meta?.versionId) {
    headers.ETag = `W/"${resource.meta.versionId}"`;
    headers['Last-Modified'] = new Date(resource.meta.lastUpdated).toUTCString();
  }
  if (status === 201 && resource.id) {
    headers.Location = `${baseUrl}/${resource.resourceType}/${resource.id}/_history/${resource.meta?.versionId}`;
  }
  send(res, status, resource.resourceType === 'Bundle' ? addFullUrls(resource) : resource, headers);
}

const server = createServer((req, res) => {
  // One request at a time: the transactions of MemoryRepository are isolated only if nothing interleaves.
  queue = queue.then(() =>
    answer(req, res).catch((err) => {
      const outcome = normalizeOperationOutcome(err);
      if (!res.headersSent) {
        send(res, getStatus(outcome), outcome);
      }
    })
  );
});
server.listen(Number(args.port), '127.0.0.1', () => {
  const { port } = server.address();
  baseUrl = `http://127.0.0.1:${port}${basePath}`;
  process.stdout.write(JSON.stringify({ ready: true, port, base: baseUrl }) + '\n');
});
for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => {
    server.close(() => process.exit(0));
    server.closeAllConnections();
  });
}
