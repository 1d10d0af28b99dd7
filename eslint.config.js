// Lint rules, including the one-way import direction: renderer -> contract <- main/app -> engine.
// Import cycles and the layers inside app/ are checked by bin/check-imports.js (also part of `npm run check`).
import tseslint from 'typescript-eslint';

const forbid = (patterns, message) => ({
  'no-restricted-imports': ['error', { patterns: patterns.map((group) => ({ group: [group], message })) }],
});

export default tseslint.config(
  { ignores: ['node_modules/', 'dist/', 'out/', 'coverage/', 'test-artifacts/', 'renderer/dist/', 'scratch/'] },
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/no-non-null-assertion': 'off',
    },
  },
  {
    files: ['engine/**/*.ts'],
    rules: forbid(
      ['electron', 'better-sqlite3', '**/app/**', '**/main/**', '**/renderer/**', 'svelte', 'svelte/*'],
      'engine/ is pure TypeScript + TensorFlow.js: no Electron, DOM, SQLite or app imports.',
    ),
  },
  {
    files: ['app/**/*.ts'],
    rules: forbid(['electron', '**/main/**', '**/renderer/**'], 'app/ is shared by the CLI, the headless host and Electron main: no Electron or renderer imports.'),
  },
  {
    files: ['renderer/**/*.ts', 'renderer/**/*.svelte'],
    rules: forbid(
      ['electron', 'better-sqlite3', '**/engine/**', '**/main/**', '**/app/store/**', '**/app/runs/**', 'node:*'],
      'The renderer talks to the app only through the API contract.',
    ),
  },
);
