import { defineConfig } from "vite";
import preact from "@preact/preset-vite";

// The console: built into the Python package, served by `vkcp serve` at `/`.
export default defineConfig({
  plugins: [preact()],
  base: "/console/",
  build: {
    outDir: "../graphql_api/console/dist",
    emptyOutDir: true,
    assetsDir: "assets",
    sourcemap: false,
  },
});
