//! Identity domain types. Values parse once (`Email::parse`, `Role::parse`, `Password::parse`)
//! and stay valid afterwards.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use wamage_kernel::{id_type, validate};

id_type!(
    /// A team inside an organisation.
    TeamId
);
id_type!(
    /// An invitation to join an organisation.
    InvitationId
);
id_type!(
    /// A signed-in device: one refresh-token rotation family.
    SessionId
);
id_type!(
    /// An API key of an organisation.
    ApiKeyId
);

/// A member of an organisation as other domains show them ([`Identity::member_cards`](crate::Identity::member_cards)).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberCard {
    pub user_id: wamage_kernel::UserId,
    pub name: String,
    /// `/api/v1/avatars/…`, when the member has one.
    pub avatar_url: Option<String>,
    pub role: Role,
}

/// What a member may do in an organisation. Ordered: agent < admin < owner.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Works conversations; reads the organisation's settings.
    Agent,
    /// Manages members, teams, API keys and settings.
    Admin,
    /// Everything, including granting and revoking ownership.
    Owner,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Agent => "agent",
            Self::Admin => "admin",
            Self::Owner => "owner",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "agent" => Some(Self::Agent),
            "admin" => Some(Self::Admin),
            "owner" => Some(Self::Owner),
            _ => None,
        }
    }

    /// Parses a role read back from the database (written by us, so always valid; an unknown
    /// value degrades to the least privilege rather than failing the request).
    pub fn from_db(s: &str) -> Self {
        Self::parse(s).unwrap_or(Self::Agent)
    }
}

/// A trimmed, lower-cased, plausible e-mail address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        let normalized = validate::normalize_email(raw);
        if validate::is_plausible_email(&normalized) {
            Ok(Self(normalized))
        } else {
            Err("must be an e-mail address like name@example.com")
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

pub const PASSWORD_MIN: usize = 10;
pub const PASSWORD_MAX: usize = 256;

/// Checks a new password against the policy: long enough, not absurdly long, not all one character.
pub fn check_password(raw: &str) -> Result<(), String> {
    let n = raw.chars().count();
    if n < PASSWORD_MIN {
        return Err(format!("must be at least {PASSWORD_MIN} characters"));
    }
    if n > PASSWORD_MAX {
        return Err(format!("must be at most {PASSWORD_MAX} characters"));
    }
    let mut chars = raw.chars();
    if let Some(first) = chars.next()
        && chars.all(|c| c == first)
    {
        return Err("must not be a single repeated character".to_owned());
    }
    Ok(())
}

/// The caller a request acts for: established by the auth extractor from a JWT or an API key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Principal {
    pub org_id: wamage_kernel::OrgId,
    /// The user, or the creator of the API key.
    pub user_id: wamage_kernel::UserId,
    pub role: Role,
    pub via: Via,
}

/// How the caller authenticated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Via {
    Session(SessionId),
    ApiKey(ApiKeyId),
}

impl Principal {
    pub fn session_id(&self) -> Option<SessionId> {
        match self.via {
            Via::Session(s) => Some(s),
            Via::ApiKey(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_are_ordered() {
        assert!(Role::Agent < Role::Admin && Role::Admin < Role::Owner);
        assert_eq!(Role::parse("admin"), Some(Role::Admin));
        assert_eq!(Role::parse("root"), None);
    }

    #[test]
    fn emails_normalize() {
        assert_eq!(
            Email::parse(" Ana@Example.COM ").unwrap().as_str(),
            "ana@example.com"
        );
        assert!(Email::parse("ana").is_err());
    }

    #[test]
    fn password_policy() {
        assert!(check_password("short").is_err());
        assert!(check_password("aaaaaaaaaaaa").is_err());
        assert!(check_password("correct horse battery").is_ok());
        assert!(check_password(&"x1".repeat(200)).is_err());
    }
}
