//! The checks etcd makes only when a member bootstraps (its data directory is empty): parsing
//! `--initial-cluster` and `ServerConfig.VerifyBootstrap` / `VerifyJoinExisting`. etcd skips
//! them on restart, so a stale `--initial-cluster` never stops an initialised member; the server
//! calls [`Config::verify_bootstrap`] only when it finds no member directory.
//!
//! Comparing `--initial-advertise-peer-urls` with this member's `--initial-cluster` entry
//! follows etcd's `netutil.URLStringsEqual`: equal strings match; otherwise host names other
//! than `localhost` and IP literals are resolved (once, through the system resolver, where etcd
//! retries for up to 30 s) and the resolved forms compared.

use std::net::{SocketAddr, ToSocketAddrs};

use super::url::{initial_cluster_string, parse_initial_cluster, EtcdUrl, InitialMember};
use super::{Config, ConfigError};

impl Config {
    /// `--initial-cluster` as (name, peer URLs) members, sorted by name. The error is etcd's
    /// "error setting up initial cluster: ...".
    pub fn initial_members(&self) -> Result<Vec<InitialMember>, ConfigError> {
        parse_initial_cluster(&self.initial_cluster)
            .map_err(|err| ConfigError::Setup(format!("error setting up initial cluster: {err}")))
    }

    /// etcd's bootstrap checks for a member with an empty data directory: this member is in
    /// the initial cluster, (new cluster only) its advertised peer URLs are the ones the initial
    /// cluster lists for it, and no peer URL appears twice. Returns the parsed members.
    pub fn verify_bootstrap(&self) -> Result<Vec<InitialMember>, ConfigError> {
        let members = self.initial_members()?;
        let fail = |message: String| Err(ConfigError::Setup(message));
        let Some(local) = members.iter().find(|member| member.name == self.name) else {
            return fail(format!(
                "couldn't find local name {:?} in the initial cluster configuration",
                self.name
            ));
        };
        if self.is_new_cluster() {
            advertise_matches_cluster(
                &self.name,
                &local.peer_urls,
                &self.initial_advertise_peer_urls,
            )
            .map_err(ConfigError::Setup)?;
        }
        let mut seen = std::collections::BTreeSet::new();
        let duplicate = members
            .iter()
            .flat_map(|m| &m.peer_urls)
            .any(|url| !seen.insert(url));
        if duplicate {
            return fail(format!(
                "initial cluster {} has duplicate url",
                initial_cluster_string(&members)
            ));
        }
        Ok(members)
    }
}

/// etcd's `advertiseMatchesCluster` with its three messages.
fn advertise_matches_cluster(
    name: &str,
    cluster_urls: &[EtcdUrl],
    advertised: &[EtcdUrl],
) -> Result<(), String> {
    // etcd compares (advertised, cluster) in that order, which its messages show.
    let mismatch = match urls_equal(advertised, cluster_urls) {
        Ok(()) => return Ok(()),
        Err(why) => why,
    };
    let advertised_joined = strings(advertised).join(",");
    let missing: Vec<String> = cluster_urls
        .iter()
        .filter(|url| !advertised.contains(url))
        .map(|url| format!("{name}={url}"))
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "--initial-cluster has {} but missing from --initial-advertise-peer-urls={} ({})",
            missing.join(","),
            advertised_joined,
            mismatch
        ));
    }
    let as_cluster = initial_cluster_string(&[InitialMember {
        name: name.to_string(),
        peer_urls: advertised.to_vec(),
    }]);
    let extra: Vec<String> = advertised
        .iter()
        .filter(|url| !cluster_urls.contains(url))
        .map(|url| url.to_string())
        .collect();
    if !extra.is_empty() {
        return Err(format!(
            "--initial-advertise-peer-urls has {} but missing from --initial-cluster={}",
            extra.join(","),
            as_cluster
        ));
    }
    Err(format!(
        "failed to resolve {advertised_joined} to match --initial-cluster={as_cluster} ({mismatch})"
    ))
}

/// etcd's `URLStringsEqual`: same length, then equal as strings, else equal once resolved.
fn urls_equal(a: &[EtcdUrl], b: &[EtcdUrl]) -> Result<(), String> {
    let (mut a, mut b) = (strings(a), strings(b));
    if a.len() != b.len() {
        return Err(format!(
            "len({}) != len({})",
            go_quote_list(&a),
            go_quote_list(&b)
        ));
    }
    a.sort();
    b.sort();
    if a == b {
        return Ok(());
    }
    let resolve_all = |urls: &[String]| -> Result<Vec<String>, String> {
        let mut resolved = urls
            .iter()
            .map(|url| resolve(url))
            .collect::<Result<Vec<_>, _>>()?;
        resolved.sort();
        Ok(resolved)
    };
    let (a, b) = (resolve_all(&a)?, resolve_all(&b)?);
    match a.iter().zip(&b).find(|(x, y)| x != y) {
        Some((x, y)) => Err(format!("resolved urls: {x:?} != {y:?}")),
        None => Ok(()),
    }
}

/// etcd's `resolveURL`: Unix sockets, `localhost` and IP literals stay as written; other host
/// names become the first address the resolver returns (IPv4 preferred, as Go prefers it).
fn resolve(text: &str) -> Result<String, String> {
    let url = EtcdUrl::parse(text).map_err(|err| format!("failed to parse {text:?} ({err})"))?;
    let host = url.host();
    let literal = host == "localhost" || host.parse::<std::net::IpAddr>().is_ok();
    if matches!(url.scheme(), "unix" | "unixs") || literal {
        return Ok(text.to_string());
    }
    let failed = |why: String| format!("failed to resolve {text:?} ({why})");
    let addrs: Vec<SocketAddr> = format!("{}:{}", host, url.port())
        .to_socket_addrs()
        .map_err(|err| failed(err.to_string()))?
        .collect();
    let chosen = addrs
        .iter()
        .find(|addr| addr.is_ipv4())
        .or_else(|| addrs.first())
        .ok_or_else(|| failed("no addresses".to_string()))?;
    Ok(format!("{}://{}", url.scheme(), chosen))
}

fn strings(urls: &[EtcdUrl]) -> Vec<String> {
    urls.iter().map(ToString::to_string).collect()
}

/// Go's `%q` of a `[]string`: `["a" "b"]`.
fn go_quote_list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|item| format!("{item:?}")).collect();
    format!("[{}]", quoted.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::url::parse_url_list;

    fn config(name: &str, cluster: &str, advertised: &str) -> Config {
        Config {
            name: name.to_string(),
            initial_cluster: cluster.to_string(),
            initial_advertise_peer_urls: parse_url_list(advertised).unwrap(),
            ..Config::default()
        }
    }

    #[test]
    fn default_config_bootstraps() {
        // Proves etcd's defaults pass the bootstrap checks as a one-member cluster.
        let members = Config::default().verify_bootstrap().unwrap();
        assert_eq!(members.len(), 1);
        assert_eq!(members[0].name, "default");
        assert_eq!(members[0].peer_urls[0].as_str(), "http://localhost:2380");
    }

    #[test]
    fn bootstrap_errors() {
        // Proves each bootstrap check fails with etcd's message.
        let err = |c: Config| c.verify_bootstrap().unwrap_err().to_string();
        assert_eq!(
            err(config("a", "bad", "http://127.0.0.1:1")),
            "error setting up initial cluster: URL scheme must be http, https, unix, or unixs: "
        );
        assert_eq!(
            err(config("a", "b=http://127.0.0.1:1", "http://127.0.0.1:1")),
            r#"couldn't find local name "a" in the initial cluster configuration"#
        );
        assert_eq!(
            err(config("a", "a=http://127.0.0.1:1", "http://127.0.0.1:2")),
            "--initial-cluster has a=http://127.0.0.1:1 but missing from \
             --initial-advertise-peer-urls=http://127.0.0.1:2 (resolved urls: \
             \"http://127.0.0.1:2\" != \"http://127.0.0.1:1\")"
        );
        assert_eq!(
            err(config(
                "a",
                "a=http://127.0.0.1:1",
                "http://127.0.0.1:1,http://127.0.0.1:2"
            )),
            "--initial-advertise-peer-urls has http://127.0.0.1:2 but missing from \
             --initial-cluster=a=http://127.0.0.1:1,a=http://127.0.0.1:2"
        );
        assert_eq!(
            err(config(
                "a",
                "a=http://127.0.0.1:1,b=http://127.0.0.1:1",
                "http://127.0.0.1:1"
            )),
            "initial cluster a=http://127.0.0.1:1,b=http://127.0.0.1:1 has duplicate url"
        );
        let mut existing = config("a", "a=http://127.0.0.1:1", "http://127.0.0.1:2");
        existing.initial_cluster_state = crate::config::ClusterState::Existing;
        assert!(
            existing.verify_bootstrap().is_ok(),
            "joining skips the advertise check"
        );
    }
}
