//! The HTTP client of the CLI: config, TLS with the cluster CA, bearer token, Kubernetes
//! `Status` errors, `Warning` headers and watch streams.
//!
//! Everything is blocking (ureq): the CLI does one thing at a time.

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use ureq::http;
use ureq::tls::{PemItem, RootCerts, TlsConfig};

use crate::config::{ClientConfig, ConfigError};

/// The biggest response body the CLI reads (a list of 100,000 pods fits).
const BODY_LIMIT: u64 = 2 << 30;

/// A Kubernetes `Status`, as the API returns it for errors.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Status {
    /// `Failure` or `Success`.
    pub status: String,
    /// Human-readable text: `pods "myblog" already exists`.
    pub message: String,
    /// Machine-readable reason: `AlreadyExists`, `NotFound`, `Invalid`, ...
    pub reason: String,
    /// What the error is about.
    pub details: Option<StatusDetails>,
    /// The HTTP status code.
    pub code: u16,
}

/// `Status.details`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct StatusDetails {
    /// The object's name.
    pub name: String,
    /// The object's API group.
    pub group: String,
    /// The kind (`Pod`) or resource (`pods`).
    pub kind: String,
    /// Field-level causes of an `Invalid` error.
    pub causes: Vec<StatusCause>,
}

/// One cause of an error.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct StatusCause {
    /// `FieldValueRequired`, ...
    pub reason: String,
    /// `Required value`.
    pub message: String,
    /// `spec.containers[0].image`.
    pub field: String,
}

impl Status {
    /// The `Status` client-go makes up when an error response is not a `Status`.
    pub fn from_http(code: u16, body: &str) -> Status {
        let (reason, message) = match code {
            400 => (
                "BadRequest",
                "the server rejected our request for an unknown reason".to_string(),
            ),
            401 => (
                "Unauthorized",
                "the server has asked for the client to provide credentials".to_string(),
            ),
            403 => (
                "Forbidden",
                "the server does not allow access to the requested resource".to_string(),
            ),
            404 => (
                "NotFound",
                "the server could not find the requested resource".to_string(),
            ),
            405 => (
                "MethodNotAllowed",
                "the server does not allow this method on the requested resource".to_string(),
            ),
            406 => (
                "NotAcceptable",
                "the server was unable to respond with a content type that the client supports"
                    .to_string(),
            ),
            409 => ("Conflict", "the server reported a conflict".to_string()),
            410 => ("Expired", "the server has expired the resource".to_string()),
            415 => (
                "UnsupportedMediaType",
                "the server was unable to handle the media type requested".to_string(),
            ),
            422 => (
                "Invalid",
                "the server rejected our request due to an error in our request".to_string(),
            ),
            429 => (
                "TooManyRequests",
                "the server has received too many requests and has asked us to try again later"
                    .to_string(),
            ),
            503 => (
                "ServiceUnavailable",
                "the server is currently unable to handle the request".to_string(),
            ),
            504 => (
                "Timeout",
                "the server was unable to return a response in the time allotted, but may still be processing the request".to_string(),
            ),
            _ => {
                let body = body.trim();
                let body = if body.is_empty() {
                    "unknown".to_string()
                } else {
                    body.chars().take(1024).collect()
                };
                (
                    "InternalError",
                    format!(
                        "an error on the server ({body:?}) has prevented the request from succeeding"
                    ),
                )
            }
        };
        Status {
            status: "Failure".into(),
            message,
            reason: reason.into(),
            details: None,
            code,
        }
    }
}

/// Why a request failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// The server answered with an error `Status`.
    #[error("{}", .0.message)]
    Status(Box<Status>),
    /// The server could not be reached.
    #[error("{message}")]
    Connection {
        /// `host:port` of the server.
        server: String,
        /// What went wrong.
        message: String,
        /// Whether the connection was refused (nothing listens there).
        refused: bool,
    },
    /// The client config could not be read.
    #[error("{0}")]
    Config(String),
    /// Anything else: a response that is not JSON, a broken stream, a client-side check.
    #[error("{0}")]
    Other(String),
}

impl From<Status> for ApiError {
    fn from(s: Status) -> Self {
        ApiError::Status(Box::new(s))
    }
}

impl From<ConfigError> for ApiError {
    fn from(e: ConfigError) -> Self {
        ApiError::Config(e.to_string())
    }
}

impl ApiError {
    /// The HTTP code of a `Status` error.
    pub fn code(&self) -> Option<u16> {
        match self {
            ApiError::Status(s) => Some(s.code),
            _ => None,
        }
    }

    /// The `Status` reason (`NotFound`, `AlreadyExists`, ...).
    pub fn reason(&self) -> Option<&str> {
        match self {
            ApiError::Status(s) => Some(&s.reason),
            _ => None,
        }
    }

    /// Whether the object does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, ApiError::Status(s) if s.code == 404 || s.reason == "NotFound")
    }

    /// Whether the object exists already.
    pub fn is_already_exists(&self) -> bool {
        matches!(self, ApiError::Status(s) if s.reason == "AlreadyExists")
    }

    /// Prefixes the message with where the object came from, as kubectl's
    /// `AddSourceToErr`: `error when creating "pod.yaml": ...`.
    pub fn with_source(self, verb: &str, source: &str) -> ApiError {
        if source.is_empty() {
            return self;
        }
        let prefix = format!("error when {verb} {source:?}: ");
        match self {
            ApiError::Status(mut s) => {
                s.message = format!("{prefix}{}", s.message);
                ApiError::Status(s)
            }
            ApiError::Other(m) => ApiError::Other(format!("{prefix}{m}")),
            other => other,
        }
    }

    /// kubectl's `StandardErrorMessage`, used when a command reports several errors.
    pub fn standard_message(&self) -> String {
        match self {
            ApiError::Status(s) if s.reason == "Unauthorized" => {
                format!("error: You must be logged in to the server ({})", s.message)
            }
            ApiError::Status(s) if !s.reason.is_empty() => {
                format!("Error from server ({}): {}", s.reason, s.message)
            }
            ApiError::Status(s) => format!("Error from server: {}", s.message),
            ApiError::Connection {
                server,
                refused: true,
                ..
            } => format!(
                "The connection to the server {server} was refused - did you specify the right host or port?"
            ),
            ApiError::Connection { message, .. } => {
                format!("Unable to connect to the server: {message}")
            }
            ApiError::Config(m) | ApiError::Other(m) => format!("error: {m}"),
        }
    }

    /// The message kubectl prints when this is a command's only error: as
    /// [`ApiError::standard_message`], except that an `Invalid` error lists its causes
    /// (`The Pod "x" is invalid: spec.containers[0].image: Required value`).
    pub fn sole_message(&self) -> String {
        let ApiError::Status(s) = self else {
            return self.standard_message();
        };
        if s.reason != "Invalid" {
            return self.standard_message();
        }
        let Some(details) = &s.details else {
            return "The request is invalid".into();
        };
        let mut text = "The request is invalid".to_string();
        if !details.kind.is_empty() || !details.name.is_empty() {
            text = format!("The {} {:?} is invalid", details.kind, details.name);
        }
        let mut causes: Vec<String> = Vec::new();
        for c in &details.causes {
            let line = if c.field.is_empty() {
                c.message.clone()
            } else {
                format!("{}: {}", c.field, c.message)
            };
            if !causes.contains(&line) {
                causes.push(line);
            }
        }
        match causes.len() {
            0 => text,
            1 => format!("{text}: {}", causes[0]),
            _ => {
                let mut out = format!("{text}: ");
                for c in causes {
                    out.push_str(&format!("\n* {c}"));
                }
                out
            }
        }
    }
}

/// Prints kubectl-style errors for everything that failed in a command: one error as
/// [`ApiError::sole_message`], several as [`ApiError::standard_message`] each.
pub fn report_errors(errors: &[ApiError]) {
    match errors {
        [] => {}
        [one] => eprintln!("{}", one.sole_message()),
        many => {
            for e in many {
                eprintln!("{}", e.standard_message());
            }
        }
    }
}

/// Extracts the texts of an HTTP `Warning` header (`299 - "text"`, possibly several,
/// comma-separated). Malformed values come back whole.
pub fn parse_warning_header(value: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = value.trim();
    while !rest.is_empty() {
        // warn-code SP warn-agent SP warn-text [SP warn-date]
        let parsed = (|| {
            let (code, r) = rest.split_once(' ')?;
            if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let (_agent, r) = r.trim_start().split_once(' ')?;
            let r = r.trim_start().strip_prefix('"')?;
            let mut text = String::new();
            let mut chars = r.char_indices();
            let end = loop {
                let (i, c) = chars.next()?;
                match c {
                    '\\' => text.push(chars.next()?.1),
                    '"' => break i + 1,
                    c => text.push(c),
                }
            };
            let mut r = r[end..].trim_start();
            // An optional quoted date.
            if let Some(d) = r.strip_prefix('"') {
                r = d
                    .split_once('"')
                    .map_or("", |(_, after)| after)
                    .trim_start();
            }
            let r = match r.strip_prefix(',') {
                Some(after) => after.trim_start(),
                None if r.is_empty() => r,
                None => return None,
            };
            Some((text, r))
        })();
        match parsed {
            Some((text, r)) => {
                out.push(text);
                rest = r;
            }
            None => {
                out.push(rest.to_string());
                break;
            }
        }
    }
    out
}

/// One event of a watch stream.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct WatchEvent {
    /// `ADDED`, `MODIFIED`, `DELETED`, `BOOKMARK` or `ERROR`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The object (a `Status` for `ERROR`).
    pub object: Value,
}

/// A watch: newline-delimited JSON events, read as they arrive.
pub struct WatchStream {
    reader: Box<dyn BufRead + Send>,
}

impl std::fmt::Debug for WatchStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WatchStream").finish_non_exhaustive()
    }
}

impl WatchStream {
    /// A stream over any reader (tests feed it bytes).
    pub fn from_reader(reader: impl std::io::Read + Send + 'static) -> Self {
        WatchStream {
            reader: Box::new(BufReader::new(reader)),
        }
    }
}

impl Iterator for WatchStream {
    type Item = Result<WatchEvent, ApiError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let mut line = String::new();
            match self.reader.read_line(&mut line) {
                Ok(0) => return None,
                Ok(_) => {}
                Err(e) => return Some(Err(ApiError::Other(format!("watch stream: {e}")))),
            }
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            return Some(
                serde_json::from_str(line)
                    .map_err(|e| ApiError::Other(format!("watch stream: not a watch event: {e}"))),
            );
        }
    }
}

/// The body of a request.
#[derive(Debug, Clone)]
pub struct Body {
    /// `application/json`, `application/merge-patch+json`.
    pub content_type: &'static str,
    /// The JSON document.
    pub value: Value,
}

/// A connection to the API.
pub struct Client {
    agent: ureq::Agent,
    server: String,
    token: Option<String>,
    seen_warnings: Mutex<HashSet<String>>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("server", &self.server)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// A client for the server of `cfg`, trusting only the CA in it.
    pub fn new(cfg: &ClientConfig) -> Result<Client, ApiError> {
        let server = cfg.server.trim_end_matches('/').to_string();
        if !server.starts_with("https://") && !server.starts_with("http://") {
            return Err(ApiError::Config(format!(
                "server {server:?} is not an http(s) URL"
            )));
        }
        let mut builder = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(10)))
            .user_agent(format!("kelp/{}", kelp_shared::VERSION));
        if server.starts_with("https://") {
            let certs: Vec<_> = ureq::tls::parse_pem(cfg.certificate_authority.as_bytes())
                .filter_map(|item| match item {
                    Ok(PemItem::Certificate(c)) => Some(c),
                    _ => None,
                })
                .collect();
            if certs.is_empty() {
                return Err(ApiError::Config(
                    "the config has no certificateAuthority certificate (PEM) to trust the server with".into(),
                ));
            }
            let tls = TlsConfig::builder()
                .root_certs(RootCerts::new_with_certs(&certs))
                .build();
            builder = builder.tls_config(tls);
        }
        let token = Some(cfg.token.trim().to_string()).filter(|t| !t.is_empty());
        Ok(Client {
            agent: builder.build().new_agent(),
            server,
            token,
            seen_warnings: Mutex::new(HashSet::new()),
        })
    }

    /// The server URL.
    pub fn server(&self) -> &str {
        &self.server
    }

    /// `GET path?query` → JSON.
    pub fn get(&self, path: &str, query: &[(&str, String)]) -> Result<Value, ApiError> {
        self.request(http::Method::GET, path, query, None)
    }

    /// `POST` an object to its collection.
    pub fn create(&self, path: &str, object: &Value) -> Result<Value, ApiError> {
        self.request(
            http::Method::POST,
            path,
            &[],
            Some(Body {
                content_type: "application/json",
                value: object.clone(),
            }),
        )
    }

    /// `PATCH` with a JSON merge patch (RFC 7386).
    pub fn merge_patch(&self, path: &str, patch: &Value) -> Result<Value, ApiError> {
        self.request(
            http::Method::PATCH,
            path,
            &[],
            Some(Body {
                content_type: "application/merge-patch+json",
                value: patch.clone(),
            }),
        )
    }

    /// `DELETE`, with query options and optionally a `DeleteOptions` body.
    pub fn delete(
        &self,
        path: &str,
        query: &[(&str, String)],
        options: Option<&Value>,
    ) -> Result<Value, ApiError> {
        self.request(
            http::Method::DELETE,
            path,
            query,
            options.map(|o| Body {
                content_type: "application/json",
                value: o.clone(),
            }),
        )
    }

    /// Starts a watch (`watch=true` is added to `query`).
    pub fn watch(&self, path: &str, query: &[(&str, String)]) -> Result<WatchStream, ApiError> {
        let mut query = query.to_vec();
        query.push(("watch", "true".into()));
        let response = self.send(http::Method::GET, path, &query, None)?;
        let response = self.check(response)?;
        Ok(WatchStream::from_reader(response.into_body().into_reader()))
    }

    /// `GET path?query` read as it arrives (a followed pod log), or the error `Status`.
    pub fn stream(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<Box<dyn std::io::Read + Send>, ApiError> {
        let response = self.send(http::Method::GET, path, query, None)?;
        let response = self.check(response)?;
        Ok(Box::new(response.into_body().into_reader()))
    }

    /// Any request; the JSON response, or the error `Status`.
    pub fn request(
        &self,
        method: http::Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<Body>,
    ) -> Result<Value, ApiError> {
        let response = self.send(method, path, query, body)?;
        let mut response = self.check(response)?;
        let bytes = response
            .body_mut()
            .with_config()
            .limit(BODY_LIMIT)
            .read_to_vec()
            .map_err(|e| self.transport_error(e))?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&bytes).map_err(|e| {
            ApiError::Other(format!(
                "the server sent a response that is not JSON ({e}): {}",
                String::from_utf8_lossy(&bytes[..bytes.len().min(200)])
            ))
        })
    }

    fn url(&self, path: &str, query: &[(&str, String)]) -> String {
        let mut url = format!("{}{}", self.server, path);
        for (i, (k, v)) in query.iter().enumerate() {
            url.push(if i == 0 { '?' } else { '&' });
            url.push_str(&super::resource::escape_query(k));
            url.push('=');
            url.push_str(&super::resource::escape_query(v));
        }
        url
    }

    fn send(
        &self,
        method: http::Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<Body>,
    ) -> Result<http::Response<ureq::Body>, ApiError> {
        let url = self.url(path, query);
        tracing::debug!(%method, %url, "request");
        let mut builder = http::Request::builder()
            .method(method)
            .uri(&url)
            .header("Accept", "application/json");
        if let Some(token) = &self.token {
            builder = builder.header("Authorization", format!("Bearer {token}"));
        }
        let result = match body {
            Some(body) => {
                let bytes = serde_json::to_vec(&body.value)
                    .map_err(|e| ApiError::Other(format!("encoding the request: {e}")))?;
                let request = builder
                    .header("Content-Type", body.content_type)
                    .body(bytes)
                    .map_err(|e| ApiError::Other(format!("bad request {url}: {e}")))?;
                self.agent.run(request)
            }
            None => {
                let request = builder
                    .body(())
                    .map_err(|e| ApiError::Other(format!("bad request {url}: {e}")))?;
                self.agent.run(request)
            }
        };
        let response = result.map_err(|e| self.transport_error(e))?;
        self.print_warnings(&response);
        Ok(response)
    }

    /// Turns an error status into an [`ApiError`]; passes success through.
    fn check(
        &self,
        mut response: http::Response<ureq::Body>,
    ) -> Result<http::Response<ureq::Body>, ApiError> {
        let code = response.status().as_u16();
        if code < 400 {
            return Ok(response);
        }
        let body = response
            .body_mut()
            .with_config()
            .limit(1 << 20)
            .read_to_string()
            .unwrap_or_default();
        Err(ApiError::from(status_from_body(code, &body)))
    }

    fn print_warnings(&self, response: &http::Response<ureq::Body>) {
        for value in response.headers().get_all("warning") {
            let Ok(value) = value.to_str() else { continue };
            for text in parse_warning_header(value) {
                let fresh = self
                    .seen_warnings
                    .lock()
                    .map(|mut seen| seen.insert(text.clone()))
                    .unwrap_or(true);
                if fresh {
                    eprintln!("Warning: {text}");
                }
            }
        }
    }

    fn transport_error(&self, e: ureq::Error) -> ApiError {
        let server = self
            .server
            .split_once("://")
            .map_or(self.server.as_str(), |(_, rest)| rest)
            .split('/')
            .next()
            .unwrap_or_default()
            .to_string();
        let refused =
            matches!(&e, ureq::Error::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused);
        let message = match &e {
            // rustls reports certificate problems as invalid data.
            ureq::Error::Io(io) if io.kind() == std::io::ErrorKind::InvalidData => {
                format!("tls: {io}")
            }
            ureq::Error::Io(io) => format!("dial tcp {server}: {io}"),
            other => other.to_string(),
        };
        ApiError::Connection {
            server,
            message,
            refused,
        }
    }
}

/// Reads an error body: a `Status` if it is one, else client-go's made-up `Status`.
pub fn status_from_body(code: u16, body: &str) -> Status {
    match serde_json::from_str::<Value>(body) {
        Ok(v) if v.get("kind").and_then(Value::as_str) == Some("Status") => {
            let mut s: Status = serde_json::from_value(v).unwrap_or_default();
            if s.code == 0 {
                s.code = code;
            }
            if s.message.is_empty() {
                s.message = Status::from_http(code, body).message;
            }
            s
        }
        _ => Status::from_http(code, body),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(json: &str) -> ApiError {
        ApiError::from(status_from_body(409, json))
    }

    #[test]
    fn already_exists_from_a_file() {
        let e = status(
            r#"{"kind":"Status","apiVersion":"v1","status":"Failure","message":"pods \"myblog\" already exists","reason":"AlreadyExists","details":{"name":"myblog","kind":"pods"},"code":409}"#,
        )
        .with_source("creating", "pod.yaml");
        assert!(e.is_already_exists());
        assert_eq!(
            e.sole_message(),
            r#"Error from server (AlreadyExists): error when creating "pod.yaml": pods "myblog" already exists"#
        );
    }

    #[test]
    fn not_found() {
        let e = ApiError::from(status_from_body(
            404,
            r#"{"kind":"Status","status":"Failure","message":"pods \"x\" not found","reason":"NotFound","code":404}"#,
        ));
        assert!(e.is_not_found());
        assert_eq!(
            e.standard_message(),
            r#"Error from server (NotFound): pods "x" not found"#
        );
    }

    #[test]
    fn invalid_lists_its_causes() {
        let one = r#"{"kind":"Status","status":"Failure","message":"Pod \"x\" is invalid: spec.containers[0].image: Required value","reason":"Invalid","details":{"name":"x","kind":"Pod","causes":[{"reason":"FieldValueRequired","message":"Required value","field":"spec.containers[0].image"}]},"code":422}"#;
        let e = ApiError::from(status_from_body(422, one)).with_source("creating", "p.yaml");
        assert_eq!(
            e.sole_message(),
            r#"The Pod "x" is invalid: spec.containers[0].image: Required value"#
        );
        assert_eq!(
            e.standard_message(),
            r#"Error from server (Invalid): error when creating "p.yaml": Pod "x" is invalid: spec.containers[0].image: Required value"#
        );
        let two = r#"{"kind":"Status","message":"m","reason":"Invalid","details":{"name":"x","kind":"Pod","causes":[{"message":"Required value","field":"a"},{"message":"Required value","field":"a"},{"message":"Invalid value: \"B\"","field":"metadata.name"}]},"code":422}"#;
        assert_eq!(
            ApiError::from(status_from_body(422, two)).sole_message(),
            "The Pod \"x\" is invalid: \n* a: Required value\n* metadata.name: Invalid value: \"B\""
        );
    }

    #[test]
    fn non_status_bodies_get_client_go_messages() {
        let e = ApiError::from(status_from_body(404, "404 page not found"));
        assert_eq!(
            e.standard_message(),
            "Error from server (NotFound): the server could not find the requested resource"
        );
        let e = ApiError::from(status_from_body(500, "boom"));
        assert_eq!(
            e.standard_message(),
            r#"Error from server (InternalError): an error on the server ("boom") has prevented the request from succeeding"#
        );
        let e = ApiError::from(status_from_body(
            401,
            r#"{"kind":"Status","message":"Unauthorized","reason":"Unauthorized","code":401}"#,
        ));
        assert_eq!(
            e.standard_message(),
            "error: You must be logged in to the server (Unauthorized)"
        );
    }

    #[test]
    fn connection_errors() {
        let e = ApiError::Connection {
            server: "127.0.0.1:6443".into(),
            message: "x".into(),
            refused: true,
        };
        assert_eq!(
            e.standard_message(),
            "The connection to the server 127.0.0.1:6443 was refused - did you specify the right host or port?"
        );
    }

    #[test]
    fn warning_headers() {
        assert_eq!(
            parse_warning_header(r#"299 - "unknown field \"spec.foo\"""#),
            [r#"unknown field "spec.foo""#]
        );
        assert_eq!(
            parse_warning_header(r#"299 - "a", 299 kelp "b, c" "Mon, 02 Jan 2006 15:04:05 GMT""#),
            ["a", "b, c"]
        );
        assert_eq!(parse_warning_header("garbage"), ["garbage"]);
    }

    #[test]
    fn watch_stream_reads_events_line_by_line() {
        let text = "{\"type\":\"ADDED\",\"object\":{\"kind\":\"Pod\",\"metadata\":{\"name\":\"a\"}}}\n\n{\"type\":\"DELETED\",\"object\":{\"kind\":\"Pod\",\"metadata\":{\"name\":\"a\"}}}\nnot json\n";
        let events: Vec<_> = WatchStream::from_reader(std::io::Cursor::new(text)).collect();
        assert_eq!(events.len(), 3);
        assert_eq!(events[0].as_ref().unwrap().kind, "ADDED");
        assert_eq!(events[1].as_ref().unwrap().kind, "DELETED");
        assert!(events[2].is_err());
    }

    #[test]
    fn client_needs_a_ca_for_https() {
        let cfg = ClientConfig {
            server: "https://127.0.0.1:6443".into(),
            certificate_authority: "".into(),
            token: "t".into(),
        };
        assert!(matches!(Client::new(&cfg), Err(ApiError::Config(_))));
        let cfg = ClientConfig {
            server: "http://127.0.0.1:1".into(),
            certificate_authority: "".into(),
            token: "t".into(),
        };
        let c = Client::new(&cfg).unwrap();
        assert_eq!(
            c.url("/api/v1/pods", &[("labelSelector", "a=b".into())]),
            "http://127.0.0.1:1/api/v1/pods?labelSelector=a%3Db"
        );
    }

    /// A one-request-per-connection HTTP server answering from `respond`, recording what
    /// it was asked.
    fn serve(respond: fn(&str, &str) -> String) -> (String, std::sync::mpsc::Receiver<String>) {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { return };
                let mut buf = Vec::new();
                let mut byte = [0u8; 1];
                while !buf.ends_with(b"\r\n\r\n") {
                    if conn.read(&mut byte).unwrap_or(0) == 0 {
                        break;
                    }
                    buf.push(byte[0]);
                }
                let head = String::from_utf8_lossy(&buf).to_string();
                let len = head
                    .lines()
                    .find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.eq_ignore_ascii_case("content-length")
                            .then(|| v.trim().parse::<usize>().ok())?
                    })
                    .unwrap_or(0);
                let mut body = vec![0u8; len];
                conn.read_exact(&mut body).unwrap();
                let body = String::from_utf8_lossy(&body).to_string();
                let request_line = head.lines().next().unwrap_or_default().to_string();
                let _ = conn.write_all(respond(&request_line, &body).as_bytes());
                let _ = tx.send(format!("{head}{body}"));
            }
        });
        (format!("http://{addr}"), rx)
    }

    fn response(code: &str, extra: &str, body: &str) -> String {
        format!(
            "HTTP/1.1 {code}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n{extra}\r\n{body}",
            body.len()
        )
    }

    #[test]
    fn requests_carry_the_token_and_errors_come_back_as_status() {
        let (url, requests) = serve(|line, body| {
            if line.starts_with("GET /api/v1/namespaces/default/pods/x ") {
                response(
                    "404 Not Found",
                    "",
                    r#"{"kind":"Status","apiVersion":"v1","status":"Failure","message":"pods \"x\" not found","reason":"NotFound","details":{"name":"x","kind":"pods"},"code":404}"#,
                )
            } else if line.starts_with("POST /api/v1/namespaces/default/pods ") {
                response("201 Created", "Warning: 299 - \"test warning\"\r\n", body)
            } else if line.starts_with("PATCH ") {
                response("200 OK", "", body)
            } else if line.starts_with("GET /api/v1/pods?labelSelector=app%3Dweb&watch=true ") {
                let events = "{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"name\":\"a\",\"resourceVersion\":\"5\"}}}\n{\"type\":\"DELETED\",\"object\":{\"metadata\":{\"name\":\"a\",\"resourceVersion\":\"6\"}}}\n";
                // No length: the body ends when the connection closes, as a watch does.
                format!("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n{events}")
            } else {
                response("404 Not Found", "", "404 page not found")
            }
        });
        let client = Client::new(&ClientConfig {
            server: url,
            certificate_authority: String::new(),
            token: "s3cret".into(),
        })
        .unwrap();

        let e = client
            .get("/api/v1/namespaces/default/pods/x", &[])
            .unwrap_err();
        assert!(e.is_not_found(), "{e:?}");
        assert_eq!(
            e.standard_message(),
            r#"Error from server (NotFound): pods "x" not found"#
        );
        let req = requests.recv().unwrap();
        assert!(
            req.to_ascii_lowercase()
                .contains("authorization: bearer s3cret"),
            "{req}"
        );

        let pod = serde_json::json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}});
        let created = client
            .create("/api/v1/namespaces/default/pods", &pod)
            .unwrap();
        assert_eq!(created, pod);
        let req = requests.recv().unwrap().to_ascii_lowercase();
        assert!(req.contains("content-type: application/json"), "{req}");

        let patched = client
            .merge_patch(
                "/api/v1/namespaces/default/pods/p",
                &serde_json::json!({"a": null}),
            )
            .unwrap();
        assert_eq!(patched, serde_json::json!({"a": null}));
        let req = requests.recv().unwrap().to_ascii_lowercase();
        assert!(
            req.contains("content-type: application/merge-patch+json"),
            "{req}"
        );

        let events: Vec<_> = client
            .watch("/api/v1/pods", &[("labelSelector", "app=web".into())])
            .unwrap()
            .map(Result::unwrap)
            .map(|e| e.kind)
            .collect();
        assert_eq!(events, ["ADDED", "DELETED"]);

        let e = client.get("/nope", &[]).unwrap_err();
        assert_eq!(
            e.standard_message(),
            "Error from server (NotFound): the server could not find the requested resource"
        );
    }

    #[test]
    fn refused_connections_say_so() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let client = Client::new(&ClientConfig {
            server: format!("http://127.0.0.1:{port}"),
            certificate_authority: String::new(),
            token: String::new(),
        })
        .unwrap();
        let e = client.get("/version", &[]).unwrap_err();
        assert_eq!(
            e.standard_message(),
            format!("The connection to the server 127.0.0.1:{port} was refused - did you specify the right host or port?")
        );
    }

    /// A CA and a serving certificate for 127.0.0.1 signed by it, as `kelp server` makes.
    fn test_pki() -> (String, rustls::ServerConfig) {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
        use rustls::pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer};
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let key = KeyPair::generate().unwrap();
        let params = CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
        let cert = params
            .signed_by(&key, &Issuer::new(ca_params, &ca_key))
            .unwrap();
        let chain = vec![CertificateDer::from_pem_slice(cert.pem().as_bytes()).unwrap()];
        let key = PrivateKeyDer::from_pem_slice(key.serialize_pem().as_bytes()).unwrap();
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap();
        (ca.pem(), config)
    }

    /// An HTTPS server answering every request with `/version`.
    fn serve_tls(config: rustls::ServerConfig) -> String {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let config = std::sync::Arc::new(config);
        std::thread::spawn(move || {
            for tcp in listener.incoming() {
                let Ok(tcp) = tcp else { return };
                let conn = rustls::ServerConnection::new(config.clone()).unwrap();
                let mut tls = rustls::StreamOwned::new(conn, tcp);
                let mut buf = Vec::new();
                let mut byte = [0u8; 1];
                while !buf.ends_with(b"\r\n\r\n") {
                    match tls.read(&mut byte) {
                        Ok(1) => buf.push(byte[0]),
                        _ => break,
                    }
                }
                if buf.is_empty() {
                    continue;
                }
                let _ = tls.write_all(
                    response("200 OK", "", r#"{"major":"1","gitVersion":"v1.31.0"}"#).as_bytes(),
                );
                let _ = tls.flush();
                tls.conn.send_close_notify();
                let _ = tls.flush();
            }
        });
        format!("https://{addr}")
    }

    #[test]
    fn tls_trusts_the_cluster_ca_and_nothing_else() {
        let (ca, config) = test_pki();
        let url = serve_tls(config);
        let client = Client::new(&ClientConfig {
            server: url.clone(),
            certificate_authority: ca,
            token: "t".into(),
        })
        .unwrap();
        let v = client.get("/version", &[]).unwrap();
        assert_eq!(v["gitVersion"], "v1.31.0");

        let (other_ca, _) = test_pki();
        let client = Client::new(&ClientConfig {
            server: url,
            certificate_authority: other_ca,
            token: "t".into(),
        })
        .unwrap();
        let e = client.get("/version", &[]).unwrap_err();
        let msg = e.standard_message();
        assert!(
            msg.starts_with("Unable to connect to the server: tls: invalid peer certificate"),
            "{msg}"
        );
    }
}
