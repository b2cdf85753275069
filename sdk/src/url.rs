//! Endpoints written as URLs, parsed with the `url` crate: where to connect, and what to set up on each new
//! connection.
//!
//! | form | endpoint | set-up |
//! | --- | --- | --- |
//! | `redis://[user[:pass]@]host[:port][/db][?client_name=NAME]` | TCP, port 6379 by default | `AUTH`, `SELECT db`, `CLIENT SETNAME` |
//! | `rediss://…` (same) | TLS | the same |
//! | `redis+unix:///path[?db=N&user=U&password=P&client_name=NAME]`, `unix:/path` | Unix socket | the same |
//! | `http://host[:port][/]`, `https://…` | TCP (port 80) / TLS (port 443) | `Host: host[:port]` on every request |
//! | `tcp://host:port`, `tls://host:port` | TCP / TLS | none |
//!
//! User names and passwords are percent-decoded (`%40` for `@`). Anything the form does not define (an HTTP
//! path, an unknown query parameter, a database that is not a number) is refused with an error that names it.
//! The `redis` and `http` schemes name their protocol: a client of another protocol refuses them when it is built
//! ([`Protocol::url_schemes`](crate::protocol::Protocol::url_schemes)).

use std::path::PathBuf;

use ::url::{Host, Url};
use percent_encoding::percent_decode_str;

use bytes::Bytes;

use crate::client::{Client, ClientBuilder};
use crate::codec::http::Headers;
use crate::error::{Error, ErrorKind, Phase};
use crate::protocol::Http;
use crate::redis::RedisSetup;
use crate::transport::Endpoint;

/// An endpoint URL, parsed: where to connect and what each new connection needs.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ServiceUrl {
    /// Where to connect.
    pub endpoint: Endpoint,
    /// Redis set-up from the URL (`redis://`, `rediss://`, `redis+unix://`, `unix:`): empty for other schemes.
    pub redis: RedisSetup,
    /// The HTTP `Host` header (`http://`, `https://`): the host, with the port when it is not the default.
    pub http_host: Option<String>,
}

/// The schemes that name a service's protocol ([`Protocol::url_schemes`](crate::protocol::Protocol::url_schemes)), as
/// opposed to the generic `tcp`, `tls` and `unix`.
pub(crate) const SERVICE_SCHEMES: &[&str] = &["redis", "rediss", "redis+unix", "http", "https"];

/// The service scheme `endpoint` is written with (`redis`, `https` …), if any.
pub(crate) fn service_scheme(endpoint: &str) -> Option<&'static str> {
    let (scheme, _) = endpoint.split_once("://")?;
    SERVICE_SCHEMES
        .iter()
        .find(|s| s.eq_ignore_ascii_case(scheme))
        .copied()
}

fn bad(url: &str, why: impl std::fmt::Display) -> Error {
    // The URL may hold a password: name the problem, not the URL.
    let shown = match Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_string(),
    };
    Error::new(
        ErrorKind::Config,
        Phase::Connect,
        format!("bad endpoint URL {shown:?}: {why}"),
    )
}

fn decode(url: &str, part: &str) -> Result<Option<String>, Error> {
    if part.is_empty() {
        return Ok(None);
    }
    percent_decode_str(part)
        .decode_utf8()
        .map(|s| Some(s.into_owned()))
        .map_err(|e| bad(url, format!("not UTF-8 once percent-decoded: {e}")))
}

/// The host of `u` as an [`Endpoint`] wants it (IPv6 without brackets).
fn host(s: &str, u: &Url) -> Result<String, Error> {
    match u.host() {
        Some(Host::Domain(d)) if !d.is_empty() => Ok(d.to_string()),
        Some(Host::Ipv4(a)) => Ok(a.to_string()),
        Some(Host::Ipv6(a)) => Ok(a.to_string()),
        _ => Err(bad(s, "no host")),
    }
}

fn parse_db(s: &str, text: &str) -> Result<u32, Error> {
    text.parse()
        .map_err(|_| bad(s, format!("database {text:?} is not a number")))
}

/// Parse an endpoint URL (see the [module docs](self)).
pub fn parse(s: &str) -> Result<ServiceUrl, Error> {
    let u = Url::parse(s).map_err(|e| bad(s, e))?;
    let scheme = u.scheme().to_ascii_lowercase();
    let mut redis = RedisSetup::default();
    let mut http_host = None;
    let endpoint = match scheme.as_str() {
        "redis" | "rediss" => {
            let host = host(s, &u)?;
            let port = u.port().unwrap_or(6379);
            redis.username = decode(s, u.username())?;
            redis.password = decode(s, u.password().unwrap_or(""))?;
            match u.path().trim_start_matches('/') {
                "" => {}
                db => redis.db = Some(parse_db(s, db)?),
            }
            if scheme == "rediss" {
                Endpoint::Tls { host, port }
            } else {
                Endpoint::Tcp { host, port }
            }
        }
        "redis+unix" | "unix" => {
            if u.path().is_empty() || !u.path().starts_with('/') {
                return Err(bad(s, "expected an absolute socket path"));
            }
            let path = decode(s, u.path())?.unwrap_or_default();
            Endpoint::Unix(PathBuf::from(path))
        }
        "http" | "https" => {
            let host = host(s, &u)?;
            let port = u.port_or_known_default().unwrap_or(80);
            if !u.username().is_empty() || u.password().is_some() {
                return Err(bad(
                    s,
                    "credentials in an HTTP URL are not supported: send an Authorization header",
                ));
            }
            if !matches!(u.path(), "" | "/") || u.query().is_some() {
                return Err(bad(
                    s,
                    "an endpoint has no path or query: they belong to each request",
                ));
            }
            // `host_str` keeps an IPv6 literal's brackets, as the header wants them.
            let mut h = u.host_str().unwrap_or_default().to_string();
            if let Some(p) = u.port() {
                h = format!("{h}:{p}");
            }
            http_host = Some(h);
            if scheme == "https" {
                Endpoint::Tls { host, port }
            } else {
                Endpoint::Tcp { host, port }
            }
        }
        "tcp" | "tls" => {
            let host = host(s, &u)?;
            let port = u.port().ok_or_else(|| bad(s, "no port"))?;
            if scheme == "tls" {
                Endpoint::Tls { host, port }
            } else {
                Endpoint::Tcp { host, port }
            }
        }
        other => {
            return Err(bad(
                s,
                format!(
                "unknown scheme {other:?} (redis, rediss, redis+unix, unix, http, https, tcp, tls)"
            ),
            ))
        }
    };
    let is_redis = matches!(scheme.as_str(), "redis" | "rediss" | "redis+unix" | "unix");
    for (key, value) in u.query_pairs() {
        match (key.as_ref(), is_redis) {
            ("client_name", true) => redis.client_name = Some(value.into_owned()),
            ("db", true) if redis.db.is_none() => redis.db = Some(parse_db(s, &value)?),
            ("user" | "username", true) if redis.username.is_none() => {
                redis.username = Some(value.into_owned())
            }
            ("password" | "pass", true) if redis.password.is_none() => {
                redis.password = Some(value.into_owned())
            }
            (other, _) => return Err(bad(s, format!("unknown or repeated parameter {other:?}"))),
        }
    }
    if redis.username.is_some() && redis.password.is_none() {
        return Err(bad(s, "a user name without a password"));
    }
    Ok(ServiceUrl {
        endpoint,
        redis,
        http_host,
    })
}

impl Client<Http> {
    /// A builder for an HTTP client from a URL (`http://host[:port]`, `https://…`): its endpoint, and `Host`
    /// (with the port when it is not the default) on every request that has none. `headers` are added to every
    /// request that lacks them (`User-Agent`, `Authorization` …). `https://` uses the builder's
    /// [`tls`](crate::ClientBuilder::tls) settings.
    pub fn http(url: &str, headers: Headers) -> Result<ClientBuilder<Http>, Error> {
        let parsed = parse(url)?;
        let Some(host) = parsed.http_host else {
            return Err(bad(url, "expected an http:// or https:// URL"));
        };
        let protocol = Http {
            host: Some(Bytes::from(host)),
            default_headers: headers,
            ..Http::default()
        };
        Ok(Client::builder(protocol).endpoint(&parsed.endpoint))
    }
}

/// The endpoint of a URL that needs no set-up: `.endpoint("redis://127.0.0.1:6379")` works, while a URL with
/// credentials or a database is refused there (it needs [`Client::redis`](crate::Client::redis), which sets
/// up each connection).
pub(crate) fn endpoint_only(s: &str) -> Result<Endpoint, Error> {
    let parsed = parse(s)?;
    if !parsed.redis.is_empty() {
        return Err(bad(
            s,
            "credentials, a database or a client name need a set-up on each connection: build the client with \
             Client::redis(url)",
        ));
    }
    Ok(parsed.endpoint)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redis_urls_carry_auth_db_and_name() {
        let u = parse("redis://app:s%40cret@127.0.0.1:7001/3?client_name=billing").unwrap();
        assert_eq!(
            u.endpoint,
            Endpoint::Tcp {
                host: "127.0.0.1".into(),
                port: 7001
            }
        );
        assert_eq!(u.redis.username.as_deref(), Some("app"));
        assert_eq!(u.redis.password.as_deref(), Some("s@cret"));
        assert_eq!(u.redis.db, Some(3));
        assert_eq!(u.redis.client_name.as_deref(), Some("billing"));
        // Password only (the `default` user), default port, TLS, IPv6.
        let u = parse("rediss://:pw@[::1]/0").unwrap();
        assert_eq!(
            u.endpoint,
            Endpoint::Tls {
                host: "::1".into(),
                port: 6379
            }
        );
        assert_eq!(
            (u.redis.username, u.redis.password.as_deref()),
            (None, Some("pw"))
        );
        let u = parse("redis+unix:///tmp/redis.sock?db=2&password=x").unwrap();
        assert_eq!(u.endpoint, Endpoint::Unix("/tmp/redis.sock".into()));
        assert_eq!(
            (u.redis.db, u.redis.password.as_deref()),
            (Some(2), Some("x"))
        );
        assert_eq!(
            parse("unix:/tmp/s").unwrap().endpoint,
            Endpoint::Unix("/tmp/s".into())
        );
    }

    #[test]
    fn http_urls_give_the_host_header() {
        let u = parse("http://example.test").unwrap();
        assert_eq!(
            u.endpoint,
            Endpoint::Tcp {
                host: "example.test".into(),
                port: 80
            }
        );
        assert_eq!(u.http_host.as_deref(), Some("example.test"));
        let u = parse("https://[::1]:8443/").unwrap();
        assert!(u.endpoint.is_tls());
        assert_eq!(u.http_host.as_deref(), Some("[::1]:8443"));
    }

    #[test]
    fn bad_urls_say_why_and_hide_the_password() {
        for (url, why) in [
            ("redis://u:p@h/x", "database \"x\""),
            (
                "redis://h/1?color=red",
                "unknown or repeated parameter \"color\"",
            ),
            ("http://h/path", "no path or query"),
            ("ftp://h", "unknown scheme"),
            ("redis://user@h", "without a password"),
            ("tcp://h", "no port"),
        ] {
            let e = parse(url).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Config);
            assert!(e.to_string().contains(why), "{url}: {e}");
        }
        let e = parse("redis://u:topsecret@h/x").unwrap_err();
        assert!(!e.to_string().contains("topsecret"), "{e}");
        let e = endpoint_only("redis://u:topsecret@h/1").unwrap_err();
        assert!(e.to_string().contains("Client::redis"), "{e}");
        assert!(endpoint_only("redis://127.0.0.1:6379").is_ok());
    }
}
