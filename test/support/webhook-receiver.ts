// A webhook receiver on 127.0.0.1 for the daemon tests: records every request and answers
// as the test says.
import { createHmac, timingSafeEqual } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

export interface Received {
  at: number;
  headers: IncomingMessage["headers"];
  body: Buffer;
}

export async function receiver(
  answer: (n: number, req: IncomingMessage, res: ServerResponse) => void,
  port = 0,
): Promise<{ server: Server; url: string; got: Received[] }> {
  const got: Received[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      got.push({ at: Date.now(), headers: req.headers, body: Buffer.concat(chunks) });
      answer(got.length, req, res);
    });
  });
  await new Promise<void>((r) => server.listen(port, "127.0.0.1", r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
  return { server, url, got };
}

export function verifies(r: Received, secret: string): boolean {
  const want = Buffer.from(`sha256=${createHmac("sha256", secret).update(r.body).digest("hex")}`);
  const sig = Buffer.from(String(r.headers["x-dpndncy-signature"]));
  return sig.length === want.length && timingSafeEqual(sig, want);
}
