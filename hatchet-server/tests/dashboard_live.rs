//! The dashboard's live feed (`/live`, server-sent events) over a real socket: quiet while nothing changes, a
//! "changed" event when something does, no feed without a session. A test binary of its own, so no other test's
//! writes reach its cluster while it listens for silence.

mod common;

use common::TestServer;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Reads from a socket until `needle` arrives or `wait` passes; returns what was read.
async fn read_until(stream: &mut tokio::net::TcpStream, needle: &str, wait: Duration) -> String {
    let mut seen = String::new();
    let deadline = tokio::time::Instant::now() + wait;
    let mut buf = [0u8; 4096];
    while !seen.contains(needle) {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => seen.push_str(&String::from_utf8_lossy(&buf[..n])),
            _ => break,
        }
    }
    seen
}

#[tokio::test]
async fn live_feed_says_changed_only_when_something_changes() {
    let server = TestServer::start().await;
    let token = server.token.clone();
    let mut stream = tokio::net::TcpStream::connect(server.http_addr)
        .await
        .unwrap();
    stream
        .write_all(format!("GET /live HTTP/1.1\r\nHost: x\r\nCookie: hatchet_session={token}\r\nAccept: text/event-stream\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let head = read_until(&mut stream, "\r\n\r\n", Duration::from_secs(5)).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.contains("text/event-stream"), "{head}");
    // Quiet while nothing changes (after the fresh cluster's own start-up wake-ups have passed).
    read_until(&mut stream, "never sent", Duration::from_secs(3)).await;
    let quiet = read_until(&mut stream, "event: changed", Duration::from_secs(3)).await;
    assert!(!quiet.contains("event: changed"), "{quiet}");
    // A change (work became ready: the NOTIFY every enqueue causes) reaches the page.
    let pool = common::pool().await;
    sqlx::query("NOTIFY hatchet_ready")
        .execute(&pool)
        .await
        .unwrap();
    let said = read_until(&mut stream, "event: changed", Duration::from_secs(5)).await;
    assert!(said.contains("event: changed\ndata: changed\n"), "{said}");
    // A page rendered before changes it has not seen (its generation differs) hears "changed" at once.
    let mut late = tokio::net::TcpStream::connect(server.http_addr)
        .await
        .unwrap();
    late.write_all(
        format!(
            "GET /live?since=999999 HTTP/1.1\r\nHost: x\r\nCookie: hatchet_session={token}\r\n\r\n"
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let said = read_until(&mut late, "event: changed", Duration::from_secs(5)).await;
    assert!(said.contains("event: changed\ndata: changed\n"), "{said}");
    drop(late);
    // Without a session there is no feed.
    let mut anon = tokio::net::TcpStream::connect(server.http_addr)
        .await
        .unwrap();
    anon.write_all(b"GET /live HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let head = read_until(&mut anon, "\r\n\r\n", Duration::from_secs(5)).await;
    assert!(head.starts_with("HTTP/1.1 303"), "{head}");
    drop(stream);
    drop(anon);
    server.stop().await.unwrap();
}
