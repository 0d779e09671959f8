//! Secrets: password hashing (argon2id, off the async runtime), opaque tokens (refresh, invitation,
//! reset, API key: random, stored only as SHA-256), and short-lived JWT access tokens (HS256).

use std::time::Duration;

use argon2::{
    Algorithm, Argon2, Block, Params, Version,
    password_hash::{self, Output, ParamsString, PasswordHash, Salt, SaltString, rand_core::OsRng},
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

    fn params(self) -> anyhow::Result<Params> {
        Params::new(self.m_cost_kib, self.t_cost, 1, None)
            .map_err(|e| anyhow::anyhow!("invalid argon2 parameters: {e}"))
    }
}

thread_local! {
    /// argon2's working memory, kept by each hasher thread for its next hash (19 MiB at the
    /// default cost): allocated once, not per call.
    static BLOCKS: std::cell::RefCell<Vec<Block>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// The argon2 hash of `password` with `salt`, in the PHC form (`$argon2id$v=19$m=…`), computed
/// in this thread's kept memory. The same result as argon2's own `PasswordHasher`.
fn phc<'a>(
    algorithm: Algorithm,
    version: Version,
    params: Params,
    password: &[u8],
    salt: Salt<'a>,
) -> password_hash::Result<PasswordHash<'a>> {
    let mut salt_buf = [0u8; 64];
    let salt_bytes = salt.decode_b64(&mut salt_buf)?;
    let output_len = params.output_len().unwrap_or(Params::DEFAULT_OUTPUT_LEN);
    let blocks = params.block_count();
    let argon = Argon2::new(algorithm, version, params.clone());
    let output = Output::init_with(output_len, |out| {
        BLOCKS.with(|kept| {
            let mut kept = kept.borrow_mut();
            if kept.len() < blocks {
                kept.resize(blocks, Block::default());
            }
            argon
                .hash_password_into_with_memory(password, salt_bytes, out, &mut kept[..blocks])
                .map_err(password_hash::Error::from)
        })
    })?;
    Ok(PasswordHash {
        algorithm: algorithm.ident(),
        version: Some(version.into()),
        params: ParamsString::try_from(&params)?,
        salt: Some(salt),
        hash: Some(output),
    })
}

/// Whether `password` gives `hash` (its algorithm, version, parameters and salt read from it);
/// the outputs are compared in constant time.
fn phc_matches(password: &[u8], hash: &PasswordHash<'_>) -> password_hash::Result<bool> {
    let (Some(salt), Some(expected)) = (hash.salt, &hash.hash) else {
        return Ok(false);
    };
    let algorithm = Algorithm::try_from(hash.algorithm)?;
    let version = hash
        .version
        .map(Version::try_from)
        .transpose()?
        .unwrap_or_default();
    let computed = phc(algorithm, version, Params::try_from(hash)?, password, salt)?;
    Ok(computed.hash.as_ref() == Some(expected))
}

type HashJob = Box<dyn FnOnce() + Send>;

/// The password hasher: a few threads of its own (as many as the cores, at most 4), fed by a
/// queue. Each argon2 call takes 19 MiB; on tokio's blocking pool every call could land on
/// another thread, and glibc kept the freed blocks in each thread's arena — a thousand
/// sign-ins left the server at 1.5 GB. A handful of long-lived threads reuse their own.
/// `None` when no thread could be started (then the blocking pool is used).
fn hasher() -> Option<&'static std::sync::mpsc::Sender<HashJob>> {
    static POOL: std::sync::OnceLock<Option<std::sync::mpsc::Sender<HashJob>>> =
        std::sync::OnceLock::new();
    POOL.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel::<HashJob>();
        let rx = std::sync::Arc::new(std::sync::Mutex::new(rx));
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get().clamp(1, 4));
        let mut started = 0;
        for i in 0..threads {
            let rx = rx.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("wamage-argon2-{i}"))
                .spawn(move || {
                    loop {
                        let next = match rx.lock() {
                            Ok(rx) => rx.recv(),
                            Err(_) => return,
                        };
                        let Ok(job) = next else { return };
                        // A panicking hash fails its own call (its reply is dropped), not the
                        // thread.
                        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                    }
                });
            match spawned {
                Ok(_) => started += 1,
                Err(e) => tracing::warn!(error = %e, "failed to start a password hasher thread"),
            }
        }
        (started > 0).then_some(tx)
    })
    .as_ref()
}

/// Runs `f` on the password hasher (argon2 takes tens of milliseconds by design, off the async
/// runtime).
async fn on_hasher<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> anyhow::Result<T> {
    let Some(pool) = hasher() else {
        return Ok(tokio::task::spawn_blocking(f).await?);
    };
    let (tx, rx) = tokio::sync::oneshot::channel();
    pool.send(Box::new(move || {
        let _ = tx.send(f());
    }))
    .map_err(|_| anyhow::anyhow!("the password hasher has stopped"))?;
    rx.await
        .map_err(|_| anyhow::anyhow!("the password hasher failed"))
}

/// Hashes a password on the password hasher.
pub async fn hash_password(password: String, cost: HashCost) -> anyhow::Result<String> {
    on_hasher(move || {
        let salt = SaltString::generate(&mut OsRng);
        phc(
            Algorithm::Argon2id,
            Version::V0x13,
            cost.params()?,
            password.as_bytes(),
            salt.as_salt(),
        )
        .map(|h| h.to_string())
        .map_err(|e| anyhow::anyhow!("failed to hash password: {e}"))
    })
    .await?
}

/// A PHC string at `cost` that no password matches (a random output): verifying against it
/// takes as long as against a real one. Made without hashing anything.
pub fn unmatchable_hash(cost: HashCost) -> anyhow::Result<String> {
    let params = cost.params()?;
    let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
    rand::rng().fill_bytes(&mut out);
    let salt = SaltString::generate(&mut OsRng);
    let hash = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(&params)
            .map_err(|e| anyhow::anyhow!("invalid argon2 parameters: {e}"))?,
        salt: Some(salt.as_salt()),
        hash: Some(Output::new(&out).map_err(|e| anyhow::anyhow!("argon2 output: {e}"))?),
    };
    Ok(hash.to_string())
}

/// Verifies a password against a stored PHC string on the password hasher. The parameters
/// are read from the hash itself, so hashes made with other costs still verify.
pub async fn verify_password(password: String, hash: String) -> anyhow::Result<bool> {
    on_hasher(move || {
        let parsed = PasswordHash::new(&hash)
            .map_err(|e| anyhow::anyhow!("stored password hash is invalid: {e}"))?;
        // A hash this build cannot compute (another algorithm) matches nothing.
        Ok(phc_matches(password.as_bytes(), &parsed).unwrap_or(false))
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

    /// Hashes made in the hasher's kept memory are argon2's own, both ways: stored hashes of
    /// earlier versions (argon2's `PasswordHasher`) verify, and new ones verify with argon2's
    /// `PasswordVerifier`; at the default cost and a cheaper one, for several passwords in a
    /// row on the same threads (the kept memory holds the last hash's blocks).
    #[tokio::test]
    async fn hashes_are_argon2s_own() {
        use argon2::password_hash::{PasswordHasher, PasswordVerifier};
        for cost in [HashCost::default(), HashCost::fast_for_tests()] {
            let theirs = Argon2::new(Algorithm::Argon2id, Version::V0x13, cost.params().unwrap());
            for (i, password) in ["correct horse", "", "ünïcødé pässwörd", "x"]
                .iter()
                .enumerate()
            {
                let salt = SaltString::generate(&mut OsRng);
                let stored = theirs
                    .hash_password(password.as_bytes(), &salt)
                    .unwrap()
                    .to_string();
                assert!(
                    verify_password((*password).to_owned(), stored.clone())
                        .await
                        .unwrap(),
                    "{i}"
                );
                let wrong = format!("{password}!");
                assert!(!verify_password(wrong, stored).await.unwrap(), "{i}");

                let ours = hash_password((*password).to_owned(), cost).await.unwrap();
                let parsed = PasswordHash::new(&ours).unwrap();
                assert!(
                    Argon2::default()
                        .verify_password(password.as_bytes(), &parsed)
                        .is_ok(),
                    "{i}: {ours}"
                );
                // The same salt gives the same string as argon2's own hasher.
                let again = theirs
                    .hash_password(password.as_bytes(), parsed.salt.unwrap())
                    .unwrap()
                    .to_string();
                assert_eq!(ours, again, "{i}");
            }
        }
        // A hash of another algorithm or version still verifies (its own parameters).
        let argon2i = Argon2::new(
            Algorithm::Argon2i,
            Version::V0x10,
            Params::new(2048, 2, 1, None).unwrap(),
        );
        let salt = SaltString::generate(&mut OsRng);
        let stored = argon2i.hash_password(b"old", &salt).unwrap().to_string();
        assert!(verify_password("old".into(), stored.clone()).await.unwrap());
        assert!(!verify_password("new".into(), stored).await.unwrap());
        assert!(
            verify_password("x".into(), "not a hash".into())
                .await
                .is_err()
        );
    }

    /// The stand-in hash for unknown accounts has the real cost's form and matches nothing.
    #[tokio::test]
    async fn the_unmatchable_hash_matches_nothing() {
        let cost = HashCost::default();
        let dummy = unmatchable_hash(cost).unwrap();
        let real = hash_password("correct horse".into(), cost).await.unwrap();
        let prefix = |h: &str| h.rsplitn(3, '$').nth(2).unwrap().to_owned();
        assert_eq!(prefix(&dummy), prefix(&real), "{dummy} / {real}");
        for password in ["", "correct horse", "x"] {
            assert!(
                !verify_password(password.into(), dummy.clone())
                    .await
                    .unwrap()
            );
        }
        assert_ne!(dummy, unmatchable_hash(cost).unwrap());
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
