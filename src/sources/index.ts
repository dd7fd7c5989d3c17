import type { SourceList } from './descriptor.js';
import { hfSource } from './hf/index.js';
import { ociSource } from './oci/index.js';
import { ollamaSource } from './ollama/index.js';
import { urlSource } from './url/index.js';

/**
 * The sources the action and the CLI pull with, one line each; a new source is its folder (with
 * a descriptor in its index.ts) and one line here. Order only matters for the wording of the
 * error on a line that no source claims.
 */
export const DEFAULT_SOURCES: SourceList = [ollamaSource, hfSource, ociSource, urlSource];
