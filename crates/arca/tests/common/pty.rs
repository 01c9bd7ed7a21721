//! A client command line in a pseudo-terminal (through `script`), typed into as a test goes
//! and read back as it runs: for sessions that must see output before typing more.

use std::io::{Read, Write};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{Daemon, poll_until};

/// A client command line in a pseudo-terminal, typed into as the test goes.
pub struct Pty {
    child: Child,
    output: Arc<Mutex<Vec<u8>>>,
    /// Copies the client's output until `script` exits and closes it.
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Pty {
    pub fn spawn(d: &Daemon, cmdline: &str) -> Self {
        let mut child = d
            .client("script")
            .args(["-qec", cmdline, "/dev/null"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn script");
        let output = Arc::new(Mutex::new(Vec::new()));
        let mut out = child.stdout.take().expect("stdout");
        let sink = output.clone();
        let reader = std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = out.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .expect("output lock")
                    .extend_from_slice(&buf[..n]);
            }
        });
        Self {
            child,
            output,
            reader: Some(reader),
        }
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.output.lock().expect("output lock")).into_owned()
    }

    pub fn send(&mut self, bytes: &[u8]) {
        let stdin = self.child.stdin.as_mut().expect("stdin");
        stdin.write_all(bytes).expect("type into pty");
        stdin.flush().expect("flush");
    }

    pub fn wait_for(&self, what: &str) {
        poll_until(
            &format!("{what:?} in the session"),
            Duration::from_secs(15),
            || self.text().contains(what),
        );
    }

    /// The client's exit status, within a deadline.
    pub fn finish(mut self) -> (Option<i32>, String) {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(st) = self.child.try_wait().expect("try_wait") {
                // All of the output, not what happened to be read by now.
                if let Some(r) = self.reader.take() {
                    r.join().expect("pty reader");
                }
                return (st.code(), self.text());
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!("client did not exit: {}", self.text());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
