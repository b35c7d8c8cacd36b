//! One account's records — contacts, custom field values, tags, lists, contactTags, contactLists,
//! custom fields — and the rules that change them (uniqueness, case-insensitive matching,
//! idempotent associations). No HTTP here beyond the error values the rules produce.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};

use super::errors::{AcError, FieldError};
use super::records::{
    Contact, ContactInput, ContactList, ContactListInput, ContactTag, Field, FieldValue, List, Tag,
    Written,
};

/// Every record of one account.
#[derive(Debug, Default)]
pub struct Data {
    last_id: LastIds,
    pub contacts: BTreeMap<u64, Contact>,
    /// Lower-cased email → contact id.
    emails: HashMap<String, u64>,
    pub field_values: BTreeMap<u64, FieldValue>,
    /// (contact, field) → field value id.
    field_value_index: BTreeMap<(u64, u64), u64>,
    pub tags: BTreeMap<u64, Tag>,
    /// (tag type, lower-cased name) → tag id: the `typetag` unique key.
    tag_names: HashMap<(String, String), u64>,
    pub lists: BTreeMap<u64, List>,
    pub contact_tags: BTreeMap<u64, ContactTag>,
    /// (contact, tag) → contactTag id.
    tag_pairs: BTreeMap<(u64, u64), u64>,
    pub contact_lists: BTreeMap<u64, ContactList>,
    /// (contact, list) → contactList id.
    list_pairs: BTreeMap<(u64, u64), u64>,
    pub fields: BTreeMap<u64, Field>,
}

#[derive(Debug, Default)]
struct LastIds {
    contact: u64,
    field_value: u64,
    tag: u64,
    list: u64,
    contact_tag: u64,
    contact_list: u64,
    field: u64,
}

fn next(counter: &mut u64) -> u64 {
    *counter += 1;
    *counter
}

/// A client-supplied id (path or body) as a record key; anything that is not a positive number
/// maps to 0, which no record has, so it reads as "not found".
pub fn record_id(text: &str) -> u64 {
    text.trim().parse().unwrap_or(0)
}

/// A plausible email address: one `@`, a non-empty local part, a dotted domain, no spaces.
pub fn is_valid_email(email: &str) -> bool {
    let Some((local, domain)) = email.split_once('@') else {
        return false;
    };
    let labels: Vec<&str> = domain.split('.').collect();
    !local.is_empty()
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        && !domain.contains('@')
        && labels.len() >= 2
        && labels
            .iter()
            .all(|l| !l.is_empty() && !l.starts_with('-') && !l.ends_with('-'))
        && labels.last().is_some_and(|tld| tld.len() >= 2)
}

impl Data {
    /// `POST /contact/sync`: update the contact with this email (any letter case) or create it.
    pub fn sync_contact(
        &mut self,
        input: ContactInput,
        now: DateTime<Utc>,
    ) -> Result<(u64, Written), AcError> {
        let email = Self::checked_email(input.email.as_deref())?;
        match self.emails.get(&email.to_lowercase()).copied() {
            Some(id) => {
                // The stored casing is the first one seen; only the other attributes change.
                self.apply(id, input, now);
                Ok((id, Written::Updated))
            }
            None => Ok((self.insert_contact(email, input, now), Written::Created)),
        }
    }

    /// `POST /contacts`: create, refusing an email that exists in any letter case.
    pub fn create_contact(
        &mut self,
        input: ContactInput,
        now: DateTime<Utc>,
    ) -> Result<u64, AcError> {
        let email = Self::checked_email(input.email.as_deref())?;
        if self.emails.contains_key(&email.to_lowercase()) {
            return Err(AcError::Validation(vec![FieldError::duplicate_email()]));
        }
        Ok(self.insert_contact(email, input, now))
    }

    /// `PUT /contacts/{id}`.
    pub fn update_contact(
        &mut self,
        id: u64,
        input: ContactInput,
        now: DateTime<Utc>,
    ) -> Result<(), AcError> {
        if let Some(email) = input.email.as_deref() {
            let email = Self::checked_email(Some(email))?;
            let key = email.to_lowercase();
            match self.emails.get(&key) {
                Some(&owner) if owner != id => {
                    return Err(AcError::Validation(vec![FieldError::duplicate_email()]));
                }
                Some(_) => {}
                None => {
                    let old = self.contacts[&id].email.to_lowercase();
                    self.emails.remove(&old);
                    self.emails.insert(key, id);
                }
            }
            // An explicit update sets the casing too (unlike sync, which keeps the first seen).
            self.contacts.get_mut(&id).expect("checked by caller").email = email;
        }
        self.apply(id, input, now);
        Ok(())
    }

    /// `DELETE /contacts/{id}`: the contact and everything hanging off it.
    pub fn delete_contact(&mut self, id: u64) -> bool {
        let Some(contact) = self.contacts.remove(&id) else {
            return false;
        };
        self.emails.remove(&contact.email.to_lowercase());
        for (_, fv) in take_range(&mut self.field_value_index, id) {
            self.field_values.remove(&fv);
        }
        for ((_, tag), ct) in take_range(&mut self.tag_pairs, id) {
            self.contact_tags.remove(&ct);
            if let Some(tag) = self.tags.get_mut(&tag) {
                tag.subscribers -= 1;
            }
        }
        for (_, cl) in take_range(&mut self.list_pairs, id) {
            self.contact_lists.remove(&cl);
        }
        true
    }

    /// The contact with this email, in any letter case.
    pub fn contact_by_email(&self, email: &str) -> Option<&Contact> {
        self.emails
            .get(&email.to_lowercase())
            .and_then(|id| self.contacts.get(id))
    }

    /// The contact's custom field values, by id.
    pub fn field_values_of(&self, contact: u64) -> impl Iterator<Item = &FieldValue> {
        self.field_value_index
            .range((contact, 0)..=(contact, u64::MAX))
            .map(|(_, id)| &self.field_values[id])
    }

    /// The contact's tag associations, by tag id.
    pub fn contact_tags_of(&self, contact: u64) -> impl Iterator<Item = &ContactTag> {
        self.tag_pairs
            .range((contact, 0)..=(contact, u64::MAX))
            .map(|(_, id)| &self.contact_tags[id])
    }

    /// The contact's list memberships, by list id.
    pub fn contact_lists_of(&self, contact: u64) -> impl Iterator<Item = &ContactList> {
        self.list_pairs
            .range((contact, 0)..=(contact, u64::MAX))
            .map(|(_, id)| &self.contact_lists[id])
    }

    /// Whether the contact carries the tag.
    pub fn has_tag(&self, contact: u64, tag: u64) -> bool {
        self.tag_pairs.contains_key(&(contact, tag))
    }

    /// The contact's membership of the list, if any.
    pub fn membership(&self, contact: u64, list: u64) -> Option<&ContactList> {
        self.list_pairs
            .get(&(contact, list))
            .map(|id| &self.contact_lists[id])
    }

    /// `POST /tags`: names are unique per tag type, compared case-insensitively (MySQL collation).
    pub fn create_tag(
        &mut self,
        name: &str,
        tag_type: &str,
        description: &str,
        now: DateTime<Utc>,
    ) -> Result<u64, AcError> {
        let key = (tag_type.to_string(), name.to_lowercase());
        if self.tag_names.contains_key(&key) {
            return Err(duplicate_tag(tag_type, name));
        }
        let id = next(&mut self.last_id.tag);
        self.tag_names.insert(key, id);
        self.tags.insert(
            id,
            Tag {
                id,
                name: name.to_string(),
                tag_type: tag_type.to_string(),
                description: description.to_string(),
                cdate: now,
                udate: now,
                subscribers: 0,
            },
        );
        Ok(id)
    }

    /// `PUT /tags/{id}` (the caller checked the tag exists).
    pub fn update_tag(
        &mut self,
        id: u64,
        name: Option<&str>,
        tag_type: Option<&str>,
        description: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<(), AcError> {
        let tag = &self.tags[&id];
        let new_name = name.unwrap_or(&tag.name).to_string();
        let new_type = tag_type.unwrap_or(&tag.tag_type).to_string();
        let old_key = (tag.tag_type.clone(), tag.name.to_lowercase());
        let new_key = (new_type.clone(), new_name.to_lowercase());
        if new_key != old_key {
            if self.tag_names.contains_key(&new_key) {
                return Err(duplicate_tag(&new_type, &new_name));
            }
            self.tag_names.remove(&old_key);
            self.tag_names.insert(new_key, id);
        }
        let tag = self.tags.get_mut(&id).expect("checked above");
        tag.name = new_name;
        tag.tag_type = new_type;
        if let Some(d) = description {
            tag.description = d.to_string();
        }
        tag.udate = now;
        Ok(())
    }

    /// `DELETE /tags/{id}`: the tag and its associations.
    pub fn delete_tag(&mut self, id: u64) -> bool {
        let Some(tag) = self.tags.remove(&id) else {
            return false;
        };
        self.tag_names
            .remove(&(tag.tag_type, tag.name.to_lowercase()));
        let gone: Vec<(u64, u64)> = self
            .tag_pairs
            .keys()
            .filter(|(_, t)| *t == id)
            .copied()
            .collect();
        for pair in gone {
            if let Some(ct) = self.tag_pairs.remove(&pair) {
                self.contact_tags.remove(&ct);
            }
        }
        true
    }

    /// `POST /contactTags`: one association per (contact, tag); a repeat returns the existing one.
    pub fn add_contact_tag(
        &mut self,
        contact: u64,
        tag: u64,
        now: DateTime<Utc>,
    ) -> Result<(u64, Written), AcError> {
        if !self.contacts.contains_key(&contact) {
            return Err(AcError::RelatedNotFound("Contact not found"));
        }
        if !self.tags.contains_key(&tag) {
            return Err(AcError::RelatedNotFound("Tag not found"));
        }
        if let Some(&id) = self.tag_pairs.get(&(contact, tag)) {
            return Ok((id, Written::Updated));
        }
        let id = next(&mut self.last_id.contact_tag);
        self.tag_pairs.insert((contact, tag), id);
        self.contact_tags.insert(
            id,
            ContactTag {
                id,
                contact,
                tag,
                cdate: now,
                udate: now,
            },
        );
        self.tags.get_mut(&tag).expect("checked above").subscribers += 1;
        Ok((id, Written::Created))
    }

    /// `DELETE /contactTags/{id}`.
    pub fn delete_contact_tag(&mut self, id: u64) -> bool {
        let Some(ct) = self.contact_tags.remove(&id) else {
            return false;
        };
        self.tag_pairs.remove(&(ct.contact, ct.tag));
        if let Some(tag) = self.tags.get_mut(&ct.tag) {
            tag.subscribers -= 1;
        }
        true
    }

    /// Seeds a list.
    pub fn create_list(&mut self, name: &str, stringid: Option<&str>, now: DateTime<Utc>) -> u64 {
        let id = next(&mut self.last_id.list);
        let stringid = stringid.map_or_else(|| slug(name), str::to_string);
        self.lists.insert(
            id,
            List {
                id,
                name: name.to_string(),
                stringid,
                cdate: now,
                udate: now,
            },
        );
        id
    }

    /// `POST /contactLists`: one membership per (contact, list); a repeat updates it in place.
    pub fn set_contact_list(
        &mut self,
        input: ContactListInput,
        now: DateTime<Utc>,
    ) -> Result<(u64, Written), AcError> {
        let mut errors = Vec::new();
        if !self.lists.contains_key(&input.list) {
            errors.push(FieldError::list_not_exist());
        }
        if !self.contacts.contains_key(&input.contact) {
            errors.push(FieldError::contact_not_exist());
        }
        if !errors.is_empty() {
            return Err(AcError::Validation(errors));
        }
        if input.status.is_some_and(|s| s > 3) {
            return Err(AcError::Validation(vec![FieldError::invalid_list_status()]));
        }
        let pair = (input.contact, input.list);
        if let Some(&id) = self.list_pairs.get(&pair) {
            let row = self.contact_lists.get_mut(&id).expect("indexed");
            if let Some(status) = input.status {
                if status == 1 && row.status != 1 {
                    row.sdate = Some(now);
                }
                if status == 2 && row.status != 2 {
                    row.unsub_date = Some(now);
                }
                row.status = status;
            }
            row.status_echo = input.status_echo;
            row.sourceid_echo = input.sourceid_echo;
            row.udate = now;
            return Ok((id, Written::Updated));
        }
        let status = input.status.unwrap_or(1);
        let id = next(&mut self.last_id.contact_list);
        self.list_pairs.insert(pair, id);
        self.contact_lists.insert(
            id,
            ContactList {
                id,
                contact: input.contact,
                list: input.list,
                status,
                status_echo: input.status_echo,
                sourceid_echo: input.sourceid_echo,
                sdate: (status == 1).then_some(now),
                unsub_date: (status == 2).then_some(now),
                cdate: now,
                udate: now,
            },
        );
        Ok((id, Written::Created))
    }

    /// Seeds a custom field.
    pub fn create_field(
        &mut self,
        title: &str,
        perstag: Option<&str>,
        kind: Option<&str>,
        now: DateTime<Utc>,
    ) -> u64 {
        let id = next(&mut self.last_id.field);
        let perstag = perstag.map_or_else(
            || slug(title).replace('-', "_").to_uppercase(),
            str::to_string,
        );
        self.fields.insert(
            id,
            Field {
                id,
                title: title.to_string(),
                perstag,
                kind: kind.unwrap_or("text").to_string(),
                cdate: now,
            },
        );
        id
    }

    fn checked_email(email: Option<&str>) -> Result<String, AcError> {
        match email.map(str::trim) {
            None | Some("") => Err(AcError::Validation(vec![FieldError::missing_email()])),
            Some(e) if !is_valid_email(e) => {
                Err(AcError::Validation(vec![FieldError::invalid_email()]))
            }
            Some(e) => Ok(e.to_string()),
        }
    }

    fn insert_contact(&mut self, email: String, input: ContactInput, now: DateTime<Utc>) -> u64 {
        let id = next(&mut self.last_id.contact);
        self.emails.insert(email.to_lowercase(), id);
        self.contacts.insert(
            id,
            Contact {
                id,
                email,
                first_name: String::new(),
                last_name: String::new(),
                phone: String::new(),
                hash: uuid::Uuid::new_v4().simple().to_string(),
                cdate: now,
                udate: now,
            },
        );
        self.apply(id, input, now);
        id
    }

    /// Overwrites the supplied names and phone and upserts the supplied field values. The email
    /// is the callers' business (sync keeps the first-seen casing, update replaces it).
    fn apply(&mut self, id: u64, input: ContactInput, now: DateTime<Utc>) {
        let contact = self
            .contacts
            .get_mut(&id)
            .expect("caller checked the contact");
        for (slot, value) in [
            (&mut contact.first_name, input.first_name),
            (&mut contact.last_name, input.last_name),
            (&mut contact.phone, input.phone),
        ] {
            if let Some(v) = value {
                *slot = v;
            }
        }
        contact.udate = now;
        for (field, value) in input.field_values {
            match self.field_value_index.get(&(id, field)) {
                Some(fv) => {
                    let fv = self.field_values.get_mut(fv).expect("indexed");
                    fv.value = value;
                    fv.udate = now;
                }
                None => {
                    let fv = next(&mut self.last_id.field_value);
                    self.field_value_index.insert((id, field), fv);
                    self.field_values.insert(
                        fv,
                        FieldValue {
                            id: fv,
                            contact: id,
                            field,
                            value,
                            cdate: now,
                            udate: now,
                        },
                    );
                }
            }
        }
    }
}

/// Removes and returns every `(contact, x)` entry of a pair index.
fn take_range(index: &mut BTreeMap<(u64, u64), u64>, contact: u64) -> Vec<((u64, u64), u64)> {
    let keys: Vec<(u64, u64)> = index
        .range((contact, 0)..=(contact, u64::MAX))
        .map(|(k, _)| *k)
        .collect();
    keys.into_iter()
        .map(|k| (k, index.remove(&k).expect("just listed")))
        .collect()
}

/// The raw MySQL error ActiveCampaign leaks for a duplicate tag (family F).
fn duplicate_tag(tag_type: &str, name: &str) -> AcError {
    AcError::Database(format!(
        "Duplicate entry '{tag_type}-{name}' for key 'typetag'"
    ))
}

/// `Awesome List!` → `awesome-list`.
fn slug(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    out.trim_end_matches('-').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn input(email: &str) -> ContactInput {
        ContactInput {
            email: Some(email.into()),
            ..ContactInput::default()
        }
    }

    #[test]
    fn emails_are_checked_loosely_like_a_web_form() {
        for ok in ["a@b.co", "first.last+tag@sub.example.com", "A@B.IO"] {
            assert!(is_valid_email(ok), "{ok}");
        }
        for bad in [
            "",
            "a",
            "a@",
            "@b.com",
            "a@b",
            "a b@c.com",
            "a@b.c",
            "a@@b.com",
            "a@.b.com",
            ".a@b.com",
        ] {
            assert!(!is_valid_email(bad), "{bad}");
        }
    }

    #[test]
    fn sync_matches_emails_case_insensitively_and_keeps_the_first_casing() {
        let mut d = Data::default();
        let now = Utc::now();
        let (id, w) = d.sync_contact(input("Alex@Example.com"), now).unwrap();
        assert_eq!(w, Written::Created);
        let (again, w) = d.sync_contact(input("alex@EXAMPLE.com"), now).unwrap();
        assert_eq!((again, w), (id, Written::Updated));
        assert_eq!(d.contacts[&id].email, "Alex@Example.com");
    }

    #[test]
    fn deleting_a_contact_removes_its_associations_and_tag_counts() {
        let mut d = Data::default();
        let now = Utc::now();
        let (c, _) = d.sync_contact(input("a@b.co"), now).unwrap();
        let t = d.create_tag("VIP", "contact", "", now).unwrap();
        let l = d.create_list("News", None, now);
        d.add_contact_tag(c, t, now).unwrap();
        d.set_contact_list(
            ContactListInput {
                contact: c,
                list: l,
                status: Some(1),
                status_echo: Value::from(1),
                sourceid_echo: Value::from(0),
            },
            now,
        )
        .unwrap();
        assert_eq!(d.tags[&t].subscribers, 1);
        assert!(d.delete_contact(c));
        assert_eq!(d.tags[&t].subscribers, 0);
        assert!(d.contact_tags.is_empty() && d.contact_lists.is_empty());
        assert!(d.contact_by_email("a@b.co").is_none());
    }

    #[test]
    fn list_string_ids_are_slugs() {
        assert_eq!(slug("Awesome List!"), "awesome-list");
        assert_eq!(slug("  Onboarding -- 2024 "), "onboarding-2024");
    }
}
