//! Who is calling: bearer tokens, either HS256 JWTs or personal API tokens.
//!
//! - A JWT must be signed with `JWT_SECRET` using HS256 (no other algorithm is accepted, so
//!   `alg: none` and RS/HS confusion fail), carry `exp`, and name the user in `sub` as a
//!   UUID. `aud`, `role` and other claims, as issued by Supabase-style auth, are accepted and
//!   ignored; `nbf` is honoured when present.
//! - A personal token (`pex_` followed by 64 hex digits) is shown once at creation and stored
//!   only as its SHA-256, so a database leak does not leak usable tokens.
//!
//! Either way the user must exist in `users`: a well-signed token for an unknown user is
//! refused, never mapped to anyone else.

use anyhow::Context;
use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use rand::RngCore;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use uuid::Uuid;

use crate::config::Secret;

/// The prefix of personal tokens; makes them recognisable (and greppable by secret scanners).
pub const TOKEN_PREFIX: &str = "pex_";

/// The authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthUser {
    pub id: Uuid,
    pub email: String,
}

/// Why a request is not authenticated. The messages are safe to show to the caller.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("missing Authorization header: send `Authorization: Bearer <token>`")]
    Missing,
    #[error("malformed Authorization header: expected `Bearer <token>`")]
    Malformed,
    #[error("invalid token: {0}")]
    Invalid(&'static str),
    #[error("token has expired")]
    Expired,
    #[error("token is not valid for any user")]
    UnknownUser,
    #[error("could not check the token")]
    Database(#[from] sqlx::Error),
}

#[derive(Deserialize)]
struct Claims {
    sub: String,
}

/// Checks bearer tokens.
pub struct Authenticator {
    key: DecodingKey,
    validation: Validation,
}

impl Authenticator {
    /// Fails only for an empty secret, which configuration already refuses.
    pub fn new(jwt_secret: &Secret) -> Result<Self, crate::config::ConfigError> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.algorithms = vec![Algorithm::HS256];
        validation.set_required_spec_claims(&["exp", "sub"]);
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.validate_aud = false;
        validation.leeway = 30;
        let key = DecodingKey::from_secret(jwt_secret.expose().as_bytes())
            .map_err(|_| crate::config::ConfigError("JWT_SECRET must not be empty".into()))?;
        Ok(Authenticator { key, validation })
    }

    /// Authenticates the value of an `Authorization` header.
    pub async fn authenticate(
        &self,
        pool: &PgPool,
        header: Option<&[u8]>,
    ) -> Result<AuthUser, AuthError> {
        let header = header.ok_or(AuthError::Missing)?;
        let header = std::str::from_utf8(header).map_err(|_| AuthError::Malformed)?;
        let (scheme, token) = header.trim().split_once(' ').ok_or(AuthError::Malformed)?;
        let token = token.trim();
        if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
            return Err(AuthError::Malformed);
        }

        if let Some(secret) = token.strip_prefix(TOKEN_PREFIX) {
            return personal_token_user(pool, secret).await;
        }
        let user_id = self.verify_jwt(token)?;
        let email: Option<String> = sqlx::query_scalar("SELECT email FROM users WHERE id = $1")
            .bind(user_id)
            .fetch_optional(pool)
            .await?;
        let email = email.ok_or(AuthError::UnknownUser)?;
        Ok(AuthUser { id: user_id, email })
    }

    /// The user id a JWT speaks for, if the JWT is valid.
    pub fn verify_jwt(&self, token: &str) -> Result<Uuid, AuthError> {
        use jsonwebtoken::errors::ErrorKind;
        let data = jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation).map_err(
            |e| match e.kind() {
                ErrorKind::ExpiredSignature => AuthError::Expired,
                ErrorKind::ImmatureSignature => AuthError::Invalid("token is not valid yet"),
                ErrorKind::InvalidSignature => AuthError::Invalid("bad signature"),
                ErrorKind::InvalidAlgorithm | ErrorKind::MissingAlgorithm => {
                    AuthError::Invalid("only HS256 tokens are accepted")
                }
                ErrorKind::MissingRequiredClaim(_) => {
                    AuthError::Invalid("token must carry `sub` and `exp`")
                }
                _ => AuthError::Invalid("not a valid JWT"),
            },
        )?;
        Uuid::parse_str(&data.claims.sub)
            .map_err(|_| AuthError::Invalid("token subject is not a user id"))
    }
}

fn hash_token(secret_part: &str) -> [u8; 32] {
    Sha256::digest(format!("{TOKEN_PREFIX}{secret_part}").as_bytes()).into()
}

async fn personal_token_user(pool: &PgPool, secret_part: &str) -> Result<AuthUser, AuthError> {
    let well_formed = secret_part.len() == 64 && secret_part.bytes().all(|b| b.is_ascii_hexdigit());
    if !well_formed {
        return Err(AuthError::Invalid("not a valid personal token"));
    }
    let row: Option<(Uuid, Uuid, String)> = sqlx::query_as(
        "SELECT t.id, u.id, u.email FROM api_tokens t JOIN users u ON u.id = t.user_id \
         WHERE t.token_hash = $1 AND t.revoked_at IS NULL",
    )
    .bind(&hash_token(&secret_part.to_ascii_lowercase())[..])
    .fetch_optional(pool)
    .await?;
    let (token_id, user_id, email) =
        row.ok_or(AuthError::Invalid("unknown or revoked personal token"))?;
    // At most one write a minute per token, so busy clients do not turn reads into writes.
    sqlx::query(
        "UPDATE api_tokens SET last_used_at = now() WHERE id = $1 \
         AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')",
    )
    .bind(token_id)
    .execute(pool)
    .await?;
    Ok(AuthUser { id: user_id, email })
}

/// A personal token as listed (never the secret itself).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TokenInfo {
    pub id: Uuid,
    pub name: String,
    pub token_prefix: String,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// Creates a personal token for `user_id`. Returns its id and the token, which exists
/// nowhere else afterwards.
pub async fn create_token(
    pool: &PgPool,
    user_id: Uuid,
    name: &str,
) -> anyhow::Result<(Uuid, String)> {
    let mut raw = [0u8; 32];
    rand::rng().fill_bytes(&mut raw);
    let secret_part = hex::encode(raw);
    let token = format!("{TOKEN_PREFIX}{secret_part}");
    let id: Uuid = sqlx::query_scalar(
        "INSERT INTO api_tokens (user_id, name, token_hash, token_prefix) \
         VALUES ($1, $2, $3, $4) RETURNING id",
    )
    .bind(user_id)
    .bind(name)
    .bind(&hash_token(&secret_part)[..])
    .bind(&token[..TOKEN_PREFIX.len() + 8])
    .fetch_one(pool)
    .await
    .context("storing the token")?;
    Ok((id, token))
}

/// The user's personal tokens, newest first.
pub async fn list_tokens(pool: &PgPool, user_id: Uuid) -> anyhow::Result<Vec<TokenInfo>> {
    sqlx::query_as(
        "SELECT id, name, token_prefix, created_at, last_used_at, revoked_at \
         FROM api_tokens WHERE user_id = $1 ORDER BY created_at DESC",
    )
    .bind(user_id)
    .fetch_all(pool)
    .await
    .context("listing tokens")
}

/// Revokes a token; `false` when no unrevoked token has this id.
pub async fn revoke_token(pool: &PgPool, id: Uuid) -> anyhow::Result<bool> {
    let done = sqlx::query(
        "UPDATE api_tokens SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL",
    )
    .bind(id)
    .execute(pool)
    .await
    .context("revoking the token")?;
    Ok(done.rows_affected() == 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{EncodingKey, Header, encode};
    use serde_json::json;

    const SECRET: &str = "a-test-secret-that-is-long-enough-for-hs256";

    fn auth() -> Authenticator {
        Authenticator::new(&Secret::new(SECRET)).unwrap()
    }

    fn jwt(claims: serde_json::Value, alg: Algorithm, key: &[u8]) -> String {
        encode(
            &Header::new(alg),
            &claims,
            &EncodingKey::from_secret(key).unwrap(),
        )
        .unwrap()
    }

    fn in_an_hour() -> i64 {
        Utc::now().timestamp() + 3600
    }

    #[test]
    fn accepts_supabase_style_tokens() {
        let id = Uuid::new_v4();
        let token = jwt(
            json!({"sub": id, "exp": in_an_hour(), "aud": "authenticated", "role": "authenticated"}),
            Algorithm::HS256,
            SECRET.as_bytes(),
        );
        assert_eq!(auth().verify_jwt(&token).unwrap(), id);
    }

    #[test]
    fn rejects_bad_tokens() {
        let id = Uuid::new_v4();
        let a = auth();
        let cases = [
            jwt(json!({"sub": id}), Algorithm::HS256, SECRET.as_bytes()),
            jwt(
                json!({"exp": in_an_hour()}),
                Algorithm::HS256,
                SECRET.as_bytes(),
            ),
            jwt(
                json!({"sub": "42", "exp": in_an_hour()}),
                Algorithm::HS256,
                SECRET.as_bytes(),
            ),
            jwt(
                json!({"sub": id, "exp": in_an_hour()}),
                Algorithm::HS256,
                b"another-secret",
            ),
            jwt(
                json!({"sub": id, "exp": in_an_hour()}),
                Algorithm::HS512,
                SECRET.as_bytes(),
            ),
            jwt(
                json!({"sub": id, "exp": 1_000_000}),
                Algorithm::HS256,
                SECRET.as_bytes(),
            ),
            jwt(
                json!({"sub": id, "exp": in_an_hour(), "nbf": in_an_hour()}),
                Algorithm::HS256,
                SECRET.as_bytes(),
            ),
            "not.a.jwt".to_owned(),
        ];
        for token in cases {
            assert!(a.verify_jwt(&token).is_err(), "accepted {token}");
        }
    }
}
