// The agent console's bookkeeping of chat panels without a page: a chat's
// first events and the answer that names it (get next, pick) come on
// different streams, in either order, and land in one panel; a closed
// panel is made again only for an event that gives the chat back.

import assert from "node:assert/strict";
import { test } from "node:test";

import { Panels } from "../dist/panels.js";

const event = (chat, seq, kind) => ({ chat, seq, at: seq, kind });
const started = (chat) =>
  event(chat, 1, { type: "Started", channel: "support", customer: { name: "Ada", email: null }, text: "Hi" });
const assigned = (chat, seq, agent) => event(chat, seq, { type: "Assigned", agent });
const read = (chat, seq) => event(chat, seq, { type: "Read", by: { type: "Customer" }, upTo: 1 });

/** Panels that record what they were given, and every panel made. */
function desk() {
  const made = [];
  const panels = new Panels((chat, why) => {
    const panel = { chat, why, events: [] };
    made.push(panel);
    return panel;
  });
  const deliver = (ev) => panels.forEvent(ev, "alice")?.events.push(ev.seq) ?? null;
  return { panels, made, deliver };
}

test("events that come before the answer naming the chat are in its one panel", () => {
  const { panels, made, deliver } = desk();
  deliver(started(7));
  deliver(assigned(7, 2, "alice"));
  const answered = panels.forAnswer(7);
  assert.equal(made.length, 1, "the answer finds the panel the events made");
  assert.equal(answered, made[0]);
  assert.deepEqual(answered.events, [1, 2], "nothing dropped");
  assert.equal(answered.why, "new");
});

test("events that come after the answer go to the panel it made", () => {
  const { panels, made, deliver } = desk();
  const answered = panels.forAnswer(8);
  deliver(started(8));
  deliver(assigned(8, 2, "alice"));
  deliver(started(9));
  assert.equal(made.length, 2, "one panel per chat");
  assert.deepEqual(answered.events, [1, 2]);
  assert.deepEqual(panels.get(9).events, [1]);
});

test("a closed panel is made again only when the chat comes back to the agent", () => {
  const { panels, made, deliver } = desk();
  deliver(started(5));
  panels.close(5);
  assert.equal(panels.size, 0);
  assert.equal(deliver(read(5, 9)), null, "a late read mark makes no empty panel");
  assert.equal(deliver(event(5, 10, { type: "Reopened", agent: "bob" })), null, "nor another agent's return");
  assert.equal(made.length, 1);
  deliver(event(5, 11, { type: "Reopened", agent: "alice" }));
  assert.equal(made.length, 2, "the customer came back to this agent");
  assert.equal(made[1].why, "again", "its transcript so far is to be loaded");
  assert.deepEqual(made[1].events, [11]);
  assert.equal(panels.forAnswer(5), made[1]);
});

test("a closed chat taken again, or handed to the agent, makes its panel again", () => {
  const { panels, made, deliver } = desk();
  deliver(started(3));
  panels.close(3);
  const again = panels.forAnswer(3);
  assert.equal(again.why, "again");
  deliver(started(4));
  panels.close(4);
  deliver(event(4, 6, { type: "TransferredToAgent", from: "bob", to: "alice" }));
  assert.equal(made.length, 4);
  assert.equal(made[3].why, "again");
  panels.close(4);
  deliver(assigned(4, 8, "carol"));
  assert.equal(made.length, 4, "assigned to someone else");
});
