//! The contact an event stands for, read from its payload's well-known keys: `email` (required),
//! `first_name`, `last_name`, `phone` (strings or numbers), and `name` split into first and last
//! name when those are absent. Checked before any call, so a bad payload costs no request.

use serde_json::{Map, Value, json};

/// Longest email accepted (RFC 5321 path limit).
pub const MAX_EMAIL_LEN: usize = 254;

/// Why a payload does not name a contact. Messages name the field, never its value.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ContactError {
    #[error("payload.email is missing")]
    MissingEmail,
    #[error("payload.email is not a valid email address")]
    InvalidEmail,
}

/// The contact fields sent to `POST /contact/sync`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContactFields {
    pub email: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub phone: Option<String>,
}

/// A cheap plausibility check; ActiveCampaign stays the authority (it answers 422 `email_invalid`).
/// One `@`, non-empty local part and domain, no whitespace or control characters, bounded length.
pub fn plausible_email(email: &str) -> bool {
    let Some((local, domain)) = email.split_once('@') else {
        return false;
    };
    email.len() <= MAX_EMAIL_LEN
        && !local.is_empty()
        && !domain.is_empty()
        && !domain.contains('@')
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// A text field: a non-blank string (trimmed) or a number; anything else counts as absent.
fn text(payload: &Map<String, Value>, key: &str) -> Option<String> {
    match payload.get(key)? {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

impl ContactFields {
    /// Reads the contact from an event payload.
    pub fn from_payload(payload: &Value) -> Result<Self, ContactError> {
        let obj = payload.as_object().ok_or(ContactError::MissingEmail)?;
        let email = match obj.get("email") {
            None | Some(Value::Null) => return Err(ContactError::MissingEmail),
            Some(Value::String(s)) if s.trim().is_empty() => {
                return Err(ContactError::MissingEmail);
            }
            Some(Value::String(s)) => s.trim().to_owned(),
            Some(_) => return Err(ContactError::InvalidEmail),
        };
        if !plausible_email(&email) {
            return Err(ContactError::InvalidEmail);
        }
        let mut first_name = text(obj, "first_name");
        let mut last_name = text(obj, "last_name");
        if first_name.is_none() || last_name.is_none() {
            if let Some(name) = text(obj, "name") {
                // "Ada King Lovelace" → first "Ada", last "King Lovelace"; each only fills a gap.
                let (first, last) = match name.split_once(char::is_whitespace) {
                    Some((f, l)) => (f.to_owned(), Some(l.trim().to_owned())),
                    None => (name, None),
                };
                first_name = first_name.or(Some(first));
                last_name = last_name.or(last.filter(|l| !l.is_empty()));
            }
        }
        Ok(Self {
            email,
            first_name,
            last_name,
            phone: text(obj, "phone"),
        })
    }

    /// The `POST /contact/sync` body: `{"contact":{email, firstName?, lastName?, phone?}}`.
    pub fn sync_body(&self) -> Value {
        let mut c = Map::new();
        c.insert("email".into(), json!(self.email));
        let optional = [
            ("firstName", &self.first_name),
            ("lastName", &self.last_name),
            ("phone", &self.phone),
        ];
        for (key, value) in optional {
            if let Some(v) = value {
                c.insert(key.into(), json!(v));
            }
        }
        json!({ "contact": c })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_field_is_read_and_numbers_become_text() {
        let c = ContactFields::from_payload(&json!({
            "email": " alex@northstar.io ", "first_name": "Alex", "last_name": "Doe", "phone": 5551234
        }))
        .unwrap();
        assert_eq!(c.email, "alex@northstar.io");
        assert_eq!(c.first_name.as_deref(), Some("Alex"));
        assert_eq!(c.last_name.as_deref(), Some("Doe"));
        assert_eq!(c.phone.as_deref(), Some("5551234"));
        assert_eq!(
            c.sync_body(),
            json!({"contact": {"email": "alex@northstar.io", "firstName": "Alex",
                "lastName": "Doe", "phone": "5551234"}})
        );
    }

    #[test]
    fn name_fills_only_the_missing_parts() {
        let c =
            ContactFields::from_payload(&json!({"email": "a@b.co", "name": "Ada King Lovelace"}))
                .unwrap();
        assert_eq!(c.first_name.as_deref(), Some("Ada"));
        assert_eq!(c.last_name.as_deref(), Some("King Lovelace"));
        let c = ContactFields::from_payload(
            &json!({"email": "a@b.co", "first_name": "Augusta", "name": "Ada Lovelace"}),
        )
        .unwrap();
        assert_eq!(c.first_name.as_deref(), Some("Augusta"));
        assert_eq!(c.last_name.as_deref(), Some("Lovelace"));
        let c = ContactFields::from_payload(&json!({"email": "a@b.co", "name": "Cher"})).unwrap();
        assert_eq!(c.first_name.as_deref(), Some("Cher"));
        assert_eq!(c.last_name, None);
        assert_eq!(
            c.sync_body(),
            json!({"contact": {"email": "a@b.co", "firstName": "Cher"}})
        );
    }

    #[test]
    fn odd_field_types_count_as_absent() {
        let c = ContactFields::from_payload(&json!({"email": "a@b.co", "first_name": {"x": 1},
            "last_name": null, "phone": ["1"], "name": true}))
        .unwrap();
        assert_eq!((c.first_name, c.last_name, c.phone), (None, None, None));
    }

    #[test]
    fn a_missing_or_bad_email_is_refused() {
        for p in [
            json!({}),
            json!({"email": null}),
            json!({"email": "  "}),
            json!([1]),
            json!("x"),
        ] {
            assert_eq!(
                ContactFields::from_payload(&p),
                Err(ContactError::MissingEmail),
                "{p}"
            );
        }
        let long = format!("{}@b.co", "a".repeat(300));
        for p in [
            json!({"email": 42}),
            json!({"email": "nobody"}),
            json!({"email": "@b.co"}),
            json!({"email": "a@"}),
            json!({"email": "a@b@c.co"}),
            json!({"email": "a b@c.co"}),
            json!({"email": long}),
        ] {
            assert_eq!(
                ContactFields::from_payload(&p),
                Err(ContactError::InvalidEmail),
                "{p}"
            );
        }
    }
}
