// Imported first by the benchmarks, which run the TypeScript sources directly on Node 24 (type
// stripping): resolves the sources' NodeNext-style ".js" specifiers to their ".ts" files. Only
// imports made after this module ran (the benchmarks' dynamic imports) go through it.
import { registerHooks } from "node:module";

registerHooks({
  resolve(specifier, context, next) {
    try {
      return next(specifier, context);
    } catch (e) {
      if (specifier.startsWith(".") && specifier.endsWith(".js")) {
        return next(`${specifier.slice(0, -3)}.ts`, context);
      }
      throw e;
    }
  },
});
