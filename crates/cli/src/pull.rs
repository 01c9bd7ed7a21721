//! `arca pull`, and the pull `run`/`create` do for a missing image (`--pull`), with the
//! docker CLI's progress display: on a terminal one line per layer, rewritten in place as
//! its progress changes; otherwise plain status lines without the byte counts.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};

use arca_model::Reference;
use bollard::models::CreateImageInfo;
use bollard::query_parameters::CreateImageOptionsBuilder;
use clap::{Args, ValueEnum};
use futures_util::StreamExt;

use crate::client::{Cli, Plain};
use crate::format::human_size_4;

#[derive(Args, Debug)]
pub struct PullArgs {
    /// Download all tagged images in the repository
    #[arg(short = 'a', long = "all-tags")]
    all_tags: bool,
    /// Set platform if server is multi-platform capable
    #[arg(long)]
    platform: Option<String>,
    /// Suppress verbose output
    #[arg(short = 'q', long)]
    quiet: bool,
    /// Image to pull: NAME[:TAG|@DIGEST]
    name: String,
}

/// When `run` and `create` pull their image (docker's `--pull`).
#[derive(ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PullPolicy {
    /// Always pull the image before creating
    Always,
    /// Pull the image if it is not present
    #[default]
    Missing,
    /// Never pull: a missing image is an error
    Never,
}

/// The pull flags of `run` and `create`.
#[derive(Args, Debug, Default)]
pub struct PullFlags {
    /// Pull image before running ("always", "missing", "never")
    #[arg(long = "pull", value_enum, default_value_t = PullPolicy::Missing)]
    pub pull: PullPolicy,
    /// Suppress the pull output
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Set platform if server is multi-platform capable
    #[arg(long)]
    pub platform: Option<String>,
}

/// Parses an image name the way the docker CLI does before pulling (`:latest` added).
pub fn parse_reference(name: &str) -> anyhow::Result<Reference> {
    name.parse::<Reference>()
        .map_err(|e| Plain::new(e.to_string(), 1).into())
}

/// The full name docker prints after a pull (`docker.io/library/busybox:latest`).
pub fn full_name(r: &Reference) -> String {
    let mut s = r.full_repo();
    if let Some(t) = r.tag() {
        s.push(':');
        s.push_str(t);
    }
    if let Some(d) = r.digest() {
        s.push('@');
        s.push_str(&d.to_string());
    }
    s
}

pub async fn pull(cli: &Cli, a: PullArgs) -> anyhow::Result<i32> {
    let named = parse_reference(&a.name)?;
    let name_only = named.tag().is_none() && named.digest().is_none();
    if a.all_tags && !name_only {
        return Err(Plain::new("tag can't be used with --all-tags/-a", 1).into());
    }
    if name_only && !a.all_tags && !a.quiet {
        println!("Using default tag: latest");
    }
    // A name alone (no tag sent) asks the daemon for every tag.
    let reference = if a.all_tags {
        named
    } else {
        named.with_default_tag()
    };
    let stdout = std::io::stdout();
    let tty = stdout.is_terminal();
    let mut out: Box<dyn Write> = if a.quiet {
        Box::new(std::io::sink())
    } else {
        Box::new(stdout.lock())
    };
    pull_image(cli, &reference, a.platform.as_deref(), &mut out, tty).await?;
    drop(out);
    println!("{}", full_name(&reference));
    Ok(0)
}

/// Pulls `reference` (tag already defaulted; a name alone pulls every tag), rendering the daemon's progress on `out`.
pub async fn pull_image(
    cli: &Cli,
    reference: &Reference,
    platform: Option<&str>,
    out: &mut dyn Write,
    tty: bool,
) -> anyhow::Result<()> {
    let mut opts = CreateImageOptionsBuilder::new().from_image(&reference.familiar_repo());
    if let Some(d) = reference.digest() {
        opts = opts.tag(&d.to_string());
    } else if let Some(t) = reference.tag() {
        opts = opts.tag(t);
    }
    if let Some(p) = platform.filter(|p| !p.is_empty()) {
        opts = opts.platform(p);
    }
    let credentials = crate::login::docker_credentials(reference);
    let mut stream = cli
        .docker
        .create_image(Some(opts.build()), None, credentials);
    let width = crate::session::terminal_size().map_or(200, |(_, cols)| usize::from(cols));
    let mut display = Display::new(tty, width);
    while let Some(item) = stream.next().await {
        match item {
            Ok(info) => display.show(out, &info)?,
            // An error after the progress started: docker prints it as is, exit 1.
            Err(bollard::errors::Error::DockerStreamError { error }) => {
                return Err(Plain::new(error, 1).into());
            }
            Err(e) => return Err(e.into()),
        }
    }
    out.flush()?;
    Ok(())
}

/// The docker CLI's rendering of a JSON message stream (`jsonmessage`): on a terminal,
/// each message with a layer id and progress details owns a line that later messages for
/// that id rewrite in place; any other message ends that group of lines.
pub struct Display {
    tty: bool,
    width: usize,
    /// Layer id → its line, counted from the first line of the group.
    lines: HashMap<String, usize>,
}

impl Display {
    pub fn new(tty: bool, width: usize) -> Self {
        Self {
            tty,
            width,
            lines: HashMap::new(),
        }
    }

    pub fn show(&mut self, out: &mut dyn Write, m: &CreateImageInfo) -> std::io::Result<()> {
        let status = m.status.as_deref().unwrap_or("");
        let id = m.id.as_deref().filter(|i| !i.is_empty());
        let detail = m.progress_detail.as_ref().map(|d| {
            (
                u64::try_from(d.current.unwrap_or(0)).unwrap_or(0),
                u64::try_from(d.total.unwrap_or(0)).unwrap_or(0),
            )
        });
        let mut up = 0;
        match (id, detail) {
            (Some(id), Some(_)) => {
                let n = self.lines.len();
                let line = *self.lines.entry(id.to_owned()).or_insert(n);
                if self.tty && line == n {
                    writeln!(out)?;
                }
                up = self.lines.len() - line;
            }
            _ => self.lines.clear(),
        }
        let bar = detail.map_or(String::new(), |(c, t)| progress(c, t, self.width));
        if !self.tty && !bar.is_empty() {
            // Byte counts are only shown on terminals, as docker does.
            return Ok(());
        }
        let prefix = id.map_or(String::new(), |i| format!("{i}: "));
        if self.tty && detail.is_some() && id.is_some() {
            write!(out, "\x1b[{up}A\x1b[2K\r{prefix}{status} {bar}\r\x1b[{up}B")?;
        } else {
            writeln!(out, "{prefix}{status}")?;
        }
        out.flush()
    }
}

/// docker's `JSONProgress.String`: a 50-wide bar on terminals wider than 110 columns,
/// then `current/total` in decimal units.
pub fn progress(current: u64, total: u64, width: usize) -> String {
    if current == 0 && total == 0 {
        return String::new();
    }
    if total == 0 {
        return format!("{:>8}", human_size_4(current as f64));
    }
    let pct = (((current as f64 / total as f64) * 100.0) as usize / 2).min(50);
    let bar = if width > 110 {
        format!("[{}>{}] ", "=".repeat(pct), " ".repeat(50 - pct))
    } else {
        String::new()
    };
    if current > total {
        return bar;
    }
    format!(
        "{bar}{:>8}/{}",
        human_size_4(current as f64),
        human_size_4(total as f64)
    )
}

/// Pulls the image of `run`/`create` as docker does: "Unable to find image" on stderr,
/// then the progress on stderr (stdout is for the container ID).
pub async fn pull_missing(cli: &Cli, image: &str, flags: &PullFlags) -> anyhow::Result<()> {
    let reference = parse_reference(image)?.with_default_tag();
    if !flags.quiet && flags.pull == PullPolicy::Missing {
        eprintln!("Unable to find image '{reference}' locally");
    }
    let stderr = std::io::stderr();
    let tty = stderr.is_terminal();
    let mut out: Box<dyn Write> = if flags.quiet {
        Box::new(std::io::sink())
    } else {
        Box::new(stderr.lock())
    };
    pull_image(cli, &reference, flags.platform.as_deref(), &mut out, tty).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use bollard::models::ProgressDetail;

    fn msg(id: Option<&str>, status: &str, detail: Option<(i64, i64)>) -> CreateImageInfo {
        CreateImageInfo {
            id: id.map(str::to_owned),
            status: Some(status.to_owned()),
            progress_detail: detail.map(|(c, t)| ProgressDetail {
                current: (c > 0).then_some(c),
                total: (t > 0).then_some(t),
            }),
            ..Default::default()
        }
    }

    fn render(tty: bool, msgs: &[CreateImageInfo]) -> String {
        let mut d = Display::new(tty, 80);
        let mut out = Vec::new();
        for m in msgs {
            d.show(&mut out, m).expect("render");
        }
        String::from_utf8(out).expect("utf8")
    }

    fn pull_messages() -> Vec<CreateImageInfo> {
        vec![
            msg(Some("latest"), "Pulling from busybox", None),
            msg(Some("abc"), "Pulling fs layer", Some((0, 0))),
            msg(Some("abc"), "Downloading", Some((500, 1000))),
            msg(Some("abc"), "Pull complete", Some((0, 0))),
            msg(None, "Digest: sha256:x", None),
        ]
    }

    #[test]
    fn plain_output_skips_byte_counts() {
        assert_eq!(
            render(false, &pull_messages()),
            "latest: Pulling from busybox\nabc: Pulling fs layer\nabc: Pull complete\nDigest: sha256:x\n"
        );
    }

    #[test]
    fn terminal_output_rewrites_each_layer_line_in_place() {
        let s = render(true, &pull_messages());
        assert!(s.starts_with("latest: Pulling from busybox\n\n"), "{s:?}");
        // Every update of layer abc goes one line up, rewrites it and comes back down.
        assert_eq!(s.matches("\x1b[1A\x1b[2K\rabc: ").count(), 3, "{s:?}");
        assert!(s.contains("abc: Downloading     500B/1kB"), "{s:?}");
        assert!(s.ends_with("\x1b[1BDigest: sha256:x\n"), "{s:?}");
    }

    #[test]
    fn progress_bar_needs_a_wide_terminal() {
        assert_eq!(progress(0, 0, 200), "");
        assert_eq!(progress(512, 0, 200), "    512B");
        assert_eq!(progress(1_077_000, 2_154_000, 80), " 1.077MB/2.154MB");
        assert_eq!(
            progress(1_077_000, 2_154_000, 120),
            format!("[{}>{}]  1.077MB/2.154MB", "=".repeat(25), " ".repeat(25))
        );
    }

    #[test]
    fn pulled_names_print_in_full() {
        let r = |s: &str| parse_reference(s).expect("ref").with_default_tag();
        assert_eq!(full_name(&r("busybox")), "docker.io/library/busybox:latest");
        assert_eq!(
            full_name(&r("127.0.0.1:5000/busybox:1")),
            "127.0.0.1:5000/busybox:1"
        );
    }
}
