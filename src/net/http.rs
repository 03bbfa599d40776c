//! A small HTTP/1.1 client: one request per connection (`Connection: close`), over verified TLS
//! ([`super::tls`]) or plain TCP (kubelet's loopback `/healthz`). Reads `Content-Length`, chunked
//! and read-to-close bodies; every step is bounded by one deadline.

use super::tls::{self, TlsConfig};
use std::io::{BufRead, BufReader, Read, Write};
use std::time::{Duration, Instant};

/// Bodies larger than this are refused (ConfigMaps are at most 1 MiB).
const MAX_BODY: usize = 32 * 1024 * 1024;

/// An HTTP response.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body shortened for an error message.
    pub fn snippet(&self) -> String {
        let t = self.text();
        let t = t.trim();
        if t.len() > 300 {
            let mut end = 300;
            while !t.is_char_boundary(end) {
                end -= 1;
            }
            format!("{}...", &t[..end])
        } else {
            t.to_string()
        }
    }
}

/// One request.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub content_type: Option<&'a str>,
    pub body: Option<&'a [u8]>,
}

impl<'a> Request<'a> {
    pub fn get(path: &'a str) -> Self {
        Request {
            method: "GET",
            path,
            content_type: None,
            body: None,
        }
    }
}

fn host_header(host: &str, port: u16) -> String {
    let bare = tls::bare_host(host);
    if bare.contains(':') {
        format!("[{bare}]:{port}")
    } else {
        format!("{bare}:{port}")
    }
}

/// Send a request over an open stream and read the response.
pub fn exchange<S: Read + Write>(
    stream: &mut S,
    host: &str,
    port: u16,
    req: &Request<'_>,
) -> Result<Response, String> {
    let mut head = format!(
        "{} {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: kubeha/{}\r\nAccept: application/json, */*\r\nConnection: close\r\n",
        req.method,
        req.path,
        host_header(host, port),
        env!("CARGO_PKG_VERSION")
    );
    if let Some(ct) = req.content_type {
        head.push_str(&format!("Content-Type: {ct}\r\n"));
    }
    let body = req.body.unwrap_or(&[]);
    if req.body.is_some() || matches!(req.method, "PUT" | "POST" | "PATCH") {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    stream
        .write_all(head.as_bytes())
        .and_then(|()| stream.write_all(body))
        .and_then(|()| stream.flush())
        .map_err(|e| format!("cannot send the request: {e}"))?;
    read_response(stream, req.method == "HEAD")
}

fn read_line<R: BufRead>(r: &mut R) -> Result<String, String> {
    let mut line = Vec::new();
    let n = r
        .by_ref()
        .take(64 * 1024)
        .read_until(b'\n', &mut line)
        .map_err(|e| format!("cannot read the response: {e}"))?;
    if n == 0 {
        return Err("the server closed the connection without a response".into());
    }
    Ok(String::from_utf8_lossy(&line)
        .trim_end_matches(['\r', '\n'])
        .to_string())
}

fn read_response<S: Read>(stream: &mut S, head_only: bool) -> Result<Response, String> {
    let mut r = BufReader::new(stream);
    let status_line = read_line(&mut r)?;
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or("");
    if !version.starts_with("HTTP/1.") {
        return Err(format!("not an HTTP/1.x response: {status_line:?}"));
    }
    let status: u16 = parts
        .next()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad status line {status_line:?}"))?;
    let mut headers = Vec::new();
    loop {
        let line = read_line(&mut r)?;
        if line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
        if headers.len() > 200 {
            return Err("too many response headers".into());
        }
    }
    let mut resp = Response {
        status,
        headers,
        body: Vec::new(),
    };
    if head_only || status == 204 || status == 304 || (100..200).contains(&status) {
        return Ok(resp);
    }
    let chunked = resp
        .header("Transfer-Encoding")
        .map(|v| v.to_ascii_lowercase().contains("chunked"))
        .unwrap_or(false);
    if chunked {
        loop {
            let size_line = read_line(&mut r)?;
            let size_hex = size_line.split(';').next().unwrap_or("").trim();
            let size = usize::from_str_radix(size_hex, 16)
                .map_err(|_| format!("bad chunk size {size_line:?}"))?;
            if size == 0 {
                // trailers until the empty line
                while !read_line(&mut r)?.is_empty() {}
                break;
            }
            if resp.body.len() + size > MAX_BODY {
                return Err("response body too large".into());
            }
            let start = resp.body.len();
            resp.body.resize(start + size, 0);
            r.read_exact(&mut resp.body[start..])
                .map_err(|e| format!("cannot read the response body: {e}"))?;
            read_line(&mut r)?;
        }
    } else if let Some(len) = resp.header("Content-Length") {
        let len: usize = len
            .parse()
            .map_err(|_| format!("bad Content-Length {len:?}"))?;
        if len > MAX_BODY {
            return Err("response body too large".into());
        }
        resp.body.resize(len, 0);
        r.read_exact(&mut resp.body)
            .map_err(|e| format!("cannot read the response body: {e}"))?;
    } else {
        r.take(MAX_BODY as u64)
            .read_to_end(&mut resp.body)
            .map_err(|e| format!("cannot read the response body: {e}"))?;
    }
    Ok(resp)
}

/// Send one request over verified TLS within `timeout`.
pub fn https(
    host: &str,
    port: u16,
    config: &TlsConfig,
    req: &Request<'_>,
    timeout: Duration,
) -> Result<Response, String> {
    let deadline = Instant::now() + timeout;
    let mut stream = tls::connect(host, port, config, deadline)?;
    let resp = exchange(&mut stream, host, port, req);
    let _ = stream.shutdown();
    resp
}

/// Send one request over plain HTTP (loopback health endpoints only).
pub fn http(
    host: &str,
    port: u16,
    req: &Request<'_>,
    timeout: Duration,
) -> Result<Response, String> {
    let deadline = Instant::now() + timeout;
    let mut stream = tls::tcp_connect(host, port, deadline)?;
    exchange(&mut stream, host, port, req)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    struct Duplex {
        input: Cursor<Vec<u8>>,
        output: Vec<u8>,
    }
    impl Read for Duplex {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            self.input.read(buf)
        }
    }
    impl Write for Duplex {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.output.write(buf)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn exchange_with(reply: &str, req: &Request<'_>) -> (Result<Response, String>, String) {
        let mut d = Duplex {
            input: Cursor::new(reply.as_bytes().to_vec()),
            output: Vec::new(),
        };
        let r = exchange(&mut d, "fd00::1", 6443, req);
        (r, String::from_utf8(d.output).unwrap())
    }

    #[test]
    fn content_length_body_and_request_head() {
        let req = Request {
            method: "PUT",
            path: "/api/v1/x",
            content_type: Some("application/json"),
            body: Some(b"{}"),
        };
        let (r, sent) = exchange_with("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokEXTRA", &req);
        let r = r.unwrap();
        assert_eq!((r.status, r.text().as_str()), (200, "ok"));
        assert!(
            sent.starts_with("PUT /api/v1/x HTTP/1.1\r\nHost: [fd00::1]:6443\r\n"),
            "{sent}"
        );
        assert!(
            sent.contains("Content-Length: 2\r\n") && sent.ends_with("\r\n\r\n{}"),
            "{sent}"
        );
    }

    #[test]
    fn chunked_body() {
        let reply = "HTTP/1.1 409 Conflict\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n";
        let r = exchange_with(reply, &Request::get("/")).0.unwrap();
        assert_eq!((r.status, r.text().as_str()), (409, "abcde"));
    }

    #[test]
    fn body_until_close_and_garbage() {
        let r = exchange_with("HTTP/1.0 500 x\r\n\r\nboom", &Request::get("/"))
            .0
            .unwrap();
        assert_eq!((r.status, r.text().as_str()), (500, "boom"));
        assert!(exchange_with("SSH-2.0-x\r\n", &Request::get("/"))
            .0
            .is_err());
        assert!(exchange_with("", &Request::get("/"))
            .0
            .unwrap_err()
            .contains("closed"));
    }
}
