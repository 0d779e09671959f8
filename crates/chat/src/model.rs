//! Chat domain values, parsed once: channel kinds and names, disappearing settings, mentions
//! in message text, reaction emoji and search words.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use wamage_kernel::{UserId, id_type};

id_type!(
    /// A channel, DM or group DM.
    ChannelId
);
id_type!(
    /// A chat message (top-level or a thread reply).
    ChatMessageId
);
id_type!(
    /// An uploaded chat file.
    AttachmentId
);

/// Longest message text, in characters.
pub const TEXT_MAX: usize = 8000;
/// Longest channel name, in characters.
pub const NAME_MAX: usize = 80;
/// Longest topic, in characters.
pub const TOPIC_MAX: usize = 250;
/// Longest reaction emoji, in characters.
pub const EMOJI_MAX: usize = 32;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ChannelKind {
    Public,
    Private,
    Dm,
    GroupDm,
}

impl ChannelKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Public => "public",
            Self::Private => "private",
            Self::Dm => "dm",
            Self::GroupDm => "group_dm",
        }
    }

    /// Reads a value written by us (the CHECK constraint keeps it valid); anything else is
    /// taken as the most closed kind.
    pub fn from_db(s: &str) -> Self {
        match s {
            "public" => Self::Public,
            "dm" => Self::Dm,
            "group_dm" => Self::GroupDm,
            _ => Self::Private,
        }
    }

    pub fn is_dm(self) -> bool {
        matches!(self, Self::Dm | Self::GroupDm)
    }
}

/// How long messages live in a channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub enum Disappearing {
    #[serde(rename = "off")]
    Off,
    #[serde(rename = "24h")]
    Day,
    #[serde(rename = "7d")]
    Week,
    #[serde(rename = "90d")]
    Quarter,
}

impl Disappearing {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Off => "off",
            Self::Day => "24h",
            Self::Week => "7d",
            Self::Quarter => "90d",
        }
    }

    pub fn from_db(s: &str) -> Self {
        match s {
            "24h" => Self::Day,
            "7d" => Self::Week,
            "90d" => Self::Quarter,
            _ => Self::Off,
        }
    }

    /// How long a message sent now lives; `None` when messages stay.
    pub fn lifetime(self) -> Option<Duration> {
        const DAY: u64 = 24 * 3600;
        match self {
            Self::Off => None,
            Self::Day => Some(Duration::from_secs(DAY)),
            Self::Week => Some(Duration::from_secs(7 * DAY)),
            Self::Quarter => Some(Duration::from_secs(90 * DAY)),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MemberRole {
    Admin,
    Member,
}

impl MemberRole {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Member => "member",
        }
    }

    pub fn from_db(s: &str) -> Self {
        if s == "admin" {
            Self::Admin
        } else {
            Self::Member
        }
    }
}

/// A channel name: trimmed, 1–80 characters of letters and digits (any script), `-`, `_` and
/// spaces. Returns the name and its case-insensitive key.
pub fn parse_channel_name(raw: &str) -> Result<(String, String), String> {
    let name = raw.trim();
    let n = name.chars().count();
    if n == 0 {
        return Err("must not be empty".to_owned());
    }
    if n > NAME_MAX {
        return Err(format!("must be at most {NAME_MAX} characters"));
    }
    if !name
        .chars()
        .all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | ' '))
    {
        return Err("may only contain letters, digits, spaces, `-` and `_`".to_owned());
    }
    // Runs of spaces collapse, so "a  b" and "a b" are the same name.
    let name = name
        .split(' ')
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>();
    let name = name.join(" ");
    let key = name.to_lowercase();
    Ok((name, key))
}

/// A reaction: 1–32 characters, no whitespace or control characters.
pub fn parse_emoji(raw: &str) -> Result<String, String> {
    let n = raw.chars().count();
    if n == 0 || n > EMOJI_MAX {
        return Err(format!("must be 1–{EMOJI_MAX} characters"));
    }
    if raw.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("must not contain spaces or control characters".to_owned());
    }
    Ok(raw.to_owned())
}

/// What a message text mentions: `@[Name](user:<uuid>)` tokens (in order, without duplicates)
/// and whether it says `@channel` or `@here` as a word.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Mentions {
    pub users: Vec<UserId>,
    pub channel: bool,
}

pub fn parse_mentions(text: &str) -> Mentions {
    let mut out = Mentions::default();
    let mut rest = text;
    while let Some(at) = rest.find("@[") {
        let after = &rest[at + 2..];
        // `@[Name](user:uuid)`: the name has no `]`, then exactly `(user:` + 36 chars + `)`.
        let parsed = after.find(']').and_then(|close| {
            let tail = after[close + 1..].strip_prefix("(user:")?;
            let id = tail.get(..36)?;
            tail[36..].starts_with(')').then_some(())?;
            let id = uuid::Uuid::parse_str(id).ok()?;
            Some((UserId(id), close + 1 + "(user:".len() + 37))
        });
        match parsed {
            Some((id, len)) => {
                if !out.users.contains(&id) {
                    out.users.push(id);
                }
                rest = &after[len..];
            }
            None => rest = after,
        }
    }
    for word in ["@channel", "@here"] {
        let mut from = 0;
        while let Some(pos) = text[from..].find(word) {
            let start = from + pos;
            let end = start + word.len();
            let before_ok = text[..start]
                .chars()
                .next_back()
                .is_none_or(|c| !c.is_alphanumeric() && c != '_');
            let after_ok = text[end..]
                .chars()
                .next()
                .is_none_or(|c| !c.is_alphanumeric() && c != '_');
            if before_ok && after_ok {
                out.channel = true;
                break;
            }
            from = end;
        }
    }
    out
}

/// The lower-cased words of a text, for the search index and search queries. A mention
/// token contributes its display name.
pub fn words(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty() && w.chars().count() <= 64)
        .map(str::to_lowercase)
}

/// The words of a search box entry (at most 8).
pub fn query_words(q: &str) -> Vec<String> {
    let mut out: Vec<String> = words(q).collect();
    out.dedup();
    out.truncate(8);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mentions_are_parsed_from_tokens_and_words() {
        let a = uuid::Uuid::now_v7();
        let b = uuid::Uuid::now_v7();
        let text = format!(
            "hi @[Ana Lima](user:{a}) and @[Ben](user:{b}), again @[Ana](user:{a}) @[x](user:nope)"
        );
        let m = parse_mentions(&text);
        assert_eq!(m.users, vec![UserId(a), UserId(b)]);
        assert!(!m.channel);
        assert!(parse_mentions("heads up @channel!").channel);
        assert!(parse_mentions("@here").channel);
        assert!(!parse_mentions("mail me at x@channels.io").channel);
        assert!(!parse_mentions("@channelx").channel);
        assert!(!parse_mentions("a@here").channel);
        assert_eq!(parse_mentions("@[unterminated"), Mentions::default());
    }

    #[test]
    fn channel_names_parse() {
        assert_eq!(
            parse_channel_name("  Sales  Team ").unwrap(),
            ("Sales Team".to_owned(), "sales team".to_owned())
        );
        assert!(parse_channel_name("vendas-são_paulo").is_ok());
        assert!(parse_channel_name("").is_err());
        assert!(parse_channel_name("a/b").is_err());
        assert!(parse_channel_name(&"x".repeat(81)).is_err());
    }

    #[test]
    fn emoji_and_words() {
        assert!(parse_emoji("👍").is_ok());
        assert!(parse_emoji("").is_err());
        assert!(parse_emoji("a b").is_err());
        assert!(parse_emoji(&"x".repeat(33)).is_err());
        assert_eq!(query_words("Hello, Wörld!"), vec!["hello", "wörld"]);
    }
}
