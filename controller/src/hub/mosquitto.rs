//! Mosquitto's password and ACL files, kept by `kelp server` from the credentials in the store
//! (`--mosquitto-passwd FILE --mosquitto-acl FILE`), so that on a Mosquitto fleet a node can
//! read and write only its own topics:
//!
//! - the controller: everything under the topic prefix;
//! - node N: reads its `desired` and `cmd/+/req`; reads and writes its `status` (it watches
//!   its own birth to refuse a twin); writes its `reported`, `static`, `events`, `metrics`
//!   and `cmd/+/resp`;
//! - an observer (`kelp observer add`): reads every node's `status`, `reported` and
//!   `metrics`, writes nothing.
//!
//! Passwords are stored in Mosquitto's `$7$` format (PBKDF2-HMAC-SHA512, 101 iterations,
//! 12-byte salt, base64): a user whose password did not change keeps its line, salt and all,
//! so an unchanged fleet rewrites nothing. When a file changes, every Mosquitto process on
//! this machine whose configuration names the password file is sent SIGHUP (it re-reads both
//! files); when none is found the server says so. Users may also be certificate identities
//! (`use_identity_as_username true`): the ACL is by user name either way.

use std::collections::BTreeMap;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};

use base64::Engine;
use kelp_shared::wire::Topics;
use serde_json::Value;

use super::broker::{CREDENTIALS_NAMESPACE, CREDENTIALS_TYPE};
use crate::store::Store;

/// The Secret type of observer credentials.
pub const OBSERVER_TYPE: &str = "kelp.dev/observer-credentials";

/// Mosquitto's PBKDF2 iteration count for `$7$` hashes.
const ITERATIONS: u32 = 101;

/// The MQTT user name of observer `name` (`@` cannot appear in a node name).
pub fn observer_user(name: &str) -> String {
    format!("observer@{name}")
}

/// The Secret holding observer `name`'s password.
pub fn observer_secret(name: &str) -> String {
    format!("kelp-observer-{name}")
}

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

fn derive(password: &str, salt: &[u8]) -> [u8; 64] {
    let mut out = [0u8; 64];
    ring::pbkdf2::derive(
        ring::pbkdf2::PBKDF2_HMAC_SHA512,
        NonZeroU32::new(ITERATIONS).expect("non-zero"),
        salt,
        password.as_bytes(),
        &mut out,
    );
    out
}

/// `password` as a Mosquitto `$7$` hash with `salt`.
pub fn password_hash(password: &str, salt: &[u8; 12]) -> String {
    format!(
        "$7${ITERATIONS}${}${}",
        b64().encode(salt),
        b64().encode(derive(password, salt))
    )
}

/// Whether a `$7$` hash (as Mosquitto writes it) is of `password`.
pub fn hash_matches(hash: &str, password: &str) -> bool {
    let mut parts = hash.split('$');
    let (Some(""), Some("7"), Some(iterations), Some(salt), Some(digest), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return false;
    };
    let (Ok(iterations), Ok(salt), Ok(digest)) = (
        iterations.parse::<u32>(),
        b64().decode(salt),
        b64().decode(digest),
    ) else {
        return false;
    };
    let Some(iterations) = NonZeroU32::new(iterations) else {
        return false;
    };
    ring::pbkdf2::verify(
        ring::pbkdf2::PBKDF2_HMAC_SHA512,
        iterations,
        &salt,
        password.as_bytes(),
        &digest,
    )
    .is_ok()
}

/// Who a user is, for the ACL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// The controller.
    Controller,
    /// The node of that name.
    Node(String),
    /// A read-only observer.
    Observer,
}

/// The ACL lines of `user` in `role`.
pub fn acl_lines(topics: &Topics, user: &str, role: &Role) -> String {
    let p = topics.prefix();
    let mut out = format!("user {user}\n");
    let mut line = |access: &str, topic: String| {
        out.push_str(&format!("topic {access} {topic}\n"));
    };
    match role {
        Role::Controller => line("readwrite", format!("{p}/#")),
        Role::Node(n) => {
            line("read", format!("{p}/nodes/{n}/desired"));
            line("read", format!("{p}/nodes/{n}/cmd/+/req"));
            line("readwrite", format!("{p}/nodes/{n}/status"));
            for t in ["reported", "static", "events", "metrics"] {
                line("write", format!("{p}/nodes/{n}/{t}"));
            }
            line("write", format!("{p}/nodes/{n}/cmd/+/resp"));
        }
        Role::Observer => {
            for t in ["status", "reported", "metrics"] {
                line("read", format!("{p}/nodes/+/{t}"));
            }
        }
    }
    out
}

/// A user: name, password, role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// The MQTT user name.
    pub name: String,
    /// The clear-text password (from its Secret).
    pub password: String,
    /// What it may do.
    pub role: Role,
}

fn secret_field(secret: &Value, field: &str) -> Option<String> {
    let raw = secret["data"][field].as_str()?;
    String::from_utf8(b64().decode(raw).ok()?).ok()
}

/// Every node and observer with credentials in the store, by user name.
pub fn users(store: &Store) -> Vec<User> {
    let (secrets, _) = store.list("Secret", Some(CREDENTIALS_NAMESPACE));
    let mut out = Vec::new();
    for s in &secrets {
        let object = &s.object;
        let kind = object["type"].as_str().unwrap_or_default();
        let (Some(name), Some(password)) = (
            secret_field(object, "username"),
            secret_field(object, "password"),
        ) else {
            continue;
        };
        let role = match kind {
            CREDENTIALS_TYPE => Role::Node(name.clone()),
            OBSERVER_TYPE => Role::Observer,
            _ => continue,
        };
        out.push(User {
            name,
            password,
            role,
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// The two files' contents for `users`, reusing the hashes of `old_passwords` (the current
/// password file) where they still match.
pub fn render(topics: &Topics, users: &[User], old_passwords: &str) -> (String, String) {
    let old: BTreeMap<&str, &str> = old_passwords
        .lines()
        .filter_map(|l| l.split_once(':'))
        .collect();
    let header = "# Written by kelp server from its store: edits are overwritten.\n";
    let mut passwd = String::new();
    let mut acl = String::from(header);
    for user in users {
        // No password: the user logs in with a client certificate (its ACL block stays).
        if !user.password.is_empty() {
            let hash = match old.get(user.name.as_str()) {
                Some(hash) if hash_matches(hash, &user.password) => (*hash).to_owned(),
                _ => password_hash(&user.password, &rand::random()),
            };
            passwd.push_str(&format!("{}:{hash}\n", user.name));
        }
        acl.push_str(&format!("\n{}", acl_lines(topics, &user.name, &user.role)));
    }
    (passwd, acl)
}

/// Where the files go and how Mosquitto is told.
#[derive(Debug, Clone)]
pub struct Files {
    /// The password file.
    pub passwd: PathBuf,
    /// The ACL file.
    pub acl: PathBuf,
}

/// Writes `text` to `path` if it differs (atomically, readable by Mosquitto's user only
/// when that user exists); true when written.
fn write_if_changed(path: &Path, text: &str) -> std::io::Result<bool> {
    use std::os::unix::fs::PermissionsExt;
    if std::fs::read_to_string(path).ok().as_deref() == Some(text) {
        return Ok(false);
    }
    let tmp = path.with_extension("kelp-tmp");
    std::fs::write(&tmp, text)?;
    match mosquitto_ids() {
        Some((uid, gid)) => {
            std::os::unix::fs::chown(&tmp, Some(uid), Some(gid))?;
            std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))?;
        }
        // No `mosquitto` user: Mosquitto runs as whoever starts it; keep it readable.
        None => std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o644))?,
    }
    std::fs::File::open(&tmp)?.sync_all()?;
    std::fs::rename(&tmp, path)?;
    Ok(true)
}

/// The uid and gid of the `mosquitto` user, which Mosquitto drops to when started as root.
fn mosquitto_ids() -> Option<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.first() == Some(&"mosquitto") && f.len() > 3)
            .then(|| Some((f[2].parse().ok()?, f[3].parse().ok()?)))
            .flatten()
    })
}

/// The pids of Mosquitto processes whose configuration file names `passwd`.
pub fn mosquitto_pids(passwd: &Path) -> Vec<i32> {
    let wanted = passwd.to_string_lossy().into_owned();
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|p| p.parse::<i32>().ok())
        else {
            continue;
        };
        let comm = std::fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
        if comm.trim() != "mosquitto" {
            continue;
        }
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let args: Vec<String> = cmdline
            .split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        let config = args
            .iter()
            .position(|a| a == "-c" || a == "--config-file")
            .and_then(|i| args.get(i + 1))
            .map(|c| entry.path().join("cwd").join(c));
        let names_it = config
            .and_then(|c| std::fs::read_to_string(c).ok())
            .is_some_and(|text| {
                text.lines().any(|l| {
                    let l = l.trim();
                    l.starts_with("password_file") && l.ends_with(wanted.as_str())
                })
            });
        if names_it {
            out.push(pid);
        }
    }
    out
}

/// Brings the files in line with the store; reloads Mosquitto when they changed.
pub fn sync(
    store: &Store,
    topics: &Topics,
    files: &Files,
    controller: (&str, &str),
) -> std::io::Result<bool> {
    let mut all = vec![User {
        name: controller.0.to_owned(),
        password: controller.1.to_owned(),
        role: Role::Controller,
    }];
    all.extend(users(store));
    let old = std::fs::read_to_string(&files.passwd).unwrap_or_default();
    let (passwd, acl) = render(topics, &all, &old);
    let changed = write_if_changed(&files.passwd, &passwd)? | write_if_changed(&files.acl, &acl)?;
    if changed {
        let pids = mosquitto_pids(&files.passwd);
        if pids.is_empty() {
            tracing::warn!(
                passwd = %files.passwd.display(),
                "Mosquitto's files changed but no Mosquitto on this machine uses them: reload it (SIGHUP) where it runs"
            );
        }
        for pid in pids.into_iter().filter_map(rustix::process::Pid::from_raw) {
            match rustix::process::kill_process(pid, rustix::process::Signal::HUP) {
                Ok(()) => tracing::info!(
                    pid = pid.as_raw_nonzero().get(),
                    "Mosquitto reloaded (password and ACL files changed)"
                ),
                Err(e) => tracing::warn!(
                    pid = pid.as_raw_nonzero().get(),
                    error = %e,
                    "cannot SIGHUP Mosquitto"
                ),
            }
        }
    }
    Ok(changed)
}

/// Keeps the files in line until the store closes: at start and after every change to the
/// credentials namespace's Secrets.
pub async fn run(store: Store, topics: Topics, files: Files, controller: (String, String)) {
    let mut watch = match store.watch_in(
        Some("Secret"),
        Some(CREDENTIALS_NAMESPACE),
        store.revision(),
    ) {
        Ok(w) => w,
        Err(_) => return,
    };
    loop {
        let (s, t, f, c) = (
            store.clone(),
            topics.clone(),
            files.clone(),
            controller.clone(),
        );
        let outcome =
            tokio::task::spawn_blocking(move || sync(&s, &t, &f, (c.0.as_str(), c.1.as_str())))
                .await;
        match outcome {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                tracing::error!(error = %e, passwd = %files.passwd.display(), acl = %files.acl.display(), "cannot write Mosquitto's files")
            }
            Err(e) => tracing::error!(error = %e, "Mosquitto file task failed"),
        }
        match watch.next().await {
            Some(_) => {
                // Changes that arrive together make one rewrite.
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            None => {
                watch = match store.watch_in(
                    Some("Secret"),
                    Some(CREDENTIALS_NAMESPACE),
                    store.revision(),
                ) {
                    Ok(w) => w,
                    Err(_) => return,
                };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_mosquittos_7_format_and_verify() {
        // Made by `mosquitto_passwd -b FILE u pw` (Mosquitto 2.0.11).
        let theirs = "$7$101$wLupJq+xSvuafUrU$n1Jc2U+BhGjj8LEaPcn0ug/4YG2BKVG4ZBSdxw/9MJPucMV2iavul4dG5Jte5FvuUPLaeC9zhUYSnXIhcVn9Ww==";
        assert!(hash_matches(theirs, "pw"));
        assert!(!hash_matches(theirs, "pW"));
        let salt = b64().decode("wLupJq+xSvuafUrU").unwrap();
        let ours = password_hash("pw", &salt.try_into().unwrap());
        assert_eq!(ours, theirs);
        assert!(!hash_matches("$6$x$y", "pw"));
        assert!(!hash_matches("garbage", "pw"));
    }

    #[test]
    fn acl_gives_nodes_only_their_own_topics() {
        let topics = Topics::new("kelp/v1").unwrap();
        let acl = acl_lines(&topics, "n1", &Role::Node("n1".into()));
        assert_eq!(
            acl,
            "user n1\n\
             topic read kelp/v1/nodes/n1/desired\n\
             topic read kelp/v1/nodes/n1/cmd/+/req\n\
             topic readwrite kelp/v1/nodes/n1/status\n\
             topic write kelp/v1/nodes/n1/reported\n\
             topic write kelp/v1/nodes/n1/static\n\
             topic write kelp/v1/nodes/n1/events\n\
             topic write kelp/v1/nodes/n1/metrics\n\
             topic write kelp/v1/nodes/n1/cmd/+/resp\n"
        );
        let obs = acl_lines(&topics, "observer@laptop", &Role::Observer);
        assert!(obs.lines().skip(1).all(|l| l.starts_with("topic read ")));
        assert_eq!(
            acl_lines(&topics, "ctl", &Role::Controller),
            "user ctl\ntopic readwrite kelp/v1/#\n"
        );
    }

    #[test]
    fn unchanged_passwords_keep_their_lines() {
        let topics = Topics::new("kelp/v1").unwrap();
        let users = vec![
            User {
                name: "a".into(),
                password: "pa".into(),
                role: Role::Node("a".into()),
            },
            User {
                name: "b".into(),
                password: "pb".into(),
                role: Role::Node("b".into()),
            },
        ];
        let (first, acl) = render(&topics, &users, "");
        let (second, _) = render(&topics, &users, &first);
        assert_eq!(first, second, "no new salts for the same passwords");
        assert!(acl.contains("user a\n") && acl.contains("user b\n"));
        let mut changed = users.clone();
        changed[1].password = "new".into();
        let (third, _) = render(&topics, &changed, &first);
        assert_eq!(first.lines().next(), third.lines().next());
        assert_ne!(first.lines().nth(1), third.lines().nth(1));
        // A certificate user: no password line, its ACL block all the same.
        changed[1].password = String::new();
        let (fourth, acl) = render(&topics, &changed, &first);
        assert_eq!(fourth.lines().count(), 1);
        assert!(acl.contains("user b\n"));
    }
}
