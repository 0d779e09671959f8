//! Secrets: password hashing (argon2id, off the async runtime), opaque tokens (refresh, invitation,
//! reset, API key: random, stored only as SHA-256), and short-lived JWT access tokens (HS256).

use std::time::Duration;

use argon2::{
    Algorithm, Argon2, Params, Version,
    password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString, rand_core::OsRng},
};
use jsonwebtoken::{DecodingKey, EncodingKey, Header, Validation};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use wamage_kernel::{OrgId, Timestamp, UserId};

use crate::model::SessionId;

/// argon2id cost. Production uses OWASP's recommendation (19 MiB, 2 passes); tests may lower it.
#[derive(Clone, Copy, Debug)]
pub struct HashCost {
    pub m_cost_kib: u32,
    pub t_cost: u32,
}

impl Default for HashCost {
    fn default() -> Self {
        Self {
            m_cost_kib: 19 * 1024,
            t_cost: 2,
        }
    }
}

impl HashCost {
    /// Cheap parameters for tests only.
    pub fn fast_for_tests() -> Self {
        Self {
            m_cost_kib: 1024,
            t_cost: 1,
        }
    }

    fn argon2(self) -> anyhow::Result<Argon2<'static>> {
        let params = Params::new(self.m_cost_kib, self.t_cost, 1, None)
            .map_err(|e| anyhow::anyhow!("invalid argon2 parameters: {e}"))?;
        Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
    }
}

/// Hashes a password on the blocking pool (argon2 takes tens of milliseconds by design).
pub async fn hash_password(password: String, cost: HashCost) -> anyhow::Result<String> {
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut OsRng);
        cost.argon2()?
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| anyhow::anyhow!("failed to hash password: {e}"))
    })
    .await?
}

/// Verifies a password against a stored PHC string on the blocking pool. The parameters are
/// read from the hash itself, so hashes made with other costs still verify.
pub async fn verify_password(password: String, hash: String) -> anyhow::Result<bool> {
    tokio::task::spawn_blocking(move || {
        let parsed = PasswordHash::new(&hash)
            .map_err(|e| anyhow::anyhow!("stored password hash is invalid: {e}"))?;
        Ok(Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok())
    })
    .await?
}

/// 32 random bytes, hex-encoded, with a readable prefix (`wam_`, `wrt_`, …).
pub fn random_token(prefix: &str) -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("{prefix}{}", hex::encode(bytes))
}

/// How opaque tokens are stored: SHA-256, hex. They carry 256 bits of entropy, so a fast hash is
/// the right tool (a slow KDF protects low-entropy passwords, not random keys).
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Claims of an access token.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    pub sub: UserId,
    pub org: OrgId,
    pub sid: SessionId,
    pub iat: i64,
    pub exp: i64,
    pub iss: String,
}

const ISSUER: &str = "wamage";

/// Signs and checks access tokens with a key derived from the server secret.
#[derive(Clone)]
pub struct TokenSigner {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    pub access_ttl: Duration,
}

impl std::fmt::Debug for TokenSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSigner")
            .field("key", &"<redacted>")
            .field("access_ttl", &self.access_ttl)
            .finish()
    }
}

impl TokenSigner {
    pub fn new(secret: &[u8], access_ttl: Duration) -> Self {
        // A dedicated sub-key, so the JWT key is not the same bytes as other uses of the secret.
        let key = Sha256::new()
            .chain_update(b"wamage-jwt-v1")
            .chain_update(secret)
            .finalize();
        let mut validation = Validation::new(jsonwebtoken::Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.leeway = 0;
        validation.validate_exp = false; // checked against our Clock below, so tests can move time
        validation.set_required_spec_claims(&["exp", "sub", "iss"]);
        Self {
            encoding: EncodingKey::from_secret(&key),
            decoding: DecodingKey::from_secret(&key),
            validation,
            access_ttl,
        }
    }

    pub fn issue(
        &self,
        user: UserId,
        org: OrgId,
        sid: SessionId,
        now: Timestamp,
    ) -> anyhow::Result<String> {
        let iat = now.millis() / 1000;
        let claims = Claims {
            sub: user,
            org,
            sid,
            iat,
            exp: iat + i64::try_from(self.access_ttl.as_secs()).unwrap_or(900),
            iss: ISSUER.to_owned(),
        };
        Ok(jsonwebtoken::encode(
            &Header::new(jsonwebtoken::Algorithm::HS256),
            &claims,
            &self.encoding,
        )?)
    }

    /// Checks signature, issuer and expiry. `Err` carries the reason a person can read.
    pub fn verify(&self, token: &str, now: Timestamp) -> Result<Claims, &'static str> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|_| "the access token is invalid")?;
        if data.claims.exp <= now.millis() / 1000 {
            return Err("the access token has expired");
        }
        Ok(data.claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn passwords_hash_and_verify() {
        let h = hash_password("correct horse".into(), HashCost::fast_for_tests())
            .await
            .unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(
            verify_password("correct horse".into(), h.clone())
                .await
                .unwrap()
        );
        assert!(!verify_password("wrong horse".into(), h).await.unwrap());
    }

    #[test]
    fn tokens_expire_and_cannot_be_tampered() {
        let signer = TokenSigner::new(b"secret", Duration::from_secs(60));
        let now = Timestamp::from_millis(1_700_000_000_000);
        let (u, o, s) = (UserId::new(), OrgId::new(), SessionId::new());
        let t = signer.issue(u, o, s, now).unwrap();
        let c = signer.verify(&t, now).unwrap();
        assert_eq!((c.sub, c.org, c.sid), (u, o, s));
        assert!(
            signer
                .verify(&t, now.plus(Duration::from_secs(61)))
                .is_err()
        );
        let other = TokenSigner::new(b"other", Duration::from_secs(60));
        assert!(other.verify(&t, now).is_err());
        let mut tampered = t.clone();
        tampered.pop();
        tampered.push(if t.ends_with('A') { 'B' } else { 'A' });
        assert!(signer.verify(&tampered, now).is_err());
    }

    #[test]
    fn token_hashes_are_stable() {
        let t = random_token("wam_");
        assert!(t.starts_with("wam_") && t.len() == 68);
        assert_eq!(token_hash(&t), token_hash(&t));
        assert_ne!(token_hash(&t), token_hash(&random_token("wam_")));
    }
}
