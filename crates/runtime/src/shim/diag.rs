//! The shim's own diagnostics: plain appends to `ShimConfig::shim_log`, one line per
//! message, written with a single `write` so concurrent writers never interleave. No
//! tracing subscriber: libcontainer's clone children must not inherit a logging lock.

use std::fmt::Display;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::SystemTime;

use crate::timefmt::rfc3339_nano;

pub struct Diag {
    file: Option<File>,
    pid: u32,
}

impl Diag {
    /// Opens (creating) the log; diagnostics are dropped if it cannot be opened.
    pub fn open(path: &Path) -> Self {
        let file = OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o640)
            .custom_flags(libc::O_CLOEXEC)
            .open(path)
            .ok();
        Self {
            file,
            pid: std::process::id(),
        }
    }

    pub fn file(&self) -> Option<&File> {
        self.file.as_ref()
    }

    pub fn warn(&self, msg: impl Display) {
        self.write("warn", msg);
    }

    pub fn error(&self, msg: impl Display) {
        self.write("error", msg);
    }

    fn write(&self, level: &str, msg: impl Display) {
        if let Some(mut f) = self.file.as_ref() {
            let line = format!(
                "{} {level} arca-shim[{}]: {msg}\n",
                rfc3339_nano(SystemTime::now()),
                self.pid
            );
            let _ = f.write_all(line.as_bytes());
        }
    }
}

/// `err` and its sources joined with ": ", as binaries print errors.
pub fn chain(err: &dyn std::error::Error) -> String {
    let mut s = err.to_string();
    let mut cur = err.source();
    while let Some(e) = cur {
        let m = e.to_string();
        if !s.ends_with(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        cur = e.source();
    }
    s
}
