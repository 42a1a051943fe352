//! The run's registries, seen from their own side: traffic from the access log, storage from the blob store.
//!
//! Both backends run CNCF Distribution. Its access log (Apache combined format, one line per request)
//! is the source for bytes moved:
//! - pulled: the response size of every `GET .../blobs/...` and `GET .../manifests/...` answered 200;
//! - pushed: the size, in the registry's blob store, of every blob whose upload the job finished
//!   (the `digest=` of each closing `PUT .../blobs/uploads/...` answered 201). The access log records
//!   no request sizes, and the upload's `_state` offset only counts bytes sent by `PATCH`: containerd's
//!   pusher (BuildKit) sends the whole blob in the closing `PUT`, so its offset is 0. Manifest uploads
//!   are not counted.

use crate::Bytes;

/// The registry's access log, or a blob size in it, could not be read: the job's traffic figures stay
/// empty with this reason (the job itself is not failed for it, on any backend).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct LogUnreadable(String);

impl LogUnreadable {
    pub fn new(why: impl std::fmt::Display) -> Self {
        LogUnreadable(why.to_string())
    }
}

/// Where the registry keeps its blobs inside its container (set through the environment).
pub const STORAGE_ROOT: &str = "/var/lib/registry";

/// Where the harness puts its own configuration in the registry container.
pub const CONFIG_PATH: &str = "/etc/layerbench/registry.yml";

/// The whole configuration, so the official image and the stand-in behave the same: plain HTTP on
/// 5000, no auth, filesystem storage, access log on.
pub fn config_yaml() -> String {
    config(false)
}

/// The same, in Distribution's read-only maintenance mode: pulls work, every push is refused. The
/// Docker Hub mirror runs so once it is seeded, so no build can change what another one pulls.
pub fn read_only_config_yaml() -> String {
    config(true)
}

fn config(read_only: bool) -> String {
    let maintenance = if read_only { "  maintenance:\n    readonly:\n      enabled: true\n" } else { "" };
    format!(
        "version: 0.1\n\
         log:\n  accesslog:\n    disabled: false\n  fields:\n    service: registry\n\
         storage:\n  filesystem:\n    rootdirectory: {STORAGE_ROOT}\n  delete:\n    enabled: true\n{maintenance}\
         http:\n  addr: 0.0.0.0:5000\n"
    )
}


/// Bytes moved through a registry, summed over the access-log lines given.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Traffic {
    pub pulled_bytes: Bytes,
    /// Digests (`sha256:…`) of the blobs whose upload finished, in log order; their sizes come from
    /// the blob store (see [`blob_sizes_script`] and [`Traffic::with_blob_sizes`]).
    pub uploaded: Vec<String>,
    /// The sizes of `uploaded`, summed; `None` until read from the blob store, or when any could not be.
    pub pushed_bytes: Option<Bytes>,
    /// Finished uploads without a readable `digest=`: when there is any, no pushed figure is recorded.
    pub unreadable_uploads: usize,
    /// Served blobs and manifests whose size field was neither a number nor `-`: when there is any,
    /// `pulled_bytes` is a lower bound.
    pub unreadable_downloads: usize,
    /// Why the uploaded blobs' sizes could not be read from the store.
    pub blob_store_error: Option<String>,
}

impl Traffic {
    /// The pushed bytes, when every finished upload's size could be read.
    pub fn pushed(&self) -> Option<Bytes> {
        if self.unreadable_uploads > 0 {
            return None;
        }
        if self.uploaded.is_empty() {
            return Some(0);
        }
        self.pushed_bytes
    }

    /// Reads the output of [`blob_sizes_script`] for `uploaded`: one size per digest, in order, `-`
    /// for a blob the store does not hold. Any missing size, or a failed script, leaves the pushed
    /// figure empty and says why.
    pub fn with_blob_sizes(mut self, output: Result<String, impl std::fmt::Display>) -> Traffic {
        if self.uploaded.is_empty() {
            return self;
        }
        let sizes: Option<Vec<Bytes>> = match &output {
            Ok(out) => out.lines().map(|l| l.trim().parse().ok()).collect(),
            Err(_) => None,
        };
        match sizes {
            Some(sizes) if sizes.len() == self.uploaded.len() => self.pushed_bytes = Some(sizes.iter().sum()),
            _ => {
                let why = match output {
                    Ok(out) => format!("the blob store did not give every uploaded blob's size (`{}`)", one_line(&out)),
                    Err(e) => e.to_string(),
                };
                self.blob_store_error = Some(why);
            }
        }
        self
    }

    /// The pulled bytes, when every served body's size could be read.
    pub fn pulled(&self) -> Option<Bytes> {
        (self.unreadable_downloads == 0).then_some(self.pulled_bytes)
    }

    /// Why `pushed` or `pulled` is empty, in words for the user.
    pub fn unmeasured(&self) -> Vec<String> {
        let mut why = vec![];
        if self.unreadable_uploads > 0 {
            why.push("bytes pushed left empty: the registry's access log gave a finished upload without a `digest=`".to_string());
        }
        if let Some(e) = &self.blob_store_error {
            why.push(format!("bytes pushed left empty: {e}"));
        }
        if self.unreadable_downloads > 0 {
            why.push("bytes pulled left empty: the registry's access log gave a response size that is not a number".to_string());
        }
        why
    }
}

impl Traffic {
    /// Sums the traffic of access-log lines; lines of any other kind are ignored.
    pub fn from_access_log<'a>(lines: impl IntoIterator<Item = &'a str>) -> Traffic {
        let mut traffic = Traffic::default();
        for line in lines {
            let Some(request) = AccessLine::parse(line) else { continue };
            if request.method == "GET"
                && request.status == 200
                && (request.path.contains("/blobs/") || request.path.contains("/manifests/"))
            {
                match request.size {
                    Some(size) => traffic.pulled_bytes += size,
                    None => traffic.unreadable_downloads += 1,
                }
            }
            if request.method == "PUT" && request.status == 201 && request.path.contains("/blobs/uploads/") {
                match upload_digest(request.path) {
                    Some(digest) => traffic.uploaded.push(digest),
                    None => traffic.unreadable_uploads += 1,
                }
            }
        }
        traffic
    }
}

struct AccessLine<'a> {
    method: &'a str,
    path: &'a str,
    status: u16,
    /// The body's size; `None` when the field is unreadable.
    size: Option<Bytes>,
}

impl<'a> AccessLine<'a> {
    /// `IP - - [date] "METHOD PATH HTTP/1.1" STATUS SIZE "referer" "agent"`
    fn parse(line: &'a str) -> Option<Self> {
        let start = line.find("] \"")? + 3;
        let rest = &line[start..];
        let end = rest.find('"')?;
        let mut request = rest[..end].split(' ');
        let method = request.next()?;
        let path = request.next()?;
        let mut after = rest[end + 1..].split_whitespace();
        let status = after.next()?.parse().ok()?;
        // Apache's format writes `-` for a response without a body: a real zero.
        let size = match after.next()? {
            "-" => Some(0),
            field => field.parse().ok(),
        };
        Some(AccessLine { method, path, status, size })
    }
}

/// The `digest=` of a closing upload `PUT` (`sha256%3A<hex>`), as `sha256:<hex>`; `None` unless it is a
/// sha256 digest, so nothing else reaches the size script.
fn upload_digest(path: &str) -> Option<String> {
    let query = path.split_once('?')?.1;
    let digest = query.split('&').find_map(|kv| kv.strip_prefix("digest="))?;
    let hex = digest.strip_prefix("sha256%3A").or_else(|| digest.strip_prefix("sha256%3a")).or_else(|| digest.strip_prefix("sha256:"))?;
    (hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit())).then(|| format!("sha256:{}", hex.to_ascii_lowercase()))
}

/// A shell script, run inside the registry container, that prints the size in bytes of each blob in
/// `digests` (as [`Traffic::uploaded`] holds them: checked sha256 digests), one line each, `-` for one
/// the store does not hold.
pub fn blob_sizes_script(digests: &[String]) -> String {
    let hexes: Vec<&str> = digests.iter().filter_map(|d| d.strip_prefix("sha256:")).collect();
    format!(
        "cd {STORAGE_ROOT}/docker/registry/v2/blobs/sha256 || exit 3\nfor h in {}; do p=$(echo \"$h\" | cut -c1-2); stat -c %s \"$p/$h/data\" 2>/dev/null || echo -; done\n",
        hexes.join(" ")
    )
}

fn one_line(text: &str) -> String {
    let line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    line.chars().take(120).collect()
}

/// A shell script, run inside the registry container, that prints the size in bytes of each distinct blob
/// (layers, configs, manifests) linked from the repositories under `prefix/`, one per line, and `- HEX` for
/// one it cannot `stat`; [`storage_bytes`] sums them. Blobs that a later push made unreachable still count:
/// they occupy storage until garbage collection. (Link files hold a digest without a newline, hence the
/// `echo` after each.)
pub fn storage_script(prefix: &str) -> String {
    format!(
        r#"set -e
cd {STORAGE_ROOT} || {{ echo "no storage root {STORAGE_ROOT}" >&2; exit 3; }}
# Nothing pushed yet: the repositories hold nothing, a real zero.
[ -d docker/registry/v2/repositories/{prefix} ] || {{ echo 0; exit 0; }}
cd docker/registry/v2
find repositories/{prefix} -name link -path '*/_layers/*' -o -name link -path '*/_manifests/revisions/*' \
  | while read f; do cat "$f"; echo; done | sed -n 's/^sha256://p' | sort -u \
  | while read h; do p=$(echo "$h" | cut -c1-2); stat -c %s "blobs/sha256/$p/$h/data" 2>/dev/null || echo "- $h"; done
"#
    )
}

/// The size of the image a job pushed as `image` (`registry:5000/<repository>:<tag>`): the sum of its
/// layers' sizes in the manifest the registry stores for it, which is the same quantity whichever builder
/// pushed it. For an index (BuildKit's, with attestations), the first manifest for a real platform.
/// `exec` runs a script in the registry's container and returns what it printed.
pub async fn pushed_image_bytes<F, Fut, E>(image: &str, mut exec: F) -> Result<Bytes, LogUnreadable>
where
    F: FnMut(String) -> Fut,
    Fut: std::future::Future<Output = Result<String, E>>,
    E: std::fmt::Display,
{
    let (name, tag) = image.rsplit_once(':').filter(|(_, t)| !t.contains('/')).ok_or_else(|| LogUnreadable::new(format!("`{image}` has no tag")))?;
    let repository = name.split_once('/').map_or(name, |(_, path)| path);
    let read = |what: &str, e: E| LogUnreadable::new(format!("read the {what} of {image}: {e}"));
    let mut manifest = exec(tagged_manifest_script(repository, tag)).await.map_err(|e| read("manifest", e))?;
    for _ in 0..2 {
        match manifest_layers(&manifest)? {
            Layers::Bytes(bytes) => return Ok(bytes),
            Layers::In(digest) => manifest = exec(blob_script(&digest)).await.map_err(|e| read("platform manifest", e))?,
        }
    }
    Err(LogUnreadable::new(format!("the manifest of {image} leads to more indexes than expected")))
}

/// Prints the manifest the registry's store holds for `repository:tag`.
fn tagged_manifest_script(repository: &str, tag: &str) -> String {
    let link = format!("{STORAGE_ROOT}/docker/registry/v2/repositories/{repository}/_manifests/tags/{tag}/current/link");
    format!(
        "set -e\nd=$(cat {})\nh=${{d#sha256:}}\ncat \"{STORAGE_ROOT}/docker/registry/v2/blobs/sha256/$(printf %.2s \"$h\")/$h/data\"\n",
        quote(&link)
    )
}

/// Prints the blob `digest` (`sha256:…`) from the store.
fn blob_script(digest: &str) -> String {
    let hex = digest.trim_start_matches("sha256:");
    format!("cat {}", quote(&format!("{STORAGE_ROOT}/docker/registry/v2/blobs/sha256/{}/{hex}/data", &hex[..hex.len().min(2)])))
}

fn quote(word: &str) -> String {
    format!("'{}'", word.replace('\'', r"'\''"))
}

enum Layers {
    Bytes(Bytes),
    /// An index: the manifest to read next.
    In(String),
}

/// A manifest's layer total, or, for an index, the digest of its first manifest for a real platform
/// (`unknown/unknown` is BuildKit's attestation manifest).
fn manifest_layers(json: &str) -> Result<Layers, LogUnreadable> {
    let value: serde_json::Value = serde_json::from_str(json).map_err(|e| LogUnreadable::new(format!("a manifest that is not JSON ({e})")))?;
    if let Some(layers) = value.get("layers").and_then(|l| l.as_array()) {
        let sizes: Option<Vec<Bytes>> = layers.iter().map(|l| l.get("size").and_then(|s| s.as_u64())).collect();
        return sizes.map(|s| Layers::Bytes(s.iter().sum())).ok_or_else(|| LogUnreadable::new("a layer without a size in the manifest"));
    }
    let manifests = value.get("manifests").and_then(|m| m.as_array()).ok_or_else(|| LogUnreadable::new("a manifest with neither layers nor manifests"))?;
    let real = |m: &&serde_json::Value| m.pointer("/platform/os").and_then(|o| o.as_str()) != Some("unknown");
    let digest = manifests.iter().find(real).and_then(|m| m.get("digest")).and_then(|d| d.as_str());
    digest.map(|d| Layers::In(d.to_string())).ok_or_else(|| LogUnreadable::new("an index without a platform manifest"))
}

/// The total [`storage_script`] printed; a blob it could not read makes the figure unknown (a partial sum
/// would pass for the whole), and says which.
pub fn storage_bytes(printed: &str) -> Result<Bytes, LogUnreadable> {
    let mut total: Bytes = 0;
    let mut unreadable = vec![];
    for line in printed.lines().map(str::trim).filter(|l| !l.is_empty()) {
        match (line.parse::<Bytes>(), line.strip_prefix("- ")) {
            (Ok(bytes), _) => total += bytes,
            (_, Some(hex)) => unreadable.push(hex),
            _ => return Err(LogUnreadable::new(format!("the storage script printed `{}`", one_line(line)))),
        }
    }
    match unreadable.first() {
        None => Ok(total),
        Some(first) => Err(LogUnreadable::new(format!(
            "{} blob(s) linked from the repositories could not be read (sha256:{first}{})",
            unreadable.len(),
            if unreadable.len() > 1 { ", …" } else { "" }
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A registry's store made here: a tag of an index (as BuildKit pushes it, with an attestation first)
    /// leading to a platform manifest of two layers; the sum is read through real shell scripts.
    #[test]
    fn a_pushed_image_is_the_sum_of_its_layers_in_the_registrys_manifest() {
        let root = tempfile::tempdir().unwrap();
        let store = root.path().join("docker/registry/v2");
        let blob = |hex: &str, content: &str| {
            let dir = store.join(format!("blobs/sha256/{}/{hex}", &hex[..2]));
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("data"), content).unwrap();
        };
        blob("bb01", r#"{"layers": [{"size": 100}, {"size": 23}]}"#);
        blob("aa01", r#"{"manifests": [{"digest": "sha256:cc01", "platform": {"os": "unknown"}}, {"digest": "sha256:bb01", "platform": {"os": "linux"}}]}"#);
        let tag = store.join("repositories/s/app/_manifests/tags/c1/current");
        std::fs::create_dir_all(&tag).unwrap();
        std::fs::write(tag.join("link"), "sha256:aa01").unwrap();
        let root_path = root.path().to_str().unwrap().to_string();
        let exec = |script: String| {
            let script = script.replace(STORAGE_ROOT, &root_path);
            async move {
                let out = std::process::Command::new("sh").arg("-c").arg(&script).output().unwrap();
                match out.status.success() {
                    true => Ok(String::from_utf8_lossy(&out.stdout).into_owned()),
                    false => Err(String::from_utf8_lossy(&out.stderr).into_owned()),
                }
            }
        };
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        assert_eq!(runtime.block_on(pushed_image_bytes("registry:5000/s/app:c1", exec)), Ok(123));
        let missing = runtime.block_on(pushed_image_bytes("registry:5000/s/app:c2", exec)).unwrap_err().to_string();
        assert!(missing.starts_with("read the manifest of registry:5000/s/app:c2"), "{missing}");
    }

    #[test]
    fn storage_is_the_sum_of_its_blobs_and_unknown_when_one_cannot_be_read() {
        assert_eq!(storage_bytes("0\n"), Ok(0));
        assert_eq!(storage_bytes("100\n23\n"), Ok(123));
        let error = storage_bytes("100\n- abcdef\n").unwrap_err().to_string();
        assert!(error.contains("1 blob(s)") && error.contains("sha256:abcdef"), "{error}");
        assert!(storage_bytes("oops").is_err());
    }

    /// The script in a real shell over a blob store made here: one readable blob, one missing.
    #[test]
    fn the_storage_script_says_which_blob_it_could_not_read() {
        let root = tempfile::tempdir().unwrap();
        let v2 = root.path().join("docker/registry/v2");
        let link = v2.join("repositories/s/app/_layers/sha256/aa11");
        std::fs::create_dir_all(&link).unwrap();
        std::fs::write(link.join("link"), "sha256:aa11").unwrap();
        let gone = v2.join("repositories/s/app/_layers/sha256/bb22");
        std::fs::create_dir_all(&gone).unwrap();
        std::fs::write(gone.join("link"), "sha256:bb22").unwrap();
        let blob = v2.join("blobs/sha256/aa/aa11");
        std::fs::create_dir_all(&blob).unwrap();
        std::fs::write(blob.join("data"), "12345").unwrap();
        let script = storage_script("s").replace(STORAGE_ROOT, root.path().to_str().unwrap());
        let out = std::process::Command::new("sh").arg("-c").arg(&script).output().unwrap();
        let printed = String::from_utf8_lossy(&out.stdout);
        let error = storage_bytes(&printed).unwrap_err().to_string();
        assert!(error.contains("sha256:bb22"), "{printed}: {error}");
        std::fs::remove_dir_all(&gone).unwrap();
        let out = std::process::Command::new("sh").arg("-c").arg(&script).output().unwrap();
        assert_eq!(storage_bytes(&String::from_utf8_lossy(&out.stdout)), Ok(5));
    }

    // Captured from Distribution 2.8.2 (Debian's docker-registry) serving a `docker push` and a
    // `docker pull` from dockerd 20.10.24 on this machine.
    const PUSH_AND_PULL: &str = r#"172.17.0.1 - - [27/Nov/2026:18:53:14 +0000] "POST /v2/library/python/blobs/uploads/ HTTP/1.1" 202 0 "" "docker/20.10.24+dfsg1"
172.17.0.1 - - [27/Nov/2026:18:53:26 +0000] "PUT /v2/library/python/blobs/uploads/b54abdef-1bca-47f6-9451-cf31c31bcd52?_state=n2fLPAFcb5kUpWXAYWq67H4uumnpUY-lq4MCeHo-eD57Ik5hbWUiOiJsaWJyYXJ5L3B5dGhvbiIsIlVVSUQiOiJiNTRhYmRlZi0xYmNhLTQ3ZjYtOTQ1MS1jZjMxYzMxYmNkNTIiLCJPZmZzZXQiOjkwOTU1NDA3LCJTdGFydGVkQXQiOiIyMDI2LTExLTI3VDE4OjUzOjE0WiJ9&digest=sha256%3Aca63b3dcd7594250d4f0220e6c23967e6bd35116e6177063d84a4ac0d2e98257 HTTP/1.1" 201 0 "" "docker/20.10.24+dfsg1"
172.17.0.1 - - [27/Nov/2026:18:53:27 +0000] "HEAD /v2/library/python/blobs/sha256:a63922c84b714e53ebb01573d2a8038aa8ec867922a47c875b0d4101a3d4d69d HTTP/1.1" 404 157 "" "docker/20.10.24+dfsg1"
172.17.0.1 - - [27/Nov/2026:18:53:27 +0000] "PUT /v2/library/python/blobs/uploads/85107ae9-bbfd-489e-87de-b95e6be33388?_state=U3bb-9ucc-Z2sJivIFapyMwGhM4juqGegpMu7d__T2Z7Ik5hbWUiOiJsaWJyYXJ5L3B5dGhvbiIsIlVVSUQiOiI4NTEwN2FlOS1iYmZkLTQ4OWUtODdkZS1iOTVlNmJlMzMzODgiLCJPZmZzZXQiOjkxNCwiU3RhcnRlZEF0IjoiMjAyNi0xMS0yN1QxODo1MzoyN1oifQ%3D%3D&digest=sha256%3Aa63922c84b714e53ebb01573d2a8038aa8ec867922a47c875b0d4101a3d4d69d HTTP/1.1" 201 0 "" "docker/20.10.24+dfsg1"
172.17.0.1 - - [27/Nov/2026:18:53:27 +0000] "PUT /v2/library/python/manifests/3.11-slim HTTP/1.1" 201 0 "" "docker/20.10.24+dfsg1"
time="2026-11-27T18:53:27.005089592Z" level=error msg="response completed with error" err.code="blob unknown"
172.17.0.1 - - [27/Nov/2026:18:53:27 +0000] "HEAD /v2/library/python/manifests/3.11-slim HTTP/1.1" 200 528 "" "docker/20.10.24+dfsg1"
172.17.0.1 - - [27/Nov/2026:18:53:27 +0000] "GET /v2/library/python/manifests/sha256:82dba9efe2ae6665b1fda096b3220eeaf6fb8628ab791655b642eb5281c3824b HTTP/1.1" 200 528 "" "docker/20.10.24+dfsg1"
172.17.0.1 - - [27/Nov/2026:18:53:28 +0000] "GET /v2/library/python/blobs/sha256:ca63b3dcd7594250d4f0220e6c23967e6bd35116e6177063d84a4ac0d2e98257 HTTP/1.1" 200 90955407 "" "docker/20.10.24+dfsg1"
172.17.0.1 - - [27/Nov/2026:18:53:28 +0000] "GET /v2/library/python/blobs/sha256:0000 HTTP/1.1" 404 157 "" "docker/20.10.24+dfsg1""#;

    #[test]
    fn counts_uploaded_offsets_and_served_bodies() {
        let traffic = Traffic::from_access_log(PUSH_AND_PULL.lines());
        assert_eq!(
            traffic.uploaded,
            [
                "sha256:ca63b3dcd7594250d4f0220e6c23967e6bd35116e6177063d84a4ac0d2e98257",
                "sha256:a63922c84b714e53ebb01573d2a8038aa8ec867922a47c875b0d4101a3d4d69d"
            ]
        );
        assert_eq!(traffic.pushed(), None, "unknown until the store gave the sizes");
        // The layer and the config, as the blob store holds them.
        let traffic = traffic.with_blob_sizes(Ok::<_, String>("90955407\n914\n".into()));
        assert_eq!(traffic.pushed(), Some(90_955_407 + 914));
        // The manifest GET and the layer GET; HEADs and 404s move no body.
        assert_eq!(traffic.pulled_bytes, 528 + 90_955_407);
    }

    #[test]
    fn an_unreadable_size_or_state_leaves_the_figure_empty_and_says_why() {
        let good = PUSH_AND_PULL.lines().nth(8).unwrap();
        let bad_size = good.replace(" 200 90955407 ", " 200 lots ");
        let traffic = Traffic::from_access_log([good, bad_size.as_str()]);
        assert_eq!(traffic.pulled(), None, "a lower bound is not the job's figure");
        let bad_digest = PUSH_AND_PULL.lines().nth(1).unwrap().replace("digest=sha256%3Aca63", "digest=md5%3Aca63");
        let traffic = Traffic::from_access_log([bad_digest.as_str()]);
        assert_eq!(traffic.pushed(), None);
        assert_eq!(traffic.unmeasured().len(), 1, "{:?}", traffic.unmeasured());
        let upload = PUSH_AND_PULL.lines().nth(1).unwrap();
        let missing = Traffic::from_access_log([upload]).with_blob_sizes(Ok::<_, String>("-\n".into()));
        assert_eq!(missing.pushed(), None, "a blob the store does not hold has no size");
        assert!(missing.unmeasured()[0].contains("blob store"), "{:?}", missing.unmeasured());
        let failed = Traffic::from_access_log([upload]).with_blob_sizes(Err("exec failed"));
        assert_eq!(failed.pushed(), None);
        let dash = good.replace(" 200 90955407 ", " 200 - ");
        assert_eq!(Traffic::from_access_log([dash.as_str()]).pulled(), Some(0), "`-` is no body: zero bytes");
    }

    #[test]
    fn ignores_lines_that_are_not_requests() {
        assert_eq!(Traffic::from_access_log(["level=info msg=\"listening on [::]:5000\"", ""]), Traffic::default());
    }
}
