// Which chat panel of the agent console each chat event, and each answer
// that names a chat (get next, pick), goes to. A chat's events travel on a
// stream of their own, apart from the answer on the control stream, so the
// first of them may come before the answer or after it: either way they
// land in the chat's one panel, which whichever comes first makes. Once the
// agent closed a panel, only an event that gives the chat back to this
// agent (or an answer naming it) makes a new one; other late events of the
// chat (a read mark, say) make no empty panel. Pure, so web/test tests it
// without a page.

import type { ChatEvent, ChatId } from "./frames.js";

/** Why a panel is made: a chat seen for the first time, or one whose panel the agent closed before. */
export type Made = "new" | "again";

export class Panels<V> {
  private readonly open = new Map<ChatId, V>();
  /** Chats whose panel the agent closed. */
  private readonly closed = new Set<ChatId>();

  /**
   * @param make makes the panel of a chat (`"again"` for a chat whose
   *   earlier panel was closed: its transcript so far is not in the events
   *   that follow).
   */
  constructor(private readonly make: (chat: ChatId, made: Made) => V) {}

  /**
   * The panel `event` goes to, made on the chat's first event; `null` for
   * an event of a chat whose panel was closed, unless it gives the chat
   * back to agent `me`.
   */
  forEvent(event: ChatEvent, me: string): V | null {
    const view = this.open.get(event.chat);
    if (view !== undefined) return view;
    if (this.closed.has(event.chat) && !givesBack(event, me)) return null;
    return this.made(event.chat);
  }

  /** The panel an answer naming `chat` goes to: the one its events made, or a new one. */
  forAnswer(chat: ChatId): V {
    return this.open.get(chat) ?? this.made(chat);
  }

  /** The agent closed the panel of `chat`. */
  close(chat: ChatId): void {
    if (this.open.delete(chat)) this.closed.add(chat);
  }

  get(chat: ChatId): V | undefined {
    return this.open.get(chat);
  }

  values(): IterableIterator<V> {
    return this.open.values();
  }

  get size(): number {
    return this.open.size;
  }

  private made(chat: ChatId): V {
    const again = this.closed.delete(chat);
    const view = this.make(chat, again ? "again" : "new");
    this.open.set(chat, view);
    return view;
  }
}

/** Whether `event` makes `me` the chat's agent again. */
function givesBack(event: ChatEvent, me: string): boolean {
  const kind = event.kind;
  switch (kind.type) {
    case "Reopened":
      return kind.agent === me;
    case "Assigned":
      return kind.agent === me;
    case "TransferredToAgent":
      return kind.to === me;
    default:
      return false;
  }
}
