//! `arca cp [-a] [-L] [-q] CONTAINER:SRC_PATH DEST_PATH|-` and
//! `arca cp [-a] [-L] [-q] SRC_PATH|- CONTAINER:DEST_PATH`: docker 28's `docker cp` over
//! `HEAD|GET|PUT /containers/{id}/archive`, with its path rules (moby's `CopyInfo`,
//! `PrepareArchiveCopy`: a trailing `/` or `/.`, existing or new destinations, symlinks),
//! messages and requests.
//!
//! Copies out of a container are unpacked by `arca_store::archive::extract`, which never
//! writes outside the destination directory whatever the (untrusted) archive holds; unlike
//! docker, device nodes in it are refused rather than created on the host. Owners are never
//! changed locally (docker's `NoLchown`); `-a` only asks the daemon to keep them on the way
//! in. The live progress line docker draws on a terminal is not drawn; the final
//! "Successfully copied" line is printed as docker does.

use std::io::{self, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arca_store::archive::{self as tarfs, ExtractOptions, PATH_STAT_HEADER, PathStat};
use bytes::Bytes;
use clap::Args;
use http_body_util::BodyExt;
use http_body_util::combinators::BoxBody;
use hyper::body::{Frame, Incoming};

use crate::client::{Cli, Plain, query_escape};

mod paths;
mod pipe;

use paths::{
    CopyInfo, clean, copy_info_destination_path, copy_info_source_path, go_err, path_err,
    prepare_archive_copy, rebase_name, resolve_local_path, split_path_dir_entry,
    validate_output_path,
};
use pipe::{ChannelReader, ChannelWriter, is_upload_closed, rebased};

#[derive(Args, Debug)]
pub struct CpArgs {
    /// Always follow symbol link in SRC_PATH
    #[arg(short = 'L', long = "follow-link")]
    follow_link: bool,
    /// Archive mode (copy all uid/gid information)
    #[arg(short = 'a', long = "archive")]
    archive: bool,
    /// Suppress progress output during copy. Progress output is automatically suppressed if
    /// no terminal is attached
    #[arg(short = 'q', long = "quiet", num_args = 0..=1, require_equals = true,
          default_missing_value = "true")]
    quiet: Option<bool>,
    /// CONTAINER:SRC_PATH or SRC_PATH|-
    source: String,
    /// DEST_PATH|- or CONTAINER:DEST_PATH
    destination: String,
}

fn plain(msg: impl Into<String>) -> anyhow::Error {
    Plain::new(msg, 1).into()
}

pub async fn cp(cli: &Cli, a: CpArgs) -> anyhow::Result<i32> {
    if a.source.is_empty() {
        return Err(plain("source can not be empty"));
    }
    if a.destination.is_empty() {
        return Err(plain("destination can not be empty"));
    }
    // Without -q, output is suppressed when standard output is not a terminal (docker).
    let quiet = a.quiet.unwrap_or_else(|| !io::stdout().is_terminal());
    let (src_ctr, src_path) = split_cp_arg(&a.source);
    let (dst_ctr, dst_path) = split_cp_arg(&a.destination);
    let conf = Config {
        follow_link: a.follow_link,
        copy_uid_gid: a.archive,
        quiet,
    };
    match (src_ctr, dst_ctr) {
        (Some(ctr), None) => copy_from_container(cli, &conf, ctr, src_path, dst_path).await?,
        (None, Some(ctr)) => copy_to_container(cli, &conf, ctr, src_path, dst_path).await?,
        (Some(_), Some(_)) => return Err(plain("copying between containers is not supported")),
        (None, None) => return Err(plain("must specify at least one container source")),
    }
    Ok(0)
}

struct Config {
    follow_link: bool,
    copy_uid_gid: bool,
    quiet: bool,
}

/// `CONTAINER:PATH` or a local path (absolute, or relative starting with `.`, may hold `:`).
fn split_cp_arg(arg: &str) -> (Option<&str>, &str) {
    if arg.starts_with('/') {
        return (None, arg);
    }
    match arg.split_once(':') {
        Some((ctr, path)) if !ctr.starts_with('.') => (Some(ctr), path),
        _ => (None, arg),
    }
}

// ---- HTTP ----

type Body = BoxBody<Bytes, io::Error>;

fn empty_body() -> Body {
    http_body_util::Empty::new()
        .map_err(|never| match never {})
        .boxed()
}

/// One request to the daemon; an error status becomes the daemon's message, as bollard
/// reports it.
async fn request(
    cli: &Cli,
    method: hyper::Method,
    path_and_query: &str,
    content_type: Option<&str>,
    body: Body,
) -> anyhow::Result<hyper::Response<Incoming>> {
    let stream = tokio::net::UnixStream::connect(&cli.socket).await?;
    let io = hyper_util::rt::TokioIo::new(stream);
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let mut req = hyper::Request::builder()
        .method(method.clone())
        .uri(format!("/v1.51{path_and_query}"))
        .header("Host", "arca");
    if let Some(ct) = content_type {
        req = req.header("Content-Type", ct);
    }
    let resp = sender.send_request(req.body(body)?).await?;
    let status = resp.status();
    if status.is_success() {
        return Ok(resp);
    }
    let body = resp.into_body().collect().await?.to_bytes();
    let msg: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let message = msg.get("message").and_then(|m| m.as_str()).map_or_else(
        || {
            let text = String::from_utf8_lossy(&body).trim().to_owned();
            if text.is_empty() {
                format!("request returned {status} for {method}")
            } else {
                text
            }
        },
        str::to_owned,
    );
    Err(bollard::errors::Error::DockerResponseServerError {
        status_code: status.as_u16(),
        message,
    }
    .into())
}

fn archive_path(ctr: &str, query: &[(&str, &str)]) -> String {
    let q: Vec<String> = query
        .iter()
        .map(|(k, v)| format!("{k}={}", query_escape(v)))
        .collect();
    format!("/containers/{}/archive?{}", query_escape(ctr), q.join("&"))
}

fn stat_from(resp: &hyper::Response<Incoming>) -> anyhow::Result<PathStat> {
    let value = resp
        .headers()
        .get(PATH_STAT_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    PathStat::from_header(value).ok_or_else(|| {
        plain("unable to get resource stat from response: unable to decode container path stat header: EOF")
    })
}

/// `HEAD /containers/{id}/archive?path=`: the path's stat.
async fn stat_path(cli: &Cli, ctr: &str, path: &str) -> anyhow::Result<PathStat> {
    let resp = request(
        cli,
        hyper::Method::HEAD,
        &archive_path(ctr, &[("path", path)]),
        None,
        empty_body(),
    )
    .await?;
    stat_from(&resp)
}

fn report(conf: &Config, size: u64, dest: &str) {
    if !conf.quiet {
        eprintln!(
            "Successfully copied {} to {dest}",
            crate::format::human_size(size as f64)
        );
    }
}

// ---- The two directions ----

async fn copy_from_container(
    cli: &Cli,
    conf: &Config,
    ctr: &str,
    src_path: &str,
    dst_path: &str,
) -> anyhow::Result<()> {
    let dst_path = if dst_path == "-" {
        dst_path.to_owned()
    } else {
        resolve_local_path(dst_path)?
    };
    validate_output_path(&dst_path)?;
    let mut src_path = src_path.to_owned();
    let mut rebase = String::new();
    if conf.follow_link
        && let Ok(st) = stat_path(cli, ctr, &src_path).await
        && tarfs::is_symlink_mode(st.mode)
    {
        let mut target = st.link_target;
        if !target.starts_with('/') {
            let (parent, _) = split_path_dir_entry(&src_path);
            target = clean(&format!("{parent}/{target}"));
        }
        let (resolved, name) = rebase_name(&src_path, &target);
        src_path = resolved;
        rebase = name;
    }
    let resp = request(
        cli,
        hyper::Method::GET,
        &archive_path(ctr, &[("path", &src_path)]),
        None,
        empty_body(),
    )
    .await?;
    let stat = stat_from(&resp)?;
    let mut body = resp.into_body();
    if dst_path == "-" {
        let mut out = io::stdout().lock();
        while let Some(frame) = body.frame().await {
            if let Ok(data) = frame?.into_data() {
                out.write_all(&data)?;
            }
        }
        out.flush()?;
        return Ok(());
    }
    let src_info = CopyInfo {
        path: src_path.clone(),
        exists: true,
        is_dir: tarfs::is_dir_mode(stat.mode),
        rebase_name: rebase.clone(),
    };
    let mut renames = Vec::new();
    if !rebase.is_empty() {
        renames.push((split_path_dir_entry(&src_info.path).1, rebase));
    }
    // moby's `CopyTo`: where to extract, and whether the top entry must be renamed.
    let dst_info = copy_info_destination_path(&dst_path)?;
    let (dst_dir, rename) = prepare_archive_copy(&src_info, &dst_info)?;
    renames.extend(rename);

    let (tx, rx) = tokio::sync::mpsc::channel::<io::Result<Bytes>>(16);
    let extraction = tokio::task::spawn_blocking(move || {
        let mut r: Box<dyn Read + Send> = Box::new(ChannelReader::new(rx));
        for (old, new) in renames {
            r = rebased(r, old, new);
        }
        let opts = ExtractOptions {
            no_overwrite_dir_non_dir: true,
            owner: None,
            id_map: None,
            // A device node from a container is a way into the host: never made here.
            allow_devices: false,
            preserve_owner: false,
        };
        tarfs::extract(r, Path::new(&dst_dir), &opts).map(|_| ())
    });
    let mut copied: u64 = 0;
    let mut fetch_err = None;
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(f) => {
                if let Ok(data) = f.into_data() {
                    copied += data.len() as u64;
                    if tx.send(Ok(data)).await.is_err() {
                        break;
                    }
                }
            }
            Err(e) => {
                let _ = tx.send(Err(io::Error::other(e.to_string()))).await;
                fetch_err = Some(e);
                break;
            }
        }
    }
    drop(tx);
    let res = extraction.await?;
    report(conf, copied, &dst_path);
    match (res, fetch_err) {
        (Ok(()), None) => Ok(()),
        (_, Some(e)) => Err(e.into()),
        (Err(e), None) => Err(plain(e.to_string())),
    }
}

async fn copy_to_container(
    cli: &Cli,
    conf: &Config,
    ctr: &str,
    src_path: &str,
    dst_path: &str,
) -> anyhow::Result<()> {
    let src_path = if src_path == "-" {
        src_path.to_owned()
    } else {
        resolve_local_path(src_path)?
    };
    let mut dst_info = CopyInfo {
        path: dst_path.to_owned(),
        ..CopyInfo::default()
    };
    let mut dst_stat = stat_path(cli, ctr, dst_path).await;
    if let Ok(st) = &dst_stat
        && tarfs::is_symlink_mode(st.mode)
    {
        let mut target = st.link_target.clone();
        if !target.starts_with('/') {
            let (parent, _) = split_path_dir_entry(dst_path);
            target = clean(&format!("{parent}/{target}"));
        }
        dst_info.path = target.clone();
        dst_stat = stat_path(cli, ctr, &target).await;
    }
    if let Ok(st) = &dst_stat
        && st.mode & tarfs::MODE_DEVICE != 0
    {
        return Err(plain(format!(
            "destination \"{ctr}:{dst_path}\" must be a directory or a regular file: got a device"
        )));
    }
    if let Ok(st) = &dst_stat {
        dst_info.exists = true;
        dst_info.is_dir = tarfs::is_dir_mode(st.mode);
    }

    let count = Arc::new(AtomicU64::new(0));
    let (tx, rx) = tokio::sync::mpsc::channel::<io::Result<Bytes>>(16);
    let (resolved_dst, producer) = if src_path == "-" {
        if !dst_info.is_dir {
            return Err(plain(format!(
                "destination \"{ctr}:{dst_path}\" must be a directory"
            )));
        }
        let producer = tokio::task::spawn_blocking(move || -> anyhow::Result<bool> {
            let mut w = ChannelWriter { tx, count: None };
            match io::copy(&mut io::stdin().lock(), &mut w) {
                Ok(_) => Ok(true),
                Err(e) if is_upload_closed(&e) => Ok(false),
                Err(e) => Err(plain(format!("read from stdin: {}", go_err(&e)))),
            }
        });
        (dst_info.path.clone(), producer)
    } else {
        let src_info = copy_info_source_path(&src_path, conf.follow_link)?;
        // moby's `TarResource`: the source's parent and entry, archived under the entry's
        // name (or the rebase name), renamed at once to what `PrepareArchiveCopy` asks.
        std::fs::symlink_metadata(&src_info.path)
            .map_err(|e| path_err("lstat", &src_info.path, &e))?;
        let (src_dir, src_base) = split_path_dir_entry(&src_info.path);
        let (dst_dir, rename) = prepare_archive_copy(&src_info, &dst_info)?;
        let name = match rename {
            Some((_, new)) => new,
            None if !src_info.rebase_name.is_empty() => src_info.rebase_name.clone(),
            None => src_base.clone(),
        };
        let root = PathBuf::from(format!("{src_dir}/{src_base}"));
        let counter = (!conf.quiet).then(|| count.clone());
        let producer = tokio::task::spawn_blocking(move || -> anyhow::Result<bool> {
            let w = ChannelWriter { tx, count: counter };
            let errors = w.tx.clone();
            let res = tarfs::pack(&root, &name, io::BufWriter::with_capacity(64 * 1024, w))
                .and_then(|mut w| w.flush());
            match res {
                Ok(()) => Ok(true),
                Err(e) if is_upload_closed(&e) => Ok(false),
                Err(e) => {
                    // Abort the upload: the daemon must not extract a truncated archive.
                    let _ = errors.blocking_send(Err(io::Error::new(e.kind(), e.to_string())));
                    Err(plain(go_err(&e)))
                }
            }
        });
        (dst_dir, producer)
    };
    let body =
        http_body_util::StreamBody::new(futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item.map(Frame::data), rx))
        }))
        .boxed();
    let mut query = vec![
        ("path", resolved_dst.as_str()),
        ("noOverwriteDirNonDir", "true"),
    ];
    if conf.copy_uid_gid {
        query.push(("copyUIDGID", "true"));
    }
    let res = request(
        cli,
        hyper::Method::PUT,
        &archive_path(ctr, &query),
        Some("application/x-tar"),
        body,
    )
    .await;
    let produced = producer.await?;
    report(
        conf,
        count.load(Ordering::Relaxed),
        &format!("{ctr}:{}", dst_info.path),
    );
    // A local failure explains a failed upload better than the broken request; an upload
    // the HTTP side cut short is explained by the request's error or the daemon's answer.
    match (produced, res) {
        (Err(e), _) => Err(e),
        (Ok(_), Err(e)) => Err(e),
        (Ok(true), Ok(_)) => Ok(()),
        (Ok(false), Ok(_)) => Err(plain("the upload was cut short")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cp_args_split_container_and_local_paths_as_docker() {
        assert_eq!(split_cp_arg("ctr:/etc"), (Some("ctr"), "/etc"));
        assert_eq!(split_cp_arg("/abs:x"), (None, "/abs:x"));
        assert_eq!(split_cp_arg("./f:x"), (None, "./f:x"));
        assert_eq!(split_cp_arg("plain"), (None, "plain"));
        assert_eq!(split_cp_arg("-"), (None, "-"));
        assert_eq!(split_cp_arg("c:"), (Some("c"), ""));
    }
}
