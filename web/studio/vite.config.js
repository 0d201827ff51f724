// The studio's build: web/studio -> farm/api/static/studio (gitignored), served by the farm at /studio.
import { fileURLToPath } from "node:url";
import { defineConfig } from "vite";

export default defineConfig({
  root: fileURLToPath(new URL(".", import.meta.url)),
  base: "/studio/",
  logLevel: "warn",
  build: {
    outDir: fileURLToPath(new URL("../../farm/api/static/studio", import.meta.url)),
    emptyOutDir: true,
    assetsDir: "assets",
    target: "es2022",
    modulePreload: { polyfill: false },
    reportCompressedSize: false,
  },
});
