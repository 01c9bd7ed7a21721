//! `arca export [-o FILE] CONTAINER`: the container's filesystem as a tar archive, streamed
//! from `GET /containers/{id}/export` to a file or to standard output (never a terminal,
//! as docker refuses one).
//!
//! With `-o`, the archive is written next to the destination (mode 0600, as docker's atomic
//! writer) and renamed into place when complete: a failed export leaves no truncated file
//! under the requested name.

use std::io::{IsTerminal, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use clap::Args;
use http_body_util::BodyExt;

use crate::client::{Cli, Plain, query_escape};

#[derive(Args, Debug)]
pub struct ExportArgs {
    /// Write to a file, instead of STDOUT
    #[arg(short = 'o', long)]
    output: Option<PathBuf>,
    container: String,
}

/// A temporary file next to `dest`.
fn temp_next_to(dest: &Path) -> PathBuf {
    dest.with_file_name(format!(
        ".{}.tmp-{}",
        dest.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        std::process::id()
    ))
}

pub async fn export(cli: &Cli, a: ExportArgs) -> anyhow::Result<i32> {
    if a.output.is_none() && std::io::stdout().is_terminal() {
        return Err(Plain::new(
            "cowardly refusing to save to a terminal. Use the -o flag or redirect",
            1,
        )
        .into());
    }
    let (mut out, tmp): (Box<dyn Write>, Option<(PathBuf, PathBuf)>) = match &a.output {
        Some(dest) => {
            let tmp = temp_next_to(dest);
            let f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)
                .map_err(|e| {
                    anyhow::anyhow!("failed to export container: {}: {e}", dest.display())
                })?;
            (
                Box::new(std::io::BufWriter::new(f)),
                Some((tmp, dest.clone())),
            )
        }
        None => (Box::new(std::io::stdout().lock()), None),
    };
    let result: anyhow::Result<()> = async {
        // Escaped: a mistyped name must not change the request's path.
        let path = format!("/containers/{}/export", query_escape(&a.container));
        let mut body =
            crate::client::raw_request(&cli.socket, hyper::Method::GET, &path, &[], Bytes::new())
                .await?;
        while let Some(frame) = body.frame().await {
            if let Ok(data) = frame?.into_data() {
                out.write_all(&data)?;
            }
        }
        out.flush()?;
        Ok(())
    }
    .await;
    drop(out);
    match (result, tmp) {
        (Ok(()), Some((tmp, dest))) => {
            if let Err(e) = std::fs::rename(&tmp, &dest) {
                let _ = std::fs::remove_file(&tmp);
                anyhow::bail!("failed to export container: {}: {e}", dest.display());
            }
        }
        (Err(e), Some((tmp, _))) => {
            let _ = std::fs::remove_file(tmp);
            return Err(e);
        }
        (r, None) => r?,
    }
    Ok(0)
}
