//! The HTTP side of `httpGet` probes, pure: the request the kubelet sends and the reading of
//! the answer. Only the status line decides (200..399 is success, redirects are not
//! followed); the body is read up to [`MAX_BODY`] bytes, as the kubelet does, and dropped.

/// How much of a response body a probe reads (the kubelet's 10 KiB).
pub const MAX_BODY: usize = 10 * 1024;
/// How large a response head may be before the answer counts as malformed.
pub const MAX_HEAD: usize = 64 * 1024;

/// `kube-probe/<major>.<minor>`, the kubelet's User-Agent, with kelp's version.
pub fn user_agent() -> String {
    let mut parts = kelp_shared::VERSION.split('.');
    format!(
        "kube-probe/{}.{}",
        parts.next().unwrap_or("0"),
        parts.next().unwrap_or("0")
    )
}

/// The request: `GET path HTTP/1.1` with `Host`, `User-Agent`, `Accept: */*` and
/// `Connection: close`; a header of `headers` with the same name replaces the default.
pub fn request(host: &str, path: &str, headers: &[(String, String)]) -> Vec<u8> {
    let mut out = format!("GET {path} HTTP/1.1\r\n");
    let has = |name: &str| headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(name));
    let agent = user_agent();
    for (name, value) in [
        ("Host", host),
        ("User-Agent", agent.as_str()),
        ("Accept", "*/*"),
    ] {
        if !has(name) {
            out.push_str(&format!("{name}: {value}\r\n"));
        }
    }
    for (name, value) in headers {
        // A header name or value cannot carry a line break into the request.
        let clean = |s: &str| s.replace(['\r', '\n'], "");
        out.push_str(&format!("{}: {}\r\n", clean(name), clean(value)));
    }
    out.push_str("Connection: close\r\n\r\n");
    out.into_bytes()
}

/// What the bytes received so far say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    /// More is needed.
    Incomplete,
    /// The status code; the body is complete, cut at [`MAX_BODY`], or ended with the
    /// connection.
    Done(u16),
    /// Not an HTTP response.
    Malformed(String),
}

/// Parses what was received; `eof` when the server closed the connection.
pub fn parse(received: &[u8], eof: bool) -> Response {
    let Some(head_end) = find(received, b"\r\n\r\n") else {
        if received.len() > MAX_HEAD {
            return Response::Malformed("response headers too large".into());
        }
        if eof {
            return Response::Malformed(if received.is_empty() {
                "EOF".into()
            } else {
                "unexpected EOF in the response headers".into()
            });
        }
        return Response::Incomplete;
    };
    let head = String::from_utf8_lossy(&received[..head_end]);
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let mut fields = status_line.splitn(3, ' ');
    let version = fields.next().unwrap_or("");
    let code = fields.next().unwrap_or("");
    if !version.starts_with("HTTP/1.") {
        return Response::Malformed(format!("malformed HTTP response {status_line:?}"));
    }
    let Some(code) = code
        .parse::<u16>()
        .ok()
        .filter(|c| (100..1000).contains(c) && code.len() == 3)
    else {
        return Response::Malformed(format!("malformed HTTP status code {code:?}"));
    };
    let body = received.len() - head_end - 4;
    let length = lines.find_map(|l| {
        let (name, value) = l.split_once(':')?;
        name.trim()
            .eq_ignore_ascii_case("content-length")
            .then(|| value.trim().parse::<usize>().ok())?
    });
    let complete = eof || body >= MAX_BODY || length.is_some_and(|n| body >= n);
    if complete {
        Response::Done(code)
    } else {
        Response::Incomplete
    }
}

/// Whether a status code is a probe success.
pub fn success(code: u16) -> bool {
    (200..400).contains(&code)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_has_the_kubelet_s_headers_and_user_overrides() {
        let r = String::from_utf8(request("10.0.0.5:8080", "/healthz?x=1", &[])).unwrap();
        assert!(
            r.starts_with("GET /healthz?x=1 HTTP/1.1\r\nHost: 10.0.0.5:8080\r\n"),
            "{r}"
        );
        assert!(r.contains(&format!("User-Agent: {}\r\n", user_agent())));
        assert!(user_agent().starts_with("kube-probe/"));
        assert!(r.contains("Accept: */*\r\n"));
        assert!(r.ends_with("Connection: close\r\n\r\n"));
        let r = String::from_utf8(request(
            "h:1",
            "/",
            &[
                ("host".into(), "example.com".into()),
                ("X-Evil".into(), "a\r\nInjected: yes".into()),
            ],
        ))
        .unwrap();
        assert!(!r.contains("Host: h:1"), "{r}");
        assert!(r.contains("host: example.com\r\n"));
        assert!(r.contains("X-Evil: aInjected: yes\r\n"));
    }

    #[test]
    fn status_decides_once_the_body_is_in() {
        let head = b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 5\r\n\r\n";
        assert_eq!(parse(head, false), Response::Incomplete);
        let mut full = head.to_vec();
        full.extend_from_slice(b"oops!");
        assert_eq!(parse(&full, false), Response::Done(500));
        assert_eq!(parse(head, true), Response::Done(500), "closed early");
        assert_eq!(
            parse(b"HTTP/1.0 200 OK\r\n\r\nhello", true),
            Response::Done(200)
        );
        assert_eq!(
            parse(b"HTTP/1.1 301 Moved\r\ncontent-length: 0\r\n\r\n", false),
            Response::Done(301)
        );
        assert_eq!(
            parse(
                b"HTTP/1.1 204 No Content\r\nContent-Length:0\r\n\r\n",
                false
            ),
            Response::Done(204)
        );
    }

    #[test]
    fn body_reading_is_bounded() {
        let mut r = b"HTTP/1.1 200 OK\r\n\r\n".to_vec();
        r.resize(r.len() + MAX_BODY - 1, b'x');
        assert_eq!(parse(&r, false), Response::Incomplete);
        r.push(b'x');
        assert_eq!(parse(&r, false), Response::Done(200));
        let big = vec![b'a'; MAX_HEAD + 1];
        assert!(matches!(parse(&big, false), Response::Malformed(_)));
    }

    #[test]
    fn partial_and_garbage_answers() {
        assert_eq!(parse(b"HTTP/1.1 2", false), Response::Incomplete);
        assert_eq!(parse(b"", true), Response::Malformed("EOF".into()));
        assert!(matches!(
            parse(b"HTTP/1.1 200", true),
            Response::Malformed(_)
        ));
        assert!(matches!(
            parse(b"SSH-2.0-OpenSSH\r\n\r\n", false),
            Response::Malformed(_)
        ));
        assert!(matches!(
            parse(b"HTTP/1.1 abc OK\r\n\r\n", false),
            Response::Malformed(_)
        ));
        assert!(matches!(
            parse(b"HTTP/1.1 20 OK\r\n\r\n", false),
            Response::Malformed(_)
        ));
    }

    #[test]
    fn success_is_200_to_399() {
        assert!(!success(199));
        assert!(success(200) && success(302) && success(399));
        assert!(!success(400) && !success(500));
    }
}
