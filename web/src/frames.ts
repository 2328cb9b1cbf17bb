// The hub's frames (src/protocol/frame.rs and the core values they
// carry) as bincode schemas: the browser speaks the very bytes the native
// SDK does. Field and variant order is the Rust types' order; names are
// camelCase. Variants a browser never sends or receives (editing
// knowledge items, tickets' bodies, erasing a contact) keep their place
// in the order and refuse to encode or decode.
//
// tests/golden/formats.txt pins the bytes on the Rust side, and
// web/test/golden.test.mjs checks these schemas against the same lines.

import {
  type Codec,
  DecodeError,
  Reader,
  Writer,
  bool,
  decodeValue,
  encodeValue,
  enumOf,
  option,
  str,
  struct,
  u16,
  u32,
  u64,
  u64n,
  u8,
  vec,
} from "./bincode.js";
import { ERROR_CODES, type ErrorCode } from "./errors.js";

/** The protocol version this SDK speaks (`PROTOCOL_VERSION`). */
export const PROTOCOL_VERSION = 5;

/** The largest payload a frame may carry (`MAX_FRAME_BYTES`). */
export const MAX_FRAME_BYTES = 1 << 20;

/**
 * Numbers are `number` where the hub counts (ids, seqs, times: exact up to
 * 2^53, far beyond what a hub reaches) and `bigint` for client ids, which
 * start at a random 63-bit value.
 */

/** A chat's id (`ChatId`). */
export type ChatId = number;
/** Milliseconds since the Unix epoch (`Timestamp`). */
export type Timestamp = number;

/** What a customer says about themselves. */
export interface Customer {
  name: string | null;
  email: string | null;
}

/** Who did something in a chat. */
export type Party = { type: "Customer" } | { type: "Agent"; agent: string } | { type: "System" };

/** A shared file's description. */
export interface FileRef {
  id: number;
  name: string;
  contentType: string;
  size: number;
}

/** An identity the contact center's backend signed. */
export interface Identity {
  id: string;
  email: string | null;
}

/** What happened in a chat. */
export type ChatEventKind =
  | { type: "Started"; channel: string; customer: Customer }
  | { type: "Message"; from: Party; clientId: bigint; text: string }
  | { type: "Assigned"; agent: string }
  | { type: "Ended"; by: Party }
  | { type: "TransferredToAgent"; from: string; to: string }
  | { type: "TransferDeclined"; by: string; to: string | null }
  | { type: "Requeued"; by: string | null; channel: string }
  | { type: "TicketCreated"; ticket: number; subject: string }
  | { type: "Reopened"; agent: string | null }
  | { type: "FileShared"; from: Party; file: FileRef }
  | { type: "Verified"; identity: Identity }
  | { type: "Read"; by: Party; upTo: number }
  | { type: "Note"; by: string; clientId: bigint; text: string }
  | { type: "Prioritized"; by: string; priority: Priority }
  | { type: "Withheld" }
  | { type: "SupervisorJoined"; supervisor: string }
  | { type: "SupervisorLeft"; supervisor: string }
  | { type: "SkillsNeeded"; skills: string[] }
  | { type: "AgentGone"; agent: string }
  | { type: "PriorityClaimed"; priority: Priority }
  | { type: "Tagged"; by: string; tag: string }
  | { type: "Untagged"; by: string; tag: string }
  | { type: "Edited"; seq: number; text: string }
  | { type: "Deleted"; seq: number }
  /** For agents only: the supervisor who moved the chat (a `TransferredToAgent` follows). */
  | { type: "Reassigned"; by: string; from: string; to: string };

/**
 * How urgently a waiting chat is served (`Priority`), lowest first.
 */
export type Priority = "Low" | "Normal" | "High" | "Urgent";

/** One numbered event of a chat. */
export interface ChatEvent {
  chat: ChatId;
  seq: number;
  at: Timestamp;
  kind: ChatEventKind;
}

/** One row of a channel's incoming list. */
export interface QueueRow {
  chat: ChatId;
  channel: string;
  customer: Customer;
  firstMessage: string;
  since: Timestamp;
  verified: string | null;
  /** Set by an agent (`SetPriority`); `null` for the channel's usual order. */
  priority: Priority | null;
}

/** A change of a channel's queue. */
export type QueueChange =
  | { type: "Snapshot"; rows: QueueRow[] }
  | { type: "Added"; row: QueueRow }
  | { type: "Removed"; chat: ChatId }
  | { type: "Changed"; row: QueueRow };

/** A channel's queue after a change. */
export interface QueueUpdate {
  channel: string;
  version: number;
  waiting: number;
  change: QueueChange;
}

/** A chat waiting past its channel's `alert_after`. */
export interface Alert {
  row: QueueRow;
  raised: Timestamp;
}

/** A chat given to an agent. */
export interface Assignment {
  chat: ChatId;
  channel: string;
  customer: Customer;
  firstMessage: string;
  waitingSince: Timestamp;
}

/** A waiting chat offered to one agent by a push channel (`Offer`). */
export interface Offer {
  row: QueueRow;
  /** How long the agent has left to accept, in milliseconds. */
  expiresInMs: number;
}

/** Why an offer is over (`OfferEnd`). */
export type OfferEnd = "Accepted" | "Taken" | "Expired" | "Declined" | "Left" | "Withdrawn";

/** Where a waiting customer's chat stands in its queue (`QueuePlace`). */
export interface QueuePlace {
  chat: ChatId;
  /** 1 for the next chat to be answered; rounded down far back. */
  position: number;
  /** About how long until an agent answers, in seconds; `null` while the hub cannot tell. */
  estimatedWaitSecs: number | null;
}

/** What a customer gets instead of a queue place. */
export interface OfflineForm {
  channel: string;
  message: string;
  fields: { key: string; required: boolean }[];
  opensAt: Timestamp | null;
}

/** An error answer. */
export interface ErrorFrame {
  code: ErrorCode;
  message: string;
}

/** Who a connection speaks for. */
export type Role = { type: "Customer" } | { type: "Agent"; agent: string; token: string };

/** Where to pick a chat up after a reconnect. */
export interface Resume {
  chat: ChatId;
  after: number;
  secret: string | null;
}

/** The first frame of a connection. */
export interface Hello {
  version: number;
  role: Role;
  resume: Resume[];
}

/** A request's body; the variants a browser customer (or agent) sends. */
export type RequestBody =
  | { type: "StartChat"; channel: string; customer: Customer; clientId: bigint; text: string; secret: string }
  | { type: "Post"; chat: ChatId; clientId: bigint; text: string }
  | { type: "Leave"; chat: ChatId }
  | { type: "SetStatus"; status: "Present" | "Absent" | "Away" }
  | { type: "GetNext"; channel: string }
  | { type: "Pick"; chat: ChatId }
  | { type: "PresentAgents"; channel: string }
  | { type: "SubmitOfflineForm"; channel: string; name: string | null; email: string; message: string }
  | { type: "Tickets"; before: number | null; limit: number }
  | { type: "Ticket"; id: number }
  | { type: "TransferToAgent"; chat: ChatId; to: string }
  | { type: "TransferToChannel"; chat: ChatId; channel: string }
  | { type: "DeclineTransfer"; chat: ChatId }
  | { type: "CreateTicket"; chat: ChatId; subject: string; note: string }
  | { type: "ReturnToChat"; chat: ChatId; secret: string }
  | { type: "Contact"; email: string | null; name: string | null }
  | { type: "Items"; kind: ItemKind | null }
  | { type: "InsertItem"; chat: ChatId; clientId: bigint; item: ItemRef }
  | { type: "EndChat"; chat: ChatId }
  | { type: "RecentSessions"; before: ChatId | null; limit: number }
  | { type: "Transcript"; chat: ChatId; after: number }
  | { type: "Identify"; channel: string; identity: Identity; signature: string }
  | { type: "MarkRead"; chat: ChatId; upTo: number }
  | { type: "Rate"; chat: ChatId; rating: number; comment: string | null }
  | { type: "AddNote"; chat: ChatId; clientId: bigint; text: string }
  | { type: "SetPriority"; chat: ChatId; priority: Priority }
  | { type: "AcceptOffer"; chat: ChatId }
  | { type: "DeclineOffer"; chat: ChatId }
  | { type: "Monitor"; channel: string }
  | { type: "SetAgentStatus"; agent: string; status: "Present" | "Absent" | "Away" }
  | { type: "Whisper"; chat: ChatId; clientId: bigint; text: string }
  | { type: "Follow"; chat: ChatId }
  | { type: "Unfollow"; chat: ChatId }
  | { type: "Reassign"; chat: ChatId; to: string }
  | { type: "BargeIn"; chat: ChatId }
  | { type: "LeaveChat"; chat: ChatId }
  | {
      type: "StartChatNeeding";
      channel: string;
      customer: Customer;
      clientId: bigint;
      text: string;
      secret: string;
      skills: string[];
    }
  | {
      type: "IdentifyClaiming";
      channel: string;
      identity: Identity;
      priority: Priority;
      signature: string;
    }
  | { type: "AddTag"; chat: ChatId; tag: string }
  | { type: "RemoveTag"; chat: ChatId; tag: string }
  | { type: "EditMessage"; chat: ChatId; seq: number; text: string }
  | { type: "DeleteMessage"; chat: ChatId; seq: number }
  | { type: "RecentSessionsTagged"; before: ChatId | null; limit: number; tag: string | null }
  | { type: "WatchMonitor"; channel: string }
  | { type: "UnwatchMonitor"; channel: string };

/** What kind of knowledge an item is (`ItemKind`). */
export type ItemKind = "QuickReply" | "Faq" | "Template";

/** Who a knowledge item belongs to (`Scope`). */
export type Scope = { type: "Channel"; channel: string } | { type: "Personal"; agent: string };

/** A knowledge item named by id or, for quick replies, by shortcut (`ItemRef`). */
export type ItemRef = { type: "Id"; id: number } | { type: "Shortcut"; shortcut: string };

/** A quick reply, FAQ article or template (`KnowledgeItem`). */
export interface KnowledgeItem {
  id: number;
  kind: ItemKind;
  scope: Scope;
  shortcut: string | null;
  title: string;
  body: string;
}

/** A customer's rating of an ended chat (`Rating`). */
export interface Rating {
  rating: number;
  comment: string | null;
  at: Timestamp;
}

/** An ended chat (`SessionSummary`). */
export interface SessionSummary {
  chat: ChatId;
  channel: string;
  customer: Customer;
  agent: string | null;
  started: Timestamp;
  ended: Timestamp;
  endedBy: Party;
  events: number;
}

/** A row of recent sessions (`RatedSession`). */
export interface RatedSession {
  session: SessionSummary;
  rating: Rating | null;
}

/** Where a ticket came from (`TicketSource`). */
export type TicketSource = { type: "OfflineForm" } | { type: "Chat"; chat: ChatId };

/** A ticket's list row (`TicketSummary`). */
export interface TicketSummary {
  id: number;
  channel: string;
  source: TicketSource;
  customer: Customer;
  subject: string;
  created: Timestamp;
}

/** One chat of a contact's history (`ContactChat`). */
export interface ContactChat {
  chat: ChatId;
  channel: string;
  customer: Customer;
  started: Timestamp;
  ended: Timestamp | null;
  agent: string | null;
  rating: Rating | null;
}

/** A waiting chat in a monitor (`WaitingChat`). */
export interface WaitingChat {
  chat: ChatId;
  /** When it started waiting: run the wait on from here. */
  since: Timestamp;
  /** How long it had waited at the picture's `at`, in milliseconds. */
  waitMs: number;
  priority: Priority | null;
  customer: string | null;
}

/** An active chat in a monitor (`ActiveChat`). */
export interface ActiveChat {
  chat: ChatId;
  agent: string;
  /** When its agent got it: run the handle time on from here. */
  since: Timestamp;
  /** How long its agent had held it at the picture's `at`, in milliseconds. */
  handleMs: number;
}

/** A member agent in a monitor (`AgentLoad`). */
export interface AgentLoad {
  agent: string;
  status: "Present" | "Absent" | "Away";
  /** Chat slots in use. */
  used: number;
  /** The most chats the agent may hold. */
  max: number;
}

/** A channel as its supervisor sees it at one moment (`ChannelMonitor`). */
export interface ChannelMonitor {
  channel: string;
  at: Timestamp;
  /** How many chats wait, listed or not. */
  waitingCount: number;
  waiting: WaitingChat[];
  /** How many chats are active, listed or not. */
  activeCount: number;
  active: ActiveChat[];
  agents: AgentLoad[];
}

/** A contact's side panel (`ContactCard`). */
export interface ContactCard {
  key: string;
  chats: ContactChat[];
  tickets: TicketSummary[];
  firstContact: Timestamp | null;
  lastContact: Timestamp | null;
}

/** A file about to be shared in a chat (`Upload`): exactly `size` bytes follow. */
export interface Upload {
  chat: ChatId;
  name: string;
  contentType: string;
  size: number;
}

/** A request with its id. */
export interface Request {
  id: number;
  body: RequestBody;
}

/** What a client sends on its control stream. */
export type ClientFrame =
  | { type: "Hello"; hello: Hello }
  | { type: "Request"; request: Request }
  | { type: "Upload"; upload: Upload }
  | { type: "Download"; file: number };

/** A successful answer. */
export type Reply =
  | { type: "ChatStarted"; chat: ChatId; waiting: number }
  | { type: "Offline"; form: OfflineForm }
  | { type: "PresentAgents"; agents: string[] }
  | { type: "TicketCreated"; ticket: number }
  | { type: "Contact"; card: ContactCard }
  | { type: "Items"; items: KnowledgeItem[] }
  | { type: "FileShared"; file: FileRef; seq: number }
  | { type: "File"; file: FileRef }
  | { type: "Posted"; seq: number; at: Timestamp }
  | { type: "Done" }
  | { type: "Assigned"; assignment: Assignment }
  | { type: "Sessions"; sessions: RatedSession[] }
  | { type: "Transcript"; events: ChatEvent[]; more: boolean }
  | { type: "Read"; upTo: number; seq: number; at: Timestamp }
  | { type: "Monitor"; monitor: ChannelMonitor };

/** The answer to one request. */
export interface Response {
  id: number;
  result: { type: "Ok"; reply: Reply } | { type: "Err"; error: ErrorFrame };
}

/** An agent's profile, in an agent's welcome. */
export interface AgentProfile {
  id: string;
  name: string;
  channels: string[];
  status: "Present" | "Absent" | "Away";
}

/** Something the hub pushes. */
export type Event =
  | { type: "Chat"; event: ChatEvent }
  | { type: "Queue"; update: QueueUpdate }
  | { type: "Alert"; alert: Alert }
  | { type: "AlertCleared"; channel: string; chat: ChatId }
  | { type: "Typing"; chat: ChatId; from: Party }
  | { type: "Offered"; offer: Offer }
  | { type: "OfferWithdrawn"; channel: string; chat: ChatId; reason: OfferEnd }
  | { type: "QueuePosition"; place: QueuePlace }
  | { type: "StatusChanged"; status: "Present" | "Absent" | "Away"; by: string }
  | { type: "Monitor"; monitor: ChannelMonitor }
  | { type: "MonitorStopped"; channel: string };

/** What the hub sends. */
export type ServerFrame =
  | { type: "Welcome"; version: number; agent: AgentProfile | null }
  | { type: "Response"; response: Response }
  | { type: "Event"; event: Event }
  | { type: "Closing"; error: ErrorFrame };

/** A datagram a client sends. */
export type ClientDatagram = { type: "Typing"; chat: ChatId };
/** A datagram the hub sends. */
export type ServerDatagram = { type: "Typing"; chat: ChatId; from: Party };

/** A variant this SDK does not carry: it keeps its index and refuses. */
function unsupported(name: string): readonly [string, readonly [readonly [string, Codec<never>]]] {
  const refuse: Codec<never> = {
    enc: () => {
      throw new RangeError(`${name} is not supported by this SDK`);
    },
    dec: () => {
      throw new DecodeError(`${name} is not supported by this SDK`);
    },
  };
  return [name, [["unsupported", refuse]]] as const;
}

const unitEnum = <T extends string>(names: readonly T[]): Codec<T> => ({
  enc: (w, v) => {
    const i = names.indexOf(v);
    if (i < 0) throw new RangeError(`unknown variant ${v}`);
    w.varint(i, 0xffffffff);
  },
  dec: (r) => {
    const i = r.varint(0xffffffff);
    const name = names[i];
    if (name === undefined) throw new DecodeError(`unknown variant ${i}`);
    return name;
  },
});

const errorCode = unitEnum(ERROR_CODES);
const status = unitEnum(["Present", "Absent", "Away"] as const);
const priority = unitEnum<Priority>(["Low", "Normal", "High", "Urgent"]);
const offerEnd = unitEnum<OfferEnd>(["Accepted", "Taken", "Expired", "Declined", "Left", "Withdrawn"]);

const customer = struct<Customer>([
  ["name", option(str)],
  ["email", option(str)],
]);
const party = enumOf<Party>([
  ["Customer", []],
  ["Agent", [["agent", str]]],
  ["System", []],
]);
const fileRef = struct<FileRef>([
  ["id", u64],
  ["name", str],
  ["contentType", str],
  ["size", u64],
]);
const identity = struct<Identity>([
  ["id", str],
  ["email", option(str)],
]);
const chatEventKind = enumOf<ChatEventKind>([
  ["Started", [["channel", str], ["customer", customer]]],
  ["Message", [["from", party], ["clientId", u64n], ["text", str]]],
  ["Assigned", [["agent", str]]],
  ["Ended", [["by", party]]],
  ["TransferredToAgent", [["from", str], ["to", str]]],
  ["TransferDeclined", [["by", str], ["to", option(str)]]],
  ["Requeued", [["by", option(str)], ["channel", str]]],
  ["TicketCreated", [["ticket", u64], ["subject", str]]],
  ["Reopened", [["agent", option(str)]]],
  ["FileShared", [["from", party], ["file", fileRef]]],
  ["Verified", [["identity", identity]]],
  ["Read", [["by", party], ["upTo", u64]]],
  ["Note", [["by", str], ["clientId", u64n], ["text", str]]],
  ["Prioritized", [["by", str], ["priority", priority]]],
  ["Withheld", []],
  ["SupervisorJoined", [["supervisor", str]]],
  ["SupervisorLeft", [["supervisor", str]]],
  ["SkillsNeeded", [["skills", vec(str)]]],
  ["AgentGone", [["agent", str]]],
  ["PriorityClaimed", [["priority", priority]]],
  ["Tagged", [["by", str], ["tag", str]]],
  ["Untagged", [["by", str], ["tag", str]]],
  ["Edited", [["seq", u64], ["text", str]]],
  ["Deleted", [["seq", u64]]],
  ["Reassigned", [["by", str], ["from", str], ["to", str]]],
]);
/** `ChatEvent`: one numbered event of a chat, as frames and the hub's store carry it. */
export const chatEvent = struct<ChatEvent>([
  ["chat", u64],
  ["seq", u64],
  ["at", u64],
  ["kind", chatEventKind],
]);
const queueRow = struct<QueueRow>([
  ["chat", u64],
  ["channel", str],
  ["customer", customer],
  ["firstMessage", str],
  ["since", u64],
  ["verified", option(str)],
  ["priority", option(priority)],
]);
const queueUpdate = struct<QueueUpdate>([
  ["channel", str],
  ["version", u64],
  ["waiting", u32],
  [
    "change",
    enumOf<QueueChange>([
      ["Snapshot", [["rows", vec(queueRow)]]],
      ["Added", [["row", queueRow]]],
      ["Removed", [["chat", u64]]],
      ["Changed", [["row", queueRow]]],
    ]),
  ],
]);
const alert = struct<Alert>([
  ["row", queueRow],
  ["raised", u64],
]);
const assignment = struct<Assignment>([
  ["chat", u64],
  ["channel", str],
  ["customer", customer],
  ["firstMessage", str],
  ["waitingSince", u64],
]);
const offlineForm = struct<OfflineForm>([
  ["channel", str],
  ["message", str],
  [
    "fields",
    vec(
      struct<{ key: string; required: boolean }>([
        ["key", str],
        ["required", bool],
      ]),
    ),
  ],
  ["opensAt", option(u64)],
]);
const errorFrame = struct<ErrorFrame>([
  ["code", errorCode],
  ["message", str],
]);

const itemKind = unitEnum<ItemKind>(["QuickReply", "Faq", "Template"]);
const knowledgeItem = struct<KnowledgeItem>([
  ["id", u64],
  ["kind", itemKind],
  [
    "scope",
    enumOf<Scope>([
      ["Channel", [["channel", str]]],
      ["Personal", [["agent", str]]],
    ]),
  ],
  ["shortcut", option(str)],
  ["title", str],
  ["body", str],
]);
const itemRef = enumOf<ItemRef>([
  ["Id", [["id", u64]]],
  ["Shortcut", [["shortcut", str]]],
]);
const rating = struct<Rating>([
  ["rating", u8],
  ["comment", option(str)],
  ["at", u64],
]);
const ratedSession = struct<RatedSession>([
  [
    "session",
    struct<SessionSummary>([
      ["chat", u64],
      ["channel", str],
      ["customer", customer],
      ["agent", option(str)],
      ["started", u64],
      ["ended", u64],
      ["endedBy", party],
      ["events", u64],
    ]),
  ],
  ["rating", option(rating)],
]);
const ticketSummary = struct<TicketSummary>([
  ["id", u64],
  ["channel", str],
  [
    "source",
    enumOf<TicketSource>([
      ["OfflineForm", []],
      ["Chat", [["chat", u64]]],
    ]),
  ],
  ["customer", customer],
  ["subject", str],
  ["created", u64],
]);
const contactCard = struct<ContactCard>([
  ["key", str],
  [
    "chats",
    vec(
      struct<ContactChat>([
        ["chat", u64],
        ["channel", str],
        ["customer", customer],
        ["started", u64],
        ["ended", option(u64)],
        ["agent", option(str)],
        ["rating", option(rating)],
      ]),
    ),
  ],
  ["tickets", vec(ticketSummary)],
  ["firstContact", option(u64)],
  ["lastContact", option(u64)],
]);

const channelMonitor = struct<ChannelMonitor>([
  ["channel", str],
  ["at", u64],
  ["waitingCount", u32],
  [
    "waiting",
    vec(
      struct<WaitingChat>([
        ["chat", u64],
        ["since", u64],
        ["waitMs", u64],
        ["priority", option(priority)],
        ["customer", option(str)],
      ]),
    ),
  ],
  ["activeCount", u32],
  [
    "active",
    vec(
      struct<ActiveChat>([
        ["chat", u64],
        ["agent", str],
        ["since", u64],
        ["handleMs", u64],
      ]),
    ),
  ],
  [
    "agents",
    vec(
      struct<AgentLoad>([
        ["agent", str],
        ["status", status],
        ["used", u64],
        ["max", u64],
      ]),
    ),
  ],
]);

const hello = struct<Hello>([
  ["version", u16],
  [
    "role",
    enumOf<Role>([
      ["Customer", []],
      ["Agent", [["agent", str], ["token", str]]],
    ]),
  ],
  [
    "resume",
    vec(
      struct<Resume>([
        ["chat", u64],
        ["after", u64],
        ["secret", option(str)],
      ]),
    ),
  ],
]);
const requestBody = enumOf<RequestBody>([
  ["StartChat", [["channel", str], ["customer", customer], ["clientId", u64n], ["text", str], ["secret", str]]],
  ["Post", [["chat", u64], ["clientId", u64n], ["text", str]]],
  ["Leave", [["chat", u64]]],
  ["SetStatus", [["status", status]]],
  ["GetNext", [["channel", str]]],
  ["Pick", [["chat", u64]]],
  ["PresentAgents", [["channel", str]]],
  ["SubmitOfflineForm", [["channel", str], ["name", option(str)], ["email", str], ["message", str]]],
  ["Tickets", [["before", option(u64)], ["limit", u16]]],
  ["Ticket", [["id", u64]]],
  ["TransferToAgent", [["chat", u64], ["to", str]]],
  ["TransferToChannel", [["chat", u64], ["channel", str]]],
  ["DeclineTransfer", [["chat", u64]]],
  ["CreateTicket", [["chat", u64], ["subject", str], ["note", str]]],
  ["ReturnToChat", [["chat", u64], ["secret", str]]],
  ["Contact", [["email", option(str)], ["name", option(str)]]],
  unsupported("CreateItem"),
  unsupported("UpdateItem"),
  unsupported("DeleteItem"),
  ["Items", [["kind", option(itemKind)]]],
  ["InsertItem", [["chat", u64], ["clientId", u64n], ["item", itemRef]]],
  ["EndChat", [["chat", u64]]],
  ["RecentSessions", [["before", option(u64)], ["limit", u16]]],
  ["Transcript", [["chat", u64], ["after", u64]]],
  ["Identify", [["channel", str], ["identity", identity], ["signature", str]]],
  ["MarkRead", [["chat", u64], ["upTo", u64]]],
  ["Rate", [["chat", u64], ["rating", u8], ["comment", option(str)]]],
  ["AddNote", [["chat", u64], ["clientId", u64n], ["text", str]]],
  ["SetPriority", [["chat", u64], ["priority", priority]]],
  ["AcceptOffer", [["chat", u64]]],
  ["DeclineOffer", [["chat", u64]]],
  ["Monitor", [["channel", str]]],
  ["SetAgentStatus", [["agent", str], ["status", status]]],
  ["Whisper", [["chat", u64], ["clientId", u64n], ["text", str]]],
  ["Follow", [["chat", u64]]],
  ["Unfollow", [["chat", u64]]],
  ["Reassign", [["chat", u64], ["to", str]]],
  ["BargeIn", [["chat", u64]]],
  ["LeaveChat", [["chat", u64]]],
  [
    "StartChatNeeding",
    [
      ["channel", str],
      ["customer", customer],
      ["clientId", u64n],
      ["text", str],
      ["secret", str],
      ["skills", vec(str)],
    ],
  ],
  [
    "IdentifyClaiming",
    [
      ["channel", str],
      ["identity", identity],
      ["priority", priority],
      ["signature", str],
    ],
  ],
  ["AddTag", [["chat", u64], ["tag", str]]],
  ["RemoveTag", [["chat", u64], ["tag", str]]],
  ["EditMessage", [["chat", u64], ["seq", u64], ["text", str]]],
  ["DeleteMessage", [["chat", u64], ["seq", u64]]],
  ["RecentSessionsTagged", [["before", option(u64)], ["limit", u16], ["tag", option(str)]]],
  unsupported("ForgetContact"),
  ["WatchMonitor", [["channel", str]]],
  ["UnwatchMonitor", [["channel", str]]],
]);

/** `ClientFrame`. */
export const clientFrame = enumOf<ClientFrame>([
  ["Hello", [["hello", hello]]],
  [
    "Request",
    [
      [
        "request",
        struct<Request>([
          ["id", u64],
          ["body", requestBody],
        ]),
      ],
    ],
  ],
  [
    "Upload",
    [
      [
        "upload",
        struct<Upload>([
          ["chat", u64],
          ["name", str],
          ["contentType", str],
          ["size", u64],
        ]),
      ],
    ],
  ],
  ["Download", [["file", u64]]],
]);

const reply = enumOf<Reply>([
  ["ChatStarted", [["chat", u64], ["waiting", u32]]],
  ["Offline", [["form", offlineForm]]],
  ["PresentAgents", [["agents", vec(str)]]],
  ["TicketCreated", [["ticket", u64]]],
  unsupported("Tickets"),
  unsupported("Ticket"),
  ["Contact", [["card", contactCard]]],
  unsupported("Item"),
  ["Items", [["items", vec(knowledgeItem)]]],
  ["FileShared", [["file", fileRef], ["seq", u64]]],
  ["File", [["file", fileRef]]],
  ["Posted", [["seq", u64], ["at", u64]]],
  ["Done", []],
  ["Assigned", [["assignment", assignment]]],
  ["Sessions", [["sessions", vec(ratedSession)]]],
  ["Transcript", [["events", vec(chatEvent)], ["more", bool]]],
  ["Read", [["upTo", u64], ["seq", u64], ["at", u64]]],
  ["Monitor", [["monitor", channelMonitor]]],
  unsupported("TaggedSessions"),
]);

const event = enumOf<Event>([
  ["Chat", [["event", chatEvent]]],
  ["Queue", [["update", queueUpdate]]],
  ["Alert", [["alert", alert]]],
  ["AlertCleared", [["channel", str], ["chat", u64]]],
  ["Typing", [["chat", u64], ["from", party]]],
  [
    "Offered",
    [
      [
        "offer",
        struct<Offer>([
          ["row", queueRow],
          ["expiresInMs", u64],
        ]),
      ],
    ],
  ],
  ["OfferWithdrawn", [["channel", str], ["chat", u64], ["reason", offerEnd]]],
  [
    "QueuePosition",
    [
      [
        "place",
        struct<QueuePlace>([
          ["chat", u64],
          ["position", u32],
          ["estimatedWaitSecs", option(u32)],
        ]),
      ],
    ],
  ],
  ["StatusChanged", [["status", status], ["by", str]]],
  ["Monitor", [["monitor", channelMonitor]]],
  ["MonitorStopped", [["channel", str]]],
]);

/** `ServerFrame`. */
export const serverFrame = enumOf<ServerFrame>([
  [
    "Welcome",
    [
      ["version", u16],
      [
        "agent",
        option(
          struct<AgentProfile>([
            ["id", str],
            ["name", str],
            ["channels", vec(str)],
            ["status", status],
          ]),
        ),
      ],
    ],
  ],
  [
    "Response",
    [
      [
        "response",
        struct<Response>([
          ["id", u64],
          [
            "result",
            enumOf<Response["result"]>([
              ["Ok", [["reply", reply]]],
              ["Err", [["error", errorFrame]]],
            ]),
          ],
        ]),
      ],
    ],
  ],
  ["Event", [["event", event]]],
  ["Closing", [["error", errorFrame]]],
]);

/** `ClientDatagram`. */
export const clientDatagram = enumOf<ClientDatagram>([["Typing", [["chat", u64]]]]);
/** `ServerDatagram`. */
export const serverDatagram = enumOf<ServerDatagram>([["Typing", [["chat", u64], ["from", party]]]]);

/** Most bytes a datagram may have (`MAX_DATAGRAM_BYTES`). */
export const MAX_DATAGRAM_BYTES = 256;

/** `frame` as bytes on a stream: a big-endian u32 length, then the payload. */
export function encodeFrame<T>(codec: Codec<T>, frame: T): Uint8Array {
  const payload = encodeValue(codec, frame);
  if (payload.length > MAX_FRAME_BYTES) {
    throw new RangeError(`a frame of ${payload.length} bytes is over the limit of ${MAX_FRAME_BYTES}`);
  }
  const w = new Writer();
  const len = payload.length;
  w.byte(len >>> 24);
  w.byte(len >>> 16);
  w.byte(len >>> 8);
  w.byte(len);
  w.bytes(payload);
  return w.finish();
}

/** One frame's payload (without its length) decoded; every byte must belong to it. */
export function decodePayload<T>(codec: Codec<T>, payload: Uint8Array): T {
  if (payload.length > MAX_FRAME_BYTES) {
    throw new DecodeError(`a frame of ${payload.length} bytes is over the limit of ${MAX_FRAME_BYTES}`);
  }
  return decodeValue(codec, payload);
}

/**
 * Cuts a byte stream into frames (`FrameBuf`): a length over `limit` is
 * refused before its payload is buffered.
 */
export class FrameBuf {
  private buf = new Uint8Array(0);

  constructor(private readonly limit: number = MAX_FRAME_BYTES) {}

  /** Appends bytes read off the stream. */
  push(chunk: Uint8Array): void {
    const next = new Uint8Array(this.buf.length + chunk.length);
    next.set(this.buf);
    next.set(chunk, this.buf.length);
    this.buf = next;
  }

  /** The next whole frame's payload, if one is buffered. */
  nextPayload(): Uint8Array | null {
    if (this.buf.length < 4) return null;
    const len = ((this.buf[0]! << 24) >>> 0) + (this.buf[1]! << 16) + (this.buf[2]! << 8) + this.buf[3]!;
    if (len > this.limit) throw new DecodeError(`a frame of ${len} bytes is over the limit of ${this.limit}`);
    if (this.buf.length < 4 + len) return null;
    const payload = this.buf.slice(4, 4 + len);
    this.buf = this.buf.slice(4 + len);
    return payload;
  }

  /** Takes the bytes buffered after the last whole frame (raw bytes that follow a frame). */
  take(): Uint8Array {
    const rest = this.buf;
    this.buf = new Uint8Array(0);
    return rest;
  }

  /** Bytes buffered that are not a whole frame yet. */
  buffered(): number {
    return this.buf.length;
  }
}

export { Reader, Writer };
