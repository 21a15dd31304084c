// Column types in RisingWave's SQL spelling (`integer`, `varchar[]`, `struct<a int, b date>`),
// read with the rules crate's type names (policy.json's `schema.base_types`). The guest is
// the judge of a schema: a type this reader cannot read is passed to it for its own words.

import { POLICY } from './policy.js';

const BASE = POLICY.schema.base_types; // alias -> canonical name

/** A type: `{kind: 'base', name}`, `{kind: 'list', element}` or `{kind: 'struct', fields: [[name, type]]}`; throws on bad text. */
export function parseType(text) {
  const p = { s: text, i: 0 };
  const ty = parseAt(p);
  skip(p);
  if (p.i !== p.s.length) throw new SyntaxError(`unexpected text after a type: ${text.slice(p.i)}`);
  return ty;
}

function skip(p) {
  while (p.i < p.s.length && /\s/.test(p.s[p.i])) p.i += 1;
}

function parseAt(p, depth = 0) {
  if (depth > 100) throw new SyntaxError('a type nested too deeply');
  skip(p);
  let ty;
  if (p.s.slice(p.i, p.i + 7).toLowerCase() === POLICY.schema.struct_open) {
    p.i += 7;
    const fields = [];
    for (;;) {
      skip(p);
      let name;
      if (p.s[p.i] === '"') {
        const end = p.s.indexOf('"', p.i + 1);
        if (end < 0) throw new SyntaxError('an unterminated quoted field name');
        name = p.s.slice(p.i + 1, end);
        p.i = end + 1;
      } else {
        const m = /^[^\s,<>"]+/.exec(p.s.slice(p.i));
        if (!m) throw new SyntaxError('a struct field without a name');
        name = m[0];
        p.i += name.length;
      }
      fields.push([name, parseAt(p, depth + 1)]);
      skip(p);
      if (p.s[p.i] === ',') { p.i += 1; continue; }
      if (p.s[p.i] === '>') { p.i += 1; break; }
      throw new SyntaxError('a struct without its closing `>`');
    }
    ty = { kind: 'struct', fields };
  } else {
    // The longest base name that matches here (`double precision` before `double`).
    const rest = p.s.slice(p.i).toLowerCase();
    const name = Object.keys(BASE)
      .filter((n) => rest.startsWith(n) && !/[a-z0-9_]/.test(rest[n.length] ?? ''))
      .sort((a, b) => b.length - a.length)[0];
    if (!name) throw new SyntaxError(`unknown type at ${p.s.slice(p.i)}`);
    p.i += name.length;
    ty = { kind: 'base', name: BASE[name] };
  }
  for (;;) {
    skip(p);
    if (p.s.slice(p.i, p.i + 2) !== POLICY.schema.list_suffix) break;
    p.i += 2;
    ty = { kind: 'list', element: ty };
  }
  return ty;
}
