//! Live dashboards across replicas: two servers on one database, a dashboard open on B, runs changed through A. A
//! test binary of its own (its own cluster), so no other test's writes make B's feed speak.

mod common;

use common::TestServer;
use serde_json::json;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use uuid::Uuid;

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

/// One HTTP/1.1 request on a fresh connection; the whole answer.
async fn http(addr: std::net::SocketAddr, request: String) -> String {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(request.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(30), s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

/// Opens B's live feed and waits until it is quiet (the start-up wake-ups have passed).
async fn quiet_feed(server: &TestServer) -> tokio::net::TcpStream {
    let mut stream = tokio::net::TcpStream::connect(server.http_addr)
        .await
        .unwrap();
    stream
        .write_all(
            format!(
                "GET /live HTTP/1.1\r\nHost: x\r\nCookie: hatchet_session={}\r\nAccept: text/event-stream\r\n\r\n",
                server.token
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    let head = read_until(&mut stream, "\r\n\r\n", Duration::from_secs(5)).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    read_until(&mut stream, "never sent", Duration::from_secs(3)).await;
    let quiet = read_until(&mut stream, "event: changed", Duration::from_secs(2)).await;
    assert!(
        !quiet.contains("event: changed"),
        "B's feed is quiet first: {quiet}"
    );
    stream
}

#[tokio::test]
async fn a_dashboard_on_b_sees_a_run_changed_through_a() {
    let a = TestServer::start().await;
    let b = TestServer::start().await;
    let pool = common::pool().await;
    sqlx::query("SELECT hatchet.register_workflow($1)")
        .bind(json!({"name": "replica_wf", "tasks": [{"readable_id": "only"}]}))
        .execute(&pool)
        .await
        .unwrap();
    let run: Uuid = sqlx::query_scalar("SELECT hatchet.run_workflow('replica_wf')")
        .fetch_one(&pool)
        .await
        .unwrap();

    // A queued run cancelled on A's dashboard: Postgres notifies nothing for it (no attempt was running), so only
    // A's relay can tell B.
    let mut feed = quiet_feed(&b).await;
    let page = http(
        a.http_addr,
        format!(
            "GET /runs/{run} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nCookie: hatchet_session={}\r\n\r\n",
            a.token
        ),
    )
    .await;
    let at = page.find("name=\"csrf\" value=\"").expect("a form") + "name=\"csrf\" value=\"".len();
    let form = format!("csrf={}", &page[at..at + 64]);
    let answer = http(
        a.http_addr,
        format!(
            "POST /runs/{run}/cancel HTTP/1.1\r\nHost: x\r\nConnection: close\r\nCookie: hatchet_session={}\r\n\
             Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{form}",
            a.token,
            form.len()
        ),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 303"), "{answer}");
    let status: String = sqlx::query_scalar("SELECT hatchet.run_status($1)")
        .bind(run)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(status, "CANCELLED");
    let said = read_until(&mut feed, "event: changed", Duration::from_secs(5)).await;
    assert!(
        said.contains("event: changed\ndata: changed\n"),
        "B heard nothing: {said}"
    );
    // And the page B then fetches shows the run as A left it.
    let page = http(
        b.http_addr,
        format!(
            "GET /runs/{run} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nCookie: hatchet_session={}\r\n\r\n",
            b.token
        ),
    )
    .await;
    assert!(page.contains("id=\"run-status\""), "{page}");
    assert!(page.contains("CANCELLED"));

    // Nothing changes: B stays quiet (A relays nothing, and never its own echo back to itself).
    let quiet = read_until(&mut feed, "event: changed", Duration::from_secs(3)).await;
    assert!(!quiet.contains("event: changed"), "{quiet}");
    drop(feed);
    a.stop().await.unwrap();
    b.stop().await.unwrap();
}
