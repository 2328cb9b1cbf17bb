//! What a delivery says: its id, its JSON body and its signature. Pure.

use ring::hmac;
use serde_json::{Map, Value, json};

use crate::core::{ChatEvent, ChatEventKind, LifecycleKind, Party, Timestamp};
use crate::store::{OutboxContext, OutboxItem, OutboxKey, OutboxRow};

/// The delivery's id, the same at every try and after restarts, so a
/// receiver drops what it already has: `<chat>-<seq>` for an event,
/// `<chat>-<seq>-rated-<rating time in ms>` for a rating.
pub fn event_id(key: &OutboxKey) -> String {
    if key.sub == 0 {
        format!("{}-{}", key.chat, key.seq)
    } else {
        format!("{}-{}-rated-{}", key.chat, key.seq, key.sub)
    }
}

/// When the reported event happened.
pub fn happened(item: &OutboxItem) -> Timestamp {
    match item {
        OutboxItem::Event(event) => event.at,
        OutboxItem::Rating(rating) => rating.at,
    }
}

/// The JSON body posted for `row`: `id`, `kind`, `chat`, `seq`, `channel`,
/// `at` (ms since the Unix epoch), `data` (the kind's fields) and, for
/// `ended`, `transcript` (`events`, oldest first, each message with its
/// latest text and a deleted one as a `deleted` event, and `omitted`: how
/// many earlier events did not fit) and `tags` (the chat's tags at its
/// end).
pub fn body(row: &OutboxRow, context: &OutboxContext) -> Vec<u8> {
    let kind = row.item.kind();
    let data = match &row.item {
        OutboxItem::Event(event) => event_fields(&event.kind),
        OutboxItem::Rating(rating) => {
            let mut data = Map::new();
            data.insert("rating".into(), json!(rating.rating));
            data.insert("comment".into(), json!(rating.comment));
            data
        }
    };
    let mut body = json!({
        "id": event_id(&row.key),
        "kind": kind.name(),
        "chat": row.key.chat,
        "seq": row.key.seq,
        "channel": context.channel.as_ref().map(ToString::to_string),
        "at": happened(&row.item).as_millis(),
        "data": Value::Object(data),
    });
    if kind == LifecycleKind::Ended {
        // Messages as they stand: latest text, deleted ones as `deleted`.
        let events: Vec<Value> = crate::core::apply_edits(context.transcript.iter())
            .iter()
            .filter(|event| {
                !matches!(event.kind, ChatEventKind::Read { .. })
                    && !event.kind.is_for_agents_only()
            })
            .map(transcript_event)
            .collect();
        body["transcript"] = json!({ "events": events, "omitted": context.omitted });
        body["tags"] = json!(context.tags);
    }
    serde_json::to_vec(&body).unwrap_or_default()
}

/// `Chathub-Signature`'s value: `sha256=` and the hex HMAC-SHA256, keyed
/// with the webhook's secret, of the `Chathub-Timestamp` value, a dot and
/// the body.
pub fn signature(secret: &[u8], timestamp: u64, body: &[u8]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    let mut context = hmac::Context::with_key(&key);
    context.update(timestamp.to_string().as_bytes());
    context.update(b".");
    context.update(body);
    format!(
        "sha256={}",
        crate::core::hex::encode(context.sign().as_ref())
    )
}

fn party(party: &Party) -> Value {
    match party {
        Party::Customer => json!({ "role": "customer" }),
        Party::Agent(agent) => json!({ "role": "agent", "agent": agent.as_str() }),
        Party::System => json!({ "role": "system" }),
    }
}

/// The fields of an event, without its seq and time.
fn event_fields(kind: &ChatEventKind) -> Map<String, Value> {
    let value = match kind {
        ChatEventKind::Started { channel, customer } => json!({
            "channel": channel.to_string(),
            "customer": { "name": customer.name, "email": customer.email },
        }),
        ChatEventKind::Assigned { agent } => json!({ "agent": agent.as_str() }),
        ChatEventKind::TransferredToAgent { from, to } => json!({
            "how": "to_agent", "from_agent": from.as_str(), "to_agent": to.as_str(),
        }),
        ChatEventKind::TransferDeclined { by, to } => json!({
            "how": "declined", "declined_by": by.as_str(),
            "to_agent": to.as_ref().map(|agent| agent.as_str()),
        }),
        ChatEventKind::Requeued { by, channel } => json!({
            "how": "to_queue", "by": by.as_ref().map(|agent| agent.as_str()),
            "to_channel": channel.to_string(),
        }),
        ChatEventKind::TicketCreated { ticket, subject } => {
            json!({ "ticket": ticket.0, "subject": subject })
        }
        ChatEventKind::Ended { by } => json!({ "by": party(by) }),
        ChatEventKind::Reopened { agent } => {
            json!({ "agent": agent.as_ref().map(|agent| agent.as_str()) })
        }
        ChatEventKind::Message { from, text, .. } => json!({ "from": party(from), "text": text }),
        ChatEventKind::FileShared { from, file } => json!({
            "from": party(from),
            "file": {
                "id": file.id.0, "name": file.name,
                "content_type": file.content_type, "size": file.size,
            },
        }),
        ChatEventKind::Verified(identity) => {
            json!({ "id": identity.id, "email": identity.email })
        }
        ChatEventKind::Read { by, up_to } => json!({ "by": party(by), "up_to": up_to }),
        // Never in a transcript sent out (see `body`); named for
        // completeness.
        ChatEventKind::Note { by, .. } => json!({ "by": by.as_str() }),
        ChatEventKind::Prioritized { priority, .. }
        | ChatEventKind::PriorityClaimed { priority } => json!({ "priority": priority.name() }),
        ChatEventKind::SkillsNeeded { skills } => json!({ "skills": skills.names() }),
        ChatEventKind::Withheld => json!({}),
        ChatEventKind::Tagged { by, tag } | ChatEventKind::Untagged { by, tag } => {
            json!({ "by": by.as_str(), "tag": tag })
        }
        ChatEventKind::Edited { seq, text } => json!({ "message": seq, "text": text }),
        ChatEventKind::Deleted { seq } => json!({ "message": seq }),
        ChatEventKind::SupervisorJoined { supervisor }
        | ChatEventKind::SupervisorLeft { supervisor } => {
            json!({ "supervisor": supervisor.as_str() })
        }
        ChatEventKind::AgentGone { agent } => json!({ "agent": agent.as_str() }),
        // For agents only, so never in a transcript sent out either.
        ChatEventKind::Reassigned { by, from, to } => json!({
            "by": by.as_str(), "from_agent": from.as_str(), "to_agent": to.as_str(),
        }),
    };
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

/// The name of any event in a transcript: the lifecycle kinds' names, and
/// `message`, `file`, `verified`, `read`, `deleted` (a deleted message).
fn type_name(kind: &ChatEventKind) -> &'static str {
    match (LifecycleKind::of(kind), kind) {
        (Some(lifecycle), _) => lifecycle.name(),
        (None, ChatEventKind::Message { .. }) => "message",
        (None, ChatEventKind::FileShared { .. }) => "file",
        (None, ChatEventKind::Verified(_)) => "verified",
        (None, ChatEventKind::Note { .. }) => "note",
        (None, ChatEventKind::Prioritized { .. }) => "prioritized",
        (None, ChatEventKind::Withheld) => "withheld",
        (None, ChatEventKind::SupervisorJoined { .. }) => "supervisor_joined",
        (None, ChatEventKind::SupervisorLeft { .. }) => "supervisor_left",
        (None, ChatEventKind::SkillsNeeded { .. }) => "skills_needed",
        (None, ChatEventKind::AgentGone { .. }) => "agent_gone",
        (None, ChatEventKind::PriorityClaimed { .. }) => "priority_claimed",
        (None, ChatEventKind::Tagged { .. }) => "tagged",
        (None, ChatEventKind::Untagged { .. }) => "untagged",
        (None, ChatEventKind::Edited { .. }) => "edited",
        (None, ChatEventKind::Deleted { .. }) => "deleted",
        (None, ChatEventKind::Reassigned { .. }) => "reassigned",
        (None, _) => "read",
    }
}

fn transcript_event(event: &ChatEvent) -> Value {
    let mut fields = event_fields(&event.kind);
    fields.insert("seq".into(), json!(event.seq));
    fields.insert("at".into(), json!(event.at.as_millis()));
    fields.insert("type".into(), json!(type_name(&event.kind)));
    Value::Object(fields)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::{ChannelId, ChatId, Customer, Rating};

    #[test]
    fn the_signature_is_the_hmac_of_timestamp_dot_body() {
        // RFC 4231 test case 2 ("what do ya want for nothing?", key "Jefe"),
        // split at its first dot-free point as timestamp and body would be.
        let key = b"Jefe";
        let ours = signature(key, 1_700_000_000, b"{}");
        let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), b"1700000000.{}");
        assert_eq!(
            ours,
            format!("sha256={}", crate::core::hex::encode(tag.as_ref()))
        );
        assert_ne!(ours, signature(key, 1_700_000_001, b"{}"));
    }

    #[test]
    fn ids_are_stable_and_ratings_differ_from_events() {
        let event = OutboxKey {
            chat: 7,
            seq: 3,
            sub: 0,
        };
        let rating = OutboxKey {
            chat: 7,
            seq: 3,
            sub: 99,
        };
        assert_eq!(event_id(&event), "7-3");
        assert_eq!(event_id(&rating), "7-3-rated-99");
    }

    #[test]
    fn an_ended_body_carries_the_transcript() {
        let chat = ChatId(7);
        let started = ChatEvent {
            chat,
            seq: 1,
            at: Timestamp(10),
            kind: ChatEventKind::Started {
                channel: ChannelId::new("support"),
                customer: Customer::default(),
            },
        };
        let hello = ChatEvent::customer_message(7, 2, "helo");
        let edited = ChatEvent {
            chat,
            seq: 3,
            at: Timestamp(20),
            kind: ChatEventKind::Edited {
                seq: 2,
                text: "hello".into(),
            },
        };
        let ended = ChatEvent {
            chat,
            seq: 4,
            at: Timestamp(30),
            kind: ChatEventKind::Ended {
                by: Party::Customer,
            },
        };
        let row = OutboxRow {
            key: OutboxKey {
                chat: 7,
                seq: 4,
                sub: 0,
            },
            item: OutboxItem::Event(ended.clone()),
        };
        let context = OutboxContext {
            channel: Some(ChannelId::new("support")),
            transcript: vec![started, hello, edited, ended],
            omitted: 0,
            tags: vec!["refund".into(), "vip".into()],
        };
        let body: Value = serde_json::from_slice(&body(&row, &context)).unwrap();
        assert_eq!(body["id"], "7-4");
        assert_eq!(body["tags"], json!(["refund", "vip"]));
        // The edit is applied, not listed.
        assert_eq!(body["transcript"]["events"].as_array().unwrap().len(), 3);
        assert_eq!(body["kind"], "ended");
        assert_eq!(body["channel"], "support");
        assert_eq!(body["data"]["by"]["role"], "customer");
        assert_eq!(body["transcript"]["events"][1]["text"], "hello");
        assert_eq!(body["transcript"]["events"][1]["type"], "message");
        let rated = OutboxRow {
            key: OutboxKey {
                chat: 7,
                seq: 3,
                sub: 40,
            },
            item: OutboxItem::Rating(Rating {
                rating: 5,
                comment: Some("great".into()),
                at: Timestamp(40),
            }),
        };
        let body: Value = serde_json::from_slice(&body_of(&rated)).unwrap();
        assert_eq!(body["kind"], "rated");
        assert_eq!(body["data"]["rating"], 5);
        assert!(body.get("transcript").is_none());
    }

    fn body_of(row: &OutboxRow) -> Vec<u8> {
        body(row, &OutboxContext::default())
    }
}
