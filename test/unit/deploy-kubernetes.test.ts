// deploy/kubernetes: every manifest (the Kustomize base and the example overlays' patches) is
// valid against the Kubernetes API schemas (test/support/k8s-validate.ts: the generated
// validators of `kubernetes-models`, plus a strict unknown-field check); the base lists exactly
// the files it has; the DaemonSet mounts what the agent needs and is not privileged; the
// ConfigMap's daemon.yml and default policy parse and match their schemas. When kubectl is
// installed, `kubectl kustomize` renders the base and each overlay and the rendered objects are
// validated too (kubectl is not in scripts/prereqs.sh: Debian has no package of it).
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join, relative } from "node:path";
import { describe, expect, it } from "vitest";
import { parse, parseAllDocuments } from "yaml";
import { parseDaemonConfig } from "../../src/daemon/config.js";
import { parsePolicy } from "../../src/policy/load.js";
import { validateDaemonYml } from "../support/daemon-schema.js";
import { type Manifest, schemaErrors, strictFieldErrors } from "../support/k8s-validate.js";

const ROOT = join(import.meta.dirname, "..", "..");
const K8S = join(ROOT, "deploy", "kubernetes");
const BASE = join(K8S, "base");
const EXAMPLES = join(K8S, "examples");
const DAEMON_SCHEMA = join(ROOT, "schema", "daemon.v1.json");

// biome-ignore lint/suspicious/noExplicitAny: manifests are walked as plain JSON
type J = any;

function loadManifests(file: string): Manifest[] {
  const docs = parseAllDocuments(readFileSync(file, "utf8"));
  return docs.map((d, i) => {
    if (d.errors.length) throw new Error(`${file}: ${d.errors[0]?.message}`);
    return { where: `${relative(ROOT, file)}#${i}`, obj: d.toJS() as Record<string, unknown> };
  });
}

const kustomization = parse(readFileSync(join(BASE, "kustomization.yaml"), "utf8")) as {
  resources: string[];
  namespace: string;
  images: { name: string }[];
};
const base: Manifest[] = kustomization.resources.flatMap((r) => loadManifests(join(BASE, r)));
const byKind = (kind: string): J[] => base.filter((m) => m.obj.kind === kind).map((m) => m.obj);
const one = (kind: string): J => {
  const all = byKind(kind);
  if (all.length !== 1) throw new Error(`expected one ${kind}, found ${all.length}`);
  return all[0];
};

const overlays = readdirSync(EXAMPLES, { withFileTypes: true })
  .filter((e) => e.isDirectory())
  .map((e) => join(EXAMPLES, e.name));

/** Patches of an overlay are partial objects: only the strict field check applies to them. */
function overlayPatches(dir: string): Manifest[] {
  const k = parse(readFileSync(join(dir, "kustomization.yaml"), "utf8")) as {
    patches?: { path: string }[];
  };
  return (k.patches ?? []).flatMap((p) => loadManifests(join(dir, p.path)));
}

function kubectl(): string | undefined {
  for (const dir of (process.env.PATH ?? "").split(":")) {
    if (dir && existsSync(join(dir, "kubectl"))) return join(dir, "kubectl");
  }
  return undefined;
}

function render(dir: string): Manifest[] {
  const r = spawnSync(kubectl() as string, ["kustomize", dir], { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`kubectl kustomize ${dir}: ${r.stderr}`);
  return parseAllDocuments(r.stdout).map((d, i) => ({
    where: `kustomize ${relative(ROOT, dir)}#${i}`,
    obj: d.toJS() as Record<string, unknown>,
  }));
}

describe("deploy/kubernetes/base: the Kustomize base", () => {
  it("lists exactly the manifests in its directory", () => {
    const files = readdirSync(BASE)
      .filter((f) => /\.ya?ml$/.test(f) && f !== "kustomization.yaml")
      .sort();
    expect([...kustomization.resources].sort()).toEqual(files);
  });

  it("every manifest is valid against the Kubernetes API schema", async () => {
    expect(base.length).toBeGreaterThanOrEqual(5);
    const errors = (await Promise.all(base.map(schemaErrors))).flat();
    expect(errors).toEqual([]);
  });

  it("no manifest has a field the Kubernetes API does not know (strict)", () => {
    expect(strictFieldErrors(base)).toEqual([]);
  });

  it("the checks are real: a type error and a misspelt field are both caught", async () => {
    const ds = structuredClone(one("DaemonSet"));
    ds.spec.template.spec.containers[0].ports[0].containerPort = "9464";
    expect((await schemaErrors({ where: "bad", obj: ds })).join()).toMatch(
      /containerPort must be integer/,
    );
    // TypeScript reports the first unknown field of each manifest: one per manifest here
    const ds2 = structuredClone(one("DaemonSet"));
    ds2.spec.template.spec.hostPId = true;
    const ds3 = structuredClone(one("DaemonSet"));
    ds3.spec.template.spec.containers[0].securityContext.capabilitie = {};
    const strict = strictFieldErrors([
      { where: "bad2", obj: ds2 },
      { where: "bad3", obj: ds3 },
    ]);
    expect(strict).toEqual([
      expect.stringMatching(/^bad2 .*'"?hostPId"?' does not exist in type 'IPodSpec'/),
      expect.stringMatching(/^bad3 .*'"?capabilitie"?' does not exist in type 'ISecurityContext'/),
    ]);
    expect(
      strictFieldErrors([{ where: "bad", obj: { apiVersion: "v1", kind: "Pod", spec: {} } }]),
    ).toEqual([expect.stringMatching(/'"?containers"?' is missing/)]);
  });

  it("has no RBAC: the agent calls no Kubernetes API", () => {
    for (const m of base) expect(String(m.obj.apiVersion)).not.toMatch(/rbac\.authorization/);
    expect(one("ServiceAccount").automountServiceAccountToken).toBe(false);
    expect(one("DaemonSet").spec.template.spec.automountServiceAccountToken).toBe(false);
  });

  it("puts everything in one namespace labelled privileged for Pod Security admission", () => {
    const ns = one("Namespace");
    expect(ns.metadata.name).toBe(kustomization.namespace);
    expect(ns.metadata.labels["pod-security.kubernetes.io/enforce"]).toBe("privileged");
    for (const m of base) {
      if (m.obj.kind !== "Namespace")
        expect((m.obj.metadata as J).namespace).toBe(ns.metadata.name);
    }
  });
});

describe("deploy/kubernetes/base: the DaemonSet", () => {
  const ds = one("DaemonSet");
  const pod = ds.spec.template.spec;
  const c = pod.containers[0];
  const mount = (path: string): J => c.volumeMounts.find((m: J) => m.mountPath === path);
  const volume = (name: string): J => pod.volumes.find((v: J) => v.name === name);
  const hostPathAt = (path: string): J => {
    const m = mount(path);
    expect(m, `a volume mounted at ${path}`).toBeDefined();
    return { mount: m, hostPath: volume(m.name)?.hostPath };
  };

  it("is not privileged: five capabilities, everything else dropped", () => {
    expect(pod.containers).toHaveLength(1);
    expect(c.securityContext.privileged).toBe(false);
    expect(c.securityContext.allowPrivilegeEscalation).toBe(false);
    expect(c.securityContext.readOnlyRootFilesystem).toBe(true);
    expect(c.securityContext.capabilities.drop).toEqual(["ALL"]);
    expect([...c.securityContext.capabilities.add].sort()).toEqual([
      "BPF",
      "DAC_READ_SEARCH",
      "NET_ADMIN",
      "PERFMON",
      "SYS_PTRACE",
    ]);
    expect(pod.hostPID).toBe(true);
    expect(pod.hostNetwork).toBe(false);
    expect(pod.hostIPC).toBeUndefined();
    expect(pod.securityContext.seccompProfile.type).toBe("RuntimeDefault");
  });

  it("mounts the host file systems the agent uses, read-only except bpffs and the job logs", () => {
    const want: [string, boolean][] = [
      ["/sys/fs/bpf", false],
      ["/sys/kernel/tracing", true],
      ["/sys/fs/cgroup", true],
      ["/sys/kernel/btf", true],
      ["/sys/kernel/security", true],
    ];
    for (const [path, ro] of want) {
      const { mount: m, hostPath } = hostPathAt(path);
      expect(hostPath, path).toEqual({ path, type: "Directory" });
      expect(Boolean(m.readOnly), path).toBe(ro);
      // Bidirectional needs privileged, and the agent mounts nothing
      expect(m.mountPropagation ?? "None", path).not.toBe("Bidirectional");
    }
    const jobs = hostPathAt("/var/lib/dpndncy");
    expect(jobs.hostPath).toEqual({ path: "/var/lib/dpndncy", type: "DirectoryOrCreate" });
    expect(jobs.mount.readOnly).toBeUndefined();
    // every hostPath volume is one of those: nothing else of the host is reachable
    const hostPaths = pod.volumes.filter((v: J) => v.hostPath).map((v: J) => v.hostPath.path);
    expect(hostPaths.sort()).toEqual([...want.map(([p]) => p), "/var/lib/dpndncy"].sort());
  });

  it("has a projected token with audience sigstore for keyless signing", () => {
    const tok = volume(mount("/var/run/secrets/tokens").name).projected.sources[0]
      .serviceAccountToken;
    expect(tok.audience).toBe("sigstore");
    expect(tok.path).toBe("sigstore");
    expect(tok.expirationSeconds).toBeGreaterThanOrEqual(600);
  });

  it("runs on every node, first to stay, one node at a time on upgrade", () => {
    expect(pod.tolerations).toEqual([{ operator: "Exists" }]);
    expect(pod.priorityClassName).toBe("system-node-critical");
    expect(ds.spec.updateStrategy).toEqual({
      type: "RollingUpdate",
      rollingUpdate: { maxUnavailable: 1 },
    });
    expect(pod.terminationGracePeriodSeconds).toBeGreaterThanOrEqual(60);
    expect(c.resources.requests).toBeDefined();
    expect(c.resources.limits.memory).toBeDefined();
    expect(c.resources.limits.cpu).toBeUndefined();
  });

  it("probes the metrics port, which the Service exposes with scrape annotations", () => {
    expect(c.ports).toEqual([{ name: "metrics", containerPort: 9464, protocol: "TCP" }]);
    for (const p of [c.readinessProbe, c.livenessProbe]) {
      expect(p.httpGet).toEqual({ path: "/metrics", port: "metrics" });
    }
    const svc = one("Service");
    expect(svc.spec.type).toBe("ClusterIP");
    expect(svc.spec.ports).toEqual([
      { name: "metrics", port: 9464, targetPort: "metrics", protocol: "TCP" },
    ]);
    expect(svc.metadata.annotations).toMatchObject({
      "prometheus.io/scrape": "true",
      "prometheus.io/port": "9464",
    });
    for (const [k, v] of Object.entries(svc.spec.selector)) {
      expect(ds.spec.template.metadata.labels[k]).toBe(v);
    }
    expect(ds.spec.selector.matchLabels).toEqual(ds.spec.template.metadata.labels);
  });

  it("runs the supervisor on the ConfigMap's daemon.yml, with the image the base names", () => {
    expect(c.command.slice(-3)).toEqual(["daemon", "--config", "/etc/dpndncy/daemon.yml"]);
    expect(mount("/etc/dpndncy").readOnly).toBe(true);
    const cm = volume(mount("/etc/dpndncy").name).configMap;
    expect(cm.name).toBe(one("ConfigMap").metadata.name);
    expect(c.image.split(":")[0]).toBe(kustomization.images[0]?.name);
  });
});

describe("deploy/kubernetes/base: daemon.yml and the default policy", () => {
  const cm = one("ConfigMap");
  const daemon = parse(cm.data["daemon.yml"]) as J;
  const pod = one("DaemonSet").spec.template.spec;
  const mounts: string[] = pod.containers[0].volumeMounts.map((m: J) => m.mountPath);
  const under = (p: string) => mounts.some((m) => p === m || p.startsWith(`${m}/`));

  it("daemon.yml parses and keeps its paths on the pod's volumes", () => {
    expect(daemon.mode).toBe("observe");
    expect(daemon.metrics.listen).toBe("0.0.0.0:9464");
    for (const p of [daemon.jobsDir, daemon.stateDir, daemon.policyDir]) {
      expect(under(p), p).toBe(true);
    }
    // the policy files reach policyDir through the config volume's items
    const items = pod.volumes.find((v: J) => v.configMap).configMap.items;
    expect(items).toContainEqual({ key: "default.yml", path: "policies/default.yml" });
    expect(daemon.policyDir).toBe("/etc/dpndncy/policies");
    expect(daemon.signing).toBeUndefined();
  });

  it.skipIf(!existsSync(DAEMON_SCHEMA))("daemon.yml is valid against schema/daemon.v1.json", () => {
    expect(validateDaemonYml(DAEMON_SCHEMA, daemon)).toEqual([]);
  });

  it("daemon.yml is accepted by the supervisor's own loader (src/daemon/config.ts)", () => {
    const c = parseDaemonConfig(cm.data["daemon.yml"], "/etc/dpndncy/daemon.yml");
    expect(c.mode).toBe("observe");
    expect(c.signing).toBeUndefined();
  });

  it("the default policy loads as a dpndncy policy and is the systemd example's", () => {
    const text = cm.data["default.yml"] as string;
    expect(parsePolicy(text, "default.yml").allow.length).toBeGreaterThan(0);
    expect(text).toBe(
      readFileSync(join(ROOT, "deploy", "systemd", "policies", "default.yml"), "utf8"),
    );
  });
});

describe("deploy/kubernetes/examples: signing overlays", () => {
  it("there are two: keyless and signing-key", () => {
    expect(overlays.map((d) => relative(EXAMPLES, d)).sort()).toEqual(["keyless", "signing-key"]);
  });

  for (const dir of overlays) {
    const name = relative(EXAMPLES, dir);
    const daemon = parse(readFileSync(join(dir, "daemon.yml"), "utf8")) as J;

    it(`${name}: its patches name only fields the Kubernetes API knows`, () => {
      expect(strictFieldErrors(overlayPatches(dir), { partial: true })).toEqual([]);
    });

    it(`${name}: daemon.yml is accepted by the supervisor's loader`, () => {
      const c = parseDaemonConfig(
        readFileSync(join(dir, "daemon.yml"), "utf8"),
        "/etc/dpndncy/daemon.yml",
      );
      expect(c.signing?.kind).toBe(name === "keyless" ? "keyless" : "key");
    });

    it.skipIf(!existsSync(DAEMON_SCHEMA))(`${name}: daemon.yml is valid against the schema`, () => {
      expect(validateDaemonYml(DAEMON_SCHEMA, daemon)).toEqual([]);
    });

    it.skipIf(!kubectl())(`${name}: kubectl kustomize renders it, every object valid`, async () => {
      const out = render(dir);
      expect((await Promise.all(out.map(schemaErrors))).flat()).toEqual([]);
      expect(strictFieldErrors(out)).toEqual([]);
      const kind = (k: string): J => {
        const m = out.find((o) => o.obj.kind === k);
        if (!m) throw new Error(`no ${k} rendered`);
        return m.obj;
      };
      const cm = kind("ConfigMap");
      expect(parse(cm.data["daemon.yml"])).toEqual(daemon);
      const pod = kind("DaemonSet").spec.template.spec;
      const mounts: string[] = pod.containers[0].volumeMounts.map((m: J) => m.mountPath);
      const file: string = daemon.signing.key ?? daemon.signing.identityTokenFile;
      expect(
        mounts.some((m) => file.startsWith(`${m}/`)),
        file,
      ).toBe(true);
    });
  }

  it("keyless uses the projected token; signing-key a Secret mounted read-only", () => {
    const keyless = parse(readFileSync(join(EXAMPLES, "keyless", "daemon.yml"), "utf8")) as J;
    expect(keyless.signing.identityTokenFile).toBe("/var/run/secrets/tokens/sigstore");
    const patch = overlayPatches(join(EXAMPLES, "signing-key"))[0]?.obj as J;
    const vol = patch.spec.template.spec.volumes[0];
    expect(vol.secret).toEqual({ secretName: "dpndncy-signing-key", defaultMode: 0o400 });
    expect(patch.spec.template.spec.containers[0].volumeMounts[0].readOnly).toBe(true);
  });
});

describe.skipIf(!kubectl())("deploy/kubernetes/base rendered by kubectl kustomize", () => {
  it("renders, and every rendered object is valid", async () => {
    const out = render(BASE);
    expect(out.map((m) => m.obj.kind).sort()).toEqual(base.map((m) => m.obj.kind).sort());
    expect((await Promise.all(out.map(schemaErrors))).flat()).toEqual([]);
    expect(strictFieldErrors(out)).toEqual([]);
  });
});
