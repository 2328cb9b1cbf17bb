// The agent console's offers without a page: one offer per chat, told
// again after a reconnect with a new deadline; gone when the hub withdraws
// it, when its time runs out, when the agent's answer settles it, or when
// the chat's own events show it taken; and a refusal that leaves the
// offer standing lets the agent answer again.

import assert from "node:assert/strict";
import { test } from "node:test";

import { ConnectionError, HubError, Offers, endsOffer, secondsLeft } from "../dist/index.js";

const row = (chat, name = "Ada", firstMessage = "Hi") => ({
  chat,
  channel: "support",
  customer: { name, email: null },
  firstMessage,
  since: 1_000,
  verified: null,
  priority: null,
});
const offer = (chat, expiresInMs = 30_000, name) => ({ row: row(chat, name), expiresInMs });
const chats = (offers) => offers.list().map((each) => each.chat);
const event = (chat, kind) => ({ chat, seq: 2, at: 2, kind });

test("one offer per chat: told again, it takes the new deadline", () => {
  const offers = new Offers();
  offers.offered(offer(7), 31_000);
  offers.offered(offer(8), 21_000);
  assert.deepEqual(chats(offers), [8, 7], "the one that runs out first first");
  // A reconnect: the hub tells the offers standing again, with the time left.
  const again = offers.offered(offer(7, 4_000, "Ada L."), 15_000);
  assert.equal(offers.size, 2, "not offered twice");
  assert.equal(again.expiresAt, 15_000);
  assert.equal(offers.get(7).row.customer.name, "Ada L.");
  assert.deepEqual(chats(offers), [7, 8]);
});

test("the hub's withdrawal takes the offer away, once", () => {
  const offers = new Offers();
  offers.offered(offer(3), 30_000);
  offers.offered(offer(4), 30_000);
  const gone = offers.withdrawn(3);
  assert.equal(gone?.chat, 3, "the offer it was, for what the console says");
  assert.equal(gone.row.customer.name, "Ada");
  assert.equal(offers.withdrawn(3), null, "a second word of it changes nothing");
  assert.equal(offers.withdrawn(99), null, "nor one of a chat never offered");
  assert.deepEqual(chats(offers), [4]);
});

test("an offer runs out at its deadline, not before", () => {
  const offers = new Offers();
  offers.offered(offer(1), 10_000);
  offers.offered(offer(2), 20_000);
  assert.deepEqual(offers.expire(9_999), []);
  assert.deepEqual(
    offers.expire(10_000).map((each) => each.chat),
    [1],
  );
  assert.deepEqual(chats(offers), [2]);
  assert.deepEqual(
    offers.expire(50_000).map((each) => each.chat),
    [2],
  );
  assert.equal(offers.size, 0);
});

test("the countdown counts whole seconds up, and stops at zero", () => {
  assert.equal(secondsLeft(30_000, 0), 30);
  assert.equal(secondsLeft(30_000, 1), 30, "29.999 s left shows 30");
  assert.equal(secondsLeft(30_000, 29_000), 1);
  assert.equal(secondsLeft(30_000, 29_999), 1, "1 ms left still shows a second");
  assert.equal(secondsLeft(30_000, 30_000), 0);
  assert.equal(secondsLeft(30_000, 45_000), 0, "never below zero");
});

test("an answer under way is not asked twice; taken, the offer goes", () => {
  const offers = new Offers();
  offers.offered(offer(5), 30_000);
  assert.equal(offers.answering(5), true);
  assert.equal(offers.answering(5), false, "a second press while the first is under way");
  // Told again meanwhile (a reconnect): still being answered.
  offers.offered(offer(5), 25_000);
  assert.equal(offers.get(5).answering, true);
  assert.equal(offers.answered(5, null), true);
  assert.equal(offers.has(5), false);
  assert.equal(offers.answering(5), false, "nothing left to answer");
  assert.equal(offers.answered(5, null), false);
});

test("a refusal that says the offer is over takes it away; any other lets the agent answer again", () => {
  const offers = new Offers();
  for (const chat of [1, 2, 3, 4, 5, 6]) offers.offered(offer(chat), 30_000);
  const refusals = {
    1: new HubError("NotOffered", "no offer stands"),
    2: new HubError("ChatAlreadyTaken", "bob took it"),
    3: new HubError("ChatEnded", "the customer left"),
    4: new HubError("Unavailable", "the connection was lost; the request may have taken effect"),
    5: new ConnectionError("the client was closed"),
    6: new HubError("RateLimited", "slow down"),
  };
  for (const [chat, err] of Object.entries(refusals)) {
    assert.equal(offers.answering(Number(chat)), true);
    offers.answered(Number(chat), err);
  }
  assert.deepEqual(chats(offers), [4, 5, 6]);
  for (const chat of [4, 5, 6]) {
    assert.equal(offers.get(chat).answering, false);
    assert.equal(offers.answering(chat), true, `chat ${chat} can be answered again`);
  }
  assert.equal(endsOffer(new HubError("NotOffered", "")), true);
  assert.equal(endsOffer(new Error("NotOffered")), false, "only the hub's word");
});

test("the chat given to an agent, or ended, ends its offer; its other events do not", () => {
  const offers = new Offers();
  offers.offered(offer(1), 30_000);
  offers.offered(offer(2), 30_000);
  offers.offered(offer(3), 30_000);
  const message = { type: "Message", from: { type: "Customer" }, clientId: 1n, text: "Still there?" };
  assert.equal(offers.chatEvent(event(1, message)), null);
  assert.equal(offers.chatEvent(event(1, { type: "Assigned", agent: "alice" }))?.chat, 1);
  assert.equal(offers.chatEvent(event(2, { type: "Ended", by: { type: "Customer" } }))?.chat, 2);
  assert.equal(offers.chatEvent(event(9, { type: "Assigned", agent: "alice" })), null);
  assert.deepEqual(chats(offers), [3]);
});
