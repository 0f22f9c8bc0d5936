/**
 * The one edit we make to a pgbouncer.ini: the host/port/dbname of a [databases] entry, keeping
 * every other setting of the entry (user, password, pool_size…) and every other line as written.
 */

export interface Backend {
  host: string;
  port: number;
  /** Server-side database name; unchanged when absent. */
  database?: string;
}

const SECTION = /^\s*\[([^\]]+)\]\s*$/;
const PAIR = /([A-Za-z_]+)\s*=\s*('(?:[^'\\]|\\.)*'|[^\s']+)/g;

function entryName(line: string): string | undefined {
  const m = /^\s*("(?:[^"]|"")+"|[^=\s;#]+)\s*=/.exec(line);
  if (!m) return undefined;
  const name = m[1]!;
  return name.startsWith('"') ? name.slice(1, -1).replace(/""/g, '"') : name;
}

function locate(ini: string, entry: string): { lines: string[]; index: number } {
  const lines = ini.split('\n');
  let section = '';
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    const header = SECTION.exec(line);
    if (header) section = header[1]!.trim().toLowerCase();
    else if (section === 'databases' && !/^\s*[;#]/.test(line) && entryName(line) === entry) return { lines, index: i };
  }
  throw new Error(`no entry '${entry}' in the [databases] section`);
}

export function readBackend(ini: string, entry: string): Record<string, string> {
  const { lines, index } = locate(ini, entry);
  const connstr = lines[index]!.slice(lines[index]!.indexOf('=') + 1);
  return Object.fromEntries([...connstr.matchAll(PAIR)].map((m) => [m[1]!, m[2]!.replace(/^'|'$/g, '')]));
}

export function rewriteBackend(ini: string, entry: string, backend: Backend): string {
  const { lines, index } = locate(ini, entry);
  const line = lines[index]!;
  const eq = line.indexOf('=');
  const settings = new Map<string, string>([...line.slice(eq + 1).matchAll(PAIR)].map((m) => [m[1]!, m[2]!]));
  settings.set('host', backend.host);
  settings.set('port', String(backend.port));
  if (backend.database) settings.set('dbname', backend.database);
  lines[index] = `${line.slice(0, eq).trimEnd()} = ${[...settings].map(([k, v]) => `${k}=${v}`).join(' ')}`;
  return lines.join('\n');
}
