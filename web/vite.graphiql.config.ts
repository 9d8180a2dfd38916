import { defineConfig } from "vite";
import react from "@vitejs/plugin-react";

// GraphiQL from local assets (Strawberry's default page loads React and GraphiQL from unpkg).
// A separate build: it uses real React, while the console uses Preact.
export default defineConfig({
  plugins: [react()],
  root: "graphiql",
  base: "/console/graphiql/",
  define: { "process.env.NODE_ENV": JSON.stringify("production") },
  build: {
    outDir: "../../graphql_api/console/dist/graphiql",
    emptyOutDir: true,
    sourcemap: false,
    chunkSizeWarningLimit: 4000,
  },
});
