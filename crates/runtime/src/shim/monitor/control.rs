//! Control requests on the running container: `Pause`, `Resume`, `Update`, and `Kill`,
//! which must still work on a paused container.
//!
//! Semantics follow Docker and runc:
//! - Pause freezes the container's cgroup (v1 `freezer.state`, v2 `cgroup.freeze`) and
//!   answers once the kernel reports it frozen. While paused, execs are refused (joining a
//!   frozen cgroup would hang the shim) and signals stay pending until resume, except
//!   SIGKILL: the shim thaws the cgroup right after sending it, so the container dies.
//! - Update writes only the limits given (see [`resources::translate_update`]). A memory
//!   limit below the container's working set is refused up front with both values named:
//!   cgroup v1 would answer EBUSY and v2 would OOM-kill the container. Memory is written
//!   first and alone, so a refused memory limit changes nothing.
//!
//! The cgroup work is done by libcgroups (v1 manager on legacy and hybrid hosts, v2 on
//! unified ones), with the cgroup path of the container's spec. Freezing blocks the event
//! loop until the kernel reports the cgroup frozen (bounded by libcgroups' retries).

use std::path::{Path, PathBuf};

use arca_api::shim::{Reply, ResourcesConfig};
use libcgroups::common::{
    AnyCgroupManager, AnyManagerError, CgroupConfig, CgroupManager, CgroupSetup, ControllerOpt,
    CreateCgroupSetupError, DEFAULT_CGROUP_ROOT, FreezerState,
};
use oci_spec::runtime::LinuxResources;

use super::Monitor;
use crate::resources::{self, UpdateError, human_bytes};
use crate::shim::diag::chain;
use crate::sys;

#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("container is not running")]
    NotRunning,
    #[error("container is already paused")]
    AlreadyPaused,
    #[error("container is not paused")]
    NotPaused,
    #[error("invalid signal {0}")]
    InvalidSignal(i32),
    #[error("failed to signal the container")]
    Signal(#[source] std::io::Error),
    #[error("the host's cgroup setup could not be detected")]
    NoCgroups,
    #[error("failed to open the container's cgroup")]
    Open(#[source] CreateCgroupSetupError),
    #[error("failed to freeze the container")]
    Freeze(#[source] AnyManagerError),
    #[error("failed to thaw the container")]
    Thaw(#[source] AnyManagerError),
    #[error(transparent)]
    Update(#[from] UpdateError),
    #[error(
        "memory limit {} is below the container's current usage {}",
        human_bytes(*.limit as u64),
        human_bytes(*.usage)
    )]
    MemoryBelowUsage { limit: i64, usage: u64 },
    #[error("failed to set the {what} limit")]
    Apply {
        what: &'static str,
        #[source]
        source: AnyManagerError,
    },
}

impl Monitor {
    /// Answers a control request: `Ok` or the error's message.
    pub(super) fn control_reply(&mut self, result: Result<(), ControlError>) -> Reply {
        match result {
            Ok(()) => Reply::Ok {
                pid: Some(self.init_pid.as_raw()),
            },
            Err(e) => {
                let message = chain(&e);
                if matches!(
                    e,
                    ControlError::Open(_) | ControlError::Freeze(_) | ControlError::Thaw(_)
                ) {
                    self.diag.error(&message);
                }
                Reply::Error { message }
            }
        }
    }

    /// Created or started, and not exited.
    fn alive(&self) -> bool {
        self.reaped.is_none() && self.status.is_none()
    }

    pub(super) fn pause(&mut self) -> Result<(), ControlError> {
        if !self.started || !self.alive() {
            return Err(ControlError::NotRunning);
        }
        if self.paused {
            return Err(ControlError::AlreadyPaused);
        }
        self.freeze(FreezerState::Frozen)?;
        self.paused = true;
        Ok(())
    }

    pub(super) fn resume(&mut self) -> Result<(), ControlError> {
        if !self.paused {
            return Err(ControlError::NotPaused);
        }
        self.freeze(FreezerState::Thawed)?;
        self.paused = false;
        Ok(())
    }

    /// Signals the container's init; a SIGKILL also thaws a paused container (a frozen
    /// task cannot die on cgroup v1), other signals stay pending until resume.
    pub(super) fn kill(&mut self, signal: i32) -> Result<(), ControlError> {
        if !self.alive() {
            return Err(ControlError::NotRunning);
        }
        if !(1..=64).contains(&signal) {
            return Err(ControlError::InvalidSignal(signal));
        }
        sys::kill(self.init_pid.as_raw(), signal).map_err(ControlError::Signal)?;
        if signal == libc::SIGKILL && self.paused {
            self.freeze(FreezerState::Thawed)?;
            self.paused = false;
        }
        Ok(())
    }

    /// Before the cgroup is deleted: a frozen cgroup's leftover tasks could not be killed.
    pub(super) fn thaw_for_delete(&mut self) {
        if self.paused {
            if let Err(e) = self.freeze(FreezerState::Thawed) {
                self.diag.warn(format_args!(
                    "failed to thaw the container before deleting it: {}",
                    chain(&e)
                ));
            }
            self.paused = false;
        }
    }

    /// Changes the limits that are `Some` in `res` (see the module docs).
    pub(super) fn update(&mut self, res: &ResourcesConfig) -> Result<(), ControlError> {
        if !self.alive() {
            return Err(ControlError::NotRunning);
        }
        // A copy (CgroupSetup is not Clone): the probes run between mutable uses of self.
        let setup = match self.cgroup_setup {
            Some(CgroupSetup::Legacy) => CgroupSetup::Legacy,
            Some(CgroupSetup::Hybrid) => CgroupSetup::Hybrid,
            Some(CgroupSetup::Unified) => CgroupSetup::Unified,
            None => return Err(ControlError::NoCgroups),
        };
        let root = Path::new(DEFAULT_CGROUP_ROOT);
        let path = self.cfg.cgroup_path.clone();
        let swap = resources::swap_accounting_available(root, &setup);
        let needs_current = res.memory.is_none_or(|m| m == 0) && res.memory_swap.is_some();
        let current = needs_current
            .then(|| resources::memory_limit(root, &setup, &path))
            .flatten();
        let translated = resources::translate_update(res, swap, current)?;
        for w in &translated.warnings {
            self.diag.warn(w);
        }
        let mut rest = translated.resources;
        let memory = *rest.memory();
        rest.set_memory(None);

        let new_limit = memory.as_ref().and_then(|m| m.limit()).filter(|l| *l > 0);
        let below_usage = |limit: i64| {
            resources::memory_working_set(root, &setup, &path)
                .filter(|usage| *usage > limit as u64)
                .map(|usage| ControlError::MemoryBelowUsage { limit, usage })
        };
        if let Some(e) = new_limit.and_then(below_usage) {
            return Err(e);
        }
        if memory.is_some() {
            let mut only = LinuxResources::default();
            only.set_memory(memory);
            if let Err(e) = self.apply(&only, "memory") {
                // cgroup v1 refuses (EBUSY) what it cannot reclaim; usage may have grown.
                return Err(new_limit.and_then(below_usage).unwrap_or(e));
            }
        }
        if rest.cpu().is_some() {
            let mut only = LinuxResources::default();
            only.set_cpu(rest.cpu().clone());
            self.apply(&only, "cpu")?;
        }
        if rest.pids().is_some() {
            let mut only = LinuxResources::default();
            only.set_pids(*rest.pids());
            self.apply(&only, "pids")?;
        }
        Ok(())
    }

    /// The container's cgroup manager, opened once.
    fn manager(&mut self) -> Result<&AnyCgroupManager, ControlError> {
        if self.cgroup.is_none() {
            let manager = libcgroups::common::create_cgroup_manager(CgroupConfig {
                cgroup_path: PathBuf::from(&self.cfg.cgroup_path),
                systemd_cgroup: false,
                container_name: self.cfg.id.clone(),
            })
            .map_err(ControlError::Open)?;
            self.cgroup = Some(manager);
        }
        Ok(self.cgroup.as_ref().expect("opened above"))
    }

    fn freeze(&mut self, state: FreezerState) -> Result<(), ControlError> {
        let thaw = state == FreezerState::Thawed;
        self.manager()?.freeze(state).map_err(|e| match thaw {
            true => ControlError::Thaw(e),
            false => ControlError::Freeze(e),
        })
    }

    fn apply(
        &mut self,
        resources: &LinuxResources,
        what: &'static str,
    ) -> Result<(), ControlError> {
        let opt = ControllerOpt {
            resources,
            disable_oom_killer: false,
            oom_score_adj: None,
            freezer_state: None,
        };
        self.manager()?
            .apply(&opt)
            .map_err(|source| ControlError::Apply { what, source })
    }
}
