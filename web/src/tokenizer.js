// Text to source ids: runtime/text.py's cleaning and sentence splitting, the package's tokenizer
// (tokenizers.js), and the cutting of texts into sentence-sized id lists the model can take.
import { Tokenizer } from '@huggingface/tokenizers';
import { ModelError } from './errors.js';

const ABBREVIATIONS = new Set(
  'sr sra srta dr dra ud uds vd vds etc pág cap vol núm art av mr mrs ms st jr vs prof gen lt col sgt no fig ch vv cf ca'.split(' '));
const BOUNDARY = /([.!?…]+["'”’»)\]]*)(\s+)(?=[¿¡"'“‘«(\[]*[A-ZÁÉÍÓÚÑÜ0-9])/gu;
// Python's str.split() separators that survive clean_text's removal of control characters.
const PY_SPACE = /[ \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+/u;
const STRIP_QUOTES = '¿¡"\'“‘«(';

/** clean_text: drop control and format characters (tabs/newlines become spaces), NFC, collapse spaces. */
export function cleanText(text) {
  const kept = text.replace(/[\t\r\n\v\f]/g, ' ').replace(/[\p{Cc}\p{Cs}\p{Co}]|(?!\u200d)\p{Cf}/gu, '');
  return kept.normalize('NFC').split(PY_SPACE).filter(Boolean).join(' ');
}

function pyStrip(s, chars) {
  const cs = [...s];
  let a = 0, b = cs.length;
  while (a < b && chars.includes(cs[a])) a++;
  while (b > a && chars.includes(cs[b - 1])) b--;
  return cs.slice(a, b).join('');
}

/** split_sentences: at sentence-final punctuation followed by a capitalised word; abbreviations stay whole. */
export function splitSentences(text) {
  const pieces = [];
  let start = 0;
  for (const m of text.matchAll(BOUNDARY)) {
    const end1 = m.index + m[1].length, end2 = end1 + m[2].length;
    const before = text.slice(start, m.index);
    const words = before.split(PY_SPACE).filter(Boolean);
    const lastWord = words.length ? words[words.length - 1] : '';
    if (m[1] === '.' && (ABBREVIATIONS.has(pyStrip(lastWord.toLowerCase(), STRIP_QUOTES)) || [...lastWord].length === 1)) {
      continue; // "Sr. López", "J. R. R."
    }
    pieces.push(text.slice(start, end1).trim());
    start = end2;
  }
  const tail = text.slice(start).trim();
  if (tail) pieces.push(tail);
  return pieces.filter(Boolean);
}

/** A tokenizer file of the package (its bytes, checked against the manifest) -> a tokenizers.js Tokenizer. */
export function readTokenizer(name, bytes) {
  try {
    return new Tokenizer(JSON.parse(new TextDecoder().decode(bytes)), {});
  } catch (e) {
    throw new ModelError(`${name} could not be read: ${e.message}`);
  }
}

/**
 * Texts -> sentence-sized source id lists, remembering how to rejoin them (runtime/translator.py's
 * _segments): [{textIndex, ids, joiner}], ids = [...tag, ...subwords, eos], or [] for an empty line.
 * A text is cut at its lines; a line longer than half of maxSrc subwords into sentences; a sentence
 * longer than maxSrc into pieces of maxSrc. encode(text) gives a text's subword ids.
 */
export function segmentTexts(texts, encode, { tag, maxSrc, eos }) {
  const out = [];
  texts.forEach((text, i) => {
    let first = true;
    for (const raw of text.split('\n')) {
      const joiner = first ? '' : '\n';
      first = false;
      const line = cleanText(raw);
      if (!line) { out.push({ textIndex: i, ids: [], joiner }); continue; }
      let ids = encode(line);
      const parts = ids.length <= Math.floor(maxSrc / 2) ? [line] : splitSentences(line);
      parts.forEach((part, j) => {
        if (parts.length !== 1) ids = encode(part);
        const chunks = [];
        for (let c = 0; c < ids.length; c += maxSrc) chunks.push(ids.slice(c, c + maxSrc));
        if (!chunks.length) chunks.push([]);
        if (chunks.length > 1) {
          console.warn(`input ${i}: a sentence of ${ids.length} subwords exceeds the model's ${maxSrc}; translated in ${chunks.length} pieces`);
        }
        chunks.forEach((chunk, c) => out.push({ textIndex: i, ids: [...tag, ...chunk, eos], joiner: j === 0 && c === 0 ? joiner : ' ' }));
      });
    }
  });
  return out;
}
