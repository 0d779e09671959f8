//! Provider credentials encrypted at rest: XChaCha20-Poly1305 with a key derived from the
//! server secret (a dedicated sub-key, so it is never the same bytes as the token-signing key),
//! a random 192-bit nonce per write, and the channel id as associated data — a ciphertext
//! copied onto another channel's row does not decrypt.
//!
//! Stored form: `v1:` + base64url(nonce ‖ ciphertext).

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chacha20poly1305::{
    XChaCha20Poly1305, XNonce,
    aead::{Aead, KeyInit, Payload},
};
use rand::RngCore;
use sha2::{Digest, Sha256};

const PREFIX: &str = "v1:";
const NONCE_LEN: usize = 24;

/// Encrypts and decrypts channel secrets.
#[derive(Clone)]
pub struct SecretBox {
    cipher: XChaCha20Poly1305,
}

impl std::fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretBox(..)")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("secret ciphertext is malformed")]
    Malformed,
    #[error("secret does not decrypt with this server's key (was the secret key changed?)")]
    WrongKey,
}

impl SecretBox {
    pub fn new(server_secret: &[u8]) -> Self {
        let key = Sha256::new()
            .chain_update(b"wamage/channel-secrets/v1\0")
            .chain_update(server_secret)
            .finalize();
        Self {
            cipher: XChaCha20Poly1305::new(&key),
        }
    }

    pub fn seal(&self, aad: &[u8], plaintext: &[u8]) -> String {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        // Encryption with a valid key and nonce length cannot fail.
        let ct = self
            .cipher
            .encrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: plaintext,
                    aad,
                },
            )
            .unwrap_or_default();
        let mut out = Vec::with_capacity(NONCE_LEN + ct.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(out))
    }

    pub fn open(&self, aad: &[u8], sealed: &str) -> Result<Vec<u8>, SecretError> {
        let raw = sealed
            .strip_prefix(PREFIX)
            .and_then(|b| URL_SAFE_NO_PAD.decode(b).ok())
            .ok_or(SecretError::Malformed)?;
        if raw.len() < NONCE_LEN + 16 {
            return Err(SecretError::Malformed);
        }
        let (nonce, ct) = raw.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| SecretError::Malformed)?;
        self.cipher
            .decrypt(&XNonce::from(nonce), Payload { msg: ct, aad })
            .map_err(|_| SecretError::WrongKey)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_binds_the_channel() {
        let b = SecretBox::new(b"server secret");
        let sealed = b.seal(b"channel-1", b"{\"access_token\":\"EAAG\"}");
        assert!(sealed.starts_with("v1:"));
        assert!(!sealed.contains("EAAG"));
        assert_eq!(
            b.open(b"channel-1", &sealed).expect("opens"),
            b"{\"access_token\":\"EAAG\"}"
        );
        assert!(matches!(
            b.open(b"channel-2", &sealed),
            Err(SecretError::WrongKey)
        ));
        assert!(matches!(
            SecretBox::new(b"other").open(b"channel-1", &sealed),
            Err(SecretError::WrongKey)
        ));
        assert!(matches!(
            b.open(b"channel-1", "garbage"),
            Err(SecretError::Malformed)
        ));
        // Two seals of the same text differ (random nonce).
        assert_ne!(sealed, b.seal(b"channel-1", b"{\"access_token\":\"EAAG\"}"));
    }
}
