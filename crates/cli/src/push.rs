//! `arca push NAME[:TAG]`: `POST /images/{name}/push` with the stored credentials of the
//! image's registry, rendering the daemon's progress with the pull display (one line per
//! layer on a terminal, rewritten in place; plain status lines otherwise).
//!
//! The request is sent by hand (not through bollard): bollard's push stream type drops the
//! layer `id` of each message, which the display keys its lines on.

use std::io::{IsTerminal, Write};

use bollard::models::CreateImageInfo;
use bytes::Bytes;
use clap::Args;
use http_body_util::BodyExt;

use crate::client::{Cli, Plain, query_escape};
use crate::login::registry_auth_header;
use crate::pull::{Display, parse_reference};

#[derive(Args, Debug)]
pub struct PushArgs {
    /// Push all tags of an image to the repository
    #[arg(short = 'a', long)]
    all_tags: bool,
    /// Suppress verbose output
    #[arg(short = 'q', long)]
    quiet: bool,
    /// Image to push: NAME[:TAG]
    name: String,
}

/// A POST on the API (`headers` besides `Host` and `Content-Type: application/json`); an
/// error status becomes the daemon's message, as bollard reports it.
pub async fn post(
    socket: &std::path::Path,
    path_and_query: &str,
    headers: &[(&str, String)],
    body: Vec<u8>,
) -> anyhow::Result<hyper::body::Incoming> {
    crate::client::raw_request(
        socket,
        hyper::Method::POST,
        path_and_query,
        headers,
        Bytes::from(body),
    )
    .await
}

pub async fn push(cli: &Cli, a: PushArgs) -> anyhow::Result<i32> {
    let named = parse_reference(&a.name)?;
    if named.digest().is_some() {
        return Err(Plain::new(
            format!(
                "invalid reference format: cannot push a digest reference: {}",
                a.name
            ),
            1,
        )
        .into());
    }
    if a.all_tags && named.tag().is_some() {
        return Err(Plain::new("tag can't be used with --all-tags/-a".to_owned(), 1).into());
    }
    let tag = match named.tag() {
        Some(t) => t.to_owned(),
        None if a.all_tags => String::new(),
        None => {
            if !a.quiet {
                println!("Using default tag: latest");
            }
            "latest".to_owned()
        }
    };
    let path = format!(
        "/images/{}/push?tag={}",
        named.familiar_repo(),
        query_escape(&tag)
    );
    let auth = registry_auth_header(&named);
    let mut body = post(&cli.socket, &path, &[("X-Registry-Auth", auth)], Vec::new()).await?;
    let stdout = std::io::stdout();
    let tty = stdout.is_terminal();
    let mut out: Box<dyn Write> = if a.quiet {
        Box::new(std::io::sink())
    } else {
        Box::new(stdout.lock())
    };
    let width = crate::session::terminal_size().map_or(200, |(_, cols)| usize::from(cols));
    let mut display = Display::new(tty, width);
    let mut pending = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame?;
        let Some(data) = frame.data_ref() else {
            continue;
        };
        pending.extend_from_slice(data);
        while let Some(nl) = pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = pending.drain(..=nl).collect();
            show_line(&mut display, &mut out, &line)?;
        }
    }
    show_line(&mut display, &mut out, &pending)?;
    out.flush()?;
    if a.quiet {
        println!("{}", crate::pull::full_name(&named.with_default_tag()));
    }
    Ok(0)
}

/// Renders one JSON message; an `errorDetail` ends the push with its message (exit 1).
fn show_line(display: &mut Display, out: &mut dyn Write, line: &[u8]) -> anyhow::Result<()> {
    if line.iter().all(u8::is_ascii_whitespace) {
        return Ok(());
    }
    let m: CreateImageInfo = serde_json::from_slice(line)?;
    if let Some(e) = m.error_detail.as_ref().and_then(|d| d.message.clone()) {
        out.flush()?;
        return Err(Plain::new(e, 1).into());
    }
    // `aux` lines (tag, digest, size) carry no status and are not shown, as docker.
    if m.status.as_deref().is_some_and(|s| !s.is_empty()) {
        display.show(out, &m)?;
    }
    Ok(())
}
