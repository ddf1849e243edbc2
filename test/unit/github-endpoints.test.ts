import { describe, expect, it } from "vitest";
import { defaultGithubAllow } from "../../src/action/github-endpoints.js";
import { endpointDirective, renderAgentConfig } from "../../src/agent/config.js";

describe("the GitHub endpoints enforce mode allows by default", () => {
  it("covers checkout, cache/artifacts and keyless signing, all on 443, as agent directives", () => {
    const allow = defaultGithubAllow("keyless", [undefined]);
    const lines = allow.map(endpointDirective);
    expect(lines).toEqual([
      "allow-host github.com:443",
      "allow-host api.github.com:443",
      "allow-host codeload.github.com:443",
      "allow-host objects.githubusercontent.com:443",
      "allow-suffix actions.githubusercontent.com:443",
      "allow-suffix blob.core.windows.net:443",
      "allow-host fulcio.sigstore.dev:443",
      "allow-host rekor.sigstore.dev:443",
      "allow-host fulcio.githubapp.com:443",
      "allow-host timestamp.githubapp.com:443",
    ]);
    const conf = renderAgentConfig({ mode: "enforce", allow });
    for (const l of lines) expect(conf).toContain(`${l}\n`);
  });

  it("no Sigstore endpoints unless signing keylessly; custom Sigstore URLs are added", () => {
    expect(defaultGithubAllow("none", []).map(endpointDirective)).not.toContain(
      "allow-host fulcio.sigstore.dev:443",
    );
    expect(
      defaultGithubAllow("keyless", [
        "https://fulcio.internal.example",
        "http://rekor.internal.example:8080",
      ]).map(endpointDirective),
    ).toEqual(
      expect.arrayContaining([
        "allow-host fulcio.internal.example:443",
        "allow-host rekor.internal.example:8080",
      ]),
    );
  });

  it("a GHE.com tenant signs with its own Fulcio and TSA, so those are allowed too", () => {
    const lines = defaultGithubAllow("keyless", [], "https://acme.ghe.com").map(endpointDirective);
    expect(lines).toEqual(
      expect.arrayContaining([
        "allow-host fulcio.acme.ghe.com:443",
        "allow-host timestamp.acme.ghe.com:443",
      ]),
    );
    expect(defaultGithubAllow("keyless", [], "https://github.com").length).toBe(10);
  });
});
