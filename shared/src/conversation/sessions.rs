//! Sessions: a customer's conversation, on the bot path or live with an agent, until closed.
//!
//! A contact has at most one open session (a partial unique index); [`of_senders`] opens one
//! while holding the contact's row lock, so it never races with itself. Path changes
//! go through the session state machine and are recorded as `session.path_changed`.

use diesel::{
    prelude::*,
    sql_types::{Bool, Integer, Nullable, Text, Timestamptz},
};
use diesel_async::RunQueryDsl;
use serde_json::{Value, json};

use super::{
    Contact, ConversationError, Session, Tx,
    contacts::ContactInfo,
    state::{SessionState, transition},
};
use crate::{
    db::{keep_prepared, schema::sessions},
    events::{NewEvent, Route, types},
    inboxes::new_id,
};

/// A customer message's sender, whose conversation [`of_senders`] finds or opens.
#[derive(Clone, Copy, Debug)]
pub struct Sender<'a> {
    pub inbox_id: &'a str,
    pub contact: &'a ContactInfo,
    /// Taken by a session opened now: the id every later event of the conversation carries.
    pub correlation_id: &'a str,
}

/// A sender's conversation: their contact and open session, both locked for the rest of the
/// transaction (which serialises this customer's messages from here on).
#[derive(Clone, Debug)]
pub struct OfSender {
    pub contact: Contact,
    pub session: Session,
    /// The session was opened just now: [`announce_opened`] records `session.created`.
    pub opened: bool,
}

/// Each sender's conversation, one statement each (`conversation_of_sender`, migration 000021):
/// for a follow-up the contact and open session it finds; for a new customer both created; for a
/// returning customer (or one whose first message another transaction stored just now) the
/// contact locked and its open session found or opened. The unique (inbox, external id) index
/// decides who creates a contact, so two first messages processed at once make one contact and
/// one session.
///
/// The statements are pipelined on the transaction's connection, sent — and so run, and their
/// rows locked — in the order given: one exchange for all of a shared transaction's steps
/// (worker/src/handlers/inbound.rs). A sender given twice gets the first answer twice: give each
/// sender once.
pub async fn of_senders(
    tx: &mut Tx,
    senders: &[Sender<'_>],
) -> Result<Vec<OfSender>, ConversationError> {
    if senders
        .iter()
        .any(|sender| sender.contact.external_id.is_empty())
    {
        return Err(ConversationError::invalid("sender", "is empty"));
    }
    let tenant_id = tx.tenant_id().to_owned();
    let conn: &diesel_async::AsyncPgConnection = tx.conn();
    let state = SessionState::Bot.to_string();
    let calls = senders.iter().map(|sender| {
        // Each future borrows the connection on its own; polled together they pipeline.
        let mut conn = conn;
        let info = sender.contact;
        // Kept prepared: one statement per message (diesel never keeps a `sql_query`).
        let call = keep_prepared(
            diesel::sql_query(
                "SELECT * FROM conversation_of_sender($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            )
            .bind::<Text, _>(tenant_id.clone())
            .bind::<Text, _>(sender.inbox_id)
            .bind::<Text, _>(&info.external_id)
            .bind::<Nullable<Text>, _>(&info.name)
            .bind::<Nullable<Text>, _>(&info.email)
            .bind::<Nullable<Text>, _>(&info.phone)
            .bind::<Text, _>(new_id("con"))
            .bind::<Text, _>(new_id("ses"))
            .bind::<Text, _>(&state)
            .bind::<Text, _>(sender.correlation_id),
        );
        async move {
            let row: ConversationRow = call.get_result(&mut conn).await?;
            Ok::<_, ConversationError>(row.split())
        }
    });
    futures::future::try_join_all(calls).await
}

/// Records `session.created` when `of` opened its session.
pub async fn announce_opened(tx: &mut Tx, of: &OfSender) -> Result<(), ConversationError> {
    if !of.opened {
        return Ok(());
    }
    let (contact, session) = (&of.contact, &of.session);
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

/// The row of `conversation_of_sender`.
#[derive(QueryableByName)]
struct ConversationRow {
    #[diesel(sql_type = Text)]
    c_id: String,
    #[diesel(sql_type = Text)]
    c_tenant_id: String,
    #[diesel(sql_type = Text)]
    c_inbox_id: String,
    #[diesel(sql_type = Text)]
    c_external_id: String,
    #[diesel(sql_type = Nullable<Text>)]
    c_name: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    c_email: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    c_phone: Option<String>,
    #[diesel(sql_type = Timestamptz)]
    c_created_at: chrono::DateTime<chrono::Utc>,
    #[diesel(sql_type = Text)]
    s_id: String,
    #[diesel(sql_type = Text)]
    s_state: String,
    #[diesel(sql_type = Integer)]
    s_unrecognised_count: i32,
    #[diesel(sql_type = Text)]
    s_correlation_id: String,
    #[diesel(sql_type = Timestamptz)]
    s_created_at: chrono::DateTime<chrono::Utc>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    s_closed_at: Option<chrono::DateTime<chrono::Utc>>,
    #[diesel(sql_type = Bool)]
    session_created: bool,
}

impl ConversationRow {
    fn split(self) -> OfSender {
        let session = Session {
            id: self.s_id,
            tenant_id: self.c_tenant_id.clone(),
            inbox_id: self.c_inbox_id.clone(),
            contact_id: self.c_id.clone(),
            state: self.s_state,
            unrecognised_count: self.s_unrecognised_count,
            correlation_id: self.s_correlation_id,
            created_at: self.s_created_at,
            closed_at: self.s_closed_at,
        };
        let contact = Contact {
            id: self.c_id,
            tenant_id: self.c_tenant_id,
            inbox_id: self.c_inbox_id,
            external_id: self.c_external_id,
            name: self.c_name,
            email: self.c_email,
            phone: self.c_phone,
            created_at: self.c_created_at,
        };
        OfSender {
            contact,
            session,
            opened: self.session_created,
        }
    }
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
