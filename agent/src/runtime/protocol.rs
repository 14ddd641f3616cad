//! The agent ↔ monitor protocol: one JSON request and one JSON response per connection on the
//! pod's `monitor.sock`. The monitor never pushes anything: the agent relists the state files
//! (level-triggered, like the kubelet's PLEG), so an agent restart loses nothing.

use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// What the agent asks of a pod's monitor.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// Create and start container `name` from the bundle at `bundle` (its `config.json` and
    /// rootfs are ready), logging to `log`. Replaces an exited earlier run of the same name.
    /// The monitor runs `probes` for as long as the run lasts.
    Run {
        name: String,
        attempt: u32,
        bundle: PathBuf,
        log: PathBuf,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        probes: Vec<crate::probe::ProbeSpec>,
    },
    /// SIGTERM the container's processes, then SIGKILL after `grace_ms` if it still runs.
    Stop { name: String, grace_ms: u64 },
    /// Forget an exited container: libcontainer's state and cgroup, the state file.
    Remove { name: String },
    /// Kill what still runs, remove every container and exit.
    Shutdown,
}

/// The monitor's answer.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Response {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<i32>,
}

impl Response {
    pub fn ok() -> Self {
        Self {
            ok: true,
            error: None,
            pid: None,
        }
    }
    pub fn error(message: impl Into<String>) -> Self {
        Self {
            ok: false,
            error: Some(message.into()),
            pid: None,
        }
    }
}

/// Sends `request` to the monitor listening on `socket` and waits up to `timeout` for its
/// answer. A refused request comes back as an error carrying the monitor's message.
pub fn call(socket: &Path, request: &Request, timeout: Duration) -> io::Result<Response> {
    let mut stream = UnixStream::connect(socket)
        .map_err(|e| io::Error::new(e.kind(), format!("monitor {}: {e}", socket.display())))?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    let mut line = serde_json::to_vec(request).map_err(io::Error::other)?;
    line.push(b'\n');
    stream.write_all(&line)?;
    let mut answer = String::new();
    BufReader::new(stream).read_line(&mut answer)?;
    if answer.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!(
                "monitor {} closed the connection without answering",
                socket.display()
            ),
        ));
    }
    let response: Response = serde_json::from_str(&answer)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("monitor answer: {e}")))?;
    if response.ok {
        Ok(response)
    } else {
        Err(io::Error::other(
            response
                .error
                .unwrap_or_else(|| "monitor refused the request".into()),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_tagged_json() {
        let r = Request::Stop {
            name: "web".into(),
            grace_ms: 30_000,
        };
        let s = serde_json::to_string(&r).unwrap();
        assert_eq!(s, r#"{"op":"stop","name":"web","grace_ms":30000}"#);
        assert_eq!(serde_json::from_str::<Request>(&s).unwrap(), r);
    }
}
