//! Pinned formats: the bytes of every frame variant on the wire, of every
//! datagram, and of every value the store keeps, compared with `tests/golden/formats.txt`. A change
//! to any of them (a field added, variants reordered) fails here before it
//! reaches a client of another build or a data folder of an earlier one.
//!
//! After a deliberate change (with a protocol version or store schema bump),
//! `CHATHUB_BLESS=1 cargo test --test golden` writes the file anew.
//!
//! The `*_name` functions match every variant, so a new variant does not
//! compile until it has a sample here.

use std::collections::BTreeMap;
use std::path::PathBuf;

use bincode::config::standard;
use chathub::core::{
    ActiveChat, AgentId, AgentLoad, Alert, Assignment, ChannelId, ChannelMonitor, ChatEvent,
    ChatEventKind, ChatId, ContactCard, ContactChat, Customer, FileId, FileRef, Forgotten,
    FormField, Identity, ItemDraft, ItemId, ItemKind, ItemRef, KnowledgeItem, Offer, OfferEnd,
    OfflineForm, Party, Priority, QueueChange, QueuePlace, QueueRow, QueueUpdate, RatedSession,
    Rating, Scope, SessionSummary, SkillSet, Status, TaggedSession, Ticket, TicketId, TicketSource,
    Timestamp, WaitingChat,
};
use chathub::protocol::{
    AgentProfile, ClientDatagram, ClientFrame, ErrorCode, ErrorFrame, Event, Hello, Reply, Request,
    RequestBody, Response, Resume, Role, ServerDatagram, ServerFrame, Upload, Welcome,
    decode_datagram, encode_datagram,
};
use chathub::store::{Op, OutboxItem, OutboxKey, StoredFile};

fn customer() -> Customer {
    Customer {
        name: Some("Åsa".into()),
        email: Some("asa@example.com".into()),
    }
}

fn row() -> QueueRow {
    QueueRow {
        chat: ChatId(3),
        channel: ChannelId::new("support"),
        customer: customer(),
        first_message: "Hej 👋".into(),
        since: Timestamp(1_700_000_000_000),
        verified: Some("cust-17".into()),
        priority: Some(Priority::High),
    }
}

fn file() -> FileRef {
    FileRef {
        id: FileId(5),
        name: "photo.png".into(),
        content_type: "image/png".into(),
        size: 1234,
    }
}

fn item() -> KnowledgeItem {
    KnowledgeItem {
        id: ItemId(2),
        kind: ItemKind::QuickReply,
        scope: Scope::Channel(ChannelId::new("support")),
        shortcut: Some("/refund".into()),
        title: "Refunds".into(),
        body: "Hi {customer.name}".into(),
    }
}

fn draft() -> ItemDraft {
    ItemDraft {
        kind: ItemKind::Template,
        scope: Scope::Personal(AgentId::new("alice")),
        shortcut: None,
        title: "Bye".into(),
        body: "Bye!".into(),
    }
}

fn kinds() -> Vec<ChatEventKind> {
    let alice = AgentId::new("alice");
    let bob = AgentId::new("bob");
    vec![
        ChatEventKind::Started {
            channel: ChannelId::new("support"),
            customer: customer(),
        },
        ChatEventKind::Message {
            from: Party::Customer,
            client_id: 9,
            text: "Where is my parcel? 📦".into(),
        },
        ChatEventKind::Message {
            from: Party::Agent(alice.clone()),
            client_id: 10,
            text: "Today".into(),
        },
        ChatEventKind::Message {
            from: Party::System,
            client_id: 0,
            text: "Welcome".into(),
        },
        ChatEventKind::Assigned {
            agent: alice.clone(),
        },
        ChatEventKind::Ended {
            by: Party::Customer,
        },
        ChatEventKind::TransferredToAgent {
            from: alice.clone(),
            to: bob.clone(),
        },
        ChatEventKind::TransferDeclined {
            by: bob.clone(),
            to: Some(alice.clone()),
        },
        ChatEventKind::Requeued {
            by: Some(alice.clone()),
            channel: ChannelId::new("sales"),
        },
        ChatEventKind::TicketCreated {
            ticket: TicketId(4),
            subject: "Parcel".into(),
        },
        ChatEventKind::Reopened { agent: None },
        ChatEventKind::FileShared {
            from: Party::Customer,
            file: file(),
        },
        ChatEventKind::Verified(Identity {
            id: "cust-17".into(),
            email: Some("asa@example.com".into()),
        }),
        ChatEventKind::Read {
            by: Party::Agent(alice.clone()),
            up_to: 12,
        },
        ChatEventKind::Note {
            by: alice.clone(),
            client_id: 11,
            text: "Asked twice already".into(),
        },
        ChatEventKind::Prioritized {
            by: alice.clone(),
            priority: Priority::Urgent,
        },
        ChatEventKind::Withheld,
        ChatEventKind::SupervisorJoined {
            supervisor: AgentId::new("sam"),
        },
        ChatEventKind::SupervisorLeft {
            supervisor: AgentId::new("sam"),
        },
        ChatEventKind::SkillsNeeded {
            skills: SkillSet::new(["billing", "french"]).expect("plain names"),
        },
        ChatEventKind::AgentGone {
            agent: alice.clone(),
        },
        ChatEventKind::PriorityClaimed {
            priority: Priority::High,
        },
        ChatEventKind::Tagged {
            by: alice.clone(),
            tag: "refund".into(),
        },
        ChatEventKind::Untagged {
            by: alice.clone(),
            tag: "vip".into(),
        },
        ChatEventKind::Edited {
            seq: 2,
            text: "Hej, jag behöver hjälp".into(),
        },
        ChatEventKind::Deleted { seq: 2 },
        ChatEventKind::Reassigned {
            by: AgentId::new("sam"),
            from: alice.clone(),
            to: bob.clone(),
        },
    ]
}

fn kind_name(kind: &ChatEventKind) -> &'static str {
    match kind {
        ChatEventKind::Started { .. } => "Started",
        ChatEventKind::Message { .. } => "Message",
        ChatEventKind::Assigned { .. } => "Assigned",
        ChatEventKind::Ended { .. } => "Ended",
        ChatEventKind::TransferredToAgent { .. } => "TransferredToAgent",
        ChatEventKind::TransferDeclined { .. } => "TransferDeclined",
        ChatEventKind::Requeued { .. } => "Requeued",
        ChatEventKind::TicketCreated { .. } => "TicketCreated",
        ChatEventKind::Reopened { .. } => "Reopened",
        ChatEventKind::FileShared { .. } => "FileShared",
        ChatEventKind::Verified(_) => "Verified",
        ChatEventKind::Read { .. } => "Read",
        ChatEventKind::Note { .. } => "Note",
        ChatEventKind::Prioritized { .. } => "Prioritized",
        ChatEventKind::Withheld => "Withheld",
        ChatEventKind::SupervisorJoined { .. } => "SupervisorJoined",
        ChatEventKind::SupervisorLeft { .. } => "SupervisorLeft",
        ChatEventKind::SkillsNeeded { .. } => "SkillsNeeded",
        ChatEventKind::AgentGone { .. } => "AgentGone",
        ChatEventKind::PriorityClaimed { .. } => "PriorityClaimed",
        ChatEventKind::Tagged { .. } => "Tagged",
        ChatEventKind::Untagged { .. } => "Untagged",
        ChatEventKind::Edited { .. } => "Edited",
        ChatEventKind::Deleted { .. } => "Deleted",
        ChatEventKind::Reassigned { .. } => "Reassigned",
    }
}

fn events() -> Vec<ChatEvent> {
    kinds()
        .into_iter()
        .enumerate()
        .map(|(n, kind)| ChatEvent {
            chat: ChatId(3),
            seq: n as u64 + 1,
            at: Timestamp(1_700_000_000_000 + n as u64),
            kind,
        })
        .collect()
}

fn ticket() -> Ticket {
    Ticket {
        id: TicketId(4),
        channel: ChannelId::new("support"),
        source: TicketSource::Chat(ChatId(3)),
        customer: customer(),
        subject: "Parcel".into(),
        message: "Call back".into(),
        transcript: events().into_iter().take(2).collect(),
        created: Timestamp(1_700_000_000_500),
    }
}

fn rating() -> Rating {
    Rating {
        rating: 4,
        comment: Some("Snabbt och vänligt 👍".into()),
        at: Timestamp(1_700_000_100_000),
    }
}

fn session() -> SessionSummary {
    SessionSummary {
        chat: ChatId(3),
        channel: ChannelId::new("support"),
        customer: customer(),
        agent: Some(AgentId::new("alice")),
        started: Timestamp(1_700_000_000_000),
        ended: Timestamp(1_700_000_060_000),
        ended_by: Party::Agent(AgentId::new("alice")),
        events: 12,
    }
}

fn requests() -> Vec<RequestBody> {
    let chat = ChatId(3);
    vec![
        RequestBody::StartChat {
            channel: ChannelId::new("support"),
            customer: customer(),
            client_id: 1,
            text: "Hej".into(),
            secret: "a-secret-of-the-customer".into(),
        },
        RequestBody::Post {
            chat,
            client_id: 2,
            text: "more".into(),
        },
        RequestBody::Leave { chat },
        RequestBody::SetStatus {
            status: Status::Present,
        },
        RequestBody::GetNext {
            channel: ChannelId::new("support"),
        },
        RequestBody::EndChat { chat },
        RequestBody::RecentSessions {
            before: Some(chat),
            limit: 20,
        },
        RequestBody::Transcript { chat, after: 4 },
        RequestBody::Pick { chat },
        RequestBody::PresentAgents {
            channel: ChannelId::new("sales"),
        },
        RequestBody::SubmitOfflineForm {
            channel: ChannelId::new("support"),
            name: Some("Åsa".into()),
            email: "asa@example.com".into(),
            message: "Call me".into(),
        },
        RequestBody::Tickets {
            before: None,
            limit: 10,
        },
        RequestBody::Ticket { id: TicketId(4) },
        RequestBody::TransferToAgent {
            chat,
            to: AgentId::new("bob"),
        },
        RequestBody::TransferToChannel {
            chat,
            channel: ChannelId::new("sales"),
        },
        RequestBody::DeclineTransfer { chat },
        RequestBody::CreateTicket {
            chat,
            subject: "Parcel".into(),
            note: "Call back".into(),
        },
        RequestBody::ReturnToChat {
            chat,
            secret: "a-secret-of-the-customer".into(),
        },
        RequestBody::Contact {
            email: Some("asa@example.com".into()),
            name: None,
        },
        RequestBody::CreateItem(draft()),
        RequestBody::UpdateItem {
            id: ItemId(2),
            draft: draft(),
        },
        RequestBody::DeleteItem { id: ItemId(2) },
        RequestBody::Items {
            kind: Some(ItemKind::Faq),
        },
        RequestBody::InsertItem {
            chat,
            client_id: 3,
            item: ItemRef::Shortcut("/refund".into()),
        },
        RequestBody::Identify {
            channel: ChannelId::new("support"),
            identity: Identity {
                id: "cust-17".into(),
                email: None,
            },
            signature: "00ff".into(),
        },
        RequestBody::MarkRead { chat, up_to: 12 },
        RequestBody::Rate {
            chat,
            rating: 4,
            comment: Some("Snabbt och vänligt 👍".into()),
        },
        RequestBody::AcceptOffer { chat },
        RequestBody::DeclineOffer { chat },
        RequestBody::AddNote {
            chat,
            client_id: 11,
            text: "Asked twice already".into(),
        },
        RequestBody::SetPriority {
            chat,
            priority: Priority::High,
        },
        RequestBody::Monitor {
            channel: ChannelId::new("support"),
        },
        RequestBody::SetAgentStatus {
            agent: AgentId::new("alice"),
            status: Status::Absent,
        },
        RequestBody::Whisper {
            chat,
            client_id: 4,
            text: "Offer the refund".into(),
        },
        RequestBody::Follow { chat },
        RequestBody::Unfollow { chat },
        RequestBody::Reassign {
            chat,
            to: AgentId::new("bob"),
        },
        RequestBody::BargeIn { chat },
        RequestBody::LeaveChat { chat },
        RequestBody::StartChatNeeding {
            channel: ChannelId::new("support"),
            customer: customer(),
            client_id: 1,
            text: "Bonjour".into(),
            secret: "a-secret-of-the-customer".into(),
            skills: vec!["billing".into(), "french".into()],
        },
        RequestBody::IdentifyClaiming {
            channel: ChannelId::new("support"),
            identity: Identity {
                id: "cust-17".into(),
                email: Some("ada@example.com".into()),
            },
            priority: Priority::Urgent,
            signature: "00ff".into(),
        },
        RequestBody::AddTag {
            chat,
            tag: "refund".into(),
        },
        RequestBody::RemoveTag {
            chat,
            tag: "vip".into(),
        },
        RequestBody::EditMessage {
            chat,
            seq: 2,
            text: "Hej igen".into(),
        },
        RequestBody::DeleteMessage { chat, seq: 2 },
        RequestBody::RecentSessionsTagged {
            before: Some(ChatId(9)),
            limit: 20,
            tag: Some("refund".into()),
        },
        RequestBody::ForgetContact {
            contact: "email:asa@example.com".into(),
        },
        RequestBody::WatchMonitor {
            channel: ChannelId::new("support"),
        },
        RequestBody::UnwatchMonitor {
            channel: ChannelId::new("support"),
        },
    ]
}

fn monitor() -> ChannelMonitor {
    ChannelMonitor {
        channel: ChannelId::new("support"),
        at: Timestamp(100),
        waiting_count: 1,
        waiting: vec![WaitingChat {
            chat: ChatId(3),
            since: Timestamp(40),
            wait_ms: 60,
            priority: Some(Priority::High),
            customer: Some("Åsa".into()),
        }],
        active_count: 1,
        active: vec![ActiveChat {
            chat: ChatId(2),
            agent: AgentId::new("alice"),
            since: Timestamp(20),
            handle_ms: 80,
        }],
        agents: vec![AgentLoad {
            agent: AgentId::new("alice"),
            status: Status::Present,
            used: 1,
            max: 4,
        }],
    }
}

fn replies() -> Vec<Reply> {
    vec![
        Reply::ChatStarted {
            chat: ChatId(3),
            waiting: 2,
        },
        Reply::Offline(OfflineForm {
            channel: ChannelId::new("support"),
            message: "We are away".into(),
            fields: vec![FormField {
                key: "email".into(),
                required: true,
            }],
            opens_at: None,
        }),
        Reply::Offline(OfflineForm {
            channel: ChannelId::new("support"),
            message: "We are closed".into(),
            fields: Vec::new(),
            opens_at: Some(Timestamp(1_764_576_000_000)),
        }),
        Reply::PresentAgents(vec![AgentId::new("alice")]),
        Reply::TicketCreated(TicketId(4)),
        Reply::Tickets(vec![ticket().summary()]),
        Reply::Ticket(Box::new(ticket())),
        Reply::Contact(ContactCard {
            key: "email:asa@example.com".into(),
            chats: vec![ContactChat {
                chat: ChatId(3),
                channel: ChannelId::new("support"),
                customer: customer(),
                started: Timestamp(1),
                ended: Some(Timestamp(2)),
                agent: Some(AgentId::new("alice")),
                rating: Some(rating()),
            }],
            tickets: vec![ticket().summary()],
            first_contact: Some(Timestamp(1)),
            last_contact: Some(Timestamp(2)),
        }),
        Reply::Item(item()),
        Reply::Items(vec![item()]),
        Reply::FileShared {
            file: file(),
            seq: 7,
        },
        Reply::File(file()),
        Reply::Posted {
            seq: 8,
            at: Timestamp(9),
        },
        Reply::Done,
        Reply::Assigned(Assignment {
            chat: ChatId(3),
            channel: ChannelId::new("support"),
            customer: customer(),
            first_message: "Hej".into(),
            waiting_since: Timestamp(5),
        }),
        Reply::Sessions(vec![
            RatedSession {
                session: session(),
                rating: Some(rating()),
            },
            RatedSession {
                session: session(),
                rating: None,
            },
        ]),
        Reply::Transcript {
            events: events().into_iter().take(2).collect(),
            more: true,
        },
        Reply::Read {
            up_to: 12,
            seq: 14,
            at: Timestamp(15),
        },
        Reply::Monitor(Box::new(monitor())),
        Reply::TaggedSessions(vec![TaggedSession {
            session: RatedSession {
                session: session(),
                rating: Some(rating()),
            },
            tags: vec!["refund".into(), "vip".into()],
        }]),
        Reply::Forgotten(Forgotten {
            chats: 2,
            tickets: 1,
            files: 1,
        }),
    ]
}

fn reply_name(reply: &Reply) -> &'static str {
    match reply {
        Reply::ChatStarted { .. } => "ChatStarted",
        Reply::Offline(_) => "Offline",
        Reply::PresentAgents(_) => "PresentAgents",
        Reply::TicketCreated(_) => "TicketCreated",
        Reply::Tickets(_) => "Tickets",
        Reply::Ticket(_) => "Ticket",
        Reply::Contact(_) => "Contact",
        Reply::Item(_) => "Item",
        Reply::Items(_) => "Items",
        Reply::FileShared { .. } => "FileShared",
        Reply::File(_) => "File",
        Reply::Posted { .. } => "Posted",
        Reply::Done => "Done",
        Reply::Assigned(_) => "Assigned",
        Reply::Sessions(_) => "Sessions",
        Reply::Transcript { .. } => "Transcript",
        Reply::Read { .. } => "Read",
        Reply::Monitor(_) => "Monitor",
        Reply::TaggedSessions(_) => "TaggedSessions",
        Reply::Forgotten(_) => "Forgotten",
    }
}

fn server_events() -> Vec<Event> {
    vec![
        Event::Chat(events()[1].clone()),
        Event::Queue(QueueUpdate {
            channel: ChannelId::new("support"),
            version: 4,
            waiting: 1,
            change: QueueChange::Added(row()),
        }),
        Event::Queue(QueueUpdate {
            channel: ChannelId::new("support"),
            version: 5,
            waiting: 1,
            change: QueueChange::Snapshot(vec![row()]),
        }),
        Event::Queue(QueueUpdate {
            channel: ChannelId::new("support"),
            version: 6,
            waiting: 0,
            change: QueueChange::Removed(ChatId(3)),
        }),
        Event::Queue(QueueUpdate {
            channel: ChannelId::new("support"),
            version: 7,
            waiting: 1,
            change: QueueChange::Changed(row()),
        }),
        Event::Alert(Alert {
            row: row(),
            raised: Timestamp(65),
        }),
        Event::AlertCleared {
            channel: ChannelId::new("support"),
            chat: ChatId(3),
        },
        Event::Typing {
            chat: ChatId(3),
            from: Party::Customer,
        },
        Event::Offered(Offer {
            row: row(),
            expires_in_ms: 30_000,
        }),
        Event::OfferWithdrawn {
            channel: ChannelId::new("support"),
            chat: ChatId(3),
            reason: OfferEnd::Declined,
        },
        Event::QueuePosition(QueuePlace {
            chat: ChatId(3),
            position: 4,
            estimated_wait_secs: Some(120),
        }),
        Event::QueuePosition(QueuePlace {
            chat: ChatId(3),
            position: 1,
            estimated_wait_secs: None,
        }),
        Event::StatusChanged {
            status: Status::Absent,
            by: AgentId::new("sam"),
        },
        Event::Monitor(Box::new(monitor())),
        Event::MonitorStopped {
            channel: ChannelId::new("support"),
        },
    ]
}

fn datagrams() -> (Vec<ClientDatagram>, Vec<ServerDatagram>) {
    (
        vec![ClientDatagram::Typing { chat: ChatId(3) }],
        vec![
            ServerDatagram::Typing {
                chat: ChatId(3),
                from: Party::Customer,
            },
            ServerDatagram::Typing {
                chat: ChatId(3),
                from: Party::Agent(AgentId::new("alice")),
            },
        ],
    )
}

fn client_datagram_name(datagram: &ClientDatagram) -> &'static str {
    match datagram {
        ClientDatagram::Typing { .. } => "Typing",
    }
}

fn server_datagram_name(datagram: &ServerDatagram) -> &'static str {
    match datagram {
        ServerDatagram::Typing { .. } => "Typing",
    }
}

fn event_name(event: &Event) -> &'static str {
    match event {
        Event::Chat(_) => "Chat",
        Event::Queue(update) => match update.change {
            QueueChange::Snapshot(_) => "Queue.Snapshot",
            QueueChange::Added(_) => "Queue.Added",
            QueueChange::Removed(_) => "Queue.Removed",
            QueueChange::Changed(_) => "Queue.Changed",
        },
        Event::Alert(_) => "Alert",
        Event::AlertCleared { .. } => "AlertCleared",
        Event::Typing { .. } => "Typing",
        Event::Offered(_) => "Offered",
        Event::OfferWithdrawn { .. } => "OfferWithdrawn",
        Event::QueuePosition(_) => "QueuePosition",
        Event::StatusChanged { .. } => "StatusChanged",
        Event::Monitor(_) => "Monitor",
        Event::MonitorStopped { .. } => "MonitorStopped",
    }
}

fn client_frame_name(frame: &ClientFrame) -> String {
    match frame {
        ClientFrame::Hello(_) => "Hello".into(),
        ClientFrame::Request(request) => format!("Request.{}", request.body.name()),
        ClientFrame::Upload(_) => "Upload".into(),
        ClientFrame::Download { .. } => "Download".into(),
    }
}

fn server_frame_name(frame: &ServerFrame) -> String {
    match frame {
        ServerFrame::Welcome(_) => "Welcome".into(),
        ServerFrame::Response(response) => match &response.result {
            Ok(reply) => format!("Response.{}", reply_name(reply)),
            Err(_) => "Response.Err".into(),
        },
        ServerFrame::Event(event) => format!("Event.{}", event_name(event)),
        ServerFrame::Closing(_) => "Closing".into(),
    }
}

fn op_name(op: &Op) -> String {
    match op {
        Op::Event(event) => format!("Op.Event.{}", kind_name(&event.kind)),
        Op::Token { .. } => "Op.Token".into(),
        Op::Session(_) => "Op.Session".into(),
        Op::Ticket(_) => "Op.Ticket".into(),
        Op::Knowledge(_) => "Op.Knowledge".into(),
        Op::ForgetKnowledge(_) => "Op.ForgetKnowledge".into(),
        Op::File(_) => "Op.File".into(),
        Op::ForgetFile(_) => "Op.ForgetFile".into(),
        Op::ContactChat { .. } => "Op.ContactChat".into(),
        Op::ContactTicket { .. } => "Op.ContactTicket".into(),
        Op::Rate { .. } => "Op.Rate".into(),
        Op::Delivered { .. } => "Op.Delivered".into(),
        Op::SessionTags { .. } => "Op.SessionTags".into(),
        Op::EraseChat(_) => "Op.EraseChat".into(),
        Op::EraseTicket(_) => "Op.EraseTicket".into(),
        Op::EraseContact(_) => "Op.EraseContact".into(),
    }
}

fn wire<F: bincode::Encode>(frame: &F) -> Vec<u8> {
    let mut bytes = Vec::new();
    chathub::protocol::encode(frame, &mut bytes).expect("a sample frame encodes");
    bytes
}

fn stored<T: bincode::Encode>(value: &T) -> Vec<u8> {
    bincode::encode_to_vec(value, standard()).expect("a sample value encodes")
}

/// Every sample, by a unique name.
fn samples() -> BTreeMap<String, Vec<u8>> {
    let mut samples = BTreeMap::new();
    let mut add = |name: String, bytes: Vec<u8>| {
        let mut unique = name.clone();
        let mut n = 1;
        while samples.contains_key(&unique) {
            n += 1;
            unique = format!("{name}#{n}");
        }
        samples.insert(unique, bytes);
    };
    let mut client = vec![
        ClientFrame::Hello(Hello {
            version: chathub::protocol::PROTOCOL_VERSION,
            role: Role::Agent {
                agent: AgentId::new("alice"),
                token: "a-secret-token-0123".into(),
            },
            resume: vec![Resume {
                chat: ChatId(3),
                after: 7,
                secret: Some("a-secret-of-the-customer".into()),
            }],
        }),
        ClientFrame::Upload(Upload {
            chat: ChatId(3),
            name: "photo.png".into(),
            content_type: "image/png".into(),
            size: 1234,
        }),
        ClientFrame::Download { file: FileId(5) },
    ];
    client.extend(
        requests()
            .into_iter()
            .enumerate()
            .map(|(n, body)| ClientFrame::Request(Request { id: n as u64, body })),
    );
    for frame in &client {
        add(format!("wire.{}", client_frame_name(frame)), wire(frame));
    }
    let mut server = vec![
        ServerFrame::Welcome(Welcome {
            version: chathub::protocol::PROTOCOL_VERSION,
            agent: Some(AgentProfile {
                id: AgentId::new("alice"),
                name: "Alice".into(),
                channels: vec![ChannelId::new("support")],
                status: Status::Absent,
            }),
        }),
        ServerFrame::Response(Response {
            id: 9,
            result: Err(ErrorFrame::new(ErrorCode::RateLimited, "slow down")),
        }),
        ServerFrame::Closing(ErrorFrame::new(ErrorCode::BadFrame, "bad")),
    ];
    server.extend(replies().into_iter().map(|reply| {
        ServerFrame::Response(Response {
            id: 1,
            result: Ok(reply),
        })
    }));
    server.extend(server_events().into_iter().map(ServerFrame::Event));
    for frame in &server {
        add(format!("wire.{}", server_frame_name(frame)), wire(frame));
    }
    // Datagrams, each one value without a length prefix.
    let (client_datagrams, server_datagrams) = datagrams();
    for datagram in &client_datagrams {
        add(
            format!("datagram.Client.{}", client_datagram_name(datagram)),
            encode_datagram(datagram).expect("a sample datagram encodes"),
        );
    }
    for datagram in &server_datagrams {
        add(
            format!("datagram.Server.{}", server_datagram_name(datagram)),
            encode_datagram(datagram).expect("a sample datagram encodes"),
        );
    }
    // What the store keeps: every op of the commit log (each table's value
    // among them).
    let mut ops: Vec<Op> = events().into_iter().map(Op::Event).collect();
    ops.extend([
        Op::Token {
            chat: 3,
            digest: vec![7; 32],
        },
        Op::Session(session()),
        Op::Ticket(Box::new(ticket())),
        Op::Knowledge(Box::new(item())),
        Op::ForgetKnowledge(ItemId(2)),
        Op::File(StoredFile {
            file: file(),
            chat: ChatId(3),
        }),
        Op::ForgetFile(FileId(5)),
        Op::ContactChat {
            key: "verified:id:cust-17".into(),
            chat: 3,
        },
        Op::ContactTicket {
            key: "email:asa@example.com".into(),
            ticket: 4,
        },
        Op::Rate {
            chat: 3,
            rating: rating(),
        },
        Op::Delivered {
            webhook: "crm".into(),
            key: OutboxKey {
                chat: 3,
                seq: 9,
                sub: 0,
            },
        },
        Op::SessionTags {
            chat: 3,
            tags: vec!["refund".into(), "vip".into()],
        },
        Op::EraseChat(3),
        Op::EraseTicket(7),
        Op::EraseContact("email:asa@example.com".into()),
    ]);
    for op in &ops {
        add(format!("store.{}", op_name(op)), stored(op));
    }
    let ended = events()
        .into_iter()
        .find(|event| matches!(event.kind, ChatEventKind::Ended { .. }))
        .expect("a sample end");
    add(
        "store.OutboxItem.Event".into(),
        stored(&OutboxItem::Event(ended)),
    );
    add(
        "store.OutboxItem.Rating".into(),
        stored(&OutboxItem::Rating(rating())),
    );
    add("store.TicketSummary".into(), stored(&ticket().summary()));
    samples
}

fn golden_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden/formats.txt")
}

fn render(samples: &BTreeMap<String, Vec<u8>>) -> String {
    let mut text =
        String::from("# name hex: the bytes of each frame and stored value (tests/golden.rs)\n");
    for (name, bytes) in samples {
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        text.push_str(&format!("{name} {hex}\n"));
    }
    text
}

#[test]
fn every_frame_and_stored_value_keeps_its_bytes() {
    let samples = samples();
    let rendered = render(&samples);
    let path = golden_path();
    if std::env::var_os("CHATHUB_BLESS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &rendered).unwrap();
        return;
    }
    let golden = std::fs::read_to_string(&path)
        .unwrap_or_else(|err| panic!("cannot read {}: {err}", path.display()));
    let want: BTreeMap<&str, &str> = golden
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.split_once(' '))
        .collect();
    let got: BTreeMap<&str, &str> = rendered
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.split_once(' '))
        .collect();
    let changed: std::collections::BTreeSet<&str> = want
        .keys()
        .chain(got.keys())
        .filter(|name| want.get(*name) != got.get(*name))
        .copied()
        .collect();
    assert!(
        changed.is_empty(),
        "formats changed (a client of another build or an earlier data folder would not read them): {changed:?}"
    );
}

#[test]
fn the_pinned_bytes_decode_back_to_the_samples() {
    // The golden bytes are not only stable but readable: each decodes to
    // the value it came from.
    for frame in requests()
        .into_iter()
        .map(|body| ClientFrame::Request(Request { id: 1, body }))
    {
        let bytes = wire(&frame);
        let decoded: ClientFrame = chathub::protocol::decode(&bytes[4..]).unwrap();
        assert_eq!(decoded, frame);
    }
    let (client_datagrams, server_datagrams) = datagrams();
    for datagram in client_datagrams {
        let bytes = encode_datagram(&datagram).unwrap();
        assert_eq!(decode_datagram::<ClientDatagram>(&bytes).unwrap(), datagram);
    }
    for datagram in server_datagrams {
        let bytes = encode_datagram(&datagram).unwrap();
        assert_eq!(decode_datagram::<ServerDatagram>(&bytes).unwrap(), datagram);
    }
    for event in events() {
        let bytes = stored(&event);
        let (decoded, _): (ChatEvent, usize) =
            bincode::decode_from_slice(&bytes, standard()).unwrap();
        assert_eq!(decoded, event);
    }
}
