// Lint config for the renderer. ESLint 10 looks a config up from each linted file's folder, so this file (not the
// root one) applies here: it keeps the root rules, including the import direction (the renderer reaches the app
// only through app/contract.ts), and extends them to the <script> blocks of .svelte components, which a small
// processor hands to the TypeScript parser (no Svelte parser for ESLint is installed).
import root from '../eslint.config.js';

/** The root config's rules for renderer files (the import direction), reused rather than copied. */
const rendererRules = root.find((c) => Array.isArray(c.files) && c.files.includes('renderer/**/*.ts'))?.rules;
if (!rendererRules) throw new Error('eslint.config.js has no block for renderer/**/*.ts: the import-direction rule would be lost');

/** Line offset of each extracted script block, by virtual file name. */
const offsets = new Map();

const svelteScripts = {
  meta: { name: 'lrnet-svelte-scripts', version: '1.0.0' },
  preprocess(text, filename) {
    const blocks = [];
    const re = /<script\b[^>]*>([\s\S]*?)<\/script>/g;
    let match;
    let index = 0;
    while ((match = re.exec(text)) !== null) {
      const start = match.index + match[0].indexOf('>') + 1;
      const line = text.slice(0, start).split('\n').length - 1;
      const name = `${index++}.ts`;
      offsets.set(`${filename}/${name}`, line);
      blocks.push({ text: match[1], filename: name });
    }
    return blocks;
  },
  postprocess(messages, filename) {
    return messages.flatMap((list, i) => {
      const offset = offsets.get(`${filename}/${i}.ts`) ?? 0;
      return list.map((m) => ({ ...m, line: m.line + offset, ...(m.endLine ? { endLine: m.endLine + offset } : {}) }));
    });
  },
  supportsAutofix: false,
};

// The root config's objects are reused as they are (its TypeScript setup and shared rules); only the
// folder-relative patterns are restated for this folder.
export default [
  ...root,
  { ignores: ['dist/'] },
  { files: ['**/*.ts', '**/*.js', '**/*.svelte'], rules: rendererRules },
  { files: ['**/*.svelte'], processor: svelteScripts },
  {
    // Script blocks: names used only by the markup look unused here (svelte-check reports real unused locals), and
    // props and bound variables are declared with `let` by Svelte's design.
    files: ['**/*.svelte/*.ts'],
    rules: { '@typescript-eslint/no-unused-vars': 'off', 'prefer-const': 'off' },
  },
  {
    // The build config runs in Node.
    files: ['vite.config.js', 'eslint.config.js'],
    rules: { 'no-restricted-imports': 'off' },
  },
];
