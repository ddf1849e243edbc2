// Validation of Kubernetes manifests against the upstream API schemas, without a cluster and
// without downloading anything: the `kubernetes-models` package is generated from the
// Kubernetes OpenAPI spec and ships, per kind, (1) a JSON-schema validator (types, enums,
// required fields) and (2) TypeScript interfaces of every field.
//
// The validators, like the upstream schema, accept unknown fields (`additionalProperties` is
// not false in the OpenAPI spec), so a misspelt `hostPId: true` would pass them while the API
// server drops it (or, with strict field validation, rejects it). kubeconform's -strict closes
// that gap; here the TypeScript compiler does: each manifest is type-checked as an object
// literal of the kind's interface, and excess-property checking reports every unknown field,
// at any depth. Together: roughly kubeconform -strict against the same upstream spec.
import { dirname, join } from "node:path";
import ts from "typescript";

export interface Manifest {
  /** where it came from, for messages: file and document index */
  where: string;
  obj: Record<string, unknown>;
}

const REPO = join(import.meta.dirname, "..", "..");

/** kubernetes-models module path of an apiVersion + kind, e.g. apps/v1 DaemonSet. */
export function modelPath(apiVersion: string, kind: string): string {
  if (!/^[A-Za-z0-9.-]+(\/[A-Za-z0-9]+)?$/.test(apiVersion) || !/^[A-Za-z]+$/.test(kind)) {
    throw new Error(`not an apiVersion/kind: ${apiVersion} ${kind}`);
  }
  return `kubernetes-models/${apiVersion}/${kind}`;
}

function typeMeta(m: Manifest): { apiVersion: string; kind: string } {
  const { apiVersion, kind } = m.obj;
  if (typeof apiVersion !== "string" || typeof kind !== "string") {
    throw new Error(`${m.where}: no apiVersion/kind`);
  }
  return { apiVersion, kind };
}

/** The generated JSON-schema validator of the manifest's kind; errors as strings. */
export async function schemaErrors(m: Manifest): Promise<string[]> {
  const { apiVersion, kind } = typeMeta(m);
  let mod: Record<string, unknown>;
  try {
    mod = (await import(modelPath(apiVersion, kind))) as Record<string, unknown>;
  } catch {
    return [`${m.where}: ${apiVersion} ${kind} is not a kind of the Kubernetes API`];
  }
  const Cls = mod[kind] as (new (d: unknown) => { validate(): void }) | undefined;
  if (!Cls) return [`${m.where}: ${apiVersion} ${kind} is not a kind of the Kubernetes API`];
  try {
    new Cls(m.obj).validate();
    return [];
  } catch (e) {
    return [`${m.where}: ${(e as Error).message}`];
  }
}

/**
 * Type-checks every manifest as a literal of its kind's interface (one program for all);
 * returns one message per diagnostic: unknown fields, wrong types, missing required fields
 * (with `partial`, for patches: no field is required). TypeScript stops at the first unknown
 * field of a manifest, so a manifest with two typos is reported once, then once again.
 */
export function strictFieldErrors(
  manifests: Manifest[],
  opts: { partial?: boolean } = {},
): string[] {
  // a virtual module inside the repository, so that `kubernetes-models` resolves from
  // node_modules exactly as in the test files themselves
  const file = join(REPO, "test", "support", "__k8s_strict_check__.ts");
  const parts: string[] = [];
  const spans: { start: number; end: number; m: Manifest; firstLine: number }[] = [];
  let text = "";
  manifests.forEach((m, i) => {
    const { apiVersion, kind } = typeMeta(m);
    parts.push(`import type { I${kind} as T${i} } from "${modelPath(apiVersion, kind)}";\n`);
  });
  // patches (strategic merge) are partial objects: every field optional, none unknown
  parts.push(
    "type P<T> = T extends (infer U)[] ? P<U>[] : T extends object ? { [K in keyof T]?: P<T[K]> } : T;\n",
  );
  text = parts.join("");
  manifests.forEach((m, i) => {
    const head = opts.partial ? `export const m${i}: P<T${i}> = ` : `export const m${i}: T${i} = `;
    const body = `${JSON.stringify(m.obj, null, 2)};\n`;
    const start = text.length;
    const firstLine = text.split("\n").length;
    text += head + body;
    spans.push({ start, end: text.length, m, firstLine });
  });
  const options: ts.CompilerOptions = {
    strict: true,
    noEmit: true,
    skipLibCheck: true,
    target: ts.ScriptTarget.ES2023,
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    types: [],
  };
  const host = ts.createCompilerHost(options);
  const getSourceFile = host.getSourceFile.bind(host);
  const fileExists = host.fileExists.bind(host);
  const readFile = host.readFile.bind(host);
  host.getSourceFile = (name, lang, onError, create) =>
    name === file
      ? ts.createSourceFile(name, text, lang, true)
      : getSourceFile(name, lang, onError, create);
  host.fileExists = (name) => name === file || fileExists(name);
  host.readFile = (name) => (name === file ? text : readFile(name));
  const program = ts.createProgram([file], options, host);
  const sf = program.getSourceFile(file);
  const diags = [...program.getSyntacticDiagnostics(sf), ...program.getSemanticDiagnostics(sf)];
  return diags.map((d) => {
    const msg = ts.flattenDiagnosticMessageText(d.messageText, "\n");
    const span = spans.find((s) => d.start !== undefined && d.start >= s.start && d.start < s.end);
    if (!span || d.start === undefined || !d.file) return `${dirname(file)}: ${msg}`;
    const line = d.file.getLineAndCharacterOfPosition(d.start).line + 1 - span.firstLine + 1;
    return `${span.m.where} (line ${line} of the manifest as JSON): ${msg}`;
  });
}
