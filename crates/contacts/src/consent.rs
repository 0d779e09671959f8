//! The consent ledger's vocabulary and the sending rule other domains ask through
//! [`crate::Contacts::may_send`].
//!
//! The ledger is append-only: every opt-in and opt-out is a row, and the current state of a
//! (channel, purpose) pair is its newest row. The rule ([`decide`]):
//!
//! - a **blocked** contact may not be sent anything;
//! - **utility** messages (order updates, reminders) may be sent unless the newest entry for the
//!   channel is an opt-out — no entry at all means allowed;
//! - **marketing** messages may be sent only when the newest entry for the channel is an opt-in
//!   (an opt-in exists and no opt-out came after it).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use wamage_kernel::id_type;

id_type!(
    /// One entry of the consent ledger.
    ConsentId
);

macro_rules! db_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $variant:ident = $s:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
        #[serde(rename_all = "snake_case")]
        pub enum $name {
            $($(#[$vm])* $variant),+
        }

        impl $name {
            pub const ALL: &'static [Self] = &[$(Self::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $s),+
                }
            }

            /// Reads back a value we wrote (a CHECK constraint keeps the column valid).
            pub fn from_db(s: &str) -> Option<Self> {
                Self::ALL.iter().copied().find(|v| v.as_str() == s)
            }
        }
    };
}

db_enum!(
    /// A channel consent is given for.
    ConsentChannel {
        Whatsapp = "whatsapp",
        Telegram = "telegram",
        Email = "email",
        Sms = "sms",
    }
);

db_enum!(
    /// What a message is for.
    ConsentPurpose {
        /// Promotions, newsletters, campaigns: needs an opt-in.
        Marketing = "marketing",
        /// Transactional messages the contact expects: allowed unless opted out.
        Utility = "utility",
    }
);

db_enum!(
    /// An entry's direction.
    ConsentStatus {
        OptedIn = "opted_in",
        OptedOut = "opted_out",
    }
);

db_enum!(
    /// Where an entry came from.
    ConsentSource {
        /// A sign-up or preference form.
        Form = "form",
        /// A CSV import.
        Import = "import",
        /// A keyword the contact sent (STOP, START).
        Keyword = "keyword",
        /// An integration through an API key.
        Api = "api",
        /// A member of the organisation, in the app.
        Agent = "agent",
        /// The channel provider (e.g. a WhatsApp opt-out button).
        Provider = "provider",
    }
);

/// Why a message may not be sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DenyReason {
    /// The contact is blocked.
    ContactBlocked,
    /// The newest entry for the channel and purpose is an opt-out.
    OptedOut,
    /// Marketing needs an opt-in, and there is none for the channel.
    NoOptIn,
}

impl std::fmt::Display for DenyReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::ContactBlocked => "the contact is blocked",
            Self::OptedOut => "the contact opted out",
            Self::NoOptIn => "marketing needs an opt-in and the contact has not opted in",
        })
    }
}

/// The answer to "may I send purpose P on channel C to contact X?".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SendPermission {
    Allowed,
    Denied { reason: DenyReason },
}

impl SendPermission {
    pub fn is_allowed(self) -> bool {
        self == Self::Allowed
    }
}

/// The sending rule (see the module documentation). `latest` is the newest ledger entry for the
/// channel and purpose, if any.
pub fn decide(
    blocked: bool,
    purpose: ConsentPurpose,
    latest: Option<ConsentStatus>,
) -> SendPermission {
    let deny = |reason| SendPermission::Denied { reason };
    if blocked {
        return deny(DenyReason::ContactBlocked);
    }
    match (purpose, latest) {
        (_, Some(ConsentStatus::OptedOut)) => deny(DenyReason::OptedOut),
        (ConsentPurpose::Marketing, None) => deny(DenyReason::NoOptIn),
        (ConsentPurpose::Marketing, Some(ConsentStatus::OptedIn))
        | (ConsentPurpose::Utility, None | Some(ConsentStatus::OptedIn)) => SendPermission::Allowed,
    }
}

#[cfg(test)]
mod tests {
    use super::{ConsentPurpose::*, ConsentStatus::*, *};

    #[test]
    fn utility_is_allowed_unless_opted_out() {
        assert_eq!(decide(false, Utility, None), SendPermission::Allowed);
        assert_eq!(
            decide(false, Utility, Some(OptedIn)),
            SendPermission::Allowed
        );
        assert_eq!(
            decide(false, Utility, Some(OptedOut)),
            SendPermission::Denied {
                reason: DenyReason::OptedOut
            }
        );
    }

    #[test]
    fn marketing_needs_a_standing_opt_in() {
        assert_eq!(
            decide(false, Marketing, None),
            SendPermission::Denied {
                reason: DenyReason::NoOptIn
            }
        );
        assert!(decide(false, Marketing, Some(OptedIn)).is_allowed());
        assert_eq!(
            decide(false, Marketing, Some(OptedOut)),
            SendPermission::Denied {
                reason: DenyReason::OptedOut
            }
        );
    }

    #[test]
    fn blocked_contacts_get_nothing() {
        for purpose in [Utility, Marketing] {
            for latest in [None, Some(OptedIn), Some(OptedOut)] {
                assert_eq!(
                    decide(true, purpose, latest),
                    SendPermission::Denied {
                        reason: DenyReason::ContactBlocked
                    }
                );
            }
        }
    }

    #[test]
    fn names_round_trip() {
        for c in ConsentChannel::ALL {
            assert_eq!(ConsentChannel::from_db(c.as_str()), Some(*c));
        }
        for s in ConsentSource::ALL {
            assert_eq!(ConsentSource::from_db(s.as_str()), Some(*s));
        }
        assert_eq!(ConsentStatus::from_db("opted_in"), Some(OptedIn));
        assert_eq!(ConsentPurpose::from_db("spam"), None);
    }
}
