import * as core from '@actions/core';
import { Inputs } from '../constants.js';
import { type SourceList, sourceOptions } from '../sources/descriptor.js';
import { buildSettings, type Env, type RawInputs, type Settings } from './settings.js';

/**
 * The action's settings: every input read here and nowhere else (the shared ones and those the
 * sources declare); secrets masked at once.
 */
export function settingsFromInputs(env: Env, sources: SourceList): Settings {
  const options = sourceOptions(sources);
  const raw: Record<string, string> = {};
  for (const name of [...Object.values(Inputs), ...options.map((o) => o.name)])
    raw[name] = core.getInput(name);
  const secretInputs = [
    Inputs.HfToken,
    Inputs.RegistryPassword,
    ...options.filter((o) => o.type === 'secret').map((o) => o.name),
  ];
  for (const name of secretInputs) if (raw[name]) core.setSecret(raw[name]);
  const settings = buildSettings(raw as RawInputs, {
    env,
    nameOf: (name) => `input "${name}"`,
    settingText: (name, value) => `${name}: ${value}`,
    sourceOptions: options,
  });
  for (const secret of settings.secrets) core.setSecret(secret);
  return settings;
}
