// The store behind the test FHIR server: Medplum's MemoryRepository, with what the Medplum server's own
// (PostgreSQL) repository adds on every write and that the memory one leaves out, so that the tests
// see what a Medplum server does:
// - a transaction is atomic: a failed one leaves nothing behind (MemoryRepository.withTransaction
//   runs the callback without any rollback);
// - conditional references (`Patient?identifier=SYSTEM|VALUE` in Reference.reference) are resolved on
//   create and update: exactly one match becomes `Type/id`, none or several refuse the write (the
//   server's replaceConditionalReferences, packages/server/src/fhir/references.ts);
// - every written resource is validated against FHIR R4 (@medplum/core validateResource) and refused
//   with its issues when invalid (the server's strict mode);
// - an update that changes nothing makes no new version (the server's isNotModified);
// - the server, not the client, sets the id of a created resource, meta.versionId and meta.lastUpdated;
// - a search of an unknown resource type is refused (400), not answered with nothing;
// - history reads newest first without reordering the stored versions (MemoryRepository.readHistory
//   reverses its stored array in place, so every other read came out oldest first).
import {
  OperationOutcomeError,
  badRequest,
  createReference,
  deepEquals,
  notFound,
  parseSearchRequest,
  preconditionFailed,
  validateResource,
  validateResourceType,
} from '@medplum/core';
import { MemoryRepository } from '@medplum/fhir-router';

export class ServerRepository extends MemoryRepository {
  constructor() {
    super();
    this.transactionDepth = 0;
  }

  async createResource(resource, options) {
    const written = await this.prepareWrite(resource);
    if (!options?.assignedId) {
      written.id = this.generateId(); // the server names what a client creates
    }
    return this.store(written);
  }

  async updateResource(resource, options) {
    const written = await this.prepareWrite(resource);
    if (!written.id) {
      throw new OperationOutcomeError(badRequest('Missing id'));
    }
    const existing = this.storedResource(written.resourceType, written.id);
    if (options?.ifMatch) {
      if (!existing) {
        throw new OperationOutcomeError(notFound);
      }
      if (existing.meta?.versionId !== options.ifMatch) {
        throw new OperationOutcomeError(preconditionFailed);
      }
    }
    if (existing && deepEquals(withoutVersion(existing), withoutVersion(written))) {
      return structuredClone(existing);
    }
    return this.store(written);
  }

  /** A new version: MemoryRepository.createResource stores it (and overwrites the current one). */
  store(resource) {
    if (resource.meta) {
      delete resource.meta.versionId;
      delete resource.meta.lastUpdated;
    }
    return super.createResource(resource);
  }

  /** An unknown resource type is a bad request, not an empty result. */
  async search(searchRequest) {
    if (searchRequest.resourceType !== 'MultipleTypes') {
      validateResourceType(searchRequest.resourceType);
    }
    return super.search(searchRequest);
  }

  async readHistory(resourceType, id) {
    await this.readResource(resourceType, id);
    const versions = this.history.get(resourceType)?.get(id) ?? [];
    const entry = [...versions].reverse().map((version) => ({ resource: structuredClone(version) }));
    return { resourceType: 'Bundle', type: 'history', ...(entry.length ? { entry } : undefined) };
  }

  /** All or nothing: the outermost transaction restores the stored state when its callback fails. */
  async withTransaction(callback) {
    if (this.transactionDepth > 0) {
      this.transactionDepth++;
      try {
        return await callback(undefined);
      } finally {
        this.transactionDepth--;
      }
    }
    const saved = this.snapshot();
    this.transactionDepth = 1;
    try {
      return await callback(undefined);
    } catch (err) {
      this.restore(saved);
      throw err;
    } finally {
      this.transactionDepth = 0;
    }
  }

  storedResource(resourceType, id) {
    return this.resources.get(resourceType)?.get(id);
  }

  async prepareWrite(resource) {
    const written = structuredClone(resource);
    await this.resolveConditionalReferences(written, written.resourceType);
    try {
      validateResource(written);
    } catch (err) {
      if (err instanceof OperationOutcomeError) {
        throw err;
      }
      throw new OperationOutcomeError(badRequest(String(err?.message ?? err)));
    }
    return written;
  }

  /** Every `{reference: "Type?criteria"}` under `node` becomes the one resource it matches. */
  async resolveConditionalReferences(node, path) {
    if (Array.isArray(node)) {
      for (let i = 0; i < node.length; i++) {
        await this.resolveConditionalReferences(node[i], `${path}[${i}]`);
      }
      return;
    }
    if (!node || typeof node !== 'object') {
      return;
    }
    for (const [key, value] of Object.entries(node)) {
      if (isConditionalReference(value)) {
        node[key] = await this.resolveConditionalReference(value, `${path}.${key}`);
      } else if (Array.isArray(value) && value.some(isConditionalReference)) {
        for (let i = 0; i < value.length; i++) {
          if (isConditionalReference(value[i])) {
            value[i] = await this.resolveConditionalReference(value[i], `${path}.${key}[${i}]`);
          } else {
            await this.resolveConditionalReferences(value[i], `${path}.${key}[${i}]`);
          }
        }
      } else {
        await this.resolveConditionalReferences(value, `${path}.${key}`);
      }
    }
  }

  async resolveConditionalReference(reference, path) {
    const search = parseSearchRequest(reference.reference);
    search.count = 2;
    search.sortRules = undefined;
    const matches = await this.searchResources(search);
    if (matches.length !== 1) {
      const found = matches.length ? 'matched multiple' : 'did not match any';
      throw new OperationOutcomeError(badRequest(`Conditional reference '${reference.reference}' ${found} resources`, path));
    }
    return createReference(matches[0]);
  }

  snapshot() {
    const copy = (byType, copyValue) =>
      new Map([...byType].map(([type, byId]) => [type, new Map([...byId].map(([id, v]) => [id, copyValue(v)]))]));
    return { resources: copy(this.resources, (r) => r), history: copy(this.history, (versions) => [...versions]) };
  }

  restore(saved) {
    for (const name of ['resources', 'history']) {
      this[name].clear();
      for (const [type, byId] of saved[name]) {
        this[name].set(type, byId);
      }
    }
  }
}

function isConditionalReference(value) {
  return Boolean(value && typeof value === 'object' && !Array.isArray(value)
    && typeof value.reference === 'string' && /^[A-Z][A-Za-z]+\?/.test(value.reference));
}

function withoutVersion(resource) {
  const { versionId: _v, lastUpdated: _l, ...meta } = resource.meta ?? {};
  return { ...resource, meta };
}
