// bincode 2 in its standard configuration, as the hub writes it
// (src/protocol/codec.rs): unsigned integers above u8 as varints (below
// 251 one byte; else a marker 251/252/253 and 2/4/8 bytes little-endian),
// u8 and bool as one byte, strings and sequences as a varint length and
// their items, Option as 0 or 1 and the value, enums as a varint variant
// index and the variant's fields in order, structs as their fields in
// order. Codecs are values built from these pieces, so one schema gives
// both the encoder and the decoder.

/** Bytes that are not a valid value of the expected type. */
export class DecodeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "DecodeError";
  }
}

const utf8Encoder = new TextEncoder();
const utf8Decoder = new TextDecoder("utf-8", { fatal: true });

/** Appends encoded values to a growing buffer. */
export class Writer {
  private buf = new Uint8Array(256);
  private len = 0;

  private reserve(n: number): void {
    if (this.len + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.len + n) size *= 2;
    const grown = new Uint8Array(size);
    grown.set(this.buf.subarray(0, this.len));
    this.buf = grown;
  }

  /** One raw byte. */
  byte(value: number): void {
    this.reserve(1);
    this.buf[this.len++] = value & 0xff;
  }

  /** Raw bytes. */
  bytes(value: Uint8Array): void {
    this.reserve(value.length);
    this.buf.set(value, this.len);
    this.len += value.length;
  }

  /** An unsigned integer as a bincode varint; `max` is its type's largest value. */
  varint(value: number, max: number): void {
    if (!Number.isSafeInteger(value) || value < 0 || value > max) {
      throw new RangeError(`${value} is not an unsigned integer up to ${max}`);
    }
    if (value < 251) {
      this.byte(value);
    } else if (value <= 0xffff) {
      this.byte(251);
      this.byte(value);
      this.byte(value >>> 8);
    } else if (value <= 0xffffffff) {
      this.byte(252);
      for (let i = 0; i < 4; i++) this.byte(value >>> (8 * i));
    } else {
      this.byte(253);
      let rest = BigInt(value);
      for (let i = 0; i < 8; i++) {
        this.byte(Number(rest & 0xffn));
        rest >>= 8n;
      }
    }
  }

  /** A u64 of any size as a bincode varint. */
  varintBig(value: bigint): void {
    if (value < 0n || value > 0xffffffffffffffffn) throw new RangeError(`${value} is not a u64`);
    if (value <= 0xffffffffn) {
      this.varint(Number(value), 0xffffffff);
      return;
    }
    this.byte(253);
    let rest = value;
    for (let i = 0; i < 8; i++) {
      this.byte(Number(rest & 0xffn));
      rest >>= 8n;
    }
  }

  /** The bytes written so far. */
  finish(): Uint8Array {
    return this.buf.slice(0, this.len);
  }
}

/** Reads encoded values off a byte slice, never past its end. */
export class Reader {
  private pos = 0;

  constructor(private readonly buf: Uint8Array) {}

  /** One raw byte. */
  byte(): number {
    if (this.pos >= this.buf.length) throw new DecodeError("unexpected end of bytes");
    return this.buf[this.pos++]!;
  }

  /** `n` raw bytes. */
  bytes(n: number): Uint8Array {
    if (n > this.buf.length - this.pos) throw new DecodeError("unexpected end of bytes");
    const out = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }

  /** A bincode varint no larger than `max`. */
  varint(max: number): number {
    const first = this.byte();
    let value: number;
    if (first < 251) {
      value = first;
    } else if (first === 251) {
      value = this.byte() | (this.byte() << 8);
      if (value < 251) throw new DecodeError("non-canonical varint");
    } else if (first === 252) {
      value = 0;
      for (let i = 0; i < 4; i++) value += this.byte() * 2 ** (8 * i);
      if (value <= 0xffff) throw new DecodeError("non-canonical varint");
    } else if (first === 253) {
      let big = 0n;
      for (let i = 0; i < 8; i++) big |= BigInt(this.byte()) << BigInt(8 * i);
      if (big <= 0xffffffffn) throw new DecodeError("non-canonical varint");
      if (big > BigInt(Number.MAX_SAFE_INTEGER)) {
        throw new DecodeError(`integer ${big} is beyond what this SDK represents exactly`);
      }
      value = Number(big);
    } else {
      throw new DecodeError(`invalid varint marker ${first}`);
    }
    if (value > max) throw new DecodeError(`integer ${value} is over its type's ${max}`);
    return value;
  }

  /** A u64 of any size. */
  varintBig(): bigint {
    const first = this.byte();
    if (first !== 253) {
      this.pos--;
      return BigInt(this.varint(0xffffffff));
    }
    let big = 0n;
    for (let i = 0; i < 8; i++) big |= BigInt(this.byte()) << BigInt(8 * i);
    if (big <= 0xffffffffn) throw new DecodeError("non-canonical varint");
    return big;
  }

  /** Bytes not read yet. */
  remaining(): number {
    return this.buf.length - this.pos;
  }
}

/** Encodes and decodes one type. */
export interface Codec<T> {
  enc(w: Writer, value: T): void;
  dec(r: Reader): T;
}

/** u8, one raw byte. */
export const u8: Codec<number> = {
  enc: (w, v) => {
    if (!Number.isInteger(v) || v < 0 || v > 0xff) throw new RangeError(`${v} is not a u8`);
    w.byte(v);
  },
  dec: (r) => r.byte(),
};

function varintOf(max: number): Codec<number> {
  return { enc: (w, v) => w.varint(v, max), dec: (r) => r.varint(max) };
}

/** u16 as a varint. */
export const u16 = varintOf(0xffff);
/** u32 as a varint. */
export const u32 = varintOf(0xffffffff);
/** u64 as a varint (exact up to 2^53 - 1 here). */
export const u64 = varintOf(Number.MAX_SAFE_INTEGER);

/** u64 as a bigint, for values that use all 64 bits (client ids). */
export const u64n: Codec<bigint> = { enc: (w, v) => w.varintBig(v), dec: (r) => r.varintBig() };

/** bool, one byte 0 or 1. */
export const bool: Codec<boolean> = {
  enc: (w, v) => w.byte(v ? 1 : 0),
  dec: (r) => {
    const b = r.byte();
    if (b > 1) throw new DecodeError(`invalid bool ${b}`);
    return b === 1;
  },
};

/** A UTF-8 string with its length in bytes first. */
export const str: Codec<string> = {
  enc: (w, v) => {
    const bytes = utf8Encoder.encode(v);
    w.varint(bytes.length, Number.MAX_SAFE_INTEGER);
    w.bytes(bytes);
  },
  dec: (r) => {
    const len = r.varint(Number.MAX_SAFE_INTEGER);
    try {
      return utf8Decoder.decode(r.bytes(len));
    } catch (err) {
      if (err instanceof DecodeError) throw err;
      throw new DecodeError("invalid UTF-8");
    }
  },
};

/** `Option<T>` as `T | null`. */
export function option<T>(inner: Codec<T>): Codec<T | null> {
  return {
    enc: (w, v) => {
      if (v === null || v === undefined) {
        w.byte(0);
      } else {
        w.byte(1);
        inner.enc(w, v);
      }
    },
    dec: (r) => {
      const tag = r.byte();
      if (tag === 0) return null;
      if (tag === 1) return inner.dec(r);
      throw new DecodeError(`invalid option tag ${tag}`);
    },
  };
}

/** `Vec<T>` as `T[]`. */
export function vec<T>(inner: Codec<T>): Codec<T[]> {
  return {
    enc: (w, v) => {
      w.varint(v.length, Number.MAX_SAFE_INTEGER);
      for (const item of v) inner.enc(w, item);
    },
    dec: (r) => {
      const len = r.varint(Number.MAX_SAFE_INTEGER);
      // Each item takes at least one byte: a length beyond what is left
      // is refused before anything is allocated for it.
      if (len > r.remaining()) throw new DecodeError(`a sequence of ${len} items in ${r.remaining()} bytes`);
      const out: T[] = [];
      for (let i = 0; i < len; i++) out.push(inner.dec(r));
      return out;
    },
  };
}

/** Field names and their codecs, in the Rust type's order. */
export type Fields = ReadonlyArray<readonly [string, Codec<any>]>;

/** A struct: its fields in order, as an object with those keys. */
export function struct<T>(fields: Fields): Codec<T> {
  return {
    enc: (w, v) => {
      for (const [name, codec] of fields) codec.enc(w, (v as any)[name]);
    },
    dec: (r) => {
      const out: any = {};
      for (const [name, codec] of fields) out[name] = codec.dec(r);
      return out as T;
    },
  };
}

/** A newtype (`struct Id(u64)`): the inner value alone. */
export function newtype<T>(inner: Codec<T>): Codec<T> {
  return inner;
}

/**
 * An enum: its variants in the Rust type's order, each with its fields,
 * as objects `{ type: name, ...fields }`. A variant the schema does not
 * know is a decode error.
 */
export function enumOf<T extends { type: string }>(
  variants: ReadonlyArray<readonly [string, Fields]>,
): Codec<T> {
  const index = new Map(variants.map(([name], i) => [name, i]));
  return {
    enc: (w, v) => {
      const i = index.get(v.type);
      if (i === undefined) throw new RangeError(`unknown variant ${v.type}`);
      w.varint(i, 0xffffffff);
      for (const [name, codec] of variants[i]![1]) codec.enc(w, (v as any)[name]);
    },
    dec: (r) => {
      const i = r.varint(0xffffffff);
      const variant = variants[i];
      if (variant === undefined) throw new DecodeError(`unknown variant ${i}`);
      const out: any = { type: variant[0] };
      for (const [name, codec] of variant[1]) out[name] = codec.dec(r);
      return out as T;
    },
  };
}

/** A codec defined later (for types that refer to each other). */
export function lazy<T>(get: () => Codec<T>): Codec<T> {
  return { enc: (w, v) => get().enc(w, v), dec: (r) => get().dec(r) };
}

/** `value` encoded alone. */
export function encodeValue<T>(codec: Codec<T>, value: T): Uint8Array {
  const w = new Writer();
  codec.enc(w, value);
  return w.finish();
}

/** `bytes` decoded as one value; every byte must belong to it. */
export function decodeValue<T>(codec: Codec<T>, bytes: Uint8Array): T {
  const r = new Reader(bytes);
  const value = codec.dec(r);
  if (r.remaining() !== 0) throw new DecodeError(`${r.remaining()} bytes after the value`);
  return value;
}
