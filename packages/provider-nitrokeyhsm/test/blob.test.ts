import { generateKeyPairSync } from "node:crypto";
import { softwareUnwrap } from "@psi/envelope";
import { describe, expect, it } from "vitest";
import { openNitrokeyHsmMapping, sealNitrokeyHsmMapping } from "../src/index.js";
import { rejection } from "./helpers.js";

// Software RSA keys stand in for the token only to exercise blob parsing; the token
// paths are in nss.test.ts and softhsm.test.ts.
const pair = generateKeyPairSync("rsa", { modulusLength: 2048 });
const der = new Uint8Array(pair.publicKey.export({ type: "spki", format: "der" }));
const pem = pair.privateKey.export({ type: "pkcs8", format: "pem" }).toString();
const other = generateKeyPairSync("rsa", { modulusLength: 2048 });
const otherPem = other.privateKey.export({ type: "pkcs8", format: "pem" }).toString();
const secret = new Uint8Array([0x73, 0x33, 0x63, 0x72, 0x65, 0x74, 0x00, 0xff]);

describe("nitrokeyhsm mappings", () => {
  it("writes Python json.dumps bytes with provider first and round-trips", async () => {
    const { mapping, bytes } = sealNitrokeyHsmMapping(secret, der, "sha256");
    const text = Buffer.from(bytes).toString("utf8");
    expect(text).toBe(`{"provider": "nitrokeyhsm", "blob": "${mapping.blob}"}`);
    // key_len (2) + RSA-2048 (256) + nonce (12) + value + tag (16)
    expect(Buffer.from(mapping.blob, "base64").length).toBe(2 + 256 + 12 + secret.length + 16);
    const back = await openNitrokeyHsmMapping(JSON.parse(text), softwareUnwrap(pem, "sha256"));
    expect(Buffer.from(back)).toEqual(Buffer.from(secret));
  });

  it("records the OAEP hash nowhere: a sha1 blob needs a sha1 unwrap", async () => {
    const { mapping } = sealNitrokeyHsmMapping(secret, der, "sha1");
    expect(Buffer.from(await openNitrokeyHsmMapping(mapping, softwareUnwrap(pem, "sha1")))).toEqual(
      Buffer.from(secret),
    );
    const wrongHash = await rejection(
      openNitrokeyHsmMapping(mapping, softwareUnwrap(pem, "sha256")),
    );
    expect(wrongHash.code).toBe("nitrokeyhsm.unwrap_failed");
  });

  it("tolerates line breaks in the base64, like the reference's b64decode", async () => {
    const { mapping } = sealNitrokeyHsmMapping(secret, der);
    const wrapped = mapping.blob.replace(/(.{76})/g, "$1\n");
    const back = await openNitrokeyHsmMapping(
      { provider: "nitrokeyhsm", blob: wrapped },
      softwareUnwrap(pem),
    );
    expect(Buffer.from(back)).toEqual(Buffer.from(secret));
  });

  it.each([
    ["no blob", { provider: "nitrokeyhsm" }],
    ["a number", { provider: "nitrokeyhsm", blob: 42 }],
    ["empty", { provider: "nitrokeyhsm", blob: "" }],
    ["not base64", { provider: "nitrokeyhsm", blob: "not*base64!" }],
    ["bad padding", { provider: "nitrokeyhsm", blob: "QUJD=" }],
    ["too short", { provider: "nitrokeyhsm", blob: "AQ==" }],
  ])("calls a mapping with %s corrupt", async (_name, mapping) => {
    const error = await rejection(openNitrokeyHsmMapping(mapping, softwareUnwrap(pem)));
    expect(error.code).toBe("nitrokeyhsm.corrupt_blob");
    expect(error.message).toMatch(/^nitrokeyhsm provider: /);
    expect(error.hint).toMatch(/psi nitrokeyhsm store/);
  });

  it("calls a tampered blob corrupt and never shows the value", async () => {
    const { mapping } = sealNitrokeyHsmMapping(secret, der);
    const bytes = Buffer.from(mapping.blob, "base64");
    bytes[bytes.length - 20]! ^= 0x01;
    const error = await rejection(
      openNitrokeyHsmMapping(
        { provider: "nitrokeyhsm", blob: bytes.toString("base64") },
        softwareUnwrap(pem),
      ),
    );
    expect(error.code).toBe("nitrokeyhsm.corrupt_blob");
    expect(error.message).toMatch(/damaged/);
    expect(error.message).not.toContain("s3cret");
  });

  it("reports a blob made for another key as an unwrap failure", async () => {
    const { mapping } = sealNitrokeyHsmMapping(secret, der);
    const error = await rejection(openNitrokeyHsmMapping(mapping, softwareUnwrap(otherPem)));
    expect(error.code).toBe("nitrokeyhsm.unwrap_failed");
    expect(error.message).toMatch(/^nitrokeyhsm provider: cannot unwrap/);
  });
});
