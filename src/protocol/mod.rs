//! The wire protocol: versioned frames and their length-prefixed bincode
//! encoding. Pure values and pure functions; no I/O.
//!
//! A connection opens one bidirectional control stream. The client's first
//! frame on it is a [`Hello`]; the server answers [`ServerFrame::Welcome`] or
//! [`ServerFrame::Closing`]. Then every [`Request`] gets exactly one
//! [`Response`] with the same id. The server pushes [`Event`]s on
//! unidirectional streams it opens: one per chat, so one chat's events arrive
//! in order and never wait behind another chat's, one per watched channel
//! monitor, and one for everything else (queue updates). Typing indicators travel as QUIC datagrams
//! ([`ClientDatagram`], [`ServerDatagram`]): never stored, never resent.

pub mod close;
pub mod codec;
pub mod datagram;
pub mod error;
pub mod frame;
pub mod request;

pub use close::CloseCode;
pub use codec::{CodecError, FrameBuf, MAX_FRAME_BYTES, decode, encode};
pub use datagram::{
    ClientDatagram, MAX_DATAGRAM_BYTES, ServerDatagram, decode_datagram, encode_datagram,
};
pub use error::{ErrorCode, ErrorFrame};
pub use frame::{
    AgentProfile, ClientFrame, Event, EventRef, Hello, Reply, Request, RequestBody, Response,
    Resume, Role, Secret, ServerEventRef, ServerFrame, Upload, Welcome,
};
pub use request::Sender;

/// The protocol version this build speaks. Version 2: the connection that
/// posts a message gets no event for it; [`Reply::Posted`] carries its seq
/// and time instead. Version 3: secrets as [`Secret`], verified customer
/// identities ([`RequestBody::Identify`], `QueueRow::verified`), and the
/// error codes of the hub's limits. Version 4: read receipts
/// ([`RequestBody::MarkRead`], [`Reply::Read`], the `Read` chat event and
/// `ReadBeyondEnd`), satisfaction ratings ([`RequestBody::Rate`]; recent
/// sessions as rated rows, a rating on each contact card row), and typing
/// indicators as datagrams. Version 5: the offline form says when a
/// channel closed by its business hours opens again (`OfflineForm::opens_at`);
/// private notes ([`RequestBody::AddNote`], the `Note` chat event, and
/// `Withheld` in its place for customers); priorities
/// ([`RequestBody::SetPriority`], `QueueRow::priority`, the `Prioritized`
/// chat event and `QueueChange::Changed`); push routing
/// ([`RequestBody::AcceptOffer`], [`RequestBody::DeclineOffer`], the
/// `Offered` and `OfferWithdrawn` events, `NotOffered`); supervision
/// ([`RequestBody::Monitor`] and [`Reply::Monitor`],
/// [`RequestBody::SetAgentStatus`] and the `StatusChanged` event,
/// [`RequestBody::Whisper`], [`RequestBody::Follow`],
/// [`RequestBody::Unfollow`], [`RequestBody::Reassign`],
/// [`RequestBody::BargeIn`] and [`RequestBody::LeaveChat`] with the
/// `SupervisorJoined` and `SupervisorLeft` chat events); agents who go
/// quiet (the `AgentGone` chat event, appended; `StatusChanged` with the
/// agent as its own setter when idleness turns them `Away`); a verified
/// identity's priority claim ([`RequestBody::IdentifyClaiming`] and the
/// `PriorityClaimed` chat event, both added at the end of their enums); tags
/// ([`RequestBody::AddTag`], [`RequestBody::RemoveTag`], the `Tagged` and
/// `Untagged` chat events for agents only, [`RequestBody::RecentSessionsTagged`]
/// and [`Reply::TaggedSessions`], `InvalidTag` and `TooManyTags`); edits
/// ([`RequestBody::EditMessage`], [`RequestBody::DeleteMessage`], the
/// `Edited` and `Deleted` chat events, `NotYourMessage`,
/// `EditWindowPassed`, `UnknownMessage` and `AlreadyDeleted`); erasure
/// ([`RequestBody::ForgetContact`], [`Reply::Forgotten`] and
/// `ContactBusy`); live monitors ([`RequestBody::WatchMonitor`],
/// [`RequestBody::UnwatchMonitor`], [`Event::Monitor`] and
/// [`Event::MonitorStopped`], each on a stream of its watch); who
/// reassigned a chat (the `Reassigned` chat event, for agents only); a
/// cluster's redirect (`Elsewhere`, at the end of the error codes).
pub const PROTOCOL_VERSION: u16 = 5;

/// The ALPN token of the protocol's QUIC connections.
pub const ALPN: &[u8] = b"chathub/1";
