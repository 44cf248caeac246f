// A private D-Bus (TESTING.md "D-Bus"): a real dbus-daemon on a socket in a temp
// directory, and a small stand-in that owns a well-known name on it (here
// org.freedesktop.systemd1, since no systemd runs) and records every method call it gets,
// answering each with an empty method return. The stand-in speaks the D-Bus wire protocol
// itself (SASL EXTERNAL, little-endian messages), so no D-Bus library is needed:
// https://dbus.freedesktop.org/doc/dbus-specification.html ("Message Protocol", "Authentication").

import { spawnSync } from "node:child_process";
import { once } from "node:events";
import { accessSync, constants } from "node:fs";
import { connect, type Socket } from "node:net";
import { delimiter, join } from "node:path";

/** True when `name` is an executable on PATH. */
export function commandOnPath(name: string): boolean {
  return (process.env["PATH"] ?? "").split(delimiter).some((dir) => {
    try {
      accessSync(join(dir, name), constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

/** True when `dbus-daemon` (Debian package `dbus`) is installed. */
export function dbusDaemonAvailable(): boolean {
  return commandOnPath("dbus-daemon");
}

/** A running private bus. */
export interface PrivateBus {
  /** `unix:path=...`: what DBUS_SESSION_BUS_ADDRESS / DBUS_SYSTEM_BUS_ADDRESS take. */
  address: string;
  stop(): Promise<void>;
}

/** Starts `dbus-daemon --session` on `<dir>/bus` (no system bus or systemd needed). */
export async function startPrivateBus(dir: string): Promise<PrivateBus> {
  const socket = join(dir, "bus");
  const address = `unix:path=${socket}`;
  const started = spawnSync(
    "dbus-daemon",
    ["--session", `--address=${address}`, "--fork", "--print-pid", "--nopidfile"],
    { encoding: "utf8", timeout: 10_000 },
  );
  if (started.status !== 0) throw new Error(`dbus-daemon did not start: ${started.stderr}`);
  const pid = Number(started.stdout.trim().split("\n")[0]);
  if (!Number.isInteger(pid) || pid <= 0) throw new Error(`dbus-daemon printed no pid`);
  return {
    address,
    async stop() {
      try {
        process.kill(pid, "SIGTERM");
      } catch {
        // already gone
      }
    },
  };
}

/** A method call the stand-in received. */
export interface RecordedCall {
  path: string;
  interface: string | undefined;
  member: string;
  sender: string | undefined;
}

/** A name owned on the bus, recording the calls made to it. */
export interface BusStandIn {
  calls: RecordedCall[];
  /** Resolves with the next call whose member is `member` (or one already recorded). */
  nextCall(member: string): Promise<RecordedCall>;
  close(): Promise<void>;
}

const METHOD_CALL = 1;
const METHOD_RETURN = 2;
const ERROR = 3;

/** Little-endian D-Bus marshalling into a growing buffer; offsets count from the message start. */
function writer() {
  const bytes: number[] = [];
  const out = {
    bytes,
    align(n: number) {
      while (bytes.length % n !== 0) bytes.push(0);
    },
    u8(value: number) {
      bytes.push(value & 0xff);
    },
    u32(value: number) {
      out.align(4);
      bytes.push(value & 0xff, (value >>> 8) & 0xff, (value >>> 16) & 0xff, (value >>> 24) & 0xff);
    },
    string(value: string) {
      const text = Buffer.from(value, "utf8");
      out.u32(text.length);
      bytes.push(...text, 0);
    },
    signature(value: string) {
      out.u8(value.length);
      bytes.push(...Buffer.from(value, "ascii"), 0);
    },
  };
  return out;
}

type Field = [code: number, signature: "s" | "o" | "u" | "g", value: string | number];

function message(
  type: number,
  serial: number,
  fields: Field[],
  body?: (w: ReturnType<typeof writer>) => void,
) {
  const bodyWriter = writer();
  body?.(bodyWriter);
  const w = writer();
  w.u8("l".charCodeAt(0));
  w.u8(type);
  w.u8(0);
  w.u8(1);
  w.u32(bodyWriter.bytes.length);
  w.u32(serial);
  const lengthAt = w.bytes.length;
  w.u32(0);
  w.align(8);
  const start = w.bytes.length;
  for (const [code, signature, value] of fields) {
    w.align(8);
    w.u8(code);
    w.signature(signature);
    if (signature === "u") w.u32(value as number);
    else if (signature === "g") w.signature(value as string);
    else w.string(value as string);
  }
  const length = w.bytes.length - start;
  w.bytes.splice(
    lengthAt,
    4,
    length & 0xff,
    (length >>> 8) & 0xff,
    (length >>> 16) & 0xff,
    length >>> 24,
  );
  w.align(8);
  return Buffer.concat([Buffer.from(w.bytes), Buffer.from(bodyWriter.bytes)]);
}

interface Parsed {
  type: number;
  serial: number;
  fields: Map<number, string | number>;
  body: Buffer;
}

/** Parses one little-endian message at the start of `buffer`; undefined until it is complete. */
function parse(buffer: Buffer): { message: Parsed; size: number } | undefined {
  if (buffer.length < 16) return undefined;
  if (buffer[0] !== "l".charCodeAt(0))
    throw new Error("the stand-in reads little-endian messages only");
  const bodyLength = buffer.readUInt32LE(4);
  const fieldsLength = buffer.readUInt32LE(12);
  const headerEnd = 16 + fieldsLength;
  const bodyStart = Math.ceil(headerEnd / 8) * 8;
  const size = bodyStart + bodyLength;
  if (buffer.length < size) return undefined;
  const fields = new Map<number, string | number>();
  let at = 16;
  const align = (n: number) => {
    at = Math.ceil(at / n) * n;
  };
  while (at < headerEnd) {
    align(8);
    const code = buffer[at++]!;
    const sigLength = buffer[at++]!;
    const signature = buffer.toString("ascii", at, at + sigLength);
    at += sigLength + 1;
    if (signature === "u") {
      align(4);
      fields.set(code, buffer.readUInt32LE(at));
      at += 4;
    } else if (signature === "g") {
      const length = buffer[at++]!;
      fields.set(code, buffer.toString("ascii", at, at + length));
      at += length + 1;
    } else {
      align(4);
      const length = buffer.readUInt32LE(at);
      at += 4;
      fields.set(code, buffer.toString("utf8", at, at + length));
      at += length + 1;
    }
  }
  return {
    message: {
      type: buffer[1]!,
      serial: buffer.readUInt32LE(8),
      fields,
      body: buffer.subarray(bodyStart, size),
    },
    size,
  };
}

/**
 * Connects to `address` (`unix:path=...`), owns `name` and answers every method call to it
 * with an empty return, recording it. Resolves once the name is owned.
 */
export async function ownBusName(address: string, name: string): Promise<BusStandIn> {
  const path = /^unix:path=(.+)$/.exec(address)?.[1];
  if (!path) throw new Error(`only unix:path= addresses are supported, not ${address}`);
  const socket: Socket = connect(path);
  await once(socket, "connect");
  const calls: RecordedCall[] = [];
  const waiters: Array<{ member: string; resolve: (call: RecordedCall) => void }> = [];
  let serial = 0;
  let buffer = Buffer.alloc(0);
  let authenticated = false;
  let owned: ((ok: boolean) => void) | undefined;
  let requestSerial = -1;
  const ownedPromise = new Promise<boolean>((resolve) => {
    owned = resolve;
  });
  const send = (type: number, fields: Field[], body?: (w: ReturnType<typeof writer>) => void) => {
    serial += 1;
    socket.write(message(type, serial, fields, body));
    return serial;
  };
  const bus: Field[] = [
    [1, "o", "/org/freedesktop/DBus"],
    [2, "s", "org.freedesktop.DBus"],
    [6, "s", "org.freedesktop.DBus"],
  ];

  socket.on("data", (chunk: Buffer) => {
    buffer = Buffer.concat([buffer, chunk]);
    if (!authenticated) {
      const line = buffer.indexOf("\r\n");
      if (line < 0) return;
      const reply = buffer.toString("ascii", 0, line);
      buffer = buffer.subarray(line + 2);
      if (!reply.startsWith("OK ")) {
        socket.destroy(new Error(`the bus refused EXTERNAL auth: ${reply}`));
        return;
      }
      authenticated = true;
      socket.write("BEGIN\r\n");
      send(METHOD_CALL, [...bus, [3, "s", "Hello"]]);
      requestSerial = send(METHOD_CALL, [...bus, [3, "s", "RequestName"], [8, "g", "su"]], (w) => {
        w.string(name);
        w.u32(4); // DBUS_NAME_FLAG_DO_NOT_QUEUE
      });
    }
    for (;;) {
      const next = parse(buffer);
      if (!next) return;
      buffer = buffer.subarray(next.size);
      const { message: incoming } = next;
      if (incoming.type === METHOD_RETURN && incoming.fields.get(5) === requestSerial) {
        owned?.(incoming.body.readUInt32LE(0) === 1); // DBUS_REQUEST_NAME_REPLY_PRIMARY_OWNER
      } else if (incoming.type === ERROR && incoming.fields.get(5) === requestSerial) {
        owned?.(false);
      } else if (incoming.type === METHOD_CALL) {
        const call: RecordedCall = {
          path: String(incoming.fields.get(1)),
          interface: incoming.fields.get(2) as string | undefined,
          member: String(incoming.fields.get(3)),
          sender: incoming.fields.get(7) as string | undefined,
        };
        calls.push(call);
        const sender = incoming.fields.get(7);
        send(METHOD_RETURN, [
          [5, "u", incoming.serial],
          ...(sender === undefined ? [] : ([[6, "s", String(sender)]] as Field[])),
        ]);
        for (const waiter of waiters.filter((entry) => entry.member === call.member)) {
          waiters.splice(waiters.indexOf(waiter), 1);
          waiter.resolve(call);
        }
      }
    }
  });
  const uid = String(process.getuid?.() ?? 0);
  socket.write(`\0AUTH EXTERNAL ${Buffer.from(uid, "ascii").toString("hex")}\r\n`);
  if (!(await ownedPromise)) {
    socket.destroy();
    throw new Error(`cannot own ${name} on ${address}`);
  }
  return {
    calls,
    nextCall(member) {
      const seen = calls.find((call) => call.member === member);
      if (seen) return Promise.resolve(seen);
      return new Promise((resolve) => waiters.push({ member, resolve }));
    },
    async close() {
      socket.end();
      if (!socket.destroyed) await once(socket, "close");
    },
  };
}

/** The environment that points both the session and the system bus clients at `address`. */
export function busEnv(address: string): {
  DBUS_SESSION_BUS_ADDRESS: string;
  DBUS_SYSTEM_BUS_ADDRESS: string;
} {
  return { DBUS_SESSION_BUS_ADDRESS: address, DBUS_SYSTEM_BUS_ADDRESS: address };
}
