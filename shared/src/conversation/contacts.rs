//! Contacts: one per customer per inbox, found by the provider's id for them.
//!
//! A customer message finds or creates its contact with its session
//! (`super::sessions::of_senders`): the unique (inbox, external id) index decides who creates
//! the contact, and the row lock every path ends up holding serialises everything that follows
//! for this customer, so two first messages processed at once make one contact and one session.

use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use super::{Contact, ConversationError, Tx};
use crate::db::schema::contacts;

/// What a channel tells us about the customer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ContactInfo {
    /// WhatsApp chat id, Messenger PSID, email address, widget visitor id.
    pub external_id: String,
    pub name: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
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
