//! What a request carries besides its route: query strings as the SDK's generated REST client writes them
//! (repeated keys for lists, `statuses=QUEUED&statuses=RUNNING`, `key:value` pairs for metadata filters, and
//! datetimes formatted as `%Y-%m-%dT%H:%M:%S.%f%z`, `+0000` rather than RFC 3339's `+00:00`; axum's `Query` cannot
//! take repeated keys, so this small parser keeps every pair), the `{tenant}` path segment checked against the token
//! ([`TenantQuery`]), and JSON bodies whose every rejection is a 400 ([`Body`]).

use crate::auth::http::AuthTenant;
use crate::error::AppError;
use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::request::Parts;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use std::collections::HashMap;
use uuid::Uuid;

/// The inputs of a route under `/tenants/{tenant}/...`: the token's tenant, checked against the `{tenant}` path
/// segment (see [`AuthTenant::check_path`]), and the query string.
#[derive(Debug, Clone)]
pub(crate) struct TenantQuery {
    /// The tenant, as the token and the path agree.
    pub tenant: Uuid,
    /// The query string.
    pub params: Params,
}

impl<S: Send + Sync> FromRequestParts<S> for TenantQuery {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let auth = AuthTenant::from_request_parts(parts, state).await?;
        let Path(path) = Path::<HashMap<String, String>>::from_request_parts(parts, state)
            .await
            .map_err(|e| AppError::InvalidArgument(e.body_text()))?;
        auth.check_path(path.get("tenant").map_or("", String::as_str))?;
        Ok(Self {
            tenant: auth.0 .0,
            params: Params::parse(parts.uri.query()),
        })
    }
}

/// A JSON body; a body that is not JSON, or not of the expected shape, is a 400 with the parser's message.
#[derive(Debug)]
pub(crate) struct Body<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        Json::<T>::from_request(req, state)
            .await
            .map(|Json(body)| Body(body))
            .map_err(|e| AppError::InvalidArgument(e.body_text()))
    }
}

/// The decoded pairs of a query string, in order.
#[derive(Debug, Clone, Default)]
pub(crate) struct Params(Vec<(String, String)>);

impl Params {
    /// Parses a raw query string (`None`: no query).
    pub(crate) fn parse(raw: Option<&str>) -> Self {
        let pairs = raw
            .unwrap_or("")
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|pair| {
                let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                (decode(k), decode(v))
            })
            .collect();
        Self(pairs)
    }

    /// The first value of a key.
    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    }

    /// Every value of a key (a repeated key, or one comma-separated value).
    pub(crate) fn all(&self, key: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == key)
            .flat_map(|(_, v)| v.split(',').map(str::to_owned).collect::<Vec<_>>())
            .filter(|v| !v.is_empty())
            .collect()
    }

    /// A list, or `None` when the key is absent.
    pub(crate) fn list(&self, key: &str) -> Option<Vec<String>> {
        Some(self.all(key)).filter(|v| !v.is_empty())
    }

    /// An integer.
    pub(crate) fn int(&self, key: &str) -> Result<Option<i64>, AppError> {
        self.get(key)
            .map(|v| {
                v.parse().map_err(|_| {
                    AppError::InvalidArgument(format!("{key} must be an integer, not {v:?}"))
                })
            })
            .transpose()
    }

    /// `offset` (default 0, never negative) and `limit` (default 50, at most 1000): the paging of every list.
    pub(crate) fn page(&self) -> Result<(i64, i64), AppError> {
        let offset = self.int("offset")?.unwrap_or(0).max(0);
        let limit = self.int("limit")?.unwrap_or(50).clamp(1, 1000);
        Ok((offset, limit))
    }

    /// A boolean (`true` / `false`).
    pub(crate) fn bool(&self, key: &str) -> Option<bool> {
        self.get(key).map(|v| v.eq_ignore_ascii_case("true"))
    }

    /// A datetime.
    pub(crate) fn datetime(&self, key: &str) -> Result<Option<DateTime<Utc>>, AppError> {
        self.get(key).map(|v| parse_datetime(key, v)).transpose()
    }

    /// A UUID.
    pub(crate) fn uuid(&self, key: &str) -> Result<Option<Uuid>, AppError> {
        self.get(key).map(|v| parse_uuid(key, v)).transpose()
    }

    /// A list of UUIDs.
    pub(crate) fn uuids(&self, key: &str) -> Result<Option<Vec<Uuid>>, AppError> {
        self.list(key)
            .map(|l| l.iter().map(|v| parse_uuid(key, v)).collect())
            .transpose()
    }

    /// `key:value` pairs as a JSON object (metadata filters).
    pub(crate) fn metadata(&self, key: &str) -> Result<Option<Value>, AppError> {
        metadata_object(key, &self.all_raw(key))
    }

    fn all_raw(&self, key: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .filter(|v| !v.is_empty())
            .collect()
    }
}

/// `["k:v", ...]` as `{"k": "v", ...}`; `None` for an empty list.
pub(crate) fn metadata_object(field: &str, pairs: &[String]) -> Result<Option<Value>, AppError> {
    if pairs.is_empty() {
        return Ok(None);
    }
    let mut out = Map::new();
    for pair in pairs {
        let (k, v) = pair.split_once(':').ok_or_else(|| {
            AppError::InvalidArgument(format!("{field} entries must be key:value, not {pair:?}"))
        })?;
        out.insert(k.to_owned(), Value::String(v.to_owned()));
    }
    Ok(Some(Value::Object(out)))
}

/// RFC 3339, or the SDK's `%Y-%m-%dT%H:%M:%S.%f%z`.
pub(crate) fn parse_datetime(field: &str, v: &str) -> Result<DateTime<Utc>, AppError> {
    DateTime::parse_from_rfc3339(v)
        .or_else(|_| DateTime::parse_from_str(v, "%Y-%m-%dT%H:%M:%S%.f%z"))
        .map(|d| d.with_timezone(&Utc))
        .map_err(|_| AppError::InvalidArgument(format!("{field} must be a datetime, not {v:?}")))
}

/// A UUID parameter.
pub(crate) fn parse_uuid(field: &str, v: &str) -> Result<Uuid, AppError> {
    Uuid::parse_str(v.trim())
        .map_err(|_| AppError::InvalidArgument(format!("{field} must be a UUID, not {v:?}")))
}

fn decode(s: &str) -> String {
    fn hex(b: u8) -> Option<u8> {
        match b {
            b'0'..=b'9' => Some(b - b'0'),
            b'a'..=b'f' => Some(b - b'a' + 10),
            b'A'..=b'F' => Some(b - b'A' + 10),
            _ => None,
        }
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h * 16 + l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sdk_queries() {
        let p = Params::parse(Some(
            "since=2026-11-23T16%3A17%3A56.123456%2B0000&statuses=QUEUED&statuses=RUNNING\
             &additional_metadata=test_id%3Aabc&additional_metadata=k%3Av%3Aw&limit=5&only_tasks=false",
        ));
        let since = p.datetime("since").unwrap().unwrap();
        assert_eq!(since.to_rfc3339(), "2026-11-23T16:17:56.123456+00:00");
        assert_eq!(p.all("statuses"), vec!["QUEUED", "RUNNING"]);
        assert_eq!(
            p.metadata("additional_metadata").unwrap().unwrap(),
            serde_json::json!({"test_id": "abc", "k": "v:w"})
        );
        assert_eq!(p.int("limit").unwrap(), Some(5));
        assert_eq!(p.bool("only_tasks"), Some(false));
        assert_eq!(p.get("missing"), None);
        assert!(p.int("statuses").is_err());
        assert_eq!(decode("a%2"), "a%2");
        assert_eq!(decode("100%"), "100%");
    }

    #[test]
    fn rfc3339_works_too() {
        assert!(parse_datetime("t", "2026-01-02T03:04:05Z").is_ok());
        assert!(parse_datetime("t", "yesterday").is_err());
    }
}
