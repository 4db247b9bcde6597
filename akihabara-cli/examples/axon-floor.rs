//! A yardstick for `scripts/soak.py cpu --floor`, not an axon: the least an
//! HTTP server can do per call and still answer the Python dendrite's `Ping`.
//!
//! Every POST has its body read (at most 1 MiB), then, unless `--no-check`,
//! one sr25519 signature check as the axon makes it (akihabara's
//! `VerifyingKey`: a fixed signature over a message as long as a real
//! request's, the key decompressed once, as the axon caches it),
//! and gets the same canned `Ping` answer. It checks no header, nonce, body
//! hash or policy, and parses no JSON. Served as `akihabara axon serve` is:
//! hyper on one tokio thread, `TCP_NODELAY`, mimalloc.
//!
//! Its CPU per call, under the same Python load, is the floor that any axon
//! built on hyper and that check pays on the machine: what is left for
//! everything else `axon serve` does is the difference.
//!
//! With `--raw` there is no hyper either: each connection reads into one
//! buffer, frames requests with `httparse` (headers, `content-length`),
//! and writes the canned answer with a fixed head in one write. That is the
//! least any HTTP/1.1 server on tokio pays, a bound on what a server leaner
//! than hyper could save. It is a yardstick only: no timeouts, no limits
//! beyond the buffer's 1 MiB.
//!
//! Usage: `axon-floor --ip 127.0.0.2 --port 0 [--no-check] [--raw]`; prints
//! one JSON line `{"event":"ready","port":N}` and serves until killed.

use std::net::{IpAddr, SocketAddr};

use akihabara_core::wallet::{Keypair, Signature, VerifyingKey};
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::Bytes;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode, header};

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// What our axon answers a Python `Ping` (one captured answer, 842 bytes).
const ANSWER: &str = r#"{"name":"Ping","timeout":12.0,"total_size":3446,"header_size":0,"dendrite":{"status_code":null,"status_message":null,"process_time":null,"ip":"127.0.0.3","port":null,"version":10005000,"nonce":1796034599439611167,"uuid":"f9e1f492-eca8-11f1-90d2-02fc00000001","hotkey":"5ED8gDXoyA4qe5dzfa4KDPnVWdd7fcgjjoj9hjVoMDcr6uUm","signature":"0xd0144553b816d32dacc944d14f58fea75e619df9708fb178f8b5f07a7fbe0313765740a0451b772e4653aaaeb0d28e320d5dd1fe6a67d63c22eea4de3c565983"},"axon":{"status_code":200,"status_message":"Success","process_time":0.000258253,"ip":"127.0.0.2","port":40365,"version":null,"nonce":null,"uuid":null,"hotkey":"5FKktvQ9adM6LDucqE4LKnhmc8iQT1w1G5UogB31WNScPbYZ","signature":null},"computed_body_hash":"","message":"soak","count":38,"echo":"soak","count_plus_one":39,"served_by":"5FKktvQ9adM6LDucqE4LKnhmc8iQT1w1G5UogB31WNScPbYZ"}"#;

/// A message as long as a legacy request's signed one
/// (`nonce.dendrite.axon.uuid.body_hash`).
const MESSAGE: &[u8] = b"1796034599439611167.5ED8gDXoyA4qe5dzfa4KDPnVWdd7fcgjjoj9hjVoMDcr6uUm.5FKktvQ9adM6LDucqE4LKnhmc8iQT1w1G5UogB31WNScPbYZ.f9e1f492-eca8-11f1-90d2-02fc00000001.41acc52bb2384a3aba200e0ce40577eaf625069a1e6630f4df5d3c45384524a0";

/// The one check per call: a fixed, valid signature.
struct Check {
    key: VerifyingKey,
    signature: Signature,
}

impl Check {
    fn new() -> anyhow::Result<Check> {
        let keypair = Keypair::from_seed([7; 32]);
        let key = VerifyingKey::new(&keypair.account())
            .ok_or_else(|| anyhow::anyhow!("not an sr25519 key"))?;
        Ok(Check {
            key,
            signature: keypair.sign(MESSAGE),
        })
    }

    fn run(&self) -> bool {
        self.key.verify(MESSAGE, &self.signature)
    }
}

struct Args {
    addr: SocketAddr,
    check: bool,
    raw: bool,
}

fn args() -> anyhow::Result<Args> {
    let (mut ip, mut port, mut check, mut raw) = (None, None, true, false);
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        match k.as_str() {
            "--no-check" => check = false,
            "--raw" => raw = true,
            "--ip" | "--port" => {
                let v = it
                    .next()
                    .ok_or_else(|| anyhow::anyhow!("{k} needs a value"))?;
                if k == "--ip" {
                    ip = Some(v.parse::<IpAddr>()?);
                } else {
                    port = Some(v.parse::<u16>()?);
                }
            }
            other => anyhow::bail!(
                "unknown argument {other}; usage: axon-floor --ip IP --port N [--no-check] [--raw]"
            ),
        }
    }
    let ip = ip.ok_or_else(|| anyhow::anyhow!("--ip is required"))?;
    anyhow::ensure!(
        ip.is_loopback(),
        "axon-floor serves on loopback only, not {ip}"
    );
    Ok(Args {
        addr: SocketAddr::new(ip, port.unwrap_or(0)),
        check,
        raw,
    })
}

async fn answer(
    req: Request<Incoming>,
    check: Option<&'static Check>,
) -> Result<Response<Full<Bytes>>, std::convert::Infallible> {
    let read = Limited::new(req.into_body(), 1 << 20).collect().await;
    let ok = read.is_ok() && check.is_none_or(Check::run);
    let mut r = Response::new(Full::new(Bytes::from_static(if ok {
        ANSWER.as_bytes()
    } else {
        b"{\"message\":\"refused\"}"
    })));
    if !ok {
        *r.status_mut() = StatusCode::BAD_REQUEST;
    }
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    Ok(r)
}

/// Most bytes one request (head and body) may take in `--raw` mode.
const RAW_MAX: usize = 1 << 20;

/// One connection without hyper: frame each request, answer it in one write.
async fn serve_raw(mut stream: tokio::net::TcpStream, check: Option<&'static Check>) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let ok_head = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        ANSWER.len()
    );
    let ok = [ok_head.as_bytes(), ANSWER.as_bytes()].concat();
    let refused: &[u8] = b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: 21\r\n\r\n{\"message\":\"refused\"}";
    let mut buf: Vec<u8> = Vec::with_capacity(16 << 10);
    loop {
        // One whole request in `buf`: its head's length and its body's.
        let (head, body) = loop {
            let mut headers = [httparse::EMPTY_HEADER; 64];
            let mut req = httparse::Request::new(&mut headers);
            match req.parse(&buf) {
                Ok(httparse::Status::Complete(head)) => {
                    let len = req
                        .headers
                        .iter()
                        .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                        .and_then(|h| std::str::from_utf8(h.value).ok()?.trim().parse().ok())
                        .unwrap_or(0usize);
                    if buf.len() >= head + len {
                        break (head, len);
                    }
                }
                Ok(httparse::Status::Partial) => {}
                Err(_) => return,
            }
            if buf.len() >= RAW_MAX {
                return;
            }
            match stream.read_buf(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        };
        let good = check.is_none_or(Check::run);
        if stream
            .write_all(if good { &ok } else { refused })
            .await
            .is_err()
        {
            return;
        }
        buf.drain(..head + body);
    }
}

fn main() -> anyhow::Result<()> {
    let Args { addr, check, raw } = args()?;
    let check: Option<&'static Check> = if check {
        Some(Box::leak(Box::new(Check::new()?)))
    } else {
        None
    };
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(async move {
            let listener = tokio::net::TcpListener::bind(addr).await?;
            println!(
                "{{\"event\":\"ready\",\"port\":{}}}",
                listener.local_addr()?.port()
            );
            loop {
                let (stream, _) = listener.accept().await?;
                let _ = stream.set_nodelay(true);
                if raw {
                    tokio::spawn(serve_raw(stream, check));
                    continue;
                }
                let service = hyper::service::service_fn(move |req| answer(req, check));
                tokio::spawn(
                    hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service),
                );
            }
        })
}
