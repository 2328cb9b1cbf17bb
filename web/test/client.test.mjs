// The SDK's pure parts without a browser: each chat's order across
// streams and reconnects, resume points, and the decoders against cut and
// mutated bytes.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

import { ChatOrder, DecodeError, FrameBuf, MAX_HELD, decodePayload, elsewhereTarget, serverFrame } from "../dist/index.js";

const message = (chat, seq, text = `m${seq}`) => ({
  chat,
  seq,
  at: seq,
  kind: { type: "Message", from: { type: "Customer" }, clientId: BigInt(seq), text },
});
const seqs = (events) => events.map((event) => event.seq);

test("events are handed on in seq order, once", () => {
  const order = new ChatOrder();
  assert.deepEqual(seqs(order.push(message(1, 1))), [1]);
  assert.deepEqual(seqs(order.push(message(1, 3))), [], "3 waits for 2");
  assert.deepEqual(seqs(order.push(message(1, 2))), [2, 3], "2 fills the gap");
  assert.deepEqual(seqs(order.push(message(1, 2))), [], "a repeat is dropped");
  assert.deepEqual(seqs(order.push(message(2, 1))), [1], "chats are apart");
  assert.equal(order.position(1), 3);
});

test("a replay after a reconnect adds only what is new", () => {
  const order = new ChatOrder();
  order.remember(7, "secret");
  for (const seq of [1, 2, 3]) order.push(message(7, seq));
  assert.deepEqual(order.resumePoints(256), [{ chat: 7, after: 3, secret: "secret" }]);
  const replayed = [2, 3, 4, 5].flatMap((seq) => order.push(message(7, seq)));
  assert.deepEqual(seqs(replayed), [4, 5]);
});

test("ended chats are not resumed, and a hello carries the newest chats only", () => {
  const order = new ChatOrder();
  order.remember(1, "a");
  order.remember(2, "b");
  order.push(message(1, 1));
  order.push({ chat: 1, seq: 2, at: 2, kind: { type: "Ended", by: { type: "System" } } });
  assert.deepEqual(
    order.resumePoints(256).map((point) => point.chat),
    [2],
  );
  for (let chat = 10; chat < 20; chat++) order.remember(chat, "s");
  assert.deepEqual(
    order.resumePoints(3).map((point) => point.chat),
    [17, 18, 19],
  );
});

test("a withheld event fills its seq and is never handed on", () => {
  const order = new ChatOrder();
  const withheld = (seq) => ({ chat: 4, seq, at: seq, kind: { type: "Withheld" } });
  assert.deepEqual(seqs(order.push(message(4, 1))), [1]);
  assert.deepEqual(seqs(order.push(withheld(2))), [], "in line: counted, not shown");
  assert.equal(order.position(4), 2);
  assert.deepEqual(seqs(order.push(message(4, 4))), [], "4 waits for 3");
  assert.deepEqual(seqs(order.push(withheld(3))), [4], "a withheld event fills a gap");
  assert.equal(order.position(4), 4);
});

test("a gap that never fills holds at most MAX_HELD events", () => {
  const order = new ChatOrder();
  let ready = [];
  for (let seq = 2; seq <= MAX_HELD + 2; seq++) ready = ready.concat(order.push(message(1, seq)));
  assert.equal(ready.length, MAX_HELD + 1, "past the cap the chat moves on, in order");
  assert.deepEqual(seqs(ready).slice(0, 3), [2, 3, 4]);
  assert.deepEqual(seqs(order.push(message(1, 1))), [], "the late one is a repeat now");
});

const golden = readFileSync(new URL("../../tests/golden/formats.txt", import.meta.url), "utf8")
  .split("\n")
  .filter((line) => /^wire\.(Welcome|Response\.(ChatStarted|Posted|Offline|Err|Read)|Event\.Chat|Closing)/.test(line))
  .map((line) => Uint8Array.from(Buffer.from(line.split(" ")[1], "hex")).subarray(4));

test("a frame cut short is a DecodeError", () => {
  for (const payload of golden) {
    for (let len = 0; len < payload.length; len++) {
      assert.throws(() => decodePayload(serverFrame, payload.subarray(0, len)), DecodeError);
    }
  }
});

test("mutated frames decode or fail with a DecodeError, never otherwise", () => {
  let seed = 1;
  const random = () => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed;
  };
  for (let round = 0; round < 20_000; round++) {
    const payload = Uint8Array.from(golden[round % golden.length]);
    for (let flips = 1 + (random() % 3); flips > 0; flips--) payload[random() % payload.length] = random() % 256;
    try {
      decodePayload(serverFrame, payload);
    } catch (err) {
      assert.ok(err instanceof DecodeError, `${err}`);
    }
  }
});

test("a length over the limit is refused before its payload is buffered", () => {
  const frames = new FrameBuf(1024);
  frames.push(Uint8Array.of(0, 0, 4, 1));
  assert.throws(() => frames.nextPayload(), DecodeError);
  const fine = new FrameBuf(1024);
  fine.push(Uint8Array.of(0, 0, 0, 2, 3));
  assert.equal(fine.nextPayload(), null, "waits for the rest");
  fine.push(Uint8Array.of(4));
  assert.deepEqual([...fine.nextPayload()], [3, 4]);
});

test("an Elsewhere refusal names the hub a browser goes to, or none", () => {
  const hash = "ab".repeat(32);
  assert.deepEqual(elsewhereTarget(`10.0.0.2:4433 https://10.0.0.2:4434/chathub ${hash},${"cd".repeat(32)}`), {
    url: "https://10.0.0.2:4434/chathub",
    hashes: [hash, "cd".repeat(32)],
  });
  assert.deepEqual(elsewhereTarget("10.0.0.2:4433 https://hub2.example/chathub "), {
    url: "https://hub2.example/chathub",
    hashes: [],
  });
  // What a native client is sent: an address alone.
  assert.equal(elsewhereTarget("10.0.0.2:4433"), null);
  assert.equal(elsewhereTarget("10.0.0.2:4433 http://hub2.example/chathub"), null);
});
