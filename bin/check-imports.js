#!/usr/bin/env node
// Import rules that eslint's no-restricted-imports cannot express, run by `npm run check`:
//   1. no import cycles among the files of engine/ and app/ (type-only and dynamic imports count: a cycle of
//      types still ties the two files' design together, and the next value import turns it into a runtime cycle);
//   2. inside app/, imports go only downward through the layers below (a file may import its own folder).
// Usage: node bin/check-imports.js [ROOT]   (ROOT: the folder holding engine/ and app/; default: this project)
// Prints one line per problem and exits 1 when there is any.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

/** The checked folders. */
const SCOPES = ['engine', 'app'];
const SOURCE = /\.(ts|js|mjs)$/;

/**
 * app/'s layers, lowest first: the API contract at the bottom; the store and the data sets; exports (which use the
 * store); runs (deleting a run deletes its exports' files); the services behind the contract; the headless host;
 * the CLI, which starts the host.
 * An entry names a file or folder directly inside app/.
 */
const APP_LAYERS = [['contract.ts'], ['store', 'data'], ['export'], ['runs'], ['services.ts'], ['host'], ['cli']];

function sourceFiles(root, dir) {
  const full = path.join(root, dir);
  if (!fs.existsSync(full)) return [];
  return fs.readdirSync(full, { withFileTypes: true }).flatMap((entry) => {
    const rel = path.posix.join(dir, entry.name);
    if (entry.isDirectory()) return entry.name === 'node_modules' ? [] : sourceFiles(root, rel);
    return SOURCE.test(entry.name) && !entry.name.endsWith('.d.ts') ? [rel] : [];
  });
}

/** The project file a relative specifier names, or undefined (packages, and paths tsc reports anyway). */
function resolve(root, from, specifier) {
  if (!specifier.startsWith('.')) return undefined;
  const target = path.posix.normalize(path.posix.join(path.posix.dirname(from), specifier));
  const candidates = [target, target.replace(/\.js$/, '.ts'), `${target}.ts`, `${target}/index.ts`];
  return candidates.find((c) => fs.existsSync(path.join(root, c)) && fs.statSync(path.join(root, c)).isFile());
}

/** Map from each file to the project files it imports (static, type-only, re-exports and dynamic import()). */
function importGraph(root) {
  const graph = new Map();
  for (const file of SCOPES.flatMap((scope) => sourceFiles(root, scope))) {
    const { importedFiles } = ts.preProcessFile(fs.readFileSync(path.join(root, file), 'utf8'), true, true);
    const targets = importedFiles.map((i) => resolve(root, file, i.fileName)).filter((t) => t !== undefined);
    graph.set(file, [...new Set(targets)]);
  }
  return graph;
}

/** One cycle per strongly connected component of more than one file (or a file importing itself), Tarjan's way. */
function cycles(graph) {
  const index = new Map();
  const low = new Map();
  const stack = [];
  const onStack = new Set();
  const found = [];
  let next = 0;
  const visit = (v) => {
    index.set(v, next);
    low.set(v, next++);
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!graph.has(w)) continue;
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v), low.get(w)));
      } else if (onStack.has(w)) {
        low.set(v, Math.min(low.get(v), index.get(w)));
      }
    }
    if (low.get(v) !== index.get(v)) return;
    const component = new Set();
    let w;
    do {
      w = stack.pop();
      onStack.delete(w);
      component.add(w);
    } while (w !== v);
    if (component.size > 1 || (graph.get(v) ?? []).includes(v)) found.push(cycleThrough(graph, component, v));
  };
  for (const v of [...graph.keys()].sort()) if (!index.has(v)) visit(v);
  return found;
}

/** A path start -> ... -> start inside the component (breadth-first, so the shortest). */
function cycleThrough(graph, component, start) {
  const previous = new Map();
  const queue = [start];
  while (queue.length > 0) {
    const v = queue.shift();
    for (const w of graph.get(v) ?? []) {
      if (!component.has(w)) continue;
      if (w === start) {
        const chain = [v];
        while (chain[0] !== start) chain.unshift(previous.get(chain[0]));
        return [...chain, start];
      }
      if (!previous.has(w)) {
        previous.set(w, v);
        queue.push(w);
      }
    }
  }
  return [start, start];
}

/** The layer of an app/ file ({ unit, layer }), or undefined when APP_LAYERS does not list its folder. */
function appLayer(file) {
  const unit = file.split('/')[1];
  const layer = APP_LAYERS.findIndex((units) => units.includes(unit));
  return layer < 0 ? undefined : { unit, layer };
}

function layeringProblems(graph) {
  const order = APP_LAYERS.map((units) => units.join(', ')).join(' < ');
  const problems = [];
  for (const [file, targets] of graph) {
    if (!file.startsWith('app/')) continue;
    const from = appLayer(file);
    if (!from) {
      problems.push(`${file}: app/${file.split('/')[1]} has no layer; add it to APP_LAYERS in bin/check-imports.js`);
      continue;
    }
    for (const target of targets) {
      if (!target.startsWith('app/')) continue;
      const to = appLayer(target);
      if (!to || to.unit === from.unit || to.layer < from.layer) continue;
      problems.push(`${file} imports ${target}: inside app/, imports go only downward (${order})`);
    }
  }
  return problems;
}

const root = path.resolve(process.argv[2] ?? path.join(path.dirname(fileURLToPath(import.meta.url)), '..'));
const graph = importGraph(root);
const problems = [
  ...cycles(graph).map((cycle) => `import cycle: ${cycle.join(' -> ')}`),
  ...layeringProblems(graph),
];
for (const problem of problems) console.error(problem);
if (problems.length > 0) {
  console.error(`${problems.length} import problem${problems.length === 1 ? '' : 's'} (bin/check-imports.js)`);
  process.exitCode = 1;
}
