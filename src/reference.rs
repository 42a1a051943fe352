//! Image names as Docker reads them (distribution/reference): the one place their grammar is checked, for
//! the scenario's repository, for every image flag and for the bases a Dockerfile names, so a malformed name
//! is refused before anything starts; and the one place a name is read into its parts.

use std::fmt;

/// Why a name is not an image reference (or a repository), in words for the user.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    #[error("it is empty; name an image like `python:3.11-slim`")]
    Empty,
    #[error("it has {0} characters, far beyond an image name")]
    TooLong(usize),
    #[error("it has {length} characters, at most {max} are allowed")]
    RepositoryTooLong { length: usize, max: usize },
    #[error("use lower-case letters and digits, joined by '.', '_', '__' or '-', in '/'-separated parts")]
    RepositoryGrammar,
    #[error("repository `{repository}`: {why}")]
    Repository { repository: String, why: Box<ReferenceError> },
    #[error("tag `{0}`: at most 128 of letters, digits, '_', '.' and '-', not starting with '.' or '-'")]
    Tag(String),
    #[error("registry host `{0}`: a host name or address, optionally `:PORT`")]
    Host(String),
    #[error("digest `{0}`: `sha256:` and 64 lower-case hex digits")]
    Digest(String),
}

/// Docker's repository grammar: `/`-separated components, each `[a-z0-9]+` runs joined by one separator:
/// `.`, `_`, `__` or any number of `-`.
pub fn check_repository(repo: &str, max: usize) -> Result<(), ReferenceError> {
    if repo.len() > max {
        return Err(ReferenceError::RepositoryTooLong { length: repo.len(), max });
    }
    repo.split('/').all(component_ok).then_some(()).ok_or(ReferenceError::RepositoryGrammar)
}

fn component_ok(c: &str) -> bool {
    let alphanumeric = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let bytes = c.as_bytes();
    let (Some(&first), Some(&last)) = (bytes.first(), bytes.last()) else { return false };
    alphanumeric(first)
        && alphanumeric(last)
        && bytes
            .split(|b| alphanumeric(*b))
            .filter(|s| !s.is_empty())
            .all(|separator| matches!(separator, b"." | b"_" | b"__") || separator.iter().all(|b| *b == b'-'))
}

/// A whole image reference: `[HOST[:PORT]/]REPOSITORY[:TAG][@ALGORITHM:HEX]`, as `docker pull` takes it.
/// The host is the first component when it has a `.` or a `:`, or is `localhost`; a tag is at most 128 of
/// letters, digits, `_`, `.` and `-`, not starting with `.` or `-`.
pub fn check_reference(reference: &str) -> Result<(), ReferenceError> {
    Reference::parse(reference).map(|_| ())
}

/// Docker Hub's names for itself: a reference on any of them is a Docker Hub image.
const HUB_HOSTS: [&str; 3] = ["docker.io", "index.docker.io", "registry-1.docker.io"];

/// An image reference read into its parts, as written.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Reference {
    /// The registry host as written (`gcr.io`, `localhost:5000`), `None` when the name has none (Docker Hub).
    pub host: Option<String>,
    /// The repository path as written (`python`, `distroless/static`).
    pub repository: String,
    pub tag: Option<String>,
    pub digest: Option<String>,
}

impl Reference {
    /// Reads and checks a reference (see [`check_reference`]).
    pub fn parse(reference: &str) -> Result<Reference, ReferenceError> {
        if reference.is_empty() {
            return Err(ReferenceError::Empty);
        }
        if reference.len() > 255 + 128 + 72 {
            return Err(ReferenceError::TooLong(reference.len()));
        }
        let (name, digest) = match reference.split_once('@') {
            Some((name, digest)) => (name, Some(digest)),
            None => (reference, None),
        };
        if let Some(digest) = digest {
            check_digest(digest)?;
        }
        // A `:` after the last `/` starts the tag; one before it is the host's port.
        let last_slash = name.rfind('/').map_or(0, |i| i + 1);
        let (path, tag) = match name[last_slash..].find(':') {
            Some(i) => (&name[..last_slash + i], Some(&name[last_slash + i + 1..])),
            None => (name, None),
        };
        if let Some(tag) = tag {
            check_tag(tag)?;
        }
        let (host, repository) = match path.split_once('/') {
            Some((first, rest)) if first.contains('.') || first.contains(':') || first == "localhost" => (Some(first), rest),
            _ => (None, path),
        };
        if let Some(host) = host {
            check_host(host)?;
        }
        check_repository(repository, 255)
            .map_err(|why| ReferenceError::Repository { repository: repository.to_string(), why: Box::new(why) })?;
        Ok(Reference {
            host: host.map(str::to_string),
            repository: repository.to_string(),
            tag: tag.map(str::to_string),
            digest: digest.map(str::to_string),
        })
    }

    /// Whether Docker Hub serves it: no host, or one of Docker Hub's own.
    pub fn is_docker_hub(&self) -> bool {
        self.host.as_deref().is_none_or(|h| HUB_HOSTS.contains(&h))
    }

    /// The registry that serves it: `docker.io` for Docker Hub.
    pub fn registry(&self) -> &str {
        match &self.host {
            Some(host) if !self.is_docker_hub() => host,
            _ => "docker.io",
        }
    }

    /// The repository's path on its registry: Docker Hub's official images live under `library/`.
    pub fn path(&self) -> String {
        if self.is_docker_hub() && !self.repository.contains('/') {
            format!("library/{}", self.repository)
        } else {
            self.repository.clone()
        }
    }

    /// The tag a pull asks for: the one written, else `latest`.
    pub fn tag_or_latest(&self) -> &str {
        self.tag.as_deref().unwrap_or("latest")
    }

    /// Fully qualified, as two spellings of one image compare equal: `docker.io/library/python:3.11-slim`,
    /// `gcr.io/distroless/static:latest`, `…@sha256:…` (a digest decides alone, so the tag is dropped).
    pub fn canonical(&self) -> String {
        match &self.digest {
            Some(digest) => format!("{}/{}@{digest}", self.registry(), self.path()),
            None => format!("{}/{}:{}", self.registry(), self.path(), self.tag_or_latest()),
        }
    }
}

impl fmt::Display for Reference {
    /// As written.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(host) = &self.host {
            write!(f, "{host}/")?;
        }
        f.write_str(&self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

fn check_tag(tag: &str) -> Result<(), ReferenceError> {
    let ok = !tag.is_empty()
        && tag.len() <= 128
        && !tag.starts_with(['.', '-'])
        && tag.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
    ok.then_some(()).ok_or_else(|| ReferenceError::Tag(tag.to_string()))
}

fn check_host(host: &str) -> Result<(), ReferenceError> {
    let (name, port) = match host.rsplit_once(':') {
        Some((name, port)) => (name, Some(port)),
        None => (host, None),
    };
    let name_ok = !name.is_empty()
        && name.split('.').all(|label| {
            !label.is_empty() && !label.starts_with('-') && !label.ends_with('-') && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    let port_ok = port.is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()));
    (name_ok && port_ok).then_some(()).ok_or_else(|| ReferenceError::Host(host.to_string()))
}

fn check_digest(digest: &str) -> Result<(), ReferenceError> {
    let ok = match digest.split_once(':') {
        Some(("sha256", hex)) => hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()),
        Some(("sha512", hex)) => hex.len() == 128 && hex.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()),
        _ => false,
    };
    ok.then_some(()).ok_or_else(|| ReferenceError::Digest(digest.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repositories_follow_dockers_grammar() {
        let repo = |r: &str| check_repository(r, 128);
        for ok in ["flask-app", "team/flask_app.v2", "a__b", "a---b", "x9/y.z"] {
            assert!(repo(ok).is_ok(), "{ok}");
        }
        for bad in ["Flask", "-x", "x-", "a//b", "a..b", "a._b", "a___b", "a b", "a$(x)", "/a", "a/", ""] {
            assert!(repo(bad).is_err(), "{bad}");
        }
        assert!(repo(&"a".repeat(129)).is_err());
    }

    #[test]
    fn image_references_are_checked_whole() {
        for ok in [
            "python:3.11-slim",
            "docker:28-dind",
            "quay.io/buildah/stable:v1.28",
            "gcr.io/kaniko-project/executor:v1.24.0-debug",
            "localhost:5000/team/app",
            "127.0.0.1:5000/app:latest",
            "layerbench-local/python:3.11-slim",
            "registry:3",
            "app@sha256:0000000000000000000000000000000000000000000000000000000000000000",
        ] {
            assert_eq!(check_reference(ok), Ok(()), "{ok}");
        }
        for (bad, why) in [
            ("", "empty"),
            ("UPPER/Case::tag", "tag `:tag`"),
            ("Upper:1", "repository `Upper`"),
            ("app:", "tag ``"),
            ("app:-x", "tag `-x`"),
            ("a b", "repository `a b`"),
            ("app@sha256:xyz", "digest"),
            ("bad_host.io:port/app", "registry host"),
            ("$(touch x)", "repository"),
        ] {
            let err = check_reference(bad).expect_err(bad).to_string();
            assert!(err.contains(why), "{bad}: {err}");
        }
    }

    #[test]
    fn spellings_of_one_image_share_one_canonical_name() {
        let canonical = |r: &str| Reference::parse(r).unwrap().canonical();
        for same in ["python:3.11-slim", "library/python:3.11-slim", "docker.io/python:3.11-slim", "index.docker.io/library/python:3.11-slim"] {
            assert_eq!(canonical(same), "docker.io/library/python:3.11-slim", "{same}");
        }
        assert_eq!(canonical("team/app"), "docker.io/team/app:latest");
        assert_eq!(canonical("gcr.io/distroless/static"), "gcr.io/distroless/static:latest");
        let digest = format!("sha256:{}", "a".repeat(64));
        assert_eq!(canonical(&format!("node:20@{digest}")), format!("docker.io/library/node@{digest}"), "a digest decides alone");
        let quay = Reference::parse("quay.io/org/img:1").unwrap();
        assert!(!quay.is_docker_hub());
        assert_eq!((quay.registry(), quay.path().as_str(), quay.to_string().as_str()), ("quay.io", "org/img", "quay.io/org/img:1"));
        assert!(Reference::parse("docker.io/node").unwrap().is_docker_hub());
        assert!(!Reference::parse("localhost:5000/node").unwrap().is_docker_hub());
    }
}
