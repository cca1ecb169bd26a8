//! The OpenAPI 3.0.3 document of the tools, built from [`super::TOOLS`] (Playbook tools take 3.0,
//! so it is written here rather than by a generator that emits 3.1).
//!
//! Every operation is `POST /tools/<name>` with a required JSON body, a 200 answer and problem
//! answers for the statuses the server can give it: 400, 401, 403, 408, 413, 415, 500, 503, and each
//! tool's own (404, 409); other methods get 405 and are not operations. Security: the service
//! agent's Google ID token as a bearer token, or, for the account tools, the end user's ID token.
//! `?operation=<operationId>` gives a document of that one operation (CX Agent Studio takes one
//! operation per OpenAPI tool).

use serde_json::{Map, Value, json};

use super::{TOOLS, TOOLS_PREFIX, Tool, problem};

/// Problem statuses every operation can answer.
pub const COMMON_STATUSES: &[u16] = &[400, 401, 403, 408, 413, 415, 500, 503];

const SERVICE_AGENT: &str = "serviceAgentIdToken";
const END_USER: &str = "endUserIdToken";

/// The document for every tool. `server` is the base URL to publish, if known.
pub fn document(server: Option<&str>) -> Value {
    build(server, TOOLS.iter())
}

/// The document for one operation (`None` when no tool has that operationId), or every tool when
/// `operation` is `None`.
pub fn document_for(server: Option<&str>, operation: Option<&str>) -> Option<Value> {
    match operation {
        None => Some(document(server)),
        Some(op) => {
            let tool = TOOLS.iter().find(|t| t.operation_id == op)?;
            Some(build(server, std::iter::once(tool)))
        }
    }
}

/// The base URL from `X-Forwarded-Proto` (Cloud Run sets `https`) and `Host`; `None` when the host
/// is missing or not a plain host name.
pub fn server_url(proto: Option<&str>, host: Option<&str>) -> Option<String> {
    let host = host?.trim();
    let plain = !host.is_empty()
        && host.len() <= 255
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'));
    if !plain {
        return None;
    }
    let scheme = match proto.map(|p| p.trim().to_ascii_lowercase()) {
        Some(p) if p == "https" => "https",
        Some(p) if p == "http" => "http",
        _ if host.starts_with("127.0.0.1") || host.starts_with("localhost") => "http",
        _ => "https",
    };
    Some(format!("{scheme}://{host}"))
}

fn status_description(status: u16) -> &'static str {
    match status {
        400 => "Bad input: `errors` names each field and what would be right.",
        401 => "Missing or invalid ID token.",
        403 => "The token is valid but this caller may not do this.",
        404 => "The account does not exist.",
        408 => "The request body was not sent in time.",
        409 => "The slot is taken: `errors` names booking_time with free times nearby.",
        413 => "The request body is too large.",
        415 => "The request body is not JSON.",
        500 => "An internal error (no details are given).",
        503 => "A backend is unavailable; retry after the Retry-After seconds.",
        _ => "An error.",
    }
}

fn operation(tool: &Tool) -> Value {
    let mut responses = Map::new();
    responses.insert(
        "200".into(),
        json!({
            "description": "The answer.",
            "content": {"application/json": {"schema": (tool.response)()}}
        }),
    );
    let mut statuses: Vec<u16> = COMMON_STATUSES
        .iter()
        .chain(tool.statuses)
        .copied()
        .collect();
    statuses.sort_unstable();
    statuses.dedup();
    for status in statuses {
        responses.insert(
            status.to_string(),
            json!({
                "description": status_description(status),
                "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
            }),
        );
    }
    let scheme = if tool.end_user {
        END_USER
    } else {
        SERVICE_AGENT
    };
    json!({
        "operationId": tool.operation_id,
        "summary": tool.summary,
        "description": tool.description,
        "requestBody": {
            "required": true,
            "content": {"application/json": {"schema": (tool.request)()}}
        },
        "responses": responses,
        "security": [{scheme: []}]
    })
}

fn build<'t>(server: Option<&str>, tools: impl Iterator<Item = &'t Tool>) -> Value {
    let mut paths = Map::new();
    for tool in tools {
        paths.insert(
            format!("{TOOLS_PREFIX}{}", tool.name),
            json!({"post": operation(tool)}),
        );
    }
    let mut doc = json!({
        "openapi": "3.0.3",
        "info": {
            "title": "CarConnect assistant tools",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Tools for a CarConnect customer assistant: find dealers and service \
                centres, price and book a service, check the weather, and read the signed-in \
                customer's account. The same business rules answer the Dialogflow CX webhook tags. \
                Errors are RFC 9457 problem details."
        },
        "paths": paths,
        "components": {
            "securitySchemes": {
                SERVICE_AGENT: {
                    "type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                    "description": "A Google ID token of the Dialogflow or CX Agent Studio service agent \
                        (tool authentication: Service agent token, ID token)."
                },
                END_USER: {
                    "type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                    "description": "The signed-in end user's ID token (tool authentication: Bearer \
                        token set to the session parameter that holds it)."
                }
            },
            "schemas": {"Problem": problem::schema()}
        }
    });
    if let Some(url) = server {
        doc["servers"] = json!([{"url": url}]);
    }
    doc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_tool_is_one_post_operation_with_a_unique_operation_id() {
        let doc = document(Some("https://x.run.app"));
        assert_eq!(doc["openapi"], "3.0.3");
        let paths = doc["paths"].as_object().unwrap();
        assert_eq!(paths.len(), TOOLS.len());
        let mut ids = std::collections::HashSet::new();
        for tool in TOOLS {
            let op = &paths[&format!("/tools/{}", tool.name)]["post"];
            assert_eq!(op["operationId"], tool.operation_id);
            assert!(ids.insert(tool.operation_id), "{}", tool.operation_id);
            assert!(op["responses"]["200"].is_object());
            for s in COMMON_STATUSES {
                assert!(op["responses"][s.to_string()].is_object(), "{s}");
            }
        }
        assert_eq!(doc["servers"][0]["url"], "https://x.run.app");
    }

    #[test]
    fn one_operation_documents_only_that_tool() {
        let doc = document_for(None, Some("findDealers")).unwrap();
        let paths = doc["paths"].as_object().unwrap();
        assert_eq!(paths.len(), 1);
        assert!(paths.contains_key("/tools/find-dealers"));
        assert!(document_for(None, Some("nope")).is_none());
        assert!(doc.get("servers").is_none());
    }

    #[test]
    fn server_urls_come_from_plain_hosts_only() {
        assert_eq!(
            server_url(Some("https"), Some("svc-abc.a.run.app")).as_deref(),
            Some("https://svc-abc.a.run.app")
        );
        assert_eq!(
            server_url(None, Some("127.0.0.1:8080")).as_deref(),
            Some("http://127.0.0.1:8080")
        );
        assert_eq!(server_url(None, Some("evil.com/\"x")), None);
        assert_eq!(server_url(None, None), None);
    }
}
