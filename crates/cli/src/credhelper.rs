//! The docker credential-helper protocol (docker/docker-credential-helpers' `client`
//! package), as the docker CLI runs it for `credsStore` and `credHelpers`.
//!
//! A helper named `<name>` is the program `docker-credential-<name>`, found on `PATH`, run
//! with one action as its argument:
//! - `get`: the server URL on stdin (no newline); answers `{"ServerURL","Username","Secret"}`
//!   on stdout. A failing exit with `credentials not found in native keychain` on stdout
//!   means "no credentials", which is not an error.
//! - `store`: `{"ServerURL","Username","Secret"}` (one JSON line) on stdin.
//! - `erase`: the server URL on stdin.
//!
//! A Username of `<token>` means the Secret is an identity token, not a password. The
//! helper's stderr is the user's (a helper may ask for a passphrase there). Failures carry
//! docker's wording, on one line and naming the program:
//! ```text
//! error getting credentials - err: exec: "docker-credential-x": executable file not found in $PATH, out: ``
//! error storing credentials - err: docker-credential-x store: exit status 1, out: `<its stdout>`
//! ```
//! Programs are run through a [`Runner`] so the lookup order can be tested without them.

use std::fmt;
use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::{Value, json};

/// The prefix of every helper program's name.
pub const PROGRAM_PREFIX: &str = "docker-credential-";

/// The Username under which helpers keep identity tokens.
pub const TOKEN_USERNAME: &str = "<token>";

/// What a helper prints (with a failing exit) when it has nothing for the server.
pub const NOT_FOUND: &str = "credentials not found in native keychain";
const MISSING_SERVER_URL: &str = "no credentials server URL";
const MISSING_USERNAME: &str = "no credentials username";

/// How one helper run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunOutput {
    /// `None` on success, else Go's rendering of the failure (`exit status 1`).
    pub failure: Option<String>,
    pub stdout: Vec<u8>,
}

/// Runs `program action` with `input` on its stdin.
pub trait Runner {
    /// `Err` when the program cannot be started, in Go's words
    /// (`exec: "docker-credential-x": executable file not found in $PATH`).
    fn run(&self, program: &str, action: &str, input: &[u8]) -> Result<RunOutput, String>;
}

/// The real runner: programs from `PATH`.
pub struct Exec;

impl Runner for Exec {
    fn run(&self, program: &str, action: &str, input: &[u8]) -> Result<RunOutput, String> {
        let spawned = Command::new(program)
            .arg(action)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn();
        let mut child = spawned.map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => {
                format!("exec: \"{program}\": executable file not found in $PATH")
            }
            _ => format!("exec: \"{program}\": {e}"),
        })?;
        if let Some(mut stdin) = child.stdin.take() {
            // A helper may exit without reading its input: a broken pipe here is not the
            // error to report, its exit status is.
            let _ = stdin.write_all(input);
        }
        let out = child
            .wait_with_output()
            .map_err(|e| format!("{program} {action}: {e}"))?;
        let failure = if out.status.success() {
            None
        } else if let Some(code) = out.status.code() {
            Some(format!("exit status {code}"))
        } else {
            use std::os::unix::process::ExitStatusExt;
            let sig = out.status.signal().unwrap_or(0);
            Some(match nix::sys::signal::Signal::try_from(sig) {
                Ok(s) => format!("signal: {}", s.as_str()),
                Err(_) => format!("signal: {sig}"),
            })
        };
        Ok(RunOutput {
            failure,
            stdout: out.stdout,
        })
    }
}

/// Credentials as a helper keeps them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HelperCredentials {
    pub server_url: String,
    /// [`TOKEN_USERNAME`] when `secret` is an identity token.
    pub username: String,
    pub secret: String,
}

/// The helper action that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Get,
    Store,
    Erase,
}

impl Action {
    fn verb(self) -> &'static str {
        match self {
            Action::Get => "getting",
            Action::Store => "storing",
            Action::Erase => "erasing",
        }
    }

    fn arg(self) -> &'static str {
        match self {
            Action::Get => "get",
            Action::Store => "store",
            Action::Erase => "erase",
        }
    }
}

/// A credential helper that failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredHelperError {
    /// The program did not start or exited with a failure.
    Failed {
        action: Action,
        /// Why, naming the program.
        err: String,
        /// Its stdout, trimmed and on one line.
        out: String,
    },
    /// The helper said the request lacked a server URL.
    MissingServerUrl,
    /// The helper said the request lacked a username.
    MissingUsername,
    /// `get` succeeded but did not print the credentials JSON.
    InvalidReply { program: String, reason: String },
}

impl fmt::Display for CredHelperError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CredHelperError::Failed { action, err, out } => write!(
                f,
                "error {} credentials - err: {err}, out: `{out}`",
                action.verb()
            ),
            CredHelperError::MissingServerUrl => f.write_str(MISSING_SERVER_URL),
            CredHelperError::MissingUsername => f.write_str(MISSING_USERNAME),
            CredHelperError::InvalidReply { program, reason } => {
                write!(f, "error getting credentials - {program} get: {reason}")
            }
        }
    }
}

impl std::error::Error for CredHelperError {}

/// One configured helper (`<name>` of `docker-credential-<name>`).
pub struct Helper<'a> {
    program: String,
    runner: &'a dyn Runner,
}

impl<'a> Helper<'a> {
    pub fn new(name: &str, runner: &'a dyn Runner) -> Self {
        Self {
            program: format!("{PROGRAM_PREFIX}{name}"),
            runner,
        }
    }

    /// Runs `action`, returning stdout on success and the protocol's errors otherwise
    /// (`Ok(None)`: the helper has no credentials for the server).
    fn call(&self, action: Action, input: &[u8]) -> Result<Option<Vec<u8>>, CredHelperError> {
        let out = self
            .runner
            .run(&self.program, action.arg(), input)
            .map_err(|err| CredHelperError::Failed {
                action,
                err,
                out: String::new(),
            })?;
        let Some(failure) = out.failure else {
            return Ok(Some(out.stdout));
        };
        let text = String::from_utf8_lossy(&out.stdout);
        let text = text.trim();
        match text {
            MISSING_SERVER_URL => Err(CredHelperError::MissingServerUrl),
            MISSING_USERNAME => Err(CredHelperError::MissingUsername),
            NOT_FOUND if action == Action::Get => Ok(None),
            _ => Err(CredHelperError::Failed {
                action,
                err: format!("{} {}: {failure}", self.program, action.arg()),
                out: text.split_whitespace().collect::<Vec<_>>().join(" "),
            }),
        }
    }

    /// The credentials kept for `server_url`, `None` when there are none.
    pub fn get(&self, server_url: &str) -> Result<Option<HelperCredentials>, CredHelperError> {
        let Some(stdout) = self.call(Action::Get, server_url.as_bytes())? else {
            return Ok(None);
        };
        let v: Value =
            serde_json::from_slice(&stdout).map_err(|e| CredHelperError::InvalidReply {
                program: self.program.clone(),
                reason: format!("invalid JSON: {e}"),
            })?;
        if !v.is_object() {
            return Err(CredHelperError::InvalidReply {
                program: self.program.clone(),
                reason: "the answer is not a JSON object".to_owned(),
            });
        }
        let field = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
        Ok(Some(HelperCredentials {
            server_url: field("ServerURL")
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| server_url.to_owned()),
            username: field("Username").unwrap_or_default(),
            secret: field("Secret").unwrap_or_default(),
        }))
    }

    /// Hands the helper credentials to keep.
    pub fn store(&self, creds: &HelperCredentials) -> Result<(), CredHelperError> {
        let mut input = json!({
            "ServerURL": creds.server_url,
            "Username": creds.username,
            "Secret": creds.secret,
        })
        .to_string()
        .into_bytes();
        // Go's json.Encoder ends the document with a newline; helpers may read a line.
        input.push(b'\n');
        self.call(Action::Store, &input).map(drop)
    }

    /// Makes the helper forget `server_url`.
    pub fn erase(&self, server_url: &str) -> Result<(), CredHelperError> {
        self.call(Action::Erase, server_url.as_bytes()).map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::cell::RefCell;

    /// Answers every run with `reply`, recording what was run.
    struct Canned {
        reply: Result<RunOutput, String>,
        calls: RefCell<Vec<(String, String, Vec<u8>)>>,
    }

    impl Canned {
        fn new(reply: Result<RunOutput, String>) -> Self {
            Self {
                reply,
                calls: RefCell::new(Vec::new()),
            }
        }

        fn fails(status: &str, stdout: &str) -> Self {
            Self::new(Ok(RunOutput {
                failure: Some(status.to_owned()),
                stdout: stdout.as_bytes().to_vec(),
            }))
        }

        fn prints(stdout: &str) -> Self {
            Self::new(Ok(RunOutput {
                failure: None,
                stdout: stdout.as_bytes().to_vec(),
            }))
        }
    }

    impl Runner for Canned {
        fn run(&self, program: &str, action: &str, input: &[u8]) -> Result<RunOutput, String> {
            self.calls
                .borrow_mut()
                .push((program.to_owned(), action.to_owned(), input.to_vec()));
            self.reply.clone()
        }
    }

    #[test]
    fn get_sends_the_bare_url_and_reads_the_answer() {
        let r = Canned::prints(r#"{"ServerURL":"h:5000","Username":"u","Secret":"s"}"#);
        let got = Helper::new("x", &r).get("h:5000").expect("get");
        assert_eq!(
            got,
            Some(HelperCredentials {
                server_url: "h:5000".into(),
                username: "u".into(),
                secret: "s".into()
            })
        );
        assert_eq!(
            r.calls.borrow()[0],
            (
                "docker-credential-x".into(),
                "get".into(),
                b"h:5000".to_vec()
            )
        );
    }

    #[test]
    fn get_treats_not_found_as_no_credentials() {
        let r = Canned::fails(
            "exit status 1",
            "credentials not found in native keychain\n",
        );
        assert_eq!(Helper::new("x", &r).get("h").expect("get"), None);
    }

    #[test]
    fn failures_use_docker_s_wording_on_one_line() {
        let r = Canned::new(Err(
            "exec: \"docker-credential-x\": executable file not found in $PATH".into(),
        ));
        let e = Helper::new("x", &r).get("h").expect_err("no program");
        assert_eq!(
            e.to_string(),
            "error getting credentials - err: exec: \"docker-credential-x\": executable file \
             not found in $PATH, out: ``"
        );
        let r = Canned::fails("exit status 3", "  gpg: no key\nagent down \n");
        let e = Helper::new("x", &r)
            .store(&HelperCredentials {
                server_url: "h".into(),
                username: "u".into(),
                secret: "s".into(),
            })
            .expect_err("failing helper");
        assert_eq!(
            e.to_string(),
            "error storing credentials - err: docker-credential-x store: exit status 3, \
             out: `gpg: no key agent down`"
        );
        let r = Canned::fails("exit status 1", "no credentials server URL");
        assert_eq!(
            Helper::new("x", &r).erase(""),
            Err(CredHelperError::MissingServerUrl)
        );
    }

    #[test]
    fn store_sends_one_json_line() {
        let r = Canned::prints("");
        Helper::new("x", &r)
            .store(&HelperCredentials {
                server_url: "h".into(),
                username: "u".into(),
                secret: "p\"w".into(),
            })
            .expect("store");
        let (_, action, input) = r.calls.borrow()[0].clone();
        assert_eq!(action, "store");
        assert!(input.ends_with(b"}\n"));
        let v: Value = serde_json::from_slice(&input).expect("json");
        assert_eq!(v, json!({"ServerURL":"h","Username":"u","Secret":"p\"w"}));
    }

    #[test]
    fn garbage_from_get_is_an_error_naming_the_helper() {
        let r = Canned::prints("not json");
        let e = Helper::new("x", &r).get("h").expect_err("garbage");
        assert!(
            e.to_string()
                .starts_with("error getting credentials - docker-credential-x get: invalid JSON"),
            "{e}"
        );
    }

    #[test]
    fn exec_reports_a_missing_program_like_go() {
        let e = Exec
            .run("docker-credential-arca-no-such-helper", "get", b"h")
            .expect_err("not on PATH");
        assert_eq!(
            e,
            "exec: \"docker-credential-arca-no-such-helper\": executable file not found in $PATH"
        );
    }

    #[test]
    fn exec_runs_a_real_program_and_reports_its_status() {
        let dir = std::env::temp_dir().join(format!("arca-credhelper-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let script = dir.join("docker-credential-t");
        std::fs::write(
            &script,
            "#!/bin/sh\nread -r url\necho \"$1 $url\"\nexit 4\n",
        )
        .expect("script");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let out = Exec
            .run(script.to_str().expect("utf8"), "get", b"h:1\n")
            .expect("script runs");
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(out.failure.as_deref(), Some("exit status 4"));
        assert_eq!(out.stdout, b"get h:1\n");
    }
}
