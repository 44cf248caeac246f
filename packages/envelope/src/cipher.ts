/**
 * What turns payload JSON into the bytes after the PSIC header and back (SPEC §6.6). Cache
 * backends satisfy it; `tag` is the header byte that names the backend.
 */
export interface CacheCipher {
  readonly tag: number;
  encrypt(plaintext: Uint8Array): Promise<Uint8Array> | Uint8Array;
  decrypt(payload: Uint8Array): Promise<Uint8Array> | Uint8Array;
}

/** A source of random bytes; injectable so tests can pin nonces and keys. */
export type RandomBytes = (size: number) => Uint8Array;

/** Options shared by the functions that draw random keys or nonces. */
export interface RandomOptions {
  randomBytes?: RandomBytes;
}
