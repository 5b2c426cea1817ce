// Reading a model package over HTTP (runtime/package.py's reader): manifest.json, config.json and
// the files of one variant, each checked against the manifest's size and sha256 before use.
import { now } from './clock.js';
import { ModelError } from './errors.js';
import { sha256Hex } from './sha256.js';

export const FORMAT = 'traductor-model';
export const READABLE_VERSIONS = [5, 6, 7, 8];

/**
 * Fetch and check the package at `baseUrl` (a directory URL): its manifest and config, then the
 * tokenizer file(s) and the variant's two graphs. options: variant (default: chooseVariant), fetch,
 * onProgress (see load()). -> {base, config, variant, tokenizers: [[name, bytes]], encoder: [name,
 * bytes], decoder: [name, bytes], files (the names fetched, config.json aside), total (bytes),
 * downloadMs}.
 */
export async function fetchPackage(baseUrl, options = {}) {
  const t0 = now();
  const base = new URL(baseUrl.endsWith('/') ? baseUrl : `${baseUrl}/`, globalThis.location ? globalThis.location.href : undefined).href;
  const fetchImpl = options.fetch || globalThis.fetch.bind(globalThis);
  const progress = options.onProgress || (() => {});
  progress({ phase: 'config', file: 'config.json', loaded: 0, total: 0 });
  const { files, config, configBytes } = await fetchConfig(base, fetchImpl);
  const variant = options.variant || chooseVariant(config, files);
  const v = config.variants[variant];
  if (!v) throw new ModelError(`model has no variant ${JSON.stringify(variant)}; it has: ${Object.keys(config.variants).join(', ')}`);
  const tokFiles = [...new Set([config.tokenizers.source, config.tokenizers.target])];
  const names = [...tokFiles, v.encoder, v.decoder];
  const entries = names.map((name) => needEntry(files, name, variant));
  const total = entries.reduce((s, e) => s + e.size, 0) + configBytes.length;
  const loaded = new Map();
  const report = (file) => (n) => {
    loaded.set(file, n);
    progress({ phase: 'download', file, loaded: configBytes.length + [...loaded.values()].reduce((s, x) => s + x, 0), total });
  };
  const hint = ` (this copy of the package lacks the ${variant} variant${variant === 'fp32' ? '; in a source checkout `make fp32` builds it' : ''})`;
  const blobs = await Promise.all(names.map((name, j) => fetchChecked(base + name, name, entries[j], fetchImpl, report(name), j >= tokFiles.length ? hint : '')));
  const downloadMs = now() - t0;
  for (const [j, name] of names.entries()) {
    progress({ phase: 'verify', file: name, loaded: total, total });
    await verifyHash(name, blobs[j], files);
  }
  const named = names.map((name, j) => [name, blobs[j]]);
  return { base, config, variant, tokenizers: named.slice(0, tokFiles.length), encoder: named[tokFiles.length],
    decoder: named[tokFiles.length + 1], files: names, total, downloadMs };
}

/** manifest.json's file list, and config.json checked against it and read. */
async function fetchConfig(base, fetchImpl) {
  const manifest = await fetchJson(fetchImpl, base, 'manifest.json');
  const files = manifest && manifest.files;
  if (!files || typeof files !== 'object') throw new ModelError('manifest.json is malformed: no files');
  const configBytes = await fetchChecked(base + 'config.json', 'config.json', needEntry(files, 'config.json'), fetchImpl, () => {});
  await verifyHash('config.json', configBytes, files);
  let config;
  try {
    config = checkConfig(JSON.parse(new TextDecoder().decode(configBytes)));
  } catch (e) {
    throw e instanceof ModelError ? e : new ModelError(`config.json is not valid JSON: ${e.message}`);
  }
  return { files, config, configBytes };
}

/** config.json checked: format, version, the fields a reader needs and their defaults. */
export function checkConfig(d) {
  if (!d || typeof d !== 'object') throw new ModelError('config.json does not hold a JSON object');
  if (d.format !== FORMAT) throw new ModelError(`not a traductor model (config.json format is ${JSON.stringify(d.format)})`);
  if (!READABLE_VERSIONS.includes(d.format_version)) {
    throw new ModelError(`unsupported model format version ${d.format_version}; this library reads versions ${READABLE_VERSIONS.join(', ')}`);
  }
  for (const key of ['dims', 'special_tokens', 'variants', 'default_variant', 'source_language', 'target_language']) {
    if (!(key in d)) throw new ModelError(`config.json is missing or has a malformed field: ${key}`);
  }
  // The defaults of runtime/package.py for fields a package may leave out.
  const io = {
    input_ids: 'input_ids', attention_mask: 'attention_mask', position: 'position', key_cross: 'key_cross_{i}',
    value_cross: 'value_cross_{i}', past_key_self: 'past_key_self_{i}', past_value_self: 'past_value_self_{i}',
    present_key_self: 'present_key_self_{i}', present_value_self: 'present_value_self_{i}', log_probs: 'log_probs',
    top_k: 'top_k', top_log_probs: 'top_log_probs', top_ids: 'top_ids', ...(d.io || {}),
  };
  const decoding = { beam_size: 4, length_penalty: 1.0, max_length_ratio: 2.0, max_length_extra: 10, source_pad_multiple: 8,
    min_length: 1, ...(d.decoding || {}) };
  const tokenizers = { source: 'tokenizer.json', target: 'tokenizer.json', ...(d.tokenizers || {}) };
  for (const side of ['source', 'target']) {
    const f = tokenizers[side];
    if (typeof f !== 'string' || !f || f.includes('/') || f.includes('\\') || f === '.' || f === '..') {
      throw new ModelError(`config.json: tokenizers.${side} must be a file name inside the package, got ${JSON.stringify(f)}`);
    }
  }
  if (![0, 1].includes(decoding.min_length)) throw new ModelError(`config.json: decoding.min_length must be 0 or 1, got ${decoding.min_length}`);
  if (!Number.isInteger(decoding.source_pad_multiple) || decoding.source_pad_multiple < 1) {
    throw new ModelError(`config.json: decoding.source_pad_multiple must be an integer >= 1, got ${decoding.source_pad_multiple}`);
  }
  return { ...d, io, decoding, tokenizers, language_tags: d.language_tags || {} };
}

/** The variant to load when none is asked for: int8 if the package has it, else the package default. */
export function chooseVariant(config, manifestFiles) {
  const have = Object.keys(config.variants).filter((v) => {
    const f = config.variants[v];
    return manifestFiles[f.encoder] && manifestFiles[f.decoder];
  });
  if (have.includes('int8')) return 'int8';
  if (have.includes(config.default_variant)) return config.default_variant;
  if (have.length) return have[0];
  throw new ModelError('the manifest lists none of the variants\' graphs');
}

/** One file's bytes, streamed with onBytes(loaded) and refused when longer or shorter than its
 * manifest entry says. */
async function fetchChecked(url, name, entry, fetchImpl, onBytes, hint = '') {
  let res;
  try {
    res = await fetchImpl(url);
  } catch (e) {
    throw new ModelError(`${name} could not be fetched from ${url}: ${e.message}`);
  }
  if (!res.ok) throw new ModelError(`${name} could not be fetched from ${url}: HTTP ${res.status}${res.status === 404 && hint ? hint : ''}`);
  const expected = entry ? entry.size : null;
  let bytes;
  if (res.body && expected !== null) {
    const reader = res.body.getReader();
    bytes = new Uint8Array(expected);
    let got = 0;
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      if (got + value.length > expected) {
        await reader.cancel();
        throw new ModelError(`${name} is larger than the ${expected} bytes the manifest says: the file was changed`);
      }
      bytes.set(value, got);
      got += value.length;
      onBytes(got);
    }
    if (got !== expected) throw new ModelError(`${name} is ${got} bytes, the manifest says ${expected}: the file is truncated or was changed`);
  } else {
    bytes = new Uint8Array(await res.arrayBuffer());
    onBytes(bytes.length);
  }
  return bytes;
}

async function fetchJson(fetchImpl, base, name) {
  let res;
  try {
    res = await fetchImpl(base + name);
  } catch (e) {
    throw new ModelError(`${name} could not be fetched from ${base}: ${e.message}`);
  }
  if (!res.ok) throw new ModelError(`${base} is not a traductor model: ${name} answered HTTP ${res.status}`);
  try {
    return await res.json();
  } catch (e) {
    throw new ModelError(`${name} is not valid JSON: ${e.message}`);
  }
}

function needEntry(files, name, variant) {
  const e = files[name];
  if (!e) {
    const hint = variant ? ` (the ${variant} variant is not in this package${variant === 'fp32' ? '; in a source checkout `make fp32` builds it' : ''})` : '';
    throw new ModelError(`${name} is not listed in manifest.json${hint}`);
  }
  return e;
}

async function verifyHash(name, bytes, files) {
  if ((await sha256Hex(bytes)) !== files[name].sha256) {
    throw new ModelError(`${name} does not match its sha256 in manifest.json: the file is corrupt or was changed`);
  }
}
