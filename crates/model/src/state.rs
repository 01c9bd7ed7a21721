//! Container lifecycle states and the transitions between them.

use serde::{Deserialize, Serialize};

/// Where a container is in its life, with Docker's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ContainerStatus {
    Created,
    Running,
    Paused,
    Restarting,
    Removing,
    Exited,
    Dead,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("cannot {action} a container that is {from}")]
pub struct TransitionError {
    pub action: &'static str,
    pub from: ContainerStatus,
}

impl ContainerStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Running => "running",
            Self::Paused => "paused",
            Self::Restarting => "restarting",
            Self::Removing => "removing",
            Self::Exited => "exited",
            Self::Dead => "dead",
        }
    }

    /// A process exists (or is being set up) for this container.
    pub fn is_running(self) -> bool {
        matches!(self, Self::Running | Self::Paused | Self::Restarting)
    }

    pub fn can_start(self) -> Result<(), TransitionError> {
        match self {
            Self::Created | Self::Exited => Ok(()),
            from => Err(TransitionError {
                action: "start",
                from,
            }),
        }
    }

    pub fn can_remove(self, force: bool) -> Result<(), TransitionError> {
        match self {
            Self::Removing => Err(TransitionError {
                action: "remove",
                from: self,
            }),
            s if s.is_running() && !force => Err(TransitionError {
                action: "remove",
                from: s,
            }),
            _ => Ok(()),
        }
    }
}

impl std::fmt::Display for ContainerStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn running_container_cannot_be_removed_without_force() {
        assert!(ContainerStatus::Running.can_remove(false).is_err());
        assert!(ContainerStatus::Running.can_remove(true).is_ok());
        assert!(ContainerStatus::Exited.can_remove(false).is_ok());
    }

    #[test]
    fn only_created_or_exited_containers_start() {
        assert!(ContainerStatus::Created.can_start().is_ok());
        assert!(ContainerStatus::Exited.can_start().is_ok());
        assert!(ContainerStatus::Running.can_start().is_err());
    }
}
