//! `kelp logs`: a container's log, as `kubectl logs` shows it (the content of each line),
//! published in chunks of at most [`CHUNK`](super::CHUNK) bytes, then `End`.
//!
//! A restarted container appends to its log, so one run's lines are picked by time
//! ([`Window`]): the current run's from its start on; with `previous`, the run before's, up to
//! the current run's start. Following stops at the deadline, at a `Cancel`, or when the run
//! followed ends (as `kubectl logs -f` ends with its container).

use std::io::{self, Write};
use std::time::Duration;

use kelp_shared::wire::ResponseBody;

use super::{parse_time, Job, Located, CHUNK};
use crate::link::request::Responder;
use crate::logs::{follow_window, print_window, PrintOptions, Window};
use crate::runtime::state::{read_json, ContainerRun};

/// What a logs request asks.
#[derive(Debug, Clone)]
pub struct LogsRequest {
    pub namespace: String,
    pub pod: String,
    pub container: String,
    pub tail_lines: Option<u32>,
    pub follow: bool,
    pub previous: bool,
}

/// Output gathered into chunks, each published when full and at every flush.
pub struct ChunkWriter<'a> {
    responder: &'a mut Responder,
    buf: Vec<u8>,
}

impl<'a> ChunkWriter<'a> {
    pub fn new(responder: &'a mut Responder) -> Self {
        Self {
            responder,
            buf: Vec::new(),
        }
    }

    fn send(&mut self) -> io::Result<()> {
        let chunk = std::mem::take(&mut self.buf);
        if self.responder.send(ResponseBody::Chunk(chunk)) {
            Ok(())
        } else {
            Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the response could not be published",
            ))
        }
    }
}

impl Write for ChunkWriter<'_> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        for piece in data.chunks(CHUNK) {
            if self.buf.len() + piece.len() > CHUNK {
                self.send()?;
            }
            self.buf.extend_from_slice(piece);
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        self.send()
    }
}

/// Which records of the log belong to the run asked for.
pub fn window(located: &Located, previous: bool) -> Result<Window, String> {
    let run = located.run.as_ref();
    let started = |r: &ContainerRun| parse_time(r.started_at.as_deref());
    if previous {
        let last = run.and_then(|r| r.last.as_deref()).ok_or_else(|| {
            format!(
                "previous terminated container {:?} in pod {} not found",
                located.container,
                located.pod_name()
            )
        })?;
        return Ok(Window {
            since: started(last),
            until: run.and_then(started),
        });
    }
    match run.and_then(started) {
        Some(since) => Ok(Window {
            since: Some(since),
            until: None,
        }),
        None => {
            let why = run
                .and_then(|r| r.start_error.clone())
                .unwrap_or_else(|| "ContainerCreating".to_string());
            Err(format!(
                "container {:?} in pod {} is waiting to start: {why}",
                located.container,
                located.pod_name()
            ))
        }
    }
}

/// Answers a logs request.
pub fn serve(job: &Job, request: &LogsRequest, responder: &mut Responder) -> Result<(), String> {
    let located = job.locate(&request.namespace, &request.pod, &request.container)?;
    let window = window(&located, request.previous)?;
    let path = job
        .runtime()
        .pod_log_dir(&located.pod.namespace, &located.pod.name, &located.pod.uid)
        .join(format!("{}.log", located.container));
    let tail = request.tail_lines.map(|n| n as usize);
    let failed = |e: io::Error| {
        format!(
            "reading the log of container {:?} in pod {}: {e}",
            located.container,
            located.pod_name()
        )
    };
    let mut out = ChunkWriter::new(responder);
    if request.follow && !request.previous {
        // An empty first chunk tells the controller the node has the request.
        out.send().map_err(failed)?;
        let state = located.paths.container_state(&located.container);
        let started_at = located.run.as_ref().and_then(|r| r.started_at.clone());
        // The run followed is over once it exited, or once another run replaced it.
        let run_over = || match read_json::<ContainerRun>(&state) {
            Ok(Some(run)) => run.exit.is_some() || run.started_at != started_at,
            _ => true,
        };
        let stop = || job.should_stop() || run_over();
        match follow_window(
            &path,
            window.since,
            tail,
            PrintOptions::default(),
            &mut out,
            &stop,
            Duration::from_millis(200),
        ) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(failed(e)),
        }
    } else {
        match print_window(&path, window, tail, PrintOptions::default(), &mut out) {
            Ok(_) => {}
            // A run that printed nothing before its log was created.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(failed(e)),
        }
    }
    out.flush().map_err(failed)?;
    if job.cancelled() {
        return Ok(());
    }
    if !responder.send(ResponseBody::End { exit_code: None }) {
        return Err("the end of the log could not be published".into());
    }
    Ok(())
}
