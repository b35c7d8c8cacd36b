//! The records of one account as stored, and what a write asks to change in them. The rules that
//! change them live in `data`.

use chrono::{DateTime, Utc};
use serde_json::Value;

/// A contact.
#[derive(Debug, Clone)]
pub struct Contact {
    pub id: u64,
    /// As first seen (matching uses the lower-cased form).
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    pub phone: String,
    pub hash: String,
    pub cdate: DateTime<Utc>,
    pub udate: DateTime<Utc>,
}

/// A custom field value of a contact.
#[derive(Debug, Clone)]
pub struct FieldValue {
    pub id: u64,
    pub contact: u64,
    pub field: u64,
    pub value: String,
    pub cdate: DateTime<Utc>,
    pub udate: DateTime<Utc>,
}

/// A tag.
#[derive(Debug, Clone)]
pub struct Tag {
    pub id: u64,
    pub name: String,
    /// `contact` or `template`.
    pub tag_type: String,
    pub description: String,
    pub cdate: DateTime<Utc>,
    pub udate: DateTime<Utc>,
    /// How many contacts carry it.
    pub subscribers: u64,
}

/// A list.
#[derive(Debug, Clone)]
pub struct List {
    pub id: u64,
    pub name: String,
    pub stringid: String,
    pub cdate: DateTime<Utc>,
    pub udate: DateTime<Utc>,
}

/// A contact ↔ tag association.
#[derive(Debug, Clone)]
pub struct ContactTag {
    pub id: u64,
    pub contact: u64,
    pub tag: u64,
    pub cdate: DateTime<Utc>,
    pub udate: DateTime<Utc>,
}

/// A contact's membership of a list.
#[derive(Debug, Clone)]
pub struct ContactList {
    pub id: u64,
    pub contact: u64,
    pub list: u64,
    /// 0 unconfirmed, 1 active, 2 unsubscribed, 3 bounced.
    pub status: u8,
    /// `status` exactly as the last write sent it (echoed by the write's answer).
    pub status_echo: Value,
    /// `sourceid` exactly as the last write sent it.
    pub sourceid_echo: Value,
    /// When the contact last became active.
    pub sdate: Option<DateTime<Utc>>,
    /// When the contact last unsubscribed.
    pub unsub_date: Option<DateTime<Utc>>,
    pub cdate: DateTime<Utc>,
    pub udate: DateTime<Utc>,
}

/// A custom contact field.
#[derive(Debug, Clone)]
pub struct Field {
    pub id: u64,
    pub title: String,
    pub perstag: String,
    /// `text`, `textarea`, `date`, `dropdown`, …
    pub kind: String,
    pub cdate: DateTime<Utc>,
}

/// The contact attributes a write supplies (`None` = leave as is).
#[derive(Debug, Clone, Default)]
pub struct ContactInput {
    pub email: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub phone: Option<String>,
    /// `(field id, value)`.
    pub field_values: Vec<(u64, String)>,
}

/// What a contactList write asks for.
#[derive(Debug, Clone)]
pub struct ContactListInput {
    /// 0 when the id was missing or not a number (no record has id 0).
    pub contact: u64,
    pub list: u64,
    /// `None` when the write omitted it.
    pub status: Option<u8>,
    pub status_echo: Value,
    pub sourceid_echo: Value,
}

/// Whether a write made a new record or changed an existing one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    Created,
    Updated,
}
