//! Agents: the people a tenant's sessions are handed to, with a capacity (conversations at
//! once) and an availability switch. Making an agent available offers it waiting sessions.

use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde_json::{Value, json};

use super::{Agent, ConversationError, Tx, assignment};
use crate::{db::schema::agents, inboxes::new_id};

/// A new agent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewAgent {
    pub name: String,
    pub email: Option<String>,
    pub capacity: i32,
}

impl NewAgent {
    pub fn validate(&self) -> Result<(), ConversationError> {
        if self.name.trim().is_empty() || self.name.chars().count() > 200 {
            return Err(ConversationError::invalid(
                "name",
                "must be 1 to 200 characters",
            ));
        }
        if !(0..=1000).contains(&self.capacity) {
            return Err(ConversationError::invalid("capacity", "must be 0 to 1000"));
        }
        if self
            .email
            .as_deref()
            .is_some_and(|e| !e.contains('@') || e.len() > 320)
        {
            return Err(ConversationError::invalid(
                "email",
                "must be an email address",
            ));
        }
        Ok(())
    }
}

/// Creates an agent (available) for the transaction's tenant, and offers it waiting sessions.
pub async fn create(tx: &mut Tx, new: &NewAgent) -> Result<Agent, ConversationError> {
    new.validate()?;
    let tenant_id = tx.tenant_id().to_owned();
    let agent: Agent = diesel::insert_into(agents::table)
        .values((
            agents::id.eq(new_id("agt")),
            agents::tenant_id.eq(tenant_id),
            agents::name.eq(new.name.trim()),
            agents::email.eq(&new.email),
            agents::capacity.eq(new.capacity),
        ))
        .returning(Agent::as_returning())
        .get_result(tx.conn())
        .await?;
    assignment::assign_waiting(tx).await?;
    Ok(agent)
}

/// The tenant's agent `id`.
pub async fn get(tx: &mut Tx, id: &str) -> Result<Agent, ConversationError> {
    let tenant_id = tx.tenant_id().to_owned();
    agents::table
        .filter(agents::id.eq(id))
        .filter(agents::tenant_id.eq(tenant_id))
        .select(Agent::as_select())
        .first(tx.conn())
        .await
        .optional()?
        .ok_or_else(|| ConversationError::not_found("agent", id))
}

/// Turns an agent's availability on or off; on offers it waiting sessions.
pub async fn set_available(
    tx: &mut Tx,
    id: &str,
    available: bool,
) -> Result<Agent, ConversationError> {
    get(tx, id).await?;
    let agent: Agent = diesel::update(agents::table.find(id))
        .set(agents::available.eq(available))
        .returning(Agent::as_returning())
        .get_result(tx.conn())
        .await?;
    if available {
        assignment::assign_waiting(tx).await?;
    }
    Ok(agent)
}

/// Agents of `tenant_id` (every tenant's when `None`), oldest first.
pub async fn list(
    conn: &mut AsyncPgConnection,
    tenant_id: Option<&str>,
) -> Result<Vec<Agent>, ConversationError> {
    let mut query = agents::table
        .order(agents::created_at.asc())
        .select(Agent::as_select())
        .into_boxed();
    if let Some(tenant) = tenant_id {
        query = query.filter(agents::tenant_id.eq(tenant.to_owned()));
    }
    Ok(query.load(conn).await?)
}

pub fn json(agent: &Agent) -> Value {
    json!({
        "id": agent.id,
        "tenant_id": agent.tenant_id,
        "name": agent.name,
        "email": agent.email,
        "capacity": agent.capacity,
        "load": agent.load,
        "available": agent.available,
    })
}
