/**
 * UTF-8 decoder test vectors of Autobahn's case6_x_x.py (`createUtf8TestSequences`,
 * after Markus Kuhn's UTF-8-test.txt). Carried over as data, in the same
 * order: group i becomes case section 6.(5 + i), vector j becomes 6.(5 + i).(j + 1).
 */
import { isCompleteUtf8 } from '../utf8.js';

export interface Utf8Vector {
  valid: boolean;
  payload: Buffer;
}

export interface Utf8Group {
  name: string;
  vectors: Utf8Vector[];
}

const h = (x: string): Buffer => Buffer.from(x, 'hex');
const ok = (x: string): Utf8Vector => ({ valid: true, payload: h(x) });
const bad = (x: string): Utf8Vector => ({ valid: false, payload: h(x) });
const HELLO = '68656c6c6f'; // "hello"
const WORLD = '776f726c64'; // "world"

export function createUtf8TestSequences(): Utf8Group[] {
  const groups: Utf8Group[] = [];

  // 1 Some correct UTF-8 text ("κόσμε")
  const vss = h('cebae1bdb9cf83cebcceb5');
  groups.push({
    name: 'Some valid UTF-8 sequences',
    vectors: [
      ok(HELLO + '24' + WORLD), // U+0024
      ok(HELLO + 'c2a2' + WORLD), // U+00A2
      ok(HELLO + 'e282ac' + WORLD), // U+20AC
      ok(HELLO + 'f0a4ada2' + WORLD), // U+24B62
      { valid: true, payload: vss },
    ],
  });

  // all prefixes of correct UTF-8 text: valid iff they end on a code point
  const prefixes: Utf8Vector[] = [];
  for (let i = 1; i <= vss.length; i++) {
    const p = Buffer.from(vss.subarray(0, i));
    prefixes.push({ valid: isCompleteUtf8(p), payload: p });
  }
  groups.push({ name: 'All prefixes of a valid UTF-8 string that contains multi-byte code points', vectors: prefixes });

  // 2.1 First possible sequence of a certain length
  groups.push({
    name: 'First possible sequence of a certain length',
    vectors: [ok('00'), ok('c280'), ok('e0a080'), ok('f0908080')],
  });
  // conform to the UTF-8 integer encoding scheme, but beyond U+10FFFF
  groups.push({
    name: 'First possible sequence length 5/6 (invalid codepoints)',
    vectors: [bad('f888808080'), bad('fc8480808080')],
  });

  // 2.2 Last possible sequence of a certain length
  groups.push({
    name: 'Last possible sequence of a certain length',
    vectors: [ok('7f'), ok('dfbf'), ok('efbfbf'), ok('f48fbfbf')],
  });
  groups.push({
    name: 'Last possible sequence length 4/5/6 (invalid codepoints)',
    vectors: [bad('f7bfbfbf'), bad('fbbfbfbfbf'), bad('fdbfbfbfbfbf')],
  });

  // 2.3 Other boundary conditions
  groups.push({
    name: 'Other boundary conditions',
    vectors: [ok('ed9fbf'), ok('ee8080'), ok('efbfbd'), ok('f48fbfbf'), bad('f4908080')],
  });

  // 3.1 Unexpected continuation bytes
  const cont = [bad('80'), bad('bf'), bad('80bf'), bad('80bf80'), bad('80bf80bf'), bad('80bf80bf80'), bad('80bf80bf80bf')];
  const allCont: number[] = [];
  for (let i = 0x80; i < 0xbf; i++) allCont.push(i); // 0x80..0xbe, as in the original
  cont.push({ valid: false, payload: Buffer.from(allCont) });
  groups.push({ name: 'Unexpected continuation bytes', vectors: cont });

  // 3.2 Lonely start characters (each followed by a space)
  const lonely: Utf8Vector[] = [];
  for (const [lo, hi] of [
    [0xc0, 0xdf],
    [0xe0, 0xef],
    [0xf0, 0xf7],
    [0xf8, 0xfb],
    [0xfc, 0xfd],
  ] as const) {
    const s: number[] = [];
    for (let i = lo; i < hi; i++) s.push(i, 0x20);
    lonely.push({ valid: false, payload: Buffer.from(s) });
  }
  groups.push({ name: 'Lonely start characters', vectors: lonely });

  // 3.3 Sequences with last continuation byte missing
  const k = ['c0', 'e080', 'f08080', 'f8808080', 'fc80808080', 'df', 'efbf', 'f7bfbf', 'fbbfbfbf', 'fdbfbfbfbf'];
  groups.push({ name: 'Sequences with last continuation byte missing', vectors: k.map(bad) });

  // 3.4 Concatenation of incomplete sequences
  groups.push({ name: 'Concatenation of incomplete sequences', vectors: [bad(k.join(''))] });

  // 3.5 Impossible bytes
  groups.push({ name: 'Impossible bytes', vectors: [bad('fe'), bad('ff'), bad('fefeffff')] });

  // 4.1 Examples of an overlong ASCII character
  groups.push({
    name: 'Examples of an overlong ASCII character',
    vectors: [bad('c0af'), bad('e080af'), bad('f08080af'), bad('f8808080af'), bad('fc80808080af')],
  });

  // 4.2 Maximum overlong sequences
  groups.push({
    name: 'Maximum overlong sequences',
    vectors: [bad('c1bf'), bad('e09fbf'), bad('f08fbfbf'), bad('f887bfbfbf'), bad('fc83bfbfbfbf')],
  });

  // 4.3 Overlong representation of the NUL character
  groups.push({
    name: 'Overlong representation of the NUL character',
    vectors: [bad('c080'), bad('e08080'), bad('f0808080'), bad('f880808080'), bad('fc8080808080')],
  });

  // 5.1 Single UTF-16 surrogates
  groups.push({
    name: 'Single UTF-16 surrogates',
    vectors: ['eda080', 'edadbf', 'edae80', 'edafbf', 'edb080', 'edbe80', 'edbfbf'].map(bad),
  });

  // 5.2 Paired UTF-16 surrogates
  groups.push({
    name: 'Paired UTF-16 surrogates',
    vectors: [
      'eda080edb080',
      'eda080edbfbf',
      'edadbfedb080',
      'edadbfedbfbf',
      'edae80edb080',
      'edae80edbfbf',
      'edafbfedb080',
      'edafbfedbfbf',
    ].map(bad),
  });

  // 5.3 Non-character code points: valid UTF-8 per RFC 3629
  const nonchars: Utf8Vector[] = [ok('efbfbe'), ok('efbfbf')];
  for (const z1 of ['f0', 'f1', 'f2', 'f3', 'f4']) {
    for (const z2 of ['8f', '9f', 'af', 'bf']) {
      if (z1 === 'f4' && z2 !== '8f') continue; // those encode code points > U+10FFFF
      for (const z3 of ['be', 'bf']) {
        const zz = z1 + z2 + 'bf' + z3;
        if (zz === 'f08fbfbe' || zz === 'f08fbfbf') continue; // overlong
        nonchars.push(ok(zz));
      }
    }
  }
  groups.push({ name: 'Non-character code points (valid UTF-8)', vectors: nonchars });

  // Unicode "specials" (replacement char etc.)
  groups.push({
    name: 'Unicode specials (i.e. replacement char)',
    vectors: ['efbfb9', 'efbfba', 'efbfbb', 'efbfbc', 'efbfbd', 'efbfbe', 'efbfbf'].map(ok),
  });

  return groups;
}
