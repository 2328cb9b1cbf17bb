// An agent's connection to the hub over WebTransport: the requests of the
// native SDK's `AgentClient` (src/client/agent.rs) that an agent's
// console uses, on the same link as a customer's (client.ts): requests
// answered by id, each chat's events in order on streams of their own,
// the channels' incoming lists, alerts and push offers as events, and a
// reconnect that resumes every chat and restores the agent's status.

import { type ConnectOptions, HubLink } from "./client.js";
import { ConnectionError, HubError } from "./errors.js";
import type {
  AgentProfile,
  Assignment,
  ChannelMonitor,
  ChatEvent,
  ChatId,
  ContactCard,
  FileRef,
  ItemKind,
  ItemRef,
  KnowledgeItem,
  Party,
  RatedSession,
  Reply,
  RequestBody,
} from "./frames.js";

/** An agent's status. */
export type Status = "Present" | "Absent" | "Away";

/** The largest file the console downloads into memory (the hub's default `[files] max_bytes` is 10 MiB). */
const MAX_DOWNLOAD_BYTES = 64 << 20;

/** A signed-in agent. */
export class AgentClient extends HubLink {
  /** The status this agent last set (restored after a reconnect). */
  private status: Status | null = null;

  /**
   * Connects to the hub's WebTransport endpoint and signs in as `agent`
   * with its token; a wrong token fails with `HubError` `Unauthorized`.
   */
  static async connect(url: string, agent: string, token: string, options: ConnectOptions = {}): Promise<AgentClient> {
    const client = new AgentClient(url, options, { type: "Agent", agent, token });
    await client.open();
    if (client.welcomed === null) {
      client.close();
      throw new ConnectionError("the welcome has no agent profile");
    }
    return client;
  }

  /** Who the hub signed this connection in as. */
  get profile(): AgentProfile {
    // Checked when connecting; every later welcome carries it too.
    return this.welcomed!;
  }

  protected override ownParty(): Party {
    return { type: "Agent", agent: this.profile.id };
  }

  protected override onReconnect(): RequestBody[] {
    // A restarted hub forgot the status: it comes back first. Monitor
    // watches end with a connection: they are made again.
    const status: RequestBody[] = this.status === null ? [] : [{ type: "SetStatus", status: this.status }];
    const watches: RequestBody[] = [...this.monitors].map((channel) => ({ type: "WatchMonitor", channel }));
    return [...status, ...watches];
  }

  /**
   * Supervisors and admins: a picture of `channel` now (waiting and active
   * chats, member agents with status and load); `NotAllowed` for anyone
   * who does not oversee it.
   */
  async monitor(channel: string): Promise<ChannelMonitor> {
    const reply = await this.request({ type: "Monitor", channel });
    if (reply.type !== "Monitor") throw unexpected(reply);
    return reply.monitor;
  }

  /**
   * Supervisors and admins: watches `channel`'s monitor live. Pictures come
   * from {@link nextEvent} as `Monitor` events: the one at hand at once,
   * then one whenever something but the clock changed (run waits and
   * handle times on from each row's `since`); an application that reads
   * slowly gets the latest, not each. The watch is made again after a
   * reconnect, until {@link unwatchMonitor}; a `MonitorStopped` event says
   * the hub ended it. `NotAllowed` for anyone who does not oversee the
   * channel, `TooManyChats` beyond the hub's `monitors_per_connection`.
   */
  async watchMonitor(channel: string): Promise<void> {
    // Remembered first: the first picture may come before the answer.
    this.monitors.add(channel);
    try {
      done(await this.request({ type: "WatchMonitor", channel }));
    } catch (err) {
      this.monitors.delete(channel);
      throw err;
    }
  }

  /** Supervisors and admins: stops watching `channel`'s monitor; no picture of it follows. */
  async unwatchMonitor(channel: string): Promise<void> {
    this.monitors.delete(channel);
    done(await this.request({ type: "UnwatchMonitor", channel }));
  }

  /** Sets Present (listed, alerted), Away or Absent. */
  async setStatus(status: Status): Promise<void> {
    this.status = status;
    done(await this.request({ type: "SetStatus", status }));
  }

  /** The status this agent set last, if any. */
  get currentStatus(): Status | null {
    return this.status;
  }

  /**
   * Remembers a status set by someone else (a supervisor's
   * `StatusChanged`), so a reconnect restores that one.
   */
  statusSetElsewhere(status: Status): void {
    this.status = status;
  }

  /** Answers the chat that has waited longest in `channel`; its events follow. */
  async getNext(channel: string): Promise<Assignment> {
    return assigned(await this.request({ type: "GetNext", channel }));
  }

  /** Answers one waiting chat of the incoming list; `ChatAlreadyTaken` if someone was first. */
  async pick(chat: ChatId): Promise<Assignment> {
    return assigned(await this.request({ type: "Pick", chat }));
  }

  /**
   * Takes a chat a push channel offered to this agent (an `Offered`
   * event): answers its assignment, as {@link pick} does; its events
   * follow. Refused (`HubError`) with `NotOffered` when no offer of the chat
   * to this agent stands (it expired, was declined or withdrawn, or was
   * never made), `ChatAlreadyTaken` when a pick or get next came first,
   * `ChatEnded` when the customer left. Not sent again after a lost
   * connection: it fails with `Unavailable` (it may have taken effect, and
   * then the chat's events come).
   */
  async accept(chat: ChatId): Promise<Assignment> {
    return assigned(await this.request({ type: "AcceptOffer", chat }));
  }

  /**
   * Declines a chat offered to this agent: the channel offers it to another
   * agent, and an `OfferWithdrawn` with reason `Declined` follows. Refused
   * with `NotOffered` when no offer of the chat to this agent stands.
   */
  async decline(chat: ChatId): Promise<void> {
    done(await this.request({ type: "DeclineOffer", chat }));
  }

  /** Ends a chat this agent handles. */
  async endChat(chat: ChatId): Promise<void> {
    done(await this.request({ type: "EndChat", chat }));
  }

  /** Hands a chat to another agent of its channel. */
  async transferToAgent(chat: ChatId, to: string): Promise<void> {
    done(await this.request({ type: "TransferToAgent", chat, to }));
  }

  /** Puts a chat back in the queue of `channel`. */
  async transferToChannel(chat: ChatId, channel: string): Promise<void> {
    done(await this.request({ type: "TransferToChannel", chat, channel }));
  }

  /** Makes a ticket from a chat; answers its id. */
  async createTicket(chat: ChatId, subject: string, note: string): Promise<number> {
    const reply = await this.request({ type: "CreateTicket", chat, subject, note });
    if (reply.type !== "TicketCreated") throw unexpected(reply);
    return reply.ticket;
  }

  /** Ended chats of this agent's channels, newest first. */
  async recentSessions(before: ChatId | null, limit: number): Promise<RatedSession[]> {
    const reply = await this.request({ type: "RecentSessions", before, limit });
    if (reply.type !== "Sessions") throw unexpected(reply);
    return reply.sessions;
  }

  /** A contact's history, by email (else name). */
  async contact(email: string | null, name: string | null): Promise<ContactCard> {
    const reply = await this.request({ type: "Contact", email, name });
    if (reply.type !== "Contact") throw unexpected(reply);
    return reply.card;
  }

  /** The knowledge items this agent may use (of one kind, if given). */
  async items(kind: ItemKind | null): Promise<KnowledgeItem[]> {
    const reply = await this.request({ type: "Items", kind });
    if (reply.type !== "Items") throw unexpected(reply);
    return reply.items;
  }

  /**
   * Sends a knowledge item into a chat (a quick reply by its shortcut, say),
   * placeholders filled in by the hub; answers the message's seq. The
   * message comes from {@link nextEvent} like any other: what the hub made
   * of the item is read back from the transcript.
   */
  async insert(chat: ChatId, item: ItemRef): Promise<number> {
    const reply = await this.request({ type: "InsertItem", chat, clientId: this.nextClientId++, item });
    if (reply.type !== "Posted") throw unexpected(reply);
    await this.catchUp(chat);
    return reply.seq;
  }

  /**
   * A chat's events after `after`, one page (with whether more follow); the
   * events also go through the chat's order, so nothing is shown twice.
   */
  async transcript(chat: ChatId, after: number): Promise<{ events: ChatEvent[]; more: boolean }> {
    const reply = await this.request({ type: "Transcript", chat, after });
    if (reply.type !== "Transcript") throw unexpected(reply);
    return { events: reply.events, more: reply.more };
  }

  /**
   * Fetches what the hub holds of `chat` past the last event handed on and
   * hands it on: for events this connection was not sent (its own inserted
   * items).
   */
  async catchUp(chat: ChatId): Promise<void> {
    for (let pages = 0; pages < 100; pages++) {
      const { events, more } = await this.transcript(chat, this.order.position(chat));
      for (const event of events) this.deliver(event);
      if (!more || events.length === 0) return;
    }
  }

  /** The Present agents of a channel. */
  async presentAgents(channel: string): Promise<string[]> {
    const reply = await this.request({ type: "PresentAgents", channel });
    if (reply.type !== "PresentAgents") throw unexpected(reply);
    return reply.agents;
  }

  /** Shares a file in a chat, on a stream of its own; answers its description. */
  async upload(chat: ChatId, name: string, contentType: string, bytes: Uint8Array): Promise<FileRef> {
    const { reply } = await this.fileStream({ type: "Upload", upload: { chat, name, contentType, size: bytes.length } }, bytes, 0);
    if (reply.type !== "FileShared") throw unexpected(reply);
    return reply.file;
  }

  /** A shared file's description and bytes. */
  async download(file: number): Promise<{ file: FileRef; bytes: Uint8Array }> {
    const { reply, bytes } = await this.fileStream({ type: "Download", file }, null, MAX_DOWNLOAD_BYTES);
    if (reply.type !== "File") throw unexpected(reply);
    if (bytes.length !== reply.file.size) {
      throw new ConnectionError(`file ${file} arrived with ${bytes.length} of ${reply.file.size} bytes`);
    }
    return { file: reply.file, bytes };
  }
}

function done(reply: Reply): void {
  if (reply.type !== "Done") throw unexpected(reply);
}

function assigned(reply: Reply): Assignment {
  if (reply.type !== "Assigned") throw unexpected(reply);
  return reply.assignment;
}

function unexpected(reply: Reply): Error {
  return new HubError("Internal", `an unexpected answer: ${reply.type}`);
}
