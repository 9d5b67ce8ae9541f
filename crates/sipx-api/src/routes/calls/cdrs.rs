//! `/v1/cdrs`: call detail records — one per ended call — as JSON pages or CSV.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use sipx_store::{CallFilter, CallRecord};
use utoipa::{IntoParams, ToSchema};

use super::{csv_response, wants_csv};
use crate::auth::Tenant;
use crate::extract::ApiQuery;
use crate::pagination::{ListParams, encode_cursor};
use crate::problem::ApiError;
use crate::state::ApiState;
use crate::time::rfc3339;

/// The record of one ended call.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"call_id": "call_01jd8x4q3w5e6r7t8y9u0i1o2p", "direction": "outbound",
    "from": "+4930999999", "to": "+4930123456", "route": "trunk:trunk_01jd8x4q3w5e6r7t8y9u0i1o2p",
    "room": "support", "codec": "PCMU", "start": "2026-11-29T10:00:00.000Z",
    "answer": "2026-11-29T10:00:04.100Z", "end": "2026-11-29T10:05:04.100Z",
    "duration_s": 300, "code": 200, "reason": "Normal call clearing", "cause": "remote_hangup"}))]
pub struct Cdr {
    pub call_id: String,
    pub direction: String,
    pub from: Option<String>,
    pub to: String,
    pub route: Option<String>,
    pub room: Option<String>,
    pub codec: Option<String>,
    #[schema(format = DateTime)]
    pub start: String,
    /// When the phone answered; none for unanswered calls.
    #[schema(format = DateTime)]
    pub answer: Option<String>,
    #[schema(format = DateTime)]
    pub end: String,
    /// Seconds from the answer to the end (0 when unanswered).
    pub duration_s: u64,
    pub code: u16,
    pub reason: String,
    pub cause: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"items": [], "next_cursor": null}))]
pub struct CdrList {
    pub items: Vec<Cdr>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CdrQuery {
    /// Calls started at or after this time (RFC 3339).
    pub since: Option<String>,
    /// `csv` for CSV (as does `Accept: text/csv`), `json` (the default); anything else is a 400.
    pub format: Option<String>,
    /// Items per page (1–200, default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

fn cdr(c: CallRecord) -> Option<Cdr> {
    let end = c.progress.end?;
    let duration_s = c.progress.answered_at_ms.map_or(0, |a| {
        u64::try_from((end.at_ms - a).max(0) / 1000).unwrap_or(0)
    });
    Some(Cdr {
        call_id: c.id,
        direction: c.direction,
        from: c.from_uri,
        to: c.to_uri,
        route: c.route,
        room: c.room,
        codec: c.progress.codec,
        start: rfc3339(c.created_at_ms),
        answer: c.progress.answered_at_ms.map(rfc3339),
        end: rfc3339(end.at_ms),
        duration_s,
        code: end.code,
        reason: end.reason,
        cause: end.cause,
    })
}

/// One CSV field (RFC 4180), defused against spreadsheet formulas: a reason phrase comes from
/// the remote party and must not run as `=HYPERLINK(…)` in whoever opens the export.
fn csv_field(s: &str) -> String {
    let risky = s.starts_with(['=', '@', '\t', '\r'])
        || (s.starts_with(['+', '-']) && !s[1..].bytes().all(|b| b.is_ascii_digit()));
    let s = if risky { format!("'{s}") } else { s.to_owned() };
    if s.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

const CSV_HEADER: &str =
    "call_id,direction,from,to,route,room,codec,start,answer,end,duration_s,code,reason,cause\r\n";

fn to_csv(items: &[Cdr]) -> String {
    let mut out = String::from(CSV_HEADER);
    for c in items {
        let fields = [
            c.call_id.clone(),
            c.direction.clone(),
            c.from.clone().unwrap_or_default(),
            c.to.clone(),
            c.route.clone().unwrap_or_default(),
            c.room.clone().unwrap_or_default(),
            c.codec.clone().unwrap_or_default(),
            c.start.clone(),
            c.answer.clone().unwrap_or_default(),
            c.end.clone(),
            c.duration_s.to_string(),
            c.code.to_string(),
            c.reason.clone(),
            c.cause.clone(),
        ];
        let line: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
        out.push_str(&line.join(","));
        out.push_str("\r\n");
    }
    out
}

/// List call detail records
///
/// One record per ended call, oldest first. `?format=csv` (or `Accept: text/csv`) gives the
/// same page as CSV, with a header line; its `Link` header (`rel="next"`) gives the next
/// page's path and query, to which the credentials are added.
#[utoipa::path(get, path = "/v1/cdrs", tag = "calls", operation_id = "list_cdrs",
    params(CdrQuery),
    responses((status = 200, description = "One page of records, as JSON or as CSV",
        headers(("Link" = String, description = "CSV only, when more records follow: \
            `</v1/cdrs?format=csv&cursor=…>; rel=\"next\"`")), content(
        (CdrList = "application/json"),
        (String = "text/csv", example = json!(
            "call_id,direction,from,to,route,room,codec,start,answer,end,duration_s,code,reason,cause\r\n\
             call_01jd8x4q3w5e6r7t8y9u0i1o2p,outbound,+4930999999,+4930123456,trunk:trunk_1,support,PCMU,\
             2026-11-29T10:00:00.000Z,2026-11-29T10:00:04.100Z,2026-11-29T10:05:04.100Z,300,200,\
             Normal call clearing,remote_hangup\r\n"))))))]
pub async fn list(
    Tenant(app): Tenant,
    State(state): State<ApiState>,
    headers: HeaderMap,
    ApiQuery(q): ApiQuery<CdrQuery>,
) -> Result<Response, ApiError> {
    if q.format
        .as_deref()
        .is_some_and(|f| !matches!(f, "json" | "csv"))
    {
        return Err(ApiError::BadRequest(
            "format must be json or csv".to_owned(),
        ));
    }
    let since_ms = match &q.since {
        None => None,
        Some(s) => Some(
            crate::time::parse_rfc3339_ms(s)
                .ok_or_else(|| ApiError::BadRequest("since must be an RFC 3339 time".to_owned()))?,
        ),
    };
    let page = ListParams {
        limit: q.limit,
        cursor: q.cursor.clone(),
    }
    .to_page_request()?;
    let filter = CallFilter {
        ended: Some(true),
        since_ms,
        ..CallFilter::default()
    };
    let page = state.store.list_calls(&app.id, &filter, &page).await?;
    let items: Vec<Cdr> = page.items.into_iter().filter_map(cdr).collect();
    if wants_csv(&headers, q.format.as_deref()) {
        let mut response = csv_response(to_csv(&items), "sipx-cdrs.csv");
        // CSV has no room for the cursor: the next page's address goes in a `Link` header.
        if let Some(next) = page
            .next_after
            .as_deref()
            .map(|after| next_csv_page(&q, after))
            && let Ok(value) = HeaderValue::from_str(&format!("<{next}>; rel=\"next\""))
        {
            response.headers_mut().insert(header::LINK, value);
        }
        return Ok(response);
    }
    Ok(Json(CdrList {
        items,
        next_cursor: page.next_after.as_deref().map(encode_cursor),
    })
    .into_response())
}

/// The path and query of the CSV page after the record `after`, with the same filter and
/// page size (credentials are the client's to add).
fn next_csv_page(q: &CdrQuery, after: &str) -> String {
    let mut next = format!("/v1/cdrs?format=csv&cursor={}", encode_cursor(after));
    if let Some(limit) = q.limit {
        next.push_str(&format!("&limit={limit}"));
    }
    if let Some(since) = &q.since {
        // An RFC 3339 time (checked): only its `+` needs escaping in a query.
        next.push_str(&format!("&since={}", since.replace('+', "%2B")));
    }
    next
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_are_quoted_and_defused() {
        assert_eq!(csv_field("+4930123"), "+4930123");
        assert_eq!(csv_field("Busy, really"), "\"Busy, really\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
        assert_eq!(csv_field("-1+2"), "'-1+2");
        assert_eq!(csv_field(""), "");
    }
}
