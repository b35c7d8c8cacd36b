//! Authentication: machine keys (JWT HS256 or Basic) and publishable keys, resolved to a tenant.
//! The HTTP extractors in `http::auth` call into here before any handler code runs.

pub mod crypto;
pub mod jwt;
pub mod keys;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use secrecy::{ExposeSecret, SecretString};

use crate::auth::crypto::{MasterKey, constant_time_eq};
use crate::domain::{MachineKey, OrganizationId, PublishableKey};
use crate::storage::{StorageError, Store};

/// Why a credential was refused. Only logged (at debug); clients always get a plain 401.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("no credentials")]
    Missing,
    #[error("unsupported authorization scheme")]
    Scheme,
    #[error("malformed credentials")]
    Malformed,
    #[error("unknown key")]
    UnknownKey,
    #[error("wrong secret")]
    WrongSecret,
    #[error("token rejected: {0}")]
    Jwt(#[from] jwt::JwtError),
    #[error("stored secret cannot be opened")]
    Sealed,
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// A caller authenticated with an organization machine key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MachinePrincipal {
    pub organization_id: OrganizationId,
    pub access_key: String,
}

/// The AAD context that binds a machine key's sealed secret to its access key.
pub fn machine_secret_context(access_key: &str) -> String {
    format!("machine_key:{access_key}")
}

async fn machine_key_secret(
    store: &dyn Store,
    master: &MasterKey,
    access_key: &str,
) -> Result<(MachineKey, SecretString), AuthError> {
    if !keys::is_access_key(access_key) {
        return Err(AuthError::UnknownKey);
    }
    let key = store
        .find_machine_key(access_key)
        .await?
        .ok_or(AuthError::UnknownKey)?;
    let plain = master
        .open(&machine_secret_context(access_key), &key.secret_ciphertext)
        .map_err(|_| AuthError::Sealed)?;
    let secret = String::from_utf8(plain).map_err(|_| AuthError::Sealed)?;
    Ok((key, secret.into()))
}

/// Checks an `Authorization` header value: `Bearer <JWT>` or `Basic base64(access:secret)`.
pub async fn authenticate_machine(
    store: &dyn Store,
    master: &MasterKey,
    authorization: &str,
    now_unix: i64,
) -> Result<MachinePrincipal, AuthError> {
    let (scheme, value) = authorization
        .trim()
        .split_once(' ')
        .ok_or(AuthError::Malformed)?;
    let value = value.trim();
    if scheme.eq_ignore_ascii_case("bearer") {
        let token = jwt::parse(value)?;
        let (key, secret) = machine_key_secret(store, master, &token.kid).await?;
        token.verify(
            secret.expose_secret().as_bytes(),
            &key.organization_id.to_string(),
            now_unix,
        )?;
        Ok(MachinePrincipal {
            organization_id: key.organization_id,
            access_key: key.access_key,
        })
    } else if scheme.eq_ignore_ascii_case("basic") {
        let decoded = STANDARD.decode(value).map_err(|_| AuthError::Malformed)?;
        let decoded = String::from_utf8(decoded).map_err(|_| AuthError::Malformed)?;
        let (access, given) = decoded.split_once(':').ok_or(AuthError::Malformed)?;
        let (key, secret) = machine_key_secret(store, master, access).await?;
        if !constant_time_eq(secret.expose_secret().as_bytes(), given.as_bytes()) {
            return Err(AuthError::WrongSecret);
        }
        Ok(MachinePrincipal {
            organization_id: key.organization_id,
            access_key: key.access_key,
        })
    } else {
        Err(AuthError::Scheme)
    }
}

/// Checks an `X-Meshes-Publishable-Key` value against the active keys.
pub async fn authenticate_publishable(
    store: &dyn Store,
    public_key: &str,
) -> Result<PublishableKey, AuthError> {
    if !keys::is_publishable_key(public_key) {
        return Err(AuthError::Malformed);
    }
    store
        .find_publishable_key(public_key)
        .await?
        .ok_or(AuthError::UnknownKey)
}
