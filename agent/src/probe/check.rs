//! The probe handlers as checks the monitor's single-threaded `poll(2)` loop drives, and
//! [`Probing`], which runs a container's probes on [`Machine`]'s schedule.
//!
//! Nothing here blocks the loop for long (the monitor also copies logs and answers the agent):
//! - **exec** starts the command through libcontainer's tenant builder, which joins the
//!   container's namespaces and cgroup as its user, with its environment and working
//!   directory. Starting it takes the few milliseconds libcontainer needs to clone and set the
//!   process up (it returns once the command was exec'd); the command then runs on its own:
//!   its pidfd and its output pipe are in the poll set, and at the timeout it gets SIGKILL.
//! - **tcpSocket** and **httpGet** use non-blocking sockets (connect, send, receive; HTTPS
//!   through a rustls session that accepts any certificate, as the kubelet) whose
//!   descriptors are in the poll set; the monitor lives in the pod's network namespace, so
//!   they reach the pod's IP (or 127.0.0.1 before the pod network exists) as the kubelet
//!   would from the node. A `host` that is a name, not an address, is resolved with a
//!   blocking DNS lookup, as rare as it is slow.
//!
//! The checks read the clock nowhere: [`Probing::tick`] is given the time, and the machine
//! decides timeouts, so a check is only ever advanced or aborted.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream, ToSocketAddrs};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rustix::event::PollFlags;
use rustix::io::Errno;
use rustix::process::{
    pidfd_open, pidfd_send_signal, waitpid, Pid, PidfdFlags, Signal, WaitOptions,
};

use super::http;
use super::machine::{Kill, Machine};
use super::{Handler, ProbeKind, ProbeSpec, RunProbes};

/// How much output of an exec probe is kept (the kubelet's 10 KiB).
const MAX_EXEC_OUTPUT: usize = 10 * 1024;

/// Where a container's probes go.
#[derive(Debug, Clone)]
pub struct Target {
    /// How commands get into the container (the pod's engine), and the container's id there.
    pub via: crate::runtime::exec::ExecVia,
    pub container: String,
    /// Where httpGet and tcpSocket probes without a `host` connect: the pod's IP.
    pub pod_ip: IpAddr,
    /// Who exec probes run as.
    pub user: ExecUser,
}

impl Target {
    /// The pod's IP, or 127.0.0.1 while the pod has none (no pod network on the node).
    pub fn pod_ip_or_loopback(pod_ip: Option<Ipv4Addr>) -> IpAddr {
        IpAddr::V4(pod_ip.unwrap_or(Ipv4Addr::LOCALHOST))
    }
}

/// The container's user and working directory, as its `config.json` gives them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecUser {
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
    pub cwd: Option<PathBuf>,
}

impl ExecUser {
    pub fn from_bundle(bundle: &Path) -> io::Result<Self> {
        let spec = oci_spec::runtime::Spec::load(bundle.join("config.json"))
            .map_err(|e| io::Error::other(format!("{}: {e}", bundle.display())))?;
        let Some(process) = spec.process() else {
            return Ok(Self::default());
        };
        let user = process.user();
        Ok(Self {
            uid: user.uid(),
            gid: user.gid(),
            additional_gids: user.additional_gids().clone().unwrap_or_default(),
            cwd: Some(process.cwd().clone()),
        })
    }
}

/// Exec probes that timed out and were killed, to be reaped once they are gone.
static LEFTOVERS: Mutex<Vec<i32>> = Mutex::new(Vec::new());

/// Reaps the killed exec probes that have exited (the monitor calls it when it reaps).
pub fn reap_leftovers() {
    let mut left = LEFTOVERS.lock().unwrap_or_else(|e| e.into_inner());
    left.retain(|pid| {
        let Some(p) = Pid::from_raw(*pid) else {
            return false;
        };
        matches!(waitpid(Some(p), WaitOptions::NOHANG), Ok(None))
    });
}

/// An exec probe's command, running.
struct ExecCheck {
    pid: Pid,
    pidfd: OwnedFd,
    /// Its stdout and stderr, one pipe; None after end of file.
    output: Option<File>,
    buf: Vec<u8>,
    command: Vec<String>,
}

impl ExecCheck {
    fn start(target: &Target, command: &[String]) -> Result<Self, String> {
        if command.is_empty() {
            return Err("exec probe without a command".into());
        }
        let pipe = || rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC);
        let (out_r, out_w) = pipe().map_err(|e| format!("pipe: {e}"))?;
        let err_w = out_w.try_clone().map_err(|e| format!("dup: {e}"))?;
        let stdin = File::open("/dev/null").map_err(|e| format!("/dev/null: {e}"))?;
        let pid = crate::runtime::exec::spawn_tenant(
            &target.via,
            &target.container,
            &target.user,
            command,
            OwnedFd::from(stdin),
            out_w,
            err_w,
        )?;
        let pidfd = match pidfd_open(pid, PidfdFlags::empty()) {
            Ok(fd) => fd,
            Err(e) => {
                // Gone already (ESRCH cannot happen before it is reaped): reap and carry on.
                let _ = waitpid(Some(pid), WaitOptions::empty());
                return Err(format!("pidfd_open: {e}"));
            }
        };
        rustix::fs::fcntl_setfl(&out_r, rustix::fs::OFlags::NONBLOCK)
            .map_err(|e| format!("fcntl: {e}"))?;
        Ok(Self {
            pid,
            pidfd,
            output: Some(File::from(out_r)),
            buf: Vec::new(),
            command: command.to_vec(),
        })
    }

    /// Reads what is there; `true` at end of file.
    fn read_output(&mut self) {
        let Some(f) = self.output.as_mut() else {
            return;
        };
        let mut chunk = [0u8; 4096];
        loop {
            match f.read(&mut chunk) {
                Ok(0) => {
                    self.output = None;
                    return;
                }
                Ok(n) => {
                    let room = MAX_EXEC_OUTPUT.saturating_sub(self.buf.len());
                    self.buf.extend_from_slice(&chunk[..n.min(room)]);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(_) => {
                    self.output = None;
                    return;
                }
            }
        }
    }

    fn advance(&mut self) -> Option<Result<(), String>> {
        self.read_output();
        let status = match waitpid(Some(self.pid), WaitOptions::NOHANG) {
            Ok(Some((_, status))) => status,
            Ok(None) => return None,
            Err(e) => return Some(Err(format!("waitpid: {e}"))),
        };
        // Its own output is in (a background child may hold the pipe: not waited for).
        self.read_output();
        self.output = None;
        let code = status
            .exit_status()
            .unwrap_or_else(|| 128 + status.terminating_signal().unwrap_or(0));
        if code == 0 {
            return Some(Ok(()));
        }
        let output = String::from_utf8_lossy(&self.buf).trim_end().to_string();
        Some(Err(if output.is_empty() {
            format!(
                "command {:?} exited with code {code}",
                self.command.join(" ")
            )
        } else {
            output
        }))
    }

    /// Kills the command (timeout, or the container ended); it is reaped later.
    fn abort(self) {
        let _ = pidfd_send_signal(&self.pidfd, Signal::KILL);
        if !matches!(waitpid(Some(self.pid), WaitOptions::NOHANG), Ok(Some(_))) {
            LEFTOVERS
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(self.pid.as_raw_nonzero().get());
        }
    }
}

/// Where a network check is.
enum Phase {
    Connecting,
    /// Sending the HTTP request, `sent` bytes of it so far.
    Sending(usize),
    Receiving,
    /// HTTPS: the TLS session carries the request (queued at connect) and the answer.
    Tls,
}

/// A tcpSocket or httpGet probe in progress.
struct NetCheck {
    stream: TcpStream,
    addr: SocketAddr,
    phase: Phase,
    /// For httpGet: the request and the URL (for messages).
    http: Option<(Vec<u8>, String)>,
    /// For HTTPS: the TLS session, which verifies no certificate (as the kubelet's probes).
    tls: Option<Box<rustls::ClientConnection>>,
    received: Vec<u8>,
}

/// Go's wording of an OS error: `connection refused`.
fn os_error(e: Errno) -> String {
    let text = io::Error::from_raw_os_error(e.raw_os_error()).to_string();
    let text = text.split(" (os error").next().unwrap_or(&text).to_string();
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => text,
    }
}

impl NetCheck {
    fn connect(
        addr: SocketAddr,
        http: Option<(Vec<u8>, String)>,
        tls: Option<Box<rustls::ClientConnection>>,
    ) -> Result<Self, String> {
        use rustix::net::{AddressFamily, SocketFlags, SocketType};
        let family = if addr.is_ipv4() {
            AddressFamily::INET
        } else {
            AddressFamily::INET6
        };
        let fd = rustix::net::socket_with(
            family,
            SocketType::STREAM,
            SocketFlags::NONBLOCK | SocketFlags::CLOEXEC,
            None,
        )
        .map_err(|e| format!("socket: {}", os_error(e)))?;
        let check = Self {
            stream: TcpStream::from(fd),
            addr,
            phase: Phase::Connecting,
            http,
            tls,
            received: Vec::new(),
        };
        match rustix::net::connect(&check.stream, &addr) {
            Ok(()) | Err(Errno::INPROGRESS) | Err(Errno::INTR) => Ok(check),
            Err(e) => Err(check.dial_error(e)),
        }
    }

    fn dial_error(&self, e: Errno) -> String {
        let dial = format!("dial tcp {}: connect: {}", self.addr, os_error(e));
        match &self.http {
            Some((_, url)) => format!("Get {url:?}: {dial}"),
            None => dial,
        }
    }

    fn io_error(&self, e: io::Error) -> String {
        let url = self.http.as_ref().map_or("", |(_, u)| u.as_str());
        format!("Get {url:?}: {e}")
    }

    fn interest(&self) -> PollFlags {
        match self.phase {
            Phase::Connecting | Phase::Sending(_) => PollFlags::OUT,
            Phase::Receiving => PollFlags::IN,
            Phase::Tls if self.tls.as_ref().is_some_and(|t| t.wants_write()) => {
                PollFlags::IN | PollFlags::OUT
            }
            Phase::Tls => PollFlags::IN,
        }
    }

    fn advance(&mut self) -> Option<Result<(), String>> {
        loop {
            match self.phase {
                Phase::Connecting => {
                    match rustix::net::sockopt::socket_error(&self.stream) {
                        Ok(Err(e)) => return Some(Err(self.dial_error(e))),
                        Err(e) => return Some(Err(self.dial_error(e))),
                        Ok(Ok(())) => {}
                    }
                    match self.stream.peer_addr() {
                        Ok(_) => {}
                        Err(e) if e.kind() == io::ErrorKind::NotConnected => return None,
                        Err(e) => return Some(Err(format!("dial tcp {}: {e}", self.addr))),
                    }
                    match (&self.http, self.tls.as_mut()) {
                        (None, _) => return Some(Ok(())),
                        (Some((request, _)), Some(tls)) => {
                            if let Err(e) = tls.writer().write_all(request) {
                                return Some(Err(self.io_error(e)));
                            }
                            self.phase = Phase::Tls;
                        }
                        (Some(_), None) => self.phase = Phase::Sending(0),
                    }
                }
                Phase::Tls => return self.advance_tls(),
                Phase::Sending(sent) => {
                    let request = &self.http.as_ref().expect("http check").0;
                    match (&self.stream).write(&request[sent..]) {
                        Ok(n) if sent + n >= request.len() => self.phase = Phase::Receiving,
                        Ok(n) => self.phase = Phase::Sending(sent + n),
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => return None,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => return Some(Err(self.io_error(e))),
                    }
                }
                Phase::Receiving => {
                    let mut chunk = [0u8; 4096];
                    let eof = match (&self.stream).read(&mut chunk) {
                        Ok(0) => true,
                        Ok(n) => {
                            self.received.extend_from_slice(&chunk[..n]);
                            false
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => return None,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(e) => return Some(Err(self.io_error(e))),
                    };
                    match http::parse(&self.received, eof) {
                        http::Response::Incomplete => {}
                        http::Response::Done(code) if http::success(code) => return Some(Ok(())),
                        http::Response::Done(code) => {
                            return Some(Err(format!("HTTP probe failed with statuscode: {code}")))
                        }
                        http::Response::Malformed(m) => {
                            let url = self.http.as_ref().map_or("", |(_, u)| u.as_str());
                            return Some(Err(format!("Get {url:?}: {m}")));
                        }
                    }
                }
            }
        }
    }

    /// Moves the TLS session on: sends what it has to, takes in what came, and reads the
    /// answer once the handshake is over.
    fn advance_tls(&mut self) -> Option<Result<(), String>> {
        let url = self
            .http
            .as_ref()
            .map_or("", |(_, u)| u.as_str())
            .to_string();
        let Self {
            stream,
            tls,
            received,
            ..
        } = self;
        let tls = tls.as_mut()?;
        loop {
            while tls.wants_write() {
                match tls.write_tls(&mut &*stream) {
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Some(Err(format!("Get {url:?}: {e}"))),
                }
            }
            let eof = match tls.read_tls(&mut &*stream) {
                Ok(0) => true,
                Ok(_) => false,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return None,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Some(Err(format!("Get {url:?}: {e}"))),
            };
            if let Err(e) = tls.process_new_packets() {
                return Some(Err(format!("Get {url:?}: tls: {e}")));
            }
            let mut closed = eof;
            let mut chunk = [0u8; 4096];
            loop {
                match tls.reader().read(&mut chunk) {
                    Ok(0) => {
                        closed = true;
                        break;
                    }
                    Ok(n) => received.extend_from_slice(&chunk[..n]),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    // Closed without close_notify: the end of the answer all the same.
                    Err(_) => {
                        closed = true;
                        break;
                    }
                }
            }
            match http::parse(received, closed) {
                http::Response::Incomplete if !closed => {}
                http::Response::Incomplete => {
                    return Some(Err(format!("Get {url:?}: unexpected EOF")))
                }
                http::Response::Done(code) if http::success(code) => return Some(Ok(())),
                http::Response::Done(code) => {
                    return Some(Err(format!("HTTP probe failed with statuscode: {code}")))
                }
                http::Response::Malformed(m) => return Some(Err(format!("Get {url:?}: {m}"))),
            }
        }
    }

    /// The failure message of a check that ran out of time.
    fn timeout_message(&self, timeout: Duration) -> String {
        match &self.http {
            Some((_, url)) => format!(
                "Get {url:?}: context deadline exceeded (Client.Timeout exceeded while awaiting headers)"
            ),
            None => format!("dial tcp {}: i/o timeout (after {timeout:?})", self.addr),
        }
    }
}

/// One probe attempt in progress.
enum Check {
    Exec(ExecCheck),
    Net(NetCheck),
}

impl Check {
    /// Starts an attempt; `Err` when it failed at once (its failure message), `Ok(None)` when
    /// it succeeded at once.
    fn start(handler: &Handler, target: &Target) -> Result<Option<Self>, String> {
        match handler {
            Handler::Exec { command } => {
                ExecCheck::start(target, command).map(|c| Some(Self::Exec(c)))
            }
            Handler::TcpSocket { host, port } => {
                let addr = resolve(host.as_deref(), target.pod_ip, *port)
                    .map_err(|e| format!("dial tcp {}: {e}", host_port(host, target, *port)))?;
                let mut check = NetCheck::connect(addr, None, None)?;
                match check.advance() {
                    Some(result) => result.map(|()| None),
                    None => Ok(Some(Self::Net(check))),
                }
            }
            Handler::HttpGet {
                https,
                host,
                port,
                path,
                headers,
            } => {
                let authority = host_port(host, target, *port);
                let scheme = if *https { "https" } else { "http" };
                let url = format!("{scheme}://{authority}{path}");
                let addr = resolve(host.as_deref(), target.pod_ip, *port)
                    .map_err(|e| format!("Get {url:?}: dial tcp {authority}: {e}"))?;
                let request = http::request(&authority, path, headers);
                let tls = if *https {
                    let name = host.clone().unwrap_or_else(|| target.pod_ip.to_string());
                    Some(Box::new(
                        tls_session(&name).map_err(|e| format!("Get {url:?}: tls: {e}"))?,
                    ))
                } else {
                    None
                };
                let mut check = NetCheck::connect(addr, Some((request, url)), tls)?;
                match check.advance() {
                    Some(result) => result.map(|()| None),
                    None => Ok(Some(Self::Net(check))),
                }
            }
            Handler::Invalid { message } => Err(message.clone()),
        }
    }

    fn advance(&mut self) -> Option<Result<(), String>> {
        match self {
            Self::Exec(c) => c.advance(),
            Self::Net(c) => c.advance(),
        }
    }

    /// Gives up on the attempt; its failure message.
    fn abort(self, timeout: Duration) -> String {
        match self {
            Self::Exec(c) => {
                let message = format!(
                    "command {:?} timed out after {timeout:?}",
                    c.command.join(" ")
                );
                c.abort();
                message
            }
            Self::Net(c) => c.timeout_message(timeout),
        }
    }

    fn fds(&self) -> Vec<(BorrowedFd<'_>, PollFlags)> {
        match self {
            Self::Exec(c) => {
                let mut fds = vec![(c.pidfd.as_fd(), PollFlags::IN)];
                if let Some(f) = &c.output {
                    fds.push((f.as_fd(), PollFlags::IN));
                }
                fds
            }
            Self::Net(c) => vec![(c.stream.as_fd(), c.interest())],
        }
    }
}

/// A TLS client session to `host` that accepts any certificate, as the kubelet's HTTPS
/// probes do (`InsecureSkipVerify`): a probe checks health, not identity. The handshake's
/// signatures are still checked against the certificate presented.
fn tls_session(host: &str) -> Result<rustls::ClientConnection, rustls::Error> {
    use std::sync::{Arc, OnceLock};
    static CONFIG: OnceLock<Result<Arc<rustls::ClientConfig>, rustls::Error>> = OnceLock::new();
    let config = CONFIG
        .get_or_init(|| {
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let verifier = Arc::new(AnyCertificate(provider.clone()));
            Ok(Arc::new(
                rustls::ClientConfig::builder_with_provider(provider)
                    .with_safe_default_protocol_versions()?
                    .dangerous()
                    .with_custom_certificate_verifier(verifier)
                    .with_no_client_auth(),
            ))
        })
        .clone()?;
    let bare = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let name = rustls::pki_types::ServerName::try_from(bare)
        .map_err(|e| rustls::Error::General(format!("server name {host:?}: {e}")))?;
    rustls::ClientConnection::new(config, name)
}

/// The certificate verifier of HTTPS probes: any certificate will do.
#[derive(Debug)]
struct AnyCertificate(std::sync::Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// `host:port` as a URL authority (IPv6 in brackets).
fn host_port(host: &Option<String>, target: &Target, port: u16) -> String {
    match host {
        Some(h) if h.contains(':') && !h.starts_with('[') => format!("[{h}]:{port}"),
        Some(h) => format!("{h}:{port}"),
        None => SocketAddr::new(target.pod_ip, port).to_string(),
    }
}

fn resolve(host: Option<&str>, pod_ip: IpAddr, port: u16) -> Result<SocketAddr, String> {
    let Some(host) = host else {
        return Ok(SocketAddr::new(pod_ip, port));
    };
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, port));
    }
    (bare, port)
        .to_socket_addrs()
        .map_err(|e| format!("lookup {bare}: {e}"))?
        .next()
        .ok_or_else(|| format!("lookup {bare}: no such host"))
}

/// A running container's probes: the machine's schedule carried out with real checks.
pub struct Probing {
    machine: Machine,
    specs: BTreeMap<ProbeKind, ProbeSpec>,
    target: Target,
    checks: BTreeMap<ProbeKind, Check>,
}

impl Probing {
    /// The probes of a container that started at `started_at`.
    pub fn new(specs: &[ProbeSpec], started_at: Instant, target: Target) -> Self {
        Self {
            machine: Machine::new(specs, started_at),
            specs: specs.iter().map(|s| (s.kind, s.clone())).collect(),
            target,
            checks: BTreeMap::new(),
        }
    }

    /// Does what is due at `now`: collects finished attempts, fails those past their
    /// timeout, starts the probes that are due. Returns the kill a failed liveness or
    /// startup probe decided.
    pub fn tick(&mut self, now: Instant) -> Option<Kill> {
        let mut kill = None;
        let finished: Vec<(ProbeKind, Result<(), String>)> = self
            .checks
            .iter_mut()
            .filter_map(|(kind, c)| Some((*kind, c.advance()?)))
            .collect();
        for (kind, result) in finished {
            self.checks.remove(&kind);
            kill = kill.or(self.machine.finish(kind, result, now));
        }
        for kind in self.machine.timed_out(now) {
            let message = match self.checks.remove(&kind) {
                Some(c) => c.abort(self.machine.timeout(kind)),
                None => "probe timed out".into(),
            };
            kill = kill.or(self.machine.finish(kind, Err(message), now));
        }
        if kill.is_none() {
            for kind in self.machine.due(now) {
                self.machine.begin(kind, now);
                match Check::start(&self.specs[&kind].handler, &self.target) {
                    Ok(Some(check)) => {
                        self.checks.insert(kind, check);
                    }
                    Ok(None) => kill = kill.or(self.machine.finish(kind, Ok(()), now)),
                    Err(message) => kill = kill.or(self.machine.finish(kind, Err(message), now)),
                }
            }
        }
        if kill.is_some() {
            self.stop();
        }
        kill
    }

    /// The descriptors whose readiness moves an attempt on, for the poll set.
    pub fn fds(&self) -> Vec<(BorrowedFd<'_>, PollFlags)> {
        self.checks.values().flat_map(Check::fds).collect()
    }

    /// When [`Self::tick`] has something to do even if no descriptor is ready.
    pub fn next_wakeup(&self) -> Option<Instant> {
        self.machine.next_wakeup()
    }

    pub fn record(&self) -> RunProbes {
        self.machine.record()
    }

    /// Abandons the attempts in flight (the container ended or is being killed).
    pub fn stop(&mut self) {
        for (kind, check) in std::mem::take(&mut self.checks) {
            let _ = check.abort(self.machine.timeout(kind));
        }
    }
}

impl Drop for Probing {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    fn target() -> Target {
        Target {
            via: crate::runtime::exec::ExecVia::Libcontainer {
                root: PathBuf::from("/nonexistent"),
            },
            container: "c".into(),
            pod_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            user: ExecUser::default(),
        }
    }

    /// Drives a check to its end (the tests' servers answer at once).
    fn run(handler: &Handler) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut check = match Check::start(handler, &target())? {
            None => return Ok(()),
            Some(c) => c,
        };
        loop {
            if let Some(r) = check.advance() {
                return r;
            }
            assert!(Instant::now() < deadline, "check never ended");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn http_server(answer: &'static [u8]) -> (u16, std::thread::JoinHandle<String>) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let t = std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let mut req = Vec::new();
            let mut buf = [0u8; 1024];
            while !req.ends_with(b"\r\n\r\n") {
                let n = s.read(&mut buf).unwrap();
                if n == 0 {
                    break;
                }
                req.extend_from_slice(&buf[..n]);
            }
            s.write_all(answer).unwrap();
            String::from_utf8(req).unwrap()
        });
        (port, t)
    }

    fn http(port: u16) -> Handler {
        Handler::HttpGet {
            https: false,
            host: None,
            port,
            path: "/healthz".into(),
            headers: vec![("X-Probe".into(), "1".into())],
        }
    }

    #[test]
    fn tcp_connects_or_reports_go_s_wording() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        assert_eq!(run(&Handler::TcpSocket { host: None, port }), Ok(()));
        drop(l);
        let err = run(&Handler::TcpSocket {
            host: Some("127.0.0.1".into()),
            port,
        })
        .unwrap_err();
        assert_eq!(
            err,
            format!("dial tcp 127.0.0.1:{port}: connect: connection refused")
        );
    }

    #[test]
    fn http_get_status_decides() {
        let (port, server) = http_server(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
        assert_eq!(run(&http(port)), Ok(()));
        let request = server.join().unwrap();
        assert!(
            request.starts_with("GET /healthz HTTP/1.1\r\n"),
            "{request}"
        );
        assert!(request.contains(&format!("Host: 127.0.0.1:{port}\r\n")));
        assert!(request.contains("User-Agent: kube-probe/"));
        assert!(request.contains("X-Probe: 1\r\n"));

        let (port, server) = http_server(b"HTTP/1.1 500 Internal Server Error\r\n\r\n");
        // The server closes after answering: the end of the body.
        assert_eq!(
            run(&http(port)),
            Err("HTTP probe failed with statuscode: 500".into())
        );
        server.join().unwrap();
    }

    #[test]
    fn https_get_accepts_any_certificate() {
        use std::sync::Arc;
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["not-this-host.example".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = Arc::new(
            rustls::ServerConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_no_client_auth()
                .with_single_cert(
                    vec![cert.der().clone()],
                    rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der()).unwrap(),
                )
                .unwrap(),
        );
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            let (mut sock, _) = l.accept().unwrap();
            let mut conn = rustls::ServerConnection::new(config).unwrap();
            let mut tls = rustls::Stream::new(&mut conn, &mut sock);
            let mut req = Vec::new();
            let mut buf = [0u8; 1024];
            while !req.ends_with(b"\r\n\r\n") {
                let n = tls.read(&mut buf).unwrap();
                req.extend_from_slice(&buf[..n]);
            }
            tls.write_all(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n")
                .unwrap();
            tls.flush().unwrap();
            String::from_utf8(req).unwrap()
        });
        let handler = Handler::HttpGet {
            https: true,
            host: None,
            port,
            path: "/ready".into(),
            headers: vec![],
        };
        assert_eq!(
            run(&handler),
            Err("HTTP probe failed with statuscode: 503".into()),
            "the status came through TLS despite a certificate for another name"
        );
        assert!(server
            .join()
            .unwrap()
            .starts_with("GET /ready HTTP/1.1\r\n"));
    }

    #[test]
    fn http_get_refused_and_invalid() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        drop(l);
        assert_eq!(
            run(&http(port)),
            Err(format!(
                "Get \"http://127.0.0.1:{port}/healthz\": dial tcp 127.0.0.1:{port}: connect: connection refused"
            ))
        );
        assert_eq!(
            run(&Handler::Invalid {
                message: "couldn't find port: \"web\"".into()
            }),
            Err("couldn't find port: \"web\"".into())
        );
    }

    #[test]
    fn a_silent_server_times_out_through_the_machine() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let spec = ProbeSpec {
            kind: ProbeKind::Liveness,
            handler: http(port),
            initial_delay: Duration::ZERO,
            period: Duration::from_secs(10),
            timeout: Duration::from_millis(100),
            success_threshold: 1,
            failure_threshold: 1,
            kill_grace: Duration::from_secs(1),
        };
        let t0 = Instant::now();
        let mut p = Probing::new(&[spec], t0, target());
        assert_eq!(
            p.tick(t0),
            None,
            "connected (backlog), waiting for an answer"
        );
        assert_eq!(p.fds().len(), 1);
        assert_eq!(p.next_wakeup(), Some(t0 + Duration::from_millis(100)));
        let kill = p.tick(t0 + Duration::from_millis(100));
        assert_eq!(kill.map(|k| k.kind), Some(ProbeKind::Liveness));
        let record = p.record();
        assert!(record.results[&ProbeKind::Liveness]
            .last_failure
            .as_deref()
            .unwrap()
            .contains("context deadline exceeded"));
        assert!(p.fds().is_empty());
    }
}
