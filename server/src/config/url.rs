//! etcd's URL rules: parsing member URLs (`--listen-client-urls`, `--initial-cluster`, ...) the
//! way etcd 3.4's `types.NewURLs` does on top of Go's `net/url`, and rendering them back in Go's
//! `URL.String()` form.
//!
//! The rendered form matters beyond cosmetics: etcd derives member IDs from the sorted peer URL
//! strings, and clients compare advertised URLs as strings, so `http://localhost:2380` must stay
//! exactly that (no trailing `/`, no default-port folding as WHATWG parsers do).
//!
//! Invariants of an [`EtcdUrl`]: scheme is one of `http`, `https`, `unix`, `unixs` (lower case);
//! the authority splits as Go's `net.SplitHostPort` splits it (a port is present, possibly
//! empty); there is no path. Lists are sorted by rendered string and deduplicated, as etcd's
//! `UniqueURLs` flag values are.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// One member URL, as etcd accepts it: `scheme://host:port`, no path.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EtcdUrl {
    /// Go's `URL.String()` form; ordering and equality follow it, as etcd's sorting does.
    rendered: String,
    scheme: String,
    /// Host without brackets (`::1` for `[::1]:2379`), as `net.SplitHostPort` returns it.
    host: String,
    /// Port digits, possibly empty (`http://127.0.0.1:` is accepted by etcd).
    port: String,
}

/// Where a listen URL binds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BindAddr {
    /// A TCP listener (`http`/`https`); `localhost` resolves to 127.0.0.1 as Go's listener does.
    Tcp(SocketAddr),
    /// A Unix socket (`unix`/`unixs`); the path is the URL's `host:port` text, as in etcd.
    Unix(String),
}

impl EtcdUrl {
    /// Parses one URL with etcd's rules (leading and trailing spaces are ignored). The error is
    /// etcd's message text.
    pub fn parse(input: &str) -> Result<EtcdUrl, String> {
        let trimmed = input.trim();
        let go = GoUrl::parse(trimmed)?;
        if !matches!(go.scheme.as_str(), "http" | "https" | "unix" | "unixs") {
            return Err(format!(
                "URL scheme must be http, https, unix, or unixs: {trimmed}"
            ));
        }
        let Some((host, port)) = split_host_port(&go.host) else {
            return Err(format!(
                r#"URL address does not have the form "host:port": {trimmed}"#
            ));
        };
        if !go.path.is_empty() {
            return Err(format!("URL must not contain a path: {trimmed}"));
        }
        Ok(EtcdUrl {
            rendered: go.render(),
            scheme: go.scheme.clone(),
            host: host.to_string(),
            port: port.to_string(),
        })
    }

    /// The scheme: `http`, `https`, `unix` or `unixs`.
    pub fn scheme(&self) -> &str {
        &self.scheme
    }

    /// The host, without IPv6 brackets.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port text (digits, possibly empty).
    pub fn port(&self) -> &str {
        &self.port
    }

    /// Go's `URL.String()` form, e.g. `http://localhost:2379`.
    pub fn as_str(&self) -> &str {
        &self.rendered
    }

    /// etcd's `checkBindURLs` rule for listen URLs: the host is an IP literal or `localhost`
    /// (Unix sockets are exempt).
    pub(crate) fn check_bindable(&self) -> Result<(), String> {
        if self.is_unix() || self.host == "localhost" || self.host.parse::<IpAddr>().is_ok() {
            return Ok(());
        }
        Err(format!(
            "expected IP in URL for binding ({})",
            self.rendered
        ))
    }

    /// etcd's `checkHostURLs` rule for advertised URLs: the host is not empty.
    pub(crate) fn check_has_host(&self) -> Result<(), String> {
        if self.host.is_empty() {
            return Err(format!("unexpected empty host ({})", self.rendered));
        }
        Ok(())
    }

    /// Where this listen URL binds. Fails (with Go's listener wording) only on a port above
    /// 65535 or a host that [`EtcdUrl::check_bindable`] rejects; an empty port binds port 0.
    pub fn bind_addr(&self) -> Result<BindAddr, String> {
        if self.is_unix() {
            return Ok(BindAddr::Unix(self.host_port()));
        }
        let ip = if self.host == "localhost" {
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        } else {
            self.host
                .parse::<IpAddr>()
                .map_err(|_| format!("expected IP in URL for binding ({})", self.rendered))?
        };
        let port = if self.port.is_empty() {
            0
        } else {
            self.port
                .parse::<u16>()
                .map_err(|_| format!("listen tcp: address {}: invalid port", self.port))?
        };
        Ok(BindAddr::Tcp(SocketAddr::new(ip, port)))
    }

    fn is_unix(&self) -> bool {
        self.scheme == "unix" || self.scheme == "unixs"
    }

    fn host_port(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

impl fmt::Display for EtcdUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.rendered)
    }
}

/// Parses a comma-separated URL list as etcd's URL flags do: every element must parse; the
/// result is sorted by rendered string and deduplicated.
pub fn parse_url_list(input: &str) -> Result<Vec<EtcdUrl>, String> {
    let mut urls = input
        .split(',')
        .map(EtcdUrl::parse)
        .collect::<Result<Vec<_>, _>>()?;
    urls.sort();
    urls.dedup();
    Ok(urls)
}

/// Renders a URL list as etcd prints it: comma-joined.
pub fn join_urls(urls: &[EtcdUrl]) -> String {
    urls.iter()
        .map(EtcdUrl::as_str)
        .collect::<Vec<_>>()
        .join(",")
}

/// One member of `--initial-cluster`: its name and its peer URLs (sorted).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InitialMember {
    /// The member's `--name`.
    pub name: String,
    /// Its peer URLs, sorted as etcd sorts them (by string).
    pub peer_urls: Vec<EtcdUrl>,
}

/// Parses `--initial-cluster` (`name=url,name=url,...`) as etcd's `types.NewURLsMap` does:
/// entries split on `,`, then on the first `=`; empty entries are skipped; a name may repeat to
/// give a member several URLs. Members come back sorted by name. Unlike URL flags, a member's URL
/// list keeps duplicates (etcd's bootstrap check reports them as "has duplicate url").
pub fn parse_initial_cluster(input: &str) -> Result<Vec<InitialMember>, String> {
    let mut by_name: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for entry in input.split(',').filter(|entry| !entry.is_empty()) {
        let (name, url) = entry.split_once('=').unwrap_or((entry, ""));
        by_name.entry(name).or_default().push(url);
    }
    let mut members = Vec::with_capacity(by_name.len());
    for (name, raw_urls) in by_name {
        let mut peer_urls = raw_urls
            .into_iter()
            .map(EtcdUrl::parse)
            .collect::<Result<Vec<_>, _>>()?;
        peer_urls.sort();
        members.push(InitialMember {
            name: name.to_string(),
            peer_urls,
        });
    }
    Ok(members)
}

/// Renders an initial cluster as etcd's `URLsMap.String()`: sorted `name=url` pairs.
pub fn initial_cluster_string(members: &[InitialMember]) -> String {
    let mut pairs: Vec<String> = members
        .iter()
        .flat_map(|m| m.peer_urls.iter().map(move |u| format!("{}={}", m.name, u)))
        .collect();
    pairs.sort();
    pairs.join(",")
}

/// The parts of Go's `url.Parse` result that etcd looks at.
struct GoUrl {
    scheme: String,
    /// `user@` when present, kept verbatim for rendering.
    userinfo: String,
    host: String,
    path: String,
    /// `?query#fragment` tail, kept verbatim for rendering.
    tail: String,
}

impl GoUrl {
    /// Go's `url.Parse`, reduced to what URLs in etcd flags exercise; errors carry Go's text.
    fn parse(raw: &str) -> Result<GoUrl, String> {
        let fail = |why: String| Err(format!("parse {raw:?}: {why}"));
        if raw.bytes().any(|b| b < 0x20 || b == 0x7f) {
            return fail("net/url: invalid control character in URL".to_string());
        }
        let (before_fragment, fragment) = match raw.split_once('#') {
            Some((before, frag)) => (before, Some(frag)),
            None => (raw, None),
        };
        let (scheme, rest) = match split_scheme(before_fragment) {
            Ok(parts) => parts,
            Err(why) => return fail(why),
        };
        let (rest, query) = match rest.split_once('?') {
            Some((before, query)) => (before, Some(query)),
            None => (rest, None),
        };
        let mut tail = String::new();
        if let Some(query) = query {
            tail.push('?');
            tail.push_str(query);
        }
        if let Some(fragment) = fragment {
            tail.push('#');
            tail.push_str(fragment);
        }
        let mut url = GoUrl {
            scheme,
            userinfo: String::new(),
            host: String::new(),
            path: String::new(),
            tail,
        };
        let Some(after_slashes) = rest.strip_prefix("//") else {
            let first_segment = rest.split('/').next().unwrap_or("");
            if url.scheme.is_empty() && first_segment.contains(':') {
                return fail("first path segment in URL cannot contain colon".to_string());
            }
            // No authority: Go keeps it as an opaque or path part, which etcd then rejects for
            // lacking "host:port" (an empty host never splits).
            url.path = if url.scheme.is_empty() {
                rest.to_string()
            } else {
                String::new()
            };
            return Ok(url);
        };
        let (authority, path) = match after_slashes.find('/') {
            Some(slash) => after_slashes.split_at(slash),
            None => (after_slashes, ""),
        };
        url.path = path.to_string();
        let host = match authority.rfind('@') {
            Some(at) => {
                url.userinfo = authority[..=at].to_string();
                &authority[at + 1..]
            }
            None => authority,
        };
        if let Err(why) = check_go_host(host) {
            return fail(why);
        }
        url.host = host.to_string();
        Ok(url)
    }

    fn render(&self) -> String {
        format!(
            "{}://{}{}{}{}",
            self.scheme, self.userinfo, self.host, self.path, self.tail
        )
    }
}

/// Go's `getScheme`: a leading `[A-Za-z][A-Za-z0-9+.-]*:` is the scheme (lower-cased); anything
/// else means "no scheme"; a leading `:` is an error.
fn split_scheme(raw: &str) -> Result<(String, &str), String> {
    for (i, c) in raw.char_indices() {
        match c {
            'a'..='z' | 'A'..='Z' => {}
            '0'..='9' | '+' | '-' | '.' if i > 0 => {}
            ':' if i == 0 => return Err("missing protocol scheme".to_string()),
            ':' => return Ok((raw[..i].to_ascii_lowercase(), &raw[i + 1..])),
            _ => return Ok((String::new(), raw)),
        }
    }
    Ok((String::new(), raw))
}

/// Go's host checks in `url.Parse`: a bracketed IPv6 literal needs its `]`, a port must be
/// digits, and only URL-legal characters may appear.
fn check_go_host(host: &str) -> Result<(), String> {
    let port_part = if host.starts_with('[') {
        let Some(close) = host.find(']') else {
            return Err("missing ']' in host".to_string());
        };
        &host[close + 1..]
    } else {
        host.rfind(':').map_or("", |colon| &host[colon..])
    };
    let port_ok = port_part.is_empty()
        || (port_part.starts_with(':') && port_part[1..].bytes().all(|b| b.is_ascii_digit()));
    if !port_ok {
        return Err(format!("invalid port {port_part:?} after host"));
    }
    let legal = |c: char| {
        c.is_ascii_alphanumeric() || !c.is_ascii() || "-._~!$&'()*+,;=:[]<>\"%".contains(c)
    };
    if let Some(bad) = host.chars().find(|&c| !legal(c)) {
        return Err(format!(
            "invalid character {:?} in host name",
            bad.to_string()
        ));
    }
    Ok(())
}

/// Go's `net.SplitHostPort`: `None` where Go returns an error (no port, too many colons, stray
/// brackets).
fn split_host_port(hostport: &str) -> Option<(&str, &str)> {
    let last_colon = hostport.rfind(':')?;
    let (host, inner_start, after_host) = if hostport.starts_with('[') {
        let close = hostport.find(']')?;
        if close + 1 != last_colon {
            return None;
        }
        (&hostport[1..close], 1, close + 1)
    } else {
        let host = &hostport[..last_colon];
        if host.contains(':') {
            return None;
        }
        (host, 0, 0)
    };
    if hostport[inner_start..].contains('[') || hostport[after_host..].contains(']') {
        return None;
    }
    Some((host, &hostport[last_colon + 1..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_as_go_does() {
        // Proves URLs keep Go's String() form: no trailing slash, scheme lower-cased, IPv6 kept.
        for (input, want) in [
            ("http://localhost:2379", "http://localhost:2379"),
            (" HTTP://127.0.0.1:80 ", "http://127.0.0.1:80"),
            ("https://[::1]:2379", "https://[::1]:2379"),
            ("unix://sock:0", "unix://sock:0"),
            ("http://127.0.0.1:", "http://127.0.0.1:"),
        ] {
            assert_eq!(EtcdUrl::parse(input).unwrap().as_str(), want, "{input}");
        }
        let v6 = EtcdUrl::parse("http://[::1]:2379").unwrap();
        assert_eq!((v6.host(), v6.port(), v6.scheme()), ("::1", "2379", "http"));
    }

    #[test]
    fn rejects_with_etcds_messages() {
        // Proves each URL error carries the text etcd 3.4 prints for the same input.
        for (input, want) in [
            (
                "foo://x:1",
                "URL scheme must be http, https, unix, or unixs: foo://x:1",
            ),
            ("", "URL scheme must be http, https, unix, or unixs: "),
            (
                "localhost:2379",
                "URL scheme must be http, https, unix, or unixs: localhost:2379",
            ),
            (
                "http://localhost",
                r#"URL address does not have the form "host:port": http://localhost"#,
            ),
            (
                "http:localhost:1",
                r#"URL address does not have the form "host:port": http:localhost:1"#,
            ),
            ("http://a:1/", "URL must not contain a path: http://a:1/"),
            ("http://a:1/x", "URL must not contain a path: http://a:1/x"),
            ("://a:1", r#"parse "://a:1": missing protocol scheme"#),
            (
                "1http://a:1",
                r#"parse "1http://a:1": first path segment in URL cannot contain colon"#,
            ),
            (
                "http://a:b",
                r#"parse "http://a:b": invalid port ":b" after host"#,
            ),
            (
                "http://[::1:1",
                r#"parse "http://[::1:1": missing ']' in host"#,
            ),
            (
                "http://a b:1",
                r#"parse "http://a b:1": invalid character " " in host name"#,
            ),
        ] {
            assert_eq!(EtcdUrl::parse(input).unwrap_err(), want, "{input:?}");
        }
    }

    #[test]
    fn lists_sort_and_dedup() {
        // Proves URL lists come back sorted by string and without duplicates, as etcd's flags do.
        let urls = parse_url_list("http://b:1,http://a:1,http://b:1").unwrap();
        assert_eq!(join_urls(&urls), "http://a:1,http://b:1");
        assert!(parse_url_list("http://a:1,").is_err());
    }

    #[test]
    fn bind_rules() {
        // Proves listen URLs must name an IP or localhost, and resolve to the socket Go binds.
        let bind = |s: &str| EtcdUrl::parse(s).unwrap().bind_addr();
        assert_eq!(
            bind("http://localhost:2379"),
            Ok(BindAddr::Tcp("127.0.0.1:2379".parse().unwrap()))
        );
        assert_eq!(
            bind("http://[::1]:5"),
            Ok(BindAddr::Tcp("[::1]:5".parse().unwrap()))
        );
        assert_eq!(
            bind("http://0.0.0.0:"),
            Ok(BindAddr::Tcp("0.0.0.0:0".parse().unwrap()))
        );
        assert_eq!(bind("unix://s:1"), Ok(BindAddr::Unix("s:1".to_string())));
        assert_eq!(
            bind("http://127.0.0.1:70000").unwrap_err(),
            "listen tcp: address 70000: invalid port"
        );
        let named = EtcdUrl::parse("http://example.com:2380").unwrap();
        assert_eq!(
            named.check_bindable().unwrap_err(),
            "expected IP in URL for binding (http://example.com:2380)"
        );
        let empty = EtcdUrl::parse("http://:2379").unwrap();
        assert_eq!(
            empty.check_has_host().unwrap_err(),
            "unexpected empty host (http://:2379)"
        );
    }

    #[test]
    fn initial_cluster_parsing() {
        // Proves --initial-cluster groups URLs by name, skips empty entries and reports bad URLs.
        let members = parse_initial_cluster("b=http://b:2,a=http://a:2,,a=http://a:1").unwrap();
        assert_eq!(members.len(), 2);
        assert_eq!(members[0].name, "a");
        assert_eq!(join_urls(&members[0].peer_urls), "http://a:1,http://a:2");
        assert_eq!(
            initial_cluster_string(&members),
            "a=http://a:1,a=http://a:2,b=http://b:2"
        );
        assert_eq!(
            parse_initial_cluster("bad").unwrap_err(),
            "URL scheme must be http, https, unix, or unixs: "
        );
        assert_eq!(parse_initial_cluster("").unwrap(), vec![]);
    }
}
