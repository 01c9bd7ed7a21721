//! The monitor's side of execs (see the module docs of [`super`] and [`crate::shim::exec`]):
//! creating them, finishing them once they exited and their output ended, and giving up on
//! them when the container exits.

use std::time::{Instant, SystemTime};

use arca_api::shim::{ExitStatus, PROTOCOL_VERSION, ProcessConfig, Reply};
use nix::sys::wait::{WaitPidFlag, waitpid};

use super::{DRAIN_LIMIT, EXEC_OUTPUT_HIGH_WATER, Monitor, docker_exit_code};
use crate::shim::client::Role;
use crate::shim::diag::chain;
use crate::shim::exec::{self, Exec, ExecError};
use crate::sys;
use crate::timefmt::rfc3339_nano;

impl Monitor {
    pub(super) fn find_exec(&self, exec_id: &str) -> Option<usize> {
        self.execs.iter().position(|e| e.id == exec_id)
    }

    /// Creates an exec in the running container; returns its index in `execs`, or the
    /// message for the client.
    pub(super) fn exec(
        &mut self,
        exec_id: String,
        process: &ProcessConfig,
        privileged: bool,
    ) -> Result<usize, String> {
        if !self.started || self.reaped.is_some() || self.status.is_some() {
            return Err("container is not running".into());
        }
        if self.paused {
            // Joining a frozen cgroup would block the shim until the container is resumed.
            return Err("container is paused".into());
        }
        if self.find_exec(&exec_id).is_some() {
            return Err(format!("exec {exec_id} already exists"));
        }
        let target = exec::Target {
            cfg: &self.cfg,
            init_pid: self.init_pid,
            confinement: &self.confinement,
        };
        match exec::spawn(&target, process, privileged) {
            Ok((pid, io)) => {
                self.execs.push(Exec {
                    id: exec_id,
                    pid,
                    io,
                    exited: None,
                    deadline: None,
                    status: None,
                });
                Ok(self.execs.len() - 1)
            }
            Err(e) => {
                // A failed build leaves zombies; reap() also records any exit meanwhile.
                self.reap();
                let message = chain(&e);
                if matches!(
                    e,
                    ExecError::Build(_) | ExecError::Stdio(_) | ExecError::Console(_)
                ) {
                    self.diag
                        .warn(format_args!("exec {exec_id} failed: {message}"));
                }
                Err(message)
            }
        }
    }

    /// For each exec, whether its client holds its output back (see the module docs).
    pub(super) fn exec_backpressure(&self) -> Vec<bool> {
        let mut held = vec![false; self.execs.len()];
        for c in &self.clients {
            if let Role::Exec { exec, .. } = c.role
                && !c.dead
                && c.buffered() >= EXEC_OUTPUT_HIGH_WATER
            {
                held[exec] = true;
            }
        }
        held
    }

    /// Finishes every exec that exited and whose output ended, or whose drain deadline
    /// passed while its client was not holding the output back.
    pub(super) fn settle_execs(&mut self) {
        let now = Instant::now();
        let held_back = self.exec_backpressure();
        for (k, held) in held_back.into_iter().enumerate() {
            let e = &mut self.execs[k];
            if !e.active() || e.exited.is_none() {
                continue;
            }
            if e.io.drained() {
                self.finish_exec(k);
            } else if held {
                e.deadline = Some(now + DRAIN_LIMIT);
            } else if e.deadline.is_some_and(|d| now >= d) {
                self.finish_exec(k);
            }
        }
    }

    /// Records exec `k`'s status, closes its stdio and stream, answers its `ExecWait`s.
    pub(super) fn finish_exec(&mut self, k: usize) {
        let e = &mut self.execs[k];
        let (exit_code, at) = e.exited.unwrap_or((128 + libc::SIGKILL, SystemTime::now()));
        e.io.close();
        e.deadline = None;
        let status = ExitStatus {
            version: PROTOCOL_VERSION,
            exit_code,
            finished_at: rfc3339_nano(at),
            oom_killed: false,
            error: String::new(),
        };
        for c in &mut self.clients {
            match c.role {
                Role::Exec { exec, .. } if exec == k => c.role = Role::Done,
                Role::ExecWaiting { exec } if exec == k => {
                    c.queue_reply(&Reply::Exited(status.clone()));
                    c.role = Role::Done;
                }
                _ => continue,
            }
            c.flush();
        }
        e.status = Some(status);
    }

    /// At the container's exit: finishes every exec still active. They died with the PID
    /// namespace and have normally been reaped and finished already; past the drain
    /// deadline, make sure they are dead and report the rest as killed.
    pub(super) fn finish_all_execs(&mut self) {
        for k in 0..self.execs.len() {
            let e = &mut self.execs[k];
            if !e.active() {
                continue;
            }
            if e.exited.is_none() {
                let _ = sys::kill(e.pid.as_raw(), libc::SIGKILL);
                let reaped = docker_exit_code(waitpid(e.pid, Some(WaitPidFlag::WNOHANG)).ok());
                let code = reaped.map_or(128 + libc::SIGKILL, |(_, code)| code);
                e.exited = Some((code, SystemTime::now()));
            }
            self.finish_exec(k);
        }
    }
}
