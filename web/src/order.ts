// Each chat's events in seq order, once, across streams and reconnects:
// the same rules as the native SDK's `client/link/memory.rs`. Pure, so it
// is tested without a connection.

import type { ChatEvent, ChatId, Resume } from "./frames.js";

/** Events of one chat held back waiting for an earlier one, at most. */
export const MAX_HELD = 4096;

/** Where each chat stands and what waits for a gap to fill. */
export class ChatOrder {
  /** The last seq handed on, per chat. */
  private readonly positions = new Map<ChatId, number>();
  /** Events that overtook an earlier one, per chat, by seq. */
  private readonly held = new Map<ChatId, Map<number, ChatEvent>>();
  /** The secret of each chat this client started (to resume it). */
  private readonly secrets = new Map<ChatId, string>();
  /** Chats whose last event handed on ended them. */
  private readonly ended = new Set<ChatId>();

  /** Remembers the secret a chat was started (or resumed) with. */
  remember(chat: ChatId, secret: string, after = 0): void {
    this.secrets.set(chat, secret);
    if (!this.positions.has(chat)) this.positions.set(chat, after);
  }

  /** The secret `chat` was started with, if this client started it. */
  secret(chat: ChatId): string | null {
    return this.secrets.get(chat) ?? null;
  }

  /** The last seq handed on for `chat` (0 for none). */
  position(chat: ChatId): number {
    return this.positions.get(chat) ?? 0;
  }

  /**
   * Takes one event and returns those now ready, in order: none if it is a
   * repeat or overtook a gap, more than one if it filled a gap. Past
   * {@link MAX_HELD} held events the chat moves on past its gap (as the
   * native SDK does): waiting longer would hold its memory without bound.
   * A `Withheld` event (what a customer gets in place of an agent-only
   * one) counts for its seq and is never returned.
   */
  push(event: ChatEvent): ChatEvent[] {
    const chat = event.chat;
    const last = this.positions.get(chat) ?? 0;
    if (event.seq <= last) return [];
    const waiting = this.held.get(chat);
    if (event.seq === last + 1 && waiting === undefined) {
      this.handOn(event);
      return shown(event) ? [event] : [];
    }
    const held = waiting ?? new Map<number, ChatEvent>();
    this.held.set(chat, held);
    held.set(event.seq, event);
    const nextInLine = event.seq === last + 1;
    if (!nextInLine && held.size <= MAX_HELD) return [];
    const ready: ChatEvent[] = [];
    const seqs = [...held.keys()].sort((a, b) => a - b);
    for (const seq of seqs) {
      const position = this.positions.get(chat) ?? 0;
      if (nextInLine && seq !== position + 1) break;
      const next = held.get(seq)!;
      held.delete(seq);
      if (next.seq > position) {
        this.handOn(next);
        if (shown(next)) ready.push(next);
      }
    }
    if (held.size === 0) this.held.delete(chat);
    return ready;
  }

  private handOn(event: ChatEvent): void {
    this.positions.set(event.chat, event.seq);
    if (event.kind.type === "Ended") this.ended.add(event.chat);
    else if (shown(event)) this.ended.delete(event.chat);
  }

  /** Where to resume each live chat, oldest dropped beyond `limit`. */
  resumePoints(limit: number): Resume[] {
    const chats = [...new Set([...this.positions.keys(), ...this.secrets.keys()])]
      .filter((chat) => !this.ended.has(chat))
      .sort((a, b) => a - b);
    return chats.slice(Math.max(0, chats.length - limit)).map((chat) => ({
      chat,
      after: this.positions.get(chat) ?? 0,
      secret: this.secrets.get(chat) ?? null,
    }));
  }
}

/** Whether the application sees `event`: a `Withheld` one only fills its seq. */
function shown(event: ChatEvent): boolean {
  return event.kind.type !== "Withheld";
}
