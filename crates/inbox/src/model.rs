//! Inbox domain values.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use wamage_kernel::id_type;

id_type!(
    /// A conversation with one customer address on one channel.
    ConversationId
);
id_type!(
    /// A message of a conversation (inbound, outbound or a private note).
    MessageId
);
id_type!(
    /// An uploaded file waiting to be sent.
    AttachmentId
);
id_type!(
    /// A canned response.
    CannedId
);

/// Longest message text, in characters (WhatsApp's text limit).
pub const TEXT_MAX: usize = 4096;
/// Longest label, in characters; at most [`LABELS_MAX`] per conversation.
pub const LABEL_MAX: usize = 40;
pub const LABELS_MAX: usize = 20;
/// The WhatsApp customer-service window.
pub const WINDOW: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

macro_rules! str_enum {
    ($(#[$m:meta])* $name:ident { $($variant:ident = $s:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
        #[serde(rename_all = "snake_case")]
        pub enum $name {
            $($variant),+
        }

        impl $name {
            pub const ALL: &'static [Self] = &[$(Self::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $s),+
                }
            }

            pub fn parse(s: &str) -> Option<Self> {
                Self::ALL.iter().copied().find(|v| v.as_str() == s)
            }
        }
    };
}

str_enum!(
    /// Where a conversation is.
    ConversationStatus {
        Open = "open",
        Pending = "pending",
        Snoozed = "snoozed",
        Resolved = "resolved",
    }
);

str_enum!(
    Priority {
        None = "none",
        Low = "low",
        Medium = "medium",
        High = "high",
        Urgent = "urgent",
    }
);

str_enum!(
    Direction {
        Inbound = "inbound",
        Outbound = "outbound",
    }
);

/// Is `label` a valid label (1–40 characters, no control characters)?
pub fn valid_label(label: &str) -> bool {
    let n = label.chars().count();
    (1..=LABEL_MAX).contains(&n) && !label.chars().any(char::is_control) && label.trim() == label
}

/// Is `s` a valid canned-response shortcut (`[a-z0-9_-]{1,32}`)?
pub fn valid_shortcut(s: &str) -> bool {
    (1..=32).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// The words of an opt-out: the whole message, trimmed and upper-cased, is one of these.
pub const OPT_OUT_KEYWORDS: &[&str] = &[
    "STOP",
    "STOPP",
    "UNSUBSCRIBE",
    "STOP ALL",
    "OPT OUT",
    "OPTOUT",
    "CANCEL",
    "END",
    "QUIT",
    "ARRET",
    "ARRÊT",
    "BAJA",
    "ALTO",
    "PARAR",
    "ABMELDEN",
    "AFMELDEN",
];
/// Words that opt back in.
pub const OPT_IN_KEYWORDS: &[&str] = &["START", "UNSTOP", "SUBSCRIBE"];

/// Text for a list preview: first line-ish, at most 120 characters.
pub fn preview(text: &str) -> String {
    let flat: String = text
        .chars()
        .map(|c| if c.is_whitespace() { ' ' } else { c })
        .collect();
    let flat = flat.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() > 120 {
        let cut: String = flat.chars().take(119).collect();
        format!("{cut}…")
    } else {
        flat
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_and_shortcuts() {
        assert!(valid_label("billing"));
        assert!(!valid_label(""));
        assert!(!valid_label(" padded "));
        assert!(!valid_label(&"x".repeat(41)));
        assert!(valid_shortcut("refund-policy_2"));
        assert!(!valid_shortcut("Refund"));
        assert!(!valid_shortcut(""));
    }

    #[test]
    fn previews_flatten_and_cut() {
        assert_eq!(preview("a\n\nb   c"), "a b c");
        let long = "x".repeat(200);
        assert_eq!(preview(&long).chars().count(), 120);
    }
}
