//! Read-only views of an account for tests and the control API: which contact has which tags
//! and list memberships.

use serde::{Deserialize, Serialize};

use super::data::Data;
use super::records::Contact;

impl Data {
    /// Who has which tags and list memberships.
    pub fn snapshot(&self) -> AccountState {
        AccountState {
            contacts: self
                .contacts
                .values()
                .map(|c| self.contact_state(c))
                .collect(),
            tags: self
                .tags
                .values()
                .map(|t| TagState {
                    id: t.id,
                    name: t.name.clone(),
                    tag_type: t.tag_type.clone(),
                })
                .collect(),
            lists: self
                .lists
                .values()
                .map(|l| ListState {
                    id: l.id,
                    name: l.name.clone(),
                })
                .collect(),
            fields: self
                .fields
                .values()
                .map(|f| FieldState {
                    id: f.id,
                    title: f.title.clone(),
                    perstag: f.perstag.clone(),
                })
                .collect(),
        }
    }

    /// One contact with its tag names and list memberships.
    pub fn contact_state(&self, c: &Contact) -> ContactState {
        ContactState {
            id: c.id,
            email: c.email.clone(),
            first_name: c.first_name.clone(),
            last_name: c.last_name.clone(),
            phone: c.phone.clone(),
            tags: self.tag_names_of(c.id),
            lists: self.memberships_of(c.id),
        }
    }

    /// The names of the contact's tags, in tag-id order.
    pub fn tag_names_of(&self, contact: u64) -> Vec<String> {
        self.contact_tags_of(contact)
            .map(|ct| self.tags[&ct.tag].name.clone())
            .collect()
    }

    /// The contact's list memberships, in list-id order.
    pub fn memberships_of(&self, contact: u64) -> Vec<ListMembership> {
        self.contact_lists_of(contact)
            .map(|cl| ListMembership {
                list_id: cl.list,
                list: self.lists[&cl.list].name.clone(),
                status: cl.status,
            })
            .collect()
    }
}

/// Who has which tags and list memberships in one account (control API `GET …/state`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountState {
    pub contacts: Vec<ContactState>,
    pub tags: Vec<TagState>,
    pub lists: Vec<ListState>,
    pub fields: Vec<FieldState>,
}

/// One contact with its tag names and list memberships.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContactState {
    pub id: u64,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    pub phone: String,
    /// Tag names.
    pub tags: Vec<String>,
    pub lists: Vec<ListMembership>,
}

/// One list membership of a contact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListMembership {
    pub list_id: u64,
    /// The list's name.
    pub list: String,
    /// 0 unconfirmed, 1 active, 2 unsubscribed, 3 bounced.
    pub status: u8,
}

/// A tag, briefly.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TagState {
    pub id: u64,
    pub name: String,
    pub tag_type: String,
}

/// A list, briefly.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListState {
    pub id: u64,
    pub name: String,
}

/// A custom field, briefly.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldState {
    pub id: u64,
    pub title: String,
    pub perstag: String,
}
