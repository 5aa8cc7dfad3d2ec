// One Astro dev server for one session worktree. Usage: node runner.mjs CONFIG.json
// The JSON comes from webordinary.editor.previews.devconfig: {root, inline}. Astro is resolved
// from the worktree (node walks up to the shared {sessions}/node_modules), and the inline config
// is merged by Astro over the project's own astro.config, which stays untouched.
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const config = JSON.parse(await readFile(process.argv[2], 'utf8'));
const require = createRequire(join(config.root, 'package.json'));
const { dev } = await import(pathToFileURL(require.resolve('astro')).href);
const server = await dev(config.inline);

const stop = () => {
  setTimeout(() => process.exit(0), 1000).unref();
  server.stop().finally(() => process.exit(0));
};
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
