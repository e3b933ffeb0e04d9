import { defineConfig } from 'vite';
import vue from '@vitejs/plugin-vue';

// The dev server proxies the API and the bundled OpenID provider to a running Backroll
// (BACKROLL_URL, default http://127.0.0.1:5050) so the app stays same-origin as in production.
const backend = process.env.BACKROLL_URL ?? 'http://127.0.0.1:5050';

export default defineConfig({
  base: '/',
  plugins: [vue()],
  server: {
    host: '127.0.0.1',
    proxy: {
      '/api': { target: backend, changeOrigin: false },
      '/oidc': { target: backend, changeOrigin: false },
    },
  },
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    target: 'es2022',
    // Each route is a dynamic import (router.ts) and so its own chunk; the framework
    // libraries get stable vendor chunks shared by every route.
    rollupOptions: {
      output: {
        manualChunks(id) {
          if (!id.includes('node_modules')) return undefined;
          if (/node_modules\/(@vue|vue|vue-router|pinia)\//.test(id)) return 'vue';
          return undefined;
        },
      },
    },
    chunkSizeWarningLimit: 700,
    manifest: true,
  },
});
