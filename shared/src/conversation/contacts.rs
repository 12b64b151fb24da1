//! Contacts: one per customer per inbox, found by the provider's id for them.
//!
//! Find-or-create is `INSERT … ON CONFLICT DO NOTHING` then a locking read: the unique
//! (inbox, external id) index decides who creates the contact, and the row lock that both
//! paths end up holding serialises everything that follows for this customer (opening their
//! session), so two first messages processed at once make one contact and one session.

use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use super::{Contact, ConversationError, Tx};
use crate::{db::schema::contacts, inboxes::new_id};

/// What a channel tells us about the customer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ContactInfo {
    /// WhatsApp chat id, Messenger PSID, email address, widget visitor id.
    pub external_id: String,
    pub name: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
}

/// The contact for `info` in `inbox_id`, created if new, locked for the rest of the transaction.
/// Returns whether it was created.
pub async fn find_or_create(
    tx: &mut Tx,
    inbox_id: &str,
    info: &ContactInfo,
) -> Result<(Contact, bool), ConversationError> {
    if info.external_id.is_empty() {
        return Err(ConversationError::invalid("sender", "is empty"));
    }
    let tenant_id = tx.tenant_id().to_owned();
    let inserted: Option<Contact> = diesel::insert_into(contacts::table)
        .values((
            contacts::id.eq(new_id("con")),
            contacts::tenant_id.eq(&tenant_id),
            contacts::inbox_id.eq(inbox_id),
            contacts::external_id.eq(&info.external_id),
            contacts::name.eq(&info.name),
            contacts::email.eq(&info.email),
            contacts::phone.eq(&info.phone),
        ))
        .on_conflict((contacts::inbox_id, contacts::external_id))
        .do_nothing()
        .returning(Contact::as_returning())
        .get_result(tx.conn())
        .await
        .optional()?;
    if let Some(contact) = inserted {
        return Ok((contact, true));
    }
    let existing = contacts::table
        .filter(contacts::inbox_id.eq(inbox_id))
        .filter(contacts::external_id.eq(&info.external_id))
        .filter(contacts::tenant_id.eq(&tenant_id))
        .select(Contact::as_select())
        .for_no_key_update()
        .first(tx.conn())
        .await?;
    Ok((existing, false))
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
