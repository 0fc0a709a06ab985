//! `GET /v2/account/activities` and `GET /v2/account/activities/{type}`:
//! the account's fills (`FILL`), newest first by default, with Alpaca's
//! `activity_types`, `date`, `after`, `until`, `direction`, `page_size` and
//! `page_token`. The simulator has no other activity (no transfers, no
//! dividends, no fees apart from the fill price's), so other types are empty.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use serde_json::Value;

use crate::broker::{ApiError, CODE_INVALID};
use crate::routes::{Shared, parse_time, with_account};
use crate::wire;

const DAY: i64 = 86_400;

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::new(422, CODE_INVALID, message)
}

pub(crate) async fn all(
    state: Shared,
    headers: HeaderMap,
    q: Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    list(&state, &headers, None, &q)
}

pub(crate) async fn of_kind(
    state: Shared,
    headers: HeaderMap,
    Path(kind): Path<String>,
    q: Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    list(&state, &headers, Some(&kind), &q)
}

fn list(
    State(state): &Shared,
    headers: &HeaderMap,
    kind: Option<&str>,
    Query(q): &Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let types: Vec<String> = match (&kind, q.get("activity_types")) {
        (Some(k), _) => vec![(*k).to_owned()],
        (None, Some(t)) => t.split(',').map(|s| s.trim().to_owned()).collect(),
        (None, None) => vec!["FILL".to_owned()],
    };
    let fills_wanted = types.iter().any(|t| t.eq_ignore_ascii_case("FILL"));
    let time = |name: &str| {
        q.get(name)
            .map(|s| parse_time(s).ok_or_else(|| invalid(format!("invalid {name} {s:?}"))))
            .transpose()
    };
    let (date, after, until) = (time("date")?, time("after")?, time("until")?);
    let ascending = match q.get("direction").map(String::as_str) {
        None | Some("desc") => false,
        Some("asc") => true,
        Some(d) => return Err(invalid(format!("invalid direction {d:?} (asc or desc)"))),
    };
    let page_size = match q.get("page_size") {
        None => 100,
        Some(s) => s
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=100).contains(n))
            .ok_or_else(|| invalid(format!("invalid page_size {s:?} (1 to 100)")))?,
    };
    let page_token = q.get("page_token").filter(|t| !t.is_empty()).cloned();
    with_account(state, headers, |a, _, _| {
        if !fills_wanted {
            return Ok(Json(Value::Array(Vec::new())));
        }
        let mut fills: Vec<&crate::broker::Fill> = a
            .fills
            .iter()
            .filter(|f| date.is_none_or(|d| f.t >= d && f.t < d + DAY))
            .filter(|f| after.is_none_or(|t| f.t > t))
            .filter(|f| until.is_none_or(|t| f.t < t))
            .collect();
        if !ascending {
            fills.reverse();
        }
        // The token is the id of the last activity of the previous page.
        let start = match &page_token {
            None => 0,
            Some(t) => {
                fills
                    .iter()
                    .position(|f| &f.id == t)
                    .ok_or_else(|| invalid(format!("invalid page_token {t:?}")))?
                    + 1
            }
        };
        let page = fills
            .iter()
            .skip(start)
            .take(page_size)
            .map(|f| wire::fill_activity(&a.id, f))
            .collect();
        Ok(Json(Value::Array(page)))
    })
}
