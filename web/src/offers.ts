// The offers a push channel has made to an agent and that still stand:
// one per chat, each with its deadline on the page's clock. An offer goes
// when the hub withdraws it (`OfferWithdrawn`: accepted, taken, expired,
// declined, the customer left, withdrawn), when its time runs out here,
// when the agent's answer settles it, or when the chat's own events show
// it taken. Pure (the clock is passed in), so web/test tests it without a
// page.

import { HubError } from "./errors.js";
import type { ChatEvent, ChatId, Offer, QueueRow } from "./frames.js";

/** An offer standing, as a page shows it. */
export interface StandingOffer {
  chat: ChatId;
  /** The chat's incoming-list row: its customer, first message, channel. */
  row: QueueRow;
  /** When it expires, in ms since the epoch on the page's clock. */
  expiresAt: number;
  /** The agent's accept or decline of it is under way. */
  answering: boolean;
}

/**
 * Whether a refusal of an accept or decline means that the offer no
 * longer stands: it is over (`NotOffered`), someone else took the chat
 * (`ChatAlreadyTaken`), or the customer left (`ChatEnded`, `UnknownChat`).
 * Any other failure (a lost connection, `Unavailable`) leaves it to the
 * hub's word or its deadline.
 */
export function endsOffer(err: unknown): boolean {
  return (
    err instanceof HubError &&
    (err.code === "NotOffered" || err.code === "ChatAlreadyTaken" || err.code === "ChatEnded" || err.code === "UnknownChat")
  );
}

export class Offers {
  private readonly standing = new Map<ChatId, StandingOffer>();

  /**
   * An offer made, or told again after a reconnect with the time it has
   * left: it replaces the chat's earlier one (and its deadline), so a chat
   * is offered once. Answers the offer as it stands now.
   */
  offered(offer: Offer, expiresAt: number): StandingOffer {
    const earlier = this.standing.get(offer.row.chat);
    const standing: StandingOffer = {
      chat: offer.row.chat,
      row: offer.row,
      expiresAt,
      answering: earlier?.answering ?? false,
    };
    this.standing.set(standing.chat, standing);
    return standing;
  }

  /** The hub withdrew the offer of `chat`: the offer it was, if one stood. */
  withdrawn(chat: ChatId): StandingOffer | null {
    return this.take(chat);
  }

  /**
   * One of the chat's own events: one that gives the chat to an agent or
   * ends it also ends its offer (an accept whose answer was lost, say).
   * Answers the offer it ended, if any.
   */
  chatEvent(event: ChatEvent): StandingOffer | null {
    const kind = event.kind.type;
    return kind === "Assigned" || kind === "Ended" ? this.take(event.chat) : null;
  }

  /** The offers whose time ran out by `now`, taken away. */
  expire(now: number): StandingOffer[] {
    const over = [...this.standing.values()].filter((offer) => offer.expiresAt <= now);
    for (const offer of over) this.standing.delete(offer.chat);
    return over;
  }

  /**
   * The agent answers the offer of `chat` (accept or decline): while the
   * answer is under way it is not asked twice. False if no offer stands.
   */
  answering(chat: ChatId): boolean {
    const offer = this.standing.get(chat);
    if (offer === undefined || offer.answering) return false;
    offer.answering = true;
    return true;
  }

  /**
   * The answer came: `err` is `null` if it was taken, else its refusal. The
   * offer goes once answered, or when the refusal says it no longer stands
   * ({@link endsOffer}); otherwise it stands again to be answered. Answers
   * whether it went.
   */
  answered(chat: ChatId, err: unknown): boolean {
    const offer = this.standing.get(chat);
    if (offer === undefined) return false;
    if (err === null || endsOffer(err)) {
      this.standing.delete(chat);
      return true;
    }
    offer.answering = false;
    return false;
  }

  has(chat: ChatId): boolean {
    return this.standing.has(chat);
  }

  get(chat: ChatId): StandingOffer | undefined {
    return this.standing.get(chat);
  }

  /** The offers standing, the one that expires first first. */
  list(): StandingOffer[] {
    return [...this.standing.values()].sort((a, b) => a.expiresAt - b.expiresAt || a.chat - b.chat);
  }

  get size(): number {
    return this.standing.size;
  }

  private take(chat: ChatId): StandingOffer | null {
    const offer = this.standing.get(chat);
    if (offer === undefined) return null;
    this.standing.delete(chat);
    return offer;
  }
}

/** Whole seconds left until `expiresAt` at `now`, never below 0. */
export function secondsLeft(expiresAt: number, now: number): number {
  return Math.max(0, Math.ceil((expiresAt - now) / 1000));
}
