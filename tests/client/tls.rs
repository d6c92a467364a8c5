//! TLS: certificates are always verified, and a private certificate authority is trusted only
//! when the user adds it (`--ca-cert` or `SSL_CERT_FILE`). A small HTTPS server on loopback
//! presents a certificate for `localhost` issued by a CA made for the test.

use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use tfe_policy_sync::client::{ApiError, Client, ClientOptions};
use tfe_policy_sync::config::{self, ConnectionArgs};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::{self, pki_types};

use super::*;

/// A private CA (its PEM) and an HTTPS server on `localhost` whose certificate it issued,
/// answering every request with 204.
async fn private_ca_server() -> (String, u16) {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "tfe-policy-sync test CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();

    let mut leaf_params = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    leaf_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = leaf_params.signed_by(&leaf_key, &ca).unwrap();

    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let server_config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![leaf.der().clone()],
            pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into()),
        )
        .unwrap();
    let acceptor = TlsAcceptor::from(Arc::new(server_config));
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
        .await
        .unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((socket, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                // A client that refuses the certificate ends the handshake: nothing to serve.
                let Ok(mut tls) = acceptor.accept(socket).await else {
                    return;
                };
                let mut request = Vec::new();
                let mut buf = [0u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tls.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = tls
                    .write_all(b"HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n")
                    .await;
                let _ = tls.shutdown().await;
            });
        }
    });
    (ca.pem(), port)
}

fn no_retries() -> ClientOptions {
    ClientOptions {
        max_retries: 0,
        ..opts()
    }
}

#[tokio::test]
async fn a_certificate_from_an_unknown_authority_is_refused() {
    let (_ca, port) = private_ca_server().await;
    let client = client_for(
        &format!("https://localhost:{port}"),
        ORG,
        SECRET,
        no_retries(),
    );
    let err = client.ping().await.unwrap_err();
    assert!(matches!(err, ApiError::Transport { .. }), "{err:?}");
    assert!(err.to_string().contains("certificate"), "{err}");
    assert!(err.to_string().contains("--ca-cert"), "{err}");
    assert_secret_free(&err);
}

#[tokio::test]
async fn ca_cert_trusts_a_private_authority() {
    let (ca, port) = private_ca_server().await;
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("corp-ca.pem");
    std::fs::write(&ca_file, ca).unwrap();
    let mut conn = connection(&format!("https://localhost:{port}"), ORG, SECRET);
    conn.ca_certs = vec![ca_file];
    let client = Client::new(&conn, no_retries()).unwrap();
    client.ping().await.unwrap();
}

#[tokio::test]
async fn ssl_cert_file_trusts_a_private_authority_too() {
    let (ca, port) = private_ca_server().await;
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("bundle.pem");
    std::fs::write(&ca_file, ca).unwrap();
    let args = ConnectionArgs {
        address: Some(format!("https://localhost:{port}")),
        organization: Some(ORG.to_owned()),
        ..ConnectionArgs::default()
    };
    let ca_path = ca_file.display().to_string();
    let env = move |k: &str| match k {
        "TFE_TOKEN" => Some(SECRET.to_owned()),
        "SSL_CERT_FILE" => Some(ca_path.clone()),
        _ => None,
    };
    let conn = config::resolve(&args, None, &env, None).unwrap();
    let client = Client::new(&conn, no_retries()).unwrap();
    client.ping().await.unwrap();
}
