/**
 * A strict reader of Omaha requests, as the update server takes them: the XML subset update_engine
 * writes (a declaration, elements with attributes, whitespace or text between them, comments) read
 * in one pass, in time linear in the body, to the parts the server uses: each <app> directly under
 * <request>, with its attributes and its <event>, <ping> and <updatecheck> children. Anything
 * outside that subset (a DOCTYPE, CDATA, a tag left open, mismatched tags, more than 32 levels,
 * an unknown entity) makes the whole request malformed: undefined. A general XML parser took ten
 * times as long, most of an update check's time.
 */

export interface OmahaApp {
  attributes: Record<string, string>;
  events: Record<string, string>[];
  ping: boolean;
  updateCheck: boolean;
}

const maxDepth = 32;
const name = /[A-Za-z_][A-Za-z0-9_.:-]*/y;
const attribute = /\s+([A-Za-z_][A-Za-z0-9_.:-]*)\s*=\s*(?:"([^"<]*)"|'([^'<]*)')/y;
const tagEnd = /\s*(\/?)>/y;
const predefined: Record<string, string> = { lt: '<', gt: '>', amp: '&', quot: '"', apos: "'" };

/** An attribute value with its entity and character references replaced; undefined for an unknown entity. */
function decode(value: string): string | undefined {
  if (!value.includes('&')) return value;
  let bad = false;
  const out = value.replace(/&(#x[0-9A-Fa-f]{1,6}|#[0-9]{1,7}|[a-z]{2,4});|&/g, (all, ref: string | undefined) => {
    if (ref === undefined) return ((bad = true), all);
    if (ref.startsWith('#')) {
      const code = ref[1] === 'x' ? Number.parseInt(ref.slice(2), 16) : Number(ref.slice(1));
      if (code > 0x10ffff || code === 0) return ((bad = true), all);
      return String.fromCodePoint(code);
    }
    const c = predefined[ref];
    if (c === undefined) bad = true;
    return c ?? all;
  });
  return bad ? undefined : out;
}

/** The apps of an Omaha request, or undefined when the body is not one (not in the subset, or its root is not <request>). */
export function readOmahaRequest(body: string): OmahaApp[] | undefined {
  const apps: OmahaApp[] = [];
  const stack: string[] = [];
  let rootSeen = false;
  let i = 0;
  for (;;) {
    const lt = body.indexOf('<', i);
    if (lt < 0) break;
    i = lt + 1;
    if (body.startsWith('?', i)) {
      // The declaration (or a processing instruction): skipped, only before the root.
      if (rootSeen) return undefined;
      const end = body.indexOf('?>', i);
      if (end < 0) return undefined;
      i = end + 2;
      continue;
    }
    if (body.startsWith('!--', i)) {
      const end = body.indexOf('-->', i + 3);
      if (end < 0) return undefined;
      i = end + 3;
      continue;
    }
    if (body.startsWith('/', i)) {
      name.lastIndex = i + 1;
      const m = name.exec(body);
      if (!m || stack.pop() !== m[0]) return undefined;
      i = name.lastIndex;
      tagEnd.lastIndex = i;
      const e = tagEnd.exec(body);
      if (!e || e[1]) return undefined;
      i = tagEnd.lastIndex;
      continue;
    }
    name.lastIndex = i;
    const m = name.exec(body);
    if (!m) return undefined; // <!DOCTYPE, <![CDATA[, or not a tag
    const tag = m[0];
    i = name.lastIndex;
    const attributes: Record<string, string> = Object.create(null) as Record<string, string>;
    for (;;) {
      attribute.lastIndex = i;
      const a = attribute.exec(body);
      if (!a) break;
      const value = decode(a[2] ?? a[3]!);
      if (value === undefined || a[1]! in attributes) return undefined;
      attributes[a[1]!] = value;
      i = attribute.lastIndex;
    }
    tagEnd.lastIndex = i;
    const e = tagEnd.exec(body);
    if (!e) return undefined;
    i = tagEnd.lastIndex;
    if (stack.length === 0) {
      if (rootSeen || tag !== 'request') return undefined;
      rootSeen = true;
    }
    const parent = stack.length === 1 ? 'request' : stack.length === 2 && stack[1] === 'app' ? 'app' : undefined;
    if (parent === 'request' && tag === 'app') apps.push({ attributes, events: [], ping: false, updateCheck: false });
    if (parent === 'app') {
      const app = apps[apps.length - 1]!;
      if (tag === 'event') app.events.push(attributes);
      else if (tag === 'ping') app.ping = true;
      else if (tag === 'updatecheck') app.updateCheck = true;
    }
    if (!e[1]) {
      if (stack.length >= maxDepth) return undefined;
      stack.push(tag);
    }
  }
  if (!rootSeen || stack.length > 0 || body.slice(i).trim() !== '') return undefined;
  return apps;
}
