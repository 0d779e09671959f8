//! Campaign domain values.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use wamage_contacts::AudienceSpec;

wamage_kernel::id_type!(
    /// A campaign: one template sent to an audience on one channel.
    CampaignId
);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CampaignStatus {
    Draft,
    Scheduled,
    Running,
    Paused,
    Completed,
    Cancelled,
    Failed,
}

impl CampaignStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Draft => "draft",
            Self::Scheduled => "scheduled",
            Self::Running => "running",
            Self::Paused => "paused",
            Self::Completed => "completed",
            Self::Cancelled => "cancelled",
            Self::Failed => "failed",
        }
    }

    pub fn from_db(s: &str) -> Self {
        match s {
            "scheduled" => Self::Scheduled,
            "running" => Self::Running,
            "paused" => Self::Paused,
            "completed" => Self::Completed,
            "cancelled" => Self::Cancelled,
            "failed" => Self::Failed,
            _ => Self::Draft,
        }
    }
}

/// A part of a finished (or running) campaign's recipients, for retargeting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Slice {
    Failed,
    Skipped,
    SentNotDelivered,
    DeliveredNotRead,
    Read,
    Replied,
    NotReplied,
}

impl Slice {
    /// The slice as a condition on `campaign_recipients`.
    pub fn sql(self) -> &'static str {
        match self {
            Self::Failed => "state = 'failed'",
            Self::Skipped => "state = 'skipped'",
            Self::SentNotDelivered => "state = 'sent' AND delivered_at IS NULL",
            Self::DeliveredNotRead => "delivered_at IS NOT NULL AND read_at IS NULL",
            Self::Read => "read_at IS NOT NULL",
            Self::Replied => "replied_at IS NOT NULL",
            Self::NotReplied => "sent_at IS NOT NULL AND replied_at IS NULL",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Self::Failed => "failed",
            Self::Skipped => "skipped",
            Self::SentNotDelivered => "sent but not delivered",
            Self::DeliveredNotRead => "delivered but not read",
            Self::Read => "read",
            Self::Replied => "replied",
            Self::NotReplied => "did not reply",
        }
    }
}

/// Who a campaign goes to: groups ∪ tags ∪ segments (∪ a slice of an earlier campaign), minus
/// the exclusions. An uploaded CSV becomes a group through the contacts import.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Audience {
    #[serde(default)]
    #[schema(value_type = Vec<uuid::Uuid>)]
    pub groups: Vec<wamage_contacts::GroupId>,
    #[serde(default)]
    #[schema(value_type = Vec<uuid::Uuid>)]
    pub tags: Vec<wamage_contacts::TagId>,
    #[serde(default)]
    #[schema(value_type = Vec<uuid::Uuid>)]
    pub segments: Vec<wamage_contacts::SegmentId>,
    #[serde(default)]
    #[schema(value_type = Vec<uuid::Uuid>)]
    pub exclude_groups: Vec<wamage_contacts::GroupId>,
    #[serde(default)]
    #[schema(value_type = Vec<uuid::Uuid>)]
    pub exclude_tags: Vec<wamage_contacts::TagId>,
    #[serde(default)]
    #[schema(value_type = Vec<uuid::Uuid>)]
    pub exclude_segments: Vec<wamage_contacts::SegmentId>,
    /// Retargeting: the recipients of an earlier campaign in this slice.
    #[serde(default)]
    pub from_campaign: Option<FromCampaign>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct FromCampaign {
    pub campaign_id: CampaignId,
    pub slice: Slice,
}

impl Audience {
    pub fn spec(&self) -> AudienceSpec {
        AudienceSpec {
            groups: self.groups.clone(),
            tags: self.tags.clone(),
            segments: self.segments.clone(),
            exclude_groups: self.exclude_groups.clone(),
            exclude_tags: self.exclude_tags.clone(),
            exclude_segments: self.exclude_segments.clone(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.spec().is_empty() && self.from_campaign.is_none()
    }
}
