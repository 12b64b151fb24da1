//! Sessions: a customer's conversation, on the bot path or live with an agent, until closed.
//!
//! A contact has at most one open session (a partial unique index); [`find_or_open`] runs
//! while the caller holds the contact's row lock, so it never races with itself. Path changes
//! go through the session state machine and are recorded as `session.path_changed`.

use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use serde_json::{Value, json};

use super::{
    Contact, ConversationError, Session, Tx,
    contacts::ContactInfo,
    partial,
    state::{SessionState, transition},
};
use crate::{
    db::{keep_prepared, schema::sessions},
    events::{NewEvent, Route, types},
    inboxes::new_id,
};

/// The conversation a customer message belongs to, once [`open_of_senders`] answered `open` for
/// the sender in this transaction: the sender's contact and open session, both locked (which
/// serialises this customer's messages from here on) — what the look-up found, for a
/// follow-up; else a new customer's contact and session created in one statement
/// (`session.created`), or a returning customer's contact locked and its open session found or
/// opened.
pub async fn of_sender_looked_up(
    tx: &mut Tx,
    open: Option<(Contact, Session)>,
    inbox_id: &str,
    sender: &ContactInfo,
    correlation_id: &str,
) -> Result<(Contact, Session), ConversationError> {
    if let Some(open) = open {
        return Ok(open);
    }
    // A new customer: contact and session in one statement.
    if let Some((contact, session)) =
        super::contacts::create_with_session(tx, inbox_id, sender, correlation_id).await?
    {
        announce_new(tx, &contact, &session).await?;
        return Ok((contact, session));
    }
    // A returning customer (no open session), or one whose first message another transaction
    // stored just now.
    let contact = super::contacts::lock_existing(tx, inbox_id, &sender.external_id).await?;
    let session = find_or_open(tx, &contact, correlation_id).await?.0;
    Ok((contact, session))
}

/// The open session of each sender (inbox id, external id) with its contact, both locked
/// (contact first, as [`super::contacts::lock_existing`] then [`find_or_open`] would), one
/// statement each — or `None` when the customer is new or has no open session.
///
/// Every follow-up message of a conversation takes this path: one round trip instead of the
/// contact's INSERT … ON CONFLICT, its SELECT and the session's SELECT (pipeline, issue 4). Under
/// READ COMMITTED a session closed while this waited for its lock is re-checked and left out,
/// exactly as the separate look-up would.
///
/// The statements are pipelined on the transaction's connection, sent — and so run, and their
/// rows locked — in the order given: one exchange for all of a shared transaction's steps
/// (worker/src/handlers/inbound.rs). A sender given twice gets the same answer twice, which the
/// first of its steps may outdate: give each sender once.
pub async fn open_of_senders(
    tx: &mut Tx,
    senders: &[(&str, &str)],
) -> Result<Vec<Option<(Contact, Session)>>, ConversationError> {
    use crate::db::schema::contacts;
    let tenant_id = tx.tenant_id().to_owned();
    let conn: &diesel_async::AsyncPgConnection = tx.conn();
    let lookups = senders.iter().map(|(inbox_id, external_id)| {
        // Each future borrows the connection on its own; polled together they pipeline.
        let mut conn = conn;
        let query = contacts::table
            .inner_join(sessions::table.on(sessions::contact_id.eq(contacts::id)))
            .filter(contacts::inbox_id.eq(*inbox_id))
            .filter(contacts::external_id.eq(*external_id))
            .filter(contacts::tenant_id.eq(tenant_id.as_str()))
            .filter(partial::SessionIsOpen)
            .select((Contact::as_select(), Session::as_select()))
            .for_no_key_update();
        async move { query.first(&mut conn).await.optional() }
    });
    Ok(futures::future::try_join_all(lookups).await?)
}

/// The contact's open session, locked against concurrent path changes (an agent taking it), or
/// a new one on the bot path (`session.created`). New sessions take `correlation_id`, the id
/// every later event of the conversation carries.
pub async fn find_or_open(
    tx: &mut Tx,
    contact: &Contact,
    correlation_id: &str,
) -> Result<(Session, bool), ConversationError> {
    let open = sessions::table
        .filter(sessions::contact_id.eq(&contact.id))
        .filter(partial::SessionIsOpen)
        .select(Session::as_select())
        .for_no_key_update()
        .first(tx.conn())
        .await
        .optional()?;
    if let Some(session) = open {
        return Ok((session, false));
    }
    Ok((open_new(tx, contact, correlation_id).await?, true))
}

/// A new session on the bot path for a contact that has none open — one this transaction just
/// created, say (`session.created`). A second open session would violate the partial unique
/// index.
pub async fn open_new(
    tx: &mut Tx,
    contact: &Contact,
    correlation_id: &str,
) -> Result<Session, ConversationError> {
    let session: Session = diesel::insert_into(sessions::table)
        .values((
            sessions::id.eq(new_id("ses")),
            sessions::tenant_id.eq(&contact.tenant_id),
            sessions::inbox_id.eq(&contact.inbox_id),
            sessions::contact_id.eq(&contact.id),
            sessions::state.eq(SessionState::Bot.to_string()),
            sessions::correlation_id.eq(correlation_id),
        ))
        .returning(Session::as_returning())
        .get_result(tx.conn())
        .await?;
    announce_new(tx, contact, &session).await?;
    Ok(session)
}

/// Records `session.created` for a session opened just now.
async fn announce_new(
    tx: &mut Tx,
    contact: &Contact,
    session: &Session,
) -> Result<(), ConversationError> {
    tx.emit(NewEvent {
        event_type: types::SESSION_CREATED,
        aggregate_type: "session",
        aggregate_id: session.id.clone(),
        correlation_id: session.correlation_id.clone(),
        data: json!({ "session": json(session), "contact": contact_json(contact) }),
        route: Route::session(&session.id, session.agent_type()),
    })
    .await
}

/// The tenant's session `id`, locked against concurrent path changes.
pub async fn lock(tx: &mut Tx, id: &str) -> Result<Session, ConversationError> {
    let tenant_id = tx.tenant_id().to_owned();
    sessions::table
        .filter(sessions::id.eq(id))
        .filter(sessions::tenant_id.eq(tenant_id))
        .select(Session::as_select())
        .for_no_key_update()
        .first(tx.conn())
        .await
        .optional()?
        .ok_or_else(|| ConversationError::not_found("session", id))
}

/// The tenant's session `id`, read without locking.
pub async fn get(tx: &mut Tx, id: &str) -> Result<Session, ConversationError> {
    let tenant_id = tx.tenant_id().to_owned();
    sessions::table
        .filter(sessions::id.eq(id))
        .filter(sessions::tenant_id.eq(tenant_id))
        .select(Session::as_select())
        .first(tx.conn())
        .await
        .optional()?
        .ok_or_else(|| ConversationError::not_found("session", id))
}

/// Moves a (locked) session to `to` and records `session.path_changed`.
pub async fn change_path(
    tx: &mut Tx,
    session: &Session,
    to: SessionState,
    reason: &str,
) -> Result<Session, ConversationError> {
    let from = session.state()?;
    transition(&session.id, from, to)?;
    let closed_at = (to == SessionState::Closed).then(chrono::Utc::now);
    let updated: Session = keep_prepared(
        diesel::update(sessions::table.find(&session.id))
            .set((
                sessions::state.eq(to.to_string()),
                sessions::unrecognised_count.eq(0),
                sessions::updated_at.eq(diesel::dsl::now),
                sessions::closed_at.eq(closed_at),
            ))
            .returning(Session::as_returning()),
    )
    .get_result(tx.conn())
    .await?;
    tx.emit(NewEvent {
        event_type: types::SESSION_PATH_CHANGED,
        aggregate_type: "session",
        aggregate_id: updated.id.clone(),
        correlation_id: updated.correlation_id.clone(),
        data: json!({
            "session": json(&updated),
            "from": from.to_string(),
            "to": to.to_string(),
            "reason": reason,
        }),
        route: Route::session(&updated.id, updated.agent_type()),
    })
    .await?;
    Ok(updated)
}

/// Counts unrecognised messages in a row (reset by a recognised one).
pub async fn set_unrecognised(
    tx: &mut Tx,
    session_id: &str,
    count: i32,
) -> Result<(), ConversationError> {
    update_unrecognised(tx.conn(), session_id, count).await
}

/// [`set_unrecognised`] on a shared borrow of the transaction's connection, so that several
/// sessions' updates can be pipelined (worker/src/handlers/batch.rs).
pub async fn update_unrecognised(
    mut conn: &diesel_async::AsyncPgConnection,
    session_id: &str,
    count: i32,
) -> Result<(), ConversationError> {
    keep_prepared(diesel::update(sessions::table.find(session_id)).set((
        sessions::unrecognised_count.eq(count),
        sessions::updated_at.eq(diesel::dsl::now),
    )))
    .execute(&mut conn)
    .await?;
    Ok(())
}

/// The session as events and the API show it.
pub fn json(session: &Session) -> Value {
    json!({
        "id": session.id,
        "inbox_id": session.inbox_id,
        "contact_id": session.contact_id,
        "state": session.state,
        "agent_type": session.agent_type().as_str(),
        "created_at": session.created_at,
    })
}

pub fn contact_json(contact: &Contact) -> Value {
    json!({
        "id": contact.id,
        "external_id": contact.external_id,
        "name": contact.name,
        "email": contact.email,
        "phone": contact.phone,
    })
}
