//! Channel domain values: ids, kinds, health.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use wamage_kernel::id_type;

id_type!(
    /// A connected provider account (WhatsApp number, Telegram bot, Sandbox).
    ChannelId
);
id_type!(
    /// A raw webhook event as received.
    EventId
);

/// Longest channel name, in characters.
pub const NAME_MAX: usize = 80;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[schema(as = InboxChannelKind)]
#[serde(rename_all = "snake_case")]
pub enum ChannelKind {
    Whatsapp,
    Telegram,
    Sandbox,
}

impl ChannelKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Whatsapp => "whatsapp",
            Self::Telegram => "telegram",
            Self::Sandbox => "sandbox",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "whatsapp" => Self::Whatsapp,
            "telegram" => Self::Telegram,
            "sandbox" => Self::Sandbox,
            _ => return None,
        })
    }

    /// Default pacing: Meta's 80 messages per second per number, Telegram's ~30 per bot.
    pub fn default_rate(self) -> u32 {
        match self {
            Self::Whatsapp => 80,
            Self::Telegram => 30,
            Self::Sandbox => 1000,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum HealthState {
    Unknown,
    Healthy,
    Unhealthy,
}

impl HealthState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unknown => "unknown",
            Self::Healthy => "healthy",
            Self::Unhealthy => "unhealthy",
        }
    }

    pub fn parse(s: &str) -> Self {
        match s {
            "healthy" => Self::Healthy,
            "unhealthy" => Self::Unhealthy,
            _ => Self::Unknown,
        }
    }
}

/// How a resolved conversation reacts to a new customer message.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReopenPolicy {
    /// The same conversation opens again (its history continues).
    #[default]
    Reopen,
    /// A new conversation starts; the resolved one stays resolved.
    New,
}
