//! Image names as Docker reads them (distribution/reference): the one place their grammar is checked, for
//! the scenario's repository and for every image flag, so a malformed name is refused before anything starts.

/// Docker's repository grammar: `/`-separated components, each `[a-z0-9]+` runs joined by one separator:
/// `.`, `_`, `__` or any number of `-`.
pub fn check_repository(repo: &str, max: usize) -> Result<(), String> {
    if repo.len() > max {
        return Err(format!("it has {} characters, at most {max} are allowed", repo.len()));
    }
    repo.split('/').all(component_ok).then_some(()).ok_or_else(|| {
        "use lower-case letters and digits, joined by '.', '_', '__' or '-', in '/'-separated parts".into()
    })
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
pub fn check_reference(reference: &str) -> Result<(), String> {
    if reference.is_empty() {
        return Err("it is empty; name an image like `python:3.11-slim`".into());
    }
    if reference.len() > 255 + 128 + 72 {
        return Err(format!("it has {} characters, far beyond an image name", reference.len()));
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
    check_repository(repository, 255).map_err(|why| format!("repository `{repository}`: {why}"))
}

fn check_tag(tag: &str) -> Result<(), String> {
    let ok = !tag.is_empty()
        && tag.len() <= 128
        && !tag.starts_with(['.', '-'])
        && tag.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
    ok.then_some(()).ok_or_else(|| format!("tag `{tag}`: at most 128 of letters, digits, '_', '.' and '-', not starting with '.' or '-'"))
}

fn check_host(host: &str) -> Result<(), String> {
    let (name, port) = match host.rsplit_once(':') {
        Some((name, port)) => (name, Some(port)),
        None => (host, None),
    };
    let name_ok = !name.is_empty()
        && name.split('.').all(|label| {
            !label.is_empty() && !label.starts_with('-') && !label.ends_with('-') && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    let port_ok = port.is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()));
    (name_ok && port_ok).then_some(()).ok_or_else(|| format!("registry host `{host}`: a host name or address, optionally `:PORT`"))
}

fn check_digest(digest: &str) -> Result<(), String> {
    let ok = match digest.split_once(':') {
        Some(("sha256", hex)) => hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()),
        Some(("sha512", hex)) => hex.len() == 128 && hex.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()),
        _ => false,
    };
    ok.then_some(()).ok_or_else(|| format!("digest `{digest}`: `sha256:` and 64 lower-case hex digits"))
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
            let err = check_reference(bad).expect_err(bad);
            assert!(err.contains(why), "{bad}: {err}");
        }
    }
}
