//! Registry failures, classified from the HTTP status and the registry's
//! `{"error_code", "message"}` body.

use serde::Deserialize;

/// What went wrong talking to the registry. Messages never contain credentials.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// No answer: connection refused, DNS, TLS handshake, timeout, or the
    /// connection dropped mid-answer.
    #[error("unreachable: {0}")]
    Unreachable(String),
    /// The schema breaks the subject's compatibility level (HTTP 409).
    #[error("incompatible schema: {0}")]
    Incompatible(String),
    /// A concurrent write collided with this one (HTTP 409 "already exists"):
    /// Apicurio answers so when registrations of the same schema text under
    /// different subjects race in its storage. Repeating the request resolves it.
    #[error("concurrent change in the registry: {0}")]
    Conflict(String),
    /// The registry refused the schema, its references or the subject name
    /// (HTTP 422, e.g. error codes 42201 invalid schema, 42202 invalid version).
    #[error("invalid schema: {0}")]
    InvalidSchema(String),
    /// The subject, version or schema id does not exist (HTTP 404), where the
    /// operation does not treat absence as an answer.
    #[error("not found: {0}")]
    NotFound(String),
    /// The registry refused the credentials or the operation (HTTP 401/403).
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    /// Any other error answer.
    #[error("HTTP {status}{}: {message}", code.map(|c| format!(" (error code {c})")).unwrap_or_default())]
    Api {
        /// HTTP status.
        status: u16,
        /// The registry's `error_code`, when it sent one.
        code: Option<i64>,
        /// The registry's `message` (or the start of a body that was not JSON).
        message: String,
    },
    /// A successful answer the client could not understand (not the JSON the
    /// API specifies): usually a URL that points at something else.
    #[error("unexpected response: {0}")]
    UnexpectedResponse(String),
    /// The client could not be built: malformed base URL, unusable CA bundle.
    #[error("invalid client configuration: {0}")]
    Config(String),
}

impl RegistryError {
    /// Worth retrying unchanged: the registry was unreachable, lost a race
    /// between concurrent writes, overloaded (HTTP 429) or failed internally (HTTP 5xx, e.g. 50001 store error,
    /// 50003 forwarding to the leader failed).
    pub fn is_transient(&self) -> bool {
        match self {
            RegistryError::Unreachable(_) | RegistryError::Conflict(_) => true,
            RegistryError::Api { status, .. } => *status >= 500 || *status == 429,
            _ => false,
        }
    }

    /// The same error with `secret` replaced wherever a registry echoed it back.
    pub(crate) fn scrub(self, secret: &str) -> Self {
        if secret.is_empty() {
            return self;
        }
        let clean = |text: String| {
            if text.contains(secret) {
                text.replace(secret, "<redacted>")
            } else {
                text
            }
        };
        match self {
            RegistryError::Unreachable(m) => RegistryError::Unreachable(clean(m)),
            RegistryError::Incompatible(m) => RegistryError::Incompatible(clean(m)),
            RegistryError::Conflict(m) => RegistryError::Conflict(clean(m)),
            RegistryError::InvalidSchema(m) => RegistryError::InvalidSchema(clean(m)),
            RegistryError::NotFound(m) => RegistryError::NotFound(clean(m)),
            RegistryError::Unauthorized(m) => RegistryError::Unauthorized(clean(m)),
            RegistryError::Api {
                status,
                code,
                message,
            } => RegistryError::Api {
                status,
                code,
                message: clean(message),
            },
            RegistryError::UnexpectedResponse(m) => RegistryError::UnexpectedResponse(clean(m)),
            RegistryError::Config(m) => RegistryError::Config(clean(m)),
        }
    }
}

/// Error codes 40401 subject not found.
pub(crate) const SUBJECT_NOT_FOUND: i64 = 40401;
/// 40402 version not found.
pub(crate) const VERSION_NOT_FOUND: i64 = 40402;
/// 40403 schema not found.
pub(crate) const SCHEMA_NOT_FOUND: i64 = 40403;
/// 40404 subject was soft-deleted.
pub(crate) const SUBJECT_SOFT_DELETED: i64 = 40404;

/// How much of a non-JSON error body goes into a message.
const BODY_EXCERPT: usize = 300;

#[derive(Deserialize)]
struct ErrorBody {
    #[serde(default)]
    error_code: Option<i64>,
    #[serde(default)]
    message: Option<String>,
}

/// The registry's `error_code` and `message`; for a body that is not the
/// registry's JSON, no code and an excerpt of the body (or the status text).
pub(crate) fn error_details(status: u16, body: &str) -> (Option<i64>, String) {
    if let Ok(parsed) = serde_json::from_str::<ErrorBody>(body) {
        if let Some(message) = parsed.message.filter(|m| !m.trim().is_empty()) {
            return (parsed.error_code, message);
        }
        if parsed.error_code.is_some() {
            return (parsed.error_code, status_text(status));
        }
    }
    let trimmed = body.trim();
    if trimmed.is_empty() {
        return (None, status_text(status));
    }
    let excerpt: String = trimmed.chars().take(BODY_EXCERPT).collect();
    let ellipsis = if excerpt.len() < trimmed.len() { "…" } else { "" };
    (None, format!("{}: {excerpt}{ellipsis}", status_text(status)))
}

fn status_text(status: u16) -> String {
    match reqwest::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
    {
        Some(reason) => format!("HTTP {status} {reason}"),
        None => format!("HTTP {status}"),
    }
}

/// 422 codes that mean "the schema (or what it names) is wrong": invalid
/// schema, invalid version, invalid subject, schema too large, invalid ruleset.
/// The others (42203 compatibility level, 42204 mode, 42205 operation not
/// permitted, 42206 reference exists, 42207 id mismatch, 42211 context not
/// empty) are about the registry's state or configuration.
fn is_schema_fault(code: i64) -> bool {
    matches!(code, 422 | 42201 | 42202 | 42208 | 42209 | 42210)
}

/// An error answer as a [`RegistryError`].
pub(crate) fn classify(status: u16, body: &str) -> RegistryError {
    let (code, message) = error_details(status, body);
    match status {
        401 | 403 => RegistryError::Unauthorized(message),
        404 => RegistryError::NotFound(message),
        // Apicurio's storage losing a race between concurrent creations of
        // the same schema text under new subjects (error code 409, like an
        // incompatibility, so told apart by the text).
        409 if code.is_none_or(|c| c == 409 || c == 0) && message.contains("already exists") => {
            RegistryError::Conflict(message)
        }
        // Confluent answers an incompatible schema with 409 and error code
        // 409; Apicurio's ccompat API with 409 and code 0. A 4xxxx code under
        // 409 ("schema still referenced") is not incompatibility.
        409 if code.is_none_or(|c| c == 409 || c == 0) => RegistryError::Incompatible(message),
        422 if code.is_none_or(is_schema_fault) => RegistryError::InvalidSchema(message),
        _ => RegistryError::Api {
            status,
            code,
            message,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conflict_is_incompatible() {
        let error = classify(
            409,
            r#"{"error_code":409,"message":"Schema being registered is incompatible with an earlier schema for subject \"s\""}"#,
        );
        assert!(
            matches!(&error, RegistryError::Incompatible(m) if m.contains("incompatible with an earlier schema")),
            "{error:?}"
        );
        assert!(!error.is_transient());
        assert!(matches!(classify(409, ""), RegistryError::Incompatible(_)));
        // Apicurio's Confluent-compatible API uses error code 0.
        let apicurio = classify(
            409,
            r#"{"message":"Incompatible artifact: s [AVRO]","error_code":0}"#,
        );
        assert!(
            matches!(&apicurio, RegistryError::Incompatible(m) if m.contains("Incompatible artifact")),
            "{apicurio:?}"
        );
    }

    #[test]
    fn a_creation_race_is_a_transient_conflict_not_incompatibility() {
        let error = classify(
            409,
            r#"{"message":"An artifact with ID 'orders-value' in group 'null' already exists.","error_code":409}"#,
        );
        assert!(
            matches!(&error, RegistryError::Conflict(m) if m.contains("already exists")),
            "{error:?}"
        );
        assert!(error.is_transient());
    }

    #[test]
    fn conflict_with_another_code_is_not_incompatibility() {
        let error = classify(
            409,
            r#"{"error_code":42201,"message":"Cannot delete subject s as its schemas are still referenced"}"#,
        );
        assert!(
            matches!(
                error,
                RegistryError::Api {
                    status: 409,
                    code: Some(42201),
                    ..
                }
            ),
            "{error:?}"
        );
    }

    #[test]
    fn unprocessable_schema_is_invalid() {
        for code in [42201, 42202, 42208] {
            let error = classify(
                422,
                &format!(r#"{{"error_code":{code},"message":"Invalid schema"}}"#),
            );
            assert!(
                matches!(&error, RegistryError::InvalidSchema(m) if m == "Invalid schema"),
                "{error:?}"
            );
            assert!(!error.is_transient());
        }
        assert!(matches!(
            classify(422, "not json"),
            RegistryError::InvalidSchema(_)
        ));
    }

    #[test]
    fn unprocessable_registry_state_is_an_api_error() {
        let error = classify(
            422,
            r#"{"error_code":42206,"message":"One or more references exist"}"#,
        );
        assert!(
            matches!(
                error,
                RegistryError::Api {
                    status: 422,
                    code: Some(42206),
                    ..
                }
            ),
            "{error:?}"
        );
    }

    #[test]
    fn not_found_keeps_the_message_for_each_code() {
        for (code, message) in [(40401, "Subject 's' not found."), (40403, "Schema not found")] {
            let error = classify(404, &format!(r#"{{"error_code":{code},"message":"{message}"}}"#));
            assert!(
                matches!(&error, RegistryError::NotFound(m) if m == message),
                "{error:?}"
            );
            assert!(!error.is_transient());
        }
        assert_eq!(
            error_details(404, r#"{"error_code":40401,"message":"x"}"#).0,
            Some(SUBJECT_NOT_FOUND)
        );
        assert_eq!(
            error_details(404, r#"{"error_code":40403,"message":"x"}"#).0,
            Some(SCHEMA_NOT_FOUND)
        );
    }

    #[test]
    fn unauthorized_and_forbidden() {
        let error = classify(401, r#"{"error_code":401,"message":"Unauthorized"}"#);
        assert!(
            matches!(&error, RegistryError::Unauthorized(m) if m == "Unauthorized"),
            "{error:?}"
        );
        assert!(!error.is_transient());
        let error = classify(403, "");
        assert!(
            matches!(&error, RegistryError::Unauthorized(m) if m == "HTTP 403 Forbidden"),
            "{error:?}"
        );
    }

    #[test]
    fn server_errors_are_transient_api_errors() {
        let error = classify(
            500,
            r#"{"error_code":50001,"message":"Error in the backend data store"}"#,
        );
        assert!(
            matches!(&error, RegistryError::Api { status: 500, code: Some(50001), message } if message == "Error in the backend data store"),
            "{error:?}"
        );
        assert!(error.is_transient());
        assert_eq!(
            error.to_string(),
            "HTTP 500 (error code 50001): Error in the backend data store"
        );
        let error = classify(502, "<html>Bad Gateway</html>");
        assert!(
            matches!(&error, RegistryError::Api { status: 502, code: None, message } if message == "HTTP 502 Bad Gateway: <html>Bad Gateway</html>"),
            "{error:?}"
        );
        assert!(error.is_transient());
        assert!(classify(429, "").is_transient());
        assert!(!classify(400, r#"{"error_code":400,"message":"bad"}"#).is_transient());
    }

    #[test]
    fn long_bodies_are_cut() {
        let body = "x".repeat(10_000);
        let (code, message) = error_details(503, &body);
        assert_eq!(code, None);
        assert!(message.len() < 400, "{message}");
        assert!(message.ends_with('…'));
    }

    #[test]
    fn unreachable_is_transient_and_others_are_not() {
        assert!(RegistryError::Unreachable("connection refused".into()).is_transient());
        assert!(!RegistryError::UnexpectedResponse("html".into()).is_transient());
        assert!(!RegistryError::Config("bad url".into()).is_transient());
    }

    #[test]
    fn scrub_removes_an_echoed_secret() {
        let error = classify(401, r#"{"message":"bad password hunter2 for user"}"#).scrub("hunter2");
        assert_eq!(
            error.to_string(),
            "unauthorized: bad password <redacted> for user"
        );
    }
}
