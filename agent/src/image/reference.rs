//! Image references, parsed the way Docker and containerd read them.
//!
//! `alpine` is `docker.io/library/alpine:latest`; `ghcr.io/org/app:1.2` names a registry
//! (a first component holding a `.` or a `:`, or `localhost`); `app@sha256:…` pins a
//! manifest digest (a tag beside a digest is kept for display but the digest wins).

use std::fmt;
use std::str::FromStr;

use super::Digest;

/// The registry Docker Hub's short names live in.
pub const DOCKER_HUB: &str = "docker.io";
/// Where Docker Hub's registry API actually answers.
pub const DOCKER_HUB_API: &str = "registry-1.docker.io";

/// A parsed image reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    /// `docker.io`, `ghcr.io`, `127.0.0.1:5000`, …
    pub registry: String,
    /// `library/alpine`, `org/app`, …
    pub repository: String,
    /// The tag (`latest` when neither a tag nor a digest is given).
    pub tag: Option<String>,
    /// The manifest digest, if pinned.
    pub digest: Option<Digest>,
}

/// Why a string is not an image reference.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid image reference {reference:?}: {reason}")]
pub struct ParseReferenceError {
    /// The string given.
    pub reference: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

impl Reference {
    /// Parses `[registry/]repository[:tag][@digest]`.
    pub fn parse(s: &str) -> Result<Self, ParseReferenceError> {
        let err = |reason| ParseReferenceError {
            reference: s.to_owned(),
            reason,
        };
        if s.is_empty() {
            return Err(err("empty"));
        }
        if s.len() > 4096 {
            return Err(err("too long"));
        }
        let (name, digest) = match s.split_once('@') {
            Some((name, d)) => (
                name,
                Some(
                    Digest::parse(d)
                        .map_err(|_| err("the digest is not sha256:<64 hex digits>"))?,
                ),
            ),
            None => (s, None),
        };
        // A tag is a `:` after the last `/` (a `:` before it is a registry port).
        let slash = name.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match name[slash..].rfind(':') {
            Some(colon) => (&name[..slash + colon], Some(&name[slash + colon + 1..])),
            None => (name, None),
        };
        if let Some(t) = tag {
            let valid = !t.is_empty()
                && t.len() <= 128
                && t.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
                && !t.starts_with(['.', '-']);
            if !valid {
                return Err(err("invalid tag"));
            }
        }
        let (registry, path) = match name.split_once('/') {
            Some((first, rest))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                (first.to_owned(), rest.to_owned())
            }
            _ => (DOCKER_HUB.to_owned(), name.to_owned()),
        };
        let registry = match registry.as_str() {
            "index.docker.io" | "registry-1.docker.io" => DOCKER_HUB.to_owned(),
            _ => registry,
        };
        if registry.is_empty()
            || !registry
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
        {
            return Err(err("invalid registry host"));
        }
        let repository = if registry == DOCKER_HUB && !path.contains('/') {
            format!("library/{path}")
        } else {
            path
        };
        let component_ok = |c: &str| {
            !c.is_empty()
                && c.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
                && c.starts_with(|ch: char| ch.is_ascii_lowercase() || ch.is_ascii_digit())
                && c.ends_with(|ch: char| ch.is_ascii_lowercase() || ch.is_ascii_digit())
        };
        if repository.len() > 255 || !repository.split('/').all(component_ok) {
            return Err(err(
                "invalid repository name (lowercase letters, digits and . _ - separators)",
            ));
        }
        let tag = match (tag, &digest) {
            (Some(t), _) => Some(t.to_owned()),
            (None, None) => Some("latest".to_owned()),
            (None, Some(_)) => None,
        };
        Ok(Self {
            registry,
            repository,
            tag,
            digest,
        })
    }

    /// What to ask the registry's manifest endpoint for: the digest if pinned, else the tag.
    pub fn manifest_ref(&self) -> &str {
        match (&self.digest, &self.tag) {
            (Some(d), _) => d.as_str(),
            (None, Some(t)) => t,
            (None, None) => "latest",
        }
    }

    /// The host the registry API answers on (`registry-1.docker.io` for Docker Hub).
    pub fn api_host(&self) -> &str {
        if self.registry == DOCKER_HUB {
            DOCKER_HUB_API
        } else {
            &self.registry
        }
    }

    /// The same repository, pinned to `digest` (the tag is dropped).
    pub fn with_digest(&self, digest: Digest) -> Self {
        Self {
            digest: Some(digest),
            tag: None,
            ..self.clone()
        }
    }
}

impl fmt::Display for Reference {
    /// The full form: `docker.io/library/alpine:latest`, `host:5000/app@sha256:…`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

impl FromStr for Reference {
    type Err = ParseReferenceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(s: &str) -> (String, String, Option<String>, Option<String>) {
        let r = Reference::parse(s).unwrap();
        (
            r.registry,
            r.repository,
            r.tag,
            r.digest.map(|d| d.to_string()),
        )
    }

    const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn docker_hub_short_names_get_the_library_prefix_and_latest() {
        assert_eq!(
            parts("alpine"),
            (
                "docker.io".into(),
                "library/alpine".into(),
                Some("latest".into()),
                None
            )
        );
        assert_eq!(
            Reference::parse("alpine").unwrap().to_string(),
            "docker.io/library/alpine:latest"
        );
        assert_eq!(parts("bitnami/redis:7").1, "bitnami/redis");
        assert_eq!(parts("index.docker.io/library/busybox").0, "docker.io");
        assert_eq!(
            Reference::parse("busybox").unwrap().api_host(),
            "registry-1.docker.io"
        );
    }

    #[test]
    fn registries_are_told_apart_from_repository_components() {
        assert_eq!(
            parts("127.0.0.1:5000/kelp/busybox:1"),
            (
                "127.0.0.1:5000".into(),
                "kelp/busybox".into(),
                Some("1".into()),
                None
            )
        );
        assert_eq!(parts("localhost/app").0, "localhost");
        assert_eq!(parts("ghcr.io/org/app").0, "ghcr.io");
        // A first component without a dot, colon or "localhost" is a Docker Hub namespace.
        assert_eq!(parts("kelp/app").0, "docker.io");
        assert_eq!(parts("kelp/app").1, "kelp/app");
        // The port's colon is not a tag.
        assert_eq!(
            parts("registry.local:5000/app").2.as_deref(),
            Some("latest")
        );
    }

    #[test]
    fn digests_pin_the_manifest() {
        let r = Reference::parse(&format!("ghcr.io/org/app@{D}")).unwrap();
        assert_eq!(r.tag, None);
        assert_eq!(r.manifest_ref(), D);
        let r = Reference::parse(&format!("app:1.0@{D}")).unwrap();
        assert_eq!(r.tag.as_deref(), Some("1.0"));
        assert_eq!(r.manifest_ref(), D);
        assert_eq!(r.to_string(), format!("docker.io/library/app:1.0@{D}"));
    }

    #[test]
    fn malformed_references_are_refused_with_a_reason() {
        for bad in [
            "",
            "Alpine",
            "app:",
            "app:-x",
            "app@sha256:1234",
            "app@md5:0123",
            "a//b",
            "host:5000/",
            "app:has space",
        ] {
            let e = Reference::parse(bad).unwrap_err();
            assert_eq!(e.reference, bad);
        }
    }
}
