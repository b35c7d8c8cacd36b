//! The closed label sets of Handoff's metric families: each value has a dense index, so a family
//! allocates every series up front and recording never allocates.

use super::Label;
use crate::domain::OutcomeCode;

/// Which ingest endpoint served a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoint {
    Events,
    Bulk,
}

impl Label for Endpoint {
    const NAME: &'static str = "endpoint";
    const ALL: &'static [Self] = &[Self::Events, Self::Bulk];
    fn index(self) -> usize {
        self as usize
    }
    fn value(self) -> &'static str {
        match self {
            Self::Events => "events",
            Self::Bulk => "bulk",
        }
    }
}

/// What became of one submitted event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IngestResult {
    /// Committed now.
    Accepted,
    /// An `Idempotency-Key` repeat answered with the event committed before.
    Replayed,
    /// Refused (auth, validation, rate limit, key reuse, storage failure…).
    Rejected,
}

impl Label for IngestResult {
    const NAME: &'static str = "result";
    const ALL: &'static [Self] = &[Self::Accepted, Self::Replayed, Self::Rejected];
    fn index(self) -> usize {
        self as usize
    }
    fn value(self) -> &'static str {
        match self {
            Self::Accepted => "accepted",
            Self::Replayed => "replayed",
            Self::Rejected => "rejected",
        }
    }
}

/// An HTTP status among those the ingest endpoints answer; anything else is `other`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Status(usize);

const STATUSES: [(u16, &str); 14] = [
    (201, "201"),
    (207, "207"),
    (400, "400"),
    (401, "401"),
    (403, "403"),
    (404, "404"),
    (405, "405"),
    (413, "413"),
    (415, "415"),
    (422, "422"),
    (429, "429"),
    (500, "500"),
    (503, "503"),
    (0, "other"),
];

impl Status {
    pub fn of(code: u16) -> Self {
        let i = STATUSES[..STATUSES.len() - 1]
            .iter()
            .position(|(c, _)| *c == code)
            .unwrap_or(STATUSES.len() - 1);
        Self(i)
    }
}

impl Label for Status {
    const NAME: &'static str = "status";
    const ALL: &'static [Self] = &[
        Self(0),
        Self(1),
        Self(2),
        Self(3),
        Self(4),
        Self(5),
        Self(6),
        Self(7),
        Self(8),
        Self(9),
        Self(10),
        Self(11),
        Self(12),
        Self(13),
    ];
    fn index(self) -> usize {
        self.0
    }
    fn value(self) -> &'static str {
        STATUSES[self.0].1
    }
}

impl Label for OutcomeCode {
    const NAME: &'static str = "outcome";
    const ALL: &'static [Self] = &[
        Self::Delivered,
        Self::RejectedClientError,
        Self::RejectedServerError,
        Self::RateLimited,
        Self::AuthFailed,
        Self::Timeout,
        Self::NetworkError,
        Self::MappingError,
        Self::InternalError,
    ];
    fn index(self) -> usize {
        self as usize
    }
    fn value(self) -> &'static str {
        self.as_str()
    }
}

/// The destination type of a connection; `unknown` when the connection was deleted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Integration {
    ActiveCampaign,
    Unknown,
}

impl Integration {
    pub fn of(integration_type: Option<&str>) -> Self {
        match integration_type {
            Some("activecampaign") => Self::ActiveCampaign,
            _ => Self::Unknown,
        }
    }
}

impl Label for Integration {
    const NAME: &'static str = "integration";
    const ALL: &'static [Self] = &[Self::ActiveCampaign, Self::Unknown];
    fn index(self) -> usize {
        self as usize
    }
    fn value(self) -> &'static str {
        match self {
            Self::ActiveCampaign => "activecampaign",
            Self::Unknown => "unknown",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A family indexes its series by `index`: it must be each value's position in `ALL`.
    fn dense<L: Label + std::fmt::Debug>() {
        for (i, l) in L::ALL.iter().enumerate() {
            assert_eq!(l.index(), i, "{l:?}");
        }
    }

    #[test]
    fn every_label_index_is_its_position() {
        dense::<Endpoint>();
        dense::<IngestResult>();
        dense::<Status>();
        dense::<OutcomeCode>();
        dense::<Integration>();
        assert_eq!(Status::ALL.len(), STATUSES.len());
    }

    #[test]
    fn statuses_outside_the_known_set_are_other() {
        assert_eq!(Status::of(207).value(), "207");
        assert_eq!(Status::of(418).value(), "other");
        assert_eq!(Status::of(0).value(), "other");
        assert_eq!(
            Integration::of(Some("activecampaign")).value(),
            "activecampaign"
        );
        assert_eq!(Integration::of(None).value(), "unknown");
    }
}
