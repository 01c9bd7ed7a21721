//! The HTTP side: an `oci-client` [`Client`] configured for one registry (scheme, timeouts,
//! credentials), and the translation of arca references into its references.

use std::net::IpAddr;
use std::sync::Once;
use std::time::Duration;

use arca_model::Reference;
use oci_client::Client;
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::secrets::RegistryAuth;

use crate::{Credentials, PullOptions};

/// How long establishing a connection may take.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a response may stay silent (per read, so a large blob is fine while it flows).
pub(crate) const READ_TIMEOUT: Duration = Duration::from_secs(30);

/// A client for `reference`'s registry, plus the credentials to present.
pub(crate) fn client_for(reference: &Reference, opts: &PullOptions) -> (Client, RegistryAuth) {
    let registry = registry_host(reference);
    pull_client(&registry, &opts.insecure_registries, opts)
}

/// A pull's client for `registry`, with the pull's credentials and read timeout.
pub(crate) fn pull_client(
    registry: &str,
    insecure: &[String],
    opts: &PullOptions,
) -> (Client, RegistryAuth) {
    configured(
        registry,
        insecure,
        opts.auth.as_ref(),
        false,
        opts.read_timeout.unwrap_or(READ_TIMEOUT),
    )
}

/// A client for `registry` (`host[:port]`). `monolithic` makes blob uploads one PUT each
/// (a push streams each blob from its file in one request and reports progress as the
/// request body is read).
pub(crate) fn client_with(
    registry: &str,
    insecure: &[String],
    credentials: Option<&Credentials>,
    monolithic: bool,
) -> (Client, RegistryAuth) {
    configured(registry, insecure, credentials, monolithic, READ_TIMEOUT)
}

fn configured(
    registry: &str,
    insecure: &[String],
    credentials: Option<&Credentials>,
    monolithic: bool,
    read_timeout: Duration,
) -> (Client, RegistryAuth) {
    install_crypto_provider();
    let protocol = if plain_http(registry, insecure) {
        ClientProtocol::Http
    } else {
        ClientProtocol::Https
    };
    let client = Client::new(ClientConfig {
        protocol,
        connect_timeout: Some(CONNECT_TIMEOUT),
        read_timeout: Some(read_timeout),
        // We select platforms ourselves (manifest.rs) to word errors Docker's way.
        platform_resolver: None,
        user_agent: concat!("arca/", env!("CARGO_PKG_VERSION")),
        use_monolithic_push: monolithic,
        ..ClientConfig::default()
    });
    let auth = match credentials {
        Some(c) => RegistryAuth::Basic(c.username.clone(), c.password.clone()),
        None => RegistryAuth::Anonymous,
    };
    (client, auth)
}

/// rustls needs one process-wide crypto provider; we ship ring's (aws-lc would need cmake
/// and a C toolchain). Installing fails harmlessly if the process already chose one.
fn install_crypto_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// The host (and port) requests go to, as `oci-client` resolves it (Docker Hub's API lives
/// on `index.docker.io`).
pub(crate) fn registry_host(reference: &Reference) -> String {
    oci_reference(reference).resolve_registry().to_owned()
}

/// `reference` as `oci-client` wants it: a digest wins over a tag, no tag means `latest`.
pub(crate) fn oci_reference(reference: &Reference) -> oci_client::Reference {
    let (domain, path) = (reference.domain().to_owned(), reference.path().to_owned());
    match (reference.digest(), reference.tag()) {
        (Some(d), _) => oci_client::Reference::with_digest(domain, path, d.to_string()),
        (None, Some(t)) => oci_client::Reference::with_tag(domain, path, t.to_owned()),
        (None, None) => oci_client::Reference::with_tag(domain, path, "latest".into()),
    }
}

/// Docker speaks plain HTTP to loopback registries and to those configured as insecure.
pub(crate) fn plain_http(registry: &str, insecure: &[String]) -> bool {
    if insecure.iter().any(|r| r == registry) {
        return true;
    }
    let host = match registry.rsplit_once(':') {
        // `[::1]:5000`, `127.0.0.1:5000`, `localhost:5000`; a bare `[::1]` has no port.
        Some((h, p)) if !p.contains(']') && p.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => registry,
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_and_insecure_registries_use_plain_http() {
        for r in [
            "127.0.0.1:5000",
            "127.1.2.3",
            "localhost:5000",
            "[::1]:5000",
            "[::1]",
        ] {
            assert!(plain_http(r, &[]), "{r}");
        }
        for r in ["registry-1.docker.io", "10.0.0.1:5000", "example.com:443"] {
            assert!(!plain_http(r, &[]), "{r}");
        }
        assert!(plain_http("10.0.0.1:5000", &["10.0.0.1:5000".into()]));
    }

    #[test]
    fn references_keep_registry_path_and_pin() {
        let r: Reference = "127.0.0.1:5000/a/b:1".parse().expect("ref");
        let o = oci_reference(&r);
        assert_eq!(
            (o.registry(), o.repository(), o.tag()),
            ("127.0.0.1:5000", "a/b", Some("1"))
        );
        let r: Reference = "busybox".parse().expect("ref");
        assert_eq!(registry_host(&r), "index.docker.io");
        assert_eq!(oci_reference(&r).repository(), "library/busybox");
        let d = arca_model::Digest::of(b"m");
        let r: Reference = format!("localhost:5000/x:1@{d}").parse().expect("ref");
        assert_eq!(oci_reference(&r).digest(), Some(d.to_string().as_str()));
    }
}
