//! Key formats: machine keys (`mk_…` + secret) and publishable keys (`mesh_pub_<a>_<b>_<c>`).

use crate::auth::crypto::{random_bytes, random_token};
use crate::domain::WorkspaceId;

/// A freshly generated machine key pair. The secret is shown once, then only stored sealed.
pub struct GeneratedMachineKey {
    pub access_key: String,
    pub secret_key: secrecy::SecretString,
}

/// `mk_` + 24 URL-safe characters, and a 43-character URL-safe secret (32 random bytes).
pub fn generate_machine_key() -> GeneratedMachineKey {
    GeneratedMachineKey {
        access_key: format!("mk_{}", random_token(18)),
        secret_key: random_token(32).into(),
    }
}

/// `mesh_pub_<workspace id>_<8 hex>_<32 hex>`: the official events SDK checks this shape before sending.
pub fn generate_publishable_key(workspace: WorkspaceId) -> String {
    let hex = |bytes: Vec<u8>| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
    format!(
        "mesh_pub_{}_{}_{}",
        workspace.0,
        hex(random_bytes(4)),
        hex(random_bytes(16))
    )
}

fn all(s: &str, ok: impl Fn(char) -> bool) -> bool {
    !s.is_empty() && s.chars().all(ok)
}

/// `^mesh_pub_([A-Za-z0-9\-.]+)_([A-Za-z0-9\-.]+)_([^_]+)$`
///
/// ```
/// use handoff::auth::keys::is_publishable_key;
/// assert!(is_publishable_key("mesh_pub_01a2424e-92ab-7141_736a714c_94818eb0b225"));
/// assert!(!is_publishable_key("mesh_pub_only_two"));
/// ```
pub fn is_publishable_key(s: &str) -> bool {
    let Some(rest) = s.strip_prefix("mesh_pub_") else {
        return false;
    };
    let part = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '.';
    let mut it = rest.splitn(3, '_');
    match (it.next(), it.next(), it.next()) {
        (Some(a), Some(b), Some(c)) => all(a, part) && all(b, part) && all(c, |c| c != '_'),
        _ => false,
    }
}

fn url_safe(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-'
}

/// `^mk_[A-Za-z0-9_-]{22,}$`
pub fn is_access_key(s: &str) -> bool {
    s.strip_prefix("mk_")
        .is_some_and(|rest| rest.len() >= 22 && all(rest, url_safe))
}

/// `^[A-Za-z0-9_-]{43,}$`
pub fn is_secret_key(s: &str) -> bool {
    s.len() >= 43 && all(s, url_safe)
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    #[test]
    fn generated_keys_match_the_published_formats() {
        for _ in 0..50 {
            let mk = generate_machine_key();
            assert!(is_access_key(&mk.access_key), "{}", mk.access_key);
            assert!(is_secret_key(mk.secret_key.expose_secret()));
            let pk = generate_publishable_key(WorkspaceId::new_v7());
            assert!(is_publishable_key(&pk), "{pk}");
        }
    }

    #[test]
    fn publishable_key_format_is_checked_like_the_sdk_does() {
        let cases = [
            ("mesh_pub_a_b_c", true),
            ("mesh_pub_a-1.x_B2_c!#", true),
            ("mesh_pub_a_b", false),
            ("mesh_pub_a_b_c_d", false),
            ("mesh_pub__b_c", false),
            ("mesh_pub_a_b_", false),
            ("mesh_pub_a b_c_d", false),
            ("mesh_pk_a_b_c", false),
            ("", false),
        ];
        for (key, ok) in cases {
            assert_eq!(is_publishable_key(key), ok, "{key}");
        }
    }

    #[test]
    fn machine_key_formats_are_checked() {
        assert!(is_access_key("mk_abcdefghijklmnopqrstuv"));
        assert!(!is_access_key("mk_short"));
        assert!(!is_access_key("xx_abcdefghijklmnopqrstuv"));
        assert!(!is_access_key("mk_abcdefghijklmnopqrstu!"));
        assert!(is_secret_key(&"a".repeat(43)));
        assert!(!is_secret_key(&"a".repeat(42)));
        assert!(!is_secret_key(&format!("{}=", "a".repeat(43))));
    }
}
