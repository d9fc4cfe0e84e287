//! `hatchet-server dev` end to end, as a user runs it: the real binary creates a cluster in a fresh directory,
//! prints the env exports, serves with the printed token, stops Postgres on SIGTERM, and reuses the directory on
//! the next start.

mod common;

use common::{free_port, with_auth};
use hatchet_server::config::{DEFAULT_TENANT_ID, ENGINE_VERSION};
use hatchet_server::proto::{dispatcher_client::DispatcherClient, GetVersionRequest};
use std::collections::HashMap;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};
use tonic::codec::CompressionEncoding::Gzip;

struct Ports {
    grpc: u16,
    http: u16,
    pg: u16,
}

fn dev_command(dir: &Path, ports: &Ports) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hatchet-server"));
    cmd.arg("dev")
        .arg("--data-dir")
        .arg(dir)
        .args(["--grpc-port", &ports.grpc.to_string()])
        .args(["--http-port", &ports.http.to_string()])
        .args(["--pg-port", &ports.pg.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd
}

/// Reads the four `export NAME=value` lines `dev` prints once it is serving.
async fn read_exports(child: &mut Child) -> HashMap<String, String> {
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let mut exports = HashMap::new();
    let read = async {
        while exports.len() < 4 {
            let Some(line) = lines.next_line().await.unwrap() else {
                break;
            };
            let (name, value) = line
                .strip_prefix("export ")
                .and_then(|rest| rest.split_once('='))
                .unwrap_or_else(|| panic!("unexpected stdout line {line:?}"));
            exports.insert(name.to_owned(), value.to_owned());
        }
    };
    if tokio::time::timeout(Duration::from_secs(120), read)
        .await
        .is_err()
        || exports.len() < 4
    {
        let mut stderr = String::new();
        let _ = child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut stderr)
            .await;
        panic!("dev did not print its exports; stderr:\n{stderr}");
    }
    // Keep reading, as a terminal would: the rest (the dashboard link) must not meet a closed pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    exports
}

async fn check_serving(exports: &HashMap<String, String>, ports: &Ports) {
    assert_eq!(
        exports["HATCHET_CLIENT_HOST_PORT"],
        format!("localhost:{}", ports.grpc)
    );
    assert_eq!(exports["HATCHET_CLIENT_TLS_STRATEGY"], "none");
    assert_eq!(
        exports["HATCHET_CLIENT_SERVER_URL"],
        format!("http://localhost:{}", ports.http)
    );
    let token = &exports["HATCHET_CLIENT_TOKEN"];
    let claims: hatchet_server::auth::Claims =
        jsonwebtoken::dangerous::insecure_decode_claims(token).unwrap();
    assert_eq!(claims.sub, DEFAULT_TENANT_ID.to_string());

    let mut client = DispatcherClient::connect(format!("http://127.0.0.1:{}", ports.grpc))
        .await
        .unwrap()
        .send_compressed(Gzip);
    let version = client
        .get_version(with_auth(
            GetVersionRequest {},
            Some(&format!("bearer {token}")),
        ))
        .await
        .expect("GetVersion with the printed token")
        .into_inner()
        .version;
    assert_eq!(version, ENGINE_VERSION);

    let response = health(ports.http).await.expect("GET /health");
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
}

async fn health(http_port: u16) -> std::io::Result<String> {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", http_port)).await?;
    stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await?;
    Ok(response)
}

async fn terminate(mut child: Child) {
    let pid = child.id().unwrap().to_string();
    let status = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .await
        .unwrap();
    assert!(status.success());
    let status = tokio::time::timeout(Duration::from_secs(60), child.wait())
        .await
        .expect("dev did not exit after SIGTERM")
        .unwrap();
    assert!(status.success(), "dev exited with {status}");
}

#[tokio::test]
async fn dev_creates_serves_stops_and_restarts() {
    let dir = tempfile::Builder::new()
        .prefix("hatchet-dev-test-")
        .tempdir()
        .unwrap();
    let data_dir = dir.path().join("data");
    let ports = Ports {
        grpc: free_port(),
        http: free_port(),
        pg: free_port(),
    };

    let mut child = dev_command(&data_dir, &ports).spawn().unwrap();
    let exports = read_exports(&mut child).await;
    check_serving(&exports, &ports).await;
    assert!(data_dir.join("pgdata/PG_VERSION").exists());
    assert!(
        data_dir.join("pgdata/postmaster.pid").exists(),
        "Postgres should be running"
    );
    terminate(child).await;
    assert!(
        !data_dir.join("pgdata/postmaster.pid").exists(),
        "Postgres should be stopped after dev exits"
    );

    // The second start reuses the cluster (and its database, extension and tenant secret).
    let mut child = dev_command(&data_dir, &ports).spawn().unwrap();
    let second = read_exports(&mut child).await;
    check_serving(&second, &ports).await;
    assert_ne!(
        second["HATCHET_CLIENT_TOKEN"],
        exports["HATCHET_CLIENT_TOKEN"]
    );
    terminate(child).await;
    assert!(!data_dir.join("pgdata/postmaster.pid").exists());

    // A reader that went away (stdout closed before anything is printed) does not stop the server.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let mut child = dev_command(&data_dir, &ports)
        .stdout(Stdio::from(writer))
        .spawn()
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        match health(ports.http).await {
            Ok(response) if response.starts_with("HTTP/1.1 200") => break,
            _ if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            other => panic!("dev with a closed stdout is not serving: {other:?}"),
        }
    }
    let mut stderr = child.stderr.take().unwrap();
    terminate(child).await;
    let mut log = String::new();
    stderr.read_to_string(&mut log).await.unwrap();
    assert!(log.contains("could not print the client settings"), "{log}");
}

#[tokio::test]
async fn dev_explains_a_missing_extension() {
    // A Postgres "installation" whose pg_config points at directories without pg_hatchet.
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let pg_config = bin.join("pg_config");
    std::fs::write(
        &pg_config,
        format!("#!/bin/sh\necho {}\n", dir.path().display()),
    )
    .unwrap();
    std::fs::set_permissions(
        &pg_config,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();

    let out = Command::new(env!("CARGO_BIN_EXE_hatchet-server"))
        .arg("dev")
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .arg("--pg-bin-dir")
        .arg(&bin)
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("pg_hatchet extension is not installed"),
        "{stderr}"
    );
    assert!(stderr.contains("make dev"), "{stderr}");
    assert!(
        !dir.path().join("data").exists(),
        "nothing should be created before the check"
    );
}
