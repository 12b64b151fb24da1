//! Where an event is broadcast: the channel matrix of DESIGN.md §5 (seed 000, Appendix B) as
//! data, and the channel names it expands to.
//!
//! | event | messages | session | agent | queues (+ queues-app) | case |
//! | --- | --- | --- | --- | --- | --- |
//! | message.ready, message.reply_ready | ✓ | ✓ | ✓ | | |
//! | queue_item.created | | | ✓ | ✓ | |
//! | case.closed, csat.started | ✓ | ✓ | ✓ | | ✓ |
//! | session.created | | ✓ | | | |
//! | message.delivered, message.read, message.delivery_failed | ✓ | ✓ | ✓ | | |
//! | inbox.delivery_paused, subscription.disabled | ✓ | | | | |
//! | inbox.sla.warning, inbox.sla.breach | ✓ | | | ✓ | |
//! | csat.expired | ✓ | | | | ✓ |
//!
//! The first four rows are seed 000's matrix (DESIGN.md §5); the others are ours: delivery
//! ticks and failures go where the message went (issue 5: a failed delivery is broadcast), a
//! broken channel or a disabled webhook subscription shows on the tenant's admin channel, an SLA
//! alarm where agents watch the waiting list, an expired survey on its case.
//!
//! Every other event is recorded in the log (and offered to webhook subscriptions) but not
//! broadcast: the matrix is the contract the gateway's clients were built against.
//!
//! Names are tenant-scoped private channels, `private-tenant.{t}.messages`,
//! `….session.{id}`, `….agent.{type}`, `….queues`, `….queues-app.{app}`, `….case.{id}`. The
//! agent type is the session's path, `bot` or `live` (the seed's "session agent type"); the app
//! is the inbox. Every name is checked against the Pusher channel alphabet and length; the
//! optional `BROADCAST_PREFIX` is put in front only when publishing ([`super::Broadcaster`]).

use std::fmt;

use super::{EventError, EventType, types};

/// One column of the matrix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Audience {
    /// `tenant.{t}.messages`: everything a tenant's admin panel shows.
    Messages,
    /// `tenant.{t}.session.{id}`: the customer's widget and the agent's conversation view.
    Session,
    /// `tenant.{t}.agent.{type}`: dashboards of bot or live agents.
    Agent,
    /// `tenant.{t}.queues` and `tenant.{t}.queues-app.{app}`: the agents' waiting list.
    Queues,
    /// `tenant.{t}.case.{id}`: one case's watchers.
    Case,
}

impl Audience {
    fn label(self) -> &'static str {
        match self {
            Self::Messages => "messages",
            Self::Session => "session",
            Self::Agent => "agent",
            Self::Queues => "queues",
            Self::Case => "case",
        }
    }
}

use Audience::{Agent, Case, Messages, Queues, Session};

/// The matrix, row by row.
const MATRIX: [(EventType, &[Audience]); 14] = [
    (types::MESSAGE_READY, &[Messages, Session, Agent]),
    (types::MESSAGE_REPLY_READY, &[Messages, Session, Agent]),
    (types::MESSAGE_DELIVERED, &[Messages, Session, Agent]),
    (types::MESSAGE_READ, &[Messages, Session, Agent]),
    (types::MESSAGE_DELIVERY_FAILED, &[Messages, Session, Agent]),
    (types::INBOX_DELIVERY_PAUSED, &[Messages]),
    (types::SLA_WARNING, &[Messages, Queues]),
    (types::SLA_BREACH, &[Messages, Queues]),
    (types::CSAT_EXPIRED, &[Messages, Case]),
    (types::QUEUE_ITEM_CREATED, &[Agent, Queues]),
    (types::CASE_CLOSED, &[Messages, Session, Agent, Case]),
    (types::CSAT_STARTED, &[Messages, Session, Agent, Case]),
    (types::SESSION_CREATED, &[Session]),
    (types::SUBSCRIPTION_DISABLED, &[Messages]),
];

/// The audiences of `event` (empty: recorded, not broadcast).
pub fn audiences(event: EventType) -> &'static [Audience] {
    MATRIX
        .iter()
        .find(|(t, _)| *t == event)
        .map(|(_, a)| *a)
        .unwrap_or(&[])
}

/// Who is handling a session: the `{type}` of `agent.{type}` channels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AgentType {
    Bot,
    Live,
}

impl AgentType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Bot => "bot",
            Self::Live => "live",
        }
    }
}

impl fmt::Display for AgentType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The ids an event's channels are built from; only those its matrix row needs must be set.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Route {
    pub session_id: Option<String>,
    pub agent_type: Option<AgentType>,
    /// The app of `queues-app.{app}`: the inbox.
    pub app: Option<String>,
    pub case_id: Option<String>,
}

impl Route {
    pub fn session(session_id: &str, agent_type: AgentType) -> Self {
        Self {
            session_id: Some(session_id.to_owned()),
            agent_type: Some(agent_type),
            ..Self::default()
        }
    }

    pub fn with_app(mut self, app: &str) -> Self {
        self.app = Some(app.to_owned());
        self
    }

    pub fn with_case(mut self, case_id: &str) -> Self {
        self.case_id = Some(case_id.to_owned());
        self
    }
}

/// The longest channel name Pusher accepts.
pub const MAX_CHANNEL_NAME: usize = 200;

/// The channels `event` goes to, in matrix column order.
pub fn channels_for(
    tenant_id: &str,
    event: EventType,
    route: &Route,
) -> Result<Vec<String>, EventError> {
    let base = format!("private-tenant.{tenant_id}");
    let need = |value: &Option<String>, audience: Audience| {
        value.clone().ok_or(EventError::MissingRoute {
            event: event.as_str(),
            audience: audience.label(),
        })
    };
    let mut names = Vec::new();
    for &audience in audiences(event) {
        match audience {
            Messages => names.push(format!("{base}.messages")),
            Session => names.push(format!(
                "{base}.session.{}",
                need(&route.session_id, Session)?
            )),
            Agent => {
                let agent = route.agent_type.ok_or(EventError::MissingRoute {
                    event: event.as_str(),
                    audience: "agent",
                })?;
                names.push(format!("{base}.agent.{agent}"));
            }
            Queues => {
                names.push(format!("{base}.queues"));
                names.push(format!("{base}.queues-app.{}", need(&route.app, Queues)?));
            }
            Case => names.push(format!("{base}.case.{}", need(&route.case_id, Case)?)),
        }
    }
    names.iter().try_for_each(|n| check_name(n))?;
    Ok(names)
}

/// A name Pusher (and so Laravel Echo) accepts: `[A-Za-z0-9_\-=@,.;]`, at most 200 characters.
pub fn check_name(name: &str) -> Result<(), EventError> {
    let invalid = |reason| EventError::InvalidChannel {
        name: name.chars().take(MAX_CHANNEL_NAME + 8).collect(),
        reason,
    };
    if name.is_empty() || name.len() > MAX_CHANNEL_NAME {
        return Err(invalid("must be 1 to 200 characters"));
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || "_-=@,.;".contains(c);
    if !name.chars().all(allowed) {
        return Err(invalid("outside the channel alphabet [A-Za-z0-9_-=@,.;]"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full_route() -> Route {
        Route::session("ses_1", AgentType::Live)
            .with_app("inb_1")
            .with_case("cas_1")
    }

    fn check(event: EventType, expected: &[&str]) {
        let names = channels_for("ten_1", event, &full_route()).unwrap();
        let expected: Vec<String> = expected
            .iter()
            .map(|s| format!("private-tenant.ten_1.{s}"))
            .collect();
        assert_eq!(names, expected, "{event}");
    }

    #[test]
    fn our_rows_beside_the_seeds_matrix() {
        for event in [
            types::MESSAGE_DELIVERED,
            types::MESSAGE_READ,
            types::MESSAGE_DELIVERY_FAILED,
        ] {
            check(event, &["messages", "session.ses_1", "agent.live"]);
        }
        check(types::INBOX_DELIVERY_PAUSED, &["messages"]);
        check(types::SUBSCRIPTION_DISABLED, &["messages"]);
        for event in [types::SLA_WARNING, types::SLA_BREACH] {
            check(event, &["messages", "queues", "queues-app.inb_1"]);
        }
        check(types::CSAT_EXPIRED, &["messages", "case.cas_1"]);
    }

    #[test]
    fn the_matrix_of_design_section_5() {
        check(
            types::MESSAGE_READY,
            &["messages", "session.ses_1", "agent.live"],
        );
        check(
            types::MESSAGE_REPLY_READY,
            &["messages", "session.ses_1", "agent.live"],
        );
        check(
            types::QUEUE_ITEM_CREATED,
            &["agent.live", "queues", "queues-app.inb_1"],
        );
        check(
            types::CASE_CLOSED,
            &["messages", "session.ses_1", "agent.live", "case.cas_1"],
        );
        check(
            types::CSAT_STARTED,
            &["messages", "session.ses_1", "agent.live", "case.cas_1"],
        );
        check(types::SESSION_CREATED, &["session.ses_1"]);
        for quiet in [
            types::SESSION_PATH_CHANGED,
            types::CASE_CREATED,
            types::AGENT_ASSIGNED,
            types::CSAT_RESPONDED,
            types::MESSAGE_POSTBACK,
        ] {
            check(quiet, &[]);
        }
    }

    #[test]
    fn a_missing_id_is_an_error_not_a_wrong_channel() {
        let error = channels_for(
            "ten_1",
            types::CASE_CLOSED,
            &Route::session("s", AgentType::Bot),
        );
        assert!(matches!(
            error,
            Err(EventError::MissingRoute {
                audience: "case",
                ..
            })
        ));
    }

    #[test]
    fn names_stay_in_the_pusher_alphabet_and_length() {
        assert!(check_name("private-tenant.ten_1.session.ses_01J").is_ok());
        assert!(check_name("private-tenant.t 1.messages").is_err());
        assert!(check_name("private-tenant.t/1.messages").is_err());
        assert!(check_name(&"a".repeat(201)).is_err());
        assert!(check_name(&"a".repeat(200)).is_ok());
        let long = Route::session(&"s".repeat(190), AgentType::Bot);
        assert!(channels_for("ten_1", types::SESSION_CREATED, &long).is_err());
    }
}
