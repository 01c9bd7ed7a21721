//! `network connect` / `network disconnect` for a container: recorded in the container
//! (`endpoints_config`, used at every start) and, when it runs, applied live.

use std::sync::Arc;

use arca_api::docker;

use super::{Container, Containers};
use crate::error::{ApiError, ApiResult};

impl Containers {
    pub async fn connect(
        self: &Arc<Self>,
        c: &Arc<Container>,
        network: &str,
        settings: docker::EndpointSettings,
    ) -> ApiResult<()> {
        let _op = c.op.lock().await;
        let net = self.networks.get(network)?;
        let rec = c.snapshot();
        let mode = rec.host_config.network_mode.as_deref().unwrap_or("default");
        if mode == "host" || net.name == "host" {
            return Err(ApiError::invalid(
                "container cannot be disconnected from host network or connected to host network",
            ));
        }
        if mode == "none" || mode.starts_with("container:") || net.name == "none" {
            return Err(ApiError::invalid(format!(
                "container sharing network namespace with another container or host cannot be connected to any other network (network mode {mode})"
            )));
        }
        let primary = self.networks.mode_network(mode)?;
        let to_primary = primary.as_ref().is_some_and(|p| p.id == net.id);
        let already = (to_primary && !rec.primary_disconnected)
            || rec
                .endpoints_config
                .keys()
                .any(|k| *k == net.name || *k == net.id);
        if already {
            return Err(ApiError::new(
                arca_model::ErrorKind::Forbidden,
                format!(
                    "endpoint with name {} already exists in network {}",
                    rec.name, net.name
                ),
            ));
        }
        if rec.state.status.is_running() {
            self.networks.connect_running(&rec, &net, &settings).await?;
        }
        let name = net.name.clone();
        c.update(&self.paths, |r| {
            if to_primary {
                r.primary_disconnected = false;
            }
            r.endpoints_config.insert(name, settings);
        })?;
        self.emit_network(&net.id, &net.name, c, "connect");
        Ok(())
    }

    pub async fn disconnect(self: &Arc<Self>, c: &Arc<Container>, network: &str) -> ApiResult<()> {
        let _op = c.op.lock().await;
        let net = self.networks.get(network)?;
        let rec = c.snapshot();
        let mode = rec.host_config.network_mode.as_deref().unwrap_or("default");
        if net.name == "host" || mode == "host" {
            return Err(ApiError::invalid(
                "container cannot be disconnected from host network or connected to host network",
            ));
        }
        let primary = !rec.primary_disconnected
            && self
                .networks
                .mode_network(mode)?
                .is_some_and(|p| p.id == net.id);
        let listed = rec
            .endpoints_config
            .keys()
            .any(|k| *k == net.name || *k == net.id);
        if !primary && !listed {
            return Err(ApiError::new(
                arca_model::ErrorKind::Forbidden,
                format!(
                    "container {} is not connected to network {}",
                    rec.name, net.name
                ),
            ));
        }
        if rec.state.status.is_running() {
            self.networks
                .disconnect_running(rec.id.as_str(), &net)
                .await?;
        }
        let (name, id) = (net.name.clone(), net.id.clone());
        c.update(&self.paths, |r| {
            // The docker CLI names the default network `default`.
            r.endpoints_config
                .retain(|k, _| *k != name && *k != id && !(primary && k == "default"));
            if primary {
                // Off its first network; the mode stays what it was, as Docker's does.
                r.primary_disconnected = true;
            }
        })?;
        self.emit_network(&net.id, &net.name, c, "disconnect");
        Ok(())
    }

    fn emit_network(&self, id: &str, name: &str, c: &Container, action: &str) {
        let mut ev = crate::events::Event::network(id, name, "bridge", action);
        ev.add_attribute("container", c.id.as_str());
        self.events.publish(ev);
    }
}
