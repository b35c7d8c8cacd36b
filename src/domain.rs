//! Domain records shared by storage, auth and the HTTP edge. No I/O here.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// A new time-ordered (v7) id.
            pub fn new_v7() -> Self {
                Self(Uuid::now_v7())
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.fmt(f)
            }
        }

        impl From<Uuid> for $name {
            fn from(id: Uuid) -> Self {
                Self(id)
            }
        }
    };
}

id_type!(
    /// An organization: the tenant that owns machine keys and workspaces. Always UUID v4.
    OrganizationId
);
id_type!(
    /// A workspace inside an organization.
    WorkspaceId
);
id_type!(
    /// An accepted event.
    EventId
);
id_type!(
    /// One delivery of one event through one rule.
    RuleEventId
);
id_type!(
    /// A rule (event → connection action).
    RuleId
);
id_type!(
    /// A destination connection (an account plus its credentials).
    ConnectionId
);
id_type!(
    /// A publishable key row.
    PublishableKeyId
);

impl OrganizationId {
    /// Organization ids are UUID v4: the official management SDK rejects other versions.
    pub fn new_v4() -> Self {
        Self(Uuid::new_v4())
    }
}

/// An organization (tenant).
#[derive(Clone, Debug, PartialEq)]
pub struct Organization {
    pub id: OrganizationId,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

/// A workspace.
#[derive(Clone, Debug, PartialEq)]
pub struct Workspace {
    pub id: WorkspaceId,
    pub organization_id: OrganizationId,
    pub name: String,
    pub description: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// An organization machine key. The secret is stored only encrypted (AES-256-GCM under the master key).
#[derive(Clone, Debug, PartialEq)]
pub struct MachineKey {
    /// `mk_…`, also the JWT `kid`. Unique.
    pub access_key: String,
    pub organization_id: OrganizationId,
    /// nonce ‖ ciphertext ‖ tag, as produced by `auth::crypto::MasterKey::seal`.
    pub secret_ciphertext: Vec<u8>,
    pub created_at: DateTime<Utc>,
}

/// A workspace's publishable key. At most one per workspace is active.
#[derive(Clone, Debug, PartialEq)]
pub struct PublishableKey {
    pub id: PublishableKeyId,
    pub organization_id: OrganizationId,
    pub workspace_id: WorkspaceId,
    /// The full `mesh_pub_…` string. Publishable by design (it is embedded in browsers). Unique.
    pub public_key: String,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

/// Delivery status of an event or a rule event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    Pending,
    Processing,
    Retrying,
    Completed,
    Failed,
    Canceled,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Processing => "processing",
            Self::Retrying => "retrying",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Canceled => "canceled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pending" => Self::Pending,
            "processing" => Self::Processing,
            "retrying" => Self::Retrying,
            "completed" => Self::Completed,
            "failed" => Self::Failed,
            "canceled" => Self::Canceled,
            _ => return None,
        })
    }
}

/// A rule event planned at ingest (one per matched rule), committed with its event.
#[derive(Clone, Debug, PartialEq)]
pub struct NewRuleEvent {
    pub id: RuleEventId,
    pub rule_id: RuleId,
    pub connection_id: ConnectionId,
    pub integration_type: String,
}

/// The idempotency claim an ingest request makes, if it sent `Idempotency-Key`.
#[derive(Clone, Debug, PartialEq)]
pub struct IdempotencyClaim {
    /// The header value (≤ 255 chars), scoped to the workspace.
    pub key: String,
    /// SHA-256 (hex) of the canonical request body; a repeat with another hash is a conflict.
    pub request_hash: String,
}

/// An event ready to be committed, with the rule events it fans out to.
#[derive(Clone, Debug, PartialEq)]
pub struct NewEvent {
    pub id: EventId,
    pub organization_id: OrganizationId,
    pub workspace_id: WorkspaceId,
    pub event: String,
    pub resource: String,
    pub resource_id: Option<String>,
    pub payload: serde_json::Value,
    /// `payload.email`, lower-cased, for support look-ups.
    pub contact_email: Option<String>,
    /// Names the credential: `publishable_key` or `machine_key`.
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    /// `Completed` when no rule matched, else `Pending`.
    pub status: DeliveryStatus,
    pub rule_events: Vec<NewRuleEvent>,
    pub idempotency: Option<IdempotencyClaim>,
}

/// A stored event (without its payload).
#[derive(Clone, Debug, PartialEq)]
pub struct EventRecord {
    pub id: EventId,
    pub organization_id: OrganizationId,
    pub workspace_id: WorkspaceId,
    pub event: String,
    pub resource: String,
    pub resource_id: Option<String>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub status: DeliveryStatus,
    pub total_rules: i64,
    pub completed_count: i64,
    pub failed_count: i64,
    pub started_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
}

/// What committing one `NewEvent` did.
#[derive(Clone, Debug, PartialEq)]
pub enum InsertOutcome {
    /// Stored now.
    Inserted(EventRecord),
    /// The idempotency key was already used with the same body within 24 h: the original event, nothing stored.
    Replayed(EventRecord),
    /// The idempotency key was already used with a different body within 24 h: nothing stored.
    IdempotencyConflict,
}

/// The current time truncated to microseconds, the precision both databases keep, so a record
/// read back equals the record written.
pub fn now() -> DateTime<Utc> {
    use chrono::DurationRound;
    Utc::now()
        .duration_trunc(chrono::TimeDelta::microseconds(1))
        .expect("truncating to microseconds cannot overflow")
}

/// A destination connection: an account plus its (sealed) credentials, owned by one workspace.
#[derive(Clone, Debug, PartialEq)]
pub struct Connection {
    pub id: ConnectionId,
    pub organization_id: OrganizationId,
    pub workspace_id: WorkspaceId,
    /// `activecampaign`.
    pub integration_type: String,
    pub name: String,
    /// The account URL (the client appends `/api/3`).
    pub api_url: String,
    /// The API key sealed with the master key (context `connection:<id>`). Never returned or logged.
    pub api_key_ciphertext: Vec<u8>,
    /// `metadata.rate_limit_per_second`; `None` means the default (5).
    pub rate_limit_per_second: Option<u32>,
    pub hidden: bool,
    pub active: bool,
    /// `authentication_invalid` after the destination rejected the key, else `None`.
    pub inactive_reason: Option<String>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A rule: when an event matches, perform `metadata.action` through `connection_id`.
#[derive(Clone, Debug, PartialEq)]
pub struct Rule {
    pub id: RuleId,
    pub organization_id: OrganizationId,
    pub workspace_id: WorkspaceId,
    pub connection_id: ConnectionId,
    /// The connection's integration type, copied at save time (`activecampaign`).
    pub integration_type: String,
    pub event: String,
    pub resource: Option<String>,
    pub resource_id: Option<String>,
    /// The validated metadata JSON (`{"action": "add_tag", "tag": "…"}`), as the API returns it.
    pub metadata: serde_json::Value,
    /// The validated conditions JSON array (`[]` when none).
    pub conditions: serde_json::Value,
    pub active: bool,
    pub hidden: bool,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Equality filters for listing rules; `None` means any.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RuleFilter {
    pub workspace: Option<WorkspaceId>,
    pub event: Option<String>,
    pub resource: Option<String>,
    pub resource_id: Option<String>,
}

/// What deleting a connection did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConnectionDeletion {
    NotFound,
    /// Rules still use it and `force` was not given: nothing deleted.
    InUse {
        rules: i64,
    },
    /// Deleted, with this many rules (only with `force`).
    Deleted {
        rules_deleted: i64,
    },
}

/// A change that makes cached rules of a workspace stale.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RuleChange {
    Workspace(WorkspaceId),
    /// Notifications may have been missed (listener reconnected): drop every cached workspace.
    All,
    /// Not a rule change: deliveries were committed somewhere (PostgreSQL: on any node), so delivery
    /// workers should claim now rather than at their next poll. Rule caches ignore it.
    DeliveriesDue,
}

/// One problem with a client's field, as `error.data[]` carries it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct FieldError {
    /// The field as the client sent it (`payload`, `[3].event`, `conditions[1].op`, `metadata.tag`).
    pub param: String,
    /// What is wrong, as a phrase that follows the field name (`"is required"`).
    pub msg: String,
}

impl FieldError {
    pub fn new(param: impl Into<String>, msg: impl Into<String>) -> Self {
        Self {
            param: param.into(),
            msg: msg.into(),
        }
    }
}

id_type!(
    /// One delivery attempt (append-only history).
    AttemptId
);

/// A rule event claimed by a worker, joined with everything performing it needs.
#[derive(Clone, Debug, PartialEq)]
pub struct ClaimedDelivery {
    pub rule_event_id: RuleEventId,
    pub organization_id: OrganizationId,
    pub workspace_id: WorkspaceId,
    pub event_id: EventId,
    pub rule_id: RuleId,
    pub connection_id: ConnectionId,
    /// Attempts made before this one (throttled ones included).
    pub attempt_count: i64,
    /// Of those, how many were throttled (they do not spend the retry budget).
    pub throttled_count: i64,
    /// The lease this claim holds; the worker must finish before it expires.
    pub lease_until: DateTime<Utc>,
    pub event: String,
    /// When the event was accepted (delivery latency is measured from it).
    pub event_created_at: DateTime<Utc>,
    pub resource: String,
    pub resource_id: Option<String>,
    /// `None` when the payload was purged.
    pub payload: Option<serde_json::Value>,
    /// The rule now (`None` when it was deleted since the event was accepted).
    pub rule: Option<Rule>,
    /// The connection now (`None` when it was deleted).
    pub connection: Option<Connection>,
}

/// The outcome class of an attempt, as history shows it (`outcome_code`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OutcomeCode {
    Delivered,
    RejectedClientError,
    RejectedServerError,
    RateLimited,
    AuthFailed,
    Timeout,
    NetworkError,
    MappingError,
    InternalError,
}

impl OutcomeCode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Delivered => "delivered",
            Self::RejectedClientError => "rejected_client_error",
            Self::RejectedServerError => "rejected_server_error",
            Self::RateLimited => "rate_limited",
            Self::AuthFailed => "auth_failed",
            Self::Timeout => "timeout",
            Self::NetworkError => "network_error",
            Self::MappingError => "mapping_error",
            Self::InternalError => "internal_error",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::Delivered,
            Self::RejectedClientError,
            Self::RejectedServerError,
            Self::RateLimited,
            Self::AuthFailed,
            Self::Timeout,
            Self::NetworkError,
            Self::MappingError,
            Self::InternalError,
        ]
        .into_iter()
        .find(|c| c.as_str() == s)
    }
}

/// One HTTP call made during an attempt (never credentials; excerpt ≤ 2 KiB).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CallRecord {
    pub method: String,
    pub path: String,
    pub status: Option<u16>,
    pub duration_ms: u64,
    pub response_excerpt: String,
}

/// One attempt, appended to history.
#[derive(Clone, Debug, PartialEq)]
pub struct AttemptRecord {
    pub id: AttemptId,
    pub organization_id: OrganizationId,
    pub workspace_id: WorkspaceId,
    pub event_id: EventId,
    pub rule_event_id: RuleEventId,
    /// 1-based.
    pub attempt_number: i64,
    pub started_at: DateTime<Utc>,
    pub duration_ms: i64,
    pub outcome_code: OutcomeCode,
    pub http_status: Option<u16>,
    pub error: Option<String>,
    pub calls: Vec<CallRecord>,
    /// Made by Send Test Event, not by delivery.
    pub is_test: bool,
}

/// What happens to a rule event after an attempt.
#[derive(Clone, Debug, PartialEq)]
pub enum Disposition {
    /// Done: `completed`.
    Completed,
    /// Try again at this time (`retrying`). `throttled` attempts do not spend the retry budget.
    RetryAt { at: DateTime<Utc>, throttled: bool },
    /// Give up: `failed`.
    Failed,
    /// The connection's key was rejected: `retrying` with no next attempt until the connection is fixed.
    Parked,
    /// The rule or connection is gone: `canceled`.
    Canceled,
}
