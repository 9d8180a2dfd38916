// Types for every operation the console sends, checked against the service's schema: a schema
// change that breaks a query fails `npm run build`.
import type { CodegenConfig } from "@graphql-codegen/cli";

const config: CodegenConfig = {
  schema: "../schema.graphql",
  documents: ["src/**/*.ts", "src/**/*.tsx"],
  generates: {
    "src/generated/graphql.ts": {
      plugins: ["typescript-operations"],
      config: {
        avoidOptionals: { field: true, inputValue: false, object: true },
        enumsAsTypes: true,
        scalars: { DateTime: "string", Date: "string", JSON: "any" },
      },
    },
  },
  ignoreNoDocuments: false,
};
export default config;
