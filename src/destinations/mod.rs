//! Destinations: outbound network policy and the ActiveCampaign integration.

pub mod activecampaign;
pub mod net;

/// One integration in the catalog (`GET /integrations`).
pub struct Integration {
    pub kind: &'static str,
    pub name: &'static str,
    /// (key, label, type, required)
    pub fields: &'static [(&'static str, &'static str, &'static str, bool)],
    /// (key, label, noun)
    pub actions: &'static [(&'static str, &'static str, &'static str)],
}

/// Every supported integration.
pub const CATALOG: &[Integration] = &[Integration {
    kind: activecampaign::TYPE,
    name: "ActiveCampaign",
    fields: &[
        ("api_url", "API URL", "url", true),
        ("api_key", "API Key", "secret", true),
    ],
    actions: &[
        ("add_tag", "Add Tag", "tag"),
        ("remove_tag", "Remove Tag", "tag"),
        ("add_to_list", "Add to List", "list"),
        ("remove_from_list", "Remove from List", "list"),
        ("sync_contact", "Sync Contact", "contact"),
    ],
}];
