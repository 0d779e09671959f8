//! The provider-neutral contract between the channel adapters (`whatsapp`, `telegram`,
//! `sandbox`) and everything above them (the inbox, campaigns).
//!
//! Inbound, an adapter turns one verified webhook body (or one `getUpdates` page) into a list
//! of [`Inbound`] items; nothing above this module reads a provider's JSON. Outbound, the
//! sender hands an adapter one [`Outbound`] for one [`Recipient`] and gets back the provider's
//! message id or a [`SendError`] already classified into retryable / permanent / needs-action.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Who wrote to us, as the provider identified them. WhatsApp gives a phone number (`wa_id`,
/// digits without `+`) and/or a business-scoped user id (`user_id`) and maybe a `username`;
/// Telegram gives a 64-bit user id and the chat id the conversation happens in.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sender {
    /// E.164 with the leading `+` (normalised from WhatsApp's `wa_id`).
    pub phone: Option<String>,
    /// WhatsApp business-scoped user id.
    pub wa_user_id: Option<String>,
    /// WhatsApp or Telegram username, without `@`.
    pub username: Option<String>,
    pub telegram_user_id: Option<i64>,
    /// The Telegram chat to answer in (private chat id = user id; groups are negative).
    pub telegram_chat_id: Option<i64>,
    /// Display name from the provider's profile.
    pub name: Option<String>,
}

/// Where an outbound message goes: the provider's address of the customer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Recipient {
    /// WhatsApp by phone (E.164 with `+`; sent as digits) or business-scoped user id.
    Whatsapp {
        phone: Option<String>,
        user_id: Option<String>,
    },
    Telegram {
        chat_id: i64,
    },
    /// The built-in simulated customer, keyed by an opaque handle.
    Sandbox {
        handle: String,
    },
}

/// The kinds of media both directions know.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MediaKind {
    Image,
    Video,
    Audio,
    /// A voice note (WhatsApp `audio` with `voice: true`, Telegram `voice`).
    Voice,
    Document,
    Sticker,
}

impl MediaKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Image => "image",
            Self::Video => "video",
            Self::Audio => "audio",
            Self::Voice => "voice",
            Self::Document => "document",
            Self::Sticker => "sticker",
        }
    }
}

/// A piece of media as the provider references it (download it with
/// [`crate::ProviderClient::download_media`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MediaRef {
    pub kind: MediaKind,
    /// WhatsApp media id or Telegram `file_id`.
    pub provider_media_id: String,
    pub mime_type: Option<String>,
    pub sha256: Option<String>,
    pub filename: Option<String>,
    pub caption: Option<String>,
    pub size: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Location {
    pub latitude: f64,
    pub longitude: f64,
    pub name: Option<String>,
    pub address: Option<String>,
}

/// An error the provider attached to a message or status (`errors[]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderError {
    pub code: i64,
    pub title: String,
    pub detail: Option<String>,
}

/// The content of an inbound message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum InboundContent {
    Text {
        body: String,
    },
    Media(MediaRef),
    Location(Location),
    /// Shared contact cards, kept as the provider sent them.
    Contacts {
        contacts: Value,
    },
    /// A tap on one of our interactive reply buttons or list rows.
    InteractiveReply {
        /// `button_reply` or `list_reply`.
        reply_kind: String,
        id: String,
        title: String,
        description: Option<String>,
    },
    /// A tap on a template's quick-reply button (WhatsApp `button`), or a Telegram
    /// `callback_query` (then `callback_id` is set and must be answered).
    Button {
        payload: String,
        text: String,
        callback_id: Option<String>,
    },
    /// A reaction to one of the conversation's messages; an empty emoji removes it.
    Reaction {
        to_provider_message_id: String,
        emoji: String,
    },
    /// A message type the provider could not deliver to us (`unsupported` / `unknown`).
    Unsupported {
        errors: Vec<ProviderError>,
    },
    /// A system notice (number changed, customer identity changed, joined group …).
    System {
        body: String,
    },
}

/// A message a customer sent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InboundMessage {
    /// Unique per channel (WhatsApp `wamid…`; Telegram `{chat_id}:{message_id}`).
    pub provider_message_id: String,
    pub from: Sender,
    /// Provider timestamp, milliseconds since the epoch.
    pub sent_at_ms: i64,
    pub content: InboundContent,
    /// The provider id of the message this one replies to (`context.id`, `reply_to_message`).
    pub reply_to: Option<String>,
    /// True for Telegram `edited_message` (same provider id as the original).
    pub edited: bool,
    /// Telegram `channel_post` or a group chat (not a one-to-one conversation).
    pub group: bool,
}

/// Delivery states of an outbound message, in the order they only ever move through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    Queued,
    Sent,
    Delivered,
    Read,
    /// A voice note or video was played (WhatsApp `played`).
    Played,
    Failed,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Sent => "sent",
            Self::Delivered => "delivered",
            Self::Read => "read",
            Self::Played => "played",
            Self::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "queued" => Self::Queued,
            "sent" => Self::Sent,
            "delivered" => Self::Delivered,
            "read" => Self::Read,
            "played" => Self::Played,
            "failed" => Self::Failed,
            _ => return None,
        })
    }

    /// The forward-only rule for status updates that arrive out of order, duplicated or with
    /// steps skipped: may a message in `self` move to `next`?
    ///
    /// - `queued → sent → delivered → read → played` only ever moves right (skips allowed);
    ///   the same or an earlier state is a no-op.
    /// - `failed` can be reached from any state before `delivered`, and is terminal …
    /// - … except that a later `delivered`/`read`/`played` proves the customer got the message
    ///   (providers report a failed retry of a message that was in fact delivered), so it
    ///   replaces `failed`.
    /// - Once delivered, a `failed` no longer applies (the message reached the customer).
    pub fn may_advance_to(self, next: Self) -> bool {
        use DeliveryStatus::*;
        match (self, next) {
            (a, b) if a == b => false,
            (Failed, Delivered | Read | Played) => true,
            (Failed, _) => false,
            (Queued | Sent, Failed) => true,
            (_, Failed) => false,
            (a, b) => b > a,
        }
    }
}

/// A delivery report for one of our messages.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusUpdate {
    pub provider_message_id: String,
    pub status: DeliveryStatus,
    pub at_ms: i64,
    /// The customer's address as the provider reports it (WhatsApp `recipient_id`).
    pub recipient: Option<String>,
    pub errors: Vec<ProviderError>,
    /// What the send asked the provider to echo (WhatsApp `biz_opaque_callback_data`): how a
    /// report finds a campaign send whose answer was lost.
    #[serde(default)]
    pub callback_data: Option<String>,
}

/// One thing a webhook told us.
// Messages dominate the stream, so boxing the large variant would cost an allocation for the
// common case to save stack on the rare ones.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Inbound {
    Message(InboundMessage),
    Status(StatusUpdate),
    /// The customer blocked (`blocked: true`) or unblocked the bot (Telegram `my_chat_member`).
    BotBlocked {
        from: Sender,
        blocked: bool,
    },
    /// A WhatsApp template changed state (`message_template_status_update`), for templates.
    TemplateStatus {
        template_id: String,
        name: String,
        language: String,
        status: String,
        reason: Option<String>,
    },
    /// Something valid but not for us (e.g. a field we do not subscribe to); kept in the raw log.
    Ignored {
        reason: String,
    },
}

/// A webhook body (or `getUpdates` item) that is not what the provider sends: answer 400 and keep
/// the raw body for inspection. Items inside a valid body that we cannot use are not errors; they
/// become [`Inbound::Ignored`].
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("webhook body is not valid JSON: {0}")]
    InvalidJson(#[from] serde_json::Error),
    #[error("webhook is for {found:?}, expected {expected:?}")]
    WrongObject {
        expected: &'static str,
        found: String,
    },
    #[error("malformed webhook: {0}")]
    Malformed(String),
}

/// A button of an interactive message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplyButton {
    pub id: String,
    pub title: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListRow {
    pub id: String,
    pub title: String,
    pub description: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListSection {
    pub title: String,
    pub rows: Vec<ListRow>,
}

/// Media to send: an id the provider already has (uploaded or received), or a public link.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboundMedia {
    pub kind: MediaKind,
    pub provider_media_id: Option<String>,
    pub link: Option<String>,
    pub caption: Option<String>,
    pub filename: Option<String>,
}

/// A template parameter (WhatsApp `parameters[]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum TemplateParam {
    Text {
        text: String,
        /// For named parameters (`{{first_name}}`).
        parameter_name: Option<String>,
    },
    Image {
        link: String,
    },
    Video {
        link: String,
    },
    Document {
        link: String,
        filename: Option<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplateButtonParam {
    /// `quick_reply` (payload) or `url` (text suffix) or `copy_code` (coupon code).
    pub sub_type: String,
    pub index: u32,
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplateMessage {
    pub name: String,
    pub language: String,
    pub header: Vec<TemplateParam>,
    pub body: Vec<TemplateParam>,
    pub buttons: Vec<TemplateButtonParam>,
}

/// What to send.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum OutboundContent {
    Text {
        body: String,
        preview_url: bool,
        /// Telegram inline keyboard / WhatsApp has no equivalent for plain text.
        buttons: Vec<ReplyButton>,
    },
    Media(OutboundMedia),
    Template(TemplateMessage),
    /// Up to 3 reply buttons (WhatsApp), an inline keyboard (Telegram).
    Buttons {
        body: String,
        header: Option<String>,
        footer: Option<String>,
        buttons: Vec<ReplyButton>,
    },
    List {
        body: String,
        header: Option<String>,
        footer: Option<String>,
        button: String,
        sections: Vec<ListSection>,
    },
    Reaction {
        to_provider_message_id: String,
        /// Empty removes our reaction.
        emoji: String,
    },
    Location(Location),
}

/// One outbound message for one recipient.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Outbound {
    pub to: Recipient,
    pub content: OutboundContent,
    /// Provider id of the message we reply to (WhatsApp `context.message_id`, Telegram
    /// `reply_parameters.message_id`, taken from `{chat_id}:{message_id}`).
    pub reply_to: Option<String>,
    /// Echoed by the provider in this message's delivery reports (WhatsApp
    /// `biz_opaque_callback_data`, at most 512 characters; other providers ignore it).
    #[serde(default)]
    pub callback_data: Option<String>,
}

/// What a successful send returns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sent {
    /// The id status updates will refer to (WhatsApp `messages[0].id`; Telegram
    /// `{chat_id}:{message_id}`).
    pub provider_message_id: String,
}

/// Why an action on the channel is needed (the channel is marked unhealthy or the send is
/// refused with this reason).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionNeeded {
    /// 190: the access token expired or was revoked; the channel is unhealthy.
    ExpiredToken,
    /// 131047: more than 24 hours since the customer last wrote; only templates may be sent.
    OutsideWindow,
    /// 131031 / 368 and friends: the business account is restricted or locked.
    AccountRestricted,
    /// Telegram 403: the user blocked the bot.
    BlockedByUser,
    /// 131050 / 131049: the customer opted out of marketing, or Meta's per-user limit.
    MarketingOptOut,
    /// 131049: Meta did not deliver to keep engagement healthy (per-user marketing limit).
    MarketingLimit,
}

/// A classified provider failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// Try again later (throughput 130429, pair rate 131056, 5xx, timeouts, Telegram 429).
    #[error("retryable provider error {code}: {message}")]
    Retryable {
        code: i64,
        message: String,
        retry_after: Option<Duration>,
    },
    /// Never succeeds as is (131026 undeliverable, 100 invalid parameter, 132xxx template …).
    #[error("permanent provider error {code}: {message}")]
    Permanent { code: i64, message: String },
    /// Someone has to act first.
    #[error("provider error {code} needs action ({action:?}): {message}")]
    NeedsAction {
        code: i64,
        message: String,
        action: ActionNeeded,
    },
}

impl SendError {
    pub fn code(&self) -> i64 {
        match self {
            Self::Retryable { code, .. }
            | Self::Permanent { code, .. }
            | Self::NeedsAction { code, .. } => *code,
        }
    }

    pub fn message(&self) -> &str {
        match self {
            Self::Retryable { message, .. }
            | Self::Permanent { message, .. }
            | Self::NeedsAction { message, .. } => message,
        }
    }

    /// Code of a request that got no answer in time (the provider may still have acted on it).
    pub const CODE_TIMEOUT: i64 = -1;
    /// Code of a request that could not be sent or whose answer broke off (connection refused,
    /// reset, TLS failure).
    pub const CODE_TRANSPORT: i64 = -2;
    /// Code of an answer we could not understand (not JSON, required fields missing).
    pub const CODE_BAD_RESPONSE: i64 = -3;

    /// True for errors worth retrying later.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Retryable { .. })
    }

    /// How long the provider asked us to wait, when it said.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Retryable { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// The action someone has to take first, for needs-action errors.
    pub fn action(&self) -> Option<ActionNeeded> {
        match self {
            Self::NeedsAction { action, .. } => Some(*action),
            _ => None,
        }
    }
}

/// Classifies a failure below the provider's API (no HTTP answer, or an unreadable one). Both
/// adapters share it: a timeout or a broken connection is always worth another try. The URL is
/// left out of the message (Telegram's carries the bot token).
pub(crate) fn transport_error(err: reqwest::Error) -> SendError {
    let err = err.without_url();
    if err.is_timeout() {
        SendError::Retryable {
            code: SendError::CODE_TIMEOUT,
            message: format!("provider did not answer in time: {err}"),
            retry_after: None,
        }
    } else if err.is_decode() {
        // The request reached the provider and it answered; whatever it was, the same request
        // will most likely get the same answer.
        SendError::Permanent {
            code: SendError::CODE_BAD_RESPONSE,
            message: format!("unreadable provider answer: {err}"),
        }
    } else {
        SendError::Retryable {
            code: SendError::CODE_TRANSPORT,
            message: format!("provider unreachable: {err}"),
            retry_after: None,
        }
    }
}

/// Downloaded media bytes.
#[derive(Debug, Clone)]
pub struct MediaBytes {
    pub bytes: bytes::Bytes,
    pub mime_type: Option<String>,
}

/// What every adapter's HTTP client does for the sender, the media downloader and the
/// channel's "test connection" button. Errors are already classified.
#[async_trait::async_trait]
pub trait ProviderClient: Send + Sync + 'static {
    /// Sends one message; the provider's id comes back.
    async fn send(&self, msg: &Outbound) -> Result<Sent, SendError>;
    /// Tells the provider the customer's message was read (WhatsApp blue ticks; a no-op on
    /// Telegram).
    async fn mark_read(&self, provider_message_id: &str) -> Result<(), SendError>;
    /// Fetches media a customer sent (WhatsApp: media id → URL → bytes, both with the token;
    /// Telegram: `getFile` → file path → bytes).
    async fn download_media(&self, provider_media_id: &str) -> Result<MediaBytes, SendError>;
    /// Checks the credentials and returns what the provider says about the account
    /// (WhatsApp phone number's `display_phone_number`, `verified_name`, `quality_rating`;
    /// Telegram `getMe`).
    async fn check(&self) -> Result<Value, SendError>;
}
