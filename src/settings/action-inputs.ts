import * as core from '@actions/core';
import { Inputs } from '../constants.js';
import { buildSettings, type Env, type RawInputs, type Settings } from './settings.js';

/** The action's settings: every input read here and nowhere else; secrets masked at once. */
export function settingsFromInputs(env: Env): Settings {
  const raw: Record<string, string> = {};
  for (const name of Object.values(Inputs)) raw[name] = core.getInput(name);
  for (const secret of [raw[Inputs.HfToken], raw[Inputs.RegistryPassword]])
    if (secret) core.setSecret(secret);
  const settings = buildSettings(raw as RawInputs, { env, nameOf: (name) => `input "${name}"` });
  for (const secret of settings.secrets) core.setSecret(secret);
  return settings;
}
