// Bundles the preload bridge into one CommonJS file (out/main/preload.cjs, a build output): a sandboxed preload can require
// only 'electron', not the project's TypeScript files.
import { defineConfig } from 'vite';
import { fileURLToPath } from 'node:url';

export default defineConfig({
  root: fileURLToPath(new URL('.', import.meta.url)),
  build: {
    outDir: fileURLToPath(new URL('../out/main', import.meta.url)),
    emptyOutDir: true,
    target: 'es2022',
    minify: false,
    lib: { entry: fileURLToPath(new URL('./preload.ts', import.meta.url)), formats: ['cjs'], fileName: () => 'preload.cjs' },
    rollupOptions: { external: ['electron'] },
  },
});
