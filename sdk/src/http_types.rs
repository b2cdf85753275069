//! HTTP with the [`http`] crate's types: an `http::Request` in, an `http::Response<Bytes>` out
//! ([`Client::send`]), and 4xx/5xx statuses as errors when a client asks for them
//! ([`ClientBuilder::error_for_status`]).
//!
//! ```no_run
//! use sockpool::codec::http::Headers;
//! use sockpool::Client;
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let client = Client::http("http://127.0.0.1:8080", Headers::new())?.error_for_status(true).build()?;
//! let response = client.send(http::Request::get("/health").body("")?).await?;
//! assert_eq!(response.status(), http::StatusCode::OK);
//! // With error_for_status, a 404 is an Err that names it.
//! let e = client.send(http::Request::get("/missing").body("")?).await.unwrap_err();
//! assert_eq!(e.http_status(), Some(404));
//! # Ok(())
//! # }
//! ```
//!
//! The request's URI gives the request target (its path and query); an absolute URI's authority becomes the
//! `Host` field when the request has none (otherwise the client's own `Host`, from its URL, applies). HTTP/1.0
//! and HTTP/1.1 only: the connections speak HTTP/1.x.

use bytes::Bytes;

use crate::client::{Client, ClientBuilder};
use crate::codec::http::{self as codec, Headers, Method, Version};
use crate::error::{Error, ErrorKind, Phase};
use crate::protocol::Http;

impl ClientBuilder<Http> {
    /// Make the typed calls ([`Client::request`], [`Client::send`]) return an `Err` of kind
    /// [`HttpStatus`](ErrorKind::HttpStatus) for a 4xx or 5xx response, its status in
    /// [`Error::http_status`]. Such an error is not retried (the server answered). Default: off, every status
    /// is a response.
    pub fn error_for_status(self, on: bool) -> Self {
        self.map_protocol(|p| Http {
            error_for_status: on,
            ..p
        })
    }
}

impl Client<Http> {
    /// Send an `http::Request` and return its response as an `http::Response<Bytes>` (the body read whole,
    /// within the client's limits). With [`error_for_status`](ClientBuilder::error_for_status), a 4xx or 5xx
    /// response is an `Err` of kind [`HttpStatus`](ErrorKind::HttpStatus).
    pub async fn send<B: Into<Bytes>>(
        &self,
        request: http::Request<B>,
    ) -> Result<http::Response<Bytes>, Error> {
        let response = self.request(from_http(request)?).await?;
        into_http(response)
    }

    /// Send one HTTP request and return its response. Every status is a response, unless the client was
    /// built with [`error_for_status`](ClientBuilder::error_for_status): then a 4xx or 5xx is an `Err` of kind
    /// [`HttpStatus`](ErrorKind::HttpStatus).
    pub async fn request(&self, request: codec::Request) -> Result<codec::Response, Error> {
        let response = self.call(request).await?;
        if self.protocol().error_for_status && response.status >= 400 {
            let reason = String::from_utf8_lossy(&response.reason);
            return Err(Error::http_status_error(response.status, &reason));
        }
        Ok(response)
    }
}

/// A request that cannot be sent as HTTP/1.x: a configuration error, before anything is sent.
fn refused(message: String) -> Error {
    Error::new(ErrorKind::Config, Phase::Request, message).with_sent(false)
}

/// An `http::Request` as the codec's request.
pub fn from_http<B: Into<Bytes>>(request: http::Request<B>) -> Result<codec::Request, Error> {
    let (parts, body) = request.into_parts();
    let version = match parts.version {
        http::Version::HTTP_10 => Version::Http10,
        http::Version::HTTP_11 => Version::Http11,
        other => return Err(refused(format!("{other:?} is not HTTP/1.x"))),
    };
    let target = parts
        .uri
        .path_and_query()
        .map_or("/", |pq| pq.as_str())
        .to_string();
    let mut headers = Headers::new();
    for (name, value) in &parts.headers {
        headers.push(name.as_str(), value.as_bytes());
    }
    if headers.get("host").is_none() {
        if let Some(authority) = parts.uri.authority() {
            headers.push("Host", authority.as_str());
        }
    }
    Ok(codec::Request {
        method: Method::from_bytes(parts.method.as_str().as_bytes()),
        path: Bytes::from(if target.is_empty() {
            "/".to_string()
        } else {
            target
        }),
        version,
        headers,
        body: body.into(),
    })
}

/// The codec's response as an `http::Response<Bytes>`. A field the `http` crate refuses (never, once the codec
/// has decoded it) is a protocol error.
pub fn into_http(response: codec::Response) -> Result<http::Response<Bytes>, Error> {
    let bad = |e: http::Error| Error::new(ErrorKind::Protocol, Phase::Read, e.to_string());
    let mut builder = http::Response::builder().status(response.status);
    for (name, value) in response.headers.iter() {
        builder = builder.header(name, value);
    }
    builder.body(response.body).map_err(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_http_request_becomes_the_codecs_with_host_from_an_absolute_uri() {
        let req = http::Request::post("http://example.test:8080/a/b?x=1")
            .header("X-Tenant", "blue")
            .body("hi")
            .unwrap();
        let c = from_http(req).unwrap();
        assert_eq!(c.method, Method::Post);
        assert_eq!(&c.path[..], b"/a/b?x=1");
        assert_eq!(c.version, Version::Http11);
        assert_eq!(c.header("x-tenant"), Some(&b"blue"[..]));
        assert_eq!(c.header("host"), Some(&b"example.test:8080"[..]));
        assert_eq!(&c.body[..], b"hi");
        // A request's own Host wins; an origin-form URI adds none (the client's applies).
        let req = http::Request::get("http://a.test/")
            .header("Host", "b.test")
            .body("")
            .unwrap();
        assert_eq!(from_http(req).unwrap().headers.get_all("host").count(), 1);
        let req = http::Request::get("/only/path").body(Bytes::new()).unwrap();
        assert_eq!(from_http(req).unwrap().header("host"), None);
        let req = http::Request::get("/")
            .version(http::Version::HTTP_2)
            .body("")
            .unwrap();
        let e = from_http(req).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Config);
        assert!(!e.was_sent());
    }

    #[test]
    fn the_codecs_response_becomes_an_http_response() {
        let r = codec::Response::new(404)
            .with_header("Content-Type", "text/plain")
            .with_header("Set-Cookie", "a=1")
            .with_header("Set-Cookie", "b=2")
            .with_body("gone");
        let h = into_http(r).unwrap();
        assert_eq!(h.status(), http::StatusCode::NOT_FOUND);
        assert_eq!(h.headers()["content-type"], "text/plain");
        assert_eq!(h.headers().get_all("set-cookie").iter().count(), 2);
        assert_eq!(&h.body()[..], b"gone");
    }
}
