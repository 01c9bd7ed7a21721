//! The container's payload exec: `execve` of the path the shim resolved inside the rootfs,
//! with the spec's argv and environment in their original order (libcontainer's default
//! executor re-searches `PATH` and passes the environment through a `HashMap`).

use std::ffi::CString;

use libcontainer::workload::{
    Executor, ExecutorError, ExecutorSetEnvsError, ExecutorValidationError,
};
use oci_spec::runtime::Spec;

#[derive(Clone)]
pub struct ExecveExecutor {
    path: CString,
    argv: Vec<CString>,
    envp: Vec<CString>,
}

#[derive(Debug, thiserror::Error)]
#[error("{what} contains a NUL byte")]
pub struct NulError {
    what: &'static str,
}

fn cstrings(v: &[String], what: &'static str) -> Result<Vec<CString>, NulError> {
    v.iter()
        .map(|s| CString::new(s.as_bytes()).map_err(|_| NulError { what }))
        .collect()
}

impl ExecveExecutor {
    pub fn new(path: &str, args: &[String], env: &[String]) -> Result<Self, NulError> {
        Ok(Self {
            path: CString::new(path).map_err(|_| NulError {
                what: "the command",
            })?,
            argv: cstrings(args, "an argument")?,
            envp: cstrings(env, "an environment variable")?,
        })
    }
}

impl Executor for ExecveExecutor {
    fn exec(&self, _spec: &Spec) -> Result<(), ExecutorError> {
        let err = match nix::unistd::execve(&self.path, &self.argv, &self.envp) {
            Ok(never) => match never {},
            Err(e) => e,
        };
        Err(ExecutorError::Other(format!(
            "exec {:?}: {err}",
            self.path.to_string_lossy()
        )))
    }

    fn validate(&self, _spec: &Spec) -> Result<(), ExecutorValidationError> {
        // The shim resolved and checked the command before creating the container.
        Ok(())
    }

    fn setup_envs(
        &self,
        _envs: std::collections::HashMap<String, String>,
    ) -> Result<(), ExecutorSetEnvsError> {
        // execve gets the environment explicitly.
        Ok(())
    }
}
