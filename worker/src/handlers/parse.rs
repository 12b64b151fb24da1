//! Inbound jobs → [`Inbound`]: who wrote (the contact), what (the message), and whether it was
//! a button press — one function per channel, reading the provider's JSON that ingress put in
//! the job verbatim (`raw`), next to its routing facts (ingress/src/jobs.rs):
//! `{"v": 1, "channel", "inbox_id", "tenant_id", "provider_message_id", "received_at",
//! "context", "raw"}`.
//!
//! A payload without what the pipeline needs is a [`ParseError`]: a permanent job failure with
//! the reason, since retrying cannot fix it. Parsing never touches the database.

use serde_json::Value;
use sha2::{Digest, Sha256};
use shared::{
    conversation::{
        contacts::ContactInfo,
        messages::{MessageKind, NewInbound},
    },
    queue::Job,
};

/// One inbound customer message, ready for the pipeline.
#[derive(Clone, Debug, PartialEq)]
pub struct Inbound {
    pub tenant_id: String,
    pub inbox_id: String,
    pub contact: ContactInfo,
    pub message: NewInbound,
    /// The payload of the button pressed, for postbacks and quick replies.
    pub postback: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid {kind} payload: {problem}")]
pub struct ParseError {
    pub kind: String,
    pub problem: String,
}

/// The job kinds that carry a customer message.
pub const MESSAGE_KINDS: [&str; 6] = [
    "waha.message",
    "whatsapp.message",
    "messenger.message",
    "messenger.postback",
    "email.message",
    "widget.message",
];

/// Reads an inbound message job.
pub fn inbound(job: &Job) -> Result<Inbound, ParseError> {
    let fail = |problem: &str| ParseError {
        kind: job.kind.clone(),
        problem: problem.to_owned(),
    };
    let p = &job.payload;
    if p["v"].as_u64() != Some(1) {
        return Err(fail("unsupported payload version (expected v: 1)"));
    }
    let tenant_id = text(p, "tenant_id").ok_or_else(|| fail("tenant_id missing"))?;
    let inbox_id = text(p, "inbox_id").ok_or_else(|| fail("inbox_id missing"))?;
    let raw = &p["raw"];
    if !raw.is_object() {
        return Err(fail("raw is not an object"));
    }
    let provider_id = text(p, "provider_message_id");
    let parsed = match job.kind.as_str() {
        "waha.message" => waha(raw),
        "whatsapp.message" => whatsapp(raw, &p["context"]),
        "messenger.message" => messenger(raw),
        "messenger.postback" => messenger_postback(raw),
        "email.message" => email(raw, &p["context"], provider_id.is_none()),
        "widget.message" => widget(raw),
        _ => None,
    }
    .ok_or_else(|| fail("the provider's message lacks a sender, an id or any content"))?;
    let mut parsed = parsed;
    if parsed.message.provider_message_id.is_empty() {
        parsed.message.provider_message_id =
            provider_id.ok_or_else(|| fail("provider_message_id missing"))?;
    }
    if parsed.message.provider_message_id.len() > 512 {
        return Err(fail("provider message id longer than 512 bytes"));
    }
    Ok(Inbound {
        tenant_id,
        inbox_id,
        ..parsed
    })
}

fn text(value: &Value, key: &str) -> Option<String> {
    value
        .get(key)?
        .as_str()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// What the channel parsers return (tenant and inbox are filled in by [`inbound`]).
fn message(
    contact: ContactInfo,
    provider_message_id: String,
    kind: MessageKind,
    body: String,
    payload: Value,
    postback: Option<String>,
) -> Inbound {
    Inbound {
        tenant_id: String::new(),
        inbox_id: String::new(),
        contact,
        message: NewInbound {
            provider_message_id,
            kind,
            body,
            payload,
        },
        postback,
    }
}

fn contact(external_id: String, name: Option<String>) -> ContactInfo {
    ContactInfo {
        external_id,
        name,
        ..ContactInfo::default()
    }
}

/// WAHA `message`: the event envelope; the message is in `payload`.
fn waha(raw: &Value) -> Option<Inbound> {
    let m = &raw["payload"];
    let from = text(m, "from")?;
    let id = text(m, "id")?;
    let has_media = m["hasMedia"].as_bool().unwrap_or(false);
    let body = text(m, "body");
    let (kind, body) = match (has_media, body) {
        (true, body) => (MessageKind::Media, body.unwrap_or_else(|| "[media]".into())),
        (false, Some(body)) => (MessageKind::Text, body),
        (false, None) => return None,
    };
    let name = text(&m["_data"], "notifyName");
    let mut who = contact(from.clone(), name);
    who.phone = from
        .split('@')
        .next()
        .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        .map(|n| format!("+{n}"));
    Some(message(who, id, kind, body, Value::Null, None))
}

/// WhatsApp Cloud API: one `messages[]` entry; the profile name is in the context's contacts.
fn whatsapp(raw: &Value, context: &Value) -> Option<Inbound> {
    let from = text(raw, "from")?;
    let id = text(raw, "id")?;
    let name = context["contacts"].as_array().and_then(|contacts| {
        contacts
            .iter()
            .find(|c| c["wa_id"].as_str() == Some(from.as_str()))
            .or(contacts.first())
            .and_then(|c| text(&c["profile"], "name"))
    });
    let (kind, body, postback) = match raw["type"].as_str().unwrap_or("text") {
        "text" => (MessageKind::Text, text(&raw["text"], "body")?, None),
        "interactive" => {
            let reply = raw["interactive"]["button_reply"]
                .as_object()
                .or(raw["interactive"]["list_reply"].as_object())?;
            let title = reply
                .get("title")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let payload = reply.get("id").and_then(Value::as_str).map(str::to_owned);
            (MessageKind::Postback, title.to_owned(), payload)
        }
        "button" => (
            MessageKind::Postback,
            text(&raw["button"], "text").unwrap_or_default(),
            text(&raw["button"], "payload"),
        ),
        other => {
            let caption = text(&raw[other], "caption");
            (
                MessageKind::Media,
                caption.unwrap_or_else(|| format!("[{other}]")),
                None,
            )
        }
    };
    let mut who = contact(from.clone(), name);
    who.phone = Some(format!("+{from}"));
    let payload = postback_payload(&postback);
    Some(message(who, id, kind, body, payload, postback))
}

fn postback_payload(postback: &Option<String>) -> Value {
    postback
        .as_ref()
        .map(|p| serde_json::json!({ "postback": p }))
        .unwrap_or(Value::Null)
}

/// Messenger `messaging[]` event with a `message` (a quick reply counts as a button press).
fn messenger(raw: &Value) -> Option<Inbound> {
    let sender = id_of(&raw["sender"]["id"])?;
    let m = &raw["message"];
    let mid = text(m, "mid")?;
    let postback = text(&m["quick_reply"], "payload");
    let (kind, body) = match (text(m, "text"), m["attachments"].as_array()) {
        (Some(t), _) if postback.is_some() => (MessageKind::Postback, t),
        (Some(t), _) => (MessageKind::Text, t),
        (None, Some(a)) if !a.is_empty() => (MessageKind::Media, "[attachment]".to_owned()),
        _ => return None,
    };
    let payload = postback_payload(&postback);
    Some(message(
        contact(sender, None),
        mid,
        kind,
        body,
        payload,
        postback,
    ))
}

/// Messenger `messaging[]` event with a `postback` (a button): dedup on its `mid`, or on
/// sender + timestamp for payloads without one (as ingress keys them).
fn messenger_postback(raw: &Value) -> Option<Inbound> {
    let sender = id_of(&raw["sender"]["id"])?;
    let postback = &raw["postback"];
    let payload = text(postback, "payload");
    let title = text(postback, "title").or_else(|| payload.clone())?;
    let id = text(postback, "mid").unwrap_or_else(|| {
        format!(
            "postback:{sender}:{}",
            raw["timestamp"].as_i64().unwrap_or_default()
        )
    });
    let data = postback_payload(&payload);
    Some(message(
        contact(sender, None),
        id,
        MessageKind::Postback,
        title,
        data,
        payload,
    ))
}

/// Meta sends ids as strings, older payloads sometimes as numbers.
fn id_of(value: &Value) -> Option<String> {
    match value {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Email from Postmark (JSON) or Mailgun (form fields as a JSON object).
fn email(raw: &Value, context: &Value, needs_id: bool) -> Option<Inbound> {
    let mailgun = context["provider"].as_str() == Some("mailgun");
    let (address, name, subject, body, headers) = if mailgun {
        let headers: Vec<(String, String)> = raw["message-headers"]
            .as_str()
            .and_then(|h| serde_json::from_str(h).ok())
            .unwrap_or_default();
        (
            text(raw, "sender")?,
            text(raw, "from").and_then(|f| display_name(&f)),
            text(raw, "subject").unwrap_or_default(),
            text(raw, "stripped-text").or_else(|| text(raw, "body-plain")),
            headers,
        )
    } else {
        let headers = raw["Headers"]
            .as_array()
            .map(|list| {
                list.iter()
                    .filter_map(|h| Some((text(h, "Name")?, text(h, "Value")?)))
                    .collect()
            })
            .unwrap_or_default();
        (
            text(&raw["FromFull"], "Email").or_else(|| text(raw, "From"))?,
            text(raw, "FromName").or_else(|| text(&raw["FromFull"], "Name")),
            text(raw, "Subject").unwrap_or_default(),
            text(raw, "StrippedTextReply").or_else(|| text(raw, "TextBody")),
            headers,
        )
    };
    let header = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    };
    let body = body.unwrap_or_else(|| subject.clone());
    if body.is_empty() {
        return None;
    }
    let message_id = header("message-id").or_else(|| text(raw, "MessageID"));
    let references: Vec<String> = header("references")
        .map(|r| r.split_whitespace().map(str::to_owned).collect())
        .unwrap_or_default();
    // Mail without a Message-ID is deduplicated by its content, as ingress does.
    let id = if needs_id {
        format!(
            "sha256:{}",
            hex::encode(Sha256::digest(raw.to_string().as_bytes()))
        )
    } else {
        String::new()
    };
    let mut who = contact(address.to_lowercase(), name);
    who.email = Some(who.external_id.clone());
    let payload = serde_json::json!({
        "subject": subject,
        "message_id": message_id,
        "references": references,
    });
    Some(message(who, id, MessageKind::Email, body, payload, None))
}

/// `Sam Rivera <sam@example.net>` → `Sam Rivera`.
fn display_name(from: &str) -> Option<String> {
    let name = from.split('<').next()?.trim().trim_matches('"').trim();
    (!name.is_empty() && !name.contains('@')).then(|| name.to_owned())
}

/// The widget's `{"visitor_id", "client_message_id", "text", "name"?, "email"?}`. The client's
/// id is only unique per visitor, so the stored provider id is `visitor:client id`.
fn widget(raw: &Value) -> Option<Inbound> {
    let visitor = text(raw, "visitor_id")?;
    let client_id = text(raw, "client_message_id")?;
    let body = text(raw, "text")?;
    let mut who = contact(visitor.clone(), text(raw, "name"));
    who.email = text(raw, "email");
    let id = format!("{visitor}:{client_id}");
    Some(message(who, id, MessageKind::Text, body, Value::Null, None))
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use shared::queue::QueueName;

    use super::*;

    fn job(kind: &str, raw: Value, context: Value, provider_id: Option<&str>) -> Job {
        let payload = json!({
            "v": 1, "channel": "x", "inbox_id": "inb_1", "tenant_id": "ten_1",
            "provider_message_id": provider_id, "received_at": "2026-11-23T00:00:00Z",
            "context": context, "raw": raw,
        });
        Job::new(QueueName::new("widget").unwrap(), kind, payload)
    }

    fn fixture(name: &str) -> Value {
        let path = format!(
            "{}/../../shared/fixtures/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        let fallback = format!("/work/shared/fixtures/{name}");
        let text = std::fs::read_to_string(&path)
            .or_else(|_| std::fs::read_to_string(fallback))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        serde_json::from_str(&text).unwrap()
    }

    #[test]
    fn waha_message() {
        let raw = fixture("waha-message.json");
        let id = raw["payload"]["id"].as_str().unwrap().to_owned();
        let parsed = inbound(&job("waha.message", raw, json!({}), Some(&id))).unwrap();
        assert_eq!(parsed.contact.external_id, "4915212345678@c.us");
        assert_eq!(parsed.contact.phone.as_deref(), Some("+4915212345678"));
        assert_eq!(parsed.message.provider_message_id, id);
        assert_eq!(
            parsed.message.body,
            "Hi, my order #1042 has not arrived yet"
        );
        assert_eq!(
            (parsed.tenant_id.as_str(), parsed.inbox_id.as_str()),
            ("ten_1", "inb_1")
        );
    }

    #[test]
    fn whatsapp_cloud_text_and_button() {
        let body = fixture("meta-whatsapp-cloud-message.json");
        let value = &body["entry"][0]["changes"][0]["value"];
        let raw = value["messages"][0].clone();
        let context = json!({ "contacts": value["contacts"] });
        let parsed = inbound(&job("whatsapp.message", raw, context, None)).unwrap();
        assert_eq!(parsed.contact.name.as_deref(), Some("Ana Souza"));
        assert!(parsed.message.provider_message_id.starts_with("wamid."));
        let button = json!({"from": "1", "id": "wamid.2", "type": "interactive",
            "interactive": {"type": "button_reply", "button_reply": {"id": "CONNECT_AGENT", "title": "Agent"}}});
        let parsed = inbound(&job("whatsapp.message", button, json!({}), None)).unwrap();
        assert_eq!(parsed.postback.as_deref(), Some("CONNECT_AGENT"));
        assert_eq!(parsed.message.kind, MessageKind::Postback);
    }

    #[test]
    fn messenger_message_and_postback() {
        let body = fixture("meta-messenger-message.json");
        let raw = body["entry"][0]["messaging"][0].clone();
        let parsed = inbound(&job("messenger.message", raw, json!({}), None)).unwrap();
        assert_eq!(parsed.contact.external_id, "7012345678901234");
        let body = fixture("meta-messenger-postback.json");
        let raw = body["entry"][0]["messaging"][0].clone();
        let parsed = inbound(&job("messenger.postback", raw, json!({}), None)).unwrap();
        assert_eq!(parsed.postback.as_deref(), Some("CONNECT_AGENT"));
        assert_eq!(parsed.message.body, "Talk to an agent");
        assert_eq!(
            parsed.message.provider_message_id,
            "m_PostbackMid0001ZyXwVuTsRqPoNmLkJiH"
        );
    }

    #[test]
    fn postmark_and_mailgun_email() {
        let raw = fixture("postmark-inbound.json");
        let context = json!({"provider": "postmark"});
        let parsed = inbound(&job(
            "email.message",
            raw,
            context,
            Some("<CAF7x9Q2b1@mail.example.org>"),
        ))
        .unwrap();
        assert_eq!(
            parsed.contact.email.as_deref(),
            Some("jordan.lee@example.org")
        );
        assert_eq!(parsed.message.payload["subject"], "Refund for invoice 2291");
        assert_eq!(
            parsed.message.provider_message_id,
            "<CAF7x9Q2b1@mail.example.org>"
        );
        let raw = json!({"sender": "Sam@Example.net", "from": "Sam Rivera <sam@example.net>",
            "subject": "Where?", "body-plain": "Nothing arrived."});
        let parsed = inbound(&job(
            "email.message",
            raw.clone(),
            json!({"provider": "mailgun"}),
            None,
        ))
        .unwrap();
        assert_eq!(parsed.contact.external_id, "sam@example.net");
        assert_eq!(parsed.contact.name.as_deref(), Some("Sam Rivera"));
        assert!(parsed.message.provider_message_id.starts_with("sha256:"));
        let again = inbound(&job(
            "email.message",
            raw,
            json!({"provider": "mailgun"}),
            None,
        ))
        .unwrap();
        assert_eq!(
            again.message.provider_message_id,
            parsed.message.provider_message_id
        );
    }

    #[test]
    fn widget_ids_are_scoped_by_visitor() {
        let raw = json!({"visitor_id": "v1", "client_message_id": "1", "text": "hello"});
        let parsed = inbound(&job("widget.message", raw, json!({}), Some("1"))).unwrap();
        assert_eq!(parsed.message.provider_message_id, "v1:1");
    }

    #[test]
    fn unusable_payloads_are_permanent_errors_with_a_reason() {
        for (kind, raw) in [
            ("waha.message", json!({"payload": {"id": "x"}})),
            ("widget.message", json!({"visitor_id": "v"})),
            (
                "messenger.message",
                json!({"sender": {"id": "1"}, "message": {"mid": "m"}}),
            ),
            ("unknown.kind", json!({})),
        ] {
            let error = inbound(&job(kind, raw, json!({}), Some("p"))).unwrap_err();
            assert_eq!(error.kind, kind);
        }
        let mut bad = job("widget.message", json!({}), json!({}), None);
        bad.payload["v"] = json!(2);
        assert!(inbound(&bad).unwrap_err().problem.contains("version"));
    }
}
