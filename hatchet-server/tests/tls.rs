//! TLS on both listeners (what `serve --tls-cert --tls-key` enables), with a throwaway self-signed certificate.

mod common;

use common::{with_auth, TestServer};
use hatchet_server::config::ENGINE_VERSION;
use hatchet_server::proto::{dispatcher_client::DispatcherClient, GetVersionRequest};
use hatchet_server::TlsFiles;
use rustls::pki_types::{CertificateDer, ServerName};
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic::codec::CompressionEncoding::Gzip;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint};

fn self_signed() -> TlsFiles {
    let generated = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    TlsFiles {
        cert_pem: generated.cert.pem().into_bytes(),
        key_pem: generated.signing_key.serialize_pem().into_bytes(),
    }
}

#[tokio::test]
async fn grpc_and_rest_over_tls() {
    let tls = self_signed();
    let server = TestServer::start_with(common::state().await, Some(tls.clone())).await;
    let bearer = format!("bearer {}", server.token);

    // gRPC: a client that trusts only our certificate.
    let channel = Endpoint::from_shared(format!("https://127.0.0.1:{}", server.grpc_addr.port()))
        .unwrap()
        .tls_config(
            ClientTlsConfig::new()
                .ca_certificate(Certificate::from_pem(&tls.cert_pem))
                .domain_name("localhost"),
        )
        .unwrap()
        .connect()
        .await
        .expect("TLS gRPC connection");
    let mut client = DispatcherClient::new(channel).send_compressed(Gzip);
    let version = client
        .get_version(with_auth(GetVersionRequest {}, Some(&bearer)))
        .await
        .unwrap()
        .into_inner()
        .version;
    assert_eq!(version, ENGINE_VERSION);

    // Plaintext h2c is refused on the TLS port.
    let plaintext = Endpoint::from_shared(format!("http://{}", server.grpc_addr))
        .unwrap()
        .connect()
        .await;
    if let Ok(channel) = plaintext {
        let result = DispatcherClient::new(channel)
            .get_version(with_auth(GetVersionRequest {}, Some(&bearer)))
            .await;
        assert!(result.is_err(), "plaintext call on a TLS port succeeded");
    }

    // REST: HTTP/1.1 over TLS.
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from(generated_der(&tls.cert_pem)))
        .unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(server.http_addr)
        .await
        .unwrap();
    let mut stream = connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .expect("TLS handshake");
    stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut response = Vec::new();
    // The server may close without close_notify; what was read before that is what matters.
    let _ = stream.read_to_end(&mut response).await;
    let response = String::from_utf8_lossy(&response);
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains(r#"{"status":"ok"}"#), "{response}");

    // The dashboard's sign-in over TLS sets a Secure session cookie (never sent back over plaintext).
    let tcp = tokio::net::TcpStream::connect(server.http_addr)
        .await
        .unwrap();
    let mut stream = connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .expect("TLS handshake");
    let form = format!("token={}", server.token);
    stream
        .write_all(
            format!(
                "POST /login HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\
                 Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{form}",
                form.len()
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response).await;
    let response = String::from_utf8_lossy(&response);
    assert!(response.starts_with("HTTP/1.1 303"), "{response}");
    let cookie = response
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("set-cookie:"))
        .unwrap_or_else(|| panic!("no cookie: {response}"));
    assert!(cookie.contains("hatchet_session="), "{cookie}");
    assert!(
        cookie.contains("; Secure") && cookie.contains("HttpOnly"),
        "{cookie}"
    );

    server.stop().await.unwrap();
}

fn generated_der(pem: &[u8]) -> Vec<u8> {
    use rustls::pki_types::pem::PemObject;
    CertificateDer::from_pem_slice(pem).unwrap().to_vec()
}

#[tokio::test]
async fn mismatched_tls_files_fail_at_startup() {
    let a = self_signed();
    let b = self_signed();
    let files = TlsFiles {
        cert_pem: a.cert_pem,
        key_pem: b.key_pem,
    };
    let state = common::state().await;
    let listeners = hatchet_server::Listeners {
        grpc: tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
        http: tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
        tls: Some(files),
    };
    let result = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        hatchet_server::run(listeners, state, std::future::pending()),
    )
    .await
    .expect("run must fail fast, not serve");
    let err = format!("{:#}", result.expect_err("mismatched key accepted"));
    assert!(err.contains("TLS"), "{err}");
}
