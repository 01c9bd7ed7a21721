//! Answering requests ([`arca_api::shim::Request`]); exec creation is in [`super::execs`].

use arca_api::shim::{Reply, Request};

use super::Monitor;
use crate::shim::client::Role;
use crate::shim::diag::chain;
use crate::shim::stdio::ProcessIo;

impl Monitor {
    /// Answers a client's request line (or sets it up to be answered later).
    pub(super) fn handle_request(&mut self, i: usize, req: Result<Request, String>) {
        let pid = Some(self.init_pid.as_raw());
        let exited = self.reaped.is_some();
        let reply = match req {
            Err(message) => Reply::Error { message },
            Ok(Request::Start) => self.start(),
            Ok(Request::Attach {
                stdin,
                stdout,
                stderr,
            }) => {
                let c = &mut self.clients[i];
                c.queue_reply(&Reply::Ok { pid });
                c.role = if self.status.is_some() {
                    Role::Done
                } else {
                    Role::Attached {
                        stdin,
                        stdout,
                        stderr,
                    }
                };
                c.flush();
                return;
            }
            Ok(Request::Kill { signal }) => {
                let r = self.kill(signal);
                self.control_reply(r)
            }
            Ok(Request::Wait) => match &self.status {
                Some(s) => Reply::Exited(s.clone()),
                None => {
                    self.clients[i].role = Role::Waiting;
                    return;
                }
            },
            Ok(Request::Resize { .. }) if exited => Reply::Error {
                message: "container is not running".into(),
            },
            Ok(Request::Resize { rows, cols }) => resize_reply(&self.io, rows, cols, "container"),
            Ok(Request::Exec {
                exec_id,
                process,
                privileged,
            }) => match self.exec(exec_id, &process, privileged) {
                Ok(k) => {
                    let c = &mut self.clients[i];
                    c.queue_reply(&Reply::Ok {
                        pid: Some(self.execs[k].pid.as_raw()),
                    });
                    c.role = Role::Exec {
                        exec: k,
                        stdin: process.open_stdin,
                    };
                    c.flush();
                    return;
                }
                Err(message) => Reply::Error { message },
            },
            Ok(Request::ExecWait { exec_id }) => match self.find_exec(&exec_id) {
                None => no_such_exec(&exec_id),
                Some(k) => match &self.execs[k].status {
                    Some(s) => Reply::Exited(s.clone()),
                    None => {
                        self.clients[i].role = Role::ExecWaiting { exec: k };
                        return;
                    }
                },
            },
            Ok(Request::ExecResize {
                exec_id,
                rows,
                cols,
            }) => match self.find_exec(&exec_id).map(|k| &self.execs[k]) {
                None => no_such_exec(&exec_id),
                Some(e) if e.exited.is_some() || !e.active() => Reply::Error {
                    message: format!("exec {exec_id} is not running"),
                },
                Some(e) => resize_reply(&e.io, rows, cols, "exec"),
            },
            Ok(Request::Pause) => {
                let r = self.pause();
                self.control_reply(r)
            }
            Ok(Request::Resume) => {
                let r = self.resume();
                self.control_reply(r)
            }
            Ok(Request::Update { resources }) => {
                let r = self.update(&resources);
                self.control_reply(r)
            }
        };
        let c = &mut self.clients[i];
        c.queue_reply(&reply);
        c.role = Role::Done;
        c.flush();
    }

    fn start(&mut self) -> Reply {
        if self.reaped.is_some() {
            return Reply::Error {
                message: "container is not running".into(),
            };
        }
        if self.started {
            return Reply::Error {
                message: "container already started".into(),
            };
        }
        let Some(container) = self.container.as_mut() else {
            return Reply::Error {
                message: "container is not running".into(),
            };
        };
        match container.start() {
            Ok(()) => {
                self.started = true;
                Reply::Ok {
                    pid: Some(self.init_pid.as_raw()),
                }
            }
            Err(e) => {
                let message = format!("failed to start the container: {}", chain(&e));
                self.diag.error(&message);
                Reply::Error { message }
            }
        }
    }
}

fn no_such_exec(exec_id: &str) -> Reply {
    Reply::Error {
        message: format!("no such exec: {exec_id}"),
    }
}

/// Resizes `io`'s terminal; `what` names the process in the error.
fn resize_reply(io: &ProcessIo, rows: u16, cols: u16, what: &str) -> Reply {
    match io.resize(rows, cols) {
        None => Reply::Error {
            message: format!("the {what} has no tty"),
        },
        Some(Ok(())) => Reply::Ok { pid: None },
        Some(Err(e)) => Reply::Error {
            message: format!("failed to resize the tty: {e}"),
        },
    }
}
