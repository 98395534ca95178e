//! Incident identifiers (`HF-<n>`).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// An incident number, shown as `HF-<n>`. Numbers are allocated by the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct IncidentId(pub u64);

impl fmt::Display for IncidentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HF-{}", self.0)
    }
}

/// Why a string is not an incident id.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("`{0}` is not an incident id: expected HF-<number>, e.g. HF-12")]
pub struct BadIncidentId(pub String);

impl FromStr for IncidentId {
    type Err = BadIncidentId;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        let digits = t
            .strip_prefix("HF-")
            .or_else(|| t.strip_prefix("hf-"))
            .unwrap_or(t);
        match digits.parse::<u64>() {
            Ok(n) if n > 0 => Ok(IncidentId(n)),
            _ => Err(BadIncidentId(s.to_string())),
        }
    }
}

impl From<IncidentId> for String {
    fn from(id: IncidentId) -> String {
        id.to_string()
    }
}

impl TryFrom<String> for IncidentId {
    type Error = BadIncidentId;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

/// In the server's OpenAPI document: the `HF-<n>` string it is on the wire.
#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for IncidentId {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .description(Some("an incident id, `HF-<n>`"))
            .examples(["HF-1"])
            .into()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for IncidentId {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints() {
        assert_eq!("HF-12".parse::<IncidentId>(), Ok(IncidentId(12)));
        assert_eq!("7".parse::<IncidentId>(), Ok(IncidentId(7)));
        assert_eq!(IncidentId(3).to_string(), "HF-3");
        assert!("HF-0".parse::<IncidentId>().is_err());
        assert!("HF-x".parse::<IncidentId>().is_err());
        assert!("".parse::<IncidentId>().is_err());
    }
}
