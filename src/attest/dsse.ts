// DSSE Pre-Authentication Encoding (https://github.com/secure-systems-lab/dsse/blob/master/protocol.md):
//   PAE(type, body) = "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body
// with LEN the ASCII decimal byte length. The signature covers these bytes, never the bare
// payload, so a payloadType swap breaks it. @sigstore/sign computes its own PAE when signing;
// ours is used on the verification side to tell "signature does not cover this envelope" apart
// from other failures, and is checked against the spec's golden vector and against python.
export function preAuthEncoding(payloadType: string, payload: Uint8Array): Buffer {
  const type = Buffer.from(payloadType, "utf8");
  return Buffer.concat([
    Buffer.from(`DSSEv1 ${type.length} `, "ascii"),
    type,
    Buffer.from(` ${payload.length} `, "ascii"),
    payload,
  ]);
}
