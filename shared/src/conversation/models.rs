//! Rows of the conversation tables, as diesel reads them, plus their JSON for events and the
//! API. State columns stay text here; typed states come from [`super::state`] at the point a
//! decision is made, so an unknown value from a newer release fails loudly there.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use serde::Serialize;

use super::state::{CaseState, SessionState, parse_state};
use crate::{
    db::schema::{agents, cases, contacts, csat_surveys, messages, queue_items, sessions},
    events::AgentType,
};

#[derive(Clone, Debug, PartialEq, Queryable, Selectable, Serialize)]
#[diesel(table_name = contacts)]
pub struct Contact {
    pub id: String,
    pub tenant_id: String,
    pub inbox_id: String,
    pub external_id: String,
    pub name: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub created_at: DateTime<Utc>,
}

#[derive(Clone, Debug, PartialEq, Queryable, Selectable, Serialize)]
#[diesel(table_name = sessions)]
pub struct Session {
    pub id: String,
    pub tenant_id: String,
    pub inbox_id: String,
    pub contact_id: String,
    pub state: String,
    pub unrecognised_count: i32,
    pub correlation_id: String,
    pub created_at: DateTime<Utc>,
    pub closed_at: Option<DateTime<Utc>>,
}

impl Session {
    pub fn state(&self) -> Result<SessionState, super::ConversationError> {
        Ok(parse_state(&self.state)?)
    }

    /// The `{type}` of the session's `agent.{type}` channel: who is answering it now.
    pub fn agent_type(&self) -> AgentType {
        if self.state == SessionState::Live.to_string() {
            AgentType::Live
        } else {
            AgentType::Bot
        }
    }
}

#[derive(Clone, Debug, PartialEq, Queryable, Selectable, Serialize)]
#[diesel(table_name = messages)]
pub struct Message {
    pub id: String,
    pub tenant_id: String,
    pub inbox_id: String,
    pub session_id: String,
    pub direction: String,
    pub sender_type: String,
    pub agent_id: Option<String>,
    pub provider_message_id: Option<String>,
    pub kind: String,
    pub body: String,
    pub payload: serde_json::Value,
    pub status: String,
    pub processed_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

#[derive(Clone, Debug, PartialEq, Queryable, Selectable, Serialize)]
#[diesel(table_name = agents)]
pub struct Agent {
    pub id: String,
    pub tenant_id: String,
    pub name: String,
    pub email: Option<String>,
    pub capacity: i32,
    pub load: i32,
    pub available: bool,
    pub last_assigned_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

#[derive(Clone, Debug, PartialEq, Queryable, Selectable, Serialize)]
#[diesel(table_name = queue_items)]
pub struct QueueItem {
    pub id: String,
    pub tenant_id: String,
    pub inbox_id: String,
    pub session_id: String,
    pub case_id: String,
    pub state: String,
    pub agent_id: Option<String>,
    pub created_at: DateTime<Utc>,
    pub assigned_at: Option<DateTime<Utc>>,
}

#[derive(Clone, Debug, PartialEq, Queryable, Selectable, Serialize)]
#[diesel(table_name = cases)]
pub struct Case {
    pub id: String,
    pub tenant_id: String,
    pub inbox_id: String,
    pub session_id: String,
    pub contact_id: String,
    pub agent_id: Option<String>,
    pub state: String,
    pub disposition: Option<String>,
    pub sentiment: Option<String>,
    pub created_at: DateTime<Utc>,
    pub assigned_at: Option<DateTime<Utc>>,
    pub closed_at: Option<DateTime<Utc>>,
}

impl Case {
    pub fn state(&self) -> Result<CaseState, super::ConversationError> {
        Ok(parse_state(&self.state)?)
    }
}

#[derive(Clone, Debug, PartialEq, Queryable, Selectable, Serialize)]
#[diesel(table_name = csat_surveys)]
pub struct CsatSurvey {
    pub id: String,
    pub tenant_id: String,
    pub case_id: String,
    pub session_id: String,
    pub state: String,
    pub score: Option<i32>,
    pub comment: Option<String>,
    pub created_at: DateTime<Utc>,
    pub responded_at: Option<DateTime<Utc>>,
}
