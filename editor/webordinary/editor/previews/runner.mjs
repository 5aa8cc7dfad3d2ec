// One Astro dev server for one session worktree.
//   node runner.mjs CONFIG.json   start it now
//   node runner.mjs --standby     import Astro from the cwd's node_modules first, then wait for
//                                 the CONFIG path on stdin: a warm spare saves ~3 s of CPU
// The JSON comes from webordinary.editor.previews.devconfig: {root, inline}. Astro is resolved
// from the worktree (node walks up to the shared {sessions}/node_modules), and the inline config
// is merged by Astro over the project's own astro.config, which stays untouched.
import { readFile, stat } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
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
const server = await astro.dev(config.inline);

const stop = () => {
  setTimeout(() => process.exit(0), 1000).unref();
  server.stop().finally(() => process.exit(0));
};
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
