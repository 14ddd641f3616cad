//! Kubernetes `Status` errors: every failed request answers with one.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use crate::store::{Key, StoreError};
use kelp_shared::api::kinds;

/// One field problem inside a 422, as `details.causes[]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cause {
    /// `FieldValueRequired`, `FieldValueInvalid`, ...
    pub reason: String,
    /// The message after the field path.
    pub message: String,
    /// `spec.containers[0].image`.
    pub field: String,
}

/// An API error, rendered as a Kubernetes `Status`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiError {
    /// The HTTP status code.
    pub code: u16,
    /// `NotFound`, `AlreadyExists`, `Conflict`, `Invalid`, ...
    pub reason: &'static str,
    /// The human message.
    pub message: String,
    /// `details.name`.
    pub name: Option<String>,
    /// `details.kind` (the plural resource, as Kubernetes puts it).
    pub kind: Option<String>,
    /// `details.causes`.
    pub causes: Vec<Cause>,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}): {}", self.code, self.reason, self.message)
    }
}

impl std::error::Error for ApiError {}

fn plural_of(kind: &str) -> String {
    kinds::by_kind(kind)
        .map(|k| k.plural.to_string())
        .unwrap_or_else(|| kind.to_ascii_lowercase())
}

impl ApiError {
    fn new(code: u16, reason: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            reason,
            message: message.into(),
            name: None,
            kind: None,
            causes: Vec::new(),
        }
    }

    fn with_key(mut self, key: &Key) -> ApiError {
        self.name = Some(key.name.clone());
        self.kind = Some(plural_of(&key.kind));
        self
    }

    /// 400 Bad Request.
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(400, "BadRequest", message)
    }

    /// 401 Unauthorized.
    pub fn unauthorized() -> ApiError {
        ApiError::new(401, "Unauthorized", "Unauthorized")
    }

    /// 403 Forbidden about one object.
    pub fn forbidden(key: &Key, why: &str) -> ApiError {
        ApiError::new(
            403,
            "Forbidden",
            format!(
                "{} {:?} is forbidden: {why}",
                plural_of(&key.kind),
                key.name
            ),
        )
        .with_key(key)
    }

    /// 404 for an object.
    pub fn not_found(key: &Key) -> ApiError {
        ApiError::new(
            404,
            "NotFound",
            format!("{} {:?} not found", plural_of(&key.kind), key.name),
        )
        .with_key(key)
    }

    /// 404 for a path that names no resource.
    pub fn no_route(path: &str) -> ApiError {
        ApiError::new(
            404,
            "NotFound",
            format!("the server could not find the requested resource ({path})"),
        )
    }

    /// 405.
    pub fn method_not_allowed(method: &str, what: &str) -> ApiError {
        ApiError::new(
            405,
            "MethodNotAllowed",
            format!("{method} is not supported on {what}"),
        )
    }

    /// 409 AlreadyExists.
    pub fn already_exists(key: &Key) -> ApiError {
        ApiError::new(
            409,
            "AlreadyExists",
            format!("{} {:?} already exists", plural_of(&key.kind), key.name),
        )
        .with_key(key)
    }

    /// 409 Conflict.
    pub fn conflict(key: &Key, detail: &str) -> ApiError {
        ApiError::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} {:?}: {detail}",
                plural_of(&key.kind),
                key.name
            ),
        )
        .with_key(key)
    }

    /// 410 Gone: a watch from a compacted revision.
    pub fn gone(message: impl Into<String>) -> ApiError {
        ApiError::new(410, "Expired", message)
    }

    /// 415.
    pub fn unsupported_media_type(content_type: &str) -> ApiError {
        ApiError::new(
            415,
            "UnsupportedMediaType",
            format!("the body of the request was in an unknown format - accepted media types include: application/json, application/merge-patch+json (got {content_type:?})"),
        )
    }

    /// 422 Invalid with field causes, worded as the API server words it:
    /// `Pod "x" is invalid: [a: Required value, b: ...]`.
    pub fn invalid(kind: &str, name: &str, causes: Vec<Cause>) -> ApiError {
        let parts: Vec<String> = causes
            .iter()
            .map(|c| {
                if c.field.is_empty() {
                    c.message.clone()
                } else {
                    format!("{}: {}", c.field, c.message)
                }
            })
            .collect();
        let list = if parts.len() == 1 {
            parts[0].clone()
        } else {
            format!("[{}]", parts.join(", "))
        };
        let mut e = ApiError::new(
            422,
            "Invalid",
            format!("{kind} {name:?} is invalid: {list}"),
        );
        e.name = Some(name.to_string());
        e.kind = Some(kind.to_string());
        e.causes = causes;
        e
    }

    /// 500.
    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(500, "InternalError", message)
    }

    /// 503: the store is shutting down.
    pub fn unavailable(message: impl Into<String>) -> ApiError {
        ApiError::new(503, "ServiceUnavailable", message)
    }

    /// 504: the answer did not come in time.
    pub fn timeout(message: impl Into<String>) -> ApiError {
        ApiError::new(504, "Timeout", message)
    }

    /// The `Status` object.
    pub fn to_status(&self) -> Value {
        let mut details = serde_json::Map::new();
        if let Some(n) = &self.name {
            details.insert("name".into(), json!(n));
        }
        if let Some(k) = &self.kind {
            details.insert("kind".into(), json!(k));
        }
        if !self.causes.is_empty() {
            let causes: Vec<Value> = self
                .causes
                .iter()
                .map(|c| json!({"reason": c.reason, "message": c.message, "field": c.field}))
                .collect();
            details.insert("causes".into(), Value::Array(causes));
        }
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if !details.is_empty() {
            status["details"] = Value::Object(details);
        }
        status
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        match &e {
            StoreError::NotFound(k) => ApiError::not_found(k),
            StoreError::AlreadyExists(k) => ApiError::already_exists(k),
            StoreError::Conflict { key, .. } => ApiError::conflict(
                key,
                "the object has been modified; please apply your changes to the latest version and try again",
            ),
            StoreError::Compacted { .. } => ApiError::gone(e.to_string()),
            StoreError::Closed => ApiError::unavailable(e.to_string()),
            StoreError::Backend(_) => ApiError::internal(e.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code = StatusCode::from_u16(self.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (code, axum::Json(self.to_status())).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_read_like_the_api_server() {
        let key = Key::new("Pod", "luffy", "myblog");
        let e = ApiError::already_exists(&key);
        assert_eq!(e.message, r#"pods "myblog" already exists"#);
        let s = e.to_status();
        assert_eq!(s["code"], 409);
        assert_eq!(s["reason"], "AlreadyExists");
        assert_eq!(s["details"]["kind"], "pods");
        let inv = ApiError::invalid(
            "Pod",
            "p",
            vec![Cause {
                reason: "FieldValueRequired".into(),
                message: "Required value".into(),
                field: "spec.containers[0].image".into(),
            }],
        );
        assert_eq!(
            inv.message,
            r#"Pod "p" is invalid: spec.containers[0].image: Required value"#
        );
        assert_eq!(
            inv.to_status()["details"]["causes"][0]["field"],
            "spec.containers[0].image"
        );
        let ns = ApiError::forbidden(
            &Key::new("Namespace", "", "kube-system"),
            "this namespace may not be deleted",
        );
        assert_eq!(
            ns.message,
            r#"namespaces "kube-system" is forbidden: this namespace may not be deleted"#
        );
    }
}
