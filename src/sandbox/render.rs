//! Records as ActiveCampaign writes them: string ids, the account's UTC offset in `cdate`/`udate`,
//! `"YYYY-MM-DD HH:MM:SS"` timestamps, absolute `links`, and the many constant fields real answers
//! carry (activecampaign-api.md §2–§3, from recorded traffic).

use chrono::{DateTime, FixedOffset, Utc};
use serde_json::{Value, json};

use super::data::Data;
use super::records::{Contact, ContactList, ContactTag, Field, FieldValue, List, Tag};

/// The account's time zone: recorded accounts answer in US Central (`-05:00` in summer).
fn offset() -> FixedOffset {
    FixedOffset::west_opt(5 * 3600).expect("valid offset")
}

/// `2020-06-09T21:14:32-05:00`.
pub fn iso(t: DateTime<Utc>) -> String {
    t.with_timezone(&offset())
        .format("%Y-%m-%dT%H:%M:%S%:z")
        .to_string()
}

/// `2020-06-09 21:14:32` in the account's time zone.
fn local(t: DateTime<Utc>) -> String {
    t.with_timezone(&offset())
        .format("%Y-%m-%d %H:%M:%S")
        .to_string()
}

/// `2020-06-10 02:14:32`.
fn utc(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S").to_string()
}

/// Renders one account's records; `api` is the account's `<api_url>/api/3`, the base of `links`.
pub struct Render<'a> {
    pub api: &'a str,
}

impl Render<'_> {
    /// A contact as list items and side-loads show it (`GET /contacts`, `contacts:[…]`).
    pub fn contact_item(&self, c: &Contact) -> Value {
        let api = self.api;
        let id = c.id;
        json!({
            "cdate": iso(c.cdate),
            "email": c.email,
            "phone": c.phone,
            "firstName": c.first_name,
            "lastName": c.last_name,
            "orgid": "0",
            "orgname": "",
            "segmentio_id": "",
            "bounced_hard": "0",
            "bounced_soft": "0",
            "bounced_date": null,
            "ip": "0",
            "ua": null,
            "hash": c.hash,
            "socialdata_lastcheck": null,
            "email_local": "",
            "email_domain": "",
            "sentcnt": "0",
            "rating_tstamp": null,
            "gravatar": "0",
            "deleted": "0",
            "anonymized": "0",
            "adate": null,
            "udate": iso(c.udate),
            "edate": null,
            "deleted_at": null,
            "created_utc_timestamp": utc(c.cdate),
            "updated_utc_timestamp": utc(c.udate),
            "created_timestamp": local(c.cdate),
            "updated_timestamp": local(c.udate),
            "created_by": null,
            "updated_by": null,
            "scoreValues": [],
            "accountContacts": [],
            "links": contact_links(api, id),
            "id": id.to_string(),
            "organization": null,
        })
    }

    /// A contact as `GET /contacts/{id}` and a sync of an existing email show it: the list item
    /// plus the id arrays of its related records.
    pub fn contact_full(&self, c: &Contact, data: &Data) -> Value {
        let mut v = self.contact_item(c);
        v["contactAutomations"] = json!([]);
        v["contactLists"] = ids(data.contact_lists_of(c.id).map(|cl| cl.id));
        v["deals"] = json!([]);
        v["fieldValues"] = ids(data.field_values_of(c.id).map(|fv| fv.id));
        v["geoIps"] = json!([]);
        v
    }

    /// A contact as the 201 of a create or a sync of a new email shows it (a shorter record).
    pub fn contact_created(&self, c: &Contact, data: &Data) -> Value {
        json!({
            "email": c.email,
            "phone": c.phone,
            "firstName": c.first_name,
            "lastName": c.last_name,
            "email_empty": false,
            "cdate": iso(c.cdate),
            "udate": iso(c.udate),
            "orgid": "",
            "orgname": "",
            "links": contact_links(self.api, c.id),
            "hash": c.hash,
            "fieldValues": ids(data.field_values_of(c.id).map(|fv| fv.id)),
            "id": c.id.to_string(),
            "organization": "",
        })
    }

    /// A custom field value.
    pub fn field_value(&self, fv: &FieldValue) -> Value {
        let api = self.api;
        let id = fv.id;
        json!({
            "contact": fv.contact.to_string(),
            "field": fv.field.to_string(),
            "value": fv.value,
            "cdate": iso(fv.cdate),
            "udate": iso(fv.udate),
            "created_by": null,
            "updated_by": null,
            "links": {
                "owner": format!("{api}/fieldValues/{id}/owner"),
                "field": format!("{api}/fieldValues/{id}/field"),
            },
            "id": id.to_string(),
            "owner": fv.contact.to_string(),
        })
    }

    /// A tag as collections and `GET /tags/{id}` show it.
    pub fn tag(&self, t: &Tag) -> Value {
        json!({
            "tagType": t.tag_type,
            "tag": t.name,
            "description": t.description,
            "subscriber_count": t.subscribers.to_string(),
            "cdate": iso(t.cdate),
            "created_timestamp": local(t.cdate),
            "updated_timestamp": local(t.udate),
            "created_by": null,
            "updated_by": null,
            "links": tag_links(self.api, t.id),
            "id": t.id.to_string(),
        })
    }

    /// A tag as the 201 of `POST /tags` shows it.
    pub fn tag_created(&self, t: &Tag) -> Value {
        json!({
            "tag": t.name,
            "description": t.description,
            "tagType": t.tag_type,
            "cdate": iso(t.cdate),
            "links": tag_links(self.api, t.id),
            "id": t.id.to_string(),
        })
    }

    /// A contactTag as `GET /contacts/{id}/contactTags` shows it.
    pub fn contact_tag(&self, ct: &ContactTag) -> Value {
        let mut v = self.contact_tag_created(ct);
        v["created_timestamp"] = json!(local(ct.cdate));
        v["updated_timestamp"] = json!(local(ct.udate));
        v["created_by"] = Value::Null;
        v["updated_by"] = Value::Null;
        v
    }

    /// A contactTag as the answer of `POST /contactTags` shows it.
    pub fn contact_tag_created(&self, ct: &ContactTag) -> Value {
        let api = self.api;
        let id = ct.id;
        json!({
            "contact": ct.contact.to_string(),
            "tag": ct.tag.to_string(),
            "cdate": iso(ct.cdate),
            "links": {
                "tag": format!("{api}/contactTags/{id}/tag"),
                "contact": format!("{api}/contactTags/{id}/contact"),
            },
            "id": id.to_string(),
        })
    }

    /// A list.
    pub fn list(&self, l: &List) -> Value {
        let api = self.api;
        let id = l.id;
        // Two halves: one `json!` this size exceeds the macro recursion limit.
        let mut v = json!({
            "stringid": l.stringid,
            "userid": "1",
            "name": l.name,
            "cdate": iso(l.cdate),
            "p_use_tracking": "1",
            "p_use_analytics_read": "0",
            "p_use_analytics_link": "0",
            "p_use_twitter": "0",
            "p_use_facebook": "0",
            "p_embed_image": "1",
            "p_use_captcha": "1",
            "send_last_broadcast": "0",
            "private": "0",
            "analytics_domains": null,
            "analytics_source": "",
            "analytics_ua": "",
            "twitter_token": "",
            "twitter_token_secret": "",
            "facebook_session": null,
            "carboncopy": null,
            "subscription_notify": null,
            "unsubscription_notify": null,
            "require_name": "0",
            "get_unsubscribe_reason": "0",
        });
        let rest = json!({
            "to_name": "Subscriber",
            "optinoptout": "1",
            "sender_name": "",
            "sender_addr1": "",
            "sender_addr2": "",
            "sender_city": "",
            "sender_state": "",
            "sender_zip": "",
            "sender_country": "",
            "sender_phone": "",
            "sender_url": "https://example.com",
            "sender_reminder": "You signed up on our website.",
            "fulladdress": "",
            "optinmessageid": "0",
            "optoutconf": "0",
            "deletestamp": null,
            "udate": iso(l.udate),
            "created_timestamp": local(l.cdate),
            "updated_timestamp": local(l.udate),
            "created_by": null,
            "updated_by": null,
            "links": {
                "contactGoalLists": format!("{api}/lists/{id}/contactGoalLists"),
                "user": format!("{api}/lists/{id}/user"),
                "addressLists": format!("{api}/lists/{id}/addressLists"),
            },
            "id": id.to_string(),
            "user": null,
        });
        if let (Some(v), Value::Object(rest)) = (v.as_object_mut(), rest) {
            v.extend(rest);
        }
        v
    }

    /// A contactList as the answer of `POST /contactLists` shows it: `status` and `sourceid`
    /// echo what the write sent, whatever their JSON type.
    pub fn contact_list_written(&self, cl: &ContactList, contact: &Contact) -> Value {
        let mut v = self.contact_list_common(cl, contact);
        v["status"] = cl.status_echo.clone();
        v["sourceid"] = cl.sourceid_echo.clone();
        v
    }

    /// A contactList as `GET /contacts/{id}/contactLists` shows it: `status` is a string.
    pub fn contact_list(&self, cl: &ContactList, contact: &Contact) -> Value {
        let mut v = self.contact_list_common(cl, contact);
        v["status"] = json!(cl.status.to_string());
        v["sourceid"] = json!(text_of(&cl.sourceid_echo).unwrap_or_else(|| "0".into()));
        v["udate"] = json!(cl.unsub_date.map(iso));
        v["created_timestamp"] = json!(local(cl.cdate));
        v["updated_timestamp"] = json!(local(cl.udate));
        v["created_by"] = Value::Null;
        v["updated_by"] = Value::Null;
        v
    }

    fn contact_list_common(&self, cl: &ContactList, contact: &Contact) -> Value {
        let api = self.api;
        let id = cl.id;
        let link = |rel: &str| format!("{api}/contactLists/{id}/{rel}");
        json!({
            "contact": cl.contact.to_string(),
            "list": cl.list.to_string(),
            "form": null,
            "seriesid": "0",
            "sdate": cl.sdate.map(iso),
            "status": null,
            "responder": "1",
            "sync": "0",
            "unsubreason": "",
            "campaign": null,
            "message": null,
            "first_name": contact.first_name,
            "last_name": contact.last_name,
            "ip4Sub": "0",
            "sourceid": null,
            "autosyncLog": null,
            "ip4_last": "0",
            "ip4Unsub": "0",
            "unsubscribeAutomation": null,
            "links": {
                "automation": link("automation"),
                "list": link("list"),
                "contact": link("contact"),
                "form": link("form"),
                "autosyncLog": link("autosyncLog"),
                "campaign": link("campaign"),
                "unsubscribeAutomation": link("unsubscribeAutomation"),
                "message": link("message"),
            },
            "id": id.to_string(),
            "automation": null,
        })
    }

    /// A custom field.
    pub fn field(&self, f: &Field) -> Value {
        let api = self.api;
        let id = f.id;
        json!({
            "title": f.title,
            "descript": "",
            "type": f.kind,
            "isrequired": "0",
            "perstag": f.perstag,
            "defval": "",
            "show_in_list": "0",
            "rows": "0",
            "cols": "0",
            "visible": "1",
            "service": "",
            "ordernum": id.to_string(),
            "cdate": iso(f.cdate),
            "udate": iso(f.cdate),
            "created_timestamp": local(f.cdate),
            "updated_timestamp": local(f.cdate),
            "created_by": null,
            "updated_by": null,
            "options": [],
            "relations": [],
            "links": {
                "options": format!("{api}/fields/{id}/options"),
                "relations": format!("{api}/fields/{id}/relations"),
            },
            "id": id.to_string(),
        })
    }
}

/// Ids as the string array ActiveCampaign uses for related records.
fn ids(ids: impl Iterator<Item = u64>) -> Value {
    Value::Array(ids.map(|id| Value::String(id.to_string())).collect())
}

/// A number or string as text.
fn text_of(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn contact_links(api: &str, id: u64) -> Value {
    let mut links = serde_json::Map::new();
    for rel in [
        "bounceLogs",
        "contactAutomations",
        "contactData",
        "contactGoals",
        "contactLists",
        "contactLogs",
        "contactTags",
        "contactDeals",
        "deals",
        "fieldValues",
        "geoIps",
        "notes",
        "organization",
        "plusAppend",
        "trackingLogs",
        "scoreValues",
        "accountContacts",
        "automationEntryCounts",
    ] {
        links.insert(rel.into(), json!(format!("{api}/contacts/{id}/{rel}")));
    }
    Value::Object(links)
}

fn tag_links(api: &str, id: u64) -> Value {
    json!({ "contactGoalTags": format!("{api}/tags/{id}/contactGoalTags") })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn dates_carry_the_account_offset_and_timestamps_do_not() {
        let t = Utc.with_ymd_and_hms(2020, 6, 10, 2, 14, 32).unwrap();
        assert_eq!(iso(t), "2020-06-09T21:14:32-05:00");
        assert_eq!(local(t), "2020-06-09 21:14:32");
        assert_eq!(utc(t), "2020-06-10 02:14:32");
    }
}
