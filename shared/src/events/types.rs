//! The event types the pipeline produces, in one list: `{entity}.{action}` as DESIGN.md §4 and
//! the channel matrix of §5 name them (seed 004's `{domain}.{entity}.{action}` with the domain
//! left out, as its own `contact.created` does). A new event is added here first, with a line
//! in the matrix if it is broadcast.

use super::EventType;

/// A customer's conversation started (a new session, on the bot path).
pub const SESSION_CREATED: EventType = EventType::new("session.created");
/// The session moved between bot and live (handoff, or the case closed).
pub const SESSION_PATH_CHANGED: EventType = EventType::new("session.path_changed");
/// A message was stored: an inbound customer message, or a bot/system message to send.
pub const MESSAGE_READY: EventType = EventType::new("message.ready");
/// An agent's reply was stored and handed to the deliveries queue.
pub const MESSAGE_REPLY_READY: EventType = EventType::new("message.reply_ready");
/// The customer asked for an agent (a "connect agent" button or intent).
pub const MESSAGE_POSTBACK: EventType = EventType::new("message.postback");
/// A provider reported an outbound message delivered to the customer's device.
pub const MESSAGE_DELIVERED: EventType = EventType::new("message.delivered");
/// A provider reported an outbound message read.
pub const MESSAGE_READ: EventType = EventType::new("message.read");
/// A provider reported an outbound message failed.
pub const MESSAGE_DELIVERY_FAILED: EventType = EventType::new("message.delivery_failed");
/// A session waits in the agents' queue.
pub const QUEUE_ITEM_CREATED: EventType = EventType::new("queue_item.created");
/// A case was opened for a handoff.
pub const CASE_CREATED: EventType = EventType::new("case.created");
/// A case moved to in_progress or resolved.
pub const CASE_STATUS_CHANGED: EventType = EventType::new("case.status_changed");
/// An agent closed a case with a disposition and sentiment.
pub const CASE_CLOSED: EventType = EventType::new("case.closed");
/// An agent was given a waiting session (round robin, capacity-aware).
pub const AGENT_ASSIGNED: EventType = EventType::new("agent.assigned");
/// The CSAT survey of a closed case went out.
pub const CSAT_STARTED: EventType = EventType::new("csat.started");
/// The customer answered the CSAT survey.
pub const CSAT_RESPONDED: EventType = EventType::new("csat.responded");

/// An inbox's deliveries stopped: the channel refused our credentials or account.
pub const INBOX_DELIVERY_PAUSED: EventType = EventType::new("inbox.delivery_paused");

/// A webhook subscription was disabled after consecutive failed deliveries (or a 410 Gone);
/// its events are kept for recovery.
pub const SUBSCRIPTION_DISABLED: EventType = EventType::new("subscription.disabled");

/// A session has waited for an agent longer than its inbox's SLA warning threshold (scheduler).
pub const SLA_WARNING: EventType = EventType::new("inbox.sla.warning");

/// A session has waited for an agent longer than its inbox's SLA breach threshold (scheduler).
pub const SLA_BREACH: EventType = EventType::new("inbox.sla.breach");

/// A CSAT survey went unanswered past its expiry (scheduler).
pub const CSAT_EXPIRED: EventType = EventType::new("csat.expired");

/// Every type, for documentation, `/api/events/schemas` and tests.
pub const ALL: [EventType; 20] = [
    SESSION_CREATED,
    SESSION_PATH_CHANGED,
    MESSAGE_READY,
    MESSAGE_REPLY_READY,
    MESSAGE_POSTBACK,
    MESSAGE_DELIVERED,
    MESSAGE_READ,
    MESSAGE_DELIVERY_FAILED,
    QUEUE_ITEM_CREATED,
    CASE_CREATED,
    CASE_STATUS_CHANGED,
    CASE_CLOSED,
    AGENT_ASSIGNED,
    CSAT_STARTED,
    CSAT_RESPONDED,
    INBOX_DELIVERY_PAUSED,
    SUBSCRIPTION_DISABLED,
    SLA_WARNING,
    SLA_BREACH,
    CSAT_EXPIRED,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_type_is_well_formed_and_unique() {
        let mut seen = std::collections::HashSet::new();
        for t in ALL {
            assert!(EventType::parse(t.as_str()).is_some(), "{t}");
            assert!(seen.insert(t.as_str()), "duplicate {t}");
        }
    }
}
