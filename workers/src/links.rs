//! Signed links that point at the service: `PUBLIC_BASE_URL/d/{token}` (download an export)
//! and `PUBLIC_BASE_URL/p/{token}` (pause a backup schedule).
//!
//! An emailed link must outlive SigV4's 7-day limit on presigned URLs and be revocable, so it
//! names the export and an expiry, signed with HMAC-SHA256 under `LINK_SECRET`. The service
//! checks the signature, the expiry and the export's current state on every use, then
//! redirects to a freshly presigned URL. Deleting the export revokes every link to it.
//!
//! Token layout (URL-safe, no padding): `{export or schedule id, 32 hex}.{expiry, unix seconds}.{purpose}.{mac, 64 hex}`.

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use uuid::Uuid;

/// What a link may be used for; part of the signed message, so one kind cannot pass for another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkPurpose {
    /// Names an export.
    Download,
    /// Names a backup schedule.
    PauseSchedule,
}

impl LinkPurpose {
    fn as_str(self) -> &'static str {
        match self {
            LinkPurpose::Download => "d",
            LinkPurpose::PauseSchedule => "p",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "d" => Some(LinkPurpose::Download),
            "p" => Some(LinkPurpose::PauseSchedule),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    #[error("this link is not valid")]
    Invalid,
    #[error("this link has expired")]
    Expired,
}

/// A verified link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Link {
    /// The export (download links) or the schedule (pause links).
    pub id: Uuid,
    pub expires_at: DateTime<Utc>,
    pub purpose: LinkPurpose,
}

/// Signs and verifies links.
#[derive(Clone)]
pub struct LinkSigner {
    key: Vec<u8>,
}

impl std::fmt::Debug for LinkSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LinkSigner([redacted])")
    }
}

impl LinkSigner {
    pub fn new(secret: &[u8]) -> Self {
        LinkSigner {
            key: secret.to_vec(),
        }
    }

    fn mac(&self, message: &str) -> Hmac<Sha256> {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes keys of any length");
        mac.update(message.as_bytes());
        mac
    }

    /// A token for `id` (an export, or a schedule for a pause link), valid until `expires_at`.
    pub fn sign(&self, id: Uuid, expires_at: DateTime<Utc>, purpose: LinkPurpose) -> String {
        let message = format!(
            "{}.{}.{}",
            id.simple(),
            expires_at.timestamp(),
            purpose.as_str()
        );
        let tag = hex::encode(self.mac(&message).finalize().into_bytes());
        format!("{message}.{tag}")
    }

    /// Checks a token's signature, then its expiry against `now`.
    pub fn verify(&self, token: &str, now: DateTime<Utc>) -> Result<Link, LinkError> {
        let (message, tag) = token.rsplit_once('.').ok_or(LinkError::Invalid)?;
        // Lowercase only, as signed: `hex` also reads `AB`, which would let a changed byte
        // pass for the same link.
        if !tag.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(LinkError::Invalid);
        }
        let tag = hex::decode(tag).map_err(|_| LinkError::Invalid)?;
        self.mac(message)
            .verify_slice(&tag)
            .map_err(|_| LinkError::Invalid)?;
        let mut parts = message.split('.');
        let (Some(id), Some(expiry), Some(purpose), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(LinkError::Invalid);
        };
        let id = Uuid::try_parse(id).map_err(|_| LinkError::Invalid)?;
        let expires_at = expiry
            .parse::<i64>()
            .ok()
            .and_then(|secs| DateTime::from_timestamp(secs, 0))
            .ok_or(LinkError::Invalid)?;
        let purpose = LinkPurpose::parse(purpose).ok_or(LinkError::Invalid)?;
        if expires_at <= now {
            return Err(LinkError::Expired);
        }
        Ok(Link {
            id,
            expires_at,
            purpose,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    fn signer() -> LinkSigner {
        LinkSigner::new(b"link-secret-for-tests")
    }

    #[test]
    fn round_trip() {
        let id = Uuid::new_v4();
        let now = Utc::now();
        let token = signer().sign(id, now + Duration::days(30), LinkPurpose::Download);
        let link = signer().verify(&token, now).unwrap();
        assert_eq!(link.id, id);
        assert_eq!(link.purpose, LinkPurpose::Download);
        assert!(
            token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.')
        );
    }

    #[test]
    fn any_changed_byte_is_rejected() {
        let now = Utc::now();
        let token = signer().sign(
            Uuid::new_v4(),
            now + Duration::days(1),
            LinkPurpose::Download,
        );
        // Every position, changed to a digit, to another case, or to another character.
        for i in 0..token.len() {
            let original = token.as_bytes()[i];
            for replacement in [
                if original == b'0' { b'1' } else { b'0' },
                original.to_ascii_uppercase(),
                b'-',
            ] {
                let mut bytes = token.clone().into_bytes();
                bytes[i] = replacement;
                let tampered = String::from_utf8(bytes).unwrap();
                if tampered != token {
                    assert_eq!(
                        signer().verify(&tampered, now),
                        Err(LinkError::Invalid),
                        "byte {i} as {:?}",
                        replacement as char
                    );
                }
            }
        }
        assert_eq!(signer().verify("", now), Err(LinkError::Invalid));
        assert_eq!(signer().verify("a.b.c.d.e", now), Err(LinkError::Invalid));
    }

    #[test]
    fn another_secret_is_rejected_and_expiry_is_checked() {
        let now = Utc::now();
        let token = signer().sign(
            Uuid::new_v4(),
            now + Duration::seconds(10),
            LinkPurpose::Download,
        );
        assert_eq!(
            LinkSigner::new(b"other").verify(&token, now),
            Err(LinkError::Invalid)
        );
        assert_eq!(
            signer().verify(&token, now + Duration::seconds(11)),
            Err(LinkError::Expired)
        );
    }
}
