// Writes build-manifest.json next to the built assets: a hash of everything the build is made
// from (sources, configs, lockfile). tests/unit/test_console_build.py recomputes it, so a commit
// that changes web/ without rebuilding the shipped console fails the suite. The schema is not in
// it: the built files do not depend on it (codegen's types are for the typecheck only). That the
// console's documents fit the schema is tested on its own (tests/unit/test_console_documents.py),
// and CI's build typechecks the console against schema.graphql, so a new field in the API needs
// no rebuild of the console.
import { createHash } from "node:crypto";
import { readFileSync, readdirSync, statSync, writeFileSync } from "node:fs";
import { join, relative, sep } from "node:path";
import { fileURLToPath } from "node:url";

const web = fileURLToPath(new URL("..", import.meta.url));
const SKIP = new Set(["node_modules", "generated"]);

function walk(dir) {
  return readdirSync(dir).flatMap((name) => {
    if (SKIP.has(name)) return [];
    const path = join(dir, name);
    return statSync(path).isDirectory() ? walk(path) : [path];
  });
}

const files = walk(web)
  .map((p) => relative(web, p).split(sep).join("/"))
  .filter((p) => !p.startsWith("dist/"))
  .sort();
const hash = createHash("sha256");
for (const file of files) {
  hash.update(file + "\0");
  hash.update(readFileSync(join(web, file)));
  hash.update("\0");
}
const out = join(web, "..", "graphql_api", "console", "dist", "build-manifest.json");
writeFileSync(out, JSON.stringify({ sources: hash.digest("hex"), files }, null, 1) + "\n");
console.log(`build-manifest.json: ${files.length} source files hashed`);
