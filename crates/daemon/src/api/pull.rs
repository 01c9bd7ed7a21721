//! `POST /images/create?fromImage=…`: pulls an image from a registry (`arca_registry`) and
//! streams Docker's JSON progress messages.
//!
//! The response is held back until the pull has produced layer progress: a pull that
//! fails before that (unknown tag or repository, unreachable registry, bad platform) is
//! answered with an HTTP status and Docker's `{"message":…}` body, as Docker does when its
//! output was not flushed yet. Later failures end the stream with an `errorDetail` line.
//! A client that hangs up cancels the pull (the registry crate guarantees that nothing
//! partial becomes visible).
//!
//! The streaming part ([`Job`], [`progress_response`]) is shared with `POST /images/{name}/push`.

use arca_model::Reference;
use arca_registry::{Credentials, Progress, PullOptions};
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::Response;
use serde_json::{Value, json};
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::task::JoinHandle;

use super::AppState;
use crate::error::{ApiError, ApiResult};
use crate::events::Event;
use crate::query::Q;

/// Registry settings of the daemon (`--insecure-registry`, `--registry-mirror`).
#[derive(Debug, Clone, Default)]
pub struct RegistrySettings {
    /// `host:port` registries spoken to over plain HTTP (loopback ones always are).
    pub insecure_registries: Vec<String>,
    /// Mirrors tried before Docker Hub, in order.
    pub mirrors: Vec<arca_registry::Mirror>,
}

impl RegistrySettings {
    /// Pull options for a request: the daemon's registries plus the request's own.
    pub fn pull_options(&self, platform: Option<String>, auth: Option<Credentials>) -> PullOptions {
        PullOptions {
            platform,
            auth,
            insecure_registries: self.insecure_registries.clone(),
            mirrors: self.mirrors.clone(),
            read_timeout: None,
        }
    }
}

/// The reference a request names, built as Docker's router does: `fromImage` may carry a
/// tag or digest itself, `tag` may be a tag or a digest, and no tag means `latest`.
pub fn reference_of(from_image: &str, tag: Option<&str>) -> ApiResult<Reference> {
    let invalid = |e: arca_model::ReferenceError| ApiError::invalid(e.to_string());
    // `pull -a` clients may send a trailing ':' (Docker strips it for compatibility).
    let image = from_image.strip_suffix(':').unwrap_or(from_image);
    let named: Reference = image.parse().map_err(invalid)?;
    let Some(tag) = tag.filter(|t| !t.is_empty()) else {
        return Ok(named.with_default_tag());
    };
    let repo = named.full_repo();
    if tag.parse::<arca_model::Digest>().is_ok() {
        // A digest replaces whatever the name carried.
        return format!("{repo}@{tag}").parse().map_err(invalid);
    }
    if named.digest().is_some() {
        return Err(ApiError::invalid(format!(
            "invalid reference format: {image} already has a digest, cannot add tag {tag}"
        )));
    }
    Reference::with_tag(&repo, tag).map_err(invalid)
}

/// `X-Registry-Auth`: base64url JSON `{"username","password","serveraddress",…}`. As
/// Docker, a missing or undecodable header means an anonymous pull, not an error.
pub fn credentials_of(headers: &HeaderMap) -> Option<Credentials> {
    let raw = headers.get("X-Registry-Auth")?.to_str().ok()?.trim();
    let bytes = arca_api::b64::decode(raw)?;
    let v: Value = serde_json::from_slice(&bytes).ok()?;
    let field = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
    let (username, password) = (field("username"), field("password"));
    (!username.is_empty() || !password.is_empty()).then_some(Credentials { username, password })
}

/// Docker's `units.HumanSize`: decimal units, four significant digits.
pub fn human_size(n: u64) -> String {
    const UNITS: [&str; 7] = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    let mut size = n as f64;
    let mut i = 0;
    while size >= 1000.0 && i < UNITS.len() - 1 {
        size /= 1000.0;
        i += 1;
    }
    // Go's %.4g: four significant digits, trailing zeros dropped.
    let int_digits = if size < 1.0 {
        1
    } else {
        size.log10().floor() as usize + 1
    };
    let decimals = 4usize.saturating_sub(int_digits);
    let mut s = format!("{size:.decimals$}");
    if s.contains('.') {
        s = s.trim_end_matches('0').trim_end_matches('.').to_owned();
    }
    format!("{s}{}", UNITS[i])
}

/// The `progress` string Docker's daemon renders (its bar is always 50 wide there).
pub fn progress_bar(current: u64, total: u64) -> String {
    if total == 0 {
        return format!("{:>8}", human_size(current));
    }
    let pct = ((current as f64 / total as f64) * 50.0) as usize;
    let pct = pct.min(50);
    let bar = format!("[{}>{}] ", "=".repeat(pct), " ".repeat(50 - pct));
    if current > total {
        return bar;
    }
    format!("{bar}{:>8}/{}", human_size(current), human_size(total))
}

/// One Progress as Docker's JSONMessage. Layer messages carry a `progressDetail` (empty
/// when there are no numbers): the docker CLI keys its in-place line updates on it.
pub fn message(p: &Progress, reference: &Reference) -> Value {
    let mut m = serde_json::Map::new();
    m.insert("status".into(), json!(p.status));
    let pulling_from = p.status.starts_with("Pulling from ");
    match (&p.detail, &p.id) {
        (Some((cur, total)), _) => {
            let mut d = serde_json::Map::new();
            if *cur > 0 {
                d.insert("current".into(), json!(cur));
            }
            if *total > 0 {
                d.insert("total".into(), json!(total));
            }
            m.insert("progressDetail".into(), Value::Object(d));
            if *cur > 0 || *total > 0 {
                m.insert("progress".into(), json!(progress_bar(*cur, *total)));
            }
        }
        (None, Some(_)) if !pulling_from => {
            m.insert("progressDetail".into(), json!({}));
        }
        _ => {}
    }
    let id = p.id.clone().or_else(|| {
        // Docker labels "Pulling from" with the tag or digest ("latest: Pulling from …").
        pulling_from.then(|| {
            reference
                .tag()
                .map(str::to_owned)
                .or_else(|| reference.digest().map(ToString::to_string))
                .unwrap_or_default()
        })
    });
    if let Some(id) = id.filter(|i| !i.is_empty()) {
        m.insert("id".into(), json!(id));
    }
    Value::Object(m)
}

pub(crate) fn line(v: &Value) -> Bytes {
    let mut b = serde_json::to_vec(v).unwrap_or_default();
    b.push(b'\n');
    Bytes::from(b)
}

fn error_line(e: &ApiError) -> Bytes {
    line(&json!({"errorDetail": {"message": e.message}, "error": e.message}))
}

fn api_error(e: &arca_registry::PullError) -> ApiError {
    match e.kind() {
        arca_model::ErrorKind::Internal => ApiError::from_internal("image pull failed", e),
        kind => ApiError::new(kind, e.to_string()),
    }
}

/// A registry operation (pull, push) running as a task of its own; dropping the `Job` (the
/// client hung up) cancels it.
pub(crate) struct Job<T> {
    task: JoinHandle<Option<ApiResult<T>>>,
    _cancel: tokio::sync::oneshot::Sender<()>,
}

impl<T: Send + 'static> Job<T> {
    pub(crate) fn spawn(work: impl Future<Output = ApiResult<T>> + Send + 'static) -> Self {
        let (cancel, cancelled) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            tokio::select! {
                r = work => Some(r),
                _ = cancelled => None,
            }
        });
        Self {
            task,
            _cancel: cancel,
        }
    }

    async fn result(&mut self) -> ApiResult<T> {
        match (&mut self.task).await {
            Ok(Some(r)) => r,
            Ok(None) => Err(ApiError::internal("operation cancelled")),
            Err(e) => Err(ApiError::internal(format!("registry task failed: {e}"))),
        }
    }
}

/// A status that carries no layer progress yet: held back so an early failure can still
/// be an HTTP error.
fn is_preamble(p: &Progress) -> bool {
    p.status.starts_with("Pulling from ")
}

fn emit_pulled(st: &AppState, reference: &Reference, pulled: &arca_registry::Pulled) {
    let name = reference.to_string();
    let labels = pulled.image.config.pointer("/config/Labels");
    st.containers
        .events
        .publish(Event::image(&name, &name, labels, "pull"));
}

/// The repository a request asks for every tag of (`pull -a`): as Docker's router, a
/// `fromImage` without tag or digest and no `tag` parameter. (The docker CLI sends `tag`
/// for an ordinary pull: `latest` when the user named none.)
fn all_tags_of(from_image: &str, tag: Option<&str>) -> ApiResult<Option<Reference>> {
    if tag.is_some_and(|t| !t.is_empty()) {
        return Ok(None);
    }
    let image = from_image.strip_suffix(':').unwrap_or(from_image);
    let named: Reference = image
        .parse()
        .map_err(|e: arca_model::ReferenceError| ApiError::invalid(e.to_string()))?;
    Ok((named.tag().is_none() && named.digest().is_none()).then_some(named))
}

pub async fn pull(
    st: &AppState,
    q: &Q,
    headers: &HeaderMap,
    from_image: &str,
) -> ApiResult<Response> {
    let platform = q
        .get("platform")
        .filter(|p| !p.is_empty())
        .map(str::to_owned);
    let opts = st.registry.pull_options(platform, credentials_of(headers));
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let store = st.store.clone();
    if let Some(repository) = all_tags_of(from_image, q.get("tag"))? {
        tracing::info!(repository = %repository, platform = ?opts.platform, "pulling all tags");
        let r = repository.clone();
        let job = Job::spawn(async move {
            arca_registry::pull_all(store, &r, &opts, tx)
                .await
                .map_err(|e| api_error(&e))
        });
        let st = st.clone();
        return progress_response(
            rx,
            job,
            move |p| message(p, &repository),
            is_preamble,
            move |pulled: Vec<arca_registry::Pulled>| {
                for p in &pulled {
                    emit_pulled(&st, &p.reference, p);
                }
                None
            },
        )
        .await;
    }
    let reference = reference_of(from_image, q.get("tag"))?;
    tracing::info!(reference = %reference, platform = ?opts.platform, "pulling image");
    let r = reference.clone();
    let job = Job::spawn(async move {
        arca_registry::pull(store, &r, &opts, tx)
            .await
            .map_err(|e| api_error(&e))
    });
    let (st, shown) = (st.clone(), reference.clone());
    progress_response(
        rx,
        job,
        move |p| message(p, &shown),
        is_preamble,
        move |pulled| {
            emit_pulled(&st, &reference, &pulled);
            None
        },
    )
    .await
}

/// Streams a registry job's progress as Docker's JSON lines. Messages for which `preamble`
/// holds are held back until the first other one: a job that fails before that is answered
/// with an HTTP status and Docker's `{"message":…}` body. Later failures end the stream with
/// an `errorDetail` line; on success `finish` may add a last line (push's `aux`).
pub(crate) async fn progress_response<T: Send + 'static>(
    mut rx: UnboundedReceiver<Progress>,
    mut job: Job<T>,
    render: impl Fn(&Progress) -> Value + Send + 'static,
    preamble: fn(&Progress) -> bool,
    finish: impl FnOnce(T) -> Option<Bytes> + Send + 'static,
) -> ApiResult<Response> {
    let mut held = Vec::new();
    let mut streaming = false;
    while let Some(p) = rx.recv().await {
        held.push(line(&render(&p)));
        if !preamble(&p) {
            streaming = true;
            break;
        }
    }
    if !streaming {
        // The sender is gone: the job has ended before any layer progress.
        let done = job.result().await?;
        held.extend(finish(done));
        return Ok(json_stream(Body::from(held.concat())));
    }
    let state = Stream {
        held: held.into_iter(),
        rx: Some(rx),
        job: Some(job),
        render: Box::new(render),
        finish: Some(Box::new(finish)),
    };
    let body = futures_util::stream::unfold(state, |mut s| async move {
        let next = s.next().await?;
        Some((Ok::<_, std::io::Error>(next), s))
    });
    Ok(json_stream(Body::from_stream(body)))
}

type Finish<T> = Box<dyn FnOnce(T) -> Option<Bytes> + Send>;

/// The streamed part of a job: held lines, live progress, then the outcome.
struct Stream<T> {
    held: std::vec::IntoIter<Bytes>,
    rx: Option<UnboundedReceiver<Progress>>,
    job: Option<Job<T>>,
    render: Box<dyn Fn(&Progress) -> Value + Send>,
    finish: Option<Finish<T>>,
}

impl<T: Send + 'static> Stream<T> {
    async fn next(&mut self) -> Option<Bytes> {
        if let Some(b) = self.held.next() {
            return Some(b);
        }
        if let Some(rx) = self.rx.as_mut() {
            if let Some(p) = rx.recv().await {
                return Some(line(&(self.render)(&p)));
            }
            self.rx = None;
        }
        let mut job = self.job.take()?;
        match job.result().await {
            Ok(done) => self.finish.take().and_then(|f| f(done)),
            Err(e) => Some(error_line(&e)),
        }
    }
}

fn json_stream(body: Body) -> Response {
    let mut r = Response::new(body);
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_defaults_to_latest_and_accepts_digest_tags() {
        let d = format!("sha256:{}", "a".repeat(64));
        assert_eq!(
            reference_of("127.0.0.1:5000/busybox", None)
                .expect("ref")
                .to_string(),
            "127.0.0.1:5000/busybox:latest"
        );
        assert_eq!(
            reference_of("busybox", Some("1.36"))
                .expect("ref")
                .to_string(),
            "busybox:1.36"
        );
        assert_eq!(
            reference_of("busybox:1.36", Some(""))
                .expect("ref")
                .to_string(),
            "busybox:1.36"
        );
        assert_eq!(
            reference_of("localhost:5000/x", Some(&d))
                .expect("ref")
                .to_string(),
            format!("localhost:5000/x@{d}")
        );
        assert_eq!(
            reference_of(&format!("x@{d}"), None)
                .expect("ref")
                .to_string(),
            format!("x@{d}")
        );
        assert!(reference_of("Upper/Case", None).is_err());
    }

    #[test]
    fn registry_auth_header_decodes_url_and_std_base64() {
        let mut h = HeaderMap::new();
        // {"username":"u","password":"p?>","serveraddress":"r"} in base64url, unpadded.
        let json = br#"{"username":"u","password":"p?>","serveraddress":"r"}"#;
        let enc = encode(json);
        h.insert("X-Registry-Auth", HeaderValue::from_str(&enc).expect("hv"));
        let c = credentials_of(&h).expect("credentials");
        assert_eq!((c.username.as_str(), c.password.as_str()), ("u", "p?>"));
        h.insert("X-Registry-Auth", HeaderValue::from_static("e30="));
        assert!(credentials_of(&h).is_none(), "{{}} is anonymous");
        h.insert("X-Registry-Auth", HeaderValue::from_static("not json!"));
        assert!(credentials_of(&h).is_none());
    }

    fn encode(b: &[u8]) -> String {
        const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut out = String::new();
        for chunk in b.chunks(3) {
            let n = chunk
                .iter()
                .enumerate()
                .fold(0u32, |acc, (i, c)| acc | (u32::from(*c) << (16 - 8 * i)));
            for i in 0..=chunk.len() {
                out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
            }
        }
        out
    }

    #[test]
    fn sizes_and_bars_render_like_docker() {
        assert_eq!(human_size(0), "0B");
        assert_eq!(human_size(999), "999B");
        assert_eq!(human_size(2_155_000), "2.155MB");
        assert_eq!(human_size(1_200_000), "1.2MB");
        assert_eq!(human_size(32_768), "32.77kB");
        assert_eq!(
            progress_bar(1_077_000, 2_154_000),
            format!("[{}>{}]  1.077MB/2.154MB", "=".repeat(25), " ".repeat(25))
        );
        assert_eq!(progress_bar(512, 0), "    512B");
    }

    #[test]
    fn layer_messages_carry_progress_detail_and_pulling_from_the_tag() {
        let r: Reference = "127.0.0.1:5000/busybox:latest".parse().expect("ref");
        let p = |id: Option<&str>, status: &str, detail| Progress {
            id: id.map(str::to_owned),
            status: status.to_owned(),
            detail,
        };
        let m = message(&p(None, "Pulling from busybox", None), &r);
        assert_eq!(m, json!({"status": "Pulling from busybox", "id": "latest"}));
        let m = message(&p(Some("abc"), "Pulling fs layer", None), &r);
        assert_eq!(
            m,
            json!({"status": "Pulling fs layer", "progressDetail": {}, "id": "abc"})
        );
        let m = message(&p(Some("abc"), "Downloading", Some((10, 20))), &r);
        assert_eq!(m["progressDetail"], json!({"current": 10, "total": 20}));
        assert!(m["progress"].as_str().expect("bar").ends_with("10B/20B"));
        let m = message(&p(None, "Digest: sha256:x", None), &r);
        assert_eq!(m, json!({"status": "Digest: sha256:x"}));
    }
}
