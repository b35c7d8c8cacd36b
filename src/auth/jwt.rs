//! Machine-key JWTs: HS256, signed with the secret key, `kid` = access key, short-lived.
//! Clients mint a fresh token per request; every check listed in API.md is made here.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::hmac;
use serde::{Deserialize, Serialize};

/// The audience every token must carry.
pub const AUDIENCE: &str = "meshes-api";
/// The longest lifetime (`exp - iat`) accepted.
pub const MAX_LIFETIME_SECS: i64 = 60;
/// How far `iat` may lie in the future (clock skew).
pub const MAX_IAT_SKEW_SECS: i64 = 30;

/// Why a token was refused. Logged at debug level; the client only ever sees a 401.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    #[error("token is not three base64url JSON segments")]
    Malformed,
    #[error("algorithm is not HS256")]
    Algorithm,
    #[error("no kid in the header")]
    MissingKid,
    #[error("bad signature")]
    Signature,
    #[error("wrong issuer")]
    Issuer,
    #[error("wrong audience")]
    Audience,
    #[error("wrong organization")]
    Organization,
    #[error("expired")]
    Expired,
    #[error("lifetime longer than 60 s")]
    Lifetime,
    #[error("issued in the future")]
    IssuedInFuture,
}

#[derive(Debug, Deserialize, Serialize)]
struct Header {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    typ: Option<String>,
}

/// `aud` may be a string or an array of strings (RFC 7519 §4.1.3).
#[derive(Debug, Deserialize, Serialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Deserialize, Serialize)]
struct Claims {
    iss: String,
    aud: Audience,
    org: String,
    iat: i64,
    exp: i64,
}

/// A token whose header was read but whose signature is not yet checked.
#[derive(Debug)]
pub struct UnverifiedToken<'a> {
    /// The access key the token claims to be signed by.
    pub kid: String,
    signing_input: &'a str,
    signature: Vec<u8>,
    claims: &'a str,
}

/// Reads the header: the `kid` says which secret to verify with.
pub fn parse(token: &str) -> Result<UnverifiedToken<'_>, JwtError> {
    let mut parts = token.split('.');
    let (Some(h), Some(c), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwtError::Malformed);
    };
    let header: Header = decode_json(h)?;
    if header.alg != "HS256" {
        return Err(JwtError::Algorithm);
    }
    let kid = header
        .kid
        .filter(|k| !k.is_empty())
        .ok_or(JwtError::MissingKid)?;
    let signature = URL_SAFE_NO_PAD.decode(s).map_err(|_| JwtError::Malformed)?;
    Ok(UnverifiedToken {
        kid,
        signing_input: &token[..h.len() + 1 + c.len()],
        signature,
        claims: c,
    })
}

fn decode_json<T: for<'de> Deserialize<'de>>(segment: &str) -> Result<T, JwtError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(segment)
        .map_err(|_| JwtError::Malformed)?;
    serde_json::from_slice(&bytes).map_err(|_| JwtError::Malformed)
}

impl UnverifiedToken<'_> {
    /// Verifies the signature with `secret` (constant time), then every claim.
    pub fn verify(&self, secret: &[u8], organization: &str, now: i64) -> Result<(), JwtError> {
        let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
        hmac::verify(&key, self.signing_input.as_bytes(), &self.signature)
            .map_err(|_| JwtError::Signature)?;
        let claims: Claims = decode_json(self.claims)?;
        if claims.iss != format!("urn:meshes:m2m:{}", self.kid) {
            return Err(JwtError::Issuer);
        }
        let aud_ok = match &claims.aud {
            Audience::One(a) => a == AUDIENCE,
            Audience::Many(all) => all.iter().any(|a| a == AUDIENCE),
        };
        if !aud_ok {
            return Err(JwtError::Audience);
        }
        if claims.org != organization {
            return Err(JwtError::Organization);
        }
        if claims.exp <= now {
            return Err(JwtError::Expired);
        }
        if claims.exp - claims.iat > MAX_LIFETIME_SECS {
            return Err(JwtError::Lifetime);
        }
        if claims.iat > now + MAX_IAT_SKEW_SECS {
            return Err(JwtError::IssuedInFuture);
        }
        Ok(())
    }
}

/// What a client puts in a token. Used by tests, benchmarks and `handoff admin token`.
#[derive(Clone, Debug)]
pub struct TokenSpec<'a> {
    pub access_key: &'a str,
    pub organization: &'a str,
    pub iat: i64,
    pub exp: i64,
    pub issuer: Option<&'a str>,
    pub audience: &'a str,
}

impl<'a> TokenSpec<'a> {
    /// A well-formed 30-second token issued now.
    pub fn new(access_key: &'a str, organization: &'a str, now: i64) -> Self {
        Self {
            access_key,
            organization,
            iat: now,
            exp: now + 30,
            issuer: None,
            audience: AUDIENCE,
        }
    }

    /// Signs the token with `secret`, as a Meshes client does.
    pub fn sign(&self, secret: &[u8]) -> String {
        let header = Header {
            alg: "HS256".into(),
            kid: Some(self.access_key.into()),
            typ: Some("JWT".into()),
        };
        let claims = Claims {
            iss: self
                .issuer
                .map(str::to_owned)
                .unwrap_or_else(|| format!("urn:meshes:m2m:{}", self.access_key)),
            aud: Audience::One(self.audience.into()),
            org: self.organization.into(),
            iat: self.iat,
            exp: self.exp,
        };
        let enc = |v: &dyn erased::Json| URL_SAFE_NO_PAD.encode(v.to_json());
        let input = format!("{}.{}", enc(&header), enc(&claims));
        let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
        let sig = hmac::sign(&key, input.as_bytes());
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref()))
    }
}

mod erased {
    /// Lets `sign` encode two different serializable types through one closure.
    pub trait Json {
        fn to_json(&self) -> Vec<u8>;
    }
    impl<T: serde::Serialize> Json for T {
        fn to_json(&self) -> Vec<u8> {
            serde_json::to_vec(self).expect("plain structs serialize")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KID: &str = "mk_abcdefghijklmnopqrstuv";
    const ORG: &str = "0b7a6c52-3f7e-4a7c-9c1e-2f4a1e2b3c4d";
    const SECRET: &[u8] = b"0123456789012345678901234567890123456789abc";
    const NOW: i64 = 1_800_000_000;

    fn check(token: &str) -> Result<(), JwtError> {
        let t = parse(token)?;
        assert_eq!(t.kid, KID);
        t.verify(SECRET, ORG, NOW)
    }

    #[test]
    fn a_fresh_token_verifies() {
        assert_eq!(check(&TokenSpec::new(KID, ORG, NOW).sign(SECRET)), Ok(()));
    }

    #[test]
    fn each_bad_claim_is_refused_for_its_reason() {
        let base = TokenSpec::new(KID, ORG, NOW);
        let cases: Vec<(TokenSpec, JwtError)> = vec![
            (
                TokenSpec {
                    exp: NOW - 1,
                    iat: NOW - 20,
                    ..base.clone()
                },
                JwtError::Expired,
            ),
            (
                TokenSpec {
                    exp: NOW + 61,
                    ..base.clone()
                },
                JwtError::Lifetime,
            ),
            (
                TokenSpec {
                    iat: NOW + 31,
                    exp: NOW + 60,
                    ..base.clone()
                },
                JwtError::IssuedInFuture,
            ),
            (
                TokenSpec {
                    audience: "other",
                    ..base.clone()
                },
                JwtError::Audience,
            ),
            (
                TokenSpec {
                    issuer: Some("urn:meshes:m2m:mk_other"),
                    ..base.clone()
                },
                JwtError::Issuer,
            ),
            (
                TokenSpec {
                    organization: "b1b2c3d4-0000-4000-8000-000000000000",
                    ..base.clone()
                },
                JwtError::Organization,
            ),
        ];
        for (spec, want) in cases {
            assert_eq!(check(&spec.sign(SECRET)), Err(want.clone()), "{want}");
        }
    }

    #[test]
    fn a_wrong_secret_or_tampered_token_fails_the_signature() {
        let token =
            TokenSpec::new(KID, ORG, NOW).sign(b"another-secret-another-secret-another-secre");
        assert_eq!(check(&token), Err(JwtError::Signature));
        let good = TokenSpec::new(KID, ORG, NOW).sign(SECRET);
        let (head, sig) = good.rsplit_once('.').unwrap();
        let tampered = format!("{head}x.{sig}");
        assert!(check(&tampered).is_err());
    }

    #[test]
    fn malformed_tokens_and_other_algorithms_are_refused() {
        assert_eq!(parse("abc").unwrap_err(), JwtError::Malformed);
        assert_eq!(parse("a.b.c.d").unwrap_err(), JwtError::Malformed);
        let none_alg = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(br#"{"alg":"none","kid":"mk_x"}"#),
            URL_SAFE_NO_PAD.encode(b"{}")
        );
        assert_eq!(parse(&none_alg).unwrap_err(), JwtError::Algorithm);
        let no_kid = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256"}"#),
            URL_SAFE_NO_PAD.encode(b"{}")
        );
        assert_eq!(parse(&no_kid).unwrap_err(), JwtError::MissingKid);
    }
}
