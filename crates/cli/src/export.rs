//! `arca export [-o FILE] CONTAINER`: the container's filesystem as a tar archive, streamed
//! from `GET /containers/{id}/export` to a file or to standard output (never a terminal,
//! as docker refuses one).
//!
//! With `-o`, the archive is written next to the destination (mode 0600, as docker's atomic
//! writer) and renamed into place when complete: a failed export leaves no truncated file
//! under the requested name.

use std::io::IsTerminal;
use std::path::PathBuf;

use bytes::Bytes;
use clap::Args;

use crate::client::{Cli, Plain, query_escape};

#[derive(Args, Debug)]
pub struct ExportArgs {
    /// Write to a file, instead of STDOUT
    #[arg(short = 'o', long)]
    output: Option<PathBuf>,
    container: String,
}

pub async fn export(cli: &Cli, a: ExportArgs) -> anyhow::Result<i32> {
    if a.output.is_none() && std::io::stdout().is_terminal() {
        return Err(Plain::new(
            "cowardly refusing to save to a terminal. Use the -o flag or redirect",
            1,
        )
        .into());
    }
    // Escaped: a mistyped name must not change the request's path. Asked before any file
    // is made, so an unknown container leaves nothing behind.
    let path = format!("/containers/{}/export", query_escape(&a.container));
    let body =
        crate::client::raw_request(&cli.socket, hyper::Method::GET, &path, &[], Bytes::new())
            .await?;
    crate::client::write_body(body, a.output.as_deref(), "export container").await?;
    Ok(0)
}
