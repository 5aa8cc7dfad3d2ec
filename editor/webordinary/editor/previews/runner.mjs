// One Astro dev server for one session worktree.
//   node runner.mjs CONFIG.json   start it now
//   node runner.mjs --standby     import Astro from the cwd's node_modules first, then wait for
//                                 the CONFIG path on stdin: a warm spare saves ~3 s of CPU
// The JSON comes from webordinary.editor.previews.devconfig: {root, inline}. Astro is resolved
// from the worktree (node walks up to the shared {sessions}/node_modules), and the inline config
// is merged by Astro over the project's own astro.config, which stays untouched.
import { realpathSync } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join, sep } from 'node:path';
import { pathToFileURL } from 'node:url';

const STALE = 75;

async function packageStamp(entry) {
  const info = await stat(join(dirname(entry), '..', 'package.json'));
  return `${info.mtimeMs}:${info.size}`;
}

async function preload(dir) {
  try {
    const entry = createRequire(join(dir, 'package.json')).resolve('astro');
    const stamp = await packageStamp(entry);
    return { entry, stamp, module: await import(pathToFileURL(entry).href) };
  } catch (error) {
    console.error(`standby: nothing preloaded from ${dir}: ${error.message}`);
    return null;
  }
}

async function firstLine(stream) {
  let data = '';
  stream.setEncoding('utf8');
  for await (const chunk of stream) {
    data += chunk;
    const end = data.indexOf('\n');
    if (end >= 0) return data.slice(0, end).trim();
  }
  return data.trim();
}

let configPath = process.argv[2];
let warm = null;
if (configPath === '--standby') {
  warm = await preload(process.cwd());
  configPath = await firstLine(process.stdin);
  if (!configPath) process.exit(0);
  // Nothing preloaded (node_modules were not installed yet): node caches the failed lookups,
  // so this process could not load Astro now either. A fresh process takes over.
  if (warm === null) process.exit(STALE);
}

const config = JSON.parse(await readFile(configPath, 'utf8'));
process.chdir(config.root);
const entry = createRequire(join(config.root, 'package.json')).resolve('astro');
let astro;
if (warm && warm.entry === entry) {
  if ((await packageStamp(entry)) !== warm.stamp) {
    console.error('standby: astro changed on disk since it was preloaded');
    process.exit(STALE);
  }
  astro = warm.module;
} else {
  astro = await import(pathToFileURL(entry).href);
}
// The guard: every request whose file (in the project or public/, or named by /@fs/) resolves
// outside the serve roots is answered 404 before Vite sees it, so symlinks and path probes
// never serve a file from elsewhere, and the answer names no path.
function realOrNull(path) {
  try { return realpathSync(path); } catch { return null; }
}
const roots = (config.serveRoots || [config.root]).map((r) => realOrNull(r) || r);
const inside = (path) => roots.some((root) => path === root || path.startsWith(root + sep));
function refused(rawUrl) {
  let path = (rawUrl || '/').split('?')[0];
  try { path = decodeURIComponent(path); } catch { return true; }
  if (path.includes('\0')) return true;
  if (config.base && (path === config.base || path.startsWith(config.base + '/'))) {
    path = path.slice(config.base.length) || '/';
  }
  const candidates = [];
  if (path.startsWith('/@fs/')) {
    candidates.push(path.slice('/@fs'.length));
  } else {
    candidates.push(join(config.root, 'public', path), join(config.root, path));
  }
  for (const candidate of candidates) {
    const real = realOrNull(candidate);
    if (real !== null && !inside(real)) return true;
    if (real === null && path.startsWith('/@fs/')) return true;
  }
  return false;
}
const guard = {
  name: 'webordinary-guard',
  enforce: 'pre',
  configureServer(server) {
    server.middlewares.use((req, res, next) => {
      if (!refused(req.url)) return next();
      res.statusCode = 404;
      res.setHeader('Content-Type', 'text/plain; charset=utf-8');
      res.end('Not found\n');
    });
  },
};
config.inline.vite = { ...(config.inline.vite || {}) };
config.inline.vite.plugins = [...(config.inline.vite.plugins || []), guard];
const server = await astro.dev(config.inline);

const stop = () => {
  setTimeout(() => process.exit(0), 1000).unref();
  server.stop().finally(() => process.exit(0));
};
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
