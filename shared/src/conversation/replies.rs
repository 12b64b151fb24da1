//! Agent replies: an agent answers a live session (`message.reply_ready`, then the `deliveries`
//! queue). The first reply puts the case in progress.
//!
//! Only the case's agent may reply, only on the live path; an Idempotency-Key makes a retried
//! request return the reply it already stored instead of sending it twice.

use serde_json::json;

use super::{
    ConversationError, Message, Tx, cases,
    messages::{NewOutbound, Sender},
    state::{CaseState, SessionState},
};

/// A reply as the API received it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentReply {
    pub agent_id: String,
    pub text: String,
    pub idempotency_key: Option<String>,
}

/// Longest reply accepted (the smallest channel limit, WhatsApp's 4,096 characters).
pub const MAX_REPLY_CHARS: usize = 4096;

/// Stores and sends `reply` in the tenant's session `session_id`. Returns the message and
/// whether it is new (false: the Idempotency-Key matched an earlier reply).
pub async fn reply(
    tx: &mut Tx,
    session_id: &str,
    reply: &AgentReply,
) -> Result<(Message, bool), ConversationError> {
    let text = reply.text.trim();
    if text.is_empty() || text.chars().count() > MAX_REPLY_CHARS {
        return Err(ConversationError::invalid(
            "text",
            format!("must be 1 to {MAX_REPLY_CHARS} characters"),
        ));
    }
    if let Some(key) = &reply.idempotency_key
        && let Some(earlier) = super::messages::by_idempotency_key(tx, key).await?
    {
        return Ok((earlier, false));
    }
    let session = super::sessions::lock(tx, session_id).await?;
    let agent = super::agents::get(tx, &reply.agent_id).await?;
    if session.state()? != SessionState::Live {
        return Err(ConversationError::Conflict(format!(
            "session {} is on the {} path; only a live session takes agent replies",
            session.id, session.state
        )));
    }
    let Some(mut case) = cases::open_for_session(tx, &session.id).await? else {
        return Err(ConversationError::Conflict(format!(
            "session {} has no open case",
            session.id
        )));
    };
    if case.agent_id.as_deref() != Some(agent.id.as_str()) {
        return Err(ConversationError::Conflict(format!(
            "case {} is not assigned to agent {}",
            case.id, agent.id
        )));
    }
    if case.state()? == CaseState::Assigned {
        case = cases::advance(tx, &case, &session, CaseState::InProgress).await?;
    }
    let contact = super::contacts::get(tx, &session.contact_id).await?;
    let kind = super::directory::inbox_kind(tx.conn(), &session.inbox_id).await?;
    let outbound = NewOutbound {
        sender: Sender::Agent(agent.id.clone()),
        body: text.to_owned(),
        idempotency_key: reply.idempotency_key.clone(),
        payload: json!({ "case_id": case.id }),
    };
    let message = super::messages::store_outbound(tx, &session, &contact, kind, outbound).await?;
    Ok((message, true))
}
