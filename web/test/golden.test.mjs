// The browser SDK's codec against the bytes the hub pins in
// tests/golden/formats.txt (written and checked by tests/golden.rs): every
// frame the SDK carries decodes from those bytes to the expected value and
// encodes back to the same bytes; every frame it does not carry is refused
// rather than misread; and a frame added to the hub fails here until it is
// sorted into one or the other.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

import {
  DecodeError,
  chatEvent,
  clientDatagram,
  clientFrame,
  decodePayload,
  encodeFrame,
  serverDatagram,
  serverFrame,
} from "../dist/index.js";
import { decodeValue, encodeValue } from "../dist/bincode.js";

const golden = new Map(
  readFileSync(new URL("../../tests/golden/formats.txt", import.meta.url), "utf8")
    .split("\n")
    .filter((line) => line && !line.startsWith("#"))
    .map((line) => {
      const [name, hex] = line.split(" ");
      return [name, Uint8Array.from(Buffer.from(hex, "hex"))];
    }),
);

/** Frames the browser SDK does not carry (editing knowledge, tickets' bodies, erasure). */
const UNSUPPORTED = new Set([
  "wire.Request.CreateItem",
  "wire.Request.UpdateItem",
  "wire.Request.DeleteItem",
  "wire.Response.Item",
  "wire.Response.Ticket",
  "wire.Response.Tickets",
  "wire.Response.TaggedSessions",
  // Erasing a contact is an admin's task, not a browser widget's.
  "wire.Request.ForgetContact",
  "wire.Response.Forgotten",
]);

function codecOf(name) {
  if (name.startsWith("datagram.Client.")) return { codec: clientDatagram, framed: false };
  if (name.startsWith("datagram.Server.")) return { codec: serverDatagram, framed: false };
  if (/^wire\.(Hello|Request\.|Download|Upload)/.test(name)) return { codec: clientFrame, framed: true };
  if (/^wire\.(Welcome|Response\.|Event\.|Closing)/.test(name)) return { codec: serverFrame, framed: true };
  return null;
}

function decode(name) {
  const bytes = golden.get(name);
  assert.ok(bytes, `${name} is in formats.txt`);
  const { codec, framed } = codecOf(name);
  return framed ? decodePayload(codec, bytes.subarray(4)) : decodeValue(codec, bytes);
}

test("every wire frame and datagram is carried or refused, and round-trips when carried", () => {
  let carried = 0;
  for (const [name, bytes] of golden) {
    if (name.startsWith("store.")) continue;
    const sorted = codecOf(name);
    assert.ok(sorted, `${name}: a frame this test does not sort; add it to the SDK or to UNSUPPORTED`);
    const { codec, framed } = sorted;
    if (UNSUPPORTED.has(name)) {
      assert.throws(() => decodePayload(codec, bytes.subarray(4)), DecodeError, name);
      continue;
    }
    const value = framed ? decodePayload(codec, bytes.subarray(4)) : decodeValue(codec, bytes);
    const again = framed ? encodeFrame(codec, value) : encodeValue(codec, value);
    assert.deepEqual(Buffer.from(again).toString("hex"), Buffer.from(bytes).toString("hex"), name);
    carried++;
  }
  assert.ok(carried >= 30, `${carried} frames carried`);
});

// Round trips alone would not catch two fields of one type swapped both
// ways: the frames a customer uses are checked value by value.

test("a hello with resume points", () => {
  assert.deepEqual(decode("wire.Hello"), {
    type: "Hello",
    hello: {
      version: 5,
      role: { type: "Agent", agent: "alice", token: "a-secret-token-0123" },
      resume: [{ chat: 3, after: 7, secret: "a-secret-of-the-customer" }],
    },
  });
});

test("a start, a post and a read mark", () => {
  assert.deepEqual(decode("wire.Request.StartChat"), {
    type: "Request",
    request: {
      id: 0,
      body: {
        type: "StartChat",
        channel: "support",
        customer: { name: "Åsa", email: "asa@example.com" },
        clientId: 1n,
        text: "Hej",
        secret: "a-secret-of-the-customer",
      },
    },
  });
  assert.deepEqual(decode("wire.Request.Post"), {
    type: "Request",
    request: { id: 1, body: { type: "Post", chat: 3, clientId: 2n, text: "more" } },
  });
  assert.deepEqual(decode("wire.Request.MarkRead").request.body, { type: "MarkRead", chat: 3, upTo: 12 });
});

test("answers and refusals", () => {
  assert.deepEqual(decode("wire.Response.ChatStarted").response.result, {
    type: "Ok",
    reply: { type: "ChatStarted", chat: 3, waiting: 2 },
  });
  assert.deepEqual(decode("wire.Response.Posted").response.result.reply, { type: "Posted", seq: 8, at: 9 });
  assert.deepEqual(decode("wire.Response.Read").response.result.reply, { type: "Read", upTo: 12, seq: 14, at: 15 });
  assert.deepEqual(decode("wire.Response.Err").response, {
    id: 9,
    result: { type: "Err", error: { code: "RateLimited", message: "slow down" } },
  });
  assert.deepEqual(decode("wire.Closing"), { type: "Closing", error: { code: "BadFrame", message: "bad" } });
  const offline = decode("wire.Response.Offline#2").response.result.reply;
  assert.equal(offline.type, "Offline");
  assert.equal(offline.form.message, "We are closed");
  assert.equal(typeof offline.form.opensAt, "number");
});

test("a chat event and a typing indicator", () => {
  assert.deepEqual(decode("wire.Event.Chat"), {
    type: "Event",
    event: {
      type: "Chat",
      event: {
        chat: 3,
        seq: 2,
        at: 1_700_000_000_001,
        kind: { type: "Message", from: { type: "Customer" }, clientId: 9n, text: "Where is my parcel? 📦" },
      },
    },
  });
  assert.deepEqual(decode("datagram.Server.Typing#2"), {
    type: "Typing",
    chat: 3,
    from: { type: "Agent", agent: "alice" },
  });
  assert.deepEqual(decode("datagram.Client.Typing"), { type: "Typing", chat: 3 });
});

test("what a waiting customer hears, and what push routing and priorities carry", () => {
  const place = decode("wire.Event.QueuePosition").event;
  assert.equal(place.type, "QueuePosition");
  assert.equal(typeof place.place.position, "number");
  assert.ok("estimatedWaitSecs" in place.place);
  const changed = decode("wire.Event.Queue.Changed").event.update.change;
  assert.equal(changed.type, "Changed");
  assert.ok("priority" in changed.row);
});

// What the console's offers read and send, value by value: a field read
// from another's place (the row's customer, its first message, the time
// left, the reason an offer ended) would show the agent the wrong offer.
test("a push offer, its end, and the agent's accept and decline", () => {
  assert.deepEqual(decode("wire.Event.Offered").event, {
    type: "Offered",
    offer: {
      row: {
        chat: 3,
        channel: "support",
        customer: { name: "Åsa", email: "asa@example.com" },
        firstMessage: "Hej 👋",
        since: 1_700_000_000_000,
        verified: "cust-17",
        priority: "High",
      },
      expiresInMs: 30_000,
    },
  });
  assert.deepEqual(decode("wire.Event.OfferWithdrawn").event, {
    type: "OfferWithdrawn",
    channel: "support",
    chat: 3,
    reason: "Declined",
  });
  assert.deepEqual(decode("wire.Request.AcceptOffer").request, { id: 27, body: { type: "AcceptOffer", chat: 3 } });
  assert.deepEqual(decode("wire.Request.DeclineOffer").request, { id: 28, body: { type: "DeclineOffer", chat: 3 } });
});

// The store's `Op::Event` is one byte (its variant) and then the chat event
// itself: every kind of chat event is checked against the hub's bytes.
test("every kind of chat event decodes from the hub's bytes and encodes back", () => {
  const kinds = new Set();
  for (const [name, bytes] of golden) {
    if (!name.startsWith("store.Op.Event.")) continue;
    assert.equal(bytes[0], 0, `${name} is Op::Event`);
    const value = decodeValue(chatEvent, bytes.subarray(1));
    kinds.add(value.kind.type);
    assert.equal(Buffer.from(encodeValue(chatEvent, value)).toString("hex"), Buffer.from(bytes.subarray(1)).toString("hex"), name);
  }
  for (const kind of ["Note", "Prioritized", "Withheld", "Read", "Message"]) assert.ok(kinds.has(kind), kind);
  const note = decodeValue(chatEvent, golden.get("store.Op.Event.Note").subarray(1)).kind;
  assert.deepEqual(note, { type: "Note", by: "alice", clientId: 11n, text: "Asked twice already" });
  const prioritized = decodeValue(chatEvent, golden.get("store.Op.Event.Prioritized").subarray(1)).kind;
  assert.deepEqual(prioritized, { type: "Prioritized", by: "alice", priority: "Urgent" });
  const gone = decodeValue(chatEvent, golden.get("store.Op.Event.AgentGone").subarray(1)).kind;
  assert.deepEqual(gone, { type: "AgentGone", agent: "alice" });
});

test("an agent's note and a priority", () => {
  assert.deepEqual(decode("wire.Request.AddNote").request.body, {
    type: "AddNote",
    chat: 3,
    clientId: 11n,
    text: "Asked twice already",
  });
  assert.deepEqual(decode("wire.Request.SetPriority").request.body, { type: "SetPriority", chat: 3, priority: "High" });
});

test("what an agent's console reads: quick replies, recent sessions, a contact", () => {
  assert.deepEqual(decode("wire.Request.Items").request.body, { type: "Items", kind: "Faq" });
  assert.deepEqual(decode("wire.Request.InsertItem").request.body, {
    type: "InsertItem",
    chat: 3,
    clientId: 3n,
    item: { type: "Shortcut", shortcut: "/refund" },
  });
  const items = decode("wire.Response.Items").response.result.reply;
  assert.deepEqual(items.items[0], {
    id: 2,
    kind: "QuickReply",
    scope: { type: "Channel", channel: "support" },
    shortcut: "/refund",
    title: "Refunds",
    body: "Hi {customer.name}",
  });
  const sessions = decode("wire.Response.Sessions").response.result.reply.sessions;
  assert.equal(sessions[0].session.agent, "alice");
  assert.deepEqual(sessions[0].session.endedBy, { type: "Agent", agent: "alice" });
  assert.equal(sessions[0].rating.rating, 4);
  assert.equal(sessions[1].rating, null);
  const card = decode("wire.Response.Contact").response.result.reply.card;
  assert.equal(card.key, "email:asa@example.com");
  assert.deepEqual(card.tickets[0].source, { type: "Chat", chat: 3 });
  const upload = decode("wire.Upload");
  assert.equal(upload.type, "Upload");
  assert.equal(typeof upload.upload.size, "number");
});

test("tags, edits and deletions", () => {
  const kind = (name) => decodeValue(chatEvent, golden.get(`store.Op.Event.${name}`).subarray(1)).kind;
  assert.deepEqual(kind("Tagged"), { type: "Tagged", by: "alice", tag: "refund" });
  assert.deepEqual(kind("Untagged"), { type: "Untagged", by: "alice", tag: "vip" });
  assert.deepEqual(kind("Edited"), { type: "Edited", seq: 2, text: "Hej, jag behöver hjälp" });
  assert.deepEqual(kind("Deleted"), { type: "Deleted", seq: 2 });
  assert.deepEqual(kind("Reassigned"), { type: "Reassigned", by: "sam", from: "alice", to: "bob" });
  assert.deepEqual(decode("wire.Request.AddTag").request.body, { type: "AddTag", chat: 3, tag: "refund" });
  assert.deepEqual(decode("wire.Request.RemoveTag").request.body, { type: "RemoveTag", chat: 3, tag: "vip" });
  assert.deepEqual(decode("wire.Request.EditMessage").request.body, {
    type: "EditMessage",
    chat: 3,
    seq: 2,
    text: "Hej igen",
  });
  assert.deepEqual(decode("wire.Request.DeleteMessage").request.body, { type: "DeleteMessage", chat: 3, seq: 2 });
  assert.deepEqual(decode("wire.Request.RecentSessionsTagged").request.body, {
    type: "RecentSessionsTagged",
    before: 9,
    limit: 20,
    tag: "refund",
  });
});

test("a supervisor's monitor: asked, watched live, and stopped", () => {
  const monitor = {
    channel: "support",
    at: 100,
    waitingCount: 1,
    waiting: [{ chat: 3, since: 40, waitMs: 60, priority: "High", customer: "Åsa" }],
    activeCount: 1,
    active: [{ chat: 2, agent: "alice", since: 20, handleMs: 80 }],
    agents: [{ agent: "alice", status: "Present", used: 1, max: 4 }],
  };
  assert.deepEqual(decode("wire.Response.Monitor").response.result.reply, { type: "Monitor", monitor });
  assert.deepEqual(decode("wire.Event.Monitor").event, { type: "Monitor", monitor });
  assert.deepEqual(decode("wire.Event.MonitorStopped").event, { type: "MonitorStopped", channel: "support" });
  assert.deepEqual(decode("wire.Request.WatchMonitor").request.body, { type: "WatchMonitor", channel: "support" });
  assert.deepEqual(decode("wire.Request.UnwatchMonitor").request.body, { type: "UnwatchMonitor", channel: "support" });
});
