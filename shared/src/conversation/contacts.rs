//! Contacts: one per customer per inbox, found by the provider's id for them.
//!
//! A new customer's contact is created with their first session in one statement
//! ([`create_with_session`]: `INSERT … ON CONFLICT DO NOTHING`, the session inserted from the
//! row it returned); when it creates nothing, the contact exists and a locking read takes it
//! ([`lock_existing`]). The unique (inbox, external id) index decides who creates the contact,
//! and the row lock both paths end up holding serialises everything that follows for this
//! customer, so two first messages processed at once make one contact and one session.

use diesel::{
    prelude::*,
    sql_types::{Integer, Nullable, Text, Timestamptz},
};
use diesel_async::RunQueryDsl;

use super::{Contact, ConversationError, Session, Tx, state::SessionState};
use crate::{
    db::{keep_prepared, schema::contacts},
    inboxes::new_id,
};

/// What a channel tells us about the customer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ContactInfo {
    /// WhatsApp chat id, Messenger PSID, email address, widget visitor id.
    pub external_id: String,
    pub name: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
}

/// The inbox's contact `external_id`, which exists, locked for the rest of the transaction.
pub async fn lock_existing(
    tx: &mut Tx,
    inbox_id: &str,
    external_id: &str,
) -> Result<Contact, ConversationError> {
    let tenant_id = tx.tenant_id().to_owned();
    Ok(contacts::table
        .filter(contacts::inbox_id.eq(inbox_id))
        .filter(contacts::external_id.eq(external_id))
        .filter(contacts::tenant_id.eq(&tenant_id))
        .select(Contact::as_select())
        .for_no_key_update()
        .first(tx.conn())
        .await?)
}

/// A new customer's contact and their first session (on the bot path), in one statement — or
/// `None`, creating nothing, when the inbox already has a contact for `info` (then
/// [`lock_existing`] and `sessions::find_or_open`). A concurrent first message of the same
/// customer makes this wait for its transaction (the unique index). For the caller to record
/// `session.created`.
pub async fn create_with_session(
    tx: &mut Tx,
    inbox_id: &str,
    info: &ContactInfo,
    correlation_id: &str,
) -> Result<Option<(Contact, Session)>, ConversationError> {
    if info.external_id.is_empty() {
        return Err(ConversationError::invalid("sender", "is empty"));
    }
    let tenant_id = tx.tenant_id().to_owned();
    // Kept prepared: one statement per new conversation (diesel never keeps a `sql_query`).
    let row: Option<ContactAndSession> = keep_prepared(
        diesel::sql_query(
            "WITH c AS ( \
               INSERT INTO contacts (id, tenant_id, inbox_id, external_id, name, email, phone) \
               VALUES ($1, $2, $3, $4, $5, $6, $7) \
               ON CONFLICT (inbox_id, external_id) DO NOTHING \
               RETURNING id, tenant_id, inbox_id, external_id, name, email, phone, created_at), \
             s AS ( \
               INSERT INTO sessions (id, tenant_id, inbox_id, contact_id, state, correlation_id) \
               SELECT $8, c.tenant_id, c.inbox_id, c.id, $9, $10 FROM c \
               RETURNING id, tenant_id, inbox_id, contact_id, state, unrecognised_count, \
                         correlation_id, created_at, closed_at) \
             SELECT c.id AS c_id, c.tenant_id AS c_tenant_id, c.inbox_id AS c_inbox_id, \
                    c.external_id AS c_external_id, c.name AS c_name, c.email AS c_email, \
                    c.phone AS c_phone, c.created_at AS c_created_at, \
                    s.id AS s_id, s.state AS s_state, s.unrecognised_count AS s_unrecognised_count, \
                    s.correlation_id AS s_correlation_id, s.created_at AS s_created_at, \
                    s.closed_at AS s_closed_at \
               FROM c CROSS JOIN s",
        )
        .bind::<Text, _>(new_id("con"))
        .bind::<Text, _>(&tenant_id)
        .bind::<Text, _>(inbox_id)
        .bind::<Text, _>(&info.external_id)
        .bind::<Nullable<Text>, _>(&info.name)
        .bind::<Nullable<Text>, _>(&info.email)
        .bind::<Nullable<Text>, _>(&info.phone)
        .bind::<Text, _>(new_id("ses"))
        .bind::<Text, _>(SessionState::Bot.to_string())
        .bind::<Text, _>(correlation_id),
    )
    .get_result(tx.conn())
    .await
    .optional()?;
    Ok(row.map(ContactAndSession::split))
}

/// The row of [`create_with_session`].
#[derive(QueryableByName)]
struct ContactAndSession {
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
}

impl ContactAndSession {
    fn split(self) -> (Contact, Session) {
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
        (contact, session)
    }
}

/// A contact of this tenant by id.
pub async fn get(tx: &mut Tx, id: &str) -> Result<Contact, ConversationError> {
    let tenant_id = tx.tenant_id().to_owned();
    contacts::table
        .filter(contacts::id.eq(id))
        .filter(contacts::tenant_id.eq(tenant_id))
        .select(Contact::as_select())
        .first(tx.conn())
        .await
        .optional()?
        .ok_or_else(|| ConversationError::not_found("contact", id))
}
